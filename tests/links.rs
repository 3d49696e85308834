//! Links on the real kernel: veth pairs, bridges, addresses, routes, port mappings, masquerade,
//! moved links, the killswitch and WireGuard through wireguard-go. Every test runs in its own
//! network and mount namespace (tests/sandbox-runner), which plays the host; packets go only
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

/// A TCP server that answers every connection with the peer address it saw.
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

    let steps = plan_steps(&env);
    assert_eq!(steps.len(), 3, "{steps:?}");
    env.ok(&["apply"]);
    assert!(plan_steps(&env).is_empty());
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
