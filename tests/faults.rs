//! Faults during apply: nft missing or failing, and kernel errors on one object. The failing
//! namespace is named with the reason, keeps its previous ruleset, the other namespaces still
//! converge, and the exit status is 1.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{require_root, Env};

/// Writes a config over three namespaces: two with a ruleset, one without. `version` goes into
/// each ruleset's table name and the TTL, so each apply is visible.
fn config(version: u32, fail_marker_in_a: bool) -> String {
    let marker = if fail_marker_in_a {
        "# netnsctl-fail-load\n"
    } else {
        ""
    };
    format!(
        r#"
[namespaces.fault-a]
sysctl = {{ "net.ipv4.ip_default_ttl" = {ttl} }}
nftables = """
{marker}table inet fault_a_v{version} {{
  chain input {{ type filter hook input priority 0; policy accept; }}
}}
"""

[namespaces.fault-b]
sysctl = {{ "net.ipv4.ip_default_ttl" = {ttl} }}
nftables = """
table inet fault_b_v{version} {{
  chain input {{ type filter hook input priority 0; policy accept; }}
}}
"""

[namespaces.fault-c]
sysctl = {{ "net.ipv4.ip_default_ttl" = {ttl} }}
dns = {{ nameservers = ["10.53.0.{version}"] }}
"#,
        ttl = 80 + version,
    )
}

fn real_nft() -> PathBuf {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("nft is installed")
}

fn apply_with_nft(env: &Env, nft: &Path) -> Output {
    let output = Command::new(support::netnsctl_bin())
        .args(["apply", "-c"])
        .arg(&env.config)
        .env("NETNSCTL_NFT", nft)
        .output()
        .expect("run netnsctl");
    eprintln!(
        "$ NETNSCTL_NFT={} netnsctl apply\n[status {:?}]\n{}{}",
        nft.display(),
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn tables_in(namespace: &str) -> String {
    support::run_ok("ip", &["netns", "exec", namespace, "nft", "list", "tables"])
}

fn planned_steps(env: &Env) -> Vec<serde_json::Value> {
    let plan: serde_json::Value =
        serde_json::from_str(&env.ok(&["plan", "--json"])).expect("plan --json");
    plan["steps"].as_array().expect("steps").clone()
}

#[test]
fn nft_missing_fails_only_ruleset_namespaces() {
    // The fault goes through the nft binary, which the libnftables build does not run.
    if cfg!(feature = "libnftables") {
        eprintln!("SKIP: nft_missing_fails_only_ruleset_namespaces needs the nft binary path");
        return;
    }
    if !require_root("nft_missing_fails_only_ruleset_namespaces") {
        return;
    }
    let env = Env::new(&config(1, false));
    env.ok(&["apply"]);
    env.write_config(&config(2, false));

    let output = apply_with_nft(&env, Path::new("/nonexistent/nft"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for namespace in ["fault-a", "fault-b"] {
        let line = stderr
            .lines()
            .find(|line| line.starts_with(&format!("error: {namespace}: ")))
            .unwrap_or_else(|| panic!("no error naming {namespace}: {stderr}"));
        assert!(line.contains("/nonexistent/nft: not found"), "{line}");
        assert!(line.contains("previous ruleset stays"), "{line}");
    }
    assert!(!stderr.contains("error: fault-c"), "{stderr}");

    // The previous rulesets stay; everything else converged.
    assert!(tables_in("fault-a").contains("fault_a_v1"));
    assert!(tables_in("fault-b").contains("fault_b_v1"));
    for namespace in ["fault-a", "fault-b", "fault-c"] {
        assert_eq!(
            support::sysctl_in(namespace, "net.ipv4.ip_default_ttl"),
            "82",
            "{namespace}"
        );
    }
    let resolv = std::fs::read_to_string("/etc/netns/fault-c/resolv.conf").expect("resolv.conf");
    assert_eq!(resolv, "nameserver 10.53.0.2\n");

    let remaining: Vec<String> = planned_steps(&env)
        .iter()
        .map(|step| format!("{} {}", step["namespace"], step["action"]))
        .collect();
    assert_eq!(
        remaining,
        [
            "\"fault-a\" \"load-ruleset\"",
            "\"fault-b\" \"load-ruleset\""
        ],
        "only the ruleset loads remain"
    );
    env.ok(&["apply"]);
    assert!(planned_steps(&env).is_empty());
    env.ok(&["down", "--all"]);
}

#[test]
fn nft_failing_on_one_ruleset() {
    // The fault goes through the nft binary, which the libnftables build does not run.
    if cfg!(feature = "libnftables") {
        eprintln!("SKIP: nft_failing_on_one_ruleset needs the nft binary path");
        return;
    }
    if !require_root("nft_failing_on_one_ruleset") {
        return;
    }
    let env = Env::new(&config(1, false));
    env.ok(&["apply"]);
    env.write_config(&config(2, true));

    // An nft that passes `--check` but fails every load whose script has the marker, like a
    // ruleset that checks fine and then fails in the kernel.
    let wrapper = env.path("nft");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             case \" $* \" in *\" --check \"*) exec {nft} \"$@\";; esac\n\
             input=$(cat)\n\
             case \"$input\" in *netnsctl-fail-load*)\n\
             echo 'Error: Could not process rule: simulated kernel failure' >&2; exit 1;;\n\
             esac\n\
             printf '%s\\n' \"$input\" | exec {nft} \"$@\"\n",
            nft = real_nft().display()
        ),
    )
    .expect("write nft wrapper");
    std::fs::set_permissions(&wrapper, PermissionsExt::from_mode(0o755)).expect("chmod");

    let output = apply_with_nft(&env, &wrapper);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|line| line.starts_with("error: fault-a: "))
        .unwrap_or_else(|| panic!("no error naming fault-a: {stderr}"));
    assert!(
        line.contains("simulated kernel failure"),
        "nft's message missing: {line}"
    );
    assert!(!stderr.contains("error: fault-b"), "{stderr}");
    assert!(!stderr.contains("error: fault-c"), "{stderr}");

    let tables_a = tables_in("fault-a");
    assert!(
        tables_a.contains("fault_a_v1"),
        "fault-a lost its ruleset: {tables_a}"
    );
    assert!(!tables_a.contains("fault_a_v2"), "{tables_a}");
    assert!(tables_in("fault-b").contains("fault_b_v2"));
    for namespace in ["fault-a", "fault-b", "fault-c"] {
        assert_eq!(
            support::sysctl_in(namespace, "net.ipv4.ip_default_ttl"),
            "82",
            "{namespace}"
        );
    }
    let steps = planned_steps(&env);
    assert_eq!(steps.len(), 1, "only fault-a's ruleset remains: {steps:?}");
    assert_eq!(steps[0]["namespace"], "fault-a");
    env.ok(&["down", "--all"]);
}

#[test]
fn netlink_error_names_object_and_reason() {
    if !require_root("netlink_error_names_object_and_reason") {
        return;
    }
    // nl-b's route has a gateway no link reaches, and nl-c's IPv6 address goes on a link with
    // IPv6 disabled: the kernel rejects both. nl-a has nothing wrong.
    let env = Env::new(
        r#"
[namespaces.nl-a]
sysctl = { "net.ipv4.ip_default_ttl" = 71 }
[[namespaces.nl-a.veth]]
name = "eth0"
peer = "ve-nl-a"
addresses = ["10.94.0.2/30"]
peer_addresses = ["10.94.0.1/30"]

[namespaces.nl-b]
sysctl = { "net.ipv4.ip_default_ttl" = 72 }
[[namespaces.nl-b.veth]]
name = "eth0"
peer = "ve-nl-b"
addresses = ["10.95.0.2/30"]
peer_addresses = ["10.95.0.1/30"]
[[namespaces.nl-b.route]]
to = "10.99.0.0/24"
via = "10.55.0.1"

[namespaces.nl-c]
sysctl = { "net.ipv6.conf.all.disable_ipv6" = 1, "net.ipv6.conf.default.disable_ipv6" = 1 }
[[namespaces.nl-c.veth]]
name = "eth0"
peer = "ve-nl-c"
addresses = ["10.96.0.2/30", "fd96::2/64"]
peer_addresses = ["10.96.0.1/30"]
"#,
    );
    let output = env.run(&["apply"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 2, "one error per failed object: {errors:?}");
    assert!(
        errors.contains(
            &"error: nl-b: add route 10.99.0.0/24 via 10.55.0.1: Network is unreachable (os error \
              101): namespaces.nl-b.route[0].via = \"10.55.0.1\" is on no network of the links of \
              namespace nl-b; use a gateway inside the network of one of their addresses"
        ),
        "{errors:?}"
    );
    let address_error = errors
        .iter()
        .find(|line| line.starts_with("error: nl-c: "))
        .expect("an error naming nl-c");
    assert!(
        address_error.contains("fd96::2/64 to eth0"),
        "{address_error}"
    );
    assert!(
        address_error.contains("Permission denied"),
        "{address_error}"
    );
    assert!(
        address_error.contains("IPv6 is disabled"),
        "{address_error}"
    );

    // Everything else converged, in the failing namespaces too.
    assert_eq!(support::sysctl_in("nl-a", "net.ipv4.ip_default_ttl"), "71");
    assert_eq!(support::sysctl_in("nl-b", "net.ipv4.ip_default_ttl"), "72");
    let addresses = support::run_ok(
        "ip",
        &["-n", "nl-c", "-o", "address", "show", "dev", "eth0"],
    );
    assert!(addresses.contains("10.96.0.2/30"), "{addresses}");
    let mut steps: Vec<String> = planned_steps(&env)
        .iter()
        .map(|step| format!("{} {}", step["namespace"], step["action"]))
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        ["\"nl-b\" \"add-route\"", "\"nl-c\" \"add-address\""],
        "remaining steps"
    );
    env.ok(&["down", "--all"]);
}
