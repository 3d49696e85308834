//! Import of wg-quick(8) files, as VPN providers ship them.
//!
//! Keys that wg(8) understands become the link's settings; `Address` becomes its addresses and
//! `DNS` the namespace's resolver. Keys that only wg-quick understands (hooks that run shell
//! commands, routing table and MTU choices, SaveConfig) are rejected, never executed.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Secret, WireGuardPeerSpec, WireGuardSpec};
use crate::config::validate::split_endpoint;

/// Keys only wg-quick reads; netnsctl rejects them.
pub const WG_QUICK_ONLY_KEYS: [&str; 8] = [
    "PreUp",
    "PostUp",
    "PreDown",
    "PostDown",
    "SaveConfig",
    "Table",
    "MTU",
    "FwMark",
];

/// A parsed wg-quick file.
#[derive(Debug, Clone, PartialEq)]
pub struct WgQuick {
    pub wireguard: WireGuardSpec,
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
}

/// Parses a wg-quick file. `link` names the resulting link. Errors carry the line number.
pub fn parse(text: &str, link: &str) -> Result<WgQuick, String> {
    let mut section = None::<String>;
    let mut private_key = None;
    let mut listen_port = None;
    let mut addresses = Vec::new();
    let mut nameservers = Vec::new();
    let mut search = Vec::new();
    let mut peers: Vec<WireGuardPeerSpec> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            match name.to_ascii_lowercase().as_str() {
                "interface" => {}
                "peer" => peers.push(WireGuardPeerSpec::default()),
                _ => {
                    return Err(format!(
                        "line {number}: unknown section [{name}]: use [Interface] or [Peer]"
                    ))
                }
            }
            section = Some(name.to_ascii_lowercase());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {number}: expected KEY = VALUE"));
        };
        let key = key.trim();
        let value = value.trim();
        if WG_QUICK_ONLY_KEYS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(key))
        {
            return Err(format!(
                "line {number}: {key} is a wg-quick key that netnsctl does not support and never \
                 executes; remove it (put commands in a unit that is a member of the namespace)"
            ));
        }
        let list = || value.split(',').map(str::trim).filter(|v| !v.is_empty());
        match (section.as_deref(), key.to_ascii_lowercase().as_str()) {
            (Some("interface"), "privatekey") => {
                check_key(value).map_err(|m| format!("line {number}: PrivateKey: {m}"))?;
                private_key = Some(Secret(value.to_owned()));
            }
            (Some("interface"), "listenport") => {
                listen_port = Some(value.parse::<u16>().map_err(|_| {
                    format!("line {number}: ListenPort {value:?}: use a port from 0 to 65535")
                })?);
            }
            (Some("interface"), "address") => {
                for item in list() {
                    let net = item
                        .parse::<IpNet>()
                        .or_else(|_| item.parse::<IpAddr>().map(IpNet::from));
                    addresses.push(net.map_err(|_| format!("line {number}: Address {item:?}: use an address with a prefix such as 10.66.0.2/32"))?);
                }
            }
            (Some("interface"), "dns") => {
                for item in list() {
                    match item.parse::<IpAddr>() {
                        Ok(ip) => nameservers.push(ip),
                        Err(_) => search.push(item.to_owned()),
                    }
                }
            }
            (Some("peer"), field) => {
                let peer = peers.last_mut().expect("a [Peer] section started");
                match field {
                    "publickey" => {
                        check_key(value).map_err(|m| format!("line {number}: PublicKey: {m}"))?;
                        peer.public_key = value.to_owned();
                    }
                    "presharedkey" => {
                        check_key(value)
                            .map_err(|m| format!("line {number}: PresharedKey: {m}"))?;
                        peer.preshared_key = Some(Secret(value.to_owned()));
                    }
                    "endpoint" => {
                        if split_endpoint(value).is_none() {
                            return Err(format!(
                                "line {number}: Endpoint {value:?}: use HOST:PORT or [IPv6]:PORT"
                            ));
                        }
                        peer.endpoint = Some(value.to_owned());
                    }
                    "allowedips" => {
                        for item in list() {
                            peer.allowed_ips.push(item.parse::<IpNet>().map_err(|_| {
                                format!("line {number}: AllowedIPs {item:?}: use a network such as 0.0.0.0/0")
                            })?);
                        }
                    }
                    "persistentkeepalive" => {
                        peer.persistent_keepalive = if value.eq_ignore_ascii_case("off") {
                            None
                        } else {
                            Some(value.parse::<u16>().map_err(|_| {
                                format!("line {number}: PersistentKeepalive {value:?}: use seconds from 1 to 65535 or off")
                            })?)
                        };
                    }
                    _ => return Err(format!("line {number}: unknown key {key} in [Peer]")),
                }
            }
            (Some(_), _) => return Err(format!("line {number}: unknown key {key} in [Interface]")),
            (None, _) => {
                return Err(format!(
                    "line {number}: {key} before the first [Interface] section"
                ))
            }
        }
    }
    let private_key = private_key.ok_or("no PrivateKey in [Interface]")?;
    if let Some(index) = peers.iter().position(|peer| peer.public_key.is_empty()) {
        return Err(format!("[Peer] number {} has no PublicKey", index + 1));
    }
    Ok(WgQuick {
        wireguard: WireGuardSpec {
            link: link.to_owned(),
            private_key,
            listen_port,
            addresses,
            underlay: None,
            peers,
        },
        nameservers,
        search,
    })
}

/// Checks a base64 WireGuard key: 32 bytes, 44 characters ending in '='.
pub fn check_key(key: &str) -> Result<(), &'static str> {
    let valid = key.len() == 44
        && key.ends_with('=')
        && key[..43]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if valid {
        Ok(())
    } else {
        Err("a WireGuard key is 32 bytes in base64 (44 characters ending in '=')")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const KEY_B: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    #[test]
    fn provider_file_imported() {
        let text = format!(
            "[Interface]\nPrivateKey = {KEY_A}\nAddress = 10.66.0.2/32, fd66::2/128\nDNS = 10.66.0.1, corp.example\n\n\
             [Peer]\nPublicKey = {KEY_B}\nAllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = 192.0.2.1:51820\nPersistentKeepalive = 25\n"
        );
        let parsed = parse(&text, "wg0").expect("valid file");
        assert_eq!(parsed.wireguard.addresses.len(), 2);
        assert_eq!(
            parsed.nameservers,
            vec!["10.66.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(parsed.search, vec!["corp.example".to_owned()]);
        assert_eq!(parsed.wireguard.peers.len(), 1);
        assert_eq!(parsed.wireguard.peers[0].public_key, KEY_B);
        assert_eq!(parsed.wireguard.peers[0].persistent_keepalive, Some(25));
        assert_eq!(parsed.wireguard.private_key.0, KEY_A);
    }

    #[test]
    fn post_up_rejected() {
        let text = format!("[Interface]\nPrivateKey = {KEY_A}\nPostUp = iptables -A FORWARD\n");
        let err = parse(&text, "wg0").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("PostUp"), "{err}");
    }

    #[test]
    fn every_wg_quick_key_rejected() {
        for key in WG_QUICK_ONLY_KEYS {
            let text = format!("[Interface]\nPrivateKey = {KEY_A}\n{key} = 1\n");
            assert!(parse(&text, "wg0").is_err(), "{key} accepted");
        }
    }

    #[test]
    fn missing_private_key_rejected() {
        assert!(parse("[Interface]\nAddress = 10.0.0.1/32\n", "wg0").is_err());
    }
}
