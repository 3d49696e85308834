//! `netnsctl attach`, the ExecStart= of netns-NAME.service, run in a namespace made by
//! `unshare --net` the way systemd makes one for PrivateNetwork=yes.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{fs_type, netnsctl_bin, require_root, run, run_ok, sysctl_in, Env};

const CONFIG: &str = r#"
[namespaces.vpn]
sysctl = { "net.ipv4.ip_forward" = 1 }
dns = { nameservers = ["10.53.0.1"] }
"#;

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
    let env = Env::new(CONFIG);
    let output = attach_in_new_netns(&env, "vpn");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(fs_type(Path::new("/run/netns/vpn")), "nsfs");
    assert_eq!(sysctl_in("vpn", "net.ipv4.ip_forward"), "1");
    let lo = run_ok(
        "ip",
        &["netns", "exec", "vpn", "ip", "-o", "link", "show", "lo"],
    );
    assert!(lo.contains(",UP"), "{lo}");
    let resolv =
        std::fs::read_to_string("/etc/netns/vpn/resolv.conf").expect("resolv.conf written");
    assert_eq!(resolv, "nameserver 10.53.0.1\n");
    assert!(Path::new("/run/netnsctl/namespaces/vpn.json").exists());

    // The namespace is netnsctl's: apply finds nothing to change, down removes it.
    assert_eq!(env.ok(&["apply"]).trim(), "");
    env.ok(&["down", "vpn"]);
    assert!(!Path::new("/run/netns/vpn").exists());
}

#[test]
fn attach_rejects_foreign_namespace() {
    if !require_root("attach_rejects_foreign_namespace") {
        return;
    }
    let env = Env::new(CONFIG);
    run_ok("ip", &["netns", "add", "vpn"]);
    let output = attach_in_new_netns(&env, "vpn");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    run_ok("ip", &["netns", "delete", "vpn"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("/run/netns/vpn exists and netnsctl did not create it"),
        "{stderr}"
    );
    assert!(stderr.contains("ip netns delete vpn"), "{stderr}");
    assert!(!Path::new("/run/netnsctl/namespaces/vpn.json").exists());
}

#[test]
fn attach_failure_leaves_nothing() {
    if !require_root("attach_failure_leaves_nothing") {
        return;
    }
    let env =
        Env::new("[namespaces.vpn]\nsysctl = { \"net.ipv4.ip_forward\" = \"not-a-number\" }\n");
    let output = attach_in_new_netns(&env, "vpn");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("net.ipv4.ip_forward"), "{stderr}");
    assert!(!Path::new("/run/netns/vpn").exists());
    assert!(!Path::new("/run/netnsctl/namespaces/vpn.json").exists());
    assert!(!Path::new("/etc/netns/vpn").exists());
}

#[test]
fn attach_unknown_namespace_is_invalid() {
    if !require_root("attach_unknown_namespace_is_invalid") {
        return;
    }
    let env = Env::new(CONFIG);
    let output = env.run(&["attach", "other"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("namespace \"other\" is not declared"));
}

#[test]
fn down_from_inside_namespace() {
    if !require_root("down_from_inside_namespace") {
        return;
    }
    let env = Env::new(CONFIG);
    assert_eq!(attach_in_new_netns(&env, "vpn").status.code(), Some(0));
    // ExecStop= runs down inside the namespace it removes; that process does not count.
    let output = run(
        "ip",
        &[
            "netns",
            "exec",
            "vpn",
            netnsctl_bin().to_str().unwrap(),
            "down",
            "vpn",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!Path::new("/run/netns/vpn").exists());
}
