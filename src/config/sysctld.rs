//! The host's sysctl.d settings, read the way systemd-sysctl reads them.
//!
//! systemd-sysctl (systemd 252, `systemd-sysctl(8)`, `sysctl.d(5)`) takes every `*.conf` file from
//! /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d and /usr/lib/sysctl.d (plus /lib/sysctl.d
//! on systems without merged /usr). A file name found in an earlier directory masks the same name
//! in later ones. The remaining files are read sorted by file name, and a key set again in a later
//! file overrides the earlier value.
//!
//! Globs (`*`, `?`, `[...]`) skip every key that has an explicit line of its own, whatever the
//! file order, and a `-KEY` line without a value only excludes KEY from globs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::kernel::sysctl::{dotted_key, glob_match, is_glob};

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

/// One assignment or exclusion line of a sysctl.d file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Key as written, without the `-` prefix.
    pub key: String,
    /// `None` for a `-KEY` line without `=`, which only excludes KEY from every glob.
    pub value: Option<String>,
    /// `-KEY = VALUE`: a failure to write the key is ignored.
    pub ignore_failure: bool,
    /// Line number, from 1.
    pub number: usize,
}

/// Parses one sysctl.d file into its lines in order. Comments start with '#' or ';'. A line
/// without '=' counts only with a `-` prefix, as in systemd-sysctl.
pub fn parse(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim().to_owned())),
            None if line.starts_with('-') => (line, None),
            None => {
                tracing::debug!(
                    line = index + 1,
                    "sysctl.d line is not an assignment, ignored"
                );
                continue;
            }
        };
        let (key, prefixed) = match key.strip_prefix('-') {
            Some(rest) => (rest.trim(), true),
            None => (key, false),
        };
        lines.push(Line {
            key: key.to_owned(),
            ignore_failure: prefixed && value.is_some(),
            value,
            number: index + 1,
        });
    }
    lines
}

/// One `net.*` entry of the host's sysctl.d files, after systemd-sysctl's override rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSysctl {
    /// Key in dotted form (see [`dotted_key`]); a glob keeps its wildcards.
    pub key: String,
    /// `None` for a `-KEY` exclusion line.
    pub value: Option<String>,
    pub ignore_failure: bool,
    /// `FILE:LINE` of the line that set it.
    pub source: String,
}

/// Rewrites a glob's first component to `net` when it matches `net`, so the glob can only
/// reach `net.*` keys inside a namespace. Returns `None` for keys outside `net.*`.
fn net_key(key: &str) -> Option<String> {
    if key.starts_with("net.") {
        return Some(key.to_owned());
    }
    let (first, rest) = key.split_once('.')?;
    (is_glob(first) && glob_match(first, "net")).then(|| format!("net.{rest}"))
}

/// Returns the host's `net.*` entries from sysctl.d the way systemd-sysctl 252 collects them.
/// A later line for the same key replaces the earlier one and moves to its position. A later
/// line that repeats the same value only adds its `-` flag.
pub fn host_net_settings(dirs: &[PathBuf]) -> Vec<HostSysctl> {
    let mut settings: Vec<HostSysctl> = Vec::new();
    for file in config_files(dirs) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in parse(&text) {
            let Some(key) = net_key(&dotted_key(&line.key)) else {
                continue;
            };
            if let Some(existing) = settings.iter_mut().find(|setting| setting.key == key) {
                if existing.value == line.value {
                    existing.ignore_failure |= line.ignore_failure;
                    continue;
                }
            }
            settings.retain(|setting| setting.key != key);
            settings.push(HostSysctl {
                key,
                value: line.value,
                ignore_failure: line.ignore_failure,
                source: format!("{}:{}", file.display(), line.number),
            });
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

    fn line(key: &str, value: Option<&str>, ignore_failure: bool, number: usize) -> Line {
        Line {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            ignore_failure,
            number,
        }
    }

    #[test]
    fn parse_comments_and_prefixes() {
        let lines = parse(
            "# c\n; c\nnet.ipv4.ip_forward = 1\n-net.core.somaxconn=512\n\nbad line\n\
             -net.ipv4.conf.all.rp_filter\n",
        );
        assert_eq!(
            lines,
            vec![
                line("net.ipv4.ip_forward", Some("1"), false, 3),
                line("net.core.somaxconn", Some("512"), true, 4),
                line("net.ipv4.conf.all.rp_filter", None, false, 7),
            ]
        );
    }

    fn entries(settings: &[HostSysctl]) -> Vec<(&str, Option<&str>, bool)> {
        settings
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_deref(), s.ignore_failure))
            .collect()
    }

    #[test]
    fn later_line_moves_to_its_position() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().to_owned();
        std::fs::write(
            dir.join("10-a.conf"),
            "net.ipv4.conf.*.rp_filter = 1\nnet.core.somaxconn = 1\n-net.ipv4.tcp_syncookies = 1\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("20-b.conf"),
            "net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.tcp_syncookies = 1\n\
             -net.ipv4.conf.all.rp_filter\n*.ipv4.ip_forward = 1\nk*.panic = 1\n",
        )
        .unwrap();
        let settings = host_net_settings(std::slice::from_ref(&dir));
        assert_eq!(
            entries(&settings),
            vec![
                ("net.core.somaxconn", Some("1"), false),
                ("net.ipv4.tcp_syncookies", Some("1"), true),
                ("net.ipv4.conf.*.rp_filter", Some("2"), false),
                ("net.ipv4.conf.all.rp_filter", None, false),
                ("net.ipv4.ip_forward", Some("1"), false),
            ]
        );
        assert_eq!(
            settings[2].source,
            format!("{}:1", dir.join("20-b.conf").display())
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
            entries(&settings),
            vec![
                ("net.ipv4.conf.all.rp_filter", Some("2"), false),
                ("net.ipv4.ip_forward", Some("1"), false),
            ]
        );
    }
}
