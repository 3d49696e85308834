//! `down`: removes namespaces netnsctl created and the files it wrote for them.
//!
//! The record is removed last, so a run killed halfway leaves the name owned and the next `down`
//! finishes the job.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::apply::step_boundary;
use crate::desired::links;
use crate::kernel::netlink::{LinkId, Netlink};
use crate::kernel::netns::{self, NetnsFile};
use crate::kernel::procs::{self, Process};
use crate::kernel::{files, nft, sysctl};
use crate::observe::parallel_map_on;
use crate::state::{self, Record};

/// What `down` did.
#[derive(Debug, Default)]
pub struct Teardown {
    pub removed: Vec<String>,
    pub warnings: Vec<String>,
    pub failures: Vec<String>,
}

/// Removes the namespaces in `names`. Every name must have a record; a namespace with processes
/// inside is kept unless `force`, in which case it is unregistered and lives on until its last
/// process exits. The calling process does not count: `ExecStop=` of netns-NAME.service runs
/// `netnsctl down NAME` inside the namespace it removes.
///
/// Removing a link waits for the kernel (see [`LINK_WORKERS`]), so the links of namespaces
/// without WireGuard links are removed in parallel after all names are checked, and those
/// namespaces are unregistered after that. Messages keep the order of the names.
pub fn down(names: &[String], force: bool) -> Teardown {
    // Every record is read once: reading them once per namespace made `down --all` quadratic.
    let mut all = state::read_all_records();
    let mut wireguard = state::WireGuardIndex::of(&all);
    let mut records: HashMap<String, Result<Option<Record>, String>> = names
        .iter()
        .map(|name| {
            let record = all
                .remove(name)
                .unwrap_or_else(|| state::read_record(name))
                .map_err(|err| err.to_string());
            (name.clone(), record)
        })
        .collect();
    drop(all);
    let mut inspected: HashMap<&String, std::io::Result<NetnsFile>> = names
        .iter()
        .map(|name| (name, netns::inspect(&netns::netns_path(name))))
        .collect();
    if let Err(failure) = use_parent_netns_inside_target(&inspected) {
        return Teardown {
            failures: vec![failure],
            ..Teardown::default()
        };
    }
    let dirs = Dirs::open();
    let own_pid = std::process::id();
    // Open files of the namespaces this run unregisters, closed when the run ends. The kernel
    // cleans up a namespace in a worker once its last reference is gone. When that cleanup runs
    // alongside the unmounts of the other namespaces, every unmount slows down. The floor of
    // bench/run.sh, which does not keep the files open, unregistered 1000 namespaces in about
    // 30 ms in most runs and in up to 170 ms in others (Linux 6.18). With the files kept open,
    // the kernel cleans up all of them in one batch after the run.
    let mut namespace_files: Vec<std::fs::File> = Vec::new();
    let in_run: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut pids: Option<HashMap<(u64, u64), Vec<u32>>> = None;
    let ordered = underlays_last(names, &records);
    let mut results: Vec<Teardown> = ordered.iter().map(|_| Teardown::default()).collect();
    let mut deferred: Vec<(usize, Record)> = Vec::new();
    for (position, name) in ordered.iter().enumerate() {
        let result = &mut results[position];
        let record = match records.remove(name).unwrap_or(Ok(None)) {
            Ok(Some(record)) => record,
            Ok(None) => {
                result.failures.push(format!(
                    "{name}: not created by netnsctl (no record in {}); left alone",
                    state::STATE_DIR
                ));
                continue;
            }
            Err(err) => {
                result.failures.push(format!("{name}: {err}"));
                continue;
            }
        };
        let path = netns::netns_path(name);
        let file = inspected
            .remove(name)
            .unwrap_or_else(|| netns::inspect(&path));
        if let Some(reason) = release_reason(&record, file.as_ref().ok()) {
            // netnsctl removes its record of the namespace but leaves it, and its files, where they are. The
            // links it made in an adopted namespace go; in a namespace registered anew under the
            // name, links of the same names are not netnsctl's and stay.
            let link_failures = if record.adopted {
                remove_links(name, &record)
            } else {
                stop_wireguard(name, &record)
            };
            if !link_failures.is_empty() {
                result.failures.extend(
                    link_failures
                        .into_iter()
                        .map(|failure| format!("{name}: {failure}")),
                );
                continue;
            }
            if let Err(err) = state::remove_record(name) {
                result
                    .failures
                    .push(format!("{name}: cannot remove state record: {err}"));
                continue;
            }
            result
                .warnings
                .push(format!("{name}: {reason}; released, left in place"));
            continue;
        }
        let dependents: Vec<(String, String)> = wireguard
            .links_over(name)
            .iter()
            .filter(|(namespace, _)| !in_run.contains(namespace.as_str()))
            .cloned()
            .collect();
        if !dependents.is_empty() {
            if !force {
                result.failures.push(underlay_in_use(name, &dependents));
                continue;
            }
            match stop_dependent_links(&dependents) {
                Ok(()) => {
                    pids = None;
                    wireguard = state::WireGuardIndex::read();
                    for (namespace, link) in &dependents {
                        result.warnings.push(format!(
                            "{name}: stopped WireGuard link {link} of namespace {namespace}, \
                             whose underlay it was; `netnsctl apply {namespace}` creates it again"
                        ));
                    }
                }
                Err(err) => {
                    result.failures.push(format!("{name}: {err}"));
                    continue;
                }
            }
        }
        match file {
            Ok(NetnsFile::Attached { dev, ino }) => {
                namespace_files.extend(netns::open_netns(&path).ok());
                // wireguard-go processes of netnsctl's WireGuard links run in their underlay and
                // are handled above, so they are not the user's processes.
                let wireguard_pids = &wireguard.pids;
                let inside: Vec<Process> = pids
                    .get_or_insert_with(procs::pids_by_netns)
                    .get(&(dev, ino))
                    .map(|list| {
                        list.iter()
                            .filter(|&&pid| pid != own_pid && !wireguard_pids.contains(&pid))
                            .map(|&pid| procs::describe(pid))
                            .collect()
                    })
                    .unwrap_or_default();
                if !inside.is_empty() {
                    let list = inside
                        .iter()
                        .map(|p| format!("{} ({})", p.pid, p.command))
                        .collect::<Vec<_>>()
                        .join(", ");
                    if !force {
                        result.failures.push(format!(
                            "{name}: {} process(es) inside: {list}; stop them or use --force",
                            inside.len()
                        ));
                        continue;
                    }
                    result.warnings.push(format!(
                        "{name}: unregistered with processes still inside ({list}); the namespace lives until they exit"
                    ));
                }
            }
            Ok(_) => {}
            Err(err) => {
                result
                    .failures
                    .push(format!("{name}: cannot inspect {}: {err}", path.display()));
                continue;
            }
        }
        if record.wireguard.is_empty() {
            deferred.push((position, record));
            continue;
        }
        let link_failures = remove_links(name, &record);
        if !record.wireguard.is_empty() {
            // Stopped wireguard-go processes no longer keep their underlay namespaces busy.
            pids = None;
        }
        if !link_failures.is_empty() {
            result.failures.extend(
                link_failures
                    .into_iter()
                    .map(|failure| format!("{name}: {failure}")),
            );
            continue;
        }
        unregister(name, &dirs, result);
    }

    // What delete_host_veths leaves (links moved in, veth pairs whose peer is in another
    // namespace, or everything when the batch failed) is removed one link at a time, for many
    // namespaces in parallel.
    delete_host_veths(&mut deferred);
    let busy: Vec<&(usize, Record)> = deferred
        .iter()
        .filter(|(_, record)| has_links(record))
        .collect();
    let busy_failures = parallel_map_on(LINK_WORKERS, &busy, |(position, record)| {
        remove_links(&ordered[*position], record)
    });
    let mut link_failures: HashMap<usize, Vec<String>> = busy
        .iter()
        .map(|(position, _)| *position)
        .zip(busy_failures)
        .collect();
    for (position, _) in &deferred {
        let name = &ordered[*position];
        let result = &mut results[*position];
        let failures = link_failures.remove(position).unwrap_or_default();
        if !failures.is_empty() {
            result.failures.extend(
                failures
                    .into_iter()
                    .map(|failure| format!("{name}: {failure}")),
            );
            continue;
        }
        unregister(name, &dirs, result);
    }

    let mut result = Teardown::default();
    for one in results {
        result.removed.extend(one.removed);
        result.warnings.extend(one.warnings);
        result.failures.extend(one.failures);
    }
    // Also when nothing was removed or released in this run: a run killed after removing the
    // last record leaves the host table and bridges for this one to clean up.
    result.failures.extend(update_host());
    drop(namespace_files);
    result
}

/// Makes the parent process's namespace the host namespace when this process runs inside one of
/// the namespaces it removes. That is the case for the `ExecStop=` of netns-NAME.service, and the
/// host side (host veth ends, bridges, the host nftables table) is then the parent's. Returns the
/// failure message when the parent's namespace cannot be opened.
fn use_parent_netns_inside_target(
    inspected: &HashMap<&String, std::io::Result<NetnsFile>>,
) -> Result<(), String> {
    let Ok(own) = netns::process_netns() else {
        return Ok(());
    };
    let inside_target = inspected
        .values()
        .any(|file| matches!(file, Ok(NetnsFile::Attached { dev, ino }) if (*dev, *ino) == own));
    if !inside_target {
        return Ok(());
    }
    netns::set_host_netns(nix::unistd::getppid().as_raw() as u32)
        .map_err(|err| format!("cannot open the network namespace of the parent process: {err}"))
}

/// Returns whether [`remove_links`] has work for a record.
fn has_links(record: &Record) -> bool {
    !record.veths.is_empty()
        || !record.moved_links.is_empty()
        || !record.host_links.is_empty()
        || !record.wireguard.is_empty()
}

/// Link group that [`delete_host_veths`] tries first. It uses the first group from here upward
/// that no host link is in.
const BATCH_GROUP: u32 = 0x6e6e_7463;

/// Deletes the veth pairs of the records through their host ends with one request: the host
/// ends go into a link group that no other host link is in, and the group is deleted. Deleted
/// one at a time, each pair waits for RCU grace periods, which made this the slowest part of
/// `down`.
///
/// The deleted host ends are taken out of the records' `host_links`. When every veth of a
/// namespace had its peer among them, its `veths` is emptied too, and [`remove_links`] does the
/// rest. On any failure the records stay as they were, and [`remove_links`] deletes the links one
/// by one.
fn delete_host_veths(deferred: &mut [(usize, Record)]) {
    if deferred
        .iter()
        .all(|(_, record)| record.host_links.is_empty())
    {
        return;
    }
    let records: Vec<&Record> = deferred.iter().map(|(_, record)| record).collect();
    let outcome = netns::in_host_netns(|| -> Result<Vec<Vec<String>>, String> {
        let mut netlink =
            Netlink::open().map_err(|err| format!("cannot open rtnetlink socket: {err}"))?;
        let links = netlink.dump_links().map_err(|err| err.to_string())?;
        let by_name: HashMap<&str, &crate::kernel::netlink::Link> = links
            .iter()
            .map(|link| (link.name.as_str(), link))
            .collect();
        let used: HashSet<u32> = links.iter().map(|link| link.group).collect();
        let group = (BATCH_GROUP..=u32::MAX)
            .find(|group| !used.contains(group))
            .ok_or("no free link group")?;
        let mut grouped: Vec<Vec<String>> = Vec::with_capacity(records.len());
        for record in &records {
            let mut names = Vec::new();
            for name in &record.host_links {
                let Some(link) = by_name.get(name.as_str()) else {
                    continue;
                };
                if link.kind.as_deref() == Some("veth") {
                    netlink
                        .set_link_group(link.index, group)
                        .map_err(|err| err.to_string())?;
                    names.push(name.clone());
                }
            }
            grouped.push(names);
        }
        if grouped.iter().any(|names| !names.is_empty()) {
            netlink
                .del_link_group(group)
                .map_err(|err| err.to_string())?;
            step_boundary();
        }
        Ok(grouped)
    });
    let grouped = match outcome {
        Ok(Ok(grouped)) => grouped,
        Ok(Err(err)) => {
            tracing::warn!(
                "deleting veth pairs in one batch failed, deleting them one by one: {err}"
            );
            return;
        }
        Err(err) => {
            tracing::warn!(
                "cannot enter the host namespace to delete veth pairs in one batch: {err}"
            );
            return;
        }
    };
    for ((_, record), deleted) in deferred.iter_mut().zip(grouped) {
        if deleted.len() >= record.veths.len() {
            record.veths.clear();
        }
        record.host_links.retain(|name| !deleted.contains(name));
    }
}

/// Returns the failure message for `down` of a namespace that WireGuard links of namespaces
/// outside the run use as their underlay.
fn underlay_in_use(name: &str, dependents: &[(String, String)]) -> String {
    let links: Vec<String> = dependents
        .iter()
        .map(|(namespace, link)| format!("{link} of namespace {namespace}"))
        .collect();
    let mut namespaces: Vec<&str> = dependents.iter().map(|(ns, _)| ns.as_str()).collect();
    namespaces.dedup();
    format!(
        "{name}: underlay of WireGuard link {}; run `netnsctl down {} {name}` to remove them \
         together, or use --force to stop those links as well (the next `netnsctl apply` \
         creates them again)",
        links.join(", "),
        namespaces.join(" ")
    )
}

/// Stops WireGuard links of other namespaces, given as (namespace, link), and removes them from
/// their records, so that the next `apply` creates them again.
fn stop_dependent_links(dependents: &[(String, String)]) -> Result<(), String> {
    for (namespace, link) in dependents {
        let Some(mut record) = state::read_record(namespace).map_err(|err| err.to_string())? else {
            continue;
        };
        let Some(wg) = record.wireguard.iter().find(|wg| &wg.link == link).cloned() else {
            continue;
        };
        crate::apply::links::delete_wireguard(namespace, &wg)?;
        record.wireguard.retain(|wg| &wg.link != link);
        state::write_record(namespace, &record).map_err(|err| {
            format!("cannot write the state record of namespace {namespace}: {err}")
        })?;
        tracing::info!(
            namespace,
            link,
            "stopped WireGuard link over a removed underlay"
        );
    }
    Ok(())
}

/// Threads that remove links in parallel. Deleting a veth pair waits for RCU grace periods (20
/// to 40 ms per pair with `ip link delete` on Linux 6.18, measured by bench/run.sh) while using
/// almost no CPU, so these waits overlap well beyond the number of CPUs.
const LINK_WORKERS: usize = 64;

/// /etc/netns and the directory of the records, opened once per run for [`unregister`].
struct Dirs {
    etc: std::io::Result<files::Dir>,
    records: std::io::Result<files::Dir>,
}

impl Dirs {
    fn open() -> Dirs {
        Dirs {
            etc: files::Dir::open(std::path::Path::new(netns::NETNS_ETC_DIR)),
            records: state::records_dir(),
        }
    }
}

/// Unregisters the namespace, then removes its /etc/netns files and its record.
fn unregister(name: &str, dirs: &Dirs, result: &mut Teardown) {
    let path = netns::netns_path(name);
    if let Err(err) = netns::remove(&path) {
        result.failures.push(format!("{name}: {err}"));
        return;
    }
    step_boundary();
    let etc = dirs.etc.as_ref().map_err(clone_error);
    if let Err(err) = etc.and_then(|etc| remove_etc_files(etc, name)) {
        result.failures.push(format!("{name}: {err}"));
        return;
    }
    step_boundary();
    let records = dirs.records.as_ref().map_err(clone_error);
    if let Err(err) = records.and_then(|records| state::remove_record_in(records, name)) {
        result
            .failures
            .push(format!("{name}: cannot remove state record: {err}"));
        return;
    }
    step_boundary();
    tracing::info!(namespace = name, "removed namespace");
    result.removed.push(name.to_owned());
}

/// Orders `names` so that a namespace comes after every namespace whose WireGuard link uses it
/// as underlay: the wireguard-go process of such a link runs in the underlay and would otherwise
/// keep it from being removed.
fn underlays_last(
    names: &[String],
    records: &HashMap<String, Result<Option<Record>, String>>,
) -> Vec<String> {
    let underlays: HashMap<&String, Vec<String>> = names
        .iter()
        .map(|name| {
            let used = match records.get(name) {
                Some(Ok(Some(record))) => record
                    .wireguard
                    .iter()
                    .filter_map(|wg| wg.underlay.clone())
                    .collect(),
                _ => Vec::new(),
            };
            (name, used)
        })
        .collect();
    if underlays.values().all(Vec::is_empty) {
        return names.to_vec();
    }
    let mut remaining: Vec<&String> = names.iter().collect();
    let mut ordered = Vec::new();
    while !remaining.is_empty() {
        let free: Vec<&String> = remaining
            .iter()
            .copied()
            .filter(|name| {
                !remaining
                    .iter()
                    .any(|other| underlays[other].contains(name))
            })
            .collect();
        // A cycle cannot be ordered; the rest keeps its order.
        let next = if free.is_empty() {
            remaining.clone()
        } else {
            free
        };
        remaining.retain(|name| !next.contains(name));
        ordered.extend(next.into_iter().cloned());
    }
    ordered
}

/// Removes what netnsctl made for a namespace besides the namespace itself: WireGuard links
/// (stopping wireguard-go), veth pairs, and links moved in, which go back to the host. Returns
/// the failures; on any failure the record stays so a later `down` can retry.
fn remove_links(name: &str, record: &Record) -> Vec<String> {
    let mut failures = stop_wireguard(name, record);
    let path = netns::netns_path(name);
    let attached = matches!(netns::inspect(&path), Ok(NetnsFile::Attached { .. }));
    if attached && (!record.veths.is_empty() || !record.moved_links.is_empty()) {
        let inside = netns::in_netns(&path, || -> Result<Vec<String>, String> {
            let mut netlink =
                Netlink::open().map_err(|err| format!("cannot open rtnetlink socket: {err}"))?;
            let mut failures = Vec::new();
            for link in &record.moved_links {
                match crate::apply::links::move_link_to_host(&mut netlink, link) {
                    Ok(_) => tracing::info!(namespace = name, link, "moved link back to the host"),
                    Err(err) => {
                        failures.push(format!("cannot move link {link} back to the host: {err}"))
                    }
                }
                step_boundary();
            }
            for link in &record.veths {
                let found = netlink.get_link(LinkId::Name(link));
                match found {
                    Ok(Some(found)) => {
                        if let Err(err) = netlink.del_link(found.index) {
                            failures.push(err.to_string());
                        }
                    }
                    Ok(None) => {}
                    Err(err) => failures.push(err.to_string()),
                }
                step_boundary();
            }
            Ok(failures)
        });
        match inside {
            Ok(Ok(found)) => failures.extend(found),
            Ok(Err(err)) => failures.push(err),
            Err(err) => failures.push(err.to_string()),
        }
    }
    // Host ends vanish with their pairs; one still present (its namespace end was moved away,
    // say) is deleted here.
    if !record.host_links.is_empty() {
        match netns::in_host_netns(Netlink::open).and_then(|socket| socket) {
            Ok(mut netlink) => {
                for link in &record.host_links {
                    if let Ok(Some(found)) = netlink.get_link(LinkId::Name(link)) {
                        if found.kind.as_deref() == Some("veth") {
                            if let Err(err) = netlink.del_link(found.index) {
                                failures.push(err.to_string());
                            }
                            step_boundary();
                        }
                    }
                }
            }
            Err(err) => failures.push(format!("cannot open rtnetlink socket: {err}")),
        }
    }
    failures
}

/// Stops the namespace's WireGuard links. Returns the failures.
fn stop_wireguard(name: &str, record: &Record) -> Vec<String> {
    let mut failures = Vec::new();
    for wg in &record.wireguard {
        if let Err(err) = crate::apply::links::delete_wireguard(name, wg) {
            failures.push(err);
        }
        step_boundary();
    }
    failures
}

/// Rebuilds the host table from the records that remain, restores net.ipv4.ip_forward when no
/// rule needs it any more, and deletes the bridges netnsctl made once no namespace is left.
fn update_host() -> Vec<String> {
    netns::in_host_netns(update_host_here)
        .unwrap_or_else(|err| vec![format!("cannot enter the host namespace: {err}")])
}

/// Updates the host as [`update_host`] describes, on a thread inside the host namespace.
fn update_host_here() -> Vec<String> {
    let mut failures = Vec::new();
    let Ok(mut host) = state::read_host_record() else {
        return failures;
    };
    let mut rules = BTreeMap::new();
    let remaining = state::recorded_namespaces().unwrap_or_default();
    for name in &remaining {
        if let Ok(Some(record)) = state::read_record(name) {
            if !record.host_rules.is_empty() {
                rules.insert(name.clone(), record.host_rules);
            }
        }
    }
    if host.table_digest.is_some() {
        match links::render_host_table(&rules) {
            Some(text) => match nft::replace_table("inet", links::HOST_TABLE, &text) {
                Ok(()) => {
                    host.table_digest = Some(crate::desired::hex_digest(text.as_bytes()));
                    host.table_listing_digest = nft::list_table("inet", links::HOST_TABLE)
                        .ok()
                        .flatten()
                        .map(|listing| crate::desired::hex_digest(listing.as_bytes()));
                }
                Err(err) => failures.push(format!("cannot reload the host table: {err}")),
            },
            None => match nft::delete_table("inet", links::HOST_TABLE) {
                Ok(()) => {
                    host.table_digest = None;
                    host.table_listing_digest = None;
                }
                Err(err) => failures.push(format!("cannot delete the host table: {err}")),
            },
        }
        step_boundary();
    }
    if rules.is_empty() {
        if let Some(before) = host.ip_forward_before.take() {
            if let Err(err) = sysctl::write("net.ipv4.ip_forward", &before) {
                failures.push(format!(
                    "cannot restore net.ipv4.ip_forward = {before}: {err}"
                ));
                host.ip_forward_before = Some(before);
            }
            step_boundary();
        }
    }
    if remaining.is_empty() && !host.bridges.is_empty() {
        match Netlink::open() {
            Ok(mut netlink) => {
                let mut remaining_bridges = Vec::new();
                for bridge in &host.bridges {
                    let deleted = match netlink.get_link(LinkId::Name(bridge)) {
                        Ok(Some(found)) => {
                            netlink.del_link(found.index).map_err(|err| err.to_string())
                        }
                        Ok(None) => Ok(()),
                        Err(err) => Err(err.to_string()),
                    };
                    if let Err(err) = deleted {
                        failures.push(err);
                        remaining_bridges.push(bridge.clone());
                    } else {
                        tracing::info!(bridge = bridge.as_str(), "deleted bridge");
                    }
                    step_boundary();
                }
                host.bridges = remaining_bridges;
            }
            Err(err) => failures.push(format!("cannot open rtnetlink socket: {err}")),
        }
    }
    if let Err(err) = state::write_host_record(&host) {
        failures.push(format!("cannot write host state record: {err}"));
    }
    failures
}

/// Returns why `down` must not delete a recorded namespace: netnsctl adopted it rather than
/// created it, or the namespace registered under the name now is not the one it recorded.
fn release_reason(record: &state::Record, file: Option<&NetnsFile>) -> Option<&'static str> {
    if record.adopted {
        return Some("adopted, not created by netnsctl");
    }
    let Some(&NetnsFile::Attached { dev, ino }) = file else {
        return None;
    };
    if record.netns_inode.is_some_and(|recorded| recorded != ino) {
        return Some("registered again outside netnsctl since netnsctl created it");
    }
    if record.netns_inode != Some(ino) && netns::host_namespaces().contains(&(dev, ino)) {
        return Some("the host's network namespace or the one netnsctl runs in");
    }
    None
}

fn clone_error(err: &std::io::Error) -> std::io::Error {
    std::io::Error::new(err.kind(), err.to_string())
}

/// Removes /etc/netns/NAME/resolv.conf and the directory when nothing else is in it. Files other
/// tools put there are kept, and so is the directory then.
fn remove_etc_files(etc: &files::Dir, name: &str) -> std::io::Result<()> {
    etc.subdir(name)?.remove("resolv.conf", false)?;
    match etc.remove(name, true) {
        Err(err) if err.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
        other => other,
    }
}
