# Option values as the NixOS module holds them after evaluation: every option present, unset
# ones at their defaults (null, false, [ ], { }). tests/nixos.rs converts this with lib.nix's
# toConfig and toTOML and compares the result with expected.toml.
let
  vethDefaults = {
    peer_namespace = null;
    peer_bridge = null;
    addresses = [ ];
    peer_addresses = [ ];
    masquerade = false;
  };
  namespaceDefaults = {
    # The module system's own attribute, with a function that has no TOML form.
    _module.args.name = _: null;
    adopt = false;
    sysctl = { };
    inherit_host_sysctl = false;
    nftables = null;
    nftables_file = null;
    nftables_from_host = false;
    dns = null;
    members = [ ];
    join = null;
    service = { };
    veth = [ ];
    route = [ ];
    port_mapping = [ ];
    wireguard = { };
    wireguard_config = null;
    killswitch = false;
    accessible_from = [ ];
    interfaces = [ ];
  };
in
{
  namespaces = {
    vpn = namespaceDefaults // {
      sysctl = {
        "net.ipv4.ip_forward" = 1;
        "net.ipv6.conf.all.forwarding" = true;
        "net.ipv6.conf.all.disable_ipv6" = false;
        "net.ipv4.conf.all.rp_filter" = "2";
        "net.ipv4.tcp_congestion_control" = null;
      };
      nftables = ''
        table inet filter {
          chain input {
            type filter hook input priority 0; policy drop;
            iif lo accept
            ct state established,related accept
            tcp dport 8080 accept
          }
        }
      '';
      dns = {
        nameservers = [ "10.200.0.1" ];
        search = [ "vpn.internal" ];
        options = [ ];
      };
      members = [ "web.service" ];
      join = "private-network";
      service = {
        Unit.Description = "VPN namespace";
        Service.ExecStartPost = [
          "/run/current-system/sw/bin/true"
          "/run/current-system/sw/bin/true second"
        ];
      };
      veth = [
        (
          vethDefaults
          // {
            name = "vpn0";
            peer = "vpn0-host";
            addresses = [ "10.200.0.2/24" ];
            peer_addresses = [ "10.200.0.1/24" ];
            masquerade = true;
          }
        )
        (
          vethDefaults
          // {
            name = "to-lab";
            peer = "to-vpn";
            peer_namespace = "lab";
          }
        )
      ];
      route = [
        {
          to = "default";
          via = "10.200.0.1";
          dev = null;
        }
      ];
      port_mapping = [
        {
          protocol = "tcp";
          host_port = 8080;
          port = 8080;
          host_address = null;
        }
      ];
    };
    lab = namespaceDefaults;
    "lab.2" = namespaceDefaults // {
      veth = [
        (
          vethDefaults
          // {
            name = "eth0";
            peer = "lab2-host";
            peer_bridge = "br-lab";
          }
        )
      ];
    };
    wg = namespaceDefaults // {
      wireguard.wg0 = {
        private_key_file = "/run/keys/wg0.key";
        addresses = [ "10.7.0.2/32" ];
        underlay = "host";
        listen_port = null;
        peer = [
          {
            public_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
            endpoint = "192.0.2.10:51820";
            allowed_ips = [ "0.0.0.0/0" ];
            persistent_keepalive = 25;
            preshared_key_file = null;
          }
        ];
      };
      killswitch = true;
      accessible_from = [ "10.200.0.0/24" ];
    };
  };
  bridges = {
    br-lab = {
      addresses = [ "10.50.0.1/24" ];
    };
  };
}
