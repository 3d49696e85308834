//! The TOML configuration: serde types that mirror the file, and loading.
//!
//! Struct fields are named exactly like the TOML keys. Unknown keys are rejected by serde
//! (`deny_unknown_fields`); everything serde cannot express is checked in [`validate`].

pub mod dropin;
pub mod names;
pub mod schema;
pub mod sysctld;
pub mod units;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use validate::{ConfigError, ConfigErrors};

/// Config file read when `-c` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/netnsctl/netnsctl.toml";

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Network namespaces, keyed by name.
    #[serde(default)]
    pub namespaces: BTreeMap<String, Namespace>,
    /// Bridges in the host network namespace, keyed by interface name.
    #[serde(default)]
    pub bridges: BTreeMap<String, Bridge>,
}

/// One `[namespaces.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// Manage a namespace that exists but was not created by netnsctl.
    #[serde(default)]
    pub adopt: bool,
    /// `net.*` sysctls set inside the namespace.
    #[serde(default)]
    pub sysctl: BTreeMap<String, SysctlValue>,
    /// Apply the host's sysctl.d `net.*` keys first.
    #[serde(default)]
    pub inherit_host_sysctl: bool,
    /// Inline nftables ruleset.
    pub nftables: Option<String>,
    /// Path of an nftables ruleset file.
    pub nftables_file: Option<PathBuf>,
    /// Copy the host's current ruleset.
    #[serde(default)]
    pub nftables_from_host: bool,
    /// Contents of /etc/netns/NAME/resolv.conf.
    pub dns: Option<Dns>,

    /// Units that run inside this namespace.
    #[serde(default)]
    pub members: Vec<String>,
    /// How members join the namespace.
    #[serde(default)]
    pub join: JoinMode,
    /// Overrides merged into `netns-NAME.service`, by section then key.
    #[serde(default)]
    pub service: BTreeMap<String, BTreeMap<String, UnitValue>>,

    /// veth pairs with one end in this namespace.
    #[serde(default)]
    pub veth: Vec<Veth>,
    /// Routes inside the namespace.
    #[serde(default)]
    pub route: Vec<Route>,
    /// Host ports forwarded into the namespace.
    #[serde(default)]
    pub port_mapping: Vec<PortMapping>,
    /// WireGuard links, keyed by interface name.
    #[serde(default)]
    pub wireguard: BTreeMap<String, WireGuard>,
    /// A wg-quick file to import as one WireGuard link named after the file.
    pub wireguard_config: Option<PathBuf>,
    /// Drop traffic that would leave other than through the WireGuard link.
    #[serde(default)]
    pub killswitch: bool,
    /// Ranges that may reach the namespace over its veth links when the killswitch is on.
    #[schemars(with = "Vec<String>")]
    #[serde(default)]
    pub accessible_from: Vec<IpNet>,
    /// Existing host links moved into the namespace.
    #[serde(default)]
    pub interfaces: Vec<String>,
}

/// A sysctl value as written in TOML.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "invalid value: expected an integer, a string or a boolean"
)]
pub enum SysctlValue {
    Bool(bool),
    Integer(i64),
    String(String),
}

impl SysctlValue {
    /// Returns the text written to /proc/sys: booleans become 1 or 0.
    pub fn to_proc_text(&self) -> String {
        match self {
            SysctlValue::Bool(b) => u8::from(*b).to_string(),
            SysctlValue::Integer(i) => i.to_string(),
            SysctlValue::String(s) => s.clone(),
        }
    }
}

impl fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysctlValue::String(s) => write!(f, "{s:?}"),
            other => f.write_str(&other.to_proc_text()),
        }
    }
}

/// The `dns` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// `nameserver` lines, in order.
    #[serde(default)]
    pub nameservers: Vec<IpAddr>,
    /// Domains of the `search` line.
    #[serde(default)]
    pub search: Vec<String>,
    /// Words of the `options` line, such as "ndots:2" or "edns0".
    #[serde(default)]
    pub options: Vec<String>,
}

/// How member units join the namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JoinMode {
    /// `NetworkNamespacePath=/run/netns/NAME`.
    #[default]
    NetworkNamespacePath,
    /// `PrivateNetwork=yes` plus `JoinsNamespaceOf=netns-NAME.service`.
    PrivateNetwork,
}

/// A unit file value: one line or several lines of the same key.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "invalid value: expected a string or an array of strings"
)]
pub enum UnitValue {
    One(String),
    Many(Vec<String>),
}

/// Prints the value as TOML writes it, for messages.
impl fmt::Display for UnitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitValue::One(line) => write!(f, "{line:?}"),
            UnitValue::Many(lines) => write!(f, "{lines:?}"),
        }
    }
}

impl UnitValue {
    /// Returns the lines of this value in order.
    pub fn lines(&self) -> &[String] {
        match self {
            UnitValue::One(s) => std::slice::from_ref(s),
            UnitValue::Many(v) => v,
        }
    }
}

/// A `[[namespaces.NAME.veth]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Veth {
    /// Name of the end inside this namespace.
    pub name: String,
    /// Name of the other end.
    pub peer: String,
    /// Namespace of the other end; the host namespace when absent.
    pub peer_namespace: Option<String>,
    /// Host bridge that the other end joins.
    pub peer_bridge: Option<String>,
    /// Addresses with prefix length of the end inside this namespace.
    #[schemars(with = "Vec<String>")]
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// Addresses with prefix length of the other end.
    #[schemars(with = "Vec<String>")]
    #[serde(default)]
    pub peer_addresses: Vec<IpNet>,
    /// Source-NAT traffic from this namespace as it leaves the host.
    #[serde(default)]
    pub masquerade: bool,
}

/// A `[[namespaces.NAME.route]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination: `default` or a CIDR.
    pub to: String,
    /// Gateway address.
    pub via: Option<IpAddr>,
    /// Outgoing link inside the namespace.
    pub dev: Option<String>,
}

/// Transport protocol of a port mapping.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A `[[namespaces.NAME.port_mapping]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// Port on the host.
    pub host_port: u16,
    /// Port inside the namespace.
    pub port: u16,
    /// Limit the mapping to one host address; every host address when absent.
    pub host_address: Option<IpAddr>,
}

/// A `[namespaces.NAME.wireguard.LINK]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WireGuard {
    /// Absolute path of the file with the base64 private key.
    pub private_key_file: PathBuf,
    /// Addresses with prefix length of the link.
    #[schemars(with = "Vec<String>")]
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// Namespace whose network carries the encrypted UDP: `host` or a namespace name.
    #[serde(default = "default_underlay")]
    pub underlay: String,
    /// UDP port the link listens on.
    pub listen_port: Option<u16>,
    /// Peers of the link.
    #[serde(default)]
    pub peer: Vec<WireGuardPeer>,
}

fn default_underlay() -> String {
    "host".to_owned()
}

/// A WireGuard peer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WireGuardPeer {
    /// The peer's public key in base64.
    pub public_key: String,
    /// `HOST:PORT` or `[IPv6]:PORT` of the peer.
    pub endpoint: Option<String>,
    /// Networks routed to this peer and accepted from it.
    #[schemars(with = "Vec<String>")]
    #[serde(default)]
    pub allowed_ips: Vec<IpNet>,
    /// Interval in seconds of keepalive packets to the peer.
    pub persistent_keepalive: Option<u16>,
    /// Absolute path of the file with the base64 preshared key.
    pub preshared_key_file: Option<PathBuf>,
}

/// A `[bridges.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    /// Addresses with prefix length of the bridge.
    #[schemars(with = "Vec<String>")]
    #[serde(default)]
    pub addresses: Vec<IpNet>,
}

/// A parsed config together with the files it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The main config file.
    pub path: PathBuf,
    pub config: Config,
    /// The file behind each key when drop-ins were merged; empty for a single file.
    pub origins: dropin::Origins,
}

impl LoadedConfig {
    /// Returns the first file that declared `key` (a dotted key path as in error messages).
    pub fn file_of(&self, key: &str) -> &Path {
        self.files_of(key)
            .first()
            .map_or(&self.path, PathBuf::as_path)
    }

    /// Returns every file that declared `key` or keys below it, in merge order.
    pub fn files_of(&self, key: &str) -> &[PathBuf] {
        self.origins
            .files_of(key)
            .unwrap_or(std::slice::from_ref(&self.path))
    }
}

/// Reads and parses a config file and the drop-ins in `conf.d/*.toml` beside it (see
/// [`dropin`]). Syntax, type and unknown-key errors come back with the file name and the line;
/// [`validate::validate`] checks the rest.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let text = read_file(path)?;
    let dropins = dropin::dropin_files(path).map_err(ConfigErrors::single)?;
    if dropins.is_empty() {
        return parse(path, &text);
    }
    let mut files = vec![(path.to_owned(), text)];
    for dropin in dropins {
        let text = read_file(&dropin)?;
        files.push((dropin, text));
    }
    dropin::parse_merged(&files)
}

/// Maximum size of a config file. Reading stops there, so `-c /dev/zero` fails instead of
/// filling memory; pipes such as `-c <(generate-config)` still work.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    use std::io::Read;

    let error = |message: String| ConfigErrors::single(ConfigError::file(path, message));
    let file = std::fs::File::open(path)
        .map_err(|err| error(format!("cannot read config file: {err}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| error(format!("cannot read config file: {err}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(error(format!(
            "config file larger than {} MiB; give the path of a netnsctl TOML file",
            MAX_CONFIG_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        error("cannot read config file: stream did not contain valid UTF-8".to_owned())
    })
}

/// Parses the text of one config file; `path` is used in messages only.
pub fn parse(path: &Path, text: &str) -> Result<LoadedConfig, ConfigErrors> {
    let syntax = |key, err: &toml::de::Error| {
        ConfigErrors::single(ConfigError::syntax(path, text, key, err))
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|err| syntax(None, &err))?;
    let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = key_path(err.path());
        syntax(key, err.inner())
    })?;
    Ok(LoadedConfig {
        path: path.to_owned(),
        config,
        origins: dropin::Origins::default(),
    })
}

/// Formats a deserializer path as a TOML key path (`namespaces.web.veth[0].name`); `None` for
/// the document root.
pub(crate) fn key_path(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: part } | Segment::Enum { variant: part } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(&validate::key_part(part));
            }
            Segment::Unknown => {}
        }
    }
    (!key.is_empty()).then_some(key)
}
