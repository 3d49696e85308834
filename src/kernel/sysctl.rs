//! Sysctls through /proc/sys.
//!
//! Files under /proc/sys/net belong to the network namespace of the task that opens them, so
//! these functions act on the calling thread's namespace.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

/// Maps a sysctl key to its /proc/sys path the way systemd-sysctl does: when the first
/// separator is '/', the key is already a path; otherwise '.' and '/' swap, so an interface
/// name with a dot can be written as `net.ipv4.conf.eth0/100.rp_filter`.
pub fn proc_path(key: &str) -> PathBuf {
    let first_sep = key.find(['.', '/']);
    let path: String = if first_sep.is_some_and(|i| key.as_bytes()[i] == b'/') {
        key.to_owned()
    } else {
        key.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect()
    };
    PathBuf::from("/proc/sys").join(path)
}

/// The state of one sysctl in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlState {
    /// Readable value, white space normalized to single spaces.
    Value(String),
    /// No such file in this namespace.
    Missing,
    /// The file exists but has no write permission in this namespace.
    ReadOnly(String),
}

/// Normalizes a value for comparison: the kernel separates multi-value sysctls with tabs.
pub fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a sysctl in the calling thread's network namespace.
pub fn read(key: &str) -> io::Result<SysctlState> {
    let path = proc_path(key);
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(SysctlState::Missing),
        Err(err) => return Err(err),
    };
    let value = match fs::read_to_string(&path) {
        Ok(text) => normalize(&text),
        // Write-only entries such as net.ipv4.route.flush.
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => String::new(),
        Err(err) => return Err(err),
    };
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o200 == 0 {
        return Ok(SysctlState::ReadOnly(value));
    }
    Ok(SysctlState::Value(value))
}

/// Writes a sysctl in the calling thread's network namespace.
pub fn write(key: &str, value: &str) -> io::Result<()> {
    let path = proc_path(key);
    let mut file = fs::OpenOptions::new().write(true).open(&path)?;
    file.write_all(value.as_bytes())
}

/// Expands a key with `*` or `?` into the keys present in the calling thread's namespace, as
/// systemd-sysctl expands globs. Keys without wildcards come back unchanged.
pub fn expand_glob(key: &str) -> Vec<String> {
    if !key.contains(['*', '?']) {
        return vec![key.to_owned()];
    }
    let normalized = key.replace('/', ".");
    let parts: Vec<&str> = normalized.split('.').collect();
    let mut found = Vec::new();
    expand_parts(
        PathBuf::from("/proc/sys"),
        &parts,
        String::new(),
        &mut found,
    );
    found.sort();
    found
}

fn expand_parts(dir: PathBuf, parts: &[&str], prefix: String, found: &mut Vec<String>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !glob_match(first, &name) {
            continue;
        }
        // Names with dots (VLAN links) need the '/' form to stay one component.
        let part = name.replace('.', "/");
        if rest.is_empty() {
            if entry.path().is_file() {
                found.push(join(&part));
            }
        } else {
            expand_parts(entry.path(), rest, join(&part), found);
        }
    }
}

/// Matches a name against a pattern with `*` and `?`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.split_first(), n.split_first()) {
            (None, None) => true,
            (Some((b'*', rest)), _) => go(rest, n) || (!n.is_empty() && go(p, &n[1..])),
            (Some((b'?', rest)), Some((_, nrest))) => go(rest, nrest),
            (Some((a, rest)), Some((b, nrest))) if a == b => go(rest, nrest),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_path_dotted_key() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
    }

    #[test]
    fn proc_path_key_with_vlan_name() {
        assert_eq!(
            proc_path("net.ipv4.conf.eth0/100.rp_filter"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
        assert_eq!(
            proc_path("net/ipv4/conf/eth0.100/rp_filter"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
    }

    #[test]
    fn normalize_tabs() {
        assert_eq!(normalize("4096\t87380\t6291456\n"), "4096 87380 6291456");
    }

    #[test]
    fn glob_patterns() {
        assert!(glob_match("*", "eth0"));
        assert!(glob_match("eth?", "eth0"));
        assert!(!glob_match("eth?", "eth10"));
        assert!(glob_match("e*0", "eth10"));
    }
}
