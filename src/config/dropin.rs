//! Drop-in files: `conf.d/*.toml` in the directory of the main config file, merged into it.
//!
//! Files are read in lexical order of their names, after the main file, and merged key by key:
//! - Tables (`namespaces`, `bridges`, one namespace, `sysctl`, `dns`, `service` and its
//!   sections, `wireguard` and one link) merge their keys.
//! - Arrays (`veth`, `route`, `port_mapping`, `members`, `interfaces`, `accessible_from`, the
//!   arrays inside `dns`, `wireguard.LINK.peer`, unit values given as arrays) are concatenated
//!   in file order. An element equal to one that an earlier file declared is not added again.
//! - Any other value (string, integer, boolean) may be declared in several files only if every
//!   file gives the same value. A different value, or a different kind of value such as a table
//!   in one file and a string in another, is an error that names both files.
//!
//! Names in conf.d that start with a dot or do not end in `.toml` are ignored, as systemd does
//! for its own drop-in directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::validate::key_part;
use super::{Config, ConfigError, ConfigErrors, LoadedConfig};

/// Name of the drop-in directory, next to the main config file.
pub const DROPIN_DIR: &str = "conf.d";

/// The files that declared each key path of a merged config.
///
/// Key paths are written as in error messages: `namespaces.vpn.sysctl."net.ipv4.ip_forward"`,
/// `namespaces.vpn.veth[1].name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    by_key: BTreeMap<String, Vec<PathBuf>>,
    /// The drop-in files merged, in merge order, empty ones included.
    dropins: Vec<PathBuf>,
}

impl Origins {
    /// Returns the drop-in files that were merged into the main file, in merge order.
    pub fn dropins(&self) -> &[PathBuf] {
        &self.dropins
    }

    /// Returns the files that declared `key`, or the key path that contains it. `None` when
    /// no file was recorded, as for a config read from one file.
    pub fn files_of(&self, key: &str) -> Option<&[PathBuf]> {
        let mut candidate = key;
        loop {
            if let Some(files) = self.by_key.get(candidate) {
                return Some(files);
            }
            candidate = parent_key(candidate)?;
        }
    }

    fn record(&mut self, key: &str, file: &Path) {
        let files = self.by_key.entry(key.to_owned()).or_default();
        if !files.iter().any(|known| known == file) {
            files.push(file.to_owned());
        }
    }
}

/// Returns the key path one level up: `a.b[2].c` to `a.b[2]`, to `a.b`, to `a`.
fn parent_key(key: &str) -> Option<&str> {
    // Quoted parts such as "net.ipv4.ip_forward" contain dots that are not separators.
    let mut in_quotes = false;
    let mut cut = None;
    let mut previous = '\0';
    for (i, c) in key.char_indices() {
        match c {
            '"' if previous != '\\' => in_quotes = !in_quotes,
            '.' | '[' if !in_quotes => cut = Some(i),
            _ => {}
        }
        previous = c;
    }
    cut.map(|i| &key[..i])
}

/// Lists the drop-in files for the main config file `main`, sorted by name. A missing conf.d
/// directory means no drop-ins.
pub fn dropin_files(main: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let dir = main.parent().unwrap_or(Path::new(".")).join(DROPIN_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(ConfigError::file(
                &dir,
                format!("cannot read drop-in directory: {err}"),
            ));
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| {
            ConfigError::file(&dir, format!("cannot read drop-in directory: {err}"))
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        let path = entry.path();
        // Follows symlinks, so a link to a file counts and a link to a directory does not.
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses the main file and its drop-ins, `(path, text)` in merge order, and merges them.
pub fn parse_merged(files: &[(PathBuf, String)]) -> Result<LoadedConfig, ConfigErrors> {
    let main = files.first().expect("the main config file comes first");
    let mut errors = Vec::new();
    let mut tables = Vec::new();
    for (path, text) in files {
        match toml::from_str::<toml::Table>(text) {
            Ok(table) => tables.push((path, table)),
            Err(err) => errors.push(ConfigError::syntax(path, text, None, &err)),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }

    let mut merged = toml::Table::new();
    let mut origins = Origins {
        dropins: files[1..].iter().map(|(path, _)| path.clone()).collect(),
        ..Origins::default()
    };
    for (path, table) in tables {
        merge_tables(&mut merged, table, path, "", &mut origins, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }

    match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(merged)) {
        Ok(config) => Ok(LoadedConfig {
            path: main.0.clone(),
            config,
            origins,
        }),
        Err(err) => {
            let key = super::key_path(err.path());
            Err(locate_type_error(files, &origins, key, err.inner()))
        }
    }
}

/// Reports a type or unknown-key error of the merged config in the file that declared the key.
/// That file parsed alone gives the same error with a line number, unless the error needs keys
/// from several files.
fn locate_type_error(
    files: &[(PathBuf, String)],
    origins: &Origins,
    key: Option<String>,
    error: &toml::de::Error,
) -> ConfigErrors {
    let file = key
        .as_deref()
        .and_then(|key| origins.files_of(key))
        .and_then(<[PathBuf]>::last)
        .unwrap_or(&files[0].0);
    let (path, text) = files
        .iter()
        .find(|(path, _)| path == file)
        .unwrap_or(&files[0]);
    if let Err(alone) = super::parse(path, text) {
        if alone.0.len() == 1 && alone.0[0].message.ends_with(error.message().trim_end()) {
            return alone;
        }
    }
    ConfigErrors::single(ConfigError::syntax(path, text, key, error))
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key_part(key)
    } else {
        format!("{prefix}.{}", key_part(key))
    }
}

fn merge_tables(
    target: &mut toml::Table,
    source: toml::Table,
    file: &Path,
    prefix: &str,
    origins: &mut Origins,
    errors: &mut Vec<ConfigError>,
) {
    for (key, value) in source {
        let path = join_key(prefix, &key);
        match target.get_mut(&key) {
            None => {
                record_value(&path, &value, file, origins);
                target.insert(key, value);
            }
            Some(existing) => merge_value(existing, value, file, &path, origins, errors),
        }
    }
}

fn merge_value(
    existing: &mut toml::Value,
    value: toml::Value,
    file: &Path,
    path: &str,
    origins: &mut Origins,
    errors: &mut Vec<ConfigError>,
) {
    match (existing, value) {
        (toml::Value::Table(existing), toml::Value::Table(table)) => {
            origins.record(path, file);
            merge_tables(existing, table, file, path, origins, errors);
        }
        (toml::Value::Array(existing), toml::Value::Array(items)) => {
            origins.record(path, file);
            for item in items {
                match existing.iter().position(|known| *known == item) {
                    Some(index) => record_value(&format!("{path}[{index}]"), &item, file, origins),
                    None => {
                        record_value(&format!("{path}[{}]", existing.len()), &item, file, origins);
                        existing.push(item);
                    }
                }
            }
        }
        (existing, value) if *existing == value => origins.record(path, file),
        (existing, value) => {
            let earlier = origins
                .files_of(path)
                .map(|files| {
                    files
                        .iter()
                        .map(|file| file.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            errors.push(ConfigError::key(
                file,
                path,
                describe(&value),
                format!(
                    "conflicts with {} in {earlier}: set this key in one file only, or to the same value in every file",
                    describe(existing)
                ),
            ));
        }
    }
}

/// Records `file` as the origin of `path` and of every key below it.
fn record_value(path: &str, value: &toml::Value, file: &Path, origins: &mut Origins) {
    origins.record(path, file);
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                record_value(&join_key(path, key), value, file, origins);
            }
        }
        toml::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                record_value(&format!("{path}[{index}]"), item, file, origins);
            }
        }
        _ => {}
    }
}

/// Shows a value for a conflict message: scalars as TOML, tables and arrays by their kind.
fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(_) => "a table".to_owned(),
        toml::Value::Array(_) => "an array".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(files: &[(&str, &str)]) -> Result<LoadedConfig, ConfigErrors> {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
            .collect();
        parse_merged(&files)
    }

    #[test]
    fn parent_key_skips_quoted_dots() {
        assert_eq!(
            parent_key(r#"namespaces.vpn.sysctl."net.ipv4.ip_forward""#),
            Some("namespaces.vpn.sysctl")
        );
        assert_eq!(
            parent_key("namespaces.vpn.veth[1].name"),
            Some("namespaces.vpn.veth[1]")
        );
        assert_eq!(
            parent_key("namespaces.vpn.veth[1]"),
            Some("namespaces.vpn.veth")
        );
        assert_eq!(parent_key("namespaces"), None);
    }

    #[test]
    fn dropin_adds_namespace_and_keys() {
        let loaded = merge(&[
            ("/etc/netnsctl/netnsctl.toml", "[namespaces.vpn]\nsysctl = { \"net.ipv4.ip_forward\" = 1 }\n"),
            (
                "/etc/netnsctl/conf.d/10-more.toml",
                "[namespaces.vpn]\nkillswitch = false\nsysctl = { \"net.ipv6.conf.all.forwarding\" = 1 }\n\n[namespaces.lab]\n",
            ),
        ])
        .expect("merge succeeds");
        let vpn = &loaded.config.namespaces["vpn"];
        assert_eq!(vpn.sysctl.len(), 2);
        assert!(loaded.config.namespaces.contains_key("lab"));
        assert_eq!(
            loaded.file_of(r#"namespaces.vpn.sysctl."net.ipv4.ip_forward""#),
            Path::new("/etc/netnsctl/netnsctl.toml")
        );
        assert_eq!(
            loaded.file_of(r#"namespaces.vpn.sysctl."net.ipv6.conf.all.forwarding""#),
            Path::new("/etc/netnsctl/conf.d/10-more.toml")
        );
        assert_eq!(
            loaded.file_of("namespaces.lab"),
            Path::new("/etc/netnsctl/conf.d/10-more.toml")
        );
        assert_eq!(loaded.files_of("namespaces.vpn").len(), 2);
    }

    #[test]
    fn arrays_concatenate_without_repeats() {
        let loaded = merge(&[
            (
                "main.toml",
                "[namespaces.vpn]\nmembers = [\"a.service\", \"b.service\"]\n",
            ),
            (
                "conf.d/1.toml",
                "[namespaces.vpn]\nmembers = [\"b.service\", \"c.service\"]\n",
            ),
        ])
        .expect("merge succeeds");
        assert_eq!(
            loaded.config.namespaces["vpn"].members,
            ["a.service", "b.service", "c.service"]
        );
        assert_eq!(
            loaded.file_of("namespaces.vpn.members[0]"),
            Path::new("main.toml")
        );
        assert_eq!(
            loaded.file_of("namespaces.vpn.members[2]"),
            Path::new("conf.d/1.toml")
        );
        assert_eq!(loaded.files_of("namespaces.vpn.members[1]").len(), 2);
    }

    #[test]
    fn arrays_of_tables_keep_file_of_each_entry() {
        let loaded = merge(&[
            (
                "main.toml",
                "[[namespaces.vpn.route]]\nto = \"default\"\ndev = \"wg0\"\n",
            ),
            (
                "conf.d/1.toml",
                "[[namespaces.vpn.route]]\nto = \"10.0.0.0/8\"\nvia = \"10.1.0.1\"\n",
            ),
        ])
        .expect("merge succeeds");
        assert_eq!(loaded.config.namespaces["vpn"].route.len(), 2);
        assert_eq!(
            loaded.file_of("namespaces.vpn.route[1].via"),
            Path::new("conf.d/1.toml")
        );
    }

    #[test]
    fn same_scalar_twice_is_accepted() {
        let loaded = merge(&[
            (
                "main.toml",
                "[namespaces.vpn]\nnftables = \"table inet f {}\"\n",
            ),
            (
                "conf.d/1.toml",
                "[namespaces.vpn]\nnftables = \"table inet f {}\"\n",
            ),
        ])
        .expect("merge succeeds");
        assert_eq!(
            loaded.config.namespaces["vpn"].nftables.as_deref(),
            Some("table inet f {}")
        );
    }

    #[test]
    fn conflicting_scalar_names_both_files() {
        let errors = merge(&[
            ("main.toml", "[namespaces.vpn]\nkillswitch = true\n"),
            ("conf.d/1.toml", "[namespaces.vpn]\nkillswitch = false\n"),
        ])
        .expect_err("conflict");
        assert_eq!(errors.0.len(), 1);
        let message = errors.0[0].to_string();
        assert!(
            message.starts_with("conf.d/1.toml: namespaces.vpn.killswitch = false: "),
            "{message}"
        );
        assert!(
            message.contains("conflicts with true in main.toml"),
            "{message}"
        );
    }

    #[test]
    fn conflicting_sysctl_and_service_keys() {
        let errors = merge(&[
            (
                "main.toml",
                "[namespaces.vpn.sysctl]\n\"net.ipv4.ip_forward\" = 1\n[namespaces.vpn.service.Service]\nRestart = \"always\"\n",
            ),
            (
                "conf.d/1.toml",
                "[namespaces.vpn.sysctl]\n\"net.ipv4.ip_forward\" = 0\n[namespaces.vpn.service.Service]\nRestart = \"no\"\n",
            ),
        ])
        .expect_err("conflicts");
        let keys: Vec<_> = errors.0.iter().filter_map(|err| err.key.clone()).collect();
        assert!(
            keys.contains(&r#"namespaces.vpn.sysctl."net.ipv4.ip_forward""#.to_owned()),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"namespaces.vpn.service.Service.Restart".to_owned()),
            "{keys:?}"
        );
    }

    #[test]
    fn table_against_string_is_conflict() {
        let errors = merge(&[
            (
                "main.toml",
                "[namespaces.vpn.dns]\nnameservers = [\"10.0.0.1\"]\n",
            ),
            ("conf.d/1.toml", "[namespaces.vpn]\ndns = \"10.0.0.1\"\n"),
        ])
        .expect_err("conflict");
        assert!(
            errors.0[0]
                .message
                .contains("conflicts with a table in main.toml"),
            "{errors}"
        );
    }

    #[test]
    fn bridges_merge_by_name() {
        let loaded = merge(&[
            (
                "main.toml",
                "[bridges.br0]\naddresses = [\"10.0.0.1/24\"]\n",
            ),
            (
                "conf.d/1.toml",
                "[bridges.br0]\naddresses = [\"fd00::1/64\"]\n[bridges.br1]\n",
            ),
        ])
        .expect("merge succeeds");
        assert_eq!(loaded.config.bridges["br0"].addresses.len(), 2);
        assert!(loaded.config.bridges.contains_key("br1"));
    }

    #[test]
    fn unknown_key_in_dropin_points_at_its_line() {
        let errors = merge(&[
            ("main.toml", "[namespaces.vpn]\n"),
            ("conf.d/1.toml", "\n[namespaces.vpn]\nkillswich = true\n"),
        ])
        .expect_err("unknown key");
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].file, Path::new("conf.d/1.toml"));
        assert!(
            errors.0[0]
                .message
                .starts_with("line 3, column 1: unknown field `killswich`"),
            "{errors}"
        );
    }

    #[test]
    fn table_split_over_files_is_accepted() {
        let loaded = merge(&[
            (
                "main.toml",
                "[namespaces.vpn.wireguard.wg0]\nprivate_key_file = \"/etc/wg.key\"\n",
            ),
            (
                "conf.d/1.toml",
                "[[namespaces.vpn.wireguard.wg0.peer]]\npublic_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n",
            ),
        ])
        .expect("merge succeeds");
        assert_eq!(
            loaded.config.namespaces["vpn"].wireguard["wg0"].peer.len(),
            1
        );
    }

    #[test]
    fn validation_error_names_declaring_file() {
        let loaded = merge(&[
            (
                "main.toml",
                "[namespaces.vpn]\nsysctl = { \"net.ipv4.ip_forward\" = 1 }\n",
            ),
            (
                "conf.d/1.toml",
                "[namespaces.vpn]\nsysctl = { \"kernel.hostname\" = \"x\" }\n",
            ),
        ])
        .expect("merge succeeds");
        let errors = crate::config::validate::validate(&loaded).expect_err("kernel.* is rejected");
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].file, Path::new("conf.d/1.toml"));
    }

    #[test]
    fn validation_error_on_split_table_lists_files() {
        let loaded = merge(&[
            (
                "main.toml",
                "[namespaces.vpn]\nnftables = \"table inet f {}\"\n",
            ),
            (
                "conf.d/1.toml",
                "[namespaces.vpn]\nnftables_from_host = true\n",
            ),
        ])
        .expect("merge succeeds");
        let errors = crate::config::validate::validate(&loaded).expect_err("two ruleset sources");
        assert_eq!(errors.0[0].file, Path::new("main.toml"));
        assert!(
            errors.0[0]
                .message
                .contains("also declared in conf.d/1.toml"),
            "{errors}"
        );
    }

    #[test]
    fn syntax_error_names_dropin() {
        let errors = merge(&[("main.toml", ""), ("conf.d/1.toml", "[namespaces.vpn\n")])
            .expect_err("syntax error");
        assert_eq!(errors.0[0].file, Path::new("conf.d/1.toml"));
    }

    #[test]
    fn dropin_files_sorted_and_filtered() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let main = dir.path().join("netnsctl.toml");
        assert!(dropin_files(&main).expect("no conf.d").is_empty());
        let confd = dir.path().join(DROPIN_DIR);
        std::fs::create_dir(&confd).expect("mkdir");
        for name in [
            "20-b.toml",
            "10-a.toml",
            ".hidden.toml",
            "notes.txt",
            "30-c.toml.bak",
        ] {
            std::fs::write(confd.join(name), "").expect("write");
        }
        std::fs::create_dir(confd.join("40-dir.toml")).expect("mkdir");
        let files = dropin_files(&main).expect("list");
        assert_eq!(files, [confd.join("10-a.toml"), confd.join("20-b.toml")]);
    }
}
