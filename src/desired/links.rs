//! The desired links of a namespace: addresses per link, routes, host-side NAT rules and the
//! killswitch ruleset, all derived from the config without side effects.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{self, Namespace};
use crate::state::{HostRules, MasqueradeRule, PortMappingRule, RouteRecord};

/// Name of the nftables table netnsctl owns in the host namespace (family `inet`).
pub const HOST_TABLE: &str = "netnsctl";

/// Name of the table the killswitch adds to a namespace's ruleset (family `inet`).
pub const KILLSWITCH_TABLE: &str = "netnsctl_killswitch";

/// Addresses wanted on one link. `netns` is the namespace the link lives in; `None` is the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAddresses {
    pub netns: Option<String>,
    pub link: String,
    pub addresses: Vec<IpNet>,
}

/// Lists the addresses namespace `name` declares, on its own links and on the other ends of its
/// veth pairs. The host ends of bridge ports get no addresses: the bridge carries them.
pub fn link_addresses(
    name: &str,
    ns: &Namespace,
    wireguard: &[super::WireGuardSpec],
) -> Vec<LinkAddresses> {
    let mut wanted = Vec::new();
    for veth in &ns.veth {
        wanted.push(LinkAddresses {
            netns: Some(name.to_owned()),
            link: veth.name.clone(),
            addresses: veth.addresses.clone(),
        });
        if veth.peer_bridge.is_none() {
            wanted.push(LinkAddresses {
                netns: veth.peer_namespace.clone(),
                link: veth.peer.clone(),
                addresses: veth.peer_addresses.clone(),
            });
        }
    }
    for wg in wireguard {
        wanted.push(LinkAddresses {
            netns: Some(name.to_owned()),
            link: wg.link.clone(),
            addresses: wg.addresses.clone(),
        });
    }
    wanted
}

/// Expands the declared routes into kernel routes. `to = "default"` becomes `0.0.0.0/0` or
/// `::/0` after the gateway's family, or both without a gateway.
pub fn routes(ns: &Namespace) -> Vec<RouteRecord> {
    let mut routes = Vec::new();
    for route in &ns.route {
        let destinations: Vec<IpNet> = if route.to == "default" {
            match route.via {
                Some(IpAddr::V4(_)) => vec!["0.0.0.0/0".parse().expect("valid network")],
                Some(IpAddr::V6(_)) => vec!["::/0".parse().expect("valid network")],
                None => vec![
                    "0.0.0.0/0".parse().expect("valid network"),
                    "::/0".parse().expect("valid network"),
                ],
            }
        } else {
            match route.to.parse() {
                Ok(net) => vec![net],
                // Validation rejects this before a plan is made.
                Err(_) => continue,
            }
        };
        for destination in destinations {
            routes.push(RouteRecord {
                destination,
                gateway: route.via,
                dev: route.dev.clone(),
            });
        }
    }
    routes
}

/// The host link a veth's traffic uses in the host namespace: its bridge, or its host end.
fn host_link_of(veth: &config::Veth) -> String {
    veth.peer_bridge
        .clone()
        .unwrap_or_else(|| veth.peer.clone())
}

/// Computes the host-side rules for namespace `ns`: DNAT for port mappings into the first veth
/// to the host that has an IPv4 address, and masquerade for veths with `masquerade = true`.
pub fn host_rules(ns: &Namespace) -> HostRules {
    let mut rules = HostRules::default();
    let target = ns.veth.iter().find(|veth| {
        veth.peer_namespace.is_none() && veth.addresses.iter().any(|a| a.addr().is_ipv4())
    });
    if let Some(veth) = target {
        let target_v4 = veth.addresses.iter().find_map(|a| match a.addr() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        });
        let target_v6 = veth.addresses.iter().find_map(|a| match a.addr() {
            IpAddr::V6(v6) if !a.addr().is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80 => {
                Some(v6)
            }
            _ => None,
        });
        for mapping in &ns.port_mapping {
            rules.port_mappings.push(PortMappingRule {
                protocol: mapping.protocol,
                host_port: mapping.host_port,
                host_address: mapping.host_address,
                port: mapping.port,
                target_v4,
                target_v6,
                host_link: host_link_of(veth),
            });
        }
    }
    for veth in &ns.veth {
        if !veth.masquerade || veth.peer_namespace.is_some() {
            continue;
        }
        let sources = if veth.peer_bridge.is_some() {
            veth.addresses
                .iter()
                .map(|a| IpNet::from(a.addr()))
                .collect()
        } else {
            Vec::new()
        };
        rules.masquerade.push(MasqueradeRule {
            host_link: host_link_of(veth),
            sources,
        });
    }
    rules
}

/// Host links that need `route_localnet = 1` so that DNAT from 127.0.0.1 can leave through them.
pub fn localnet_links(rules: &HostRules) -> Vec<String> {
    let mut links: Vec<String> = rules
        .port_mappings
        .iter()
        .filter(|rule| {
            rule.target_v4.is_some() && rule.host_address.is_none_or(|a| a.is_loopback())
        })
        .map(|rule| rule.host_link.clone())
        .collect();
    links.sort();
    links.dedup();
    links
}

fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// Renders netnsctl's host table from every namespace's rules, or `None` when there are none.
pub fn render_host_table(rules: &BTreeMap<String, HostRules>) -> Option<String> {
    if rules.values().all(HostRules::is_empty) {
        return None;
    }
    let mut dnat = String::new();
    let mut output = String::new();
    let mut postrouting = String::new();
    for (namespace, rules) in rules {
        for rule in &rules.port_mappings {
            let proto = rule.protocol;
            let port = rule.host_port;
            let comment = format!("comment \"{namespace}\"");
            if let Some(v4) = rule.target_v4 {
                let matcher = match rule.host_address {
                    Some(IpAddr::V4(address)) => format!("ip daddr {address}"),
                    Some(IpAddr::V6(_)) => String::new(),
                    None => "meta nfproto ipv4 fib daddr type local".to_owned(),
                };
                if !matcher.is_empty() {
                    let line = format!(
                        "{matcher} {proto} dport {port} dnat ip to {v4}:{} {comment}\n",
                        rule.port
                    );
                    let _ = write!(dnat, "\t\t{line}");
                    let _ = write!(output, "\t\t{line}");
                }
            }
            if let Some(v6) = rule.target_v6 {
                let matcher = match rule.host_address {
                    Some(IpAddr::V6(address)) => format!("ip6 daddr {address}"),
                    Some(IpAddr::V4(_)) => String::new(),
                    // ::1 cannot leave the loopback link, so IPv6 loopback is not mapped.
                    None => "meta nfproto ipv6 fib daddr type local ip6 daddr != ::1".to_owned(),
                };
                if !matcher.is_empty() {
                    let line = format!(
                        "{matcher} {proto} dport {port} dnat ip6 to [{v6}]:{} {comment}\n",
                        rule.port
                    );
                    let _ = write!(dnat, "\t\t{line}");
                    let _ = write!(output, "\t\t{line}");
                }
            }
        }
        for link in localnet_links(rules) {
            let _ = writeln!(
                postrouting,
                "\t\toifname {} ip saddr 127.0.0.0/8 masquerade comment \"{namespace}\"",
                quote(&link)
            );
        }
        for rule in &rules.masquerade {
            let link = quote(&rule.host_link);
            let mut sources = String::new();
            let v4: Vec<String> = rule
                .sources
                .iter()
                .filter(|s| s.addr().is_ipv4())
                .map(ToString::to_string)
                .collect();
            let v6: Vec<String> = rule
                .sources
                .iter()
                .filter(|s| s.addr().is_ipv6())
                .map(ToString::to_string)
                .collect();
            if rule.sources.is_empty() {
                let _ = writeln!(
                    postrouting,
                    "\t\tiifname {link} oifname != {link} masquerade comment \"{namespace}\""
                );
                continue;
            }
            for (family, list) in [("ip", v4), ("ip6", v6)] {
                if list.is_empty() {
                    continue;
                }
                sources.clear();
                let _ = write!(sources, "{family} saddr {{ {} }}", list.join(", "));
                let _ = writeln!(
                    postrouting,
                    "\t\tiifname {link} oifname != {link} {sources} masquerade comment \"{namespace}\""
                );
            }
        }
    }
    let mut text = format!("table inet {HOST_TABLE} {{\n");
    let _ = write!(
        text,
        "\tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n{dnat}\t}}\n"
    );
    let _ = write!(
        text,
        "\tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n{output}\t}}\n"
    );
    let _ = write!(
        text,
        "\tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n{postrouting}\t}}\n"
    );
    text.push_str("}\n");
    Some(text)
}

/// Renders the killswitch table: output and forwarding are dropped unless they leave through a
/// tunnel link or the loopback link, or go to an `accessible_from` range through a veth. DNS
/// (port 53) goes only to `nameservers`, in both families.
pub fn render_killswitch(
    tunnels: &[String],
    veths: &[String],
    accessible_from: &[IpNet],
    nameservers: &[IpAddr],
) -> String {
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| quote(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rules = String::new();
    let v4: Vec<String> = nameservers
        .iter()
        .filter(|a| a.is_ipv4())
        .map(ToString::to_string)
        .collect();
    let v6: Vec<String> = nameservers
        .iter()
        .filter(|a| a.is_ipv6())
        .map(ToString::to_string)
        .collect();
    for (family, nfproto, servers) in [("ip", "ipv4", v4), ("ip6", "ipv6", v6)] {
        if servers.is_empty() {
            let _ = writeln!(
                rules,
                "\t\tmeta nfproto {nfproto} meta l4proto {{ tcp, udp }} th dport 53 drop"
            );
        } else {
            let _ = writeln!(
                rules,
                "\t\tmeta l4proto {{ tcp, udp }} th dport 53 {family} daddr != {{ {} }} drop",
                servers.join(", ")
            );
        }
    }
    if !tunnels.is_empty() {
        let _ = writeln!(rules, "\t\toifname {{ {} }} accept", list(tunnels));
    }
    if !veths.is_empty() {
        let v4: Vec<String> = accessible_from
            .iter()
            .filter(|a| a.addr().is_ipv4())
            .map(ToString::to_string)
            .collect();
        let v6: Vec<String> = accessible_from
            .iter()
            .filter(|a| a.addr().is_ipv6())
            .map(ToString::to_string)
            .collect();
        if !v4.is_empty() {
            let _ = writeln!(
                rules,
                "\t\toifname {{ {} }} ip daddr {{ {} }} accept",
                list(veths),
                v4.join(", ")
            );
        }
        if !v6.is_empty() {
            // Neighbour discovery resolves the addresses of those ranges on the link.
            let _ = writeln!(
                rules,
                "\t\toifname {{ {} }} icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept",
                list(veths)
            );
            let _ = writeln!(
                rules,
                "\t\toifname {{ {} }} ip6 daddr {{ {} }} accept",
                list(veths),
                v6.join(", ")
            );
        }
    }
    let mut text = format!("\ntable inet {KILLSWITCH_TABLE} {{\n");
    let _ = write!(
        text,
        "\tchain output {{\n\t\ttype filter hook output priority filter; policy drop;\n\t\toifname \"lo\" accept\n{rules}\t}}\n"
    );
    let _ = write!(
        text,
        "\tchain forward {{\n\t\ttype filter hook forward priority filter; policy drop;\n{rules}\t}}\n"
    );
    text.push_str("}\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(toml: &str) -> Namespace {
        toml::from_str(toml).expect("valid namespace table")
    }

    #[test]
    fn default_route_without_gateway_covers_both_families() {
        let ns = namespace("[[route]]\nto = \"default\"\ndev = \"wg0\"\n");
        let routes = routes(&ns);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].destination.to_string(), "0.0.0.0/0");
        assert_eq!(routes[1].destination.to_string(), "::/0");
    }

    #[test]
    fn default_route_follows_gateway_family() {
        let ns = namespace("[[route]]\nto = \"default\"\nvia = \"fd77::1\"\n");
        let routes = routes(&ns);
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].destination.to_string(), "::/0");
    }

    #[test]
    fn host_rules_map_into_first_host_veth() {
        let ns = namespace(
            r#"
            [[veth]]
            name = "eth0"
            peer = "ve-web"
            addresses = ["10.77.0.2/30", "fd77::2/64"]
            masquerade = true
            [[port_mapping]]
            protocol = "tcp"
            host_port = 8080
            port = 80
            "#,
        );
        let rules = host_rules(&ns);
        assert_eq!(rules.port_mappings.len(), 1);
        let mapping = &rules.port_mappings[0];
        assert_eq!(mapping.target_v4.unwrap().to_string(), "10.77.0.2");
        assert_eq!(mapping.target_v6.unwrap().to_string(), "fd77::2");
        assert_eq!(mapping.host_link, "ve-web");
        assert_eq!(rules.masquerade.len(), 1);
        assert_eq!(localnet_links(&rules), vec!["ve-web".to_owned()]);

        let table = render_host_table(&BTreeMap::from([("web".to_owned(), rules)])).unwrap();
        assert!(
            table.contains("tcp dport 8080 dnat ip to 10.77.0.2:80"),
            "{table}"
        );
        assert!(
            table.contains("tcp dport 8080 dnat ip6 to [fd77::2]:80"),
            "{table}"
        );
        assert!(
            table.contains("oifname \"ve-web\" ip saddr 127.0.0.0/8 masquerade"),
            "{table}"
        );
        assert!(
            table.contains("iifname \"ve-web\" oifname != \"ve-web\" masquerade"),
            "{table}"
        );
    }

    #[test]
    fn empty_rules_render_no_table() {
        assert_eq!(render_host_table(&BTreeMap::new()), None);
        assert_eq!(
            render_host_table(&BTreeMap::from([("a".to_owned(), HostRules::default())])),
            None
        );
    }

    #[test]
    fn killswitch_limits_dns_per_family() {
        let text = render_killswitch(
            &["wg0".to_owned()],
            &["eth0".to_owned()],
            &["192.168.0.0/16".parse().unwrap()],
            &["10.66.0.1".parse().unwrap()],
        );
        assert!(
            text.contains("th dport 53 ip daddr != { 10.66.0.1 } drop"),
            "{text}"
        );
        assert!(
            text.contains("meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 drop"),
            "{text}"
        );
        assert!(text.contains("oifname { \"wg0\" } accept"), "{text}");
        assert!(
            text.contains("oifname { \"eth0\" } ip daddr { 192.168.0.0/16 } accept"),
            "{text}"
        );
        assert!(text.contains("policy drop"), "{text}");
    }
}
