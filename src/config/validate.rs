//! Checks everything about a config that serde cannot, before anything is changed.
//!
//! Every error names the file, the key path, the value and what is allowed. All errors of a
//! file are collected so one run reports every problem.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::names::{
    is_valid_interface_name, is_valid_namespace_name, INTERFACE_NAME_RULE, NAMESPACE_NAME_RULE,
};
use super::{Config, LoadedConfig, Namespace};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key path such as `namespaces.vpn.sysctl."kernel.hostname"`.
    pub key: Option<String>,
    /// The offending value as written in the file.
    pub value: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    /// An error about the file as a whole.
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: path.to_owned(),
            key: None,
            value: None,
            message: message.into(),
        }
    }

    /// An error on one key and its value.
    pub fn key(
        path: &Path,
        key: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: path.to_owned(),
            key: Some(key.into()),
            value: Some(value.to_string()),
            message: message.into(),
        }
    }

    /// A TOML syntax, type or unknown-key error, with line and column, and the key path and
    /// the offending text when they are known.
    pub fn syntax(path: &Path, text: &str, key: Option<String>, err: &toml::de::Error) -> Self {
        let span = err.span();
        let location = span.as_ref().and_then(|span| {
            // toml reports byte offsets; `get` returns None instead of panicking should one
            // ever fall inside a multi-byte character.
            let before = text.get(..span.start.min(text.len()))?;
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before[line_start..].chars().count() + 1;
            Some(format!("line {line}, column {column}: "))
        });
        // For an unknown key the span covers the key itself, which the key path already shows.
        let unknown_key = err.message().starts_with("unknown field");
        let value = key
            .as_ref()
            .and(span)
            .filter(|_| !unknown_key)
            .and_then(|span| {
                let raw = text.get(span)?.trim();
                (!raw.is_empty() && raw.len() <= 80 && !raw.contains('\n')).then(|| raw.to_owned())
            });
        ConfigError {
            file: path.to_owned(),
            key,
            value,
            message: format!(
                "{}{}",
                location.unwrap_or_default(),
                err.message().trim_end()
            ),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        match (&self.key, &self.value) {
            (Some(key), Some(value)) => write!(f, "{key} = {value}: ")?,
            (Some(key), None) => write!(f, "{key}: ")?,
            _ => {}
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn single(err: ConfigError) -> Self {
        ConfigErrors(vec![err])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Quotes a TOML key for a key path when it is not a bare key.
pub fn key_part(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// Unit types that may be members of a namespace.
const MEMBER_UNIT_SUFFIXES: [&str; 3] = [".service", ".socket", ".scope"];

/// Sections accepted in `[namespaces.NAME.service]`.
pub const SERVICE_SECTIONS: [&str; 3] = ["Unit", "Service", "Install"];

struct Checker<'a> {
    loaded: &'a LoadedConfig,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    /// Records an error on `key`, in the file that declared the key. A key whose table spans
    /// several files (drop-ins) names the others in the message.
    fn error(&mut self, key: String, value: impl fmt::Display, message: impl Into<String>) {
        let mut message = message.into();
        let files = self.loaded.files_of(&key);
        if let [first, others @ ..] = files {
            if !others.is_empty() {
                let others: Vec<String> = others
                    .iter()
                    .map(|file| file.display().to_string())
                    .collect();
                message.push_str(&format!(
                    " ({key} is also declared in {})",
                    others.join(", ")
                ));
            }
            self.errors
                .push(ConfigError::key(first, key, value, message));
        }
    }
}

/// Checks a parsed config. Returns every error found.
pub fn validate(loaded: &LoadedConfig) -> Result<(), ConfigErrors> {
    let mut checker = Checker {
        loaded,
        errors: Vec::new(),
    };
    let config = &loaded.config;

    for (name, bridge) in &config.bridges {
        let key = format!("bridges.{}", key_part(name));
        if !is_valid_interface_name(name) {
            checker.error(
                key.clone(),
                format!("{name:?}"),
                format!("invalid bridge name: use {INTERFACE_NAME_RULE}"),
            );
        }
        check_addresses(&mut checker, &format!("{key}.addresses"), &bridge.addresses);
    }

    // Host interface names netnsctl creates, to find collisions between namespaces.
    let mut host_links: BTreeMap<&str, String> = config
        .bridges
        .keys()
        .map(|name| (name.as_str(), format!("bridges.{}", key_part(name))))
        .collect();
    let mut host_ports: BTreeMap<(super::Protocol, u16), String> = BTreeMap::new();

    for (name, ns) in &config.namespaces {
        let key = format!("namespaces.{}", key_part(name));
        if !is_valid_namespace_name(name) {
            checker.error(
                key.clone(),
                format!("{name:?}"),
                format!("invalid namespace name: use {NAMESPACE_NAME_RULE}"),
            );
        }
        if name == "host" {
            checker.error(
                key.clone(),
                "\"host\"",
                "the name \"host\" stands for the host namespace in `underlay`: choose another name",
            );
        }
        check_namespace(&mut checker, config, name, ns, &key);
        check_links(&mut checker, config, name, ns, &key, &mut host_links);
        for (i, mapping) in ns.port_mapping.iter().enumerate() {
            let mkey = format!("{key}.port_mapping[{i}]");
            if mapping.host_port == 0 {
                checker.error(format!("{mkey}.host_port"), 0, "use a port from 1 to 65535");
            }
            if mapping.port == 0 {
                checker.error(format!("{mkey}.port"), 0, "use a port from 1 to 65535");
            }
            if let Some(previous) =
                host_ports.insert((mapping.protocol, mapping.host_port), mkey.clone())
            {
                checker.error(
                    format!("{mkey}.host_port"),
                    mapping.host_port,
                    format!(
                        "{} host port {} is already mapped by {previous}",
                        mapping.protocol, mapping.host_port
                    ),
                );
            }
            let host_veth = ns.veth.iter().find(|v| {
                v.peer_namespace.is_none() && v.addresses.iter().any(|a| a.addr().is_ipv4())
            });
            match host_veth {
                None => checker.error(
                    mkey,
                    format!("{}:{}", mapping.protocol, mapping.host_port),
                    "a port mapping needs a veth to the host with an IPv4 address in `addresses`",
                ),
                Some(veth) => {
                    // Connections from the host's loopback are source-NATed to the address of
                    // the host link they leave through, so that link needs an IPv4 address.
                    let host_v4 = match &veth.peer_bridge {
                        Some(bridge) => config
                            .bridges
                            .get(bridge)
                            .is_some_and(|b| b.addresses.iter().any(|a| a.addr().is_ipv4())),
                        None => veth.peer_addresses.iter().any(|a| a.addr().is_ipv4()),
                    };
                    if !host_v4 {
                        checker.error(
                            mkey,
                            format!("{}:{}", mapping.protocol, mapping.host_port),
                            "the host end of the mapped veth needs an IPv4 address: add one to \
                             `peer_addresses`, or to the bridge's `addresses`",
                        );
                    }
                }
            }
        }
    }

    check_link_ownership(&mut checker, config);
    checker.errors.extend(super::units::check(loaded));

    if checker.errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(checker.errors))
    }
}

fn check_namespace(checker: &mut Checker, config: &Config, name: &str, ns: &Namespace, key: &str) {
    // Keys that name the same sysctl, such as "net.ipv4.ip_forward" and "net/ipv4/ip_forward".
    let mut spellings: BTreeMap<String, &str> = BTreeMap::new();
    for (sysctl, value) in &ns.sysctl {
        let skey = format!("{key}.sysctl.{}", key_part(sysctl));
        if let Err(message) = check_sysctl_key(sysctl) {
            checker.error(skey.clone(), value, message);
        }
        let dotted = crate::kernel::sysctl::dotted_key(sysctl);
        if let Some(first) = spellings.insert(dotted.clone(), sysctl) {
            checker.error(
                skey.clone(),
                value,
                format!("names the same sysctl as {first:?} ({dotted}); keep one of the two keys"),
            );
        }
        if let super::SysctlValue::String(text) = value {
            if text.contains(['\n', '\0']) {
                checker.error(skey, value, "a sysctl value must be a single line");
            }
        }
    }

    let ruleset_sources = [
        ns.nftables.is_some(),
        ns.nftables_file.is_some(),
        ns.nftables_from_host,
    ];
    if ruleset_sources.iter().filter(|&&set| set).count() > 1 {
        checker.error(
            key.to_owned(),
            "nftables, nftables_file, nftables_from_host",
            "set at most one of `nftables`, `nftables_file` and `nftables_from_host`",
        );
    }
    if let Some(path) = &ns.nftables_file {
        if !path.is_absolute() {
            checker.error(
                format!("{key}.nftables_file"),
                format!("{:?}", path.display().to_string()),
                "use an absolute path",
            );
        }
    }

    if let Some(dns) = &ns.dns {
        if dns.nameservers.len() > MAX_NAMESERVERS {
            checker.error(
                format!("{key}.dns.nameservers"),
                format!("{} addresses", dns.nameservers.len()),
                format!(
                    "the resolver reads at most {MAX_NAMESERVERS} nameservers (glibc's MAXNS); list at most {MAX_NAMESERVERS}"
                ),
            );
        }
        for (i, domain) in dns.search.iter().enumerate() {
            if !is_search_domain(domain) {
                checker.error(
                    format!("{key}.dns.search[{i}]"),
                    format!("{domain:?}"),
                    "a search domain is dot-separated labels of ASCII letters, digits, '-' and '_', \
                     each 1 to 63 bytes and not starting or ending with '-'; write other names in \
                     their IDNA (xn--) form",
                );
            }
        }
        for (i, option) in dns.options.iter().enumerate() {
            if option.is_empty()
                || option.contains(|c: char| c.is_whitespace() || c.is_control())
                || ["nameserver", "search", "domain", "options"].contains(&option.as_str())
            {
                checker.error(
                    format!("{key}.dns.options[{i}]"),
                    format!("{option:?}"),
                    "a resolver option must be one word such as \"ndots:2\" or \"edns0\"",
                );
            }
        }
    }

    for (i, member) in ns.members.iter().enumerate() {
        let valid_suffix = MEMBER_UNIT_SUFFIXES
            .iter()
            .find(|suffix| member.ends_with(*suffix))
            .is_some_and(|suffix| member.len() > suffix.len());
        let valid_chars = member
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b));
        if !valid_suffix || !valid_chars || member.len() > 255 {
            checker.error(
                format!("{key}.members[{i}]"),
                format!("{member:?}"),
                "a member must be a unit name ending in .service, .socket or .scope",
            );
        }
    }

    for (section, entries) in &ns.service {
        if !SERVICE_SECTIONS.contains(&section.as_str()) {
            checker.error(
                format!("{key}.service.{}", key_part(section)),
                format!("{section:?}"),
                format!(
                    "unknown unit section: use one of {}",
                    SERVICE_SECTIONS.join(", ")
                ),
            );
        }
        for (unit_key, value) in entries {
            let vkey = format!("{key}.service.{}.{}", key_part(section), key_part(unit_key));
            if unit_key.is_empty() || !unit_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                checker.error(
                    vkey.clone(),
                    format!("{unit_key:?}"),
                    "a unit key must be letters and digits",
                );
            }
            if value.lines().iter().any(|line| line.contains(['\n', '\0'])) {
                checker.error(
                    vkey,
                    value.to_string(),
                    "a unit value must be a single line",
                );
            }
        }
    }

    if ns.killswitch && ns.wireguard.is_empty() && ns.wireguard_config.is_none() {
        checker.error(
            format!("{key}.killswitch"),
            true,
            "the killswitch needs a WireGuard link: add [namespaces.NAME.wireguard.LINK] or wireguard_config",
        );
    }
    if let Some(path) = ns
        .wireguard_config
        .as_ref()
        .filter(|_| !ns.wireguard.is_empty())
    {
        checker.error(
            format!("{key}.wireguard_config"),
            format!("{:?}", path.display().to_string()),
            "set either `wireguard` tables or `wireguard_config`, not both",
        );
    }
    for (i, range) in ns.accessible_from.iter().enumerate() {
        check_network(checker, &format!("{key}.accessible_from[{i}]"), range);
    }
    for (link, wg) in &ns.wireguard {
        let wkey = format!("{key}.wireguard.{}", key_part(link));
        if wg.underlay != "host"
            && (wg.underlay == name || !config.namespaces.contains_key(&wg.underlay))
        {
            checker.error(
                format!("{wkey}.underlay"),
                format!("{:?}", wg.underlay),
                "use \"host\" or the name of another namespace declared in this file",
            );
        }
        if !wg.private_key_file.is_absolute() {
            checker.error(
                format!("{wkey}.private_key_file"),
                format!("{:?}", wg.private_key_file.display().to_string()),
                "use an absolute path",
            );
        }
        check_addresses(checker, &format!("{wkey}.addresses"), &wg.addresses);
        for (p, peer) in wg.peer.iter().enumerate() {
            let pkey = format!("{wkey}.peer[{p}]");
            if !is_wireguard_key(&peer.public_key) {
                checker.error(
                    format!("{pkey}.public_key"),
                    format!("{:?}", peer.public_key),
                    "a WireGuard key is 32 bytes in base64 (44 characters ending in '=')",
                );
            }
            for (j, range) in peer.allowed_ips.iter().enumerate() {
                check_network(checker, &format!("{pkey}.allowed_ips[{j}]"), range);
            }
            if let Some(endpoint) = &peer.endpoint {
                if split_endpoint(endpoint).is_none() {
                    checker.error(
                        format!("{pkey}.endpoint"),
                        format!("{endpoint:?}"),
                        "use HOST:PORT or [IPv6]:PORT",
                    );
                }
            }
        }
    }
}

fn check_links<'c>(
    checker: &mut Checker,
    config: &'c Config,
    name: &str,
    ns: &'c Namespace,
    key: &str,
    host_links: &mut BTreeMap<&'c str, String>,
) {
    // Interface names inside this namespace, with the key that declares them.
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    links.insert("lo".to_owned(), "the loopback link".to_owned());
    let mut claim = |checker: &mut Checker, link: &str, lkey: String| {
        if !is_valid_interface_name(link) {
            checker.error(
                lkey,
                format!("{link:?}"),
                format!("invalid interface name: use {INTERFACE_NAME_RULE}"),
            );
        } else if let Some(previous) = links.insert(link.to_owned(), lkey.clone()) {
            checker.error(
                lkey,
                format!("{link:?}"),
                format!("interface name already used in namespace {name:?} by {previous}"),
            );
        }
    };

    for (i, veth) in ns.veth.iter().enumerate() {
        let vkey = format!("{key}.veth[{i}]");
        claim(checker, &veth.name, format!("{vkey}.name"));
        if !is_valid_interface_name(&veth.peer) {
            checker.error(
                format!("{vkey}.peer"),
                format!("{:?}", veth.peer),
                format!("invalid interface name: use {INTERFACE_NAME_RULE}"),
            );
        }
        match (&veth.peer_namespace, &veth.peer_bridge) {
            (Some(_), Some(_)) => checker.error(
                format!("{vkey}.peer_bridge"),
                format!("{:?}", veth.peer_bridge.as_deref().unwrap_or_default()),
                "a bridge port lives in the host namespace: drop `peer_namespace` or `peer_bridge`",
            ),
            (Some(peer_ns), None) => {
                if peer_ns == name || !config.namespaces.contains_key(peer_ns) {
                    checker.error(
                        format!("{vkey}.peer_namespace"),
                        format!("{peer_ns:?}"),
                        "use the name of another namespace declared in this file",
                    );
                }
            }
            (None, bridge) => {
                if let Some(bridge) = bridge {
                    if !config.bridges.contains_key(bridge) {
                        checker.error(
                            format!("{vkey}.peer_bridge"),
                            format!("{bridge:?}"),
                            "use the name of a bridge declared as [bridges.NAME]",
                        );
                    }
                }
                if let Some(previous) = host_links.insert(&veth.peer, format!("{vkey}.peer")) {
                    checker.error(
                        format!("{vkey}.peer"),
                        format!("{:?}", veth.peer),
                        format!("host interface name already used by {previous}"),
                    );
                }
            }
        }
        if veth.masquerade && veth.peer_namespace.is_some() {
            checker.error(
                format!("{vkey}.masquerade"),
                true,
                "masquerade applies to traffic leaving through the host: use it on a veth to the host",
            );
        }
        if veth.peer_bridge.is_some() && !veth.peer_addresses.is_empty() {
            checker.error(
                format!("{vkey}.peer_addresses"),
                format!(
                    "{:?}",
                    veth.peer_addresses
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                ),
                "a bridge port has no addresses of its own: put them in the bridge's `addresses`",
            );
        }
        check_addresses(checker, &format!("{vkey}.addresses"), &veth.addresses);
        check_addresses(
            checker,
            &format!("{vkey}.peer_addresses"),
            &veth.peer_addresses,
        );
    }
    for link in ns.wireguard.keys() {
        claim(checker, link, format!("{key}.wireguard.{}", key_part(link)));
    }
    for (i, link) in ns.interfaces.iter().enumerate() {
        claim(checker, link, format!("{key}.interfaces[{i}]"));
    }

    for (i, route) in ns.route.iter().enumerate() {
        let rkey = format!("{key}.route[{i}]");
        let to = if route.to == "default" {
            None
        } else {
            match route.to.parse::<IpNet>() {
                Ok(net) => {
                    check_network(checker, &format!("{rkey}.to"), &net);
                    Some(net)
                }
                Err(_) => {
                    checker.error(
                        format!("{rkey}.to"),
                        format!("{:?}", route.to),
                        "use \"default\" or a network in CIDR notation such as \"10.0.0.0/8\"",
                    );
                    continue;
                }
            }
        };
        if let (Some(to), Some(via)) = (to, route.via) {
            if to.addr().is_ipv4() != via.is_ipv4() {
                checker.error(
                    format!("{rkey}.via"),
                    format!("{via:?}"),
                    "the gateway must be of the same address family as `to`",
                );
            }
        }
        if route.via.is_none() && route.dev.is_none() {
            checker.error(
                rkey.clone(),
                format!("{:?}", route.to),
                "set `via`, `dev` or both",
            );
        }
        if let Some(dev) = &route.dev {
            if !links.contains_key(dev) {
                checker.error(
                    format!("{rkey}.dev"),
                    format!("{dev:?}"),
                    format!("no link of that name in namespace {name:?}: use a veth, wireguard or interfaces name"),
                );
            }
        }
    }
}

/// Checks links that live in one namespace but are declared elsewhere: the peer end of a
/// namespace-to-namespace veth must not collide with the peer namespace's own links, and a host
/// link may be moved by `interfaces` into one namespace only.
fn check_link_ownership(checker: &mut Checker, config: &Config) {
    let mut moved: BTreeMap<&str, String> = BTreeMap::new();
    for (name, ns) in &config.namespaces {
        for (i, link) in ns.interfaces.iter().enumerate() {
            let key = format!("namespaces.{}.interfaces[{i}]", key_part(name));
            if let Some(previous) = moved.insert(link, key.clone()) {
                checker.error(
                    key,
                    format!("{link:?}"),
                    format!("the link is already moved by {previous}"),
                );
            }
        }
    }
    let mut peer_ends: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for (name, ns) in &config.namespaces {
        for (i, veth) in ns.veth.iter().enumerate() {
            let Some(peer_ns) = veth.peer_namespace.as_deref() else {
                continue;
            };
            let key = format!("namespaces.{}.veth[{i}].peer", key_part(name));
            let Some(other) = config.namespaces.get(peer_ns) else {
                continue;
            };
            let own_links = other
                .veth
                .iter()
                .map(|v| v.name.as_str())
                .chain(other.wireguard.keys().map(String::as_str))
                .chain(other.interfaces.iter().map(String::as_str));
            let clash = veth.peer == "lo" || own_links.into_iter().any(|link| link == veth.peer);
            let previous = peer_ends.insert((peer_ns, veth.peer.as_str()), key.clone());
            if clash || previous.is_some() {
                checker.error(
                    key,
                    format!("{:?}", veth.peer),
                    format!("interface name already used in namespace {peer_ns:?}: rename `peer`"),
                );
            }
        }
    }
}

/// Checks interface addresses: any address with a prefix length.
fn check_addresses(checker: &mut Checker, key: &str, addresses: &[IpNet]) {
    let mut seen = BTreeSet::new();
    for (i, address) in addresses.iter().enumerate() {
        if !seen.insert(address) {
            checker.error(
                format!("{key}[{i}]"),
                format!("{:?}", address.to_string()),
                "address listed twice",
            );
        }
        if address.addr().is_unspecified() || address.addr().is_multicast() {
            checker.error(
                format!("{key}[{i}]"),
                format!("{:?}", address.to_string()),
                "use a unicast address",
            );
        }
    }
}

/// Checks a network given in CIDR notation: no bits set past the prefix.
fn check_network(checker: &mut Checker, key: &str, net: &IpNet) {
    if net.trunc() != *net {
        checker.error(
            key.to_owned(),
            format!("{:?}", net.to_string()),
            format!(
                "host bits set past the prefix: did you mean \"{}\"?",
                net.trunc()
            ),
        );
    }
}

/// Checks a sysctl key: only `net.*`, because other keys are global and would change the host.
/// Maximum number of nameservers glibc's resolver reads from resolv.conf (MAXNS in resolv.h).
const MAX_NAMESERVERS: usize = 3;

/// Returns true for a domain name resolv.conf's `search` line can carry as it is.
fn is_search_domain(domain: &str) -> bool {
    let name = domain.strip_suffix('.').unwrap_or(domain);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

pub fn check_sysctl_key(key: &str) -> Result<(), String> {
    let normalized = key.replace('/', ".");
    if !normalized.starts_with("net.") {
        return Err(
            "only net.* sysctls are set per namespace; other keys would change the host".into(),
        );
    }
    let valid = normalized.split('.').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-*?".contains(&b))
    });
    if !valid {
        return Err("a sysctl key is dot-separated words of letters, digits, '_' and '-'".into());
    }
    Ok(())
}

fn is_wireguard_key(key: &str) -> bool {
    key.len() == 44
        && key.ends_with('=')
        && key[..43]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Splits `HOST:PORT` or `[IPv6]:PORT`.
pub fn split_endpoint(endpoint: &str) -> Option<(&str, u16)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty() && port != 0).then_some((host, port))
}

#[cfg(test)]
mod tests;
