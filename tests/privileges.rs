//! Privileges: `exec --user` drops to the user for good, and running without root or without
//! the needed capabilities gives one clear message.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use support::{require_root, run, run_ok, Env};

const CONFIG: &str = "[namespaces.priv-a]\n";

/// uid and gid of `nobody` and `nogroup` on Debian and most distributions.
const NOBODY: &str = "65534";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Parses /proc/PID/status text into its fields.
fn status_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| {
            (
                key.to_owned(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

/// Runs netnsctl through `setpriv ARGS`, as a test tool that changes credentials.
fn netnsctl_via_setpriv(setpriv: &[&str], args: &[&str]) -> Output {
    let output = Command::new("setpriv")
        .args(setpriv)
        .arg(support::netnsctl_bin())
        .args(args)
        .output()
        .expect("run setpriv");
    eprintln!(
        "$ setpriv {} netnsctl {}\n[status {:?}]\n{}{}",
        setpriv.join(" "),
        args.join(" "),
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    output
}

#[test]
fn exec_user_drops_everything() {
    if !require_root("exec_user_drops_everything") {
        return;
    }
    let env = Env::new(CONFIG);
    env.ok(&["apply"]);
    let config = env.config.display().to_string();

    // Start with extra supplementary groups, so dropping them is visible.
    let output = netnsctl_via_setpriv(
        &["--groups", "4,27,100"],
        &[
            "exec",
            "priv-a",
            "--user",
            "nobody",
            "-c",
            &config,
            "--",
            "cat",
            "/proc/self/status",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let fields = status_fields(&String::from_utf8_lossy(&output.stdout));
    let all_nobody = [NOBODY; 4].join(" ");
    assert_eq!(
        fields["Uid"], all_nobody,
        "real, effective, saved and fs uid"
    );
    assert_eq!(
        fields["Gid"], all_nobody,
        "real, effective, saved and fs gid"
    );
    assert_eq!(fields["Groups"], NOBODY, "supplementary groups");
    for capability_set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(
            fields[capability_set], "0000000000000000",
            "{capability_set}"
        );
    }

    // The command runs in the namespace, not in the test's.
    let output = env.run_config_first(&[
        "exec",
        "priv-a",
        "--user",
        "nobody",
        "--",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let inside = String::from_utf8_lossy(&output.stdout);
    let inode = support::inode(Path::new("/run/netns/priv-a"));
    assert_eq!(inside.trim(), format!("net:[{inode}]"));
}

#[test]
fn exec_user_cannot_regain_root() {
    if !require_root("exec_user_cannot_regain_root") {
        return;
    }
    let env = Env::new(CONFIG);
    env.ok(&["apply"]);
    for attempt in [
        &["setpriv", "--reuid=0", "--regid=0", "true"][..],
        &["setpriv", "--groups", "0", "true"][..],
        &["unshare", "--net", "true"][..],
        &["ip", "link", "add", "priv-x", "type", "dummy"][..],
    ] {
        let mut args = vec!["exec", "priv-a", "--user", "nobody", "--"];
        args.extend_from_slice(attempt);
        let output = env.run_config_first(&args);
        assert_ne!(
            output.status.code(),
            Some(0),
            "{attempt:?} succeeded as nobody"
        );
        assert!(
            !stderr(&output).contains("netnsctl"),
            "netnsctl itself failed: {}",
            stderr(&output)
        );
    }
    let links = run_ok("ip", &["netns", "exec", "priv-a", "ip", "-o", "link"]);
    assert!(
        !links.contains("priv-x"),
        "a link was created as nobody: {links}"
    );
}

#[test]
fn exec_user_drop_order() {
    if !require_root("exec_user_drop_order") {
        return;
    }
    let env = Env::new(CONFIG);
    env.ok(&["apply"]);

    let trace = env.path("strace.log");
    let bin = support::netnsctl_bin().display().to_string();
    let config = env.config.display().to_string();
    let trace_arg = trace.display().to_string();
    run_ok(
        "strace",
        &[
            "-f",
            "-o",
            &trace_arg,
            "-e",
            "trace=setgroups,setgid,setuid,setresgid,setresuid",
            &bin,
            "exec",
            "priv-a",
            "--user",
            "nobody",
            "-c",
            &config,
            "--",
            "true",
        ],
    );

    let text = std::fs::read_to_string(&trace).expect("read strace log");
    let calls: Vec<&str> = text
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter_map(|call| call.split('(').next())
        .collect();
    let first = |name: &str| {
        calls
            .iter()
            .position(|call| *call == name)
            .unwrap_or_else(|| panic!("{name} not called: {calls:?}"))
    };
    assert!(
        first("setgroups") < first("setgid"),
        "groups before gid: {calls:?}"
    );
    assert!(
        first("setgid") < first("setuid"),
        "gid before uid: {calls:?}"
    );
}

#[test]
fn exec_unknown_user_runs_nothing() {
    if !require_root("exec_unknown_user_runs_nothing") {
        return;
    }
    let env = Env::new(CONFIG);
    env.ok(&["apply"]);
    let marker = env.path("ran");
    let touch = format!("touch {}", marker.display());
    let output = env.run_config_first(&[
        "exec",
        "priv-a",
        "--user",
        "no-such-user-netnsctl",
        "--",
        "sh",
        "-c",
        &touch,
    ]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown user is a usage error"
    );
    assert!(
        stderr(&output).contains("\"no-such-user-netnsctl\" not found"),
        "{}",
        stderr(&output)
    );
    assert!(
        !marker.exists(),
        "the command ran although the user does not exist"
    );
}

/// Returns an environment whose config the unprivileged user 65534 can read.
fn readable_env() -> Env {
    let env = Env::new(CONFIG);
    std::fs::set_permissions(env.dir.path(), PermissionsExt::from_mode(0o755)).expect("chmod dir");
    std::fs::set_permissions(&env.config, PermissionsExt::from_mode(0o644)).expect("chmod config");
    env
}

fn assert_one_clear_line(output: &Output, command: &str, fragment: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{command}: {text}");
    assert_eq!(
        text.lines().count(),
        1,
        "{command}: expected one line: {text}"
    );
    assert!(
        text.contains(&format!("netnsctl {command} needs")),
        "{command}: {text}"
    );
    assert!(text.contains(fragment), "{command}: {text}");
    assert!(
        !text.contains("os error"),
        "{command}: raw error code in {text}"
    );
}

#[test]
fn non_root_gets_one_message() {
    if !require_root("non_root_gets_one_message") {
        return;
    }
    let env = readable_env();
    let config = env.config.display().to_string();
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    for (command, args) in [
        ("apply", vec!["apply"]),
        ("plan", vec!["plan"]),
        ("status", vec!["status"]),
        ("down", vec!["down", "--all"]),
        ("exec", vec!["exec", "priv-a", "--", "true"]),
    ] {
        let mut full = args.clone();
        full.extend(["-c", config.as_str()]);
        let output = netnsctl_via_setpriv(&nobody, &full);
        assert_one_clear_line(&output, command, "run it as root or with sudo");
    }
    assert!(!Path::new("/run/netns/priv-a").exists());

    // check needs no root: it validates and notes what it skipped.
    let output = netnsctl_via_setpriv(&nobody, &["check", "-c", &config]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn root_without_capabilities_gets_one_message() {
    if !require_root("root_without_capabilities_gets_one_message") {
        return;
    }
    let env = readable_env();
    let config = env.config.display().to_string();
    for (dropped, missing) in [
        ("-net_admin", "lacks CAP_NET_ADMIN"),
        ("-sys_admin", "lacks CAP_SYS_ADMIN"),
        ("-all", "lacks CAP_SYS_ADMIN and CAP_NET_ADMIN"),
    ] {
        let bounding = format!("--bounding-set={dropped}");
        let output =
            netnsctl_via_setpriv(&[&bounding, "--inh-caps=-all"], &["apply", "-c", &config]);
        assert_one_clear_line(&output, "apply", missing);
    }
    assert!(!Path::new("/run/netns/priv-a").exists());
    let output = run("ip", &["netns", "list"]);
    assert!(output.stdout.is_empty());
}
