//! Helpers shared by the integration tests.
//!
//! Tests that need root call [`require_root`] first. The cargo runner (tests/sandbox-runner)
//! puts every test binary in a private network and mount namespace; [`require_root`] refuses to
//! run a root test outside of it, so no test can change the machine's own network state.
#![allow(dead_code)]

pub mod systemd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Returns true when the test may go on as root. Without root it prints a SKIP line and returns
/// false, unless NETNSCTL_REQUIRE_ROOT=1 (set by CI) turns the skip into a failure.
pub fn require_root(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        if std::env::var("NETNSCTL_REQUIRE_ROOT").as_deref() == Ok("1") {
            panic!("{test} needs root and NETNSCTL_REQUIRE_ROOT=1 forbids skipping it");
        }
        eprintln!("SKIP: {test} needs root");
        return false;
    }
    assert_eq!(
        std::env::var("NETNSCTL_SANDBOXED").as_deref(),
        Ok("1"),
        "{test} must run inside tests/sandbox-runner; use `cargo nextest run` or `cargo test`"
    );
    true
}

/// The netnsctl binary under test.
pub fn netnsctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netnsctl"))
}

/// A config file in a temporary directory, and runs of netnsctl against it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    /// Writes `toml` as the config.
    pub fn new(toml: &str) -> Env {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("netnsctl.toml");
        std::fs::write(&config, toml).expect("write config");
        Env { dir, config }
    }

    /// Replaces the config.
    pub fn write_config(&self, toml: &str) {
        std::fs::write(&self.config, toml).expect("write config");
    }

    /// Runs `netnsctl ARGS -c CONFIG`.
    pub fn run(&self, args: &[&str]) -> Output {
        let output = Command::new(netnsctl_bin())
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .output()
            .expect("run netnsctl");
        log_output(&format!("netnsctl {}", args.join(" ")), &output);
        output
    }

    /// Runs `netnsctl -c CONFIG ARGS`. `exec` needs the config first, because its command
    /// takes every argument after `--`.
    pub fn run_config_first(&self, args: &[&str]) -> Output {
        let output = Command::new(netnsctl_bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run netnsctl");
        log_output(&format!("netnsctl -c CONFIG {}", args.join(" ")), &output);
        output
    }

    /// Runs netnsctl and asserts exit status 0.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "netnsctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn log_output(what: &str, output: &Output) {
    eprintln!(
        "$ {what}\n[status {:?}]\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a command and returns its output; panics when it cannot start.
pub fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    log_output(&format!("{program} {}", args.join(" ")), &output);
    output
}

/// Runs a command, asserts success and returns stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `stat -f -c %T PATH`: the file system type name, "nsfs" for an attached namespace.
pub fn fs_type(path: &Path) -> String {
    run_ok("stat", &["-f", "-c", "%T", &path.display().to_string()])
        .trim()
        .to_owned()
}

/// Reads a sysctl inside namespace `ns` with `ip netns exec NS sysctl -n KEY`.
pub fn sysctl_in(ns: &str, key: &str) -> String {
    run_ok("ip", &["netns", "exec", ns, "sysctl", "-n", key])
        .trim()
        .to_owned()
}

/// `nft list ruleset` inside namespace `ns`.
pub fn ruleset_in(ns: &str) -> String {
    run_ok("ip", &["netns", "exec", ns, "nft", "list", "ruleset"])
}

/// Inode of a file.
pub fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat").ino()
}

/// Names listed by `ip netns list`.
pub fn ip_netns_list() -> Vec<String> {
    run_ok("ip", &["netns", "list"])
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

pub mod system;
