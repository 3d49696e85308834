//! Snapshots of the network state netnsctl may touch, read with independent tools, so a test can
//! assert that a run left the system exactly as it found it.

use std::collections::BTreeSet;
use std::path::Path;

use super::run_ok;

/// Everything netnsctl could leave behind in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Names listed by `ip netns list`.
    pub ip_netns: BTreeSet<String>,
    /// Entries of /run/netns.
    pub run_netns: BTreeSet<String>,
    /// Files and directories under /etc/netns, relative paths.
    pub etc_netns: BTreeSet<String>,
    /// Files and directories under /run/netnsctl except the lock file, relative paths.
    pub state: BTreeSet<String>,
    /// Mount points with their file system type, from /proc/self/mountinfo, except /run/netns
    /// itself: netnsctl, like `ip netns add`, bind-mounts /run/netns onto itself once and keeps
    /// it, so that namespaces mounted later propagate to every mount namespace with a copy.
    pub mounts: BTreeSet<String>,
    /// Host links as `NAME kind=KIND master=BRIDGE`.
    pub links: BTreeSet<String>,
    /// Host addresses as `LINK ADDRESS/PREFIX`.
    pub addresses: BTreeSet<String>,
    /// `nft list ruleset` in the host namespace.
    pub host_ruleset: String,
    /// The host's net.ipv4.ip_forward, which masquerade and port mappings turn on.
    pub ip_forward: String,
}

/// Reads the current state.
pub fn snapshot() -> Snapshot {
    Snapshot {
        ip_netns: super::ip_netns_list().into_iter().collect(),
        run_netns: list_tree(Path::new("/run/netns"), false),
        etc_netns: list_tree(Path::new("/etc/netns"), true),
        state: list_tree(Path::new("/run/netnsctl"), true)
            .into_iter()
            .filter(|entry| entry != "lock")
            .collect(),
        mounts: mount_points()
            .into_iter()
            .filter(|mount| !mount.starts_with("/run/netns "))
            .collect(),
        links: host_links(),
        addresses: host_addresses(),
        host_ruleset: run_ok("nft", &["list", "ruleset"]),
        ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .expect("read ip_forward")
            .trim()
            .to_owned(),
    }
}

/// Asserts two snapshots are equal field by field, so a failure names what changed.
pub fn assert_same(before: &Snapshot, after: &Snapshot, context: &str) {
    assert_eq!(
        before.ip_netns, after.ip_netns,
        "{context}: ip netns list changed"
    );
    assert_eq!(
        before.run_netns, after.run_netns,
        "{context}: /run/netns changed"
    );
    assert_eq!(
        before.etc_netns, after.etc_netns,
        "{context}: /etc/netns changed"
    );
    assert_eq!(
        before.state, after.state,
        "{context}: /run/netnsctl changed"
    );
    assert_eq!(before.mounts, after.mounts, "{context}: mounts changed");
    assert_eq!(before.links, after.links, "{context}: host links changed");
    assert_eq!(
        before.addresses, after.addresses,
        "{context}: host addresses changed"
    );
    assert_eq!(
        before.host_ruleset, after.host_ruleset,
        "{context}: host ruleset changed"
    );
    assert_eq!(
        before.ip_forward, after.ip_forward,
        "{context}: host ip_forward changed"
    );
}

/// Lists the entries under `root` as relative paths; `recursive` descends into directories.
/// A missing `root` gives an empty set.
pub fn list_tree(root: &Path, recursive: bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).expect("entry is under root");
            found.insert(relative.display().to_string());
            let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            if recursive && is_dir {
                pending.push(path);
            }
        }
    }
    found
}

/// Mount points and file system types from /proc/self/mountinfo.
pub fn mount_points() -> BTreeSet<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let separator = fields.iter().position(|field| *field == "-")?;
            let fs_type = fields.get(separator + 1)?;
            Some(format!("{} {fs_type}", fields.get(4)?))
        })
        .collect()
}

/// Mount points of nsfs mounts: attached network namespaces.
pub fn nsfs_mounts() -> BTreeSet<String> {
    mount_points()
        .into_iter()
        .filter(|line| line.ends_with(" nsfs"))
        .collect()
}

fn host_links() -> BTreeSet<String> {
    let json = run_ok("ip", &["-d", "-j", "link", "show"]);
    let links: Vec<serde_json::Value> = serde_json::from_str(&json).expect("ip -j output is JSON");
    links
        .iter()
        .map(|link| {
            let name = link["ifname"].as_str().unwrap_or("?");
            let kind = link["linkinfo"]["info_kind"].as_str().unwrap_or("-");
            let master = link["master"].as_str().unwrap_or("-");
            format!("{name} kind={kind} master={master}")
        })
        .collect()
}

fn host_addresses() -> BTreeSet<String> {
    let json = run_ok("ip", &["-j", "address", "show"]);
    let links: Vec<serde_json::Value> = serde_json::from_str(&json).expect("ip -j output is JSON");
    let mut found = BTreeSet::new();
    for link in &links {
        let name = link["ifname"].as_str().unwrap_or("?");
        for address in link["addr_info"].as_array().into_iter().flatten() {
            let local = address["local"].as_str().unwrap_or("?");
            let prefix = address["prefixlen"].as_u64().unwrap_or(0);
            found.insert(format!("{name} {local}/{prefix}"));
        }
    }
    found
}
