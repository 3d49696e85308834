//! Concurrent runs: `apply` and `down` started together on overlapping namespaces take turns on
//! the lock, each finishes or reports that it waited or timed out, and the final state is what the run
//! that took the lock last asked for.

mod support;

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::system;
use support::{require_root, Env};

/// Rounds of four concurrent runs.
const ROUNDS: usize = 10;

/// Returns a config over `names`. Each of the three configs sets its own TTL, name server,
/// ruleset and veth addresses, so the final state shows which one was applied last. Every namespace has a
/// veth to the host with a port mapping, so runs also race on the host table.
fn race_config(ttl: u32, names: &[&str]) -> String {
    let mut text = String::new();
    for name in names {
        // The namespace's letter numbers its subnet and host port.
        let index = u32::from(name.as_bytes()[name.len() - 1] - b'a');
        text.push_str(&format!(
            "[namespaces.{name}]\nsysctl = {{ \"net.ipv4.ip_default_ttl\" = {ttl} }}\n\
             dns = {{ nameservers = [\"10.53.0.{ttl}\"] }}\n\
             nftables = \"table inet race_{ttl} {{\\n chain c {{\\n type filter hook input priority 0;\\n }}\\n}}\\n\"\n\
             [[namespaces.{name}.veth]]\nname = \"eth0\"\npeer = \"ve-{name}\"\n\
             addresses = [\"10.{ttl}.{index}.2/30\"]\npeer_addresses = [\"10.{ttl}.{index}.1/30\"]\n\
             [[namespaces.{name}.port_mapping]]\nprotocol = \"tcp\"\nhost_port = {port}\nport = 80\n\n",
            port = 8100 + index,
        ));
    }
    text
}

struct Run {
    label: String,
    /// The config the run applies; `None` for `down --all`.
    config: Option<PathBuf>,
    child: Child,
}

fn spawn(label: &str, config: Option<&Path>, args: &[&str], log: &File) -> Run {
    let mut command = Command::new(support::netnsctl_bin());
    command.arg("-v").args(args);
    if let Some(config) = config {
        command.arg("-c").arg(config);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(log.try_clone().expect("clone log"))
        .spawn()
        .expect("spawn netnsctl");
    Run {
        label: label.to_owned(),
        config: config.map(Path::to_path_buf),
        child,
    }
}

/// Returns the pids in the order they took the lock, from the shared log. Every run appends to
/// the same file and logs "took the lock" while holding it, so file order is lock order.
fn lock_order(log: &str) -> Vec<u32> {
    log.lines()
        .filter(|line| line.contains("took the lock"))
        .filter_map(|line| {
            let pid = line.split("pid=").nth(1)?.split_whitespace().next()?;
            pid.parse().ok()
        })
        .collect()
}

fn assert_state_of(config: Option<&Path>, context: &str) {
    match config {
        None => {
            assert!(
                support::ip_netns_list().is_empty(),
                "{context}: namespaces left after down"
            );
            let records = system::list_tree(Path::new("/run/netnsctl/namespaces"), true);
            assert!(records.is_empty(), "{context}: records left: {records:?}");
        }
        Some(config) => {
            let output = Command::new(support::netnsctl_bin())
                .args(["plan", "--json", "-c"])
                .arg(config)
                .output()
                .expect("run plan");
            let plan: serde_json::Value =
                serde_json::from_slice(&output.stdout).expect("plan JSON");
            let steps = plan["steps"].as_array().expect("steps");
            assert!(
                steps.is_empty(),
                "{context}: not the last run's state: {steps:?}"
            );
        }
    }
}

#[test]
fn concurrent_runs_serialize() {
    if !require_root("concurrent_runs_serialize") {
        return;
    }
    let env = Env::new("");
    let configs = [
        (61, vec!["race-a", "race-b", "race-c"]),
        (62, vec!["race-b", "race-c", "race-d"]),
        (63, vec!["race-a", "race-c"]),
    ];
    let paths: Vec<PathBuf> = configs
        .iter()
        .map(|(ttl, names)| {
            let path = env.path(&format!("race-{ttl}.toml"));
            std::fs::write(&path, race_config(*ttl, names)).expect("write config");
            path
        })
        .collect();

    let before = system::snapshot();
    let mut waited = 0;
    for round in 0..ROUNDS {
        let log_path = env.path(&format!("round-{round}.log"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open log");
        // Start the four runs in a different order each round.
        let mut runs = Vec::new();
        for slot in 0..4 {
            let which = (slot + round) % 4;
            let run = match which {
                3 => spawn("down --all", None, &["down", "--all"], &log),
                i => spawn(
                    &format!("apply {}", configs[i].0),
                    Some(&paths[i]),
                    &["apply"],
                    &log,
                ),
            };
            runs.push(run);
        }
        let mut finished = Vec::new();
        for mut run in runs {
            let pid = run.child.id();
            let status = run.child.wait().expect("wait");
            finished.push((pid, status, run.label, run.config));
        }

        let text = std::fs::read_to_string(&log_path).expect("read log");
        eprintln!("round {round}:\n{text}");
        for (pid, status, label, _) in &finished {
            assert_eq!(
                status.code(),
                Some(0),
                "round {round}: {label} (pid {pid}) failed"
            );
        }
        let order = lock_order(&text);
        assert_eq!(
            order.len(),
            4,
            "round {round}: every run takes the lock once: {order:?}"
        );
        waited += text.matches("waiting up to").count();

        let last = order.last().expect("four runs");
        let (_, _, label, config) = finished
            .iter()
            .find(|(pid, ..)| pid == last)
            .expect("last pid is one of the runs");
        assert_state_of(
            config.as_deref(),
            &format!("round {round}, last run {label}"),
        );
    }
    println!(
        "{} concurrent runs in {ROUNDS} rounds, {waited} waited for the lock",
        ROUNDS * 4
    );

    env.ok(&["down", "--all"]);
    system::assert_same(&before, &system::snapshot(), "after the last down --all");
}

/// Holds /run/netnsctl/lock like a netnsctl run would, with this process's pid in it.
fn hold_lock() -> File {
    std::fs::create_dir_all("/run/netnsctl").expect("create /run/netnsctl");
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open("/run/netnsctl/lock")
        .expect("open lock");
    // SAFETY: flock on a descriptor this test owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(rc, 0, "take the lock");
    writeln!(file, "{}", std::process::id()).expect("write pid");
    file
}

#[test]
fn lock_timeout_reported() {
    if !require_root("lock_timeout_reported") {
        return;
    }
    let env = Env::new(&race_config(61, &["race-a", "race-b"]));
    let before = system::snapshot();
    let lock = hold_lock();

    let children: Vec<(String, Child)> = [
        vec!["apply"],
        vec!["down", "--all"],
        vec!["apply", "race-a"],
        vec!["down", "race-b"],
    ]
    .into_iter()
    .map(|args| {
        let child = Command::new(support::netnsctl_bin())
            .args(&args)
            .args(["--lock-timeout", "0.5", "-c"])
            .arg(&env.config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        (args.join(" "), child)
    })
    .collect();
    for (label, child) in children {
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprintln!("{label}: {stderr}");
        assert_eq!(output.status.code(), Some(1), "{label}");
        assert!(
            stderr.contains("waiting up to 0.5 s for the lock"),
            "{label}: {stderr}"
        );
        assert!(stderr.contains("timed out after"), "{label}: {stderr}");
        let holder = format!("held by process {}", std::process::id());
        assert!(stderr.contains(&holder), "{label}: {stderr}");
    }
    system::assert_same(&before, &system::snapshot(), "after the timeouts");

    drop(lock);
    env.ok(&["apply"]);
    env.ok(&["down", "--all"]);
}
