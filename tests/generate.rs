//! `netnsctl generate systemd` and the generator, run as a user would; no root needed.

mod support;

use std::path::Path;
use std::process::Command;

use support::{netnsctl_bin, Env};

const CONFIG: &str = r#"
[namespaces.vpn]
members = ["transmission.service"]

[namespaces."lab-1.x_y"]
join = "private-network"
members = ["web.socket"]
"#;

/// Lists a directory tree as relative path and contents, "-> target" for symlinks.
fn tree(root: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() {
                found.push((
                    relative,
                    format!("-> {}", std::fs::read_link(&path).unwrap().display()),
                ));
            } else {
                found.push((relative, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

/// Creates a symlink named netnsctl-generator to the binary, as installed for systemd.
fn generator(env: &Env) -> std::path::PathBuf {
    let link = env.path("netnsctl-generator");
    if !link.exists() {
        std::os::unix::fs::symlink(netnsctl_bin(), &link).expect("create generator symlink");
    }
    link
}

#[test]
fn generate_writes_units_and_drop_ins() {
    let env = Env::new(CONFIG);
    let out = env.path("units");
    env.ok(&["generate", "systemd", "--output", out.to_str().unwrap()]);
    let paths: Vec<String> = tree(&out).into_iter().map(|(path, _)| path).collect();
    assert_eq!(
        paths,
        [
            "multi-user.target.wants/netns-lab-1.x_y.service",
            "multi-user.target.wants/netns-vpn.service",
            "netns-lab-1.x_y.service",
            "netns-vpn.service",
            "transmission.service.d/netnsctl-netns.conf",
            "web.socket.d/netnsctl-netns.conf",
        ]
    );
    let unit = std::fs::read_to_string(out.join("netns-vpn.service")).unwrap();
    let exec_start = format!(
        "ExecStart={} --config {} attach vpn\n",
        netnsctl_bin().display(),
        env.config.display()
    );
    assert!(unit.contains(&exec_start), "{unit}");
}

#[test]
fn generate_twice_gives_same_files() {
    let env = Env::new(CONFIG);
    let out = env.path("units");
    env.ok(&["generate", "systemd", "--output", out.to_str().unwrap()]);
    let first = tree(&out);
    env.ok(&["generate", "systemd", "--output", out.to_str().unwrap()]);
    assert_eq!(tree(&out), first);
}

#[test]
fn generate_rejects_invalid_config() {
    let env = Env::new("[namespaces.vpn.service.Sevice]\nAfter = \"x.service\"\n");
    let out = env.path("units");
    let output = env.run(&["generate", "systemd", "--output", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("namespaces.vpn.service.Sevice"), "{stderr}");
    assert!(stderr.contains("unknown unit section"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn generator_matches_generate() {
    let env = Env::new(CONFIG);
    let expected = env.path("expected");
    env.ok(&[
        "generate",
        "systemd",
        "--output",
        expected.to_str().unwrap(),
    ]);
    let normal = env.path("normal");
    let output = Command::new(generator(&env))
        .args([&normal, &env.path("early"), &env.path("late")])
        .env("NETNSCTL_CONFIG", &env.config)
        .env_remove("SYSTEMD_SCOPE")
        .output()
        .expect("run generator");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(tree(&normal), tree(&expected));
    assert!(!env.path("early").exists());
    assert!(!env.path("late").exists());
}

#[test]
fn generator_survives_invalid_config() {
    let env = Env::new("[namespaces.\"-bad\"]\n");
    let normal = env.path("normal");
    std::fs::create_dir(&normal).unwrap();
    let output = Command::new(generator(&env))
        .args([&normal, &env.path("early"), &env.path("late")])
        .env("NETNSCTL_CONFIG", &env.config)
        .env_remove("SYSTEMD_SCOPE")
        .output()
        .expect("run generator");
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid namespace name"), "{stderr}");
    assert!(stderr.contains("no namespace units generated"), "{stderr}");
    assert!(tree(&normal).is_empty());
}

#[test]
fn generator_without_config_writes_nothing() {
    let env = Env::new("");
    let normal = env.path("normal");
    std::fs::create_dir(&normal).unwrap();
    let output = Command::new(generator(&env))
        .arg(&normal)
        .env("NETNSCTL_CONFIG", env.path("missing.toml"))
        .output()
        .expect("run generator");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(tree(&normal).is_empty());
}

#[test]
fn generate_removes_stale_units() {
    let env = Env::new(CONFIG);
    let out = env.path("units");
    let out_arg = out.to_str().unwrap();
    env.ok(&["generate", "systemd", "--output", out_arg]);
    // Files netnsctl did not write stay, whatever their names.
    std::fs::write(
        out.join("netns-manual.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();
    std::fs::write(out.join("transmission.service.d/local.conf"), "[Service]\n").unwrap();
    std::fs::write(
        out.join("other.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();

    env.write_config("[namespaces.vpn]\n");
    let printed = env.ok(&["generate", "systemd", "--output", out_arg]);
    assert!(printed.contains("removed "), "{printed}");
    let paths: Vec<String> = tree(&out).into_iter().map(|(path, _)| path).collect();
    assert_eq!(
        paths,
        [
            "multi-user.target.wants/netns-vpn.service",
            "netns-manual.service",
            "netns-vpn.service",
            "other.service",
            "transmission.service.d/local.conf",
        ]
    );
    assert!(!out.join("web.socket.d").exists());

    env.write_config("");
    env.ok(&["generate", "systemd", "--output", out_arg]);
    assert!(!out.join("multi-user.target.wants").exists());
    assert!(!out.join("netns-vpn.service").exists());
}
