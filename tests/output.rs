//! Terminal output: colour only on a terminal, plain text in pipes, `--quiet` and `-v`.

mod support;

use std::process::Command;

use support::{netnsctl_bin, require_root, Env};

const CONFIG: &str = "[namespaces.eco-out]\nsysctl = { \"net.ipv4.ip_forward\" = 1 }\n";

/// Runs netnsctl under `script`, which gives it a pseudo-terminal as stdout and stderr.
fn run_on_terminal(env: &Env, args: &str, no_color: bool) -> String {
    let command_line = format!(
        "{} -c {} {args}",
        netnsctl_bin().display(),
        env.config.display()
    );
    let mut command = Command::new("script");
    command.args(["-qec", &command_line, "/dev/null"]);
    command.env_remove("NO_COLOR").env("TERM", "xterm");
    if no_color {
        command.env("NO_COLOR", "1");
    }
    let output = command.output().expect("run script");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{command_line} failed: {text}");
    text
}

#[test]
fn piped_output_is_plain() {
    if !require_root("piped_output_is_plain") {
        return;
    }
    let env = Env::new(CONFIG);
    let output = env.run(&["apply"]);
    assert!(output.status.success());
    assert!(
        !output.stdout.contains(&0x1b),
        "escape sequence in piped stdout"
    );
    assert!(
        !output.stderr.contains(&0x1b),
        "escape sequence in piped stderr"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("eco-out: create namespace\n"), "{stdout}");
    env.ok(&["down", "eco-out"]);
}

#[test]
fn quiet_prints_nothing_on_success() {
    if !require_root("quiet_prints_nothing_on_success") {
        return;
    }
    let env = Env::new(CONFIG);
    let output = env.run(&["apply", "--quiet"]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    let output = env.run(&["check", "-q"]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    env.ok(&["down", "eco-out"]);
}

#[test]
fn verbose_logs_each_applied_step() {
    if !require_root("verbose_logs_each_applied_step") {
        return;
    }
    let env = Env::new(CONFIG);
    let output = env.run(&["apply", "-v"]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("INFO applied namespace=\"eco-out\" step=eco-out: create namespace"),
        "{stderr}"
    );
    assert!(
        stderr.contains("step=eco-out: set sysctl net.ipv4.ip_forward = 1"),
        "{stderr}"
    );
    env.ok(&["down", "eco-out"]);
}

#[test]
fn terminal_output_has_colour() {
    if !require_root("terminal_output_has_colour") {
        return;
    }
    let env = Env::new(CONFIG);
    let text = run_on_terminal(&env, "apply", false);
    assert!(
        text.contains("\x1b[32meco-out: create namespace\x1b[0m"),
        "no green applied step in {text:?}"
    );
    env.ok(&["down", "eco-out"]);
    let text = run_on_terminal(&env, "apply", true);
    assert!(
        !text.contains('\x1b'),
        "NO_COLOR=1 still coloured: {text:?}"
    );
    env.ok(&["down", "eco-out"]);
}
