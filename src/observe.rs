//! The observed model: what the kernel and the files under /run and /etc have now.
//!
//! Each namespace is read on its own short-lived thread inside it; namespaces are read in
//! parallel.

pub mod links;

use std::collections::BTreeMap;

use crate::desired::{Desired, NamespaceSpec};
use crate::kernel::netns::{self, NetnsFile};
use crate::kernel::sysctl::{self, SysctlState};
use crate::kernel::{files, netlink::Netlink, nft};
use crate::state::{self, Record};

/// What exists for one namespace name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedNamespace {
    pub file: Option<NetnsFile>,
    pub record: Option<Record>,
    /// State read inside the namespace; `None` when it is not attached or was not read.
    pub inside: Option<Inside>,
    /// Contents of /etc/netns/NAME/resolv.conf; `None` when missing.
    pub resolv_conf: Option<Vec<u8>>,
    /// Problems met while observing, e.g. a symlink at the resolv.conf path.
    pub errors: Vec<String>,
    /// The file is a mount of the host's network namespace or of the one netnsctl runs in,
    /// and no record shows that netnsctl registered it there.
    pub host_namespace: bool,
}

impl ObservedNamespace {
    pub fn attached(&self) -> bool {
        matches!(self.file, Some(NetnsFile::Attached { .. }))
    }

    /// Returns true when a record shows that netnsctl created or adopted the namespace registered
    /// under this name now, not an earlier one that was deleted since.
    pub fn owned(&self) -> bool {
        let Some(record) = &self.record else {
            return false;
        };
        match self.file {
            Some(NetnsFile::Attached { ino, .. }) => {
                !self.host_namespace && record.netns_inode.is_none_or(|recorded| recorded == ino)
            }
            _ => true,
        }
    }
}

/// State read inside a namespace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inside {
    pub lo_up: bool,
    /// Concrete sysctl keys and their state.
    pub sysctls: BTreeMap<String, SysctlState>,
    /// Keys with wildcards and what they expanded to.
    pub globs: BTreeMap<String, Vec<String>>,
    /// nftables generation; `None` when it could not be read.
    pub ruleset_generation: Option<u32>,
}

/// The observed state of the namespaces a run cares about.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    pub namespaces: BTreeMap<String, ObservedNamespace>,
    /// Links, addresses and routes of the run's namespaces and of the namespaces they link to.
    pub net: BTreeMap<String, links::NetState>,
    /// The host side; `None` when the run declares and records no links.
    pub host: Option<links::ObservedHost>,
    /// WireGuard configuration read back from each recorded link, by namespace and link.
    pub wireguard: BTreeMap<(String, String), Result<crate::kernel::wireguard::Device, String>>,
    /// WireGuard links to create again, with the reason, by namespace and link (see
    /// [`links::observe_stale_wireguard`]).
    pub stale_wireguard: BTreeMap<(String, String), String>,
}

/// Observes every namespace of `desired`.
pub fn observe(desired: &Desired) -> Observed {
    let specs: Vec<&NamespaceSpec> = desired.namespaces.values().collect();
    // When the config alone needs the links, each namespace's links are read on the thread that
    // reads the rest of it, with the same rtnetlink socket.
    let config_wants_links = links::config_wants_links(desired);
    let results = parallel_map(&specs, |spec| {
        observe_namespace_with_links(spec, config_wants_links)
    });
    let mut read_links: BTreeMap<String, Result<links::NetState, String>> = BTreeMap::new();
    let mut observed = Observed::default();
    for (spec, (seen, net)) in specs.iter().zip(results) {
        if let Some(net) = net {
            read_links.insert(spec.name.clone(), net);
        }
        observed.namespaces.insert(spec.name.clone(), seen);
    }
    let wants_links = config_wants_links
        || observed
            .namespaces
            .values()
            .any(|seen| seen.record.as_ref().is_some_and(links::has_links));
    if wants_links {
        let unread: Vec<String> = links::touched_namespaces(desired)
            .into_iter()
            .filter(|name| !read_links.contains_key(name))
            .collect();
        let (mut net, mut errors) = links::observe_namespaces(&unread);
        for (name, result) in read_links {
            match result {
                Ok(state) => {
                    net.insert(name, state);
                }
                Err(err) => errors.push((name, format!("cannot read links: {err}"))),
            }
        }
        observed.net = net;
        for (name, error) in errors {
            if let Some(seen) = observed.namespaces.get_mut(&name) {
                seen.errors.push(error);
            }
        }
        observed.host = Some(links::observe_host(desired));
        observed.wireguard = links::observe_wireguard(&observed.namespaces);
        observed.stale_wireguard = links::observe_stale_wireguard(desired, &observed.namespaces);
    }
    observed
}

/// Runs `f` over `items` on a few worker threads and returns the results in order.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    parallel_map_on(workers, items, f)
}

/// Runs `f` over `items` on up to `workers` threads and returns the results in order.
pub fn parallel_map_on<T: Sync, R: Send>(
    workers: usize,
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.max(1).min(items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<R>> = Vec::new();
    results.resize_with(items.len(), || None);
    let slots = std::sync::Mutex::new(results);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    break;
                };
                let result = f(item);
                slots
                    .lock()
                    .expect("no worker panics while holding the lock")[i] = Some(result);
            });
        }
    });
    slots
        .into_inner()
        .expect("workers finished")
        .into_iter()
        .map(|slot| slot.expect("every item was processed"))
        .collect()
}

/// A namespace's links, addresses and routes, or why they could not be read; `None` when they
/// were not read.
type LinksRead = Option<Result<links::NetState, String>>;

/// Observes one namespace by name.
pub fn observe_namespace(spec: &NamespaceSpec) -> ObservedNamespace {
    observe_namespace_with_links(spec, false).0
}

/// Observes one namespace by name, and also reads its links, addresses and routes when
/// `with_links` or its record lists links netnsctl made.
fn observe_namespace_with_links(
    spec: &NamespaceSpec,
    with_links: bool,
) -> (ObservedNamespace, LinksRead) {
    let mut observed = ObservedNamespace::default();
    let mut net = None;
    let path = netns::netns_path(&spec.name);
    match netns::inspect(&path) {
        Ok(file) => observed.file = Some(file),
        Err(err) => observed
            .errors
            .push(format!("cannot inspect {}: {err}", path.display())),
    }
    match state::read_record(&spec.name) {
        Ok(record) => observed.record = record,
        Err(err) => observed.errors.push(err.to_string()),
    }
    let resolv_path = netns::etc_dir(&spec.name).join("resolv.conf");
    match files::read(&resolv_path) {
        Ok(content) => observed.resolv_conf = content,
        Err(err) => observed.errors.push(err.to_string()),
    }
    if let Some(NetnsFile::Attached { dev, ino }) = observed.file {
        let recorded = observed
            .record
            .as_ref()
            .and_then(|record| record.netns_inode);
        observed.host_namespace =
            recorded != Some(ino) && netns::host_namespaces().contains(&(dev, ino));
    }
    if observed.attached() && !observed.host_namespace {
        let restorable: Vec<String> = observed
            .record
            .iter()
            .flat_map(|record| record.sysctl_originals.keys().cloned())
            .collect();
        let with_links = with_links || observed.record.as_ref().is_some_and(links::has_links);
        match netns::in_netns(&path, || read_inside(spec, &restorable, with_links)) {
            Ok(Ok((inside, links))) => {
                observed.inside = Some(inside);
                net = links;
            }
            Ok(Err(err)) | Err(err) => observed
                .errors
                .push(format!("cannot read namespace {}: {err}", spec.name)),
        }
    }
    (observed, net)
}

/// Reads state inside the calling thread's namespace: the spec's sysctls and the `restorable`
/// keys that netnsctl set earlier.
/// With `with_links`, also reads the links, addresses and routes.
fn read_inside(
    spec: &NamespaceSpec,
    restorable: &[String],
    with_links: bool,
) -> std::io::Result<(Inside, LinksRead)> {
    let mut inside = Inside::default();
    let mut netlink = Netlink::open()?;
    let net = with_links.then(|| links::NetState::read_with(&mut netlink));
    inside.lo_up = match &net {
        Some(Ok(state)) => state.link("lo").is_some_and(|link| link.up),
        _ => netlink
            .get_link(crate::kernel::netlink::LinkId::Name("lo"))
            .map_err(|err| std::io::Error::other(err.to_string()))?
            .is_some_and(|link| link.up),
    };
    let mut net_dir = sysctl::NetDir::new();
    for setting in &spec.sysctls {
        let key = &setting.key;
        let keys = sysctl::expand_glob(key);
        if keys.len() != 1 || keys[0] != *key {
            inside.globs.insert(key.clone(), keys.clone());
        }
        for concrete in keys {
            let state = net_dir.read(&concrete)?;
            inside.sysctls.insert(concrete, state);
        }
    }
    for key in restorable {
        if !inside.sysctls.contains_key(key) {
            inside.sysctls.insert(key.clone(), sysctl::read(key)?);
        }
    }
    inside.ruleset_generation = nft::ruleset_generation().ok();
    Ok((inside, net))
}
