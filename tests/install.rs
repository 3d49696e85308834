//! install.sh into a temporary DESTDIR: every file lands where its tool looks for it.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use support::netnsctl_bin;

fn install(destdir: &Path, prefix: Option<&str>) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let mut command = Command::new("sh");
    command
        .arg(&script)
        .env("DESTDIR", destdir)
        .env("BINARY", netnsctl_bin())
        .env_remove("PREFIX")
        .env_remove("SYSCONFDIR")
        .env_remove("GENERATORDIR")
        .env_remove("ZSHCOMPDIR");
    if let Some(prefix) = prefix {
        command.env("PREFIX", prefix);
    }
    let output = command.output().expect("run install.sh");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "install.sh failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn assert_file(path: &Path) {
    let metadata =
        std::fs::metadata(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert!(metadata.is_file(), "{} is not a file", path.display());
    assert!(metadata.len() > 0, "{} is empty", path.display());
}

#[test]
fn install_places_every_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path();
    install(root, None);

    let binary = root.join("usr/bin/netnsctl");
    assert_file(&binary);
    let mode = std::fs::metadata(&binary)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "binary mode is {mode:o}");

    let generator = root.join("usr/lib/systemd/system-generators/netnsctl-generator");
    let target = std::fs::read_link(&generator).expect("generator is a symlink");
    assert_eq!(target, PathBuf::from("/usr/bin/netnsctl"));

    let config = root.join("etc/netnsctl/netnsctl.toml");
    assert_file(&config);
    let text = std::fs::read_to_string(&config).expect("read config");
    assert!(
        text.starts_with("#:schema /usr/share/netnsctl/netnsctl.schema.json\n"),
        "config does not start with the schema directive:\n{text}"
    );
    assert!(!text.contains('@'), "placeholder left in config:\n{text}");
    assert!(root.join("etc/netnsctl/conf.d").is_dir(), "conf.d missing");
    assert_file(&root.join("usr/share/bash-completion/completions/netnsctl"));
    assert_file(&root.join("usr/share/zsh/site-functions/_netnsctl"));
    assert_file(&root.join("usr/share/fish/vendor_completions.d/netnsctl.fish"));
    assert_file(&root.join("usr/share/netnsctl/netnsctl.schema.json"));
    assert_file(&root.join("usr/share/doc/netnsctl/examples/netnsctl.toml"));

    let man = root.join("usr/share/man/man1");
    assert_file(&man.join("netnsctl.1"));
    for sub in netnsctl::cli::Cli::command().get_subcommands() {
        if !sub.is_hide_set() {
            assert_file(&man.join(format!("netnsctl-{}.1", sub.get_name())));
        }
    }
}

#[test]
fn install_keeps_existing_config() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path();
    install(root, None);
    let config = root.join("etc/netnsctl/netnsctl.toml");
    let edited = "[namespaces.edited]\n";
    std::fs::write(&config, edited).expect("edit config");
    let stdout = install(root, None);
    assert_eq!(
        std::fs::read_to_string(&config).expect("read config"),
        edited
    );
    assert!(stdout.contains("keeping existing"), "{stdout}");
}

#[test]
fn install_honours_prefix() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path();
    install(root, Some("/usr/local"));
    assert_file(&root.join("usr/local/bin/netnsctl"));
    let generator = root.join("usr/local/lib/systemd/system-generators/netnsctl-generator");
    assert_eq!(
        std::fs::read_link(&generator).expect("generator is a symlink"),
        PathBuf::from("/usr/local/bin/netnsctl")
    );
    assert_file(&root.join("usr/local/share/man/man1/netnsctl.1"));
    let config =
        std::fs::read_to_string(root.join("etc/netnsctl/netnsctl.toml")).expect("read config");
    assert!(
        config.starts_with("#:schema /usr/local/share/netnsctl/netnsctl.schema.json\n"),
        "{config}"
    );
    // The config directory does not follow PREFIX.
    assert_file(&root.join("etc/netnsctl/netnsctl.toml"));
    assert!(!root.join("usr/bin").exists(), "files outside PREFIX");
}

#[test]
fn installed_configs_pass_check() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path();
    install(root, None);
    for config in [
        "etc/netnsctl/netnsctl.toml",
        "usr/share/doc/netnsctl/examples/netnsctl.toml",
    ] {
        let output = Command::new(netnsctl_bin())
            .args(["check", "-c"])
            .arg(root.join(config))
            .output()
            .expect("run netnsctl check");
        assert!(
            output.status.success(),
            "check rejects {config}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn install_script_is_valid_sh() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let output = Command::new("sh")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("run sh -n");
    assert!(
        output.status.success(),
        "sh -n rejects install.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
