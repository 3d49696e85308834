//! Logs of `netnsctl attach` under a real systemd and journald: the ExecStart= of
//! netns-NAME.service writes to the journal with NAMESPACE, STEP, KEY and REASON fields.
//! systemd boots as PID 1 in a throwaway container (tests/support/systemd.rs).

mod support;

use support::systemd::Container;

const CONFIG: &str = r#"
[namespaces.eco-journal]
sysctl = { "net.ipv4.ip_forward" = 1, "net.eco.missing" = 1 }
"#;

/// Returns the journal entries of netnsctl as JSON objects, one per entry.
fn netnsctl_entries(container: &Container) -> Vec<serde_json::Value> {
    let output = container.run_ok(&["journalctl", "--no-pager", "-t", "netnsctl", "-o", "json"]);
    output
        .lines()
        .map(|line| serde_json::from_str(line).expect("journalctl -o json prints JSON lines"))
        .collect()
}

fn field<'a>(entry: &'a serde_json::Value, name: &str) -> &'a str {
    entry[name].as_str().unwrap_or("")
}

#[test]
fn attach_logs_to_journal() {
    if !support::require_root("attach_logs_to_journal") {
        return;
    }
    let container = Container::boot(
        &[("etc/netnsctl/netnsctl.toml", CONFIG)],
        &[(
            "usr/lib/systemd/system-generators/netnsctl-generator",
            "/usr/local/bin/netnsctl",
        )],
    );
    container.systemctl(&["start", "netns-eco-journal.service"]);
    container.wait_state("netns-eco-journal.service", "active");

    let entries = netnsctl_entries(&container);
    let applied: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|entry| field(entry, "MESSAGE") == "applied")
        .collect();
    assert!(
        !applied.is_empty(),
        "no 'applied' entry; journal:\n{}",
        container.journal()
    );
    for entry in &applied {
        assert_eq!(field(entry, "NAMESPACE"), "eco-journal", "{entry}");
        assert_eq!(field(entry, "PRIORITY"), "6", "{entry}");
        // journald reads the unit from /proc/PID/cgroup when the entry arrives, so a process
        // that has exited by then leaves the field out.
        let unit = field(entry, "_SYSTEMD_UNIT");
        assert!(
            unit.is_empty() || unit == "netns-eco-journal.service",
            "{entry}"
        );
    }
    let steps: Vec<&str> = applied.iter().map(|entry| field(entry, "STEP")).collect();
    assert!(
        steps.contains(&"eco-journal: set sysctl net.ipv4.ip_forward = 1 (was 0)"),
        "{steps:?}"
    );

    let skipped = entries
        .iter()
        .find(|entry| field(entry, "MESSAGE") == "sysctl skipped")
        .unwrap_or_else(|| {
            panic!(
                "no 'sysctl skipped' entry; journal:\n{}",
                container.journal()
            )
        });
    assert_eq!(field(skipped, "KEY"), "net.eco.missing");
    assert_eq!(field(skipped, "REASON"), "does not exist in this namespace");
    assert_eq!(field(skipped, "PRIORITY"), "4");

    // The applied steps are in the journal once, as entries with fields, not again as lines
    // of standard output.
    let stdout_lines: Vec<&str> = entries
        .iter()
        .filter(|entry| field(entry, "_TRANSPORT") == "stdout")
        .map(|entry| field(entry, "MESSAGE"))
        .collect();
    assert!(stdout_lines.is_empty(), "{stdout_lines:?}");
}
