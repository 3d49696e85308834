//! What netnsctl created, recorded under /run/netnsctl, and the lock that serializes runs.
//!
//! /run is a tmpfs, so records vanish with the namespaces at reboot. A namespace is "owned" when
//! a record exists for it; anything without a record is left alone.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::Protocol;
use crate::kernel::files;

/// Runtime state directory.
pub const STATE_DIR: &str = "/run/netnsctl";

/// Version of the record format.
pub const RECORD_VERSION: u32 = 1;

/// What netnsctl made for one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// The namespace existed before and `adopt = true` took it over.
    #[serde(default)]
    pub adopted: bool,
    /// Inode of the namespace netnsctl created or adopted. A different namespace registered
    /// under the same name later is not netnsctl's. `None` in records written before the
    /// namespace was entered.
    #[serde(default)]
    pub netns_inode: Option<u64>,
    /// SHA-256 of the ruleset text last loaded, when netnsctl loaded one.
    #[serde(default)]
    pub ruleset_digest: Option<String>,
    /// nftables generation read right after that load.
    #[serde(default)]
    pub ruleset_generation: Option<u32>,
    /// Host links netnsctl created for this namespace (veth ends in the host namespace).
    #[serde(default)]
    pub host_links: Vec<String>,
    /// Links moved in from the host namespace by `interfaces`, to move back on `down`.
    #[serde(default)]
    pub moved_links: Vec<String>,
    /// veth ends inside this namespace that netnsctl created; deleting one deletes its peer.
    #[serde(default)]
    pub veths: Vec<String>,
    /// Routes netnsctl added inside this namespace.
    #[serde(default)]
    pub routes: Vec<RouteRecord>,
    /// This namespace's share of the host nftables table (port mappings, masquerade).
    #[serde(default)]
    pub host_rules: HostRules,
    /// WireGuard links netnsctl created for this namespace.
    #[serde(default)]
    pub wireguard: Vec<WireGuardRecord>,
    /// Value each sysctl had before netnsctl first set it, by dotted key. A key that leaves the
    /// config is set back to this value.
    #[serde(default)]
    pub sysctl_originals: BTreeMap<String, String>,
}

/// A route netnsctl added, as declared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouteRecord {
    pub destination: IpNet,
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
}

/// A host port forwarded into a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMappingRule {
    pub protocol: Protocol,
    pub host_port: u16,
    /// Only this host address; every local address when `None`.
    pub host_address: Option<IpAddr>,
    pub port: u16,
    pub target_v4: Option<Ipv4Addr>,
    pub target_v6: Option<Ipv6Addr>,
    /// Host link the traffic leaves through: the veth's host end, or its bridge.
    pub host_link: String,
}

/// Source NAT for traffic that arrives on a host link and leaves through another one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasqueradeRule {
    /// The veth's host end, or its bridge.
    pub host_link: String,
    /// Source networks to match; empty matches all traffic arriving on `host_link`.
    pub sources: Vec<IpNet>,
}

/// The host-side rules one namespace needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRules {
    #[serde(default)]
    pub port_mappings: Vec<PortMappingRule>,
    #[serde(default)]
    pub masquerade: Vec<MasqueradeRule>,
}

impl HostRules {
    pub fn is_empty(&self) -> bool {
        self.port_mappings.is_empty() && self.masquerade.is_empty()
    }
}

/// Backend that runs a WireGuard link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireGuardBackend {
    /// The kernel module, configured over generic netlink.
    Kernel,
    /// A `wireguard-go` process, configured over its UAPI socket.
    Userspace,
}

impl std::fmt::Display for WireGuardBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WireGuardBackend::Kernel => "kernel module",
            WireGuardBackend::Userspace => "userspace (wireguard-go)",
        })
    }
}

/// A WireGuard link netnsctl created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireGuardRecord {
    /// Name inside the namespace.
    pub link: String,
    /// Name the link had in the underlay before it was moved; the UAPI socket is named after it.
    pub underlay_name: String,
    /// Underlay namespace; `None` for the host.
    pub underlay: Option<String>,
    pub backend: WireGuardBackend,
    /// The wireguard-go process (userspace backend).
    pub pid: Option<u32>,
    /// The wireguard-go UAPI socket (userspace backend).
    pub socket: Option<PathBuf>,
}

/// Objects netnsctl made in the host namespace that no single namespace owns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub version: u32,
    /// Bridges netnsctl created.
    #[serde(default)]
    pub bridges: Vec<String>,
    /// SHA-256 of `nft list table` output right after netnsctl loaded its host table.
    #[serde(default)]
    pub table_listing_digest: Option<String>,
    /// SHA-256 of the table text netnsctl loaded.
    #[serde(default)]
    pub table_digest: Option<String>,
    /// Value of net.ipv4.ip_forward before netnsctl set it to 1, restored when no rule needs it.
    #[serde(default)]
    pub ip_forward_before: Option<String>,
}

/// Returns the path of the host record.
pub fn host_record_path() -> PathBuf {
    Path::new(STATE_DIR).join("host.json")
}

/// Reads the host record; an unreadable record counts as empty.
pub fn read_host_record() -> io::Result<HostRecord> {
    match files::read(&host_record_path())? {
        None => Ok(HostRecord::default()),
        Some(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            tracing::warn!(%err, "unreadable host state record; treating it as empty");
            HostRecord::default()
        })),
    }
}

/// Writes the host record atomically, or removes it when it records nothing.
pub fn write_host_record(record: &HostRecord) -> io::Result<()> {
    let path = host_record_path();
    if record.bridges.is_empty()
        && record.table_digest.is_none()
        && record.ip_forward_before.is_none()
    {
        return files::remove(&path, false);
    }
    files::create_dir_all(Path::new(STATE_DIR), 0o755)?;
    let mut stored = record.clone();
    stored.version = RECORD_VERSION;
    let mut bytes = serde_json::to_vec_pretty(&stored).expect("records serialize");
    bytes.push(b'\n');
    files::replace(&path, &bytes, 0o600)
}

/// Returns the path of a namespace's record.
pub fn record_path(name: &str) -> PathBuf {
    Path::new(STATE_DIR)
        .join("namespaces")
        .join(format!("{name}.json"))
}

/// Reads a namespace's record. A record that cannot be parsed counts as present but empty, so
/// the namespace stays owned; the next apply that changes the namespace rewrites it. An empty
/// record makes the planner reload the ruleset, which is such a change whenever one is declared.
pub fn read_record(name: &str) -> io::Result<Option<Record>> {
    match files::read(&record_path(name))? {
        None => Ok(None),
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            tracing::warn!(namespace = name, %err, "unreadable state record; treating it as empty");
            Record {
                version: RECORD_VERSION,
                ..Record::default()
            }
        }))),
    }
}

/// Writes a namespace's record atomically.
pub fn write_record(name: &str, record: &Record) -> io::Result<()> {
    let path = record_path(name);
    files::create_dir_all(path.parent().expect("record path has a parent"), 0o700)?;
    let mut bytes = serde_json::to_vec_pretty(record).expect("records serialize");
    bytes.push(b'\n');
    files::replace(&path, &bytes, 0o600)
}

/// Opens the directory of the namespace records, for [`remove_record_in`].
pub fn records_dir() -> io::Result<files::Dir> {
    files::Dir::open(&Path::new(STATE_DIR).join("namespaces"))
}

/// Removes a namespace's record from the directory [`records_dir`] opened.
pub fn remove_record_in(dir: &files::Dir, name: &str) -> io::Result<()> {
    dir.remove(format!("{name}.json"), false)
}

/// Removes a namespace's record.
pub fn remove_record(name: &str) -> io::Result<()> {
    files::remove(&record_path(name), false)
}

/// Removes temporary files that a run killed during [`write_record`] left in the records
/// directory, then the directory itself when it is empty. Call it with the lock held, because
/// then no other run is writing a record.
pub fn remove_leftovers() -> io::Result<()> {
    let dir = Path::new(STATE_DIR).join("namespaces");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            files::remove(&entry.path(), false)?;
        }
    }
    match files::remove(&dir, true) {
        Err(err) if err.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
        other => other,
    }
}

/// Lists the namespaces that have records.
pub fn recorded_namespaces() -> io::Result<Vec<String>> {
    let dir = Path::new(STATE_DIR).join("namespaces");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            crate::config::names::is_valid_namespace_name(stem).then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Reads the record of every recorded namespace, by name.
pub fn read_all_records() -> std::collections::HashMap<String, io::Result<Option<Record>>> {
    recorded_namespaces()
        .unwrap_or_default()
        .into_iter()
        .map(|name| {
            let record = read_record(&name);
            (name, record)
        })
        .collect()
}

/// Returns the process ids of the wireguard-go processes that netnsctl's records list. They run
/// in an underlay namespace, where they are not the user's processes.
pub fn wireguard_pids() -> Vec<u32> {
    WireGuardIndex::read().pids
}

/// The recorded WireGuard links, read from every record at once.
#[derive(Debug, Default)]
pub struct WireGuardIndex {
    /// Pids of the wireguard-go processes netnsctl started.
    pub pids: Vec<u32>,
    /// Underlay namespace name to the links, as (namespace, link), that run over it.
    pub by_underlay: std::collections::HashMap<String, Vec<(String, String)>>,
}

impl WireGuardIndex {
    /// Reads every record once.
    pub fn read() -> WireGuardIndex {
        WireGuardIndex::of(&read_all_records())
    }

    /// Builds the index from records read by [`read_all_records`].
    pub fn of(records: &std::collections::HashMap<String, io::Result<Option<Record>>>) -> Self {
        let mut index = WireGuardIndex::default();
        for (name, record) in records {
            let Ok(Some(record)) = record else {
                continue;
            };
            for wg in &record.wireguard {
                index.pids.extend(wg.pid);
                if let Some(underlay) = &wg.underlay {
                    index
                        .by_underlay
                        .entry(underlay.clone())
                        .or_default()
                        .push((name.clone(), wg.link.clone()));
                }
            }
        }
        for links in index.by_underlay.values_mut() {
            links.sort();
        }
        index
    }

    /// Returns the links, as (namespace, link), whose underlay is `underlay`.
    pub fn links_over(&self, underlay: &str) -> &[(String, String)] {
        self.by_underlay.get(underlay).map_or(&[], Vec::as_slice)
    }
}

/// An exclusive lock on /run/netnsctl/lock, held until dropped.
pub struct Lock {
    _file: File,
}

/// How acquiring the lock went.
#[derive(Debug)]
pub enum LockError {
    Io(io::Error),
    /// Another run held the lock for the whole timeout.
    TimedOut {
        holder: Option<u32>,
        waited: Duration,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Io(err) => write!(f, "cannot take the lock {STATE_DIR}/lock: {err}"),
            LockError::TimedOut { holder, waited } => {
                write!(
                    f,
                    "timed out after {:.1} s waiting for the lock {STATE_DIR}/lock",
                    waited.as_secs_f64()
                )?;
                if let Some(pid) = holder {
                    write!(f, " held by process {pid}")?;
                }
                f.write_str("; retry later or raise --lock-timeout")
            }
        }
    }
}

impl std::error::Error for LockError {}

impl Lock {
    /// Takes the lock, waiting up to `timeout` for another run to finish.
    pub fn acquire(timeout: Duration) -> Result<Lock, LockError> {
        files::create_dir_all(Path::new(STATE_DIR), 0o755).map_err(LockError::Io)?;
        let path = Path::new(STATE_DIR).join("lock");
        let file = open_lock_file(&path).map_err(LockError::Io)?;
        let start = Instant::now();
        let mut announced = false;
        loop {
            // SAFETY: flock on a file descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                tracing::info!(
                    pid = std::process::id(),
                    waited_ms = start.elapsed().as_millis() as u64,
                    "took the lock"
                );
                let _ = nix::unistd::ftruncate(&file, 0);
                let _ =
                    nix::sys::uio::pwrite(&file, format!("{}\n", std::process::id()).as_bytes(), 0);
                return Ok(Lock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(LockError::Io(err));
            }
            let holder = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if !announced {
                let holder_text =
                    holder.map_or_else(|| "another run".to_owned(), |pid| format!("process {pid}"));
                tracing::warn!(
                    "waiting up to {:.1} s for the lock {STATE_DIR}/lock held by {holder_text}",
                    timeout.as_secs_f64()
                );
                announced = true;
            }
            if start.elapsed() >= timeout {
                return Err(LockError::TimedOut {
                    holder,
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
    use nix::sys::stat::Mode;
    let how = OpenHow::new()
        .flags(OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .mode(Mode::from_bits_truncate(0o644))
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    let file = openat2(AT_FDCWD, path, how)
        .map(File::from)
        .map_err(|err| {
            io::Error::new(
                io::Error::from(err).kind(),
                format!("{}: {}", path.display(), err.desc()),
            )
        })?;
    files::set_mode(&file, 0o644, path)?;
    Ok(file)
}
