//! Link planner cases: a converged observation in, one change made, the steps out.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config;
use crate::desired::{self, hex_digest, links, Desired, HostSources};
use crate::kernel::netlink::{Address, Link, Route};
use crate::kernel::netns::NetnsFile;
use crate::kernel::wireguard::{Device, Peer};
use crate::observe::links::{route_localnet_key, NetState, ObservedHost};
use crate::observe::{Inside, Observed, ObservedNamespace};
use crate::plan::{plan, Step};
use crate::state::{HostRules, Record, WireGuardBackend, WireGuardRecord, RECORD_VERSION};

const KEY_A: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const KEY_B: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const KEY_C: &str = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";

const LAB: &str = r#"
[bridges.br-lab]
addresses = ["10.90.0.1/24"]

[namespaces.web]
[[namespaces.web.veth]]
name = "eth0"
peer = "ve-web"
addresses = ["10.77.0.2/30", "fd77::2/64"]
peer_addresses = ["10.77.0.1/30", "fd77::1/64"]

[[namespaces.web.route]]
to = "default"
via = "10.77.0.1"

[[namespaces.web.port_mapping]]
protocol = "tcp"
host_port = 8080
port = 80

[namespaces.db]
[[namespaces.db.veth]]
name = "to-web"
peer = "to-db"
peer_namespace = "web"
addresses = ["10.78.0.2/30"]
peer_addresses = ["10.78.0.1/30"]

[namespaces.lab-a]
[[namespaces.lab-a.veth]]
name = "eth0"
peer = "ve-lab-a"
peer_bridge = "br-lab"
addresses = ["10.90.0.11/24"]
"#;

fn vpn_config(key_file: &Path) -> String {
    format!(
        r#"
[namespaces.vpn]
[namespaces.vpn.wireguard.wg0]
private_key_file = "{}"
addresses = ["10.66.0.2/32"]

[[namespaces.vpn.wireguard.wg0.peer]]
public_key = "{KEY_B}"
endpoint = "192.0.2.1:51820"
allowed_ips = ["0.0.0.0/0", "::/0"]

[[namespaces.vpn.route]]
to = "default"
dev = "wg0"
"#,
        key_file.display()
    )
}

fn desired(text: &str) -> Desired {
    let loaded = config::parse(Path::new("/etc/netnsctl/test.toml"), text).expect("config parses");
    config::validate::validate(&loaded).expect("config is valid");
    let sources = HostSources {
        sysctl_dirs: Vec::new(),
    };
    desired::resolve(&loaded, &[], &sources).expect("config resolves")
}

fn add_link(net: &mut NetState, name: &str, kind: &str, controller: Option<u32>) -> u32 {
    let index = net.links.len() as u32 + 1;
    net.links.push(Link {
        index,
        name: name.to_owned(),
        up: true,
        kind: Some(kind.to_owned()),
        controller,
        group: 0,
    });
    index
}

fn add_addresses(net: &mut NetState, link: &str, addresses: &[ipnet::IpNet]) {
    let index = net.link(link).expect("link added").index;
    for address in addresses {
        net.addresses.push(Address {
            index,
            address: *address,
        });
    }
}

/// The observed state right after a successful apply of `desired`.
fn converged(desired: &Desired) -> Observed {
    let mut observed = Observed::default();
    let mut host_net = NetState::default();
    add_link(&mut host_net, "lo", "", None);
    for (bridge, config) in &desired.bridges {
        add_link(&mut host_net, bridge, "bridge", None);
        add_addresses(&mut host_net, bridge, &config.addresses);
    }
    let mut nets: BTreeMap<String, NetState> = BTreeMap::new();
    for name in desired.namespaces.keys() {
        let mut net = NetState::default();
        add_link(&mut net, "lo", "", None);
        nets.insert(name.clone(), net);
    }
    let mut rules: BTreeMap<String, HostRules> = BTreeMap::new();
    let mut host = ObservedHost::default();
    for (name, spec) in &desired.namespaces {
        let mut record = Record {
            version: RECORD_VERSION,
            ..Record::default()
        };
        for veth in &spec.config.veth {
            add_link(nets.get_mut(name).unwrap(), &veth.name, "veth", None);
            record.veths.push(veth.name.clone());
            let peer_net = match &veth.peer_namespace {
                Some(peer) => nets.get_mut(peer).unwrap(),
                None => {
                    record.host_links.push(veth.peer.clone());
                    &mut host_net
                }
            };
            let controller = veth
                .peer_bridge
                .as_ref()
                .map(|b| peer_net.link(b).unwrap().index);
            add_link(peer_net, &veth.peer, "veth", controller);
        }
        for wg in &spec.wireguard {
            add_link(nets.get_mut(name).unwrap(), &wg.link, "tun", None);
            record.wireguard.push(WireGuardRecord {
                link: wg.link.clone(),
                underlay_name: "nnc000000000000".into(),
                underlay: None,
                backend: WireGuardBackend::Userspace,
                pid: Some(100),
                socket: None,
            });
            let device = Device {
                private_key: Some(wg.private_key.0.clone()),
                listen_port: 40000,
                peers: wg
                    .peers
                    .iter()
                    .map(|peer| Peer {
                        public_key: peer.public_key.clone(),
                        endpoint: peer.endpoint.as_ref().map(|e| e.parse().unwrap()),
                        allowed_ips: peer.allowed_ips.clone(),
                        persistent_keepalive: peer.persistent_keepalive.unwrap_or(0),
                        ..Peer::default()
                    })
                    .collect(),
            };
            observed
                .wireguard
                .insert((name.clone(), wg.link.clone()), Ok(device));
        }
        for wanted in links::link_addresses(name, &spec.config, &spec.wireguard) {
            let net = match &wanted.netns {
                Some(ns) => nets.get_mut(ns).unwrap(),
                None => &mut host_net,
            };
            add_addresses(net, &wanted.link, &wanted.addresses);
        }
        for route in links::routes(&spec.config) {
            let net = nets.get_mut(name).unwrap();
            let oif = route.dev.as_ref().map(|dev| net.link(dev).unwrap().index);
            net.routes.push(Route {
                destination: route.destination,
                gateway: route.gateway,
                oif,
                protocol: 4,
                scope: 0,
            });
            record.routes.push(route);
        }
        let host_rules = links::host_rules(&spec.config);
        for link in links::localnet_links(&host_rules) {
            host.sysctls
                .insert(route_localnet_key(&link), Some("1".into()));
        }
        if !host_rules.is_empty() {
            rules.insert(name.clone(), host_rules.clone());
        }
        record.host_rules = host_rules;
        observed.namespaces.insert(
            name.clone(),
            ObservedNamespace {
                file: Some(NetnsFile::Attached { dev: 4, ino: 1 }),
                record: Some(Record {
                    ruleset_digest: spec.ruleset.as_ref().map(|r| r.digest.clone()),
                    ruleset_generation: spec.ruleset.as_ref().map(|_| 7),
                    ..record
                }),
                inside: Some(Inside {
                    lo_up: true,
                    ruleset_generation: Some(7),
                    ..Inside::default()
                }),
                resolv_conf: Some(spec.resolv_conf.clone().into_bytes()),
                errors: Vec::new(),
                host_namespace: false,
            },
        );
    }
    host.sysctls
        .insert("net.ipv4.ip_forward".into(), Some("1".into()));
    host.record.bridges = desired.bridges.keys().cloned().collect();
    if let Some(text) = links::render_host_table(&rules) {
        host.record.table_digest = Some(hex_digest(text.as_bytes()));
        host.record.table_listing_digest = Some("listing".into());
        host.table_listing_digest = Some("listing".into());
    }
    host.net = Some(host_net);
    observed.net = nets;
    observed.host = Some(host);
    observed
}

fn actions(steps: &[Step]) -> Vec<String> {
    steps.iter().map(ToString::to_string).collect()
}

#[test]
fn converged_lab_has_no_steps() {
    let desired = desired(LAB);
    let plan = plan(&desired, &converged(&desired));
    assert_eq!(actions(&plan.steps), Vec::<String>::new());
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
}

#[test]
fn missing_namespaces_get_every_link_step() {
    let desired = desired(LAB);
    let mut observed = converged(&desired);
    observed.namespaces.clear();
    observed.net.clear();
    let host = observed.host.as_mut().unwrap();
    host.net = Some(NetState::default());
    host.record = Default::default();
    host.table_listing_digest = None;
    host.sysctls.clear();
    let plan = plan(&desired, &observed);
    let steps = actions(&plan.steps);
    let position = |text: &str| {
        steps
            .iter()
            .position(|step| step == text)
            .unwrap_or_else(|| panic!("{text:?} missing from {steps:#?}"))
    };
    let bridge = position("host: create bridge br-lab");
    let veth = position("web: create veth eth0 with peer ve-web in the host namespace");
    let peer = position("db: create veth to-web with peer to-db in namespace web");
    let port = position("lab-a: make host link ve-lab-a a port of bridge br-lab");
    let address = position("web: add address fd77::2/64 to eth0 in namespace web");
    let localnet = position("web: set host sysctl net.ipv4.conf.ve-web.route_localnet = 1");
    let route = position("web: add route 0.0.0.0/0 via 10.77.0.1");
    let table = position("host: load nftables table inet netnsctl (not loaded yet)");
    assert!(bridge < veth, "{steps:#?}");
    assert!(veth < port, "{steps:#?}");
    assert!(port < address, "{steps:#?}");
    assert!(address < localnet, "{steps:#?}");
    assert!(localnet < route, "{steps:#?}");
    assert!(route < table, "{steps:#?}");
    assert!(peer < address);
    // The bridge port's host end gets no address of its own.
    assert!(
        !steps.iter().any(|s| s.contains("to ve-lab-a")),
        "{steps:#?}"
    );
}

#[test]
fn changed_address_changes_only_that() {
    let before = desired(LAB);
    let observed = converged(&before);
    let after = desired(&LAB.replace("\"10.78.0.2/30\"", "\"10.78.0.6/30\""));
    let plan = plan(&after, &observed);
    assert_eq!(
        actions(&plan.steps),
        [
            "db: remove address 10.78.0.2/30 from to-web in namespace db",
            "db: add address 10.78.0.6/30 to to-web in namespace db",
        ]
    );
}

#[test]
fn address_removed_by_hand_is_added_back() {
    let desired = desired(LAB);
    let mut observed = converged(&desired);
    let web = observed.net.get_mut("web").unwrap();
    web.addresses
        .retain(|a| a.address.to_string() != "fd77::2/64");
    let plan = plan(&desired, &observed);
    assert_eq!(
        actions(&plan.steps),
        ["web: add address fd77::2/64 to eth0 in namespace web"]
    );
}

#[test]
fn kernel_link_local_address_is_kept() {
    let desired = desired(LAB);
    let mut observed = converged(&desired);
    let web = observed.net.get_mut("web").unwrap();
    let index = web.link("eth0").unwrap().index;
    web.addresses.push(Address {
        index,
        address: "fe80::1/64".parse().unwrap(),
    });
    assert!(plan(&desired, &observed).steps.is_empty());
}

#[test]
fn route_removed_by_hand_is_added_back() {
    let desired = desired(LAB);
    let mut observed = converged(&desired);
    observed.net.get_mut("web").unwrap().routes.clear();
    let plan = plan(&desired, &observed);
    assert_eq!(
        actions(&plan.steps),
        ["web: add route 0.0.0.0/0 via 10.77.0.1"]
    );
}

#[test]
fn changed_gateway_replaces_only_that_route() {
    let before = desired(LAB);
    let observed = converged(&before);
    let after = desired(&LAB.replace("via = \"10.77.0.1\"", "via = \"10.77.0.2\""));
    let plan = plan(&after, &observed);
    assert_eq!(
        actions(&plan.steps),
        [
            "web: remove route 0.0.0.0/0 via 10.77.0.1",
            "web: add route 0.0.0.0/0 via 10.77.0.2",
        ]
    );
}

#[test]
fn changed_mapping_reloads_only_the_host_table() {
    let before = desired(LAB);
    let observed = converged(&before);
    let after = desired(&LAB.replace("host_port = 8080", "host_port = 8081"));
    let plan = plan(&after, &observed);
    assert_eq!(
        actions(&plan.steps),
        ["host: load nftables table inet netnsctl (rules changed)"]
    );
}

#[test]
fn host_table_changed_by_hand_is_reloaded() {
    let desired = desired(LAB);
    let mut observed = converged(&desired);
    observed.host.as_mut().unwrap().table_listing_digest = Some("edited".into());
    let plan = plan(&desired, &observed);
    assert_eq!(
        actions(&plan.steps),
        ["host: load nftables table inet netnsctl (table was changed outside netnsctl)"]
    );
}

#[test]
fn dropped_veth_is_deleted() {
    let before = desired(LAB);
    let observed = converged(&before);
    let without_db = LAB.split("[namespaces.db]").next().unwrap().to_owned()
        + "[namespaces.db]\n[namespaces.lab-a]\n[[namespaces.lab-a.veth]]\nname = \"eth0\"\n\
           peer = \"ve-lab-a\"\npeer_bridge = \"br-lab\"\naddresses = [\"10.90.0.11/24\"]\n";
    let plan = plan(&desired(&without_db), &observed);
    assert_eq!(actions(&plan.steps), ["db: delete veth to-web"]);
}

#[test]
fn foreign_host_link_blocks_veth() {
    let desired = desired(LAB);
    let mut observed = converged(&desired);
    // web's pair is gone, and someone else made a host link named like its host end.
    observed
        .net
        .get_mut("web")
        .unwrap()
        .links
        .retain(|l| l.name != "eth0");
    let plan = plan(&desired, &observed);
    assert!(
        !actions(&plan.steps)
            .iter()
            .any(|s| s.contains("create veth")),
        "{plan:?}"
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n.message.contains("link ve-web already exists")),
        "{:?}",
        plan.notes
    );
    // The record lists ve-web as web's host end, so it may be the end of the old pair.
    assert!(
        plan.notes
            .iter()
            .any(|n| n.message.contains("the next apply creates the pair")),
        "{:?}",
        plan.notes
    );
    assert_eq!(plan.unmet_count("web"), 1);
    assert!(plan
        .notes
        .iter()
        .any(|n| n.unmet == Some(crate::plan::Unmet::NameTaken)));
}

#[test]
fn missing_interface_counts_as_unmet() {
    let desired = desired("[namespaces.e]\ninterfaces = [\"nosuch0\"]\n");
    let observed = converged(&desired);
    let plan = plan(&desired, &observed);
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(plan.unmet_count("e"), 1);
    assert!(plan
        .notes
        .iter()
        .any(|n| n.unmet == Some(crate::plan::Unmet::Missing)));
}

#[test]
fn changed_peer_changes_only_that_peer() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("vpn.key");
    std::fs::write(&key_file, format!("{KEY_A}\n")).unwrap();
    let text = vpn_config(&key_file);
    let observed = converged(&desired(&text));

    let changed = desired(&text.replace("192.0.2.1:51820", "192.0.2.9:51820"));
    assert_eq!(
        actions(&plan(&changed, &observed).steps),
        [format!("vpn: set peer {KEY_B} of wg0")]
    );

    let added = desired(&format!(
        "{text}\n[[namespaces.vpn.wireguard.wg0.peer]]\npublic_key = \"{KEY_C}\"\nallowed_ips = [\"10.9.0.0/24\"]\n"
    ));
    assert_eq!(
        actions(&plan(&added, &observed).steps),
        [format!("vpn: set peer {KEY_C} of wg0")]
    );

    std::fs::write(&key_file, format!("{KEY_C}\n")).unwrap();
    let new_key = desired(&text);
    assert_eq!(
        actions(&plan(&new_key, &observed).steps),
        ["vpn: set private key of wg0"]
    );
}

#[test]
fn changed_listen_port_names_only_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("vpn.key");
    std::fs::write(&key_file, format!("{KEY_A}\n")).unwrap();
    let text = vpn_config(&key_file);
    let observed = converged(&desired(&text));
    let changed = desired(&text.replace(
        "addresses = [\"10.66.0.2/32\"]",
        "listen_port = 40001\naddresses = [\"10.66.0.2/32\"]",
    ));
    assert_eq!(
        actions(&plan(&changed, &observed).steps),
        ["vpn: set listen port of wg0"]
    );
}

#[test]
fn vanished_wireguard_link_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("vpn.key");
    std::fs::write(&key_file, format!("{KEY_A}\n")).unwrap();
    let desired = desired(&vpn_config(&key_file));
    let mut observed = converged(&desired);
    // wireguard-go exited: its TUN link and the routes through it are gone.
    let vpn = observed.net.get_mut("vpn").unwrap();
    vpn.links.retain(|l| l.name != "wg0");
    vpn.addresses.clear();
    vpn.routes.clear();
    let plan = plan(&desired, &observed);
    assert_eq!(
        actions(&plan.steps),
        [
            "vpn: create WireGuard link wg0 in the host namespace and move it in",
            "vpn: set link wg0 up in namespace vpn",
            "vpn: add address 10.66.0.2/32 to wg0 in namespace vpn",
            "vpn: add route 0.0.0.0/0 dev wg0",
            "vpn: add route ::/0 dev wg0",
        ]
    );
}

#[test]
fn wireguard_link_off_its_underlay_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("vpn.key");
    std::fs::write(&key_file, format!("{KEY_A}\n")).unwrap();
    let desired = desired(&vpn_config(&key_file));
    let mut observed = converged(&desired);
    // wireguard-go still runs, but in a namespace that is no longer the underlay.
    observed.stale_wireguard.insert(
        ("vpn".into(), "wg0".into()),
        "wireguard-go runs elsewhere".into(),
    );
    let plan = plan(&desired, &observed);
    assert_eq!(
        actions(&plan.steps),
        [
            "vpn: create WireGuard link wg0 in the host namespace and move it in",
            "vpn: set link wg0 up in namespace vpn",
            "vpn: add address 10.66.0.2/32 to wg0 in namespace vpn",
            "vpn: add route 0.0.0.0/0 dev wg0",
            "vpn: add route ::/0 dev wg0",
        ]
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n.message.contains("wireguard-go runs elsewhere")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn partial_run_keeps_other_namespaces_rules() {
    let all = desired(LAB);
    let mut observed = converged(&all);
    // `apply db`: web is outside the run, and its recorded rules stay in the host table.
    let mut only_db = all.clone();
    only_db.namespaces.retain(|name, _| name == "db");
    observed.namespaces.retain(|name, _| name == "db");
    let web = links::host_rules(&all.namespaces["web"].config);
    observed
        .host
        .as_mut()
        .unwrap()
        .other_rules
        .insert("web".into(), web);
    let plan = plan(&only_db, &observed);
    assert_eq!(actions(&plan.steps), Vec::<String>::new());
}

#[test]
fn foreign_bridge_use_is_reported() {
    let desired = desired(LAB);
    let mut observed = converged(&desired);
    let host = observed.host.as_mut().unwrap();
    // br-lab was there before netnsctl, down and without addresses.
    host.record.bridges.clear();
    let net = host.net.as_mut().unwrap();
    let index = net.link("br-lab").unwrap().index;
    net.addresses.retain(|a| a.index != index);
    net.links.iter_mut().find(|l| l.index == index).unwrap().up = false;
    let plan = plan(&desired, &observed);
    assert_eq!(
        actions(&plan.steps),
        [
            "host: set link br-lab up in the host namespace",
            "host: add address 10.90.0.1/24 to br-lab in the host namespace",
        ]
    );
    assert!(
        plan.notes.iter().any(|n| n
            .message
            .contains("bridge br-lab exists and was not created by netnsctl")),
        "{:?}",
        plan.notes
    );
    // Once the bridge is converged, there is nothing to report.
    let mut converged_bridge = converged(&desired);
    converged_bridge
        .host
        .as_mut()
        .unwrap()
        .record
        .bridges
        .clear();
    assert!(crate::plan::plan(&desired, &converged_bridge)
        .notes
        .is_empty());
}

#[test]
fn partial_run_keeps_bridge_of_other_namespace() {
    let all = desired(LAB);
    let mut observed = converged(&all);
    // `apply x` with another config that declares neither br-lab nor lab-a.
    let only_x = desired("[namespaces.x]\n");
    observed.namespaces.clear();
    let host = observed.host.as_mut().unwrap();
    host.other_host_links
        .insert("lab-a".into(), vec!["ve-lab-a".into()]);
    host.other_rules.insert(
        "web".into(),
        links::host_rules(&all.namespaces["web"].config),
    );
    let plan = plan(&only_x, &observed);
    assert!(
        !actions(&plan.steps).iter().any(|s| s.contains("bridge")),
        "{:?}",
        plan.steps
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n.message.contains("host link ve-lab-a of namespace lab-a")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn undeclared_bridge_without_ports_is_deleted() {
    let all = desired(LAB);
    let mut observed = converged(&all);
    let only_x = desired("[namespaces.x]\n");
    observed.namespaces.clear();
    let plan = plan(&only_x, &observed);
    assert!(
        actions(&plan.steps).contains(&"host: delete bridge br-lab".to_owned()),
        "{:?}",
        plan.steps
    );
}

#[test]
fn last_mapping_removed_deletes_host_table() {
    let before = desired(LAB);
    let observed = converged(&before);
    let without = LAB.replace(
        "[[namespaces.web.port_mapping]]\nprotocol = \"tcp\"\nhost_port = 8080\nport = 80\n",
        "",
    );
    let plan = plan(&desired(&without), &observed);
    assert_eq!(
        actions(&plan.steps),
        ["host: delete nftables table inet netnsctl"]
    );
}

#[test]
fn link_steps_serialize_with_action_tag() {
    let peer = Step::SetWireGuardPeer {
        namespace: "vpn".into(),
        link: "wg0".into(),
        public_key: KEY_B.into(),
    };
    let json = serde_json::to_value(&peer).unwrap();
    assert_eq!(json["action"], "set-wireguard-peer");
    assert_eq!(json["public_key"], KEY_B);

    let table = Step::LoadHostTable {
        reason: "rules changed".into(),
        text: "table inet netnsctl {}".into(),
    };
    let json = serde_json::to_value(&table).unwrap();
    assert_eq!(json["action"], "load-host-table");
    assert!(json.get("text").is_none(), "{json}");

    let address = Step::AddAddress {
        namespace: "web".into(),
        netns: None,
        link: "ve-web".into(),
        address: "10.77.0.1/30".parse().unwrap(),
    };
    let json = serde_json::to_value(&address).unwrap();
    assert_eq!(json["netns"], serde_json::Value::Null);
    assert_eq!(json["address"], "10.77.0.1/30");
}
