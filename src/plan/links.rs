//! The link part of the plan: bridges, veth pairs, WireGuard links, moved links, addresses,
//! routes and the host table. Pure like the rest of the plan.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::{note, note_unmet, Level, Plan, Step, Unmet};
use crate::desired::{hex_digest, links, Desired, NamespaceSpec, WireGuardSpec};
use crate::kernel::wireguard::Device;
use crate::observe::links::{route_localnet_key, NetState, ObservedHost};
use crate::observe::Observed;
use crate::state::{HostRules, Record};

/// Steps collected per kind, concatenated in dependency order at the end.
#[derive(Default)]
struct Buckets {
    bridges: Vec<Step>,
    deletes: Vec<Step>,
    creates: Vec<Step>,
    ports: Vec<Step>,
    wireguard: Vec<Step>,
    ups: Vec<Step>,
    address_removes: Vec<Step>,
    address_adds: Vec<Step>,
    sysctls: Vec<Step>,
    route_removes: Vec<Step>,
    route_adds: Vec<Step>,
    table: Vec<Step>,
    bridge_deletes: Vec<Step>,
    /// New WireGuard links, with their namespace's routes: created once the underlay's veths,
    /// addresses and routes are in place, because a link may send its first handshake to the
    /// endpoint as soon as it is configured.
    late: Vec<Step>,
}

impl Buckets {
    fn into_steps(self) -> Vec<Step> {
        [
            self.bridges,
            self.deletes,
            self.creates,
            self.ports,
            self.wireguard,
            self.ups,
            self.address_removes,
            self.address_adds,
            self.sysctls,
            self.route_removes,
            self.route_adds,
            self.late,
            self.table,
            self.bridge_deletes,
        ]
        .concat()
    }
}

/// Whether an address is one the kernel adds by itself (IPv6 link-local).
fn is_kernel_address(address: &IpNet) -> bool {
    match address {
        IpNet::V6(v6) => (v6.addr().segments()[0] & 0xffc0) == 0xfe80,
        IpNet::V4(_) => false,
    }
}

/// Plans address changes on one link: add what is missing, remove what netnsctl's link has but
/// the config does not declare. `current` is `None` for a link about to be created.
fn plan_addresses(
    buckets: &mut Buckets,
    namespace: &str,
    netns: &Option<String>,
    link: &str,
    wanted: &[IpNet],
    current: Option<Vec<IpNet>>,
) {
    let current = current.unwrap_or_default();
    for address in &current {
        if !is_kernel_address(address) && !wanted.contains(address) {
            buckets.address_removes.push(Step::RemoveAddress {
                namespace: namespace.to_owned(),
                netns: netns.clone(),
                link: link.to_owned(),
                address: *address,
            });
        }
    }
    for address in wanted {
        if !current.contains(address) {
            buckets.address_adds.push(Step::AddAddress {
                namespace: namespace.to_owned(),
                netns: netns.clone(),
                link: link.to_owned(),
                address: *address,
            });
        }
    }
}

fn plan_up(buckets: &mut Buckets, namespace: &str, netns: &Option<String>, link: &str, up: bool) {
    if !up {
        buckets.ups.push(Step::SetLinkUpIn {
            namespace: namespace.to_owned(),
            netns: netns.clone(),
            link: link.to_owned(),
        });
    }
}

/// Computes the link steps for the namespaces netnsctl manages in this plan. `managed` lists
/// each with whether this plan creates it.
pub fn plan_links(
    desired: &Desired,
    observed: &Observed,
    host: &ObservedHost,
    managed: &[(&NamespaceSpec, bool)],
    plan: &mut Plan,
) {
    let mut buckets = Buckets::default();
    for error in &host.errors {
        note(plan, super::HOST, Level::Warning, error.clone());
    }
    let Some(host_net) = host.net.as_ref() else {
        return;
    };
    let empty = NetState::default();
    let fresh_names: Vec<&str> = managed
        .iter()
        .filter(|(_, fresh)| *fresh)
        .map(|(spec, _)| spec.name.as_str())
        .collect();
    // A namespace created by this plan has no links yet, whatever an old observation shows.
    let net_of = |netns: &Option<String>| -> Option<&NetState> {
        match netns {
            None => Some(host_net),
            Some(name) if fresh_names.contains(&name.as_str()) => Some(&empty),
            Some(name) => observed.net.get(name),
        }
    };

    plan_bridges(desired, host, host_net, &mut buckets, plan);

    let mut all_rules: BTreeMap<String, HostRules> = host.other_rules.clone();
    for (spec, fresh) in managed {
        let name = spec.name.as_str();
        // The record lists netnsctl's links only while the namespace is the one it recorded.
        let record = match observed.namespaces.get(name) {
            Some(seen) if !fresh && seen.owned() => seen.record.clone().unwrap_or_default(),
            _ => Record::default(),
        };
        let own: Option<String> = Some(name.to_owned());
        let Some(net) = net_of(&own) else {
            continue;
        };
        let stale: Vec<&String> = observed
            .stale_wireguard
            .iter()
            .filter(|((namespace, _), _)| namespace == name)
            .map(|((_, link), reason)| {
                note(
                    plan,
                    name,
                    Level::Warning,
                    format!("WireGuard link {link}: {reason}; the link is created again"),
                );
                link
            })
            .collect();
        let pruned;
        let net = if stale.is_empty() {
            net
        } else {
            pruned = without_links(net, &stale);
            &pruned
        };
        let rules = links::host_rules(&spec.config);
        plan_veths(spec, &record, net, &net_of, host, &mut buckets, plan);
        plan_wireguard(spec, &record, net, observed, &net_of, &mut buckets, plan);
        plan_moved_links(spec, &record, net, host_net, &mut buckets, plan);
        let creates_wireguard = buckets.late.iter().any(
            |step| matches!(step, Step::CreateWireGuard { namespace, .. } if namespace == name),
        );
        if creates_wireguard {
            let mut routes = Buckets::default();
            plan_routes(spec, &record, net, &mut routes);
            buckets.route_removes.append(&mut routes.route_removes);
            buckets.late.append(&mut routes.route_adds);
        } else {
            plan_routes(spec, &record, net, &mut buckets);
        }
        for link in links::localnet_links(&rules) {
            let key = route_localnet_key(&link);
            let current = host.sysctls.get(&key).cloned().flatten();
            if current.as_deref() != Some("1") {
                buckets.sysctls.push(Step::SetHostSysctl {
                    namespace: name.to_owned(),
                    key,
                    value: "1".into(),
                    current,
                });
            }
        }
        if !rules.is_empty() {
            all_rules.insert(name.to_owned(), rules);
        }
    }

    let forwarding_needed = all_rules.values().any(|rules| !rules.is_empty());
    let forward_key = "net.ipv4.ip_forward";
    let forward_current = host.sysctls.get(forward_key).cloned().flatten();
    if forwarding_needed && forward_current.as_deref() != Some("1") {
        buckets.sysctls.push(Step::SetHostSysctl {
            namespace: super::HOST.to_owned(),
            key: forward_key.to_owned(),
            value: "1".into(),
            current: forward_current,
        });
    }

    plan_host_table(host, &all_rules, &mut buckets);
    plan.steps.extend(buckets.into_steps());
}

/// Returns `net` without `links` and the addresses and routes on them: what remains once the
/// links are deleted.
fn without_links(net: &NetState, links: &[&String]) -> NetState {
    let removed: Vec<u32> = net
        .links
        .iter()
        .filter(|link| links.contains(&&link.name))
        .map(|link| link.index)
        .collect();
    NetState {
        links: net
            .links
            .iter()
            .filter(|link| !removed.contains(&link.index))
            .cloned()
            .collect(),
        addresses: net
            .addresses
            .iter()
            .filter(|address| !removed.contains(&address.index))
            .cloned()
            .collect(),
        routes: net
            .routes
            .iter()
            .filter(|route| route.oif.is_none_or(|oif| !removed.contains(&oif)))
            .cloned()
            .collect(),
    }
}

fn plan_bridges(
    desired: &Desired,
    host: &ObservedHost,
    host_net: &NetState,
    buckets: &mut Buckets,
    plan: &mut Plan,
) {
    for (bridge, config) in &desired.bridges {
        let netns = None;
        match host_net.link(bridge) {
            None => {
                buckets.bridges.push(Step::CreateBridge {
                    bridge: bridge.clone(),
                });
                plan_up(buckets, super::HOST, &netns, bridge, false);
                plan_addresses(
                    buckets,
                    super::HOST,
                    &netns,
                    bridge,
                    &config.addresses,
                    None,
                );
            }
            Some(link) if link.kind.as_deref() != Some("bridge") => {
                note_unmet(
                    plan,
                    super::HOST,
                    Unmet::NameTaken,
                    format!("host link {bridge} exists and is not a bridge; bridges.{bridge} left alone (rename one of them)"),
                );
            }
            Some(link) => {
                let before = buckets.ups.len() + buckets.address_adds.len();
                plan_up(buckets, super::HOST, &netns, bridge, link.up);
                plan_addresses(
                    buckets,
                    super::HOST,
                    &netns,
                    bridge,
                    &config.addresses,
                    Some(host_net.addresses_of(bridge)),
                );
                let changes = buckets.ups.len() + buckets.address_adds.len() > before;
                if changes && !host.record.bridges.contains(bridge) {
                    note(
                        plan,
                        super::HOST,
                        Level::Warning,
                        format!(
                            "bridge {bridge} exists and was not created by netnsctl; apply sets \
                             it up and adds its addresses, and `down` leaves the bridge, its \
                             state and its addresses in place"
                        ),
                    );
                }
            }
        }
    }
    for bridge in &host.record.bridges {
        if desired.bridges.contains_key(bridge) {
            continue;
        }
        let Some(link) = host_net.link(bridge) else {
            continue;
        };
        if let Some((namespace, port)) = port_of_other_namespace(host, host_net, link.index) {
            note(
                plan,
                super::HOST,
                Level::Warning,
                format!(
                    "bridge {bridge} is no longer declared but is kept, because host link {port} \
                     of namespace {namespace} is its port; add [bridges.{bridge}] back or run \
                     `netnsctl down {namespace}` first"
                ),
            );
            continue;
        }
        buckets.bridge_deletes.push(Step::DeleteBridge {
            bridge: bridge.clone(),
        });
    }
}

/// Returns a namespace outside the run and its host link that is a port of the bridge with
/// index `bridge`.
fn port_of_other_namespace<'a>(
    host: &'a ObservedHost,
    host_net: &NetState,
    bridge: u32,
) -> Option<(&'a str, &'a str)> {
    host.other_host_links.iter().find_map(|(namespace, names)| {
        names
            .iter()
            .find(|name| {
                host_net
                    .link(name)
                    .is_some_and(|link| link.controller == Some(bridge))
            })
            .map(|name| (namespace.as_str(), name.as_str()))
    })
}

fn plan_veths<'a>(
    spec: &NamespaceSpec,
    record: &Record,
    net: &NetState,
    net_of: &dyn Fn(&Option<String>) -> Option<&'a NetState>,
    host: &ObservedHost,
    buckets: &mut Buckets,
    plan: &mut Plan,
) {
    let name = spec.name.as_str();
    let own = Some(name.to_owned());
    let host_net = host.net.as_ref().expect("checked by the caller");
    for veth in &spec.config.veth {
        let peer_netns = veth.peer_namespace.clone();
        let Some(peer_net) = net_of(&peer_netns) else {
            note_unmet(
                plan,
                name,
                Unmet::Missing,
                format!(
                    "veth {}: namespace {} does not exist; apply it first",
                    veth.name,
                    veth.peer_namespace.as_deref().unwrap_or_default()
                ),
            );
            continue;
        };
        let ours = record.veths.contains(&veth.name);
        let (inside, outside) = match (net.link(&veth.name), peer_net.link(&veth.peer)) {
            (Some(_), _) if !ours => {
                note_unmet(
                    plan,
                    name,
                    Unmet::NameTaken,
                    format!(
                        "link {} exists and was not created by netnsctl; veth left alone",
                        veth.name
                    ),
                );
                continue;
            }
            (None, Some(_)) => {
                // The kernel deletes a pair with the namespace it is in, in a worker, shortly
                // after the namespace's last reference is gone.
                let hint = if ours && record.host_links.contains(&veth.peer) {
                    "; netnsctl created a link of that name for this namespace before, so it may \
                     be the end of a pair in a namespace the kernel is still deleting: if so, \
                     the next apply creates the pair"
                } else {
                    ""
                };
                note_unmet(
                    plan,
                    name,
                    Unmet::NameTaken,
                    format!(
                        "link {} already exists in {}; veth {} not created (remove that link or rename `peer`){hint}",
                        veth.peer,
                        super::netns_name(&peer_netns),
                        veth.name
                    ),
                );
                continue;
            }
            (None, None) => {
                buckets.creates.push(Step::CreateVeth {
                    namespace: name.to_owned(),
                    link: veth.name.clone(),
                    peer: veth.peer.clone(),
                    peer_netns: peer_netns.clone(),
                });
                (None, None)
            }
            (Some(inside), outside) => (Some(inside), outside),
        };
        plan_up(
            buckets,
            name,
            &own,
            &veth.name,
            inside.is_some_and(|link| link.up),
        );
        plan_up(
            buckets,
            name,
            &peer_netns,
            &veth.peer,
            outside.is_some_and(|link| link.up),
        );
        plan_addresses(
            buckets,
            name,
            &own,
            &veth.name,
            &veth.addresses,
            inside.map(|_| net.addresses_of(&veth.name)),
        );
        if let Some(bridge) = &veth.peer_bridge {
            let bridge_index = host_net.link(bridge).map(|link| link.index);
            if outside.is_none()
                || outside.and_then(|link| link.controller) != bridge_index
                || bridge_index.is_none()
            {
                buckets.ports.push(Step::SetBridgePort {
                    namespace: name.to_owned(),
                    link: veth.peer.clone(),
                    bridge: bridge.clone(),
                });
            }
        } else {
            plan_addresses(
                buckets,
                name,
                &peer_netns,
                &veth.peer,
                &veth.peer_addresses,
                outside.map(|_| peer_net.addresses_of(&veth.peer)),
            );
        }
    }
    for link in &record.veths {
        let declared = spec.config.veth.iter().any(|veth| &veth.name == link);
        if !declared && net.link(link).is_some() {
            buckets.deletes.push(Step::DeleteVeth {
                namespace: name.to_owned(),
                link: link.clone(),
            });
        }
    }
}

/// Whether an observed peer matches the declared one. An endpoint given as a host name is not
/// compared, because it is resolved only when applied.
// NOTE: a peer that roams away from its declared IP endpoint shows as drift, and apply sets the
// declared endpoint again.
fn peer_matches(
    wanted: &crate::desired::WireGuardPeerSpec,
    seen: &crate::kernel::wireguard::Peer,
) -> bool {
    let mut wanted_ips = wanted.allowed_ips.clone();
    wanted_ips.sort();
    let mut seen_ips = seen.allowed_ips.clone();
    seen_ips.sort();
    let endpoint_matches = match wanted
        .endpoint
        .as_deref()
        .and_then(|e| e.parse::<std::net::SocketAddr>().ok())
    {
        Some(endpoint) => seen.endpoint == Some(endpoint),
        // Without a declared endpoint the peer's roaming address is whatever it last used.
        None => true,
    };
    wanted_ips == seen_ips
        && endpoint_matches
        && wanted.persistent_keepalive.unwrap_or(0) == seen.persistent_keepalive
        && wanted.preshared_key.as_ref().map(|key| key.0.as_str()) == seen.preshared_key.as_deref()
}

/// Plans configuration steps for a running WireGuard link from what it reports.
fn plan_wireguard_device(name: &str, wg: &WireGuardSpec, device: &Device, buckets: &mut Buckets) {
    let key_differs = device.private_key.as_deref() != Some(wg.private_key.0.as_str());
    let port_differs = wg
        .listen_port
        .is_some_and(|port| port != device.listen_port);
    let differs = match (key_differs, port_differs) {
        (true, true) => Some(super::InterfaceDiff::Both),
        (true, false) => Some(super::InterfaceDiff::PrivateKey),
        (false, true) => Some(super::InterfaceDiff::ListenPort),
        (false, false) => None,
    };
    if let Some(differs) = differs {
        buckets.wireguard.push(Step::SetWireGuardInterface {
            namespace: name.to_owned(),
            link: wg.link.clone(),
            differs,
        });
    }
    for peer in &wg.peers {
        let seen = device
            .peers
            .iter()
            .find(|seen| seen.public_key == peer.public_key);
        if !seen.is_some_and(|seen| peer_matches(peer, seen)) {
            buckets.wireguard.push(Step::SetWireGuardPeer {
                namespace: name.to_owned(),
                link: wg.link.clone(),
                public_key: peer.public_key.clone(),
            });
        }
    }
    for seen in &device.peers {
        if !wg
            .peers
            .iter()
            .any(|peer| peer.public_key == seen.public_key)
        {
            buckets.wireguard.push(Step::RemoveWireGuardPeer {
                namespace: name.to_owned(),
                link: wg.link.clone(),
                public_key: seen.public_key.clone(),
            });
        }
    }
}

fn plan_wireguard<'a>(
    spec: &NamespaceSpec,
    record: &Record,
    net: &NetState,
    observed: &Observed,
    net_of: &dyn Fn(&Option<String>) -> Option<&'a NetState>,
    buckets: &mut Buckets,
    plan: &mut Plan,
) {
    let name = spec.name.as_str();
    let own = Some(name.to_owned());
    for wg in &spec.wireguard {
        let ours = record.wireguard.iter().any(|r| r.link == wg.link);
        match net.link(&wg.link) {
            Some(_) if !ours => {
                note_unmet(
                    plan,
                    name,
                    Unmet::NameTaken,
                    format!(
                        "link {} exists and was not created by netnsctl; WireGuard link left alone",
                        wg.link
                    ),
                );
                continue;
            }
            Some(link) => {
                match observed.wireguard.get(&(name.to_owned(), wg.link.clone())) {
                    Some(Ok(device)) => plan_wireguard_device(name, wg, device, buckets),
                    Some(Err(err)) => note(
                        plan,
                        name,
                        Level::Warning,
                        format!(
                            "cannot read the configuration of WireGuard link {}: {err}",
                            wg.link
                        ),
                    ),
                    None => {}
                }
                plan_up(buckets, name, &own, &wg.link, link.up);
                plan_addresses(
                    buckets,
                    name,
                    &own,
                    &wg.link,
                    &wg.addresses,
                    Some(net.addresses_of(&wg.link)),
                );
            }
            None => {
                if net_of(&wg.underlay).is_none() {
                    note_unmet(
                        plan,
                        name,
                        Unmet::Missing,
                        format!(
                            "WireGuard link {}: underlay namespace {} does not exist; apply it first",
                            wg.link,
                            wg.underlay.as_deref().unwrap_or_default()
                        ),
                    );
                    continue;
                }
                buckets.late.push(Step::CreateWireGuard {
                    namespace: name.to_owned(),
                    link: wg.link.clone(),
                    underlay: wg.underlay.clone(),
                });
                let mut link_steps = Buckets::default();
                plan_up(&mut link_steps, name, &own, &wg.link, false);
                plan_addresses(&mut link_steps, name, &own, &wg.link, &wg.addresses, None);
                buckets.late.append(&mut link_steps.ups);
                buckets.late.append(&mut link_steps.address_adds);
            }
        }
    }
    for recorded in &record.wireguard {
        if !spec.wireguard.iter().any(|wg| wg.link == recorded.link) {
            buckets.deletes.push(Step::DeleteWireGuard {
                namespace: name.to_owned(),
                link: recorded.link.clone(),
            });
        }
    }
}

fn plan_moved_links(
    spec: &NamespaceSpec,
    record: &Record,
    net: &NetState,
    host_net: &NetState,
    buckets: &mut Buckets,
    plan: &mut Plan,
) {
    let name = spec.name.as_str();
    for link in &spec.config.interfaces {
        if let Some(found) = net.link(link) {
            plan_up(buckets, name, &Some(name.to_owned()), link, found.up);
        } else if host_net.link(link).is_some() {
            buckets.creates.push(Step::MoveLinkIn {
                namespace: name.to_owned(),
                link: link.clone(),
            });
            plan_up(buckets, name, &Some(name.to_owned()), link, false);
        } else {
            note_unmet(
                plan,
                name,
                Unmet::Missing,
                format!(
                    "interfaces: link {link} exists neither in the host namespace nor in {name}"
                ),
            );
        }
    }
    for link in &record.moved_links {
        if !spec.config.interfaces.contains(link) {
            note(
                plan,
                name,
                Level::Info,
                format!("link {link} is no longer listed in `interfaces`; it moves back to the host on `netnsctl down {name}`"),
            );
        }
    }
}

fn plan_routes(spec: &NamespaceSpec, record: &Record, net: &NetState, buckets: &mut Buckets) {
    let name = spec.name.as_str();
    let wanted = links::routes(&spec.config);
    let present = |route: &crate::state::RouteRecord| {
        let oif = route
            .dev
            .as_deref()
            .map(|dev| net.link(dev).map(|link| link.index));
        net.routes.iter().any(|seen| {
            seen.destination == route.destination
                && seen.gateway == route.gateway
                && oif.is_none_or(|index| index.is_some() && seen.oif == index)
        })
    };
    for route in &record.routes {
        if !wanted.contains(route) && present(route) {
            buckets.route_removes.push(Step::RemoveRoute {
                namespace: name.to_owned(),
                destination: route.destination,
                gateway: route.gateway,
                dev: route.dev.clone(),
            });
        }
    }
    for route in &wanted {
        if !present(route) {
            buckets.route_adds.push(Step::AddRoute {
                namespace: name.to_owned(),
                destination: route.destination,
                gateway: route.gateway,
                dev: route.dev.clone(),
            });
        }
    }
}

fn plan_host_table(
    host: &ObservedHost,
    rules: &BTreeMap<String, HostRules>,
    buckets: &mut Buckets,
) {
    match links::render_host_table(rules) {
        Some(text) => {
            let digest = hex_digest(text.as_bytes());
            let reason = if host.record.table_digest.as_deref() != Some(digest.as_str()) {
                if host.record.table_digest.is_none() {
                    "not loaded yet"
                } else {
                    "rules changed"
                }
            } else if host.table_listing_digest.is_none() {
                "table was deleted outside netnsctl"
            } else if host.table_listing_digest != host.record.table_listing_digest {
                "table was changed outside netnsctl"
            } else {
                return;
            };
            buckets.table.push(Step::LoadHostTable {
                reason: reason.into(),
                text,
            });
        }
        None if host.record.table_digest.is_some() && host.table_listing_digest.is_some() => {
            buckets.table.push(Step::DeleteHostTable);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests;
