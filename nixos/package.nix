# netnsctl built from this repository, with completions, man pages, the schema and the
# generator link in the places NixOS looks for them.
#
# NOTE: Only parsed (`nix-instantiate --parse`), never built: building needs nixpkgs. The test
# suite needs root and network namespaces, so doCheck is off; run it as the README says.
{
  lib,
  rustPlatform,
  installShellFiles,
  makeWrapper,
  nftables,
}:

rustPlatform.buildRustPackage {
  pname = "netnsctl";
  version = (lib.importTOML ../Cargo.toml).package.version;

  src = lib.cleanSource ../.;
  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [
    installShellFiles
    makeWrapper
  ];

  doCheck = false;

  postInstall = ''
    installShellCompletion --cmd netnsctl \
      --bash <($out/bin/netnsctl generate completions bash) \
      --zsh <($out/bin/netnsctl generate completions zsh) \
      --fish <($out/bin/netnsctl generate completions fish)
    $out/bin/netnsctl generate man man
    installManPage man/*.1
    install -Dm644 schema/netnsctl.schema.json $out/share/netnsctl/netnsctl.schema.json
    install -Dm644 examples/netnsctl.toml $out/share/doc/netnsctl/examples/netnsctl.toml
    mkdir -p $out/lib/systemd/system-generators
    ln -s $out/bin/netnsctl $out/lib/systemd/system-generators/netnsctl-generator
  '';

  # netnsctl runs nft from NETNSCTL_NFT; units started by systemd have no nft on PATH on NixOS.
  # The wrapper keeps argv[0], so the generator link still selects generator mode.
  postFixup = ''
    wrapProgram $out/bin/netnsctl --set-default NETNSCTL_NFT ${lib.getExe nftables}
  '';

  meta = {
    description = "Declarative manager for named Linux network namespaces";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = "netnsctl";
  };
}
