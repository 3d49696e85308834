# NixOS module for netnsctl: `services.netns.namespaces.<name>` and `services.netns.bridges`.
#
# Option names are netnsctl's TOML keys, one to one, so netnsctl's config documentation and the
# JSON Schema (schema/netnsctl.schema.json) describe these options too. The module writes
# /etc/netnsctl/netnsctl.toml with `pkgs.formats.toml`, installs netnsctl, and links it as the
# systemd generator `netnsctl-generator`, which turns every namespace into netns-<name>.service
# and makes each member unit join it as `join` says.
#
#   imports = [ /path/to/netnsctl/nixos/module.nix ];
#   services.netns.namespaces.vpn = {
#     sysctl."net.ipv4.ip_forward" = 1;
#     nftables = ''
#       table inet filter { chain input { type filter hook input priority 0; policy drop; } }
#     '';
#     members = [ "transmission.service" ];
#   };
#
# Tested: `nix-instantiate --parse` of this file, of lib.nix and of package.nix (Nix 2.8), and
# evaluation of lib.nix's toConfig and toTOML with `nix-instantiate --eval --strict` on
# tests/example.nix, whose TOML `netnsctl check` accepts (tests/nixos.rs).
# NOTE: Not run: evaluating this module in a NixOS system and a NixOS VM test, because both
# need nixpkgs, which the machines that test netnsctl cannot fetch. The options below follow
# nixpkgs' module conventions as of NixOS 24.05 (`systemd.generators`, `overrideStrategy`).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption mkEnableOption mkIf types literalExpression;

  cfg = config.services.netns;
  netnsLib = import ./lib.nix;
  settingsFormat = pkgs.formats.toml { };
  configFile = settingsFormat.generate "netnsctl.toml" (netnsLib.toConfig cfg);

  # Paths that netnsctl reads at run time are strings, so secrets such as WireGuard keys are
  # never copied into the world-readable Nix store.
  absolutePath = types.strMatching "/.*";

  cidr = types.str;

  sysctlValue = types.nullOr (
    types.oneOf [
      types.bool
      types.int
      types.str
    ]
  );

  unitValue = types.either types.str (types.listOf types.str);

  dnsOptions = {
    options = {
      nameservers = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "`nameserver` lines of /etc/netns/NAME/resolv.conf, in order.";
      };
      search = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Domains of the `search` line.";
      };
      options = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = ''Words of the `options` line, such as "ndots:2" or "edns0".'';
      };
    };
  };

  vethOptions = {
    options = {
      name = mkOption {
        type = types.str;
        description = "Name of the end inside this namespace.";
      };
      peer = mkOption {
        type = types.str;
        description = "Name of the other end.";
      };
      peer_namespace = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Namespace of the other end; the host namespace when null.";
      };
      peer_bridge = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Host bridge (from `services.netns.bridges`) that the other end joins.";
      };
      addresses = mkOption {
        type = types.listOf cidr;
        default = [ ];
        description = "Addresses with prefix length of the end inside this namespace.";
      };
      peer_addresses = mkOption {
        type = types.listOf cidr;
        default = [ ];
        description = "Addresses with prefix length of the other end.";
      };
      masquerade = mkOption {
        type = types.bool;
        default = false;
        description = "Source-NAT traffic from this namespace as it leaves the host.";
      };
    };
  };

  routeOptions = {
    options = {
      to = mkOption {
        type = types.str;
        description = ''Destination: "default" or a network in CIDR notation.'';
      };
      via = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Gateway address.";
      };
      dev = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Outgoing link inside the namespace.";
      };
    };
  };

  portMappingOptions = {
    options = {
      protocol = mkOption {
        type = types.enum [
          "tcp"
          "udp"
        ];
        description = "Transport protocol.";
      };
      host_port = mkOption {
        type = types.port;
        description = "Port on the host.";
      };
      port = mkOption {
        type = types.port;
        description = "Port inside the namespace.";
      };
      host_address = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Limit the mapping to one host address; every host address when null.";
      };
    };
  };

  wireguardPeerOptions = {
    options = {
      public_key = mkOption {
        type = types.str;
        description = "The peer's public key in base64.";
      };
      endpoint = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "`HOST:PORT` or `[IPv6]:PORT` of the peer.";
      };
      allowed_ips = mkOption {
        type = types.listOf cidr;
        default = [ ];
        description = "Networks routed to this peer and accepted from it.";
      };
      persistent_keepalive = mkOption {
        type = types.nullOr types.ints.u16;
        default = null;
        description = "Interval in seconds of keepalive packets to the peer.";
      };
      preshared_key_file = mkOption {
        type = types.nullOr absolutePath;
        default = null;
        description = "Absolute path of the file with the base64 preshared key.";
      };
    };
  };

  wireguardOptions = {
    options = {
      private_key_file = mkOption {
        type = absolutePath;
        description = "Absolute path of the file with the base64 private key.";
      };
      addresses = mkOption {
        type = types.listOf cidr;
        default = [ ];
        description = "Addresses with prefix length of the link.";
      };
      underlay = mkOption {
        type = types.str;
        default = "host";
        description = ''Namespace whose network carries the encrypted UDP: "host" or a namespace name.'';
      };
      listen_port = mkOption {
        type = types.nullOr types.port;
        default = null;
        description = "UDP port the link listens on.";
      };
      peer = mkOption {
        type = types.listOf (types.submodule wireguardPeerOptions);
        default = [ ];
        description = "Peers of the link.";
      };
    };
  };

  namespaceOptions = {
    options = {
      adopt = mkOption {
        type = types.bool;
        default = false;
        description = "Manage a namespace that exists but was not created by netnsctl.";
      };
      sysctl = mkOption {
        type = types.attrsOf sysctlValue;
        default = { };
        example = literalExpression ''{ "net.ipv4.ip_forward" = 1; "net.ipv6.conf.all.disable_ipv6" = null; }'';
        description = ''
          `net.*` sysctls set inside the namespace. Booleans are written as 1 and 0; null
          leaves the key unset, which removes a value that another module set.
        '';
      };
      inherit_host_sysctl = mkOption {
        type = types.bool;
        default = false;
        description = "Apply the host's sysctl.d `net.*` keys first.";
      };
      nftables = mkOption {
        type = types.nullOr types.lines;
        default = null;
        description = ''
          The namespace's whole nftables ruleset, loaded in one transaction. Definitions from
          several modules are joined line by line.
        '';
      };
      nftables_file = mkOption {
        type = types.nullOr absolutePath;
        default = null;
        description = "Path of an nftables ruleset file; an alternative to `nftables`.";
      };
      nftables_from_host = mkOption {
        type = types.bool;
        default = false;
        description = "Copy the host's current ruleset.";
      };
      dns = mkOption {
        type = types.nullOr (types.submodule dnsOptions);
        default = null;
        description = "Contents of /etc/netns/NAME/resolv.conf.";
      };
      members = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "transmission.service" ];
        description = "Units that run inside this namespace (.service, .socket or .scope).";
      };
      join = mkOption {
        type = types.nullOr (
          types.enum [
            "network-namespace-path"
            "private-network"
          ]
        );
        default = null;
        description = ''
          How members join the namespace: "network-namespace-path" sets
          `NetworkNamespacePath=/run/netns/NAME`, "private-network" sets `PrivateNetwork=yes`
          with `JoinsNamespaceOf=netns-NAME.service`. netnsctl's default when null:
          "network-namespace-path".
        '';
      };
      service = mkOption {
        type = types.attrsOf (types.attrsOf unitValue);
        default = { };
        example = literalExpression ''{ Unit.Description = "VPN namespace"; Install.WantedBy = [ "network-online.target" ]; }'';
        description = ''
          Overrides merged into netns-NAME.service, by section (Unit, Service, Install) and
          then key. A list gives the key once per element.
        '';
      };
      veth = mkOption {
        type = types.listOf (types.submodule vethOptions);
        default = [ ];
        description = "veth pairs with one end in this namespace.";
      };
      route = mkOption {
        type = types.listOf (types.submodule routeOptions);
        default = [ ];
        description = "Routes inside the namespace.";
      };
      port_mapping = mkOption {
        type = types.listOf (types.submodule portMappingOptions);
        default = [ ];
        description = "Host ports forwarded into the namespace.";
      };
      wireguard = mkOption {
        type = types.attrsOf (types.submodule wireguardOptions);
        default = { };
        description = "WireGuard links, keyed by interface name.";
      };
      wireguard_config = mkOption {
        type = types.nullOr absolutePath;
        default = null;
        description = "A wg-quick file to import as one WireGuard link named after the file.";
      };
      killswitch = mkOption {
        type = types.bool;
        default = false;
        description = "Drop traffic that would leave other than through the WireGuard link.";
      };
      accessible_from = mkOption {
        type = types.listOf cidr;
        default = [ ];
        description = "Ranges that may reach the namespace over its veth links when the killswitch is on.";
      };
      interfaces = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Existing host links moved into the namespace.";
      };
    };
  };

  bridgeOptions = {
    options = {
      addresses = mkOption {
        type = types.listOf cidr;
        default = [ ];
        description = "Addresses with prefix length of the bridge.";
      };
    };
  };

  namespaceNames = lib.attrNames cfg.namespaces;
in
{
  options.services.netns = {
    enable = mkEnableOption "netnsctl, the declarative manager of named network namespaces" // {
      default = cfg.namespaces != { } || cfg.bridges != { };
      defaultText = literalExpression "config.services.netns.namespaces != { } || config.services.netns.bridges != { }";
    };

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The netnsctl package.";
    };

    namespaces = mkOption {
      type = types.attrsOf (types.submodule namespaceOptions);
      default = { };
      description = ''
        Network namespaces, keyed by name; each becomes netns-NAME.service and is registered at
        /run/netns/NAME as `ip netns` does.
      '';
    };

    bridges = mkOption {
      type = types.attrsOf (types.submodule bridgeOptions);
      default = { };
      description = "Bridges in the host network namespace, keyed by interface name.";
    };
  };

  config = mkIf cfg.enable {
    # netnsctl runs nft for rulesets and finds it on PATH.
    environment.systemPackages = [
      cfg.package
      pkgs.nftables
    ];

    environment.etc."netnsctl/netnsctl.toml".source = configFile;

    # systemd runs the generator at boot and at every daemon-reload; it writes
    # netns-NAME.service and the member drop-ins into /run/systemd/generator.
    systemd.generators.netnsctl-generator = "${cfg.package}/bin/netnsctl";

    # Drop-ins for the generated units: nft on PATH for `netnsctl attach`. A full unit here
    # would replace the generated one, which asDropin avoids. A restart would give the members
    # a new namespace, so a changed drop-in does not restart the unit.
    systemd.services = lib.genAttrs (map (name: "netns-${name}") namespaceNames) (_: {
      overrideStrategy = "asDropin";
      path = [ pkgs.nftables ];
      restartIfChanged = false;
    }) // {

      # The generator output changes only at daemon-reload, and restarting netns-NAME.service
      # would give its members a new namespace. This unit applies a changed config in place to
      # the namespaces that are up, whenever the config file changes on a switch.
      netnsctl-reapply = {
        description = "Apply the netnsctl config to running namespaces";
        wantedBy = [ "multi-user.target" ];
        after = map (name: "netns-${name}.service") namespaceNames;
        restartTriggers = [ configFile ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
        path = [
          cfg.package
          pkgs.nftables
        ];
        script = ''
          running=()
          for name in ${lib.escapeShellArgs namespaceNames}; do
            if [ -e "/run/netns/$name" ]; then
              running+=("$name")
            fi
          done
          if [ "''${#running[@]}" -gt 0 ]; then
            exec netnsctl apply -- "''${running[@]}"
          fi
        '';
      };
    };
  };
}
