//! conf.d drop-ins: merged after the main file, conflicts and validation errors name the file.

mod support;

use support::{require_root, sysctl_in, Env};

fn write_dropin(env: &Env, name: &str, toml: &str) -> std::path::PathBuf {
    let dir = env.path("conf.d");
    std::fs::create_dir_all(&dir).expect("create conf.d");
    let path = dir.join(name);
    std::fs::write(&path, toml).expect("write drop-in");
    path
}

#[test]
fn check_accepts_merged_dropins() {
    let env = Env::new("[namespaces.eco-a]\nsysctl = { \"net.ipv4.ip_forward\" = 1 }\n");
    let first = write_dropin(&env, "10-b.toml", "[namespaces.eco-b]\n");
    let second = write_dropin(
        &env,
        "20-a.toml",
        "[namespaces.eco-a]\nmembers = [\"web.service\"]\n",
    );
    let empty = write_dropin(&env, "30-empty.toml", "");
    let listed = env.ok(&["check"]);
    let expected = format!(
        "{}: valid\n{}: valid, merged\n{}: valid, merged\n{}: valid, merged\n",
        env.config.display(),
        first.display(),
        second.display(),
        empty.display()
    );
    assert_eq!(listed, expected);
    let output = env.run(&["check", "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&stdout).expect("check --json prints JSON");
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn conflicting_dropins_name_both_files() {
    let env = Env::new("[namespaces.eco-a]\nsysctl = { \"net.ipv4.ip_forward\" = 1 }\n");
    let dropin = write_dropin(
        &env,
        "10-a.toml",
        "[namespaces.eco-a]\nsysctl = { \"net.ipv4.ip_forward\" = 0 }\n",
    );
    let output = env.run(&["check"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "error: {}: namespaces.eco-a.sysctl.\"net.ipv4.ip_forward\" = 0: conflicts with 1 in {}",
        dropin.display(),
        env.config.display()
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in:\n{stderr}"
    );
}

#[test]
fn invalid_dropin_key_names_dropin() {
    let env = Env::new("[namespaces.eco-a]\n");
    let dropin = write_dropin(
        &env,
        "10-a.toml",
        "[namespaces.eco-a]\nmembers = [\"web\"]\n",
    );
    let output = env.run(&["check"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "error: {}: namespaces.eco-a.members[0] = \"web\"",
        dropin.display()
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in:\n{stderr}"
    );
}

#[test]
fn apply_sets_sysctls_from_dropin() {
    if !require_root("apply_sets_sysctls_from_dropin") {
        return;
    }
    let env = Env::new("[namespaces.eco-drop]\nsysctl = { \"net.ipv4.ip_forward\" = 1 }\n");
    write_dropin(
        &env,
        "10-more.toml",
        "[namespaces.eco-drop]\nsysctl = { \"net.ipv4.conf.all.forwarding\" = 1, \"net.ipv4.ping_group_range\" = \"0 0\" }\n",
    );
    env.ok(&["apply"]);
    assert_eq!(sysctl_in("eco-drop", "net.ipv4.ip_forward"), "1");
    assert_eq!(sysctl_in("eco-drop", "net.ipv4.ping_group_range"), "0\t0");
    env.ok(&["down", "eco-drop"]);
}

#[test]
fn unit_override_error_names_dropin() {
    let env = Env::new("[namespaces.eco-a]\nmembers = [\"web.service\"]\n");
    let dropin = write_dropin(
        &env,
        "10-a.toml",
        "[namespaces.eco-a.service.Service]\nUser = \"nobody\"\n",
    );
    let output = env.run(&["check"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "error: {}: namespaces.eco-a.service.Service.User",
        dropin.display()
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in:\n{stderr}"
    );
}
