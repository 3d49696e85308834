//! `netnsctl generate completions` and `generate man` cover every subcommand.

mod support;

use std::process::Command;

use clap::CommandFactory;
use support::netnsctl_bin;

/// Names of the visible subcommands, as clap defines them.
fn subcommands() -> Vec<String> {
    netnsctl::cli::Cli::command()
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| sub.get_name().to_owned())
        .collect()
}

fn completions(shell: &str) -> String {
    let output = Command::new(netnsctl_bin())
        .args(["generate", "completions", shell])
        .output()
        .expect("run netnsctl");
    assert!(
        output.status.success(),
        "generate completions {shell} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("completions are UTF-8")
}

#[test]
fn subcommand_list_is_complete() {
    let names = subcommands();
    for expected in [
        "apply", "plan", "status", "down", "exec", "check", "generate",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[test]
fn completions_mention_every_subcommand() {
    // How each script spells the global option --config.
    for (shell, config_option) in [
        ("bash", "--config"),
        ("zsh", "--config"),
        ("fish", "-l config"),
    ] {
        let script = completions(shell);
        assert!(
            script.contains("netnsctl"),
            "{shell} completion lacks the program name"
        );
        for name in subcommands() {
            assert!(
                script.contains(&name),
                "{shell} completion lacks subcommand {name}"
            );
        }
        assert!(
            script.contains(config_option),
            "{shell} completion lacks --config"
        );
    }
}

#[test]
fn bash_completion_parses() {
    let script = completions("bash");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("netnsctl");
    std::fs::write(&path, script).expect("write completion");
    let output = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(
        output.status.success(),
        "bash -n rejects the completion: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn man_pages_for_every_subcommand() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = Command::new(netnsctl_bin())
        .args(["generate", "man"])
        .arg(dir.path())
        .output()
        .expect("run netnsctl");
    assert!(
        output.status.success(),
        "generate man failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let main = std::fs::read_to_string(dir.path().join("netnsctl.1")).expect("netnsctl.1 exists");
    assert!(
        main.starts_with(".ie"),
        "netnsctl.1 is not roff: {}",
        &main[..40.min(main.len())]
    );
    for name in subcommands() {
        assert!(
            main.contains(&format!("netnsctl\\-{name}(1)")),
            "netnsctl.1 lacks {name}"
        );
        let page_path = dir.path().join(format!("netnsctl-{name}.1"));
        let page = std::fs::read_to_string(&page_path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", page_path.display()));
        assert!(
            page.contains(&format!(".TH netnsctl-{name} 1")),
            "{} has no title line",
            page_path.display()
        );
        assert!(
            page.contains("\\-\\-config"),
            "{} lacks the global --config",
            page_path.display()
        );
    }
}
