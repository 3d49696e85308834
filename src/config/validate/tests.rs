//! Invalid configs and the message each must produce.

use std::path::Path;

use crate::config;

const FILE: &str = "/etc/netnsctl/netnsctl.toml";

/// Parses and validates `text`; returns every error message, each prefixed with the file.
fn errors(text: &str) -> Vec<String> {
    let loaded = match config::parse(Path::new(FILE), text) {
        Ok(loaded) => loaded,
        Err(errors) => return errors.0.iter().map(ToString::to_string).collect(),
    };
    match super::validate(&loaded) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

/// (config text, fragment the message must contain)
const INVALID: &[(&str, &str)] = &[
    (
        "[bridges.br0]\n[namespaces.lab]\n[[namespaces.lab.veth]]\nname = \"eth0\"\npeer = \"ve-lab\"\n\
         peer_bridge = \"br0\"\npeer_addresses = [\"10.0.0.1/24\"]\n",
        "namespaces.lab.veth[0].peer_addresses = [\"10.0.0.1/24\"]: a bridge port has no addresses",
    ),
    ("[namespaces.host]\n", "namespaces.host = \"host\": the name \"host\""),
    (
        "[namespaces.web]\n[[namespaces.web.veth]]\nname = \"eth0\"\npeer = \"ve-web\"\n\
         addresses = [\"10.77.0.2/30\"]\n[[namespaces.web.port_mapping]]\nprotocol = \"tcp\"\n\
         host_port = 8080\nport = 80\n",
        "the host end of the mapped veth needs an IPv4 address",
    ),
    (
        "[namespaces.web]\n[[namespaces.web.veth]]\nname = \"to-db\"\npeer = \"x\"\n\
         [namespaces.db]\n[[namespaces.db.veth]]\nname = \"to-web\"\npeer = \"to-db\"\n\
         peer_namespace = \"web\"\n",
        "namespaces.db.veth[0].peer = \"to-db\": interface name already used in namespace \"web\"",
    ),
    (
        "[namespaces.a]\ninterfaces = [\"eth1\"]\n[namespaces.b]\ninterfaces = [\"eth1\"]\n",
        "namespaces.b.interfaces[0] = \"eth1\": the link is already moved by namespaces.a.interfaces[0]",
    ),
    ("[namespaces.vpn\n", "line 1"),
    ("[namespaces.vpn]\ncolour = 1\n", "unknown field `colour`"),
    ("[namespaces.vpn]\nadopt = \"yes\"\n", "invalid type"),
    ("[namespaces.\"a/b\"]\n", "namespaces.\"a/b\" = \"a/b\": invalid namespace name"),
    ("[namespaces.\"..\"]\n", "invalid namespace name"),
    ("[namespaces.\".hidden\"]\n", "invalid namespace name"),
    ("[namespaces.\"-x\"]\n", "invalid namespace name"),
    ("[namespaces.\"a b\"]\n", "invalid namespace name"),
    ("[namespaces.\"a\\u0000b\"]\n", "invalid namespace name"),
    ("[namespaces.\"\"]\n", "invalid namespace name"),
    (
        "[namespaces.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n",
        "invalid namespace name",
    ),
    (
        "[namespaces.vpn]\nsysctl = { \"kernel.hostname\" = \"x\" }\n",
        "namespaces.vpn.sysctl.\"kernel.hostname\" = \"x\": only net.* sysctls",
    ),
    (
        "[namespaces.vpn]\nsysctl = { \"vm.swappiness\" = 1 }\n",
        "only net.* sysctls",
    ),
    (
        "[namespaces.vpn]\nsysctl = { \"net.ipv4.ip forward\" = 1 }\n",
        "dot-separated words",
    ),
    (
        "[namespaces.vpn]\nsysctl = { \"net.ipv4.ip_forward\" = 1, \"net/ipv4/ip_forward\" = 0 }\n",
        "namespaces.vpn.sysctl.\"net/ipv4/ip_forward\" = 0: names the same sysctl as \
         \"net.ipv4.ip_forward\" (net.ipv4.ip_forward); keep one of the two keys",
    ),
    (
        "[namespaces.vpn]\nnftables = \"\"\nnftables_file = \"/etc/x.nft\"\n",
        "nftables",
    ),
    (
        "[namespaces.vpn]\nnftables_file = \"relative.nft\"\n",
        "namespaces.vpn.nftables_file = \"relative.nft\"",
    ),
    (
        "[namespaces.vpn]\ndns = { search = [\"bad domain\"] }\n",
        "namespaces.vpn.dns.search[0]",
    ),
    (
        "[namespaces.vpn]\ndns = { nameservers = [\"not-an-ip\"] }\n",
        "invalid",
    ),
    (
        "[namespaces.vpn]\nmembers = [\"transmission\"]\n",
        "namespaces.vpn.members[0] = \"transmission\"",
    ),
    (
        "[namespaces.vpn]\nmembers = [\"x.timer\"]\n",
        "namespaces.vpn.members[0]",
    ),
    (
        "[namespaces.vpn.service.Mount]\nWhat = \"x\"\n",
        "unknown unit section: use one of Unit, Service, Install",
    ),
    (
        "[namespaces.vpn.service.Service]\nType = \"simple\"\n",
        "namespaces.vpn.service.Service.Type = \"simple\": netnsctl sets Type=",
    ),
    (
        "[namespaces.vpn.service.Service]\nPrivateNetwork = \"no\"\n",
        "namespaces.vpn.service.Service.PrivateNetwork = \"no\":",
    ),
    (
        "[namespaces.vpn]\ndns = { search = [\"a..b\"] }\n",
        "namespaces.vpn.dns.search[0] = \"a..b\": a search domain is dot-separated labels",
    ),
    (
        "[namespaces.vpn]\ndns = { search = [\"bücher.example\"] }\n",
        "IDNA (xn--) form",
    ),
    (
        "[namespaces.vpn]\ndns = { search = [\"-bad\"] }\n",
        "namespaces.vpn.dns.search[0]",
    ),
    (
        "[namespaces.vpn]\ndns = { nameservers = [\"192.0.2.1\", \"192.0.2.2\", \"192.0.2.3\", \"192.0.2.4\"] }\n",
        "namespaces.vpn.dns.nameservers = 4 addresses: the resolver reads at most 3",
    ),
    (
        "[namespaces.vpn]\ndns = { options = [\"nameserver\"] }\n",
        "namespaces.vpn.dns.options[0]",
    ),
    (
        "[namespaces.vpn]\nkillswitch = true\n",
        "namespaces.vpn.killswitch",
    ),
    (
        "[namespaces.web]\n[[namespaces.web.veth]]\nname = \"eth0123456789abc\"\npeer = \"ve-web\"\n",
        "namespaces.web.veth[0].name = \"eth0123456789abc\": invalid interface name",
    ),
    (
        "[namespaces.web]\n[[namespaces.web.veth]]\nname = \"eth0\"\npeer = \"ve-web\"\n\
         [[namespaces.web.veth]]\nname = \"eth0\"\npeer = \"ve-web2\"\n",
        "interface name already used in namespace \"web\"",
    ),
    (
        "[namespaces.a]\n[[namespaces.a.veth]]\nname = \"e0\"\npeer = \"h0\"\n\
         [namespaces.b]\n[[namespaces.b.veth]]\nname = \"e0\"\npeer = \"h0\"\n",
        "host interface name already used",
    ),
    (
        "[namespaces.db]\n[[namespaces.db.veth]]\nname = \"to-web\"\npeer = \"to-db\"\n\
         peer_namespace = \"web\"\n",
        "namespaces.db.veth[0].peer_namespace = \"web\"",
    ),
    (
        "[namespaces.lab]\n[[namespaces.lab.veth]]\nname = \"eth0\"\npeer = \"ve-lab\"\n\
         peer_bridge = \"br-none\"\n",
        "namespaces.lab.veth[0].peer_bridge = \"br-none\"",
    ),
    (
        "[namespaces.web]\n[[namespaces.web.veth]]\nname = \"eth0\"\npeer = \"ve-web\"\n\
         addresses = [\"10.77.0.2/33\"]\n",
        "namespaces.web.veth[0].addresses",
    ),
    (
        "[namespaces.web]\n[[namespaces.web.route]]\nto = \"10.1.0.1/16\"\nvia = \"10.77.0.1\"\n",
        "host bits set past the prefix: did you mean \"10.1.0.0/16\"?",
    ),
    (
        "[namespaces.web]\n[[namespaces.web.route]]\nto = \"default\"\n",
        "set `via`, `dev` or both",
    ),
    (
        "[namespaces.web]\n[[namespaces.web.route]]\nto = \"default\"\ndev = \"eth9\"\n",
        "no link of that name in namespace \"web\"",
    ),
    (
        "[namespaces.web]\n[[namespaces.web.port_mapping]]\nprotocol = \"sctp\"\nhost_port = 1\nport = 1\n",
        "unknown variant `sctp`",
    ),
    (
        "[namespaces.web]\n[[namespaces.web.port_mapping]]\nprotocol = \"tcp\"\nhost_port = 0\nport = 80\n",
        "use a port from 1 to 65535",
    ),
    (
        "[bridges.\"br/lab\"]\n",
        "invalid bridge name",
    ),
    (
        "[namespaces.vpn.wireguard.wg0]\nprivate_key_file = \"key\"\naddresses = [\"10.66.0.2/32\"]\n",
        "namespaces.vpn.wireguard.wg0.private_key_file = \"key\"",
    ),
    (
        "[namespaces.vpn.wireguard.wg0]\nprivate_key_file = \"/k\"\nunderlay = \"nowhere\"\n",
        "namespaces.vpn.wireguard.wg0.underlay = \"nowhere\"",
    ),
    (
        "[namespaces.vpn.wireguard.wg0]\nprivate_key_file = \"/k\"\n\
         [[namespaces.vpn.wireguard.wg0.peer]]\npublic_key = \"short\"\nallowed_ips = []\n",
        "namespaces.vpn.wireguard.wg0.peer[0].public_key = \"short\"",
    ),
];

#[test]
fn invalid_configs_name_key_and_rule() {
    // Every case runs before the assert, so one failure lists all mismatches.
    let mut mismatches = Vec::new();
    for (text, fragment) in INVALID {
        let errors = errors(text);
        if !errors.iter().any(|message| message.contains(fragment)) {
            mismatches.push(format!("{text}\nexpected {fragment:?} in {errors:#?}"));
        }
        if !errors.iter().all(|message| message.starts_with(FILE)) {
            mismatches.push(format!(
                "{text}\na message does not name the file: {errors:#?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

#[test]
fn every_error_is_reported_at_once() {
    let errors = errors(
        "[namespaces.\"a/b\"]\n[namespaces.vpn]\nsysctl = { \"kernel.pid_max\" = 1 }\n\
         nftables_file = \"rel\"\n",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn contract_config_is_valid() {
    let text = r#"
[namespaces.vpn]
sysctl = { "net.ipv4.ip_forward" = 1, "net.ipv6.conf.all.forwarding" = true, "net.ipv4.conf.all.rp_filter" = "2", "net.core.rmem_max" = 4194304 }
nftables = '''
table inet filter {
  chain input { type filter hook input priority 0; policy drop; iif lo accept; }
}
'''
dns = { nameservers = ["192.0.2.53"], search = ["example.internal"] }

[namespaces.lab-1]
"#;
    assert_eq!(errors(text), Vec::<String>::new());
}

#[test]
fn accepted_names_at_the_limits() {
    let name = "a".repeat(64);
    let text = format!("[namespaces.{name}]\n[namespaces.\"a.b_c-d\"]\n[namespaces.\"0\"]\n");
    assert_eq!(errors(&text), Vec::<String>::new());
}
