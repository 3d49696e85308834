//! Logs go to the journal when stderr is the journal stream that systemd set up, with the
//! namespace, step, key and reason as journal fields.
//!
//! The test acts as journald: inside the sandbox's private mount namespace it mounts a
//! tmpfs on /run/systemd and binds a datagram socket at /run/systemd/journal/socket, where
//! journald listens for the native protocol (systemd.journal-fields(7), "Native Journal
//! Protocol" in the systemd documentation).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use support::{netnsctl_bin, require_root, run_ok, Env};

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Parses one native-protocol datagram: `NAME=value\n`, or `NAME\n` followed by a 64-bit
/// little-endian length, the value and `\n`.
fn parse_entry(mut data: &[u8]) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    while !data.is_empty() {
        let end = data
            .iter()
            .position(|&b| b == b'\n')
            .expect("field ends in newline");
        let line = &data[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            data = &data[end + 1..];
        } else {
            let name = String::from_utf8_lossy(line).into_owned();
            let rest = &data[end + 1..];
            let length = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
            let value = String::from_utf8_lossy(&rest[8..8 + length]).into_owned();
            fields.insert(name, value);
            data = &rest[8 + length + 1..];
        }
    }
    fields
}

/// Runs `netnsctl apply` with stderr to a file and JOURNAL_STREAM set by `journal_stream`
/// from that file's device and inode. Returns the journal entries and the stderr text.
fn apply_with_journal(
    env: &Env,
    socket: &UnixDatagram,
    journal_stream: impl Fn(u64, u64) -> String,
) -> (Vec<BTreeMap<String, String>>, String) {
    let stderr_path = env.path("stderr");
    let stderr_file = std::fs::File::create(&stderr_path).expect("create stderr file");
    let metadata = stderr_file.metadata().expect("stat stderr file");
    let status = Command::new(netnsctl_bin())
        .args(["apply", "-c"])
        .arg(&env.config)
        .env(
            "JOURNAL_STREAM",
            journal_stream(metadata.dev(), metadata.ino()),
        )
        .env_remove("NETNSCTL_LOG")
        .stdout(Stdio::null())
        .stderr(stderr_file)
        .status()
        .expect("run netnsctl");
    let stderr = std::fs::read_to_string(&stderr_path).expect("read stderr file");
    assert!(status.success(), "netnsctl apply failed: {stderr}");

    socket.set_nonblocking(true).expect("non-blocking socket");
    let mut entries = Vec::new();
    let mut buffer = vec![0u8; 65536];
    while let Ok(length) = socket.recv(&mut buffer) {
        // journald ignores the empty datagram that clients send to probe the socket.
        if length > 0 {
            entries.push(parse_entry(&buffer[..length]));
        }
    }
    (entries, stderr)
}

#[test]
fn logs_go_to_journal_with_fields() {
    if !require_root("logs_go_to_journal_with_fields") {
        return;
    }
    // The sandbox's /run is a private tmpfs, so this directory exists only inside the sandbox.
    std::fs::create_dir_all("/run/systemd").expect("create /run/systemd");
    run_ok("mount", &["-t", "tmpfs", "netnsctl-test", "/run/systemd"]);
    std::fs::create_dir("/run/systemd/journal").expect("create journal directory");
    let socket = UnixDatagram::bind(JOURNAL_SOCKET).expect("bind journal socket");

    let env = Env::new(
        "[namespaces.eco-journal]\nsysctl = { \"net.ipv4.ip_forward\" = 1, \"net.eco.missing\" = 1 }\n",
    );
    let (entries, stderr) = apply_with_journal(&env, &socket, |dev, ino| format!("{dev}:{ino}"));
    assert_eq!(stderr, "", "logs went to stderr instead of the journal");

    let applied: Vec<_> = entries
        .iter()
        .filter(|entry| entry.get("MESSAGE").map(String::as_str) == Some("applied"))
        .collect();
    assert!(!applied.is_empty(), "no 'applied' entry in {entries:#?}");
    for entry in &applied {
        assert_eq!(entry["NAMESPACE"], "eco-journal");
        assert_eq!(entry["PRIORITY"], "6", "applied changes are logged at info");
        assert_eq!(entry["SYSLOG_IDENTIFIER"], "netnsctl");
    }
    let steps: Vec<&str> = applied.iter().map(|entry| entry["STEP"].as_str()).collect();
    assert!(
        steps.contains(&"eco-journal: create namespace"),
        "{steps:?}"
    );
    assert!(
        steps.contains(&"eco-journal: set sysctl net.ipv4.ip_forward = 1"),
        "{steps:?}"
    );

    let skipped = entries
        .iter()
        .find(|entry| entry.get("MESSAGE").map(String::as_str) == Some("sysctl skipped"))
        .unwrap_or_else(|| panic!("no 'sysctl skipped' entry in {entries:#?}"));
    assert_eq!(
        skipped["PRIORITY"], "4",
        "skipped sysctls are logged at warning"
    );
    assert_eq!(skipped["KEY"], "net.eco.missing");
    assert_eq!(skipped["REASON"], "does not exist in this namespace");
    assert_eq!(skipped["NAMESPACE"], "eco-journal");

    // With the namespace in place, the plan skips the sysctl, and apply logs the same event.
    let (entries, stderr) = apply_with_journal(&env, &socket, |dev, ino| format!("{dev}:{ino}"));
    assert_eq!(stderr, "", "logs went to stderr instead of the journal");
    let skipped = entries
        .iter()
        .find(|entry| entry.get("MESSAGE").map(String::as_str) == Some("sysctl skipped"))
        .unwrap_or_else(|| panic!("no 'sysctl skipped' entry on the second apply in {entries:#?}"));
    assert_eq!(skipped["PRIORITY"], "4");
    assert_eq!(skipped["KEY"], "net.eco.missing");
    assert_eq!(skipped["REASON"], "does not exist in this namespace");

    // A JOURNAL_STREAM inherited by a process whose stderr is elsewhere does not count.
    env.ok(&["down", "eco-journal"]);
    let (entries, stderr) =
        apply_with_journal(&env, &socket, |dev, ino| format!("{dev}:{}", ino + 1));
    assert!(entries.is_empty(), "journal got entries: {entries:#?}");
    assert!(
        stderr.contains("sysctl skipped"),
        "stderr lacks the warning: {stderr}"
    );
    env.ok(&["down", "eco-journal"]);
}
