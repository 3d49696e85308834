//! Links on the real kernel: veth pairs, bridges, addresses, routes, port mappings, masquerade,
//! moved links, the killswitch and WireGuard through wireguard-go. Every test runs in its own
//! network and mount namespace (tests/sandbox-runner), which plays the host. Packets go only
//! between that namespace and namespaces the test creates.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use support::*;

/// Runs `f` on a thread inside namespace `ns`. Sockets made there stay in that namespace.
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(&path).expect("open namespace file");
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("setns");
                f()
            })
            .join()
            .expect("thread inside the namespace")
    })
}

/// A TCP server that replies to every connection with the peer address it saw.
struct Server {
    address: SocketAddr,
}

impl Server {
    /// Listens on `address` inside `ns` (the test's own namespace for `None`).
    fn start(ns: Option<&str>, address: &str) -> Server {
        let address: SocketAddr = address.parse().expect("socket address");
        let bind = move || TcpListener::bind(address).expect("listen");
        let listener = match ns {
            Some(ns) => in_ns(ns, bind),
            None => bind(),
        };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let peer = stream
                    .peer_addr()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                let _ = stream.write_all(format!("{peer}\n").as_bytes());
            }
        });
        Server { address }
    }
}

/// Connects to `address` from inside `ns` (the test's own namespace for `None`) and returns the
/// line the server sent: the client address as the server saw it.
fn fetch(ns: Option<&str>, address: &str) -> Result<String, String> {
    let address: SocketAddr = address.parse().expect("socket address");
    let connect = move || -> Result<String, String> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .map_err(|err| format!("connect {address}: {err}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .map_err(|err| format!("read from {address}: {err}"))?;
        Ok(text.trim().to_owned())
    };
    match ns {
        Some(ns) => in_ns(ns, connect),
        None => connect(),
    }
}

/// Sends one UDP datagram from inside `ns`; an error means the kernel refused to send it.
fn send_udp(ns: &str, address: &str) -> Result<(), String> {
    let address: SocketAddr = address.parse().expect("socket address");
    in_ns(ns, move || {
        let bind = if address.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = std::net::UdpSocket::bind(bind).map_err(|err| err.to_string())?;
        socket
            .send_to(b"query", address)
            .map(drop)
            .map_err(|err| format!("send to {address}: {err}"))
    })
}

/// `ping -c 1` from `ns` (the test's namespace for `None`); true when a reply came back.
fn ping(ns: Option<&str>, address: &str) -> bool {
    let output = match ns {
        Some(ns) => run(
            "ip",
            &["netns", "exec", ns, "ping", "-c", "1", "-W", "3", address],
        ),
        None => run("ping", &["-c", "1", "-W", "3", address]),
    };
    output.status.success()
}

fn host_links() -> String {
    run_ok("ip", &["-o", "link", "show"])
}

fn links_in(ns: &str) -> String {
    run_ok("ip", &["-n", ns, "-o", "link", "show"])
}

fn addresses_in(ns: &str) -> String {
    run_ok("ip", &["-n", ns, "-o", "address", "show"])
}

fn host_tables() -> String {
    run_ok("nft", &["list", "tables"])
}

fn plan_steps(env: &Env) -> Vec<serde_json::Value> {
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["plan", "--json"])).expect("plan --json prints JSON");
    json["steps"].as_array().expect("steps is a list").clone()
}

const LAB: &str = r#"
[bridges.br-lab]
addresses = ["10.90.0.1/24", "fd90::1/64"]

[namespaces.web]
[[namespaces.web.veth]]
name = "eth0"
peer = "ve-web"
addresses = ["10.77.0.2/30", "fd77::2/64"]
peer_addresses = ["10.77.0.1/30", "fd77::1/64"]

[[namespaces.web.route]]
to = "default"
via = "10.77.0.1"

[[namespaces.web.route]]
to = "default"
via = "fd77::1"

[namespaces.db]
[[namespaces.db.veth]]
name = "to-web"
peer = "to-db"
peer_namespace = "web"
addresses = ["10.78.0.2/30", "fd78::2/64"]
peer_addresses = ["10.78.0.1/30", "fd78::1/64"]

[namespaces.lab-a]
[[namespaces.lab-a.veth]]
name = "eth0"
peer = "ve-lab-a"
peer_bridge = "br-lab"
addresses = ["10.90.0.11/24", "fd90::11/64"]

[namespaces.lab-b]
[[namespaces.lab-b.veth]]
name = "eth0"
peer = "ve-lab-b"
peer_bridge = "br-lab"
addresses = ["10.90.0.12/24", "fd90::12/64"]
"#;

#[test]
fn veth_and_bridge_carry_traffic() {
    if !require_root("veth_and_bridge_carry_traffic") {
        return;
    }
    let env = Env::new(LAB);
    let printed = env.ok(&["apply"]);
    assert!(printed.contains("create bridge br-lab"), "{printed}");
    assert!(
        printed.contains("web: create veth eth0 with peer ve-web"),
        "{printed}"
    );

    // Both ends were created in place: eth0 exists in web and lab-a, never in the host.
    assert!(links_in("web").contains(" eth0@"), "{}", links_in("web"));
    assert!(links_in("web").contains(" to-db@"), "{}", links_in("web"));
    assert!(links_in("db").contains(" to-web@"), "{}", links_in("db"));
    let host = host_links();
    assert!(host.contains(" ve-web@"), "{host}");
    assert!(!host.contains(" eth0@"), "{host}");
    assert!(!host.contains(" to-db@"), "{host}");
    assert!(run_ok("ip", &["-o", "link", "show", "ve-lab-a"]).contains("master br-lab"));
    assert!(run_ok("ip", &["-o", "link", "show", "ve-lab-b"]).contains("master br-lab"));

    // IPv6 addresses skip duplicate address detection: none is tentative.
    let web_addresses = addresses_in("web");
    assert!(web_addresses.contains("fd77::2/64"), "{web_addresses}");
    for line in web_addresses
        .lines()
        .filter(|line| line.contains("scope global"))
    {
        assert!(!line.contains("tentative"), "{line}");
        if line.contains("inet6") {
            assert!(line.contains("nodad"), "{line}");
        }
    }

    // host <-> namespace, both families.
    assert!(ping(None, "10.77.0.2"));
    assert!(ping(None, "fd77::2"));
    assert!(ping(Some("web"), "10.77.0.1"));
    assert!(ping(Some("web"), "fd77::1"));
    let web4 = Server::start(Some("web"), "10.77.0.2:7000");
    let web6 = Server::start(Some("web"), "[fd77::2]:7000");
    assert_eq!(fetch(None, &web4.address.to_string()).unwrap(), "10.77.0.1");
    assert_eq!(fetch(None, &web6.address.to_string()).unwrap(), "fd77::1");

    // namespace <-> namespace, both families.
    assert!(ping(Some("db"), "10.78.0.1"));
    assert!(ping(Some("db"), "fd78::1"));
    let web_db4 = Server::start(Some("web"), "10.78.0.1:7001");
    let web_db6 = Server::start(Some("web"), "[fd78::1]:7001");
    assert_eq!(
        fetch(Some("db"), &web_db4.address.to_string()).unwrap(),
        "10.78.0.2"
    );
    assert_eq!(
        fetch(Some("db"), &web_db6.address.to_string()).unwrap(),
        "fd78::2"
    );

    // Across the bridge, between namespaces and to the bridge's own address.
    assert!(ping(Some("lab-a"), "10.90.0.12"));
    assert!(ping(Some("lab-a"), "fd90::12"));
    assert!(ping(Some("lab-b"), "10.90.0.1"));
    assert!(ping(Some("lab-b"), "fd90::1"));
    let lab4 = Server::start(Some("lab-b"), "10.90.0.12:7002");
    let lab6 = Server::start(Some("lab-b"), "[fd90::12]:7002");
    assert_eq!(
        fetch(Some("lab-a"), &lab4.address.to_string()).unwrap(),
        "10.90.0.11"
    );
    assert_eq!(
        fetch(Some("lab-a"), &lab6.address.to_string()).unwrap(),
        "fd90::11"
    );

    // Converged: a second plan has nothing to do.
    let steps = plan_steps(&env);
    assert!(steps.is_empty(), "{steps:?}");

    env.ok(&["down", "--all"]);
    let host = host_links();
    for link in ["ve-web", "ve-lab-a", "ve-lab-b", "br-lab"] {
        assert!(
            !host.contains(&format!(" {link}")),
            "{link} left behind: {host}"
        );
    }
    assert!(ip_netns_list().is_empty(), "{:?}", ip_netns_list());
}

const PORTS: &str = r#"
[namespaces.web]
[[namespaces.web.veth]]
name = "eth0"
peer = "ve-web"
addresses = ["10.77.0.2/30", "fd77::2/64"]
peer_addresses = ["10.77.0.1/30", "fd77::1/64"]

[[namespaces.web.route]]
to = "default"
via = "10.77.0.1"

[[namespaces.web.route]]
to = "default"
via = "fd77::1"

[[namespaces.web.port_mapping]]
protocol = "tcp"
host_port = 8080
port = 80
"#;

#[test]
fn port_mapping_reaches_server_inside() {
    if !require_root("port_mapping_reaches_server_inside") {
        return;
    }
    // A table of another tool, which netnsctl must leave alone.
    run_ok("nft", &["add table inet othertool"]);
    let env = Env::new(PORTS);
    env.ok(&["apply"]);
    let _server4 = Server::start(Some("web"), "10.77.0.2:80");
    let _server6 = Server::start(Some("web"), "[fd77::2]:80");

    // Through the host's loopback: DNAT plus SNAT to the host end's address.
    assert_eq!(fetch(None, "127.0.0.1:8080").unwrap(), "10.77.0.1");
    // Through host addresses, both families.
    assert_eq!(fetch(None, "10.77.0.1:8080").unwrap(), "10.77.0.1");
    assert_eq!(fetch(None, "[fd77::1]:8080").unwrap(), "fd77::1");
    // route_localnet is set on the host end only.
    assert_eq!(
        run_ok("sysctl", &["-n", "net.ipv4.conf.ve-web.route_localnet"]).trim(),
        "1"
    );
    assert_eq!(
        run_ok("sysctl", &["-n", "net.ipv4.conf.all.route_localnet"]).trim(),
        "0"
    );
    assert_eq!(sysctl_in("web", "net.ipv4.conf.eth0.route_localnet"), "0");

    let tables = host_tables();
    assert!(tables.contains("table inet netnsctl"), "{tables}");
    assert!(plan_steps(&env).is_empty());

    // A mapping changed by hand is drift, and apply restores it.
    run_ok("nft", &["flush chain inet netnsctl output"]);
    let status = env.ok(&["status"]);
    assert!(status.contains("changed outside netnsctl"), "{status}");
    env.ok(&["apply"]);
    assert_eq!(fetch(None, "127.0.0.1:8080").unwrap(), "10.77.0.1");

    // Changing the host port reloads the table with only that changed.
    env.write_config(&PORTS.replace("host_port = 8080", "host_port = 8081"));
    let steps = plan_steps(&env);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0]["action"], "load-host-table");
    env.ok(&["apply"]);
    assert_eq!(fetch(None, "127.0.0.1:8081").unwrap(), "10.77.0.1");
    assert!(fetch(None, "127.0.0.1:8080").is_err());

    env.ok(&["down", "web"]);
    let tables = host_tables();
    assert!(!tables.contains("table inet netnsctl"), "{tables}");
    assert!(tables.contains("table inet othertool"), "{tables}");
    assert!(!host_links().contains(" ve-web"));
}

#[test]
fn masquerade_uses_host_end_address() {
    if !require_root("masquerade_uses_host_end_address") {
        return;
    }
    let env = Env::new(
        r#"
        [namespaces.app]
        [[namespaces.app.veth]]
        name = "eth0"
        peer = "ve-app"
        addresses = ["10.77.0.2/30"]
        peer_addresses = ["10.77.0.1/30"]
        masquerade = true

        [[namespaces.app.route]]
        to = "default"
        via = "10.77.0.1"

        [namespaces.outside]
        [[namespaces.outside.veth]]
        name = "eth0"
        peer = "ve-outside"
        addresses = ["10.88.0.2/30"]
        peer_addresses = ["10.88.0.1/30"]
        "#,
    );
    env.ok(&["apply"]);
    // outside has no route back to 10.77.0.0/30: only the masquerade makes the reply reach app.
    let server = Server::start(Some("outside"), "10.88.0.2:9000");
    assert_eq!(
        fetch(Some("app"), &server.address.to_string()).unwrap(),
        "10.88.0.1"
    );
    assert_eq!(run_ok("sysctl", &["-n", "net.ipv4.ip_forward"]).trim(), "1");

    env.ok(&["down", "--all"]);
    assert_eq!(run_ok("sysctl", &["-n", "net.ipv4.ip_forward"]).trim(), "0");
    assert!(!host_tables().contains("netnsctl"));
}

#[test]
fn drift_in_addresses_and_routes_repaired() {
    if !require_root("drift_in_addresses_and_routes_repaired") {
        return;
    }
    let env = Env::new(LAB);
    env.ok(&["apply"]);
    run_ok(
        "ip",
        &["-n", "web", "address", "del", "fd77::2/64", "dev", "eth0"],
    );
    run_ok(
        "ip",
        &["-n", "web", "route", "del", "default", "via", "10.77.0.1"],
    );
    run_ok("ip", &["address", "del", "10.90.0.1/24", "dev", "br-lab"]);
    run_ok("ip", &["link", "set", "ve-lab-a", "nomaster"]);

    let status = env.ok(&["status"]);
    assert!(
        status.contains("drift: web: add address fd77::2/64 to eth0 in namespace web"),
        "{status}"
    );
    assert!(
        status.contains("drift: web: add route 0.0.0.0/0 via 10.77.0.1"),
        "{status}"
    );
    assert!(
        status.contains("add address 10.90.0.1/24 to br-lab in the host namespace"),
        "{status}"
    );

    assert!(
        status.contains("make host link ve-lab-a a port of bridge br-lab"),
        "{status}"
    );

    let steps = plan_steps(&env);
    assert_eq!(steps.len(), 4, "{steps:?}");
    env.ok(&["apply"]);
    assert!(plan_steps(&env).is_empty());
    assert!(run_ok("ip", &["-o", "link", "show", "ve-lab-a"]).contains("master br-lab"));
    assert!(ping(Some("web"), "fd77::1"));
    assert!(run_ok("ip", &["-n", "web", "route", "show", "default"]).contains("via 10.77.0.1"));

    // One changed address changes only that address.
    env.write_config(&LAB.replace("\"10.78.0.2/30\"", "\"10.78.0.6/30\""));
    let steps = plan_steps(&env);
    let actions: Vec<&str> = steps
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["remove-address", "add-address"], "{steps:?}");
    env.ok(&["apply"]);
    assert!(addresses_in("db").contains("10.78.0.6/30"));
    assert!(!addresses_in("db").contains("10.78.0.2/30"));

    env.ok(&["down", "--all"]);
    assert!(!host_links().contains("br-lab"));
}

#[test]
fn foreign_link_blocking_veth_is_drift() {
    if !require_root("foreign_link_blocking_veth_is_drift") {
        return;
    }
    run_ok(
        "ip",
        &[
            "link", "add", "ve-x", "type", "veth", "peer", "name", "ve-x-o",
        ],
    );
    let env = Env::new(
        r#"
[namespaces.a]
[[namespaces.a.veth]]
name = "eth0"
peer = "ve-x"
addresses = ["10.1.0.2/30"]
peer_addresses = ["10.1.0.1/30"]

[namespaces.e]
interfaces = ["nosuch0"]
"#,
    );
    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("link ve-x already exists"), "{message}");
    assert!(message.contains("1 declared link(s) not made"), "{message}");

    let status = env.ok(&["status"]);
    assert!(
        status.contains("a: present, owned, 1 declared object(s) missing"),
        "{status}"
    );
    assert!(
        status.contains("e: present, owned, 1 declared object(s) missing"),
        "{status}"
    );
    assert!(!status.contains("in sync"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--json"])).expect("status prints JSON");
    for namespace in json["namespaces"].as_array().unwrap() {
        assert_eq!(namespace["in_sync"], false, "{namespace}");
        assert_eq!(namespace["missing"], 1, "{namespace}");
    }

    // The foreign link is left alone, on apply and on down.
    env.ok(&["down", "a", "e"]);
    assert!(host_links().contains("ve-x@ve-x-o"), "{}", host_links());
    run_ok("ip", &["link", "del", "ve-x"]);
}

#[test]
fn unreachable_gateway_names_route_key() {
    if !require_root("unreachable_gateway_names_route_key") {
        return;
    }
    let env = Env::new(
        r#"
[namespaces.gw]
[[namespaces.gw.veth]]
name = "eth0"
peer = "ve-gw"
addresses = ["10.3.0.2/24"]
peer_addresses = ["10.3.0.1/24"]

[[namespaces.gw.route]]
to = "10.4.0.0/24"
via = "10.9.9.9"
"#,
    );
    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains(
            "error: gw: add route 10.4.0.0/24 via 10.9.9.9: Network is unreachable (os error 101): \
             namespaces.gw.route[0].via = \"10.9.9.9\" is on no network of the links of namespace gw"
        ),
        "{message}"
    );
    assert!(!message.contains("gw: gw:"), "{message}");
    env.ok(&["down", "gw"]);
}

#[test]
fn moved_interface_returns_on_down() {
    if !require_root("moved_interface_returns_on_down") {
        return;
    }
    // A link that exists before netnsctl runs (one end of a pair made with ip).
    run_ok(
        "ip",
        &["link", "add", "mv0", "type", "veth", "peer", "name", "mv1"],
    );
    let env = Env::new("[namespaces.lab]\ninterfaces = [\"mv0\"]\n");
    env.ok(&["apply"]);
    assert!(!host_links().contains(" mv0@"), "{}", host_links());
    assert!(links_in("lab").contains(" mv0@"), "{}", links_in("lab"));
    assert!(links_in("lab").contains("state UP") || links_in("lab").contains(",UP"));
    assert!(plan_steps(&env).is_empty());
    env.ok(&["down", "lab"]);
    assert!(host_links().contains(" mv0@"), "{}", host_links());
    assert!(host_links().contains(" mv1@"), "{}", host_links());
}

#[test]
fn down_deletes_only_its_veth_pairs() {
    if !require_root("down_deletes_only_its_veth_pairs") {
        return;
    }
    // A veth pair of another tool, one end in the link group that down tries first for its
    // batch (0x6e6e7463).
    run_ok(
        "ip",
        &[
            "link",
            "add",
            "other0",
            "group",
            "1852732515",
            "type",
            "veth",
            "peer",
            "name",
            "other1",
        ],
    );
    let mut config = String::new();
    for name in ["del-a", "del-b", "del-c"] {
        config.push_str(&format!(
            "[namespaces.{name}]\n[[namespaces.{name}.veth]]\nname = \"eth0\"\npeer = \"ve-{name}\"\n\
             addresses = [\"10.77.0.2/30\"]\n"
        ));
    }
    let env = Env::new(&config);
    env.ok(&["apply"]);

    for name in ["del-a", "del-b", "del-c"] {
        assert!(
            host_links().contains(&format!(" ve-{name}@")),
            "{}",
            host_links()
        );
    }

    env.ok(&["down", "del-a", "del-b"]);
    let links = host_links();
    assert!(!links.contains(" ve-del-a@"), "{links}");
    assert!(!links.contains(" ve-del-b@"), "{links}");
    assert!(links.contains(" ve-del-c@"), "{links}");
    assert!(links.contains(" other0@"), "{links}");
    assert!(links.contains(" other1@"), "{links}");
    assert!(
        links_in("del-c").contains(" eth0@"),
        "{}",
        links_in("del-c")
    );
    env.ok(&["down", "--all"]);
    assert!(!host_links().contains(" ve-del-c@"), "{}", host_links());
    assert!(host_links().contains(" other0@"), "{}", host_links());
}

#[test]
fn long_interface_name_rejected() {
    let env = Env::new(
        "[namespaces.web]\n[[namespaces.web.veth]]\nname = \"sixteen-bytes-xx\"\npeer = \"ve-web\"\n",
    );
    let output = env.run(&["check"]);
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("namespaces.web.veth[0].name"), "{message}");
    assert!(message.contains("\"sixteen-bytes-xx\""), "{message}");
}

/// Generates a WireGuard key pair with `wg genkey` and `wg pubkey`; writes the private key to
/// `dir/NAME.key` and returns (path, public key).
fn key_pair(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let private = run_ok("wg", &["genkey"]);
    let mut child = std::process::Command::new("wg")
        .arg("pubkey")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run wg pubkey");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(private.as_bytes())
        .unwrap();
    let output = child.wait_with_output().expect("wg pubkey");
    assert!(output.status.success());
    let path = dir.join(format!("{name}.key"));
    std::fs::write(&path, &private).expect("write key");
    (
        path,
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    )
}

/// Stops every wireguard-go process recorded in this sandbox's state records when dropped, so a
/// failing test leaves none running.
struct WireGuardGoGuard;

impl WireGuardGoGuard {
    /// Process ids of wireguard-go processes in the records.
    fn recorded_pids() -> Vec<u32> {
        let mut pids = Vec::new();
        let Ok(entries) = std::fs::read_dir("/run/netnsctl/namespaces") else {
            return pids;
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            for wg in record["wireguard"].as_array().into_iter().flatten() {
                if let Some(pid) = wg["pid"].as_u64() {
                    pids.push(pid as u32);
                }
            }
        }
        pids
    }
}

/// Checks whether `pid` is a live wireguard-go process; zombies (state Z) do not count.
fn is_wireguard_go(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat.contains(" (wireguard-go) ") && !stat.contains(") Z ")
}

impl Drop for WireGuardGoGuard {
    fn drop(&mut self) {
        for pid in Self::recorded_pids() {
            if is_wireguard_go(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Returns the `counter packets N` of the rule with `comment "NAME"` in a namespace's ruleset.
fn counter_in(ns: &str, name: &str) -> u64 {
    let ruleset = ruleset_in(ns);
    let line = ruleset
        .lines()
        .find(|line| line.contains(&format!("comment \"{name}\"")))
        .unwrap_or_else(|| panic!("no rule {name} in {ns}: {ruleset}"));
    let after = line
        .split("counter packets ")
        .nth(1)
        .expect("counter in rule");
    after
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .expect("packet count")
}

fn vpn_lab(dir: &std::path::Path) -> String {
    let (vpn_key, vpn_public) = key_pair(dir, "vpn");
    let (server_key, server_public) = key_pair(dir, "server");
    format!(
        r#"
# The outside world: reached from the host over a veth; it counts what arrives.
[namespaces.outside]
nftables = '''
table inet watch {{
  chain prerouting {{
    type filter hook prerouting priority -300; policy accept;
    icmp type echo-request counter comment "echo4"
    icmpv6 type echo-request counter comment "echo6"
    tcp dport 9999 counter comment "tcp"
    meta l4proto {{ tcp, udp }} th dport 53 counter comment "dns"
  }}
}}
'''
[[namespaces.outside.veth]]
name = "eth0"
peer = "ve-outside"
addresses = ["10.50.0.2/24", "fd50::2/64"]
peer_addresses = ["10.50.0.1/24", "fd50::1/64"]

# The VPN server: its encrypted UDP lives in the outside namespace.
[namespaces.server.wireguard.wg0]
private_key_file = "{server_key}"
listen_port = 51820
underlay = "outside"
addresses = ["10.66.0.1/24", "fd66::1/64"]
[[namespaces.server.wireguard.wg0.peer]]
public_key = "{vpn_public}"
allowed_ips = ["10.66.0.2/32", "fd66::2/128"]

[namespaces.vpn]
killswitch = true
accessible_from = ["10.40.0.0/24"]
dns = {{ nameservers = ["10.66.0.1"] }}

[namespaces.vpn.wireguard.wg0]
private_key_file = "{vpn_key}"
addresses = ["10.66.0.2/32", "fd66::2/128"]
underlay = "host"
[[namespaces.vpn.wireguard.wg0.peer]]
public_key = "{server_public}"
endpoint = "10.50.0.2:51820"
allowed_ips = ["0.0.0.0/0", "::/0"]
persistent_keepalive = 25

# A veth to the host with masquerade and routes towards the outside: without the killswitch,
# these would carry traffic around the tunnel.
[[namespaces.vpn.veth]]
name = "eth0"
peer = "ve-vpn"
addresses = ["10.40.0.2/24", "fd40::2/64"]
peer_addresses = ["10.40.0.1/24", "fd40::1/64"]
masquerade = true

[[namespaces.vpn.route]]
to = "default"
dev = "wg0"
[[namespaces.vpn.route]]
to = "10.50.0.0/24"
via = "10.40.0.1"
[[namespaces.vpn.route]]
to = "fd50::/64"
via = "fd40::1"
"#,
        server_key = server_key.display(),
        vpn_key = vpn_key.display(),
    )
}

#[test]
fn wireguard_tunnel_with_killswitch() {
    if !require_root("wireguard_tunnel_with_killswitch") {
        return;
    }
    let _guard = WireGuardGoGuard;
    let env = Env::new("");
    env.write_config(&vpn_lab(env.dir.path()));
    let printed = env.ok(&["apply"]);
    assert!(
        printed.contains("vpn: WireGuard link wg0 runs on the userspace (wireguard-go) backend"),
        "{printed}"
    );
    assert!(
        printed.contains("server: WireGuard link wg0 runs on the userspace (wireguard-go) backend"),
        "{printed}"
    );
    let pids = WireGuardGoGuard::recorded_pids();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.iter().all(|&pid| is_wireguard_go(pid)));
    assert!(links_in("vpn").contains(" wg0:"), "{}", links_in("vpn"));
    assert!(plan_steps(&env).is_empty(), "{:?}", plan_steps(&env));

    // The tunnel carries both families, and TCP.
    assert!(ping(Some("vpn"), "10.66.0.1"));
    assert!(ping(Some("vpn"), "fd66::1"));
    let server4 = Server::start(Some("server"), "10.66.0.1:7000");
    let server6 = Server::start(Some("server"), "[fd66::1]:7000");
    assert_eq!(
        fetch(Some("vpn"), &server4.address.to_string()).unwrap(),
        "10.66.0.2"
    );
    assert_eq!(
        fetch(Some("vpn"), &server6.address.to_string()).unwrap(),
        "fd66::2"
    );

    // DNS goes only to the configured nameserver, even through the tunnel.
    let _dns = Server::start(Some("server"), "10.66.0.1:53");
    assert_eq!(fetch(Some("vpn"), "10.66.0.1:53").unwrap(), "10.66.0.2");
    // A dropped UDP datagram fails at once with EPERM, which makes the drop visible.
    assert_eq!(send_udp("vpn", "10.66.0.1:53"), Ok(()));
    let denied = send_udp("vpn", "10.66.0.3:53").unwrap_err();
    assert!(denied.contains("not permitted"), "{denied}");

    // accessible_from opens the veth to the host's range.
    assert!(ping(None, "10.40.0.2"));

    // The counters count: a ping from the host reaches the outside.
    assert!(ping(None, "10.50.0.2"));
    let echo4 = counter_in("outside", "echo4");
    assert!(echo4 >= 1);
    let echo6 = counter_in("outside", "echo6");
    let tcp = counter_in("outside", "tcp");
    let dns = counter_in("outside", "dns");

    // The peer goes away.
    env.ok(&["down", "server"]);
    assert!(!ping(Some("vpn"), "10.66.0.1"));
    for target in ["10.50.0.2", "fd50::2"] {
        assert!(!ping(Some("vpn"), target), "{target} reached");
    }
    for target in ["10.50.0.2:9999", "[fd50::2]:9999"] {
        assert!(fetch(Some("vpn"), target).is_err(), "{target} reached");
    }
    for target in ["10.50.0.2:53", "[fd50::2]:53", "10.50.0.2:9999"] {
        let err = send_udp("vpn", target).unwrap_err();
        assert!(err.contains("not permitted"), "{target}: {err}");
    }
    assert_eq!(counter_in("outside", "echo4"), echo4);
    assert_eq!(counter_in("outside", "echo6"), echo6);
    assert_eq!(counter_in("outside", "tcp"), tcp);
    assert_eq!(counter_in("outside", "dns"), dns);

    env.ok(&["down", "--all"]);
    for pid in pids {
        assert!(!is_wireguard_go(pid), "wireguard-go {pid} still runs");
    }
    let sockets: Vec<_> = std::fs::read_dir("/run/wireguard")
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(sockets.is_empty(), "{sockets:?}");
    assert!(!host_tables().contains("netnsctl"), "{}", host_tables());
    let host = host_links();
    assert!(!host.contains("ve-"), "{host}");
    assert!(!host.contains("nnc"), "{host}");
}

/// Pings `address` from `ns` up to ten times; true at the first reply. A WireGuard link sends a
/// new handshake only every few seconds, so the first pings after a restart may get lost.
fn ping_until_reply(ns: &str, address: &str) -> bool {
    (0..10).any(|_| ping(Some(ns), address))
}

#[test]
fn down_of_underlay_keeps_tunnel_recoverable() {
    if !require_root("down_of_underlay_keeps_tunnel_recoverable") {
        return;
    }
    let _guard = WireGuardGoGuard;
    let env = Env::new("");
    env.write_config(&vpn_lab(env.dir.path()));
    env.ok(&["apply"]);
    assert!(ping_until_reply("vpn", "10.66.0.1"));

    // server's wireguard-go runs in outside; it is netnsctl's, not a user's process.
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--json"])).expect("status prints JSON");
    let outside = status["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ns| ns["name"] == "outside")
        .expect("outside listed")
        .clone();
    assert_eq!(outside["processes"], 0, "{outside}");

    // Without --force, down names the link that depends on the underlay.
    let output = env.run(&["down", "outside"]);
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("underlay of WireGuard link wg0 of namespace server"),
        "{message}"
    );
    assert!(
        message.contains("netnsctl down server outside"),
        "{message}"
    );
    assert!(!message.contains("process(es) inside"), "{message}");
    assert!(ip_netns_list().contains(&"outside".to_owned()));

    // With --force, server's link stops, and the next apply creates it in the new underlay.
    env.ok(&["down", "outside", "--force"]);
    assert!(!ip_netns_list().contains(&"outside".to_owned()));
    assert!(
        !links_in("server").contains(" wg0:"),
        "{}",
        links_in("server")
    );
    let steps = plan_steps(&env);
    assert!(
        steps
            .iter()
            .any(|s| s["action"] == "create-wireguard" && s["namespace"] == "server"),
        "{steps:?}"
    );
    env.ok(&["apply"]);
    assert!(plan_steps(&env).is_empty(), "{:?}", plan_steps(&env));
    assert!(ping_until_reply("vpn", "10.66.0.1"));

    // A link whose wireguard-go runs outside the declared underlay is drift.
    let config = std::fs::read_to_string(&env.config).unwrap();
    let moved = config.replacen("underlay = \"outside\"", "underlay = \"host\"", 1);
    env.write_config(&moved);
    let status = env.ok(&["status"]);
    assert!(
        status.contains("drift: server: create WireGuard link wg0 in the host namespace"),
        "{status}"
    );
    assert!(
        status.contains("other than the declared underlay, the host namespace"),
        "{status}"
    );
    env.write_config(&config);
    assert!(plan_steps(&env).is_empty(), "{:?}", plan_steps(&env));

    // A UAPI socket removed by hand is drift (wireguard-go may also exit when its socket is
    // deleted), and apply starts the link again.
    let record = std::fs::read_to_string("/run/netnsctl/namespaces/server.json").unwrap();
    let socket = std::fs::read_dir("/run/wireguard")
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| record.contains(&*path.to_string_lossy()))
        .expect("server's UAPI socket");
    std::fs::remove_file(&socket).unwrap();
    let status = env.ok(&["status"]);
    assert!(
        status.contains("drift: server: create WireGuard link wg0"),
        "{status}"
    );
    env.ok(&["apply"]);
    assert!(plan_steps(&env).is_empty(), "{:?}", plan_steps(&env));
    assert!(ping_until_reply("vpn", "10.66.0.1"));

    env.ok(&["down", "--all"]);
    assert!(ip_netns_list().is_empty());
}

#[test]
fn wg_quick_file_imported() {
    if !require_root("wg_quick_file_imported") {
        return;
    }
    let _guard = WireGuardGoGuard;
    let env = Env::new("");
    let (key_file, _) = key_pair(env.dir.path(), "client");
    let (_, peer_public) = key_pair(env.dir.path(), "peer");
    let private = std::fs::read_to_string(key_file).unwrap();
    let conf = env.path("wg7.conf");
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.67.0.2/32, fd67::2/128\nDNS = 10.67.0.1\n\n\
             [Peer]\nPublicKey = {peer_public}\nAllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = 10.51.0.2:51820\n\
             PersistentKeepalive = 15\n",
            private.trim()
        ),
    )
    .unwrap();
    env.write_config(&format!(
        "[namespaces.vpn]\nwireguard_config = \"{}\"\n",
        conf.display()
    ));
    env.ok(&["check"]);
    env.ok(&["apply"]);
    let addresses = addresses_in("vpn");
    assert!(addresses.contains("wg7"), "{addresses}");
    assert!(addresses.contains("10.67.0.2/32"), "{addresses}");
    assert!(addresses.contains("fd67::2/128"), "{addresses}");
    let resolv = std::fs::read_to_string("/etc/netns/vpn/resolv.conf").unwrap();
    assert_eq!(resolv, "nameserver 10.67.0.1\n");
    // wg(8) reads the link through the UAPI socket named after the underlay name.
    let socket = std::fs::read_dir("/run/wireguard")
        .unwrap()
        .flatten()
        .next()
        .expect("a UAPI socket");
    let name = socket
        .path()
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let wg_show_output = run_ok("wg", &["show", &name]);
    assert!(wg_show_output.contains(&peer_public), "{wg_show_output}");
    assert!(
        wg_show_output.contains("10.51.0.2:51820"),
        "{wg_show_output}"
    );
    assert!(
        wg_show_output.contains("every 15 seconds"),
        "{wg_show_output}"
    );
    assert!(plan_steps(&env).is_empty());

    // A changed peer setting changes that peer only; the link and its process stay.
    let pids = WireGuardGoGuard::recorded_pids();
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("PersistentKeepalive = 15", "PersistentKeepalive = 20"),
    )
    .unwrap();
    let steps = plan_steps(&env);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0]["action"], "set-wireguard-peer");
    env.ok(&["apply"]);
    let wg_show_output = run_ok("wg", &["show", &name]);
    assert!(
        wg_show_output.contains("every 20 seconds"),
        "{wg_show_output}"
    );
    assert_eq!(WireGuardGoGuard::recorded_pids(), pids);
    assert!(plan_steps(&env).is_empty());

    // A peer removed by hand is drift, and apply adds it back.
    run_ok("wg", &["set", &name, "peer", &peer_public, "remove"]);
    let status = env.ok(&["status"]);
    assert!(
        status.contains(&format!("drift: vpn: set peer {peer_public} of wg7")),
        "{status}"
    );
    env.ok(&["apply"]);
    assert!(run_ok("wg", &["show", &name]).contains(&peer_public));

    env.ok(&["down", "vpn"]);
    assert!(std::fs::read_dir("/run/wireguard")
        .unwrap()
        .next()
        .is_none());

    // A file with a hook is rejected, and nothing runs it.
    let marker = env.path("hook-ran");
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {}\nPostUp = touch {}\n",
            private.trim(),
            marker.display()
        ),
    )
    .unwrap();
    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("PostUp"), "{message}");
    assert!(message.contains("line 3"), "{message}");
    assert!(!marker.exists());
    assert!(ip_netns_list().is_empty());
}

#[test]
fn attach_puts_host_end_in_parent_namespace() {
    if !require_root("attach_puts_host_end_in_parent_namespace") {
        return;
    }
    // systemd's PrivateNetwork=yes runs `netnsctl attach` inside the new namespace; unshare
    // does the same here, with this test's namespace as the parent's.
    let env = Env::new(PORTS);
    let output = std::process::Command::new("unshare")
        .args(["--net", "--"])
        .arg(netnsctl_bin())
        .arg("-c")
        .arg(&env.config)
        .args(["attach", "web"])
        .output()
        .expect("run unshare");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(host_links().contains(" ve-web@"), "{}", host_links());
    assert!(links_in("web").contains(" eth0@"), "{}", links_in("web"));
    assert!(
        host_tables().contains("table inet netnsctl"),
        "{}",
        host_tables()
    );
    let _server = Server::start(Some("web"), "10.77.0.2:80");
    assert_eq!(fetch(None, "127.0.0.1:8080").unwrap(), "10.77.0.1");

    // ExecStop= runs `netnsctl down` inside the namespace too.
    let output = std::process::Command::new("nsenter")
        .args(["--net=/run/netns/web", "--"])
        .arg(netnsctl_bin())
        .arg("-c")
        .arg(&env.config)
        .args(["down", "--force", "web"])
        .output()
        .expect("run nsenter");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!host_links().contains(" ve-web"), "{}", host_links());
    assert!(!host_tables().contains("netnsctl"), "{}", host_tables());
}

#[test]
fn apply_killed_at_every_step_recovers() {
    if !require_root("apply_killed_at_every_step_recovers") {
        return;
    }
    // The lab plus host rules: a port mapping and masquerade.
    let config = LAB.replace(
        "peer_addresses = [\"10.77.0.1/30\", \"fd77::1/64\"]\n",
        "peer_addresses = [\"10.77.0.1/30\", \"fd77::1/64\"]\nmasquerade = true\n",
    )
        + "\n[[namespaces.web.port_mapping]]\nprotocol = \"tcp\"\nhost_port = 8080\nport = 80\n";
    let env = Env::new(&config);
    let total = plan_steps(&env).len();
    assert!(total > 20, "{total} steps");
    for kill_after in 1..total {
        let output = std::process::Command::new(netnsctl_bin())
            .args(["apply", "-c"])
            .arg(&env.config)
            .env("NETNSCTL_KILL_AFTER_STEPS", kill_after.to_string())
            .output()
            .expect("run netnsctl");
        assert_eq!(
            output.status.code(),
            None,
            "apply was not killed after step {kill_after}"
        );

        env.ok(&["apply"]);
        let steps = plan_steps(&env);
        assert!(
            steps.is_empty(),
            "after a kill at step {kill_after}: {steps:?}"
        );

        env.ok(&["down", "--all"]);
        let host = host_links();
        for link in ["ve-web", "ve-lab-a", "ve-lab-b", "br-lab"] {
            assert!(
                !host.contains(&format!(" {link}")),
                "kill at {kill_after}: {link} left: {host}"
            );
        }
        assert!(
            ip_netns_list().is_empty(),
            "kill at {kill_after}: {:?}",
            ip_netns_list()
        );
        assert!(!host_tables().contains("netnsctl"), "kill at {kill_after}");
        let forward = run_ok("sysctl", &["-n", "net.ipv4.ip_forward"]);
        assert_eq!(forward.trim(), "0", "kill at {kill_after}");
    }
}

/// Process ids of wireguard-go processes in the calling thread's network namespace.
fn wireguard_go_here() -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let same_netns =
            std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == own);
        if same_netns && is_wireguard_go(pid) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn wireguard_apply_killed_at_every_step_recovers() {
    if !require_root("wireguard_apply_killed_at_every_step_recovers") {
        return;
    }
    let _guard = WireGuardGoGuard;
    let env = Env::new("");
    env.write_config(&vpn_lab(env.dir.path()));
    let total = plan_steps(&env).len();
    for kill_after in 1..total {
        let output = std::process::Command::new(netnsctl_bin())
            .args(["apply", "-c"])
            .arg(&env.config)
            .env("NETNSCTL_KILL_AFTER_STEPS", kill_after.to_string())
            .output()
            .expect("run netnsctl");
        assert_eq!(
            output.status.code(),
            None,
            "apply was not killed after step {kill_after}"
        );

        env.ok(&["apply"]);
        let steps = plan_steps(&env);
        assert!(
            steps.is_empty(),
            "after a kill at step {kill_after}: {steps:?}"
        );
        assert_eq!(
            WireGuardGoGuard::recorded_pids().len(),
            2,
            "kill at {kill_after}"
        );

        env.ok(&["down", "--all"]);
        assert!(
            ip_netns_list().is_empty(),
            "kill at {kill_after}: {:?}",
            ip_netns_list()
        );
        let left = wireguard_go_here();
        assert!(
            left.is_empty(),
            "kill at {kill_after}: wireguard-go {left:?} left"
        );
        assert!(
            !host_links().contains("nnc"),
            "kill at {kill_after}: {}",
            host_links()
        );
    }
}

#[test]
fn adopted_namespace_keeps_only_its_own_links() {
    if !require_root("adopted_namespace_keeps_only_its_own_links") {
        return;
    }
    run_ok("ip", &["netns", "add", "lab"]);
    run_ok(
        "ip",
        &[
            "-n", "lab", "link", "add", "mine0", "type", "veth", "peer", "name", "mine1",
        ],
    );
    let env = Env::new(
        r#"
        [namespaces.lab]
        adopt = true
        [[namespaces.lab.veth]]
        name = "eth0"
        peer = "ve-lab"
        addresses = ["10.79.0.2/30"]
        peer_addresses = ["10.79.0.1/30"]
        "#,
    );
    env.ok(&["apply"]);
    assert!(ping(None, "10.79.0.2"));

    // down releases an adopted namespace: it stays, netnsctl's veth goes, the other link stays.
    env.ok(&["down", "lab"]);
    assert!(ip_netns_list().contains(&"lab".to_owned()));
    let links = links_in("lab");
    assert!(!links.contains(" eth0@"), "{links}");
    assert!(links.contains(" mine0@"), "{links}");
    assert!(!host_links().contains(" ve-lab"), "{}", host_links());
    run_ok("ip", &["netns", "delete", "lab"]);
}
