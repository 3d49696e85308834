//! Other people's state: a namespace made with `ip netns add`, a host veth pair and a host nft
//! table that netnsctl did not create survive every netnsctl command, `down --all` included.
//! An adopted namespace is managed, and `down` releases it in place.

mod support;

use std::path::Path;

use support::{require_root, run_ok, Env};

/// Declares its own namespace, and the foreign one by name without adopting it.
const CONFIG: &str = r#"
[namespaces.own-a]
sysctl = { "net.ipv4.ip_default_ttl" = 99 }
nftables = """
table inet own_a {
  chain input { type filter hook input priority 0; policy accept; }
}
"""
dns = { nameservers = ["10.53.0.1"] }

# A veth to the host with a port mapping, so netnsctl loads its own host table next to the
# foreign one.
[[namespaces.own-a.veth]]
name = "eth0"
peer = "ve-own-a"
addresses = ["10.98.0.2/30"]
peer_addresses = ["10.98.0.1/30"]

[[namespaces.own-a.port_mapping]]
protocol = "tcp"
host_port = 8098
port = 80

# The host end's name is taken by the foreign veth: netnsctl must leave that link alone.
[[namespaces.own-a.veth]]
name = "eth1"
peer = "fhost0"

[namespaces.foreign-ns]
sysctl = { "net.ipv4.ip_default_ttl" = 99 }
dns = { nameservers = ["10.53.0.99"] }
"#;

const FOREIGN_RESOLV: &str = "nameserver 10.66.0.1\n";

/// What the other tool made, as independent tools see it.
#[derive(Debug, PartialEq, Eq)]
struct Foreign {
    netns_inode: u64,
    ttl: String,
    resolv_conf: String,
    veth: String,
    host_table: String,
}

fn create_foreign() {
    run_ok("ip", &["netns", "add", "foreign-ns"]);
    std::fs::create_dir_all("/etc/netns/foreign-ns").expect("create /etc/netns/foreign-ns");
    std::fs::write("/etc/netns/foreign-ns/resolv.conf", FOREIGN_RESOLV).expect("write resolv.conf");
    run_ok(
        "ip",
        &[
            "link", "add", "fhost0", "type", "veth", "peer", "name", "fhost1",
        ],
    );
    run_ok("nft", &["add", "table", "inet", "foreign_t"]);
    run_ok(
        "nft",
        &[
            "add",
            "chain",
            "inet",
            "foreign_t",
            "c",
            "{ type filter hook input priority 0; }",
        ],
    );
}

fn read_foreign(context: &str) -> Foreign {
    assert!(
        support::ip_netns_list().contains(&"foreign-ns".to_owned()),
        "{context}: foreign-ns gone from ip netns list"
    );
    let path = Path::new("/run/netns/foreign-ns");
    assert_eq!(
        support::fs_type(path),
        "nsfs",
        "{context}: foreign-ns unmounted"
    );
    Foreign {
        netns_inode: support::inode(path),
        ttl: support::sysctl_in("foreign-ns", "net.ipv4.ip_default_ttl"),
        resolv_conf: std::fs::read_to_string("/etc/netns/foreign-ns/resolv.conf")
            .unwrap_or_else(|err| panic!("{context}: foreign resolv.conf: {err}")),
        veth: run_ok("ip", &["-o", "link", "show", "type", "veth"])
            .lines()
            .map(|line| line.split(':').nth(1).unwrap_or("").trim().to_owned())
            .filter(|name| name.starts_with("fhost"))
            .collect::<Vec<_>>()
            .join(" "),
        host_table: run_ok("nft", &["list", "table", "inet", "foreign_t"]),
    }
}

#[test]
fn foreign_state_survives_every_command() {
    if !require_root("foreign_state_survives_every_command") {
        return;
    }
    create_foreign();
    let env = Env::new(CONFIG);
    let original = read_foreign("before");
    assert_eq!(original.ttl, "64");
    assert!(original.veth.contains("fhost0@fhost1"), "{}", original.veth);

    let commands: &[&[&str]] = &[
        &["check"],
        &["plan"],
        &["plan", "--json"],
        &["status"],
        &["status", "--json"],
        &["apply"],
        &["apply", "foreign-ns"],
        &["status"],
        &["down", "foreign-ns"],
        &["down", "own-a"],
        &["apply"],
        &["down", "--all"],
        &["down", "--all", "--force"],
    ];
    for args in commands {
        let output = env.run(args);
        let context = format!("after `netnsctl {}`", args.join(" "));
        assert_ne!(output.status.code(), Some(2), "{context}: usage error");
        assert_eq!(read_foreign(&context), original, "{context}");
    }

    // apply's warning gives the reason it left the namespace alone.
    let output = env.run(&["apply"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let note = stderr
        .lines()
        .find(|line| line.contains("namespace exists but was not created by netnsctl"))
        .unwrap_or_else(|| panic!("apply did not say why it left foreign-ns alone: {stderr}"));
    assert!(note.contains("foreign-ns"), "{note}");
    let output = env.run(&["down", "foreign-ns"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("foreign-ns: not created by netnsctl"),
        "{stderr}"
    );
    let note = stderr_of(&env.run(&["apply"]))
        .lines()
        .find(|line| line.contains("link fhost0 already exists"))
        .map(str::to_owned);
    assert!(note.is_some(), "apply did not say why it left fhost0 alone");
    let tables = run_ok("nft", &["list", "tables"]);
    assert!(tables.contains("table inet netnsctl"), "{tables}");
    assert!(tables.contains("table inet foreign_t"), "{tables}");

    env.ok(&["down", "--all"]);
    assert_eq!(read_foreign("at the end"), original);
    assert!(!support::ip_netns_list().contains(&"own-a".to_owned()));
    let tables = run_ok("nft", &["list", "tables"]);
    assert!(!tables.contains("table inet netnsctl"), "{tables}");
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn adopted_namespace_managed_then_released() {
    if !require_root("adopted_namespace_managed_then_released") {
        return;
    }
    create_foreign();
    let env = Env::new(&CONFIG.replace(
        "[namespaces.foreign-ns]\n",
        "[namespaces.foreign-ns]\nadopt = true\n",
    ));
    let inode = support::inode(Path::new("/run/netns/foreign-ns"));
    let applied = env.ok(&["apply"]);
    assert!(
        applied.contains("foreign-ns: adopt existing namespace"),
        "{applied}"
    );
    assert_eq!(
        support::inode(Path::new("/run/netns/foreign-ns")),
        inode,
        "adopt replaced the namespace"
    );
    assert_eq!(
        support::sysctl_in("foreign-ns", "net.ipv4.ip_default_ttl"),
        "99"
    );

    // down releases an adopted namespace: netnsctl forgets it and leaves it in place.
    env.ok(&["down", "--all"]);
    assert_eq!(
        support::inode(Path::new("/run/netns/foreign-ns")),
        inode,
        "down removed an adopted namespace"
    );
    assert!(!Path::new("/run/netnsctl/namespaces/foreign-ns.json").exists());
    assert_eq!(
        std::fs::read_to_string("/etc/netns/foreign-ns/resolv.conf").expect("resolv.conf"),
        FOREIGN_RESOLV.replace("10.66.0.1", "10.53.0.99"),
        "resolv.conf as netnsctl last wrote it"
    );
    // The host veth and table were never adopted.
    assert!(run_ok("ip", &["-o", "link"]).contains("fhost0@fhost1"));
    run_ok("nft", &["list", "table", "inet", "foreign_t"]);
}
