//! The generated units under a real systemd: systemd boots as PID 1 in a throwaway container
//! (tests/support/systemd.rs) with netnsctl at /usr/local/bin/netnsctl, the config at its
//! default path and the generator installed. One container serves every check, in order.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use support::systemd::Container;

/// A namespace name with '-', '.' and '_', joined by a member with NetworkNamespacePath=.
const LAB: &str = "lab-1.x_y";
/// A namespace joined by a member with PrivateNetwork=yes and JoinsNamespaceOf=.
const WEB: &str = "web";

const RULE: &str = "tcp dport 9999 drop";

fn config(lab_nameserver: &str) -> String {
    format!(
        r#"
[namespaces."{LAB}"]
members = ["m-path.service"]
sysctl = {{ "net.ipv4.ip_forward" = 1 }}
nftables = """
table inet filter {{
    chain input {{
        type filter hook input priority 0; policy accept;
        {RULE}
    }}
}}
"""
dns = {{ nameservers = ["{lab_nameserver}"], search = ["lab.test"] }}

[namespaces.{WEB}]
join = "private-network"
members = ["m-joins.service"]
dns = {{ nameservers = ["10.53.0.2"] }}

[namespaces.{WEB}.service.Service]
Environment = "NETNSCTL_LOG=info"
"#
    )
}

const MEMBER_UNIT: &str =
    "[Unit]\nDescription=netnsctl test member\n\n[Service]\nExecStart=/bin/sleep infinity\n";

const CONFIG_PATH: &str = "etc/netnsctl/netnsctl.toml";

/// Files netnsctl generates, as relative path to file contents or "-> symlink target".
fn read_tree(root: &Path) -> BTreeMap<String, String> {
    let mut tree = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("read generated dir")
            .flatten()
        {
            let path = entry.path();
            let kind = entry.file_type().expect("file type");
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).expect("read symlink");
                tree.insert(relative, format!("-> {}", target.display()));
            } else {
                tree.insert(
                    relative,
                    std::fs::read_to_string(&path).expect("read generated file"),
                );
            }
        }
    }
    tree
}

/// Keeps the files netnsctl writes, dropping those of other generators.
fn netnsctl_files(tree: BTreeMap<String, String>) -> BTreeMap<String, String> {
    tree.into_iter()
        .filter(|(path, _)| {
            let file = path.rsplit('/').next().unwrap();
            file == "netnsctl-netns.conf" || file.starts_with("netns-")
        })
        .collect()
}

fn ns_inode(container: &Container, path: &str) -> String {
    container
        .run_ok(&["stat", "-L", "-c", "%i", path])
        .trim()
        .to_owned()
}

fn main_pid(container: &Container, unit: &str) -> String {
    let pid = container.property(unit, "MainPID");
    assert_ne!(pid, "0", "{unit} has no main process");
    pid
}

/// Inode of the network namespace a unit's main process is in.
fn member_netns(container: &Container, unit: &str) -> String {
    let pid = main_pid(container, unit);
    ns_inode(container, &format!("/proc/{pid}/ns/net"))
}

/// /etc/resolv.conf as the unit's main process sees it.
fn member_resolv_conf(container: &Container, unit: &str) -> String {
    let pid = main_pid(container, unit);
    container.run_ok(&["nsenter", "-t", &pid, "-m", "cat", "/etc/resolv.conf"])
}

fn rule_count(container: &Container, ns: &str) -> usize {
    container
        .run_ok(&["ip", "netns", "exec", ns, "nft", "list", "ruleset"])
        .matches(RULE)
        .count()
}

fn check_generator_matches_generate(container: &Container) {
    container.run_ok(&[
        "netnsctl",
        "generate",
        "systemd",
        "--output",
        "/tmp/generated",
    ]);
    let generated = read_tree(&container.path("/tmp/generated"));
    let from_generator = netnsctl_files(read_tree(&container.path("/run/systemd/generator")));
    assert_eq!(generated.len(), 6, "{:?}", generated.keys());
    assert_eq!(from_generator, generated);

    // systemd read the generator's .wants symlinks: the units start with multi-user.target.
    let wants = container.property("multi-user.target", "Wants");
    for ns in [LAB, WEB] {
        let unit = format!("netns-{ns}.service");
        assert!(
            wants.split_whitespace().any(|w| w == unit),
            "{unit} not in {wants}"
        );
    }
}

fn check_verify(container: &Container) {
    let output = container.run(&[
        "systemd-analyze",
        "verify",
        "--man=no",
        &format!("netns-{LAB}.service"),
        &format!("netns-{WEB}.service"),
        "m-path.service",
        "m-joins.service",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    assert_eq!(stderr.trim(), "", "systemd-analyze verify printed warnings");

    // The same call rejects a broken unit, so the check above can fail.
    container.write(
        "/run/systemd/system/broken.service",
        "[Service]\nExecStart=sleep-without-path\n",
    );
    let broken = container.run(&["systemd-analyze", "verify", "--man=no", "broken.service"]);
    assert!(
        !broken.status.success(),
        "systemd-analyze verify accepted a broken unit"
    );
    std::fs::remove_file(container.path("/run/systemd/system/broken.service"))
        .expect("remove broken.service");
}

fn check_started(container: &Container) {
    for unit in [
        format!("netns-{LAB}.service"),
        format!("netns-{WEB}.service"),
        "m-path.service".into(),
        "m-joins.service".into(),
    ] {
        assert_eq!(container.property(&unit, "ActiveState"), "active", "{unit}");
    }
    for ns in [LAB, WEB] {
        let path = format!("/run/netns/{ns}");
        assert_eq!(
            container.run_ok(&["stat", "-f", "-c", "%T", &path]).trim(),
            "nsfs",
            "{path}"
        );
        let lo = container.run_ok(&["ip", "netns", "exec", ns, "ip", "-o", "link", "show", "lo"]);
        assert!(lo.contains(",UP"), "lo is down in {ns}: {lo}");
    }
    let list = container.run(&["ip", "netns", "list"]);
    assert!(list.status.success());
    assert_eq!(
        String::from_utf8_lossy(&list.stderr),
        "",
        "ip netns list printed errors"
    );
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(names.contains(&LAB.to_owned()), "{names:?}");
    assert!(names.contains(&WEB.to_owned()), "{names:?}");

    let forward = container.run_ok(&[
        "ip",
        "netns",
        "exec",
        LAB,
        "sysctl",
        "-n",
        "net.ipv4.ip_forward",
    ]);
    assert_eq!(forward.trim(), "1");
    assert_eq!(rule_count(container, LAB), 1);
}

fn check_members(container: &Container) {
    let lab_ns = ns_inode(container, &format!("/run/netns/{LAB}"));
    let web_ns = ns_inode(container, &format!("/run/netns/{WEB}"));
    assert_ne!(lab_ns, web_ns);
    assert_eq!(
        member_netns(container, "m-path.service"),
        lab_ns,
        "NetworkNamespacePath= member"
    );
    assert_eq!(
        member_netns(container, "m-joins.service"),
        web_ns,
        "JoinsNamespaceOf= member"
    );

    for (unit, ns) in [("m-path.service", LAB), ("m-joins.service", WEB)] {
        let expected = container.run_ok(&["cat", &format!("/etc/netns/{ns}/resolv.conf")]);
        assert!(expected.contains("nameserver 10.53.0."), "{expected}");
        assert_eq!(member_resolv_conf(container, unit), expected, "{unit}");
    }
}

fn check_dns_change(container: &Container) {
    let pid = main_pid(container, "m-path.service");
    container.write(CONFIG_PATH, &config("10.53.0.99"));
    container.run_ok(&["netnsctl", "apply", LAB]);
    let seen = member_resolv_conf(container, "m-path.service");
    assert!(seen.contains("nameserver 10.53.0.99"), "{seen}");
    assert_eq!(
        main_pid(container, "m-path.service"),
        pid,
        "the member was restarted"
    );
    // Applying again changes nothing and loads no second copy of the rules.
    let again = container.run_ok(&["netnsctl", "apply", LAB]);
    assert_eq!(again.trim(), "", "second apply made changes");
    assert_eq!(rule_count(container, LAB), 1);
}

fn check_restart(container: &Container) {
    for (ns, member) in [(LAB, "m-path.service"), (WEB, "m-joins.service")] {
        let unit = format!("netns-{ns}.service");
        let old_pid = main_pid(container, member);
        let old_ns = ns_inode(container, &format!("/run/netns/{ns}"));
        container.systemctl(&["restart", &unit]);
        container.wait_state(&unit, "active");
        container.wait_state(member, "active");

        let new_pid = main_pid(container, member);
        let new_ns = ns_inode(container, &format!("/run/netns/{ns}"));
        assert_ne!(new_pid, old_pid, "{member} was not restarted with {unit}");
        assert_ne!(new_ns, old_ns, "restarting {unit} kept the old namespace");
        assert_eq!(
            member_netns(container, member),
            new_ns,
            "{member} is not in the new namespace"
        );
        assert_eq!(
            container
                .run_ok(&["stat", "-f", "-c", "%T", &format!("/run/netns/{ns}")])
                .trim(),
            "nsfs"
        );
    }
    assert_eq!(rule_count(container, LAB), 1);
    let forward = container.run_ok(&[
        "ip",
        "netns",
        "exec",
        LAB,
        "sysctl",
        "-n",
        "net.ipv4.ip_forward",
    ]);
    assert_eq!(forward.trim(), "1");
    let seen = member_resolv_conf(container, "m-path.service");
    assert!(seen.contains("nameserver 10.53.0.99"), "{seen}");
}

/// Checks that a process outside the members keeps the namespace busy: the stop fails and the
/// namespace stays registered, and the next start replaces the registration.
fn check_stop_with_other_process(container: &Container) {
    let unit = format!("netns-{LAB}.service");
    container.run_ok(&[
        "systemd-run",
        "--unit",
        "other.service",
        "-p",
        &format!("NetworkNamespacePath=/run/netns/{LAB}"),
        "/bin/sleep",
        "infinity",
    ]);
    let old_ns = ns_inode(container, &format!("/run/netns/{LAB}"));
    // systemctl stop returns 0 here; the failed ExecStop= shows in the unit's state.
    container.run(&["systemctl", "stop", &unit]);
    container.wait_state("m-path.service", "inactive");
    assert_eq!(container.property(&unit, "ActiveState"), "failed", "{unit}");
    assert_eq!(ns_inode(container, &format!("/run/netns/{LAB}")), old_ns);
    let journal = container.run_ok(&["journalctl", "--no-pager", "-u", &unit]);
    assert!(journal.contains("process(es) inside"), "{journal}");

    container.systemctl(&["start", "m-path.service"]);
    let new_ns = ns_inode(container, &format!("/run/netns/{LAB}"));
    assert_ne!(new_ns, old_ns, "the start kept the old namespace");
    assert_eq!(member_netns(container, "m-path.service"), new_ns);
    container.systemctl(&["stop", "other.service"]);
}

fn check_stop(container: &Container) {
    container.systemctl(&[
        "stop",
        &format!("netns-{LAB}.service"),
        &format!("netns-{WEB}.service"),
    ]);
    for unit in ["m-path.service", "m-joins.service"] {
        container.wait_state(unit, "inactive");
    }
    for ns in [LAB, WEB] {
        let unit = format!("netns-{ns}.service");
        assert_eq!(
            container.property(&unit, "ActiveState"),
            "inactive",
            "{unit}"
        );
        assert_eq!(container.property(&unit, "Result"), "success", "{unit}");
        assert!(!container
            .path(&format!("/etc/netns/{ns}/resolv.conf"))
            .exists());
        assert!(!container
            .path(&format!("/run/netnsctl/namespaces/{ns}.json"))
            .exists());
    }
    let left: Vec<_> = std::fs::read_dir(container.path("/run/netns"))
        .expect("read /run/netns")
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert!(left.is_empty(), "left in /run/netns: {left:?}");
    let list = container.run_ok(&["ip", "netns", "list"]);
    assert_eq!(list.trim(), "");
}

#[test]
fn namespace_units_under_systemd() {
    if !support::require_root("namespace_units_under_systemd") {
        return;
    }
    let config = config("10.53.0.1");
    let container = Container::boot(
        &[(CONFIG_PATH, &config)],
        &[(
            "usr/lib/systemd/system-generators/netnsctl-generator",
            "/usr/local/bin/netnsctl",
        )],
    );

    check_generator_matches_generate(&container);

    container.run_ok(&[
        "netnsctl",
        "generate",
        "systemd",
        "--output",
        "/run/systemd/system",
    ]);
    container.write("/run/systemd/system/m-path.service", MEMBER_UNIT);
    container.write("/run/systemd/system/m-joins.service", MEMBER_UNIT);
    container.systemctl(&["daemon-reload"]);
    check_verify(&container);

    // Starting the members pulls in their namespace units through BindsTo=.
    container.systemctl(&["start", "m-path.service", "m-joins.service"]);
    check_started(&container);
    check_members(&container);
    check_dns_change(&container);
    check_restart(&container);
    check_stop_with_other_process(&container);
    check_stop(&container);
}
