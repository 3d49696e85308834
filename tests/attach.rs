//! `netnsctl attach`, the ExecStart= of netns-NAME.service, run in a namespace made by
//! `unshare --net` the way systemd makes one for PrivateNetwork=yes.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{fs_type, netnsctl_bin, require_root, run, run_ok, sysctl_in, Env};

/// Returns a config declaring namespace `name`. Each test uses its own name, because under
/// `cargo test` the tests of this file share one sandbox.
fn config(name: &str) -> String {
    format!(
        r#"
[namespaces.{name}]
sysctl = {{ "net.ipv4.ip_forward" = 1 }}
dns = {{ nameservers = ["10.53.0.1"] }}
"#
    )
}

fn netns_path(name: &str) -> String {
    format!("/run/netns/{name}")
}

fn record_path(name: &str) -> String {
    format!("/run/netnsctl/namespaces/{name}.json")
}

/// Runs `netnsctl -c CONFIG attach NAME` in a new network namespace.
fn attach_in_new_netns(env: &Env, name: &str) -> Output {
    let output = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(netnsctl_bin())
        .arg("-c")
        .arg(&env.config)
        .args(["attach", name])
        .output()
        .expect("run unshare");
    eprintln!(
        "$ unshare --net netnsctl attach {name}\n[status {:?}]\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn attach_registers_and_configures() {
    if !require_root("attach_registers_and_configures") {
        return;
    }
    let name = "att-new";
    let env = Env::new(&config(name));
    let output = attach_in_new_netns(&env, name);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(fs_type(Path::new(&netns_path(name))), "nsfs");
    assert_eq!(sysctl_in(name, "net.ipv4.ip_forward"), "1");
    let lo = run_ok(
        "ip",
        &["netns", "exec", name, "ip", "-o", "link", "show", "lo"],
    );
    assert!(lo.contains(",UP"), "{lo}");
    let resolv = std::fs::read_to_string(format!("/etc/netns/{name}/resolv.conf"))
        .expect("resolv.conf written");
    assert_eq!(resolv, "nameserver 10.53.0.1\n");
    assert!(Path::new(&record_path(name)).exists());

    // The namespace is netnsctl's: apply finds nothing to change, down removes it.
    assert_eq!(env.ok(&["apply", name]).trim(), "");
    env.ok(&["down", name]);
    assert!(!Path::new(&netns_path(name)).exists());
}

#[test]
fn attach_again_keeps_registration() {
    if !require_root("attach_again_keeps_registration") {
        return;
    }
    let name = "att-again";
    let env = Env::new(&config(name));
    assert_eq!(attach_in_new_netns(&env, name).status.code(), Some(0));
    let before = support::inode(Path::new(&netns_path(name)));
    // Run inside the registered namespace, as a second ExecStart= run would be.
    let output = run(
        "ip",
        &[
            "netns",
            "exec",
            name,
            netnsctl_bin().to_str().unwrap(),
            "-c",
            env.config.to_str().unwrap(),
            "attach",
            name,
        ],
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(support::inode(Path::new(&netns_path(name))), before);
    env.ok(&["down", name]);
}

#[test]
fn attach_rejects_foreign_namespace() {
    if !require_root("attach_rejects_foreign_namespace") {
        return;
    }
    let name = "att-foreign";
    let env = Env::new(&config(name));
    run_ok("ip", &["netns", "add", name]);
    let output = attach_in_new_netns(&env, name);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    run_ok("ip", &["netns", "delete", name]);
    assert_eq!(output.status.code(), Some(1));
    let expected = format!("{} exists and netnsctl did not create it", netns_path(name));
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains(&format!("ip netns delete {name}")),
        "{stderr}"
    );
    assert!(!Path::new(&record_path(name)).exists());
}

#[test]
fn attach_failure_leaves_nothing() {
    if !require_root("attach_failure_leaves_nothing") {
        return;
    }
    let name = "att-fail";
    let env = Env::new(&format!(
        "[namespaces.{name}]\nsysctl = {{ \"net.ipv4.ip_forward\" = \"not-a-number\" }}\n"
    ));
    let output = attach_in_new_netns(&env, name);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("net.ipv4.ip_forward"), "{stderr}");
    assert!(!Path::new(&netns_path(name)).exists());
    assert!(!Path::new(&record_path(name)).exists());
    assert!(!Path::new(&format!("/etc/netns/{name}")).exists());
}

#[test]
fn attach_unknown_namespace_is_invalid() {
    if !require_root("attach_unknown_namespace_is_invalid") {
        return;
    }
    let env = Env::new(&config("att-known"));
    let output = env.run(&["attach", "att-other"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("namespace \"att-other\" is not declared"),
        "{stderr}"
    );
    assert!(!Path::new(&netns_path("att-other")).exists());
}

#[test]
fn down_from_inside_namespace() {
    if !require_root("down_from_inside_namespace") {
        return;
    }
    let name = "att-down";
    let env = Env::new(&config(name));
    assert_eq!(attach_in_new_netns(&env, name).status.code(), Some(0));
    // ExecStop= runs down inside the namespace it removes; that process does not count.
    let output = run(
        "ip",
        &[
            "netns",
            "exec",
            name,
            netnsctl_bin().to_str().unwrap(),
            "down",
            name,
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!Path::new(&netns_path(name)).exists());
}
