//! The desired model: a validated config resolved into exactly what each namespace should have.
//!
//! Resolving reads the files a config points to (`nftables_file`, the host's sysctl.d, the
//! host's ruleset) so that every read error surfaces before the first change.

pub mod links;
pub mod wgquick;
mod x25519;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use ipnet::IpNet;

use sha2::{Digest, Sha256};

use crate::config::validate::key_part;
use crate::config::{self, ConfigError, ConfigErrors, LoadedConfig};
use crate::kernel::{nft, sysctl};

/// A ruleset to load, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub text: String,
    /// Replaces `/dev/stdin` in nft's messages: a file path, or the config file and key.
    pub label: String,
    /// SHA-256 of `text` and of the files it includes, hex.
    pub digest: String,
}

impl Ruleset {
    pub fn new(text: String, label: String) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(text.as_bytes());
        hash_includes(&text, &mut hasher, 0);
        let digest = hex_string(&hasher.finalize());
        Ruleset {
            text,
            label,
            digest,
        }
    }
}

/// Returns the SHA-256 of `bytes` in hex.
pub fn hex_digest(bytes: &[u8]) -> String {
    hex_string(&Sha256::digest(bytes))
}

fn hex_string(digest: &[u8]) -> String {
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
    /// Sysctls in the order they are written: the host's sysctl.d entries, then the config's.
    /// Later entries for the same key win. Glob keys are expanded inside the namespace.
    pub sysctls: Vec<SysctlSetting>,
    /// Keys that globs skip, as in systemd-sysctl: every key with an explicit entry, and the
    /// host's `-KEY` exclusion lines.
    pub sysctl_glob_exclusions: BTreeSet<String>,
    pub ruleset: Option<Ruleset>,
    /// Contents of /etc/netns/NAME/resolv.conf.
    pub resolv_conf: String,
    /// WireGuard links, from `wireguard` tables or an imported `wireguard_config` file.
    pub wireguard: Vec<WireGuardSpec>,
    /// The config table, for the parts resolved elsewhere (links, systemd units).
    pub config: config::Namespace,
}

/// One sysctl to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlSetting {
    /// Key in dotted form (see [`crate::kernel::sysctl::dotted_key`]), or a glob.
    pub key: String,
    /// Text written to /proc/sys.
    pub value: String,
    /// A failure to write the key is a warning, not an error (a host `-KEY = VALUE` line).
    pub ignore_failure: bool,
    /// Declaration site for messages: `FILE: namespaces.NAME.sysctl."KEY"`, or `FILE:LINE` of a
    /// host sysctl.d file.
    pub source: String,
}

impl NamespaceSpec {
    /// Returns the entry that decides `key`, which is a glob key as written or a concrete key.
    pub fn sysctl_setting(&self, key: &str) -> Option<&SysctlSetting> {
        self.sysctls.iter().rev().find(|setting| setting.key == key)
    }
}

/// A secret such as a WireGuard private key, kept out of debug output and logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A WireGuard link with its keys read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WireGuardSpec {
    /// Name inside the namespace.
    pub link: String,
    /// Base64 private key.
    pub private_key: Secret,
    pub listen_port: Option<u16>,
    pub addresses: Vec<IpNet>,
    /// Namespace that carries the encrypted UDP; `None` for the host.
    pub underlay: Option<String>,
    pub peers: Vec<WireGuardPeerSpec>,
}

/// A WireGuard peer with its preshared key read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WireGuardPeerSpec {
    /// Base64 public key.
    pub public_key: String,
    pub preshared_key: Option<Secret>,
    /// `HOST:PORT` as written; a host name is resolved in the underlay when applied.
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<IpNet>,
    pub persistent_keepalive: Option<u16>,
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
        let mut sysctl_glob_exclusions = BTreeSet::new();
        if ns.inherit_host_sysctl {
            let inherited = host_sysctls
                .get_or_insert_with(|| config::sysctld::host_net_settings(&sources.sysctl_dirs));
            for host in inherited.iter() {
                if !sysctl::is_glob(&host.key) {
                    sysctl_glob_exclusions.insert(host.key.clone());
                }
                if let Some(value) = &host.value {
                    sysctls.push(SysctlSetting {
                        key: host.key.clone(),
                        value: value.clone(),
                        ignore_failure: host.ignore_failure,
                        source: host.source.clone(),
                    });
                }
            }
        }
        for (sysctl, value) in &ns.sysctl {
            let sysctl_key = format!("{key}.sysctl.{}", key_part(sysctl));
            let dotted = sysctl::dotted_key(sysctl);
            if !sysctl::is_glob(&dotted) {
                sysctl_glob_exclusions.insert(dotted.clone());
            }
            sysctls.push(SysctlSetting {
                key: dotted,
                value: value.to_proc_text(),
                ignore_failure: false,
                source: format!("{}: {sysctl_key}", loaded.file_of(&sysctl_key).display()),
            });
        }

        let ruleset = if let Some(text) = &ns.nftables {
            let nftables_key = format!("{key}.nftables");
            let file = loaded.file_of(&nftables_key).display();
            Some(Ruleset::new(
                text.clone(),
                format!("{file}: {nftables_key}"),
            ))
        } else if let Some(file) = &ns.nftables_file {
            match read_ruleset_file(file) {
                Ok(text) => Some(Ruleset::new(text, file.display().to_string())),
                Err(message) => {
                    let file_key = format!("{key}.nftables_file");
                    errors.push(ConfigError::key(
                        loaded.file_of(&file_key),
                        file_key,
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
                    let host_key = format!("{key}.nftables_from_host");
                    errors.push(ConfigError::key(
                        loaded.file_of(&host_key),
                        host_key,
                        true,
                        format!("cannot read the host ruleset: {message}"),
                    ));
                    None
                }
            }
        } else {
            None
        };

        let mut dns = ns.dns.clone();
        let wireguard = match resolve_wireguard(path, &key, ns, &mut dns) {
            Ok(wireguard) => wireguard,
            Err(mut found) => {
                errors.append(&mut found);
                Vec::new()
            }
        };
        let ruleset = if ns.killswitch {
            let killswitch = killswitch_ruleset(ns, &wireguard, dns.as_ref());
            match ruleset {
                Some(user) if declares_table(&user.text, links::KILLSWITCH_TABLE) => {
                    let source_key = if ns.nftables.is_some() {
                        format!("{key}.nftables")
                    } else if ns.nftables_file.is_some() {
                        format!("{key}.nftables_file")
                    } else {
                        format!("{key}.nftables_from_host")
                    };
                    errors.push(ConfigError::key(
                        loaded.file_of(&source_key),
                        source_key,
                        format!("{:?}", links::KILLSWITCH_TABLE),
                        format!(
                            "the ruleset declares table {}, a name reserved for the killswitch \
                             table that netnsctl adds: rename that table",
                            links::KILLSWITCH_TABLE
                        ),
                    ));
                    None
                }
                Some(user) => Some(Ruleset::new(
                    format!("{}\n{killswitch}", user.text),
                    user.label,
                )),
                None => Some(Ruleset::new(
                    killswitch,
                    format!("{}: {key}.killswitch", path.display()),
                )),
            }
        } else {
            ruleset
        };

        desired.namespaces.insert(
            name.clone(),
            NamespaceSpec {
                name: name.clone(),
                adopt: ns.adopt,
                sysctls,
                sysctl_glob_exclusions,
                ruleset,
                resolv_conf: resolv_conf(dns.as_ref()),
                wireguard,
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

/// Checks whether a ruleset text names table `name` in a `table FAMILY NAME` statement.
fn declares_table(text: &str, name: &str) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '{' || c == ';')
        .filter(|word| !word.is_empty())
        .collect();
    words
        .windows(3)
        .any(|window| window[0] == "table" && (window[1] == name || window[2] == name))
}

/// Builds the killswitch table for a namespace: its tunnels are its WireGuard links, its veths
/// open to `accessible_from`, and DNS goes only to its nameservers.
fn killswitch_ruleset(
    ns: &config::Namespace,
    wireguard: &[WireGuardSpec],
    dns: Option<&config::Dns>,
) -> String {
    let tunnels: Vec<String> = wireguard.iter().map(|wg| wg.link.clone()).collect();
    let veths: Vec<String> = ns.veth.iter().map(|veth| veth.name.clone()).collect();
    let nameservers = dns.map(|dns| dns.nameservers.clone()).unwrap_or_default();
    links::render_killswitch(&tunnels, &veths, &ns.accessible_from, &nameservers)
}

/// Reads the keys of the `wireguard` tables, or imports `wireguard_config`. The import's `DNS`
/// becomes the namespace's `dns` unless the namespace declares one.
fn resolve_wireguard(
    path: &Path,
    key: &str,
    ns: &config::Namespace,
    dns: &mut Option<config::Dns>,
) -> Result<Vec<WireGuardSpec>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut specs = Vec::new();
    let underlay_of = |underlay: &str| (underlay != "host").then(|| underlay.to_owned());
    if let Some(file) = &ns.wireguard_config {
        let fkey = format!("{key}.wireguard_config");
        let fvalue = format!("{:?}", file.display().to_string());
        let link = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if !config::names::is_valid_interface_name(link) {
            errors.push(ConfigError::key(
                path,
                fkey,
                fvalue,
                format!(
                    "the link is named after the file, and {link:?} is not a valid interface name: \
                     rename the file to LINK.conf with LINK {}",
                    config::names::INTERFACE_NAME_RULE
                ),
            ));
            return Err(errors);
        }
        let text = match read_regular_file(file, "wg-quick file", "a wg-quick file") {
            Ok(text) => text,
            Err(message) => {
                errors.push(ConfigError::key(path, fkey, fvalue, message));
                return Err(errors);
            }
        };
        match wgquick::parse(&text, link) {
            Ok(imported) => {
                if !imported.nameservers.is_empty() || !imported.search.is_empty() {
                    if dns.is_some() {
                        errors.push(ConfigError::key(
                            path,
                            fkey.clone(),
                            fvalue.clone(),
                            "the file sets DNS and the namespace has a `dns` table: remove one of them",
                        ));
                    } else {
                        *dns = Some(config::Dns {
                            nameservers: imported.nameservers,
                            search: imported.search,
                            options: Vec::new(),
                        });
                    }
                }
                if let Some(i) = own_key_peer(&imported.wireguard) {
                    errors.push(ConfigError::key(
                        path,
                        fkey.clone(),
                        fvalue.clone(),
                        format!(
                            "{}: [Peer] number {} has the public key of the file's own \
                             PrivateKey, and a WireGuard link cannot be its own peer: remove \
                             that [Peer]",
                            file.display(),
                            i + 1
                        ),
                    ));
                }
                specs.push(imported.wireguard);
            }
            Err(message) => errors.push(ConfigError::key(
                path,
                fkey,
                fvalue,
                format!("{}: {message}", file.display()),
            )),
        }
    }
    for (link, wg) in &ns.wireguard {
        let wkey = format!("{key}.wireguard.{}", key_part(link));
        let private_key = match read_key_file(&wg.private_key_file) {
            Ok(secret) => secret,
            Err(message) => {
                errors.push(ConfigError::key(
                    path,
                    format!("{wkey}.private_key_file"),
                    format!("{:?}", wg.private_key_file.display().to_string()),
                    message,
                ));
                continue;
            }
        };
        let mut peers = Vec::new();
        for (i, peer) in wg.peer.iter().enumerate() {
            let preshared_key = match &peer.preshared_key_file {
                None => None,
                Some(file) => match read_key_file(file) {
                    Ok(secret) => Some(secret),
                    Err(message) => {
                        errors.push(ConfigError::key(
                            path,
                            format!("{wkey}.peer[{i}].preshared_key_file"),
                            format!("{:?}", file.display().to_string()),
                            message,
                        ));
                        continue;
                    }
                },
            };
            peers.push(WireGuardPeerSpec {
                public_key: peer.public_key.clone(),
                preshared_key,
                endpoint: peer.endpoint.clone(),
                allowed_ips: peer.allowed_ips.clone(),
                persistent_keepalive: peer.persistent_keepalive,
            });
        }
        let spec = WireGuardSpec {
            link: link.clone(),
            private_key,
            listen_port: wg.listen_port,
            addresses: wg.addresses.clone(),
            underlay: underlay_of(&wg.underlay),
            peers,
        };
        if let Some(i) = own_key_peer(&spec) {
            errors.push(ConfigError::key(
                path,
                format!("{wkey}.peer[{i}].public_key"),
                format!("{:?}", spec.peers[i].public_key),
                "this is the public key of the link's own private_key_file, and a WireGuard \
                 link cannot be its own peer: remove this peer",
            ));
        }
        specs.push(spec);
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}

/// Returns the index of a peer whose public key is the link's own public key. WireGuard drops
/// such a peer, so the link would never match the config.
fn own_key_peer(spec: &WireGuardSpec) -> Option<usize> {
    let private = crate::kernel::wireguard::decode_key(&spec.private_key.0)?;
    let own = crate::kernel::wireguard::encode_key(&x25519::public_key(&private));
    spec.peers.iter().position(|peer| peer.public_key == own)
}

/// Reads a base64 WireGuard key file as `wg genkey` writes it.
fn read_key_file(file: &Path) -> Result<Secret, String> {
    let text = read_regular_file(file, "key file", "a WireGuard key file")?;
    let key = text.trim();
    wgquick::check_key(key).map_err(|message| format!("invalid key file: {message}"))?;
    Ok(Secret(key.to_owned()))
}

/// Largest file netnsctl reads for a ruleset, a wg-quick file or a key.
const MAX_INPUT_BYTES: u64 = 64 << 20;

fn read_ruleset_file(file: &Path) -> Result<String, String> {
    read_regular_file(file, "ruleset file", "an nft ruleset file")
}

/// Reads a regular text file a config key names. `what` names the file in messages, `example`
/// says what to give instead of a file that is not regular.
fn read_regular_file(file: &Path, what: &str, example: &str) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    // O_NONBLOCK: a FIFO at the path must not block the run; the type check rejects it.
    let mut opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(|err| format!("cannot read {what}: {err}"))?;
    let meta = opened
        .metadata()
        .map_err(|err| format!("cannot read {what}: {err}"))?;
    if !meta.is_file() {
        return Err(format!("not a regular file; give the path of {example}"));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(format!(
            "the file has {} bytes; a {what} may have at most {MAX_INPUT_BYTES}",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    opened
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read {what}: {err}"))?;
    String::from_utf8(bytes).map_err(|_| format!("the {what} is not UTF-8 text"))
}

/// Default include directory of nft on Debian, where `include "NAME"` looks for a relative
/// NAME when no `-I` is given (nft(8), "INCLUDE FILES").
const NFT_INCLUDE_DIR: &str = "/etc";

/// Appends the path and contents of every file `text` includes, recursively, to `hasher`, so
/// that a change in an included file changes the ruleset's digest. Files that cannot be read
/// are hashed as missing; nft reports them when the ruleset is checked.
fn hash_includes(text: &str, hasher: &mut Sha256, depth: usize) {
    if depth > 16 {
        return;
    }
    for pattern in include_patterns(text) {
        for path in expand_include(&pattern) {
            hasher.update(path.as_os_str().as_encoded_bytes());
            hasher.update([0]);
            match read_ruleset_file(&path) {
                Ok(included) => {
                    hasher.update(included.as_bytes());
                    hash_includes(&included, hasher, depth + 1);
                }
                Err(message) => hasher.update(message.as_bytes()),
            }
            hasher.update([0]);
        }
    }
}

/// Returns the quoted names of `include "..."` statements.
fn include_patterns(text: &str) -> Vec<String> {
    let mut patterns = Vec::new();
    for line in text.lines() {
        for statement in line.split(';') {
            let statement = statement.trim_start();
            let Some(rest) = statement.strip_prefix("include") else {
                continue;
            };
            let Some(quoted) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            if let Some(end) = quoted.find('"') {
                patterns.push(quoted[..end].to_owned());
            }
        }
    }
    patterns
}

/// Resolves an include name as nft does: absolute as given, `./NAME` against the working
/// directory, anything else in [`NFT_INCLUDE_DIR`]. `*` and `?` in the file name are expanded
/// and the matches sorted.
fn expand_include(pattern: &str) -> Vec<std::path::PathBuf> {
    let path = if pattern.starts_with('/') || pattern.starts_with("./") {
        std::path::PathBuf::from(pattern)
    } else {
        Path::new(NFT_INCLUDE_DIR).join(pattern)
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return vec![path];
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut matches: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            crate::kernel::sysctl::glob_match(&name, &entry.file_name().to_string_lossy())
        })
        .map(|entry| entry.path())
        .collect();
    matches.sort();
    matches
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";

    #[test]
    fn peer_with_own_public_key_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("k.key");
        // RFC 7748 section 6.1, Alice's key pair in base64.
        std::fs::write(&key_file, "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n").unwrap();
        let own = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
        let text = format!(
            "[namespaces.k.wireguard.wg0]\nprivate_key_file = \"{}\"\n\
             [[namespaces.k.wireguard.wg0.peer]]\npublic_key = \"{KEY}\"\nallowed_ips = []\n\
             [[namespaces.k.wireguard.wg0.peer]]\npublic_key = \"{own}\"\nallowed_ips = []\n",
            key_file.display()
        );
        let loaded = config::parse(Path::new("/etc/netnsctl/k.toml"), &text).unwrap();
        let sources = HostSources {
            sysctl_dirs: Vec::new(),
        };
        let errors = resolve(&loaded, &[], &sources).unwrap_err().to_string();
        assert!(
            errors.contains(&format!(
                "namespaces.k.wireguard.wg0.peer[1].public_key = \"{own}\": this is the public \
                 key of the link's own private_key_file"
            )),
            "{errors}"
        );
    }

    #[test]
    fn table_declaration_found() {
        assert!(declares_table(
            "table inet netnsctl_killswitch { chain c {} }",
            "netnsctl_killswitch"
        ));
        assert!(declares_table(
            "table netnsctl_killswitch {\n}",
            "netnsctl_killswitch"
        ));
        assert!(!declares_table(
            "table inet filter { comment \"netnsctl_killswitch\" }",
            "netnsctl_killswitch"
        ));
    }

    #[test]
    fn killswitch_table_name_is_reserved() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("k.key");
        std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
        let text = format!(
            "[namespaces.k]\nkillswitch = true\nnftables = \"table inet netnsctl_killswitch {{ }}\"\n\
             [namespaces.k.wireguard.wg0]\nprivate_key_file = \"{}\"\n",
            key_file.display()
        );
        let loaded = config::parse(Path::new("/etc/netnsctl/k.toml"), &text).unwrap();
        let sources = HostSources {
            sysctl_dirs: Vec::new(),
        };
        let errors = resolve(&loaded, &[], &sources).unwrap_err().to_string();
        assert!(
            errors.contains(
                "namespaces.k.nftables = \"netnsctl_killswitch\": the ruleset declares table \
                 netnsctl_killswitch, a name reserved"
            ),
            "{errors}"
        );
    }
}
