# netnsctl built from this repository, with completions, man pages, the schema and the
# generator link in the places NixOS looks for them.
#
# NOTE: Only parsed (`nix-instantiate --parse`), never built: building needs nixpkgs. The test
# suite needs root and network namespaces, so doCheck is off; run it as the README says.
{
  lib,
  rustPlatform,
  installShellFiles,
}:

rustPlatform.buildRustPackage {
  pname = "netnsctl";
  version = (lib.importTOML ../Cargo.toml).package.version;

  src = lib.cleanSource ../.;
  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ installShellFiles ];

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

  # No wrapper script: `generate systemd` writes the path of the running binary into the
  # units, and a wrapper's unwrapped binary would not get the wrapper's environment. nft is
  # found on PATH, which the NixOS module sets for the units.

  meta = {
    description = "Declarative manager for named Linux network namespaces";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = "netnsctl";
  };
}
