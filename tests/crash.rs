//! Crash recovery: `apply` and `down` killed with SIGKILL at every step boundary.
//!
//! The hidden `NETNSCTL_KILL_AFTER_STEPS=K` hook makes netnsctl SIGKILL itself right after its
//! K-th step. After each kill, a plain `apply` must converge to the whole config (`plan --json`
//! lists no steps, and independent tools see every setting), and `down --all` must leave the
//! system exactly as it was before the first run.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::system::{self, Snapshot};
use support::{require_root, run_ok, Env};

/// The config every crash test applies. It uses every feature that creates kernel or file state,
/// so each kind of step is interrupted at least once.
const CONFIG: &str = r#"
[namespaces.crash-a]
sysctl = { "net.ipv4.ip_forward" = 1, "net.ipv6.conf.all.forwarding" = 1, "net.ipv4.ip_default_ttl" = 99, "net.ipv4.icmp_echo_ignore_all" = 1 }
nftables = """
table inet crash_a {
  chain input { type filter hook input priority 0; policy accept; }
}
"""
dns = { nameservers = ["10.53.0.1"], search = ["a.lab"] }

[namespaces.crash-b]
sysctl = { "net.ipv4.ip_forward" = 1, "net.ipv4.conf.all.rp_filter" = 2, "net.ipv4.ip_default_ttl" = 98 }
nftables = """
table ip crash_b {
  chain forward { type filter hook forward priority 0; policy drop; }
}
"""
dns = { nameservers = ["10.53.0.2", "fd53::2"], options = ["ndots:2"] }

[namespaces.crash-c]
sysctl = { "net.ipv6.conf.all.forwarding" = 1, "net.ipv4.icmp_echo_ignore_broadcasts" = 0, "net.ipv4.ip_default_ttl" = 97 }
dns = { nameservers = ["10.53.0.3"] }

[namespaces.crash-d]
sysctl = { "net.ipv4.ip_forward" = 1, "net.ipv4.ip_default_ttl" = 96 }
nftables = """
table inet crash_d {
  chain output { type filter hook output priority 0; policy accept; }
}
"""

[namespaces.crash-e]
sysctl = { "net.ipv4.ip_default_ttl" = 95, "net.ipv4.tcp_syncookies" = 0 }
dns = { nameservers = ["10.53.0.5"], search = ["e.lab", "lab"] }

[bridges.br-crash]
addresses = ["10.92.0.1/24", "fd92::1/64"]

# crash-a: a veth to the host with a default route, a port mapping and masquerade.
[[namespaces.crash-a.veth]]
name = "eth0"
peer = "ve-crash-a"
addresses = ["10.91.0.2/30", "fd91::2/64"]
peer_addresses = ["10.91.0.1/30", "fd91::1/64"]
masquerade = true

[[namespaces.crash-a.route]]
to = "default"
via = "10.91.0.1"

[[namespaces.crash-a.port_mapping]]
protocol = "tcp"
host_port = 8091
port = 80

[[namespaces.crash-a.port_mapping]]
protocol = "udp"
host_port = 5391
port = 53

# crash-b: a veth into crash-a.
[[namespaces.crash-b.veth]]
name = "to-a"
peer = "to-b"
peer_namespace = "crash-a"
addresses = ["10.93.0.2/30"]
peer_addresses = ["10.93.0.1/30"]

[[namespaces.crash-b.route]]
to = "10.91.0.0/30"
via = "10.93.0.1"

# crash-c and crash-d: ports of the host bridge.
[[namespaces.crash-c.veth]]
name = "eth0"
peer = "ve-crash-c"
peer_bridge = "br-crash"
addresses = ["10.92.0.13/24", "fd92::13/64"]

[[namespaces.crash-d.veth]]
name = "eth0"
peer = "ve-crash-d"
peer_bridge = "br-crash"
addresses = ["10.92.0.14/24"]

[[namespaces.crash-d.route]]
to = "default"
via = "10.92.0.1"
"#;

/// Minimum number of kill points the config must produce.
const MIN_KILL_POINTS: usize = 30;

fn run_killed(env: &Env, args: &[&str], kill_after: usize) -> Output {
    let output = Command::new(support::netnsctl_bin())
        .args(args)
        .arg("-c")
        .arg(&env.config)
        .env("NETNSCTL_KILL_AFTER_STEPS", kill_after.to_string())
        .output()
        .expect("run netnsctl");
    eprintln!(
        "$ NETNSCTL_KILL_AFTER_STEPS={kill_after} netnsctl {}\n[{:?}]\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Returns the steps `plan --json` lists.
fn planned_steps(env: &Env) -> Vec<serde_json::Value> {
    let text = env.ok(&["plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&text).expect("plan --json is JSON");
    plan["steps"].as_array().expect("steps is an array").clone()
}

fn assert_killed(output: &Output, context: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGKILL),
        "{context}: the kill hook did not fire"
    );
}

/// Checks every setting of CONFIG with independent tools.
fn assert_converged(env: &Env, context: &str) {
    let steps = planned_steps(env);
    assert!(
        steps.is_empty(),
        "{context}: plan still lists steps: {steps:?}"
    );

    let loaded = netnsctl::config::parse(&env.config, CONFIG).expect("CONFIG parses");
    let desired = netnsctl::desired::resolve(&loaded, &[], &Default::default()).expect("resolves");
    let listed = support::ip_netns_list();
    for (name, spec) in &desired.namespaces {
        assert!(
            listed.contains(name),
            "{context}: {name} missing from ip netns list"
        );
        let path = Path::new("/run/netns").join(name);
        assert_eq!(
            support::fs_type(&path),
            "nsfs",
            "{context}: {name} not an nsfs mount"
        );
        for setting in &spec.sysctls {
            let (key, value) = (&setting.key, &setting.value);
            assert_eq!(
                &support::sysctl_in(name, key),
                value,
                "{context}: {name} sysctl {key}"
            );
        }
        let resolv =
            std::fs::read_to_string(Path::new("/etc/netns").join(name).join("resolv.conf"))
                .unwrap_or_else(|err| panic!("{context}: {name} resolv.conf: {err}"));
        assert_eq!(resolv, spec.resolv_conf, "{context}: {name} resolv.conf");
        let ruleset = support::ruleset_in(name);
        match &spec.ruleset {
            Some(wanted) => {
                for header in wanted
                    .text
                    .lines()
                    .filter(|line| line.starts_with("table "))
                {
                    assert!(
                        ruleset.contains(header),
                        "{context}: {name} lacks `{header}`"
                    );
                }
            }
            None => assert!(ruleset.trim().is_empty(), "{context}: {name} has a ruleset"),
        }
        assert_links_of(name, &spec.config, context);
    }

    for (bridge, spec) in &loaded.config.bridges {
        let link =
            link_json(None, bridge).unwrap_or_else(|| panic!("{context}: bridge {bridge} missing"));
        assert_eq!(
            link["linkinfo"]["info_kind"], "bridge",
            "{context}: {bridge}"
        );
        assert_addresses(
            &link,
            &spec.addresses,
            &format!("{context}: bridge {bridge}"),
        );
    }
    let host_table = run_ok("nft", &["list", "table", "inet", "netnsctl"]);
    for ns in loaded.config.namespaces.values() {
        for mapping in &ns.port_mapping {
            let rule = format!("{} dport {}", mapping.protocol, mapping.host_port);
            assert!(
                host_table.contains(&rule),
                "{context}: host table lacks `{rule}`"
            );
        }
    }
}

/// Returns `ip -d -j link show NAME` in namespace `ns` (the host for `None`).
fn link_json(ns: Option<&str>, name: &str) -> Option<serde_json::Value> {
    let mut args = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-d", "-j", "address", "show", "dev", name]);
    let output = support::run("ip", &args);
    if !output.status.success() {
        return None;
    }
    let links: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).ok()?;
    links.into_iter().next()
}

fn assert_addresses(link: &serde_json::Value, wanted: &[ipnet::IpNet], context: &str) {
    let found: Vec<String> = link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|address| {
            format!(
                "{}/{}",
                address["local"].as_str().unwrap_or("?"),
                address["prefixlen"]
            )
        })
        .collect();
    for address in wanted {
        assert!(
            found.contains(&address.to_string()),
            "{context}: {address} missing from {found:?}"
        );
    }
}

/// Checks the veths and routes of one namespace with `ip`.
fn assert_links_of(name: &str, config: &netnsctl::config::Namespace, context: &str) {
    for veth in &config.veth {
        let inside = link_json(Some(name), &veth.name)
            .unwrap_or_else(|| panic!("{context}: {name} lacks veth {}", veth.name));
        assert_eq!(
            inside["linkinfo"]["info_kind"], "veth",
            "{context}: {name} {}",
            veth.name
        );
        assert_eq!(
            inside["operstate"], "UP",
            "{context}: {name} {} not up",
            veth.name
        );
        assert_addresses(
            &inside,
            &veth.addresses,
            &format!("{context}: {name} {}", veth.name),
        );

        let peer = link_json(veth.peer_namespace.as_deref(), &veth.peer)
            .unwrap_or_else(|| panic!("{context}: peer {} of {name} missing", veth.peer));
        assert_addresses(
            &peer,
            &veth.peer_addresses,
            &format!("{context}: peer {}", veth.peer),
        );
        if let Some(bridge) = &veth.peer_bridge {
            assert_eq!(
                peer["master"],
                bridge.as_str(),
                "{context}: {} not a port of {bridge}",
                veth.peer
            );
        }
    }
    let routes = run_ok("ip", &["-n", name, "route", "show"]);
    for route in &config.route {
        let destination = if route.to == "default" {
            "default".to_owned()
        } else {
            route.to.clone()
        };
        let wanted = match route.via {
            Some(via) => format!("{destination} via {via}"),
            None => destination,
        };
        if route.via.is_some_and(|via| via.is_ipv6()) {
            continue;
        }
        assert!(
            routes.contains(&wanted),
            "{context}: {name} lacks route `{wanted}`: {routes}"
        );
    }
}

/// Asserts that nothing netnsctl made is left: compared with `before`, and no nsfs mount or
/// state record at all.
fn assert_clean(before: &Snapshot, context: &str) {
    let after = system::snapshot();
    system::assert_same(before, &after, context);
    assert!(
        system::nsfs_mounts().is_empty(),
        "{context}: nsfs mounts left: {:?}",
        system::nsfs_mounts()
    );
    let records = system::list_tree(Path::new("/run/netnsctl/namespaces"), true);
    assert!(records.is_empty(), "{context}: records left: {records:?}");
}

#[test]
fn apply_killed_at_every_step() {
    if !require_root("apply_killed_at_every_step") {
        return;
    }
    let env = Env::new(CONFIG);
    let before = system::snapshot();
    let total = planned_steps(&env).len();
    assert!(
        total >= MIN_KILL_POINTS,
        "CONFIG gives {total} steps; the test needs at least {MIN_KILL_POINTS} kill points"
    );

    for kill_after in 1..=total {
        let context = format!("apply killed after step {kill_after} of {total}");
        let output = run_killed(&env, &["apply"], kill_after);
        assert_killed(&output, &context);

        let status = env.run(&["status"]);
        assert_eq!(status.status.code(), Some(0), "{context}: status failed");
        env.ok(&["apply"]);
        assert_converged(&env, &context);

        env.ok(&["down", "--all"]);
        assert_clean(&before, &context);
    }
    println!("apply survived {total} kill points");
}

#[test]
fn apply_killed_twice_in_a_row() {
    if !require_root("apply_killed_twice_in_a_row") {
        return;
    }
    let env = Env::new(CONFIG);
    let before = system::snapshot();
    let total = planned_steps(&env).len();

    // The second run resumes from the first crash's leftovers and is killed again.
    for kill_after in [1, total / 3, total / 2] {
        let context = format!("apply killed after {kill_after} steps, twice");
        assert_killed(&run_killed(&env, &["apply"], kill_after), &context);
        let remaining = planned_steps(&env).len();
        if remaining > 1 {
            assert_killed(&run_killed(&env, &["apply"], 1), &context);
        }
        env.ok(&["apply"]);
        assert_converged(&env, &context);
        env.ok(&["down", "--all"]);
        assert_clean(&before, &context);
    }
}

#[test]
fn down_killed_at_every_step() {
    if !require_root("down_killed_at_every_step") {
        return;
    }
    let env = Env::new(CONFIG);
    let before = system::snapshot();

    let mut kill_after = 1;
    loop {
        env.ok(&["apply"]);
        assert_converged(&env, "before down");
        let context = format!("down killed after step {kill_after}");
        let output = run_killed(&env, &["down", "--all"], kill_after);
        if output.status.code() == Some(0) {
            // down finished before reaching the kill point: every boundary was tried.
            assert_clean(&before, &context);
            break;
        }
        assert_killed(&output, &context);
        env.ok(&["status"]);
        env.ok(&["down", "--all"]);
        assert_clean(&before, &context);
        kill_after += 1;
    }
    let points = kill_after - 1;
    assert!(points >= 10, "down had only {points} kill points");
    println!("down survived {points} kill points");
}

/// Waits up to ten seconds for a host link to disappear.
fn wait_until_link_gone(name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let exists = || {
        std::process::Command::new("ip")
            .args(["link", "show", "dev", name])
            .output()
            .expect("run ip")
            .status
            .success()
    };
    while exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "link {name} still exists 10 s after its namespace was unmounted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn stale_netns_file_repaired_when_owned() {
    if !require_root("stale_netns_file_repaired_when_owned") {
        return;
    }
    let env = Env::new(CONFIG);
    let before = system::snapshot();
    env.ok(&["apply"]);

    // A crash between creating /run/netns/NAME and mounting the namespace on it leaves an
    // empty regular file. Unmounting the namespace leaves the same.
    let path = Path::new("/run/netns/crash-c");
    run_ok("umount", &[&path.display().to_string()]);
    assert_eq!(support::fs_type(path), "tmpfs");
    // The kernel destroys the unmounted namespace, and the host end of its veth pair with it, in
    // a worker after the last reference is gone. Until then the host end is a link that the new
    // namespace's pair cannot be created over.
    wait_until_link_gone("ve-crash-c");

    let status = env.ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status --json");
    let entry = status["namespaces"]
        .as_array()
        .expect("namespaces array")
        .iter()
        .find(|entry| entry["name"] == "crash-c")
        .expect("crash-c in status")
        .clone();
    assert_eq!(
        entry["stale_file"], true,
        "status does not report the stale file: {entry}"
    );
    assert_eq!(entry["present"], false, "{entry}");
    assert_eq!(entry["owned"], true, "{entry}");
    let text = env.ok(&["status"]);
    assert!(text.contains("crash-c: stale file"), "status text: {text}");

    let applied = env.ok(&["apply"]);
    assert!(
        applied.contains("crash-c: replace stale file"),
        "apply output: {applied}"
    );
    assert_eq!(support::fs_type(path), "nsfs");
    assert_converged(&env, "after repairing the stale file");

    env.ok(&["down", "--all"]);
    assert_clean(&before, "after down");
}

#[test]
fn stale_netns_file_of_others_left_alone() {
    if !require_root("stale_netns_file_of_others_left_alone") {
        return;
    }
    let env = Env::new("[namespaces.other-tool]\n");
    let path = Path::new("/run/netns/other-tool");
    std::fs::write(path, b"").expect("create a stale file");

    let status = env.ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status --json");
    let entry = &status["namespaces"][0];
    assert_eq!(entry["stale_file"], true, "{entry}");
    assert_eq!(entry["owned"], false, "{entry}");

    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not a namespace mount"),
        "apply stderr: {stderr}"
    );
    assert_eq!(
        support::fs_type(path),
        "tmpfs",
        "apply replaced a file it does not own"
    );
    assert!(path.exists());
    std::fs::remove_file(path).expect("remove the stale file");
}

/// Kills spread over the time one full apply (or down) takes, so most land inside a step:
/// between creating /run/netns/NAME and mounting it, while nft loads, between writing a record's
/// temporary file and renaming it.
const TIMED_KILLS: u32 = 24;

/// Starts netnsctl ARGS and SIGKILLs it after `delay`, unless it exited before. Returns whether
/// the kill landed.
fn run_and_kill_after(env: &Env, args: &[&str], delay: std::time::Duration) -> bool {
    let mut child = Command::new(support::netnsctl_bin())
        .args(args)
        .arg("-c")
        .arg(&env.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn netnsctl");
    std::thread::sleep(delay);
    // An error here means the process already exited; the kill came too late, which is fine.
    let _ = child.kill();
    let status = child.wait().expect("wait for netnsctl");
    eprintln!("killed after {delay:?}: {status:?}");
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGKILL)
}

#[test]
fn apply_and_down_killed_mid_step() {
    if !require_root("apply_and_down_killed_mid_step") {
        return;
    }
    let env = Env::new(CONFIG);
    let before = system::snapshot();

    // Time one full apply and down; the kills are spread over these durations. The durations
    // only place the kills and are never asserted.
    let started = std::time::Instant::now();
    env.ok(&["apply"]);
    let apply_time = started.elapsed();
    let started = std::time::Instant::now();
    env.ok(&["down", "--all"]);
    let down_time = started.elapsed();

    let mut landed = 0;
    for i in 1..=TIMED_KILLS {
        let context = format!("apply killed at {i}/{TIMED_KILLS} of its run time");
        landed += u32::from(run_and_kill_after(
            &env,
            &["apply"],
            apply_time * i / TIMED_KILLS,
        ));
        env.ok(&["status"]);
        env.ok(&["apply"]);
        assert_converged(&env, &context);

        let context = format!("down killed at {i}/{TIMED_KILLS} of its run time");
        landed += u32::from(run_and_kill_after(
            &env,
            &["down", "--all"],
            down_time * i / TIMED_KILLS,
        ));
        env.ok(&["down", "--all"]);
        assert_clean(&before, &context);
    }
    println!(
        "{landed} of {} timed kills landed before the run ended",
        2 * TIMED_KILLS
    );
}
