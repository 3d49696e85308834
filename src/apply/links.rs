//! The link phase of apply: runs after every namespace of the run exists, in plan order. Netlink
//! sockets are opened once per namespace on a short-lived thread inside it and reused. Sysctls,
//! nft and wireguard-go for the host run on threads inside the host namespace
//! ([`netns::host_netns_path`]).
//!
//! Records are written before each change that creates something, so a run killed halfway
//! leaves every made link owned and the next `down` or `apply` finds it.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;

use netlink_packet_route::link::InfoKind;

use super::{finish, step_boundary, Outcome};
use crate::config::validate::split_endpoint;
use crate::desired::{links, Desired, WireGuardPeerSpec, WireGuardSpec};
use crate::kernel::netlink::{LinkId, Netlink};
use crate::kernel::wireguard::{self, DeviceChange, PeerConfig};
use crate::kernel::{netns, nft, sysctl};
use crate::plan::Step;
use crate::state::{self, HostRecord, Record, RouteRecord, WireGuardBackend, WireGuardRecord};

/// Open sockets and loaded records for one link phase.
/// rtnetlink sockets kept open at once; see [`Context::netlink`].
const OPEN_SOCKETS: usize = 16;

struct Context<'a> {
    desired: &'a Desired,
    sockets: BTreeMap<Option<String>, Netlink>,
    records: BTreeMap<String, Record>,
    host_record: HostRecord,
}

impl Context<'_> {
    fn netlink(&mut self, netns: &Option<String>) -> Result<&mut Netlink, String> {
        if !self.sockets.contains_key(netns) {
            let socket = match netns {
                None => netns::in_host_netns(Netlink::open)
                    .and_then(|socket| socket)
                    .map_err(|err| {
                        format!("cannot open rtnetlink socket in the host namespace: {err}")
                    })?,
                Some(name) => netns::in_netns(&netns::netns_path(name), Netlink::open)
                    .and_then(|socket| socket)
                    .map_err(|err| {
                        format!("cannot open rtnetlink socket in namespace {name}: {err}")
                    })?,
            };
            // Link steps come namespace by namespace, so sockets of earlier namespaces are
            // seldom needed again. Keeping all of them open kept 1000 sockets and their buffers
            // for 1000 namespaces.
            if self.sockets.len() >= OPEN_SOCKETS {
                self.sockets.retain(|netns, _| netns.is_none());
            }
            self.sockets.insert(netns.clone(), socket);
        }
        Ok(self.sockets.get_mut(netns).expect("inserted above"))
    }

    fn link_index(&mut self, netns: &Option<String>, link: &str) -> Result<u32, String> {
        let netlink = self.netlink(netns)?;
        netlink
            .get_link(LinkId::Name(link))
            .map_err(|err| err.to_string())?
            .map(|found| found.index)
            .ok_or_else(|| format!("link {link} not found in {}", describe_netns(netns)))
    }

    fn record(&mut self, namespace: &str) -> Result<&mut Record, String> {
        if !self.records.contains_key(namespace) {
            let record = state::read_record(namespace)
                .map_err(|err| err.to_string())?
                .unwrap_or_default();
            self.records.insert(namespace.to_owned(), record);
        }
        Ok(self.records.get_mut(namespace).expect("inserted above"))
    }

    fn save(&mut self, namespace: &str) -> Result<(), String> {
        let record = self.record(namespace)?;
        record.version = state::RECORD_VERSION;
        let record = record.clone();
        state::write_record(namespace, &record)
            .map_err(|err| format!("cannot write state record: {err}"))
    }

    fn save_host(&self) -> Result<(), String> {
        state::write_host_record(&self.host_record)
            .map_err(|err| format!("cannot write host state record: {err}"))
    }

    fn wireguard_spec(&self, namespace: &str, link: &str) -> Result<WireGuardSpec, String> {
        self.desired
            .namespaces
            .get(namespace)
            .and_then(|spec| spec.wireguard.iter().find(|wg| wg.link == link))
            .cloned()
            .ok_or_else(|| format!("WireGuard link {link} is not declared"))
    }
}

fn describe_netns(netns: &Option<String>) -> String {
    match netns {
        Some(name) => format!("namespace {name}"),
        None => "the host namespace".to_owned(),
    }
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Returns "NAMESPACE: STEP: REASON" for a failed step. Netlink errors already start with the
/// step's action and object ("add route 10.0.0.0/8 via 10.1.0.1: Network is unreachable"), and
/// then the action is not repeated.
fn failure_message(step: &Step, reason: &str) -> String {
    let namespace = step.namespace();
    let described = step.to_string();
    let action = described
        .strip_prefix(&format!("{namespace}: "))
        .unwrap_or(&described);
    if reason.starts_with(action) {
        format!("{namespace}: {reason}")
    } else {
        format!("{described}: {reason}")
    }
}

/// Runs the link steps of a plan.
pub fn apply_links(desired: &Desired, steps: &[&Step], outcome: &mut Outcome) {
    let mut context = Context {
        desired,
        sockets: BTreeMap::new(),
        records: BTreeMap::new(),
        host_record: state::read_host_record().unwrap_or_default(),
    };
    for step in steps {
        match run_step(&mut context, step, outcome) {
            Ok(()) => finish(step, outcome),
            Err(message) => {
                outcome.failures.push(failure_message(step, &message));
                step_boundary();
            }
        }
    }
    // Each owned namespace records its share of the host table, so `down` can rebuild the table
    // without it from the records alone.
    for (name, spec) in &desired.namespaces {
        if !matches!(state::read_record(name), Ok(Some(_))) {
            continue;
        }
        let rules = links::host_rules(&spec.config);
        let changed = match context.record(name) {
            Ok(record) if record.host_rules != rules => {
                record.host_rules = rules;
                true
            }
            _ => false,
        };
        if changed {
            if let Err(err) = context.save(name) {
                outcome.failures.push(format!("{name}: {err}"));
            }
        }
    }
}

fn run_step(context: &mut Context, step: &Step, outcome: &mut Outcome) -> Result<(), String> {
    match step {
        Step::CreateBridge { bridge } => {
            push_unique(&mut context.host_record.bridges, bridge.clone());
            context.save_host()?;
            context
                .netlink(&None)?
                .add_link(bridge, InfoKind::Bridge)
                .map_err(|err| err.to_string())
        }
        Step::DeleteBridge { bridge } => {
            let index = context.link_index(&None, bridge)?;
            context
                .netlink(&None)?
                .del_link(index)
                .map_err(|err| err.to_string())?;
            context.host_record.bridges.retain(|name| name != bridge);
            context.save_host()
        }
        Step::CreateVeth {
            namespace,
            link,
            peer,
            peer_netns,
        } => {
            let record = context.record(namespace)?;
            push_unique(&mut record.veths, link.clone());
            if peer_netns.is_none() {
                push_unique(&mut record.host_links, peer.clone());
            }
            context.save(namespace)?;
            let own =
                netns::open_netns(&netns::netns_path(namespace)).map_err(|err| err.to_string())?;
            // Both ends name their namespace, the host end too (this process's namespace), so
            // neither is ever created in the wrong place and renamed or moved afterwards.
            let peer_file = match peer_netns {
                Some(name) => netns::open_netns(&netns::netns_path(name)),
                None => netns::open_netns(&netns::host_netns_path()),
            }
            .map_err(|err| err.to_string())?;
            context
                .netlink(&None)?
                .add_veth(
                    link,
                    Some(own.as_raw_fd()),
                    peer,
                    Some(peer_file.as_raw_fd()),
                )
                .map_err(|err| err.to_string())
        }
        Step::DeleteVeth { namespace, link } => {
            let own = Some(namespace.clone());
            let index = context.link_index(&own, link)?;
            context
                .netlink(&own)?
                .del_link(index)
                .map_err(|err| err.to_string())?;
            // The host end went with the pair; forget host ends that no longer exist.
            let host_links = context.record(namespace)?.host_links.clone();
            let mut remaining = Vec::new();
            for host_link in host_links {
                if context.link_index(&None, &host_link).is_ok() {
                    remaining.push(host_link);
                }
            }
            let record = context.record(namespace)?;
            record.veths.retain(|name| name != link);
            record.host_links = remaining;
            context.save(namespace)
        }
        Step::SetBridgePort { link, bridge, .. } => {
            let bridge_index = context.link_index(&None, bridge)?;
            let index = context.link_index(&None, link)?;
            context
                .netlink(&None)?
                .set_link_controller(index, bridge_index)
                .map_err(|err| err.to_string())
        }
        Step::SetLinkUpIn { netns, link, .. } => {
            let index = context.link_index(netns, link)?;
            context
                .netlink(netns)?
                .set_link_up(index, true)
                .map_err(|err| err.to_string())
        }
        Step::AddAddress {
            netns,
            link,
            address,
            ..
        } => {
            let index = context.link_index(netns, link)?;
            match context.netlink(netns)?.add_address(index, address) {
                Err(err) if err.errno() == Some(libc::EEXIST) => Ok(()),
                other => other.map_err(|err| err.to_string()),
            }
        }
        Step::RemoveAddress {
            netns,
            link,
            address,
            ..
        } => {
            let index = context.link_index(netns, link)?;
            context
                .netlink(netns)?
                .del_address(index, address)
                .map_err(|err| err.to_string())
        }
        Step::SetHostSysctl {
            key,
            value,
            current,
            ..
        } => {
            if key == "net.ipv4.ip_forward" && context.host_record.ip_forward_before.is_none() {
                context.host_record.ip_forward_before =
                    Some(current.clone().unwrap_or_else(|| "0".into()));
                context.save_host()?;
            }
            netns::in_host_netns(|| sysctl::write(key, value))
                .and_then(|written| written)
                .map_err(|err| format!("cannot set {key} = {value}: {err}"))
        }
        Step::AddRoute {
            namespace,
            destination,
            gateway,
            dev,
        } => {
            let own = Some(namespace.clone());
            let oif = match dev {
                Some(dev) => Some(context.link_index(&own, dev)?),
                None => None,
            };
            let route = RouteRecord {
                destination: *destination,
                gateway: *gateway,
                dev: dev.clone(),
            };
            push_unique(&mut context.record(namespace)?.routes, route);
            context.save(namespace)?;
            match context.netlink(&own)?.add_route(destination, *gateway, oif) {
                Err(err) if err.errno() == Some(libc::EEXIST) => Err(format!(
                    "{err}: another route to {destination} exists; remove it or change `to`"
                )),
                Err(err) if err.errno() == Some(libc::ENETUNREACH) && gateway.is_some() => {
                    let gateway = gateway.expect("checked by the guard");
                    let key = context
                        .desired
                        .namespaces
                        .get(namespace)
                        .and_then(|spec| {
                            spec.config
                                .route
                                .iter()
                                .position(|r| r.via == Some(gateway))
                        })
                        .map(|i| {
                            format!(
                                "namespaces.{}.route[{i}].via = \"{gateway}\"",
                                crate::config::validate::key_part(namespace)
                            )
                        })
                        .unwrap_or_else(|| format!("gateway {gateway}"));
                    Err(format!(
                        "{}: {key} is on no network of the links of namespace {namespace}; use a \
                         gateway inside the network of one of their addresses",
                        io::Error::from_raw_os_error(libc::ENETUNREACH)
                    ))
                }
                other => other.map_err(|err| err.to_string()),
            }
        }
        Step::RemoveRoute {
            namespace,
            destination,
            gateway,
            dev,
        } => {
            let own = Some(namespace.clone());
            let oif = match dev {
                Some(dev) => context.link_index(&own, dev).ok(),
                None => None,
            };
            match context.netlink(&own)?.del_route(destination, *gateway, oif) {
                Err(err) if err.errno() != Some(libc::ESRCH) => return Err(err.to_string()),
                _ => {}
            }
            context.record(namespace)?.routes.retain(|route| {
                !(route.destination == *destination
                    && route.gateway == *gateway
                    && &route.dev == dev)
            });
            context.save(namespace)
        }
        Step::MoveLinkIn { namespace, link } => {
            push_unique(&mut context.record(namespace)?.moved_links, link.clone());
            context.save(namespace)?;
            let index = context.link_index(&None, link)?;
            let file =
                netns::open_netns(&netns::netns_path(namespace)).map_err(|err| err.to_string())?;
            context
                .netlink(&None)?
                .set_link_netns(index, file.as_raw_fd(), None)
                .map_err(|err| err.to_string())
        }
        Step::CreateWireGuard {
            namespace,
            link,
            underlay,
        } => create_wireguard(context, namespace, link, underlay, outcome),
        Step::DeleteWireGuard { namespace, link } => {
            let record = context.record(namespace)?;
            if let Some(wg) = record.wireguard.iter().find(|wg| &wg.link == link).cloned() {
                delete_wireguard(namespace, &wg)?;
            }
            context
                .record(namespace)?
                .wireguard
                .retain(|wg| &wg.link != link);
            context.save(namespace)
        }
        Step::SetWireGuardInterface {
            namespace, link, ..
        } => {
            let spec = context.wireguard_spec(namespace, link)?;
            let record = wireguard_record(context, namespace, link)?;
            let change = DeviceChange {
                private_key: Some(spec.private_key.0.clone()),
                listen_port: spec.listen_port,
                ..DeviceChange::default()
            };
            wireguard::set_device(namespace, &record, &change).map_err(|err| err.to_string())
        }
        Step::SetWireGuardPeer {
            namespace,
            link,
            public_key,
        } => {
            let spec = context.wireguard_spec(namespace, link)?;
            let record = wireguard_record(context, namespace, link)?;
            let peer = spec
                .peers
                .iter()
                .find(|peer| &peer.public_key == public_key)
                .ok_or_else(|| format!("peer {public_key} is not declared"))?
                .clone();
            let config = in_underlay(&record.underlay, move || peer_config(&peer))??;
            let change = DeviceChange {
                peers: vec![config],
                ..DeviceChange::default()
            };
            wireguard::set_device(namespace, &record, &change).map_err(|err| err.to_string())
        }
        Step::RemoveWireGuardPeer {
            namespace,
            link,
            public_key,
        } => {
            let record = wireguard_record(context, namespace, link)?;
            let change = DeviceChange {
                remove_peers: vec![public_key.clone()],
                ..DeviceChange::default()
            };
            wireguard::set_device(namespace, &record, &change).map_err(|err| err.to_string())
        }
        Step::LoadHostTable { text, .. } => {
            let loaded = netns::in_host_netns(|| {
                nft::replace_table("inet", links::HOST_TABLE, text).map_err(|err| {
                    format!("host table not loaded, the previous one stays: {err}")
                })?;
                nft::list_table("inet", links::HOST_TABLE).map_err(|err| err.to_string())
            });
            let listing = loaded.map_err(|err| err.to_string())??;
            context.host_record.table_digest = Some(crate::desired::hex_digest(text.as_bytes()));
            context.host_record.table_listing_digest =
                listing.map(|listing| crate::desired::hex_digest(listing.as_bytes()));
            context.save_host()
        }
        Step::DeleteHostTable => {
            netns::in_host_netns(|| nft::delete_table("inet", links::HOST_TABLE))
                .map_err(|err| err.to_string())?
                .map_err(|err| err.to_string())?;
            context.host_record.table_digest = None;
            context.host_record.table_listing_digest = None;
            context.save_host()
        }
        Step::CreateNamespace { .. }
        | Step::ReplaceStaleFile { .. }
        | Step::AdoptNamespace { .. }
        | Step::SetLinkUp { .. }
        | Step::SetSysctl { .. }
        | Step::RestoreSysctl { .. }
        | Step::LoadRuleset { .. }
        | Step::FlushRuleset { .. }
        | Step::WriteResolvConf { .. } => Ok(()),
    }
}

fn wireguard_record(
    context: &mut Context,
    namespace: &str,
    link: &str,
) -> Result<WireGuardRecord, String> {
    context
        .record(namespace)?
        .wireguard
        .iter()
        .find(|wg| wg.link == link)
        .cloned()
        .ok_or_else(|| format!("WireGuard link {link} has no record"))
}

/// Runs `f` on a thread inside the underlay: the host namespace for `None`.
fn in_underlay<T: Send>(
    underlay: &Option<String>,
    f: impl FnOnce() -> T + Send,
) -> Result<T, String> {
    match underlay {
        None => netns::in_host_netns(f).map_err(|err| err.to_string()),
        Some(name) => netns::in_netns(&netns::netns_path(name), f).map_err(|err| err.to_string()),
    }
}

/// Resolves a peer's endpoint in the calling thread's namespace. A host name is looked up with
/// the system resolver; the first address returned is used.
// NOTE: the resolver reads netnsctl's own /etc/resolv.conf, also when the underlay is a named
// namespace with its own /etc/netns/NAME/resolv.conf; only the DNS packets use the underlay.
fn peer_config(peer: &WireGuardPeerSpec) -> Result<PeerConfig, String> {
    let endpoint = match &peer.endpoint {
        None => None,
        Some(text) => {
            let (host, port) =
                split_endpoint(text).ok_or_else(|| format!("invalid endpoint {text:?}"))?;
            let found: Option<SocketAddr> = (host, port)
                .to_socket_addrs()
                .map_err(|err| format!("cannot resolve endpoint {text:?}: {err}"))?
                .next();
            Some(found.ok_or_else(|| format!("endpoint {text:?} resolved to no address"))?)
        }
    };
    Ok(PeerConfig {
        public_key: peer.public_key.clone(),
        preshared_key: peer.preshared_key.as_ref().map(|key| key.0.clone()),
        endpoint,
        allowed_ips: peer.allowed_ips.clone(),
        persistent_keepalive: peer.persistent_keepalive,
    })
}

/// Whether a failed `RTM_NEWLINK` of kind wireguard means the kernel has no WireGuard module:
/// the kernel returns EOPNOTSUPP for an unknown link kind once loading the module failed.
fn is_missing_kernel_support(errno: Option<i32>) -> bool {
    matches!(errno, Some(libc::EOPNOTSUPP) | Some(libc::ENODEV))
}

/// Creates the link under its underlay name with the kernel module, or else starts wireguard-go.
fn start_link(underlay_name: &str) -> Result<(WireGuardBackend, Option<u32>), String> {
    let mut netlink =
        Netlink::open().map_err(|err| format!("cannot open rtnetlink socket: {err}"))?;
    // The name is netnsctl's own; a link left with it by an interrupted run goes first.
    if let Some(stale) = netlink
        .get_link(LinkId::Name(underlay_name))
        .map_err(|err| err.to_string())?
    {
        tracing::warn!(
            link = underlay_name,
            "deleting a WireGuard link left by an earlier run"
        );
        netlink
            .del_link(stale.index)
            .map_err(|err| err.to_string())?;
    }
    match netlink.add_link(underlay_name, InfoKind::Wireguard) {
        Ok(()) => Ok((WireGuardBackend::Kernel, None)),
        Err(err) if is_missing_kernel_support(err.errno()) => {
            tracing::info!(link = underlay_name, %err, "no WireGuard kernel module; starting wireguard-go");
            let pid = wireguard::start_userspace(underlay_name).map_err(|err| err.to_string())?;
            Ok((WireGuardBackend::Userspace, Some(pid)))
        }
        Err(err) => Err(err.to_string()),
    }
}

/// Configures the link in its underlay (endpoints resolved there), then moves it into the
/// namespace under its final name.
fn configure_and_move(
    spec: &WireGuardSpec,
    record: &WireGuardRecord,
    namespace: &str,
) -> Result<(), String> {
    let mut peers = Vec::new();
    for peer in &spec.peers {
        peers.push(peer_config(peer)?);
    }
    let change = DeviceChange {
        private_key: Some(spec.private_key.0.clone()),
        listen_port: spec.listen_port,
        replace_peers: true,
        peers,
        remove_peers: Vec::new(),
    };
    match record.backend {
        WireGuardBackend::Kernel => wireguard::kernel_set(&record.underlay_name, &change),
        WireGuardBackend::Userspace => {
            let socket = record
                .socket
                .clone()
                .expect("userspace records have a socket");
            wireguard::uapi_set(&socket, &change)
        }
    }
    .map_err(|err| format!("cannot configure {}: {err}", record.underlay_name))?;

    let mut netlink =
        Netlink::open().map_err(|err| format!("cannot open rtnetlink socket: {err}"))?;
    let index = netlink
        .get_link(LinkId::Name(&record.underlay_name))
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("link {} vanished from the underlay", record.underlay_name))?
        .index;
    let file = netns::open_netns(&netns::netns_path(namespace)).map_err(|err| err.to_string())?;
    netlink
        .set_link_netns(index, file.as_raw_fd(), Some(&record.link))
        .map_err(|err| err.to_string())
}

fn create_wireguard(
    context: &mut Context,
    namespace: &str,
    link: &str,
    underlay: &Option<String>,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let spec = context.wireguard_spec(namespace, link)?;
    // A recorded link that vanished (its wireguard-go exited, say) is cleaned up first.
    if let Some(old) = context
        .record(namespace)?
        .wireguard
        .iter()
        .find(|wg| wg.link == link)
        .cloned()
    {
        delete_wireguard(namespace, &old)?;
        context
            .record(namespace)?
            .wireguard
            .retain(|wg| wg.link != link);
        context.save(namespace)?;
    }
    let underlay_name = wireguard::underlay_name(namespace, link);
    let name = underlay_name.clone();
    let (backend, pid) = in_underlay(underlay, move || start_link(&name))??;
    let record = WireGuardRecord {
        link: link.to_owned(),
        underlay_name: underlay_name.clone(),
        underlay: underlay.clone(),
        backend,
        pid,
        socket: (backend == WireGuardBackend::Userspace)
            .then(|| wireguard::uapi_socket(&underlay_name)),
    };
    context.record(namespace)?.wireguard.push(record.clone());
    context.save(namespace)?;

    let moved = {
        let record = record.clone();
        let namespace = namespace.to_owned();
        in_underlay(underlay, move || {
            configure_and_move(&spec, &record, &namespace)
        })
        .and_then(|result| result)
    };
    if let Err(err) = moved {
        let cleanup = match record.backend {
            WireGuardBackend::Userspace => {
                wireguard::stop_userspace(record.pid, record.socket.as_deref())
                    .map_err(|err| err.to_string())
            }
            WireGuardBackend::Kernel => {
                let name = record.underlay_name.clone();
                in_underlay(underlay, move || delete_link_here(&name)).and_then(|result| result)
            }
        };
        if cleanup.is_ok() {
            context
                .record(namespace)?
                .wireguard
                .retain(|wg| wg.link != link);
            context.save(namespace)?;
        }
        return Err(err);
    }
    let message = format!("{namespace}: WireGuard link {link} runs on the {backend} backend");
    tracing::info!(namespace, link, %backend, "WireGuard backend");
    outcome.notes.push(message);
    Ok(())
}

fn delete_link_here(name: &str) -> Result<(), String> {
    let mut netlink =
        Netlink::open().map_err(|err| format!("cannot open rtnetlink socket: {err}"))?;
    if let Some(found) = netlink
        .get_link(LinkId::Name(name))
        .map_err(|err| err.to_string())?
    {
        netlink
            .del_link(found.index)
            .map_err(|err| err.to_string())?;
    }
    Ok(())
}

/// Stops a WireGuard link: wireguard-go is stopped (its TUN link goes with it), a kernel link is
/// deleted inside the namespace.
pub fn delete_wireguard(namespace: &str, record: &WireGuardRecord) -> Result<(), String> {
    match record.backend {
        WireGuardBackend::Userspace => {
            wireguard::stop_userspace(record.pid, record.socket.as_deref())
                .map_err(|err| format!("cannot stop wireguard-go for {}: {err}", record.link))
        }
        WireGuardBackend::Kernel => {
            let path = netns::netns_path(namespace);
            if !matches!(netns::inspect(&path), Ok(netns::NetnsFile::Attached { .. })) {
                return Ok(());
            }
            let link = record.link.clone();
            netns::in_netns(&path, move || delete_link_here(&link))
                .map_err(|err| err.to_string())
                .and_then(|result| result)
        }
    }
}

/// Moves a link from the calling thread's namespace socket `netlink` into the host namespace.
pub fn move_link_to_host(netlink: &mut Netlink, link: &str) -> io::Result<bool> {
    let Some(found) = netlink
        .get_link(LinkId::Name(link))
        .map_err(|err| io::Error::other(err.to_string()))?
    else {
        return Ok(false);
    };
    let host = netns::open_netns(&netns::host_netns_path())?;
    netlink
        .set_link_netns(found.index, host.as_raw_fd(), None)
        .map_err(|err| io::Error::other(err.to_string()))?;
    Ok(true)
}
