//! Observed links, addresses and routes, in the namespaces a run touches and in the host
//! namespace, plus netnsctl's host nftables table and host records.

use std::collections::BTreeMap;

use crate::desired::{links, Desired};
use crate::kernel::netlink::{Address, Link, Netlink, Route};
use crate::kernel::{netns, nft, sysctl, wireguard};
use crate::state::{self, HostRecord, HostRules, Record};

use super::ObservedNamespace;

/// Links, addresses and routes of one network namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetState {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
}

impl NetState {
    /// Reads the calling thread's network namespace.
    pub fn read() -> Result<NetState, String> {
        let mut netlink =
            Netlink::open().map_err(|err| format!("cannot open rtnetlink socket: {err}"))?;
        NetState::read_with(&mut netlink)
    }

    /// Reads the network namespace of an open rtnetlink socket.
    pub fn read_with(netlink: &mut Netlink) -> Result<NetState, String> {
        Ok(NetState {
            links: netlink.dump_links().map_err(|err| err.to_string())?,
            addresses: netlink.dump_addresses().map_err(|err| err.to_string())?,
            routes: netlink.dump_routes().map_err(|err| err.to_string())?,
        })
    }

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|link| link.name == name)
    }

    pub fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|link| link.index == index)
    }

    /// Addresses on the link named `name`.
    pub fn addresses_of(&self, name: &str) -> Vec<ipnet::IpNet> {
        let Some(link) = self.link(name) else {
            return Vec::new();
        };
        self.addresses
            .iter()
            .filter(|address| address.index == link.index)
            .map(|address| address.address)
            .collect()
    }
}

/// State of the host namespace that netnsctl manages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedHost {
    /// Host links and addresses; `None` when they could not be read.
    pub net: Option<NetState>,
    pub record: HostRecord,
    /// Host rules recorded by namespaces outside this run, by namespace.
    pub other_rules: BTreeMap<String, HostRules>,
    /// Host links (veth host ends) recorded by namespaces outside this run, by namespace.
    pub other_host_links: BTreeMap<String, Vec<String>>,
    /// SHA-256 of `nft list table inet netnsctl`; `None` when the table does not exist.
    pub table_listing_digest: Option<String>,
    /// Host sysctls netnsctl may set, with their values; `None` when the key does not exist.
    pub sysctls: BTreeMap<String, Option<String>>,
    pub errors: Vec<String>,
}

/// Returns whether the config, or what netnsctl made on the host, needs the links read, whatever
/// the namespaces' records list. Plain namespaces skip the extra reads.
pub fn config_wants_links(desired: &Desired) -> bool {
    !desired.bridges.is_empty()
        || desired.namespaces.values().any(|spec| {
            let ns = &spec.config;
            !ns.veth.is_empty()
                || !ns.route.is_empty()
                || !ns.port_mapping.is_empty()
                || !spec.wireguard.is_empty()
                || !ns.interfaces.is_empty()
        })
        || state::read_host_record().is_ok_and(|record| record != HostRecord::default())
}

/// Whether a record lists links, routes or host rules netnsctl made.
pub fn has_links(record: &Record) -> bool {
    !record.host_links.is_empty()
        || !record.moved_links.is_empty()
        || !record.veths.is_empty()
        || !record.routes.is_empty()
        || !record.host_rules.is_empty()
        || !record.wireguard.is_empty()
}

/// Namespaces whose links a run reads: the run's own, plus the peers and underlays they name.
pub fn touched_namespaces(desired: &Desired) -> Vec<String> {
    let mut names: Vec<String> = desired.namespaces.keys().cloned().collect();
    for spec in desired.namespaces.values() {
        names.extend(
            spec.config
                .veth
                .iter()
                .filter_map(|veth| veth.peer_namespace.clone()),
        );
        names.extend(spec.wireguard.iter().filter_map(|wg| wg.underlay.clone()));
    }
    names.sort();
    names.dedup();
    names
}

/// Reads the links of every attached namespace in `names`.
pub fn observe_namespaces(names: &[String]) -> (BTreeMap<String, NetState>, Vec<(String, String)>) {
    let results = super::parallel_map(names, |name| {
        let path = netns::netns_path(name);
        match netns::inspect(&path) {
            Ok(netns::NetnsFile::Attached { .. }) => {}
            _ => return None,
        }
        Some(match netns::in_netns(&path, NetState::read) {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(err)) => Err(err),
            Err(err) => Err(err.to_string()),
        })
    });
    let mut states = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, result) in names.iter().zip(results) {
        match result {
            None => {}
            Some(Ok(state)) => {
                states.insert(name.clone(), state);
            }
            Some(Err(err)) => errors.push((name.clone(), format!("cannot read links: {err}"))),
        }
    }
    (states, errors)
}

/// Reads the host side: links, the host table, records of other namespaces and the sysctls
/// netnsctl sets on host links.
pub fn observe_host(desired: &Desired) -> ObservedHost {
    match netns::in_host_netns(|| read_host(desired)) {
        Ok(host) => host,
        Err(err) => ObservedHost {
            errors: vec![format!("cannot enter the host namespace: {err}")],
            ..ObservedHost::default()
        },
    }
}

/// Reads the host side from a thread inside the host namespace.
fn read_host(desired: &Desired) -> ObservedHost {
    let mut host = ObservedHost::default();
    match NetState::read() {
        Ok(net) => host.net = Some(net),
        Err(err) => host.errors.push(format!("cannot read host links: {err}")),
    }
    match state::read_host_record() {
        Ok(record) => host.record = record,
        Err(err) => host.errors.push(err.to_string()),
    }
    for name in state::recorded_namespaces().unwrap_or_default() {
        if desired.namespaces.contains_key(&name) {
            continue;
        }
        if let Ok(Some(record)) = state::read_record(&name) {
            if !record.host_links.is_empty() {
                host.other_host_links
                    .insert(name.clone(), record.host_links);
            }
            if !record.host_rules.is_empty() {
                host.other_rules.insert(name, record.host_rules);
            }
        }
    }
    host.table_listing_digest = match nft::list_table("inet", links::HOST_TABLE) {
        Ok(Some(listing)) => Some(crate::desired::hex_digest(listing.as_bytes())),
        Ok(None) => None,
        Err(err) => {
            host.errors.push(format!(
                "cannot list nftables table inet {}: {err}",
                links::HOST_TABLE
            ));
            None
        }
    };
    let mut keys = vec!["net.ipv4.ip_forward".to_owned()];
    for spec in desired.namespaces.values() {
        for link in links::localnet_links(&links::host_rules(&spec.config)) {
            keys.push(route_localnet_key(&link));
        }
    }
    for key in keys {
        let value = match sysctl::read(&key) {
            Ok(sysctl::SysctlState::Value(value)) | Ok(sysctl::SysctlState::ReadOnly(value)) => {
                Some(value)
            }
            _ => None,
        };
        host.sysctls.insert(key, value);
    }
    host
}

/// Returns the sysctl that lets a link route 127.0.0.0/8 sources (needed after DNAT from the
/// host's loopback). Dots in link names take the '/' form.
pub fn route_localnet_key(link: &str) -> String {
    format!("net.ipv4.conf.{}.route_localnet", link.replace('.', "/"))
}

/// WireGuard configuration read back from a running link, keyed by namespace and link.
pub fn observe_wireguard(
    namespaces: &BTreeMap<String, ObservedNamespace>,
) -> BTreeMap<(String, String), Result<wireguard::Device, String>> {
    let mut found = BTreeMap::new();
    for (name, seen) in namespaces {
        let Some(record) = &seen.record else {
            continue;
        };
        for wg in &record.wireguard {
            let device = wireguard::read_device(name, wg).map_err(|err| err.to_string());
            found.insert((name.clone(), wg.link.clone()), device);
        }
    }
    found
}

/// Finds the recorded WireGuard links whose wireguard-go process no longer carries traffic
/// through the declared underlay: its UAPI socket is gone, or it runs in another network
/// namespace (the underlay was removed and created again, say). Returns the reason for each,
/// keyed by namespace and link.
// NOTE: only the userspace backend is checked. A kernel link keeps its UDP socket in the
// namespace it was created in, which netnsctl does not read back.
pub fn observe_stale_wireguard(
    desired: &Desired,
    namespaces: &BTreeMap<String, ObservedNamespace>,
) -> BTreeMap<(String, String), String> {
    let mut stale = BTreeMap::new();
    for (name, spec) in &desired.namespaces {
        let Some(record) = namespaces.get(name).and_then(|seen| seen.record.as_ref()) else {
            continue;
        };
        for wg in &record.wireguard {
            if wg.backend != state::WireGuardBackend::Userspace {
                continue;
            }
            let Some(declared) = spec.wireguard.iter().find(|s| s.link == wg.link) else {
                continue;
            };
            // A wireguard-go that exited took its TUN link along, so the planner finds that link missing.
            let Some(pid) = wg.pid.filter(|&pid| wireguard::is_wireguard_go(pid)) else {
                continue;
            };
            let socket = wg
                .socket
                .clone()
                .unwrap_or_else(|| wireguard::uapi_socket(&wg.underlay_name));
            let key = (name.clone(), wg.link.clone());
            if !socket.exists() {
                stale.insert(
                    key,
                    format!(
                        "UAPI socket {} of wireguard-go (process {pid}) is gone",
                        socket.display()
                    ),
                );
                continue;
            }
            let underlay = match &declared.underlay {
                None => netns::host_netns_id().ok(),
                Some(underlay) => match netns::inspect(&netns::netns_path(underlay)) {
                    Ok(netns::NetnsFile::Attached { dev, ino }) => Some((dev, ino)),
                    _ => None,
                },
            };
            let running = netns::pid_netns(pid).ok();
            if running.is_some() && running != underlay {
                let declared_name = match &declared.underlay {
                    Some(underlay) => format!("namespace {underlay}"),
                    None => "the host namespace".to_owned(),
                };
                stale.insert(
                    key,
                    format!(
                        "wireguard-go (process {pid}) runs in a network namespace other than \
                         the declared underlay, {declared_name}"
                    ),
                );
            }
        }
    }
    stale
}
