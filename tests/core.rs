//! The core job on the real kernel: namespaces, lo, sysctls, rulesets, resolv.conf, and every
//! command. Each test runs in its own network and mount namespace (tests/sandbox-runner).

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};

use support::*;

const CONTRACT: &str = r#"
[namespaces.vpn]
sysctl = { "net.ipv4.ip_forward" = 1, "net.ipv6.conf.all.forwarding" = true, "net.ipv4.conf.all.rp_filter" = "2", "net.core.rmem_max" = 4194304 }
nftables = '''
table inet filter {
  chain input { type filter hook input priority 0; policy drop; iif lo accept; }
}
'''
dns = { nameservers = ["192.0.2.53"], search = ["example.internal"] }

[namespaces.lab-1]
"#;

fn netns_path(name: &str) -> std::path::PathBuf {
    Path::new("/run/netns").join(name)
}

fn resolv_path(name: &str) -> std::path::PathBuf {
    Path::new("/etc/netns").join(name).join("resolv.conf")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn plan_steps(env: &Env) -> Vec<serde_json::Value> {
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["plan", "--json"])).expect("plan --json prints JSON");
    assert_eq!(json["version"], 1);
    json["steps"].as_array().expect("steps is a list").clone()
}

fn lo_flags(ns: &str) -> String {
    run_ok("ip", &["-n", ns, "-o", "link", "show", "lo"])
}

/// Everything a test may have left: /run/netns entries, records and /etc/netns directories.
fn leftovers() -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["/run/netns", "/run/netnsctl/namespaces", "/etc/netns"] {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries {
                found.push(entry.expect("directory entry").path().display().to_string());
            }
        }
    }
    found
}

#[test]
fn contract_config_applies() {
    if !require_root("contract_config_applies") {
        return;
    }
    let env = Env::new(CONTRACT);
    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(printed.contains("vpn: create namespace"), "{printed}");
    assert!(printed.contains("lab-1: create namespace"), "{printed}");

    // 1. Registered like iproute2 does it, alive without a process.
    for name in ["vpn", "lab-1"] {
        assert_eq!(fs_type(&netns_path(name)), "nsfs", "{name}");
    }
    let list = run("ip", &["netns", "list"]);
    assert!(list.status.success());
    assert_eq!(stderr(&list), "", "ip netns list printed an error");
    let names = ip_netns_list();
    assert!(names.contains(&"vpn".to_owned()), "{names:?}");
    assert!(names.contains(&"lab-1".to_owned()), "{names:?}");
    let nsenter = run_ok("nsenter", &["--net=/run/netns/vpn", "cat", "/proc/net/dev"]);
    assert!(nsenter.contains("lo:"), "{nsenter}");

    // 2. Loopback up in both.
    for name in ["vpn", "lab-1"] {
        assert!(lo_flags(name).contains(",UP"), "lo is down in {name}");
    }

    // 3. Sysctls inside the namespace only; the read-only one is skipped with a warning.
    assert_eq!(sysctl_in("vpn", "net.ipv4.ip_forward"), "1");
    assert_eq!(sysctl_in("vpn", "net.ipv6.conf.all.forwarding"), "1");
    assert_eq!(sysctl_in("vpn", "net.ipv4.conf.all.rp_filter"), "2");
    assert_eq!(sysctl_in("lab-1", "net.ipv4.ip_forward"), "0");
    let host_forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host sysctl");
    assert_eq!(
        host_forward.trim(),
        "0",
        "the sandbox's own namespace changed"
    );
    let warnings = stderr(&output);
    assert!(warnings.contains("net.core.rmem_max"), "{warnings}");

    // 4. The ruleset is loaded in vpn only.
    let ruleset = ruleset_in("vpn");
    assert!(ruleset.contains("table inet filter"), "{ruleset}");
    assert!(ruleset.contains("policy drop"), "{ruleset}");
    assert_eq!(ruleset_in("lab-1").trim(), "");

    // 5. resolv.conf: written for vpn, empty for lab-1.
    let resolv = fs::read_to_string(resolv_path("vpn")).expect("vpn resolv.conf");
    assert!(resolv.contains("nameserver 192.0.2.53\n"), "{resolv}");
    assert!(resolv.contains("search example.internal\n"), "{resolv}");
    assert_eq!(
        fs::read_to_string(resolv_path("lab-1")).expect("lab-1 resolv.conf"),
        ""
    );
}

#[test]
fn reapply_changes_nothing() {
    if !require_root("reapply_changes_nothing") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    let ns_inode = inode(&netns_path("vpn"));
    let resolv_inode = inode(&resolv_path("vpn"));
    // A counter in the ruleset proves that a second apply does not reload it: a reload would
    // reset the counter to zero.
    let counted = CONTRACT.replace("iif lo accept;", "iif lo counter accept;");
    env.write_config(&counted);
    env.ok(&["apply"]);
    run_ok(
        "ip",
        &[
            "netns",
            "exec",
            "vpn",
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-q",
            "127.0.0.1",
        ],
    );
    let before = ruleset_in("vpn");
    assert!(!before.contains("packets 0 "), "{before}");

    assert_eq!(plan_steps(&env), Vec::<serde_json::Value>::new());
    let second = env.ok(&["apply"]);
    assert_eq!(second, "", "a converged apply printed changes");
    assert_eq!(ruleset_in("vpn"), before, "the ruleset was reloaded");
    assert_eq!(
        inode(&netns_path("vpn")),
        ns_inode,
        "the namespace was recreated"
    );
    assert_eq!(inode(&resolv_path("vpn")), resolv_inode);
}

#[test]
fn changed_setting_keeps_namespace() {
    if !require_root("changed_setting_keeps_namespace") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    let ns_inode = inode(&netns_path("vpn"));
    env.write_config(
        &CONTRACT.replace("\"net.ipv4.ip_forward\" = 1", "\"net.ipv4.ip_forward\" = 0"),
    );
    let printed = env.ok(&["apply"]);
    assert_eq!(
        printed.trim(),
        "vpn: set sysctl net.ipv4.ip_forward = 0 (was 1)"
    );
    assert_eq!(sysctl_in("vpn", "net.ipv4.ip_forward"), "0");
    assert_eq!(inode(&netns_path("vpn")), ns_inode);
}

#[test]
fn dns_change_keeps_resolv_conf_inode() {
    if !require_root("dns_change_keeps_resolv_conf_inode") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    let before = inode(&resolv_path("vpn"));
    env.write_config(&CONTRACT.replace(
        r#"dns = { nameservers = ["192.0.2.53"], search = ["example.internal"] }"#,
        r#"dns = { nameservers = ["192.0.2.54", "2001:db8::53"], options = ["ndots:2"] }"#,
    ));
    let printed = env.ok(&["apply"]);
    assert_eq!(printed.trim(), "vpn: write /etc/netns/vpn/resolv.conf");
    assert_eq!(
        inode(&resolv_path("vpn")),
        before,
        "resolv.conf was replaced"
    );
    assert_eq!(
        fs::read_to_string(resolv_path("vpn")).expect("resolv.conf"),
        "nameserver 192.0.2.54\nnameserver 2001:db8::53\noptions ndots:2\n"
    );
}

#[test]
fn resolv_conf_reaches_bind_mount() {
    if !require_root("resolv_conf_reaches_bind_mount") {
        return;
    }
    // A service that bind-mounted resolv.conf (as systemd's BindReadOnlyPaths= does) sees
    // every later change, because apply rewrites the file in place.
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    let target = env.path("service-resolv.conf");
    fs::write(&target, "").expect("bind target");
    let source = resolv_path("vpn").display().to_string();
    let target_str = target.display().to_string();
    run_ok("mount", &["--bind", &source, &target_str]);
    env.write_config(&CONTRACT.replace("192.0.2.53", "192.0.2.99"));
    env.ok(&["apply"]);
    let seen = fs::read_to_string(&target).expect("bind-mounted resolv.conf");
    run_ok("umount", &[&target_str]);
    assert!(seen.contains("nameserver 192.0.2.99"), "{seen}");
}

#[test]
fn resolv_conf_symlink_not_followed() {
    if !require_root("resolv_conf_symlink_not_followed") {
        return;
    }
    let env = Env::new(CONTRACT);
    let victim = env.path("victim");
    fs::write(&victim, "untouched\n").expect("victim file");
    fs::create_dir_all("/etc/netns/vpn").expect("/etc/netns/vpn");
    symlink(&victim, resolv_path("vpn")).expect("plant symlink");
    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("resolv.conf"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "untouched\n");
    // The other namespace still converged.
    assert_eq!(fs_type(&netns_path("lab-1")), "nsfs");
}

#[test]
fn nftables_file_is_loaded() {
    if !require_root("nftables_file_is_loaded") {
        return;
    }
    let env = Env::new("");
    let rules = env.path("web.nft");
    fs::write(
        &rules,
        "table ip web {\n  chain output { type filter hook output priority 0; }\n}\n",
    )
    .expect("ruleset file");
    env.write_config(&format!(
        "[namespaces.web]\nnftables_file = \"{}\"\n",
        rules.display()
    ));
    let printed = env.ok(&["apply"]);
    assert!(
        printed.contains(&format!("from {}", rules.display())),
        "{printed}"
    );
    assert!(ruleset_in("web").contains("table ip web"));

    // Dropping the key flushes what netnsctl loaded.
    env.write_config("[namespaces.web]\n");
    let printed = env.ok(&["apply"]);
    assert_eq!(printed.trim(), "web: flush nftables ruleset");
    assert_eq!(ruleset_in("web").trim(), "");
}

#[test]
fn ruleset_error_keeps_previous_ruleset() {
    if !require_root("ruleset_error_keeps_previous_ruleset") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    let before = ruleset_in("vpn");
    env.write_config(&CONTRACT.replace("policy drop;", "policy dorp;"));
    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    // nft's own message, pointing at the config file and the line inside the ruleset.
    assert!(message.contains("namespaces.vpn.nftables"), "{message}");
    // Line 2 of the ruleset text: TOML drops the newline right after the opening quotes.
    assert!(
        message.contains("namespaces.vpn.nftables:2:"),
        "no line number: {message}"
    );
    assert!(message.contains("dorp"), "{message}");
    assert_eq!(ruleset_in("vpn"), before);
}

#[test]
fn nftables_from_host_copies_ruleset() {
    if !require_root("nftables_from_host_copies_ruleset") {
        return;
    }
    // The sandbox's own namespace plays the host.
    run_ok("nft", &["add table inet hostcopy; add chain inet hostcopy c { type filter hook input priority 0; }"]);
    let env = Env::new("[namespaces.copy]\nnftables_from_host = true\n");
    env.ok(&["apply"]);
    let inside = ruleset_in("copy");
    assert!(inside.contains("table inet hostcopy"), "{inside}");
    assert!(inside.contains("chain c"), "{inside}");
}

#[test]
fn inherit_host_sysctl_reads_sysctl_d() {
    if !require_root("inherit_host_sysctl_reads_sysctl_d") {
        return;
    }
    // /etc is an overlay inside the sandbox, so this file never reaches the machine.
    fs::create_dir_all("/etc/sysctl.d").expect("/etc/sysctl.d");
    fs::write(
        "/etc/sysctl.d/99-netnsctl-test.conf",
        "net.ipv4.ip_forward = 1\nnet.ipv4.tcp_syncookies = 0\nkernel.panic = 5\n",
    )
    .expect("sysctl.d file");
    let env = Env::new(
        "[namespaces.inherit]\ninherit_host_sysctl = true\n\
         sysctl = { \"net.ipv4.tcp_syncookies\" = 2 }\n",
    );
    env.ok(&["apply"]);
    assert_eq!(sysctl_in("inherit", "net.ipv4.ip_forward"), "1");
    // The explicit entry wins over the host's file.
    assert_eq!(sysctl_in("inherit", "net.ipv4.tcp_syncookies"), "2");
    // kernel.* keys are global and never applied.
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/panic")
            .expect("kernel.panic")
            .trim(),
        run_ok("sysctl", &["-n", "kernel.panic"]).trim()
    );
}

#[test]
fn foreign_namespace_left_alone() {
    if !require_root("foreign_namespace_left_alone") {
        return;
    }
    run_ok("ip", &["netns", "add", "vpn"]);
    let foreign = inode(&netns_path("vpn"));
    let env = Env::new(CONTRACT);
    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not created by netnsctl"),
        "{}",
        stderr(&output)
    );
    assert!(
        !lo_flags("vpn").contains(",UP"),
        "netnsctl changed a foreign namespace"
    );
    assert_eq!(ruleset_in("vpn").trim(), "");

    let status = env.ok(&["status"]);
    assert!(status.contains("vpn: present, not owned"), "{status}");

    env.ok(&["down", "--all"]);
    assert_eq!(
        inode(&netns_path("vpn")),
        foreign,
        "down --all removed a foreign namespace"
    );
    let refused = env.run(&["down", "vpn"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(fs_type(&netns_path("vpn")), "nsfs");
}

#[test]
fn adopt_takes_over_namespace() {
    if !require_root("adopt_takes_over_namespace") {
        return;
    }
    run_ok("ip", &["netns", "add", "vpn"]);
    let foreign = inode(&netns_path("vpn"));
    let env = Env::new(&CONTRACT.replace("[namespaces.vpn]", "[namespaces.vpn]\nadopt = true"));
    let printed = env.ok(&["apply"]);
    assert!(
        printed.contains("vpn: adopt existing namespace"),
        "{printed}"
    );
    assert_eq!(
        inode(&netns_path("vpn")),
        foreign,
        "adopt recreated the namespace"
    );
    assert!(lo_flags("vpn").contains(",UP"));
    assert!(ruleset_in("vpn").contains("policy drop"));
}

#[test]
fn plan_lists_steps_without_changing() {
    if !require_root("plan_lists_steps_without_changing") {
        return;
    }
    let env = Env::new(CONTRACT);
    let steps = plan_steps(&env);
    let actions: Vec<&str> = steps
        .iter()
        .map(|s| s["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions.first(), Some(&"create-namespace"));
    assert!(actions.contains(&"load-ruleset"), "{actions:?}");
    assert!(actions.contains(&"write-resolv-conf"), "{actions:?}");
    assert_eq!(leftovers(), Vec::<String>::new(), "plan changed the system");
    let text = env.ok(&["plan"]);
    assert!(text.contains("vpn: create namespace"), "{text}");
    env.ok(&["apply"]);
    assert_eq!(plan_steps(&env), Vec::<serde_json::Value>::new());
}

#[test]
fn status_reports_drift() {
    if !require_root("status_reports_drift") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    let status = env.ok(&["status"]);
    assert!(
        status.contains("vpn: present, owned, in sync, 0 process(es)"),
        "{status}"
    );
    run_ok(
        "ip",
        &[
            "netns",
            "exec",
            "vpn",
            "sysctl",
            "-w",
            "net.ipv4.ip_forward=0",
        ],
    );
    run_ok("ip", &["-n", "vpn", "link", "set", "lo", "down"]);
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--json"])).expect("status --json");
    let vpn = json["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .find(|ns| ns["name"] == "vpn")
        .expect("vpn in status")
        .clone();
    assert_eq!(vpn["in_sync"], false);
    let drift = vpn["drift"].as_array().expect("drift").len();
    assert_eq!(drift, 2, "{vpn}");
    env.ok(&["apply"]);
    assert_eq!(sysctl_in("vpn", "net.ipv4.ip_forward"), "1");
    assert!(lo_flags("vpn").contains(",UP"));

    env.write_config(&format!("{CONTRACT}\n[namespaces.later]\n"));
    let status = env.ok(&["status"]);
    assert!(status.contains("later: missing"), "{status}");
}

#[test]
fn status_names_undeclared_namespace() {
    if !require_root("status_names_undeclared_namespace") {
        return;
    }
    let env = Env::new("[namespaces.kept]\n[namespaces.gone]\n");
    env.ok(&["apply"]);
    env.write_config("[namespaces.kept]\n");
    let status = env.ok(&["status", "gone"]);
    assert!(
        status.contains("gone: present, owned, not managed"),
        "{status}"
    );
    assert!(status.contains("netnsctl down gone"), "{status}");
    assert!(!status.contains("kept:"), "{status}");
    let both = env.ok(&["status", "kept", "gone"]);
    assert!(both.contains("kept: present, owned, in sync"), "{both}");
    assert!(both.contains("gone: present, owned, not managed"), "{both}");
    // A name that is neither declared nor recorded is still an error.
    let output = env.run(&["status", "nope"]);
    assert_eq!(output.status.code(), Some(2));
    env.ok(&["down", "kept", "gone"]);
}

#[test]
fn apply_named_namespace_only() {
    if !require_root("apply_named_namespace_only") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply", "lab-1"]);
    assert_eq!(fs_type(&netns_path("lab-1")), "nsfs");
    assert!(!netns_path("vpn").exists());
    let output = env.run(&["apply", "nope"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("\"nope\" is not declared"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn down_removes_what_it_made() {
    if !require_root("down_removes_what_it_made") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    let printed = env.ok(&["down", "vpn"]);
    assert_eq!(printed.trim(), "vpn: removed namespace");
    assert!(!netns_path("vpn").exists());
    assert!(!Path::new("/etc/netns/vpn").exists());
    assert!(!Path::new("/run/netnsctl/namespaces/vpn.json").exists());
    assert_eq!(fs_type(&netns_path("lab-1")), "nsfs");
    env.ok(&["down", "--all"]);
    assert_eq!(leftovers(), Vec::<String>::new());
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains("/run/netns/"),
        "a namespace mount stayed:\n{mounts}"
    );
    assert_eq!(ip_netns_list(), Vec::<String>::new());
}

#[test]
fn down_refuses_with_process_inside() {
    if !require_root("down_refuses_with_process_inside") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    let mut sleeper = Command::new(netnsctl_bin())
        .args(["exec", "vpn", "--", "sleep", "300"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start sleep inside vpn");
    // The process is inside the namespace once `ip netns pids` lists it.
    let pid = loop {
        let pids = run_ok("ip", &["netns", "pids", "vpn"]);
        if let Some(pid) = pids.split_whitespace().next() {
            break pid.to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let refused = env.run(&["down", "vpn"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(message.contains(&pid), "PID {pid} not listed: {message}");
    assert!(message.contains("sleep"), "command not listed: {message}");
    assert!(message.contains("--force"), "{message}");
    assert_eq!(fs_type(&netns_path("vpn")), "nsfs");

    let mut sleeper = Command::new(netnsctl_bin())
        .args(["exec", "vpn", "--", "sleep", "300"])
        .spawn()
        .expect("start sleep inside vpn");
    while run_ok("ip", &["netns", "pids", "vpn"]).trim().is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let forced = env.run(&["down", "--force", "vpn"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert!(!netns_path("vpn").exists());
}

#[test]
fn bad_config_leaves_no_trace() {
    if !require_root("bad_config_leaves_no_trace") {
        return;
    }
    let before_ruleset = run_ok("nft", &["list", "ruleset"]);
    let env = Env::new(&format!(
        "{CONTRACT}\n[namespaces.\"a/b\"]\n[namespaces.ok]\nsysctl = {{ \"kernel.pid_max\" = 1 }}\n\
         [namespaces.file]\nnftables_file = \"/nonexistent/rules.nft\"\n"
    ));
    for command in [&["apply"][..], &["plan"], &["check"], &["status"]] {
        let output = env.run(command);
        assert_eq!(output.status.code(), Some(2), "{command:?}");
        let message = stderr(&output);
        let file = env.config.display().to_string();
        assert!(
            message.contains(&format!("{file}: namespaces.\"a/b\"")),
            "{message}"
        );
        assert!(message.contains("kernel.pid_max"), "{message}");
        assert!(message.contains("/nonexistent/rules.nft"), "{message}");
    }
    assert_eq!(leftovers(), Vec::<String>::new());
    assert_eq!(run_ok("nft", &["list", "ruleset"]), before_ruleset);
    assert_eq!(ip_netns_list(), Vec::<String>::new());
}

#[test]
fn check_validates_rulesets() {
    if !require_root("check_validates_rulesets") {
        return;
    }
    let env = Env::new(CONTRACT);
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["check", "--json"])).expect("check --json");
    assert_eq!(json["valid"], true);
    assert_eq!(json["version"], 1);
    env.write_config(&CONTRACT.replace("iif lo accept", "iif lo acept"));
    let output = env.run(&["check", "--json"]);
    assert_eq!(output.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("check --json");
    assert_eq!(json["valid"], false);
    let errors = json["errors"].to_string();
    assert!(errors.contains("acept"), "{errors}");
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn exec_enters_namespace_like_ip_netns() {
    if !require_root("exec_enters_namespace_like_ip_netns") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    let exec = |args: &[&str]| {
        let output = Command::new(netnsctl_bin())
            .arg("exec")
            .args(args)
            .output()
            .expect("netnsctl exec");
        (output.status.code(), stdout(&output), stderr(&output))
    };
    let (code, resolv, _) = exec(&["vpn", "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(code, Some(0));
    assert!(resolv.contains("nameserver 192.0.2.53"), "{resolv}");
    // A fresh /sys shows the namespace's links only.
    let (_, links, _) = exec(&["vpn", "--", "ls", "/sys/class/net"]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    let (_, net, _) = exec(&["vpn", "--", "readlink", "/proc/self/ns/net"]);
    let expected = format!("net:[{}]", inode(&netns_path("vpn")));
    assert_eq!(net.trim(), expected);
    // The exit status of the command comes back.
    let (code, _, _) = exec(&["vpn", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code, Some(7));
    let (code, _, message) = exec(&["vpn", "--", "/nonexistent/command"]);
    assert_eq!(code, Some(127));
    assert!(message.contains("/nonexistent/command"), "{message}");
    let (code, _, message) = exec(&["missing", "--", "true"]);
    assert_eq!(code, Some(1));
    assert!(message.contains("missing"), "{message}");
    // The mounts stay private to the command.
    let host_resolv = fs::read("/etc/resolv.conf").unwrap_or_default();
    assert!(!String::from_utf8_lossy(&host_resolv).contains("192.0.2.53"));
}

#[test]
fn exec_user_drops_root() {
    if !require_root("exec_user_drops_root") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    let output = Command::new(netnsctl_bin())
        .args([
            "exec",
            "vpn",
            "--user",
            "nobody",
            "--",
            "cat",
            "/proc/self/status",
        ])
        .output()
        .expect("netnsctl exec --user");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let status = stdout(&output);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(field("Uid:"), "65534 65534 65534 65534");
    assert_eq!(field("Gid:"), "65534 65534 65534 65534");
    assert!(
        !field("Groups:").split(' ').any(|group| group == "0"),
        "{status}"
    );
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("CapPrm:"), "0000000000000000");
    let unknown = Command::new(netnsctl_bin())
        .args(["exec", "vpn", "--user", "no-such-user-x", "--", "true"])
        .output()
        .expect("netnsctl exec --user");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no-such-user-x"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn lock_serializes_runs() {
    if !require_root("lock_serializes_runs") {
        return;
    }
    let env = Env::new(CONTRACT);
    // Hold the lock with flock(1) the way a running netnsctl does.
    fs::create_dir_all("/run/netnsctl").expect("state dir");
    let mut holder = Command::new("flock")
        .args(["--no-fork", "/run/netnsctl/lock", "sleep", "300"])
        .spawn()
        .expect("flock");
    while Command::new("flock")
        .args(["-n", "/run/netnsctl/lock", "true"])
        .status()
        .expect("flock -n")
        .success()
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = env.run(&["apply", "--lock-timeout", "1"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("timed out"), "{}", stderr(&output));
    assert_eq!(leftovers(), Vec::<String>::new());
    env.ok(&["apply"]);
}

#[test]
fn usage_errors_exit_2() {
    let output = Command::new(netnsctl_bin())
        .arg("no-such-command")
        .output()
        .expect("netnsctl");
    assert_eq!(output.status.code(), Some(2));
    let help = Command::new(netnsctl_bin())
        .arg("--help")
        .output()
        .expect("netnsctl --help");
    let text = stdout(&help);
    assert!(text.contains("Exit status"), "{text}");
    for command in ["apply", "plan", "status", "down", "exec", "check"] {
        assert!(text.contains(command), "--help lacks {command}");
    }
}

#[test]
fn namespace_recreated_elsewhere_is_not_owned() {
    if !require_root("namespace_recreated_elsewhere_is_not_owned") {
        return;
    }
    let env = Env::new(CONTRACT);
    env.ok(&["apply"]);
    // Someone deletes netnsctl's namespace and registers another one under the same name, with
    // a ruleset load that brings the nft generation back to the recorded value.
    run_ok("ip", &["netns", "delete", "vpn"]);
    run_ok("ip", &["netns", "add", "vpn"]);
    run_ok("ip", &["netns", "exec", "vpn", "nft", "add table ip other"]);
    let foreign = inode(&netns_path("vpn"));

    let status = env.ok(&["status"]);
    assert!(status.contains("vpn: present, not owned"), "{status}");
    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("not the one netnsctl created"),
        "{}",
        stderr(&output)
    );
    assert!(
        !ruleset_in("vpn").contains("policy drop"),
        "netnsctl changed the new namespace"
    );

    let output = env.run(&["down", "--all"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        inode(&netns_path("vpn")),
        foreign,
        "down removed a namespace it did not create"
    );
    assert!(!Path::new("/run/netnsctl/namespaces/vpn.json").exists());
}

#[test]
fn down_releases_adopted_namespace() {
    if !require_root("down_releases_adopted_namespace") {
        return;
    }
    run_ok("ip", &["netns", "add", "vpn"]);
    let foreign = inode(&netns_path("vpn"));
    let env = Env::new(&CONTRACT.replace("[namespaces.vpn]", "[namespaces.vpn]\nadopt = true"));
    env.ok(&["apply"]);
    let output = env.run(&["down", "--all"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("vpn: adopted"),
        "{}",
        stderr(&output)
    );
    assert_eq!(inode(&netns_path("vpn")), foreign);
    assert!(!Path::new("/run/netnsctl/namespaces/vpn.json").exists());
    assert!(!netns_path("lab-1").exists());
}

#[test]
fn own_namespace_is_never_managed() {
    if !require_root("own_namespace_is_never_managed") {
        return;
    }
    // The sandbox's namespace plays the host: mount it at /run/netns/vpn as a stray tool might.
    fs::create_dir_all("/run/netns").expect("/run/netns");
    fs::write(netns_path("vpn"), "").expect("mount point");
    run_ok("mount", &["--bind", "/proc/self/ns/net", "/run/netns/vpn"]);
    let env = Env::new(&CONTRACT.replace("[namespaces.vpn]", "[namespaces.vpn]\nadopt = true"));
    let output = env.run(&["apply"]);
    assert!(
        stderr(&output).contains("host's network namespace"),
        "{}",
        stderr(&output)
    );
    let host_forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("ip_forward");
    assert_eq!(host_forward.trim(), "0");
    assert!(!run_ok("nft", &["list", "ruleset"]).contains("policy drop"));
    env.ok(&["down", "--all"]);
    assert_eq!(fs_type(&netns_path("vpn")), "nsfs");
    run_ok("umount", &["/run/netns/vpn"]);
}

#[test]
fn included_file_change_reloads_ruleset() {
    if !require_root("included_file_change_reloads_ruleset") {
        return;
    }
    let env = Env::new("");
    let included = env.path("chains.nft");
    let main = env.path("main.nft");
    fs::write(
        &included,
        "table ip inc {\n  chain a { type filter hook input priority 0; }\n}\n",
    )
    .expect("included file");
    fs::write(&main, format!("include \"{}\"\n", included.display())).expect("main file");
    env.write_config(&format!(
        "[namespaces.inc]\nnftables_file = \"{}\"\n",
        main.display()
    ));
    env.ok(&["apply"]);
    assert!(ruleset_in("inc").contains("chain a"));
    assert_eq!(plan_steps(&env), Vec::<serde_json::Value>::new());

    fs::write(
        &included,
        "table ip inc {\n  chain b { type filter hook input priority 0; }\n}\n",
    )
    .expect("included file");
    let printed = env.ok(&["apply"]);
    assert!(printed.contains("inc: load nftables ruleset"), "{printed}");
    let ruleset = ruleset_in("inc");
    assert!(ruleset.contains("chain b"), "{ruleset}");
    assert!(!ruleset.contains("chain a"), "{ruleset}");
}

#[test]
fn host_ruleset_copy_settles() {
    if !require_root("host_ruleset_copy_settles") {
        return;
    }
    run_ok("nft", &["add table inet hostcopy; add chain inet hostcopy c { type filter hook output priority 0; }; add rule inet hostcopy c counter"]);
    let env = Env::new("[namespaces.copy]\nnftables_from_host = true\n");
    env.ok(&["apply"]);
    // Traffic in the host namespace moves the host's counter; the copy must not follow it.
    run_ok("ping", &["-c", "2", "-i", "0.2", "-q", "127.0.0.1"]);
    assert_eq!(plan_steps(&env), Vec::<serde_json::Value>::new());
}

#[test]
fn fifo_instead_of_file_is_rejected() {
    if !require_root("fifo_instead_of_file_is_rejected") {
        return;
    }
    let env = Env::new("");
    let fifo = env.path("rules.nft");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    env.write_config(&format!(
        "[namespaces.f]\nnftables_file = \"{}\"\n",
        fifo.display()
    ));
    let output = env.run(&["check"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not a regular file"),
        "{}",
        stderr(&output)
    );

    env.write_config("[namespaces.f]\n");
    env.ok(&["apply"]);
    fs::remove_file(resolv_path("f")).expect("remove resolv.conf");
    nix::unistd::mkfifo(
        &resolv_path("f"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo");
    let output = env.run(&["status"]);
    assert!(
        stderr(&output).contains("not a regular file")
            || stdout(&output).contains("not a regular file"),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn lock_timeout_out_of_range_is_usage_error() {
    for value in ["inf", "nan", "1e20", "-5"] {
        let output = Command::new(netnsctl_bin())
            .args(["check", "-c", "/nonexistent.toml", "--lock-timeout"])
            .arg(value)
            .output()
            .expect("netnsctl");
        assert_eq!(output.status.code(), Some(2), "--lock-timeout {value}");
    }
}

#[test]
fn exec_user_accepts_numeric_id() {
    if !require_root("exec_user_accepts_numeric_id") {
        return;
    }
    let env = Env::new("[namespaces.n]\n");
    env.ok(&["apply"]);
    let output = Command::new(netnsctl_bin())
        .args(["exec", "n", "--user", "65534", "--", "id", "-u"])
        .output()
        .expect("netnsctl exec");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "65534");
}

#[test]
fn quiet_apply_prints_nothing() {
    if !require_root("quiet_apply_prints_nothing") {
        return;
    }
    let env = Env::new(CONTRACT);
    let output = env.run(&["-q", "apply"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), "");
    assert_eq!(fs_type(&netns_path("vpn")), "nsfs");
}

#[test]
fn plan_rejects_bad_ruleset() {
    if !require_root("plan_rejects_bad_ruleset") {
        return;
    }
    let env = Env::new(&CONTRACT.replace("policy drop;", "policy dorp;"));
    let output = env.run(&["plan"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("dorp"), "{}", stderr(&output));
}
