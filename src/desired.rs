//! The desired model: a validated config resolved into exactly what each namespace should have.
//!
//! Resolving reads the files a config points to (`nftables_file`, the host's sysctl.d, the
//! host's ruleset) so that every read error surfaces before the first change.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::validate::key_part;
use crate::config::{self, ConfigError, ConfigErrors, LoadedConfig};
use crate::kernel::nft;

/// A ruleset to load, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub text: String,
    /// Replaces `/dev/stdin` in nft's messages: a file path, or the config file and key.
    pub label: String,
    /// SHA-256 of `text`, hex.
    pub digest: String,
}

impl Ruleset {
    pub fn new(text: String, label: String) -> Self {
        let digest = hex_digest(text.as_bytes());
        Ruleset {
            text,
            label,
            digest,
        }
    }
}

/// Returns the SHA-256 of `bytes` in hex.
pub fn hex_digest(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Everything one namespace should have.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceSpec {
    pub name: String,
    pub adopt: bool,
    /// Sysctls in the order they are written; later entries for the same key win. Keys may
    /// contain `*` or `?` (from host sysctl.d files), expanded inside the namespace.
    pub sysctls: Vec<(String, String)>,
    pub ruleset: Option<Ruleset>,
    /// Contents of /etc/netns/NAME/resolv.conf.
    pub resolv_conf: String,
    /// The config table, for the parts resolved elsewhere (links, systemd units).
    pub config: config::Namespace,
}

/// The desired state of every namespace in a config.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Desired {
    pub namespaces: BTreeMap<String, NamespaceSpec>,
    pub bridges: BTreeMap<String, config::Bridge>,
}

/// Where resolving reads host state from. Tests replace these.
pub struct HostSources {
    pub sysctl_dirs: Vec<std::path::PathBuf>,
}

impl Default for HostSources {
    fn default() -> Self {
        HostSources {
            sysctl_dirs: config::sysctld::default_dirs(),
        }
    }
}

/// Files netnsctl writes under /etc/netns/NAME, which `ip netns exec` mounts over /etc.
pub const ETC_FILES: &[&str] = &["resolv.conf"];

/// Renders resolv.conf for a `dns` table; empty without one.
pub fn resolv_conf(dns: Option<&config::Dns>) -> String {
    let Some(dns) = dns else {
        return String::new();
    };
    let mut text = String::new();
    for server in &dns.nameservers {
        let _ = writeln!(text, "nameserver {server}");
    }
    if !dns.search.is_empty() {
        let _ = writeln!(text, "search {}", dns.search.join(" "));
    }
    if !dns.options.is_empty() {
        let _ = writeln!(text, "options {}", dns.options.join(" "));
    }
    text
}

/// Resolves a validated config. `only` limits the result to those namespaces (all when empty);
/// a name that the config does not declare is an error.
pub fn resolve(
    loaded: &LoadedConfig,
    only: &[String],
    sources: &HostSources,
) -> Result<Desired, ConfigErrors> {
    let path = &loaded.path;
    let mut errors = Vec::new();
    for name in only {
        if !loaded.config.namespaces.contains_key(name) {
            errors.push(ConfigError::file(
                path,
                format!(
                    "namespace {name:?} is not declared; add [namespaces.{}]",
                    key_part(name)
                ),
            ));
        }
    }

    let mut host_sysctls = None;
    let mut host_ruleset: Option<Result<String, String>> = None;
    let mut desired = Desired {
        bridges: loaded.config.bridges.clone(),
        ..Desired::default()
    };
    for (name, ns) in &loaded.config.namespaces {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        let key = format!("namespaces.{}", key_part(name));
        let mut sysctls = Vec::new();
        if ns.inherit_host_sysctl {
            let inherited = host_sysctls
                .get_or_insert_with(|| config::sysctld::host_net_settings(&sources.sysctl_dirs));
            sysctls.extend(inherited.iter().cloned());
        }
        for (sysctl, value) in &ns.sysctl {
            sysctls.push((sysctl.clone(), value.to_proc_text()));
        }

        let ruleset = if let Some(text) = &ns.nftables {
            Some(Ruleset::new(
                text.clone(),
                format!("{}: {key}.nftables", path.display()),
            ))
        } else if let Some(file) = &ns.nftables_file {
            match read_ruleset_file(file) {
                Ok(text) => Some(Ruleset::new(text, file.display().to_string())),
                Err(message) => {
                    errors.push(ConfigError::key(
                        path,
                        format!("{key}.nftables_file"),
                        format!("{:?}", file.display().to_string()),
                        message,
                    ));
                    None
                }
            }
        } else if ns.nftables_from_host {
            let listed = host_ruleset
                .get_or_insert_with(|| nft::list_ruleset().map_err(|err| err.to_string()));
            match listed {
                Ok(text) => Some(Ruleset::new(text.clone(), "host ruleset".into())),
                Err(message) => {
                    errors.push(ConfigError::key(
                        path,
                        format!("{key}.nftables_from_host"),
                        true,
                        format!("cannot read the host ruleset: {message}"),
                    ));
                    None
                }
            }
        } else {
            None
        };

        desired.namespaces.insert(
            name.clone(),
            NamespaceSpec {
                name: name.clone(),
                adopt: ns.adopt,
                sysctls,
                ruleset,
                resolv_conf: resolv_conf(ns.dns.as_ref()),
                config: ns.clone(),
            },
        );
    }
    if errors.is_empty() {
        Ok(desired)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn read_ruleset_file(file: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|err| format!("cannot read ruleset file: {err}"))?;
    String::from_utf8(bytes).map_err(|_| "the ruleset file is not UTF-8 text".to_owned())
}
