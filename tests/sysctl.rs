//! Sysctls on the real kernel: systemd-sysctl's glob rules for `inherit_host_sysctl`, values
//! and keys the kernel normalizes, keys that leave the config, and values the kernel rejects.
//! Each test runs in its own network and mount namespace with /etc as a private overlay
//! (tests/sandbox-runner), so the sysctl.d files written here never reach the machine.

mod support;

use std::fs;

use support::*;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Masks every sysctl.d file of the machine with an empty file of the same name in
/// /etc/sysctl.d, then writes `files` (name, contents) there. netnsctl then reads only the
/// test's own files.
fn host_sysctl_d(files: &[(&str, &str)]) {
    let dirs = [
        "/etc/sysctl.d",
        "/run/sysctl.d",
        "/usr/local/lib/sysctl.d",
        "/usr/lib/sysctl.d",
        "/lib/sysctl.d",
    ];
    fs::create_dir_all("/etc/sysctl.d").expect("/etc/sysctl.d");
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".conf") {
                fs::write(std::path::Path::new("/etc/sysctl.d").join(name), "")
                    .expect("mask sysctl.d file");
            }
        }
    }
    for (name, contents) in files {
        fs::write(std::path::Path::new("/etc/sysctl.d").join(name), contents)
            .expect("write sysctl.d file");
    }
}

#[test]
fn host_exclusion_line_keeps_key_out_of_glob() {
    if !require_root("host_exclusion_line_keeps_key_out_of_glob") {
        return;
    }
    // systemd's own 50-default.conf recipe for rp_filter.
    host_sysctl_d(&[(
        "50-x.conf",
        "net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n\
         -net.ipv4.conf.all.rp_filter\n",
    )]);
    let env = Env::new("[namespaces.x]\ninherit_host_sysctl = true\n");
    env.ok(&["apply"]);
    assert_eq!(sysctl_in("x", "net.ipv4.conf.all.rp_filter"), "0");
    assert_eq!(sysctl_in("x", "net.ipv4.conf.default.rp_filter"), "2");
    assert_eq!(sysctl_in("x", "net.ipv4.conf.lo.rp_filter"), "2");
    assert_eq!(env.ok(&["plan"]).trim(), "nothing to change");
}

#[test]
fn explicit_host_key_wins_over_later_glob() {
    if !require_root("explicit_host_key_wins_over_later_glob") {
        return;
    }
    host_sysctl_d(&[
        ("10-explicit.conf", "net.ipv4.conf.all.rp_filter = 1\n"),
        (
            "20-glob.conf",
            "net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.conf.[al]*.log_martians = 1\n",
        ),
    ]);
    let env = Env::new("[namespaces.g]\ninherit_host_sysctl = true\n");
    let planned = env.ok(&["plan"]);
    assert!(
        planned.contains("set sysctl net.ipv4.conf.[al]*.log_martians = 1"),
        "{planned}"
    );
    env.ok(&["apply"]);
    assert_eq!(sysctl_in("g", "net.ipv4.conf.all.rp_filter"), "1");
    assert_eq!(sysctl_in("g", "net.ipv4.conf.default.rp_filter"), "2");
    assert_eq!(sysctl_in("g", "net.ipv4.conf.all.log_martians"), "1");
    assert_eq!(sysctl_in("g", "net.ipv4.conf.lo.log_martians"), "1");
    assert_eq!(sysctl_in("g", "net.ipv4.conf.default.log_martians"), "0");
    assert_eq!(env.ok(&["plan"]).trim(), "nothing to change");
}

#[test]
fn host_dash_prefix_ignores_rejected_value() {
    if !require_root("host_dash_prefix_ignores_rejected_value") {
        return;
    }
    host_sysctl_d(&[(
        "50-x.conf",
        "-net.ipv4.conf.all.rp_filter = abc\nnet.ipv4.ip_forward = 1\n",
    )]);
    let env = Env::new("[namespaces.d]\ninherit_host_sysctl = true\n");
    let check = env.run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(sysctl_in("d", "net.ipv4.ip_forward"), "1");
    assert_eq!(sysctl_in("d", "net.ipv4.conf.all.rp_filter"), "0");
}

#[test]
fn leading_zero_and_slash_key_converge() {
    if !require_root("leading_zero_and_slash_key_converge") {
        return;
    }
    let env = Env::new(
        "[namespaces.s]\n\
         sysctl = { \"net.ipv4.ip_forward\" = \"01\", \"net/ipv4/conf/all/rp_filter\" = 2 }\n",
    );
    env.ok(&["apply"]);
    assert_eq!(sysctl_in("s", "net.ipv4.ip_forward"), "1");
    assert_eq!(sysctl_in("s", "net.ipv4.conf.all.rp_filter"), "2");
    assert_eq!(env.ok(&["plan"]).trim(), "nothing to change");
    let second = env.ok(&["apply"]);
    assert!(!second.contains("set sysctl"), "{second}");
    let status = env.ok(&["status"]);
    assert!(status.contains("in sync"), "{status}");
}

#[test]
fn two_spellings_of_one_key_rejected() {
    if !require_root("two_spellings_of_one_key_rejected") {
        return;
    }
    let env = Env::new(
        "[namespaces.a]\nsysctl = { \"net.ipv4.ip_forward\" = 1, \"net/ipv4/ip_forward\" = 0 }\n",
    );
    let check = env.run(&["check"]);
    assert_eq!(check.status.code(), Some(2));
    assert!(
        stderr(&check).contains("names the same sysctl as \"net.ipv4.ip_forward\""),
        "{}",
        stderr(&check)
    );
    let apply = env.run(&["apply"]);
    assert_eq!(apply.status.code(), Some(2));
    assert!(ip_netns_list().is_empty());
}

#[test]
fn removed_sysctl_is_restored() {
    if !require_root("removed_sysctl_is_restored") {
        return;
    }
    let env = Env::new("[namespaces.s]\nsysctl = { \"net.ipv4.ip_forward\" = 1 }\n");
    env.ok(&["apply"]);
    assert_eq!(sysctl_in("s", "net.ipv4.ip_forward"), "1");

    env.write_config("[namespaces.s]\n");
    let status = env.run(&["status"]);
    let status_text = stdout(&status);
    assert!(
        status_text.contains(
            "drift: s: restore sysctl net.ipv4.ip_forward = 0 (was 1; no longer in the config)"
        ),
        "{status_text}"
    );
    let applied = env.ok(&["apply"]);
    assert!(
        applied.contains("s: restore sysctl net.ipv4.ip_forward = 0"),
        "{applied}"
    );
    assert_eq!(sysctl_in("s", "net.ipv4.ip_forward"), "0");
    assert_eq!(env.ok(&["plan"]).trim(), "nothing to change");

    // Once restored, the key is no longer netnsctl's: a change made outside stays.
    run_ok(
        "ip",
        &[
            "netns",
            "exec",
            "s",
            "sysctl",
            "-w",
            "net.ipv4.ip_forward=1",
        ],
    );
    assert_eq!(env.ok(&["plan"]).trim(), "nothing to change");
}

#[test]
fn invalid_value_rejected_before_any_change() {
    if !require_root("invalid_value_rejected_before_any_change") {
        return;
    }
    let env = Env::new(
        "[namespaces.s]\n\
         sysctl = { \"net.ipv4.conf.all.rp_filter\" = \"+1\", \"net.ipv4.ip_forward\" = 1 }\n",
    );
    let config = env.config.display().to_string();
    let expected = format!(
        "{config}: namespaces.s.sysctl.\"net.ipv4.conf.all.rp_filter\" = \"+1\": \
         the kernel rejected the value: Invalid argument (os error 22); the kernel reads \
         integers as digits with an optional '-', so drop the '+'"
    );

    let check = env.run(&["check"]);
    assert_eq!(check.status.code(), Some(2));
    assert!(stderr(&check).contains(&expected), "{}", stderr(&check));

    let plan = env.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(2));
    assert!(stderr(&plan).contains(&expected), "{}", stderr(&plan));

    let apply = env.run(&["apply"]);
    assert_eq!(apply.status.code(), Some(2));
    assert!(stderr(&apply).contains(&expected), "{}", stderr(&apply));
    assert!(ip_netns_list().is_empty(), "apply created a namespace");
}

#[test]
fn invalid_value_for_existing_namespace_names_the_key() {
    if !require_root("invalid_value_for_existing_namespace_names_the_key") {
        return;
    }
    let env = Env::new("[namespaces.s]\nsysctl = { \"net.ipv4.ip_forward\" = 1 }\n");
    env.ok(&["apply"]);
    env.write_config("[namespaces.s]\nsysctl = { \"net.ipv4.ip_forward\" = \"abc\" }\n");
    let apply = env.run(&["apply"]);
    assert_eq!(apply.status.code(), Some(2));
    assert!(
        stderr(&apply).contains("namespaces.s.sysctl.\"net.ipv4.ip_forward\" = \"abc\""),
        "{}",
        stderr(&apply)
    );
    assert_eq!(sysctl_in("s", "net.ipv4.ip_forward"), "1");
}

#[test]
fn shared_invalid_value_named_per_namespace() {
    if !require_root("shared_invalid_value_named_per_namespace") {
        return;
    }
    // Namespaces with equal settings are checked in one throwaway namespace; the error still
    // names each namespace's key.
    let env = Env::new(
        "[namespaces.a]\nsysctl = { \"net.ipv4.ip_forward\" = \"+1\" }\n\
         [namespaces.b]\nsysctl = { \"net.ipv4.ip_forward\" = \"+1\" }\n\
         [namespaces.c]\nsysctl = { \"net.ipv4.ip_forward\" = 1 }\n",
    );
    let check = env.run(&["check"]);
    assert_eq!(check.status.code(), Some(2));
    let message = stderr(&check);
    assert!(
        message.contains("namespaces.a.sysctl.\"net.ipv4.ip_forward\""),
        "{message}"
    );
    assert!(
        message.contains("namespaces.b.sysctl.\"net.ipv4.ip_forward\""),
        "{message}"
    );
    assert!(!message.contains("namespaces.c."), "{message}");
}
