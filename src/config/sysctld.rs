//! The host's sysctl.d settings, read the way systemd-sysctl reads them.
//!
//! systemd-sysctl (systemd 252, `systemd-sysctl(8)`, `sysctl.d(5)`) takes every `*.conf` file from
//! /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d and /usr/lib/sysctl.d (plus /lib/sysctl.d
//! on systems without merged /usr). A file name found in an earlier directory masks the same name
//! in later ones. The remaining files are read sorted by file name, and a key set again in a later
//! file overrides the earlier value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Directories in precedence order, highest first.
pub const SYSCTL_DIRS: [&str; 5] = [
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

/// Lists the files systemd-sysctl would read, in reading order.
pub fn config_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".conf") {
                continue;
            }
            // A higher directory's file masks the same name below, also when it is /dev/null.
            by_name.entry(name).or_insert_with(|| entry.path());
        }
    }
    by_name.into_values().collect()
}

/// Parses one sysctl.d file into (key, value) pairs in order. Keys keep systemd's `-` prefix
/// stripped; comments start with '#' or ';'.
pub fn parse(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let key = key.strip_prefix('-').unwrap_or(key).trim();
        pairs.push((key.to_owned(), value.trim().to_owned()));
    }
    pairs
}

/// Normalizes a key to dotted form for comparison ("net/ipv4/ip_forward" becomes
/// "net.ipv4.ip_forward").
fn dotted(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => key.to_owned(),
    }
}

/// Returns the host's `net.*` settings from sysctl.d, later files overriding earlier ones.
pub fn host_net_settings(dirs: &[PathBuf]) -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> = Vec::new();
    for file in config_files(dirs) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (key, value) in parse(&text) {
            let key = dotted(&key);
            if !key.starts_with("net.") {
                continue;
            }
            settings.retain(|(existing, _)| *existing != key);
            settings.push((key, value));
        }
    }
    settings
}

/// The standard directories.
pub fn default_dirs() -> Vec<PathBuf> {
    SYSCTL_DIRS
        .iter()
        .map(|dir| Path::new(dir).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_comments_and_ignore_prefix() {
        let pairs =
            parse("# c\n; c\nnet.ipv4.ip_forward = 1\n-net.core.somaxconn=512\n\nbad line\n");
        assert_eq!(
            pairs,
            vec![
                ("net.ipv4.ip_forward".to_owned(), "1".to_owned()),
                ("net.core.somaxconn".to_owned(), "512".to_owned()),
            ]
        );
    }

    #[test]
    fn precedence_and_masking() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        let usr = root.path().join("usr");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&usr).unwrap();
        std::fs::write(
            usr.join("10-a.conf"),
            "net.ipv4.ip_forward = 0\nkernel.x = 1\n",
        )
        .unwrap();
        std::fs::write(usr.join("50-b.conf"), "net.ipv4.conf.all.rp_filter = 1\n").unwrap();
        std::fs::write(etc.join("50-b.conf"), "net.ipv4.conf.all.rp_filter = 2\n").unwrap();
        std::fs::write(etc.join("90-c.conf"), "net/ipv4/ip_forward = 1\n").unwrap();
        let settings = host_net_settings(&[etc, usr]);
        assert_eq!(
            settings,
            vec![
                ("net.ipv4.conf.all.rp_filter".to_owned(), "2".to_owned()),
                ("net.ipv4.ip_forward".to_owned(), "1".to_owned()),
            ]
        );
    }
}
