//! The NixOS module: every Nix file parses, and lib.nix turns the example option values into
//! TOML that `netnsctl check` accepts and that equals the hand-written expected config.
//!
//! These tests run Nix (Debian: `apt install nix-bin`) without nixpkgs; they print a SKIP line
//! when nix-instantiate is missing.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::netnsctl_bin;

fn nixos_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("nixos")
}

/// Returns false, after printing a SKIP line, when nix-instantiate cannot run.
fn have_nix(test: &str) -> bool {
    match Command::new("nix-instantiate").arg("--version").output() {
        Ok(output) if output.status.success() => true,
        _ => {
            eprintln!("SKIP: {test} needs nix-instantiate (Debian: apt install nix-bin)");
            false
        }
    }
}

/// Evaluates a Nix expression strictly and returns its value as JSON.
fn eval_json(expression: &str) -> serde_json::Value {
    let output = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", expression])
        .output()
        .expect("run nix-instantiate");
    assert!(
        output.status.success(),
        "nix-instantiate --eval failed on {expression}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("nix-instantiate --json prints JSON")
}

/// Converts option values (a Nix expression) to TOML text with lib.nix.
fn to_toml(options: &str) -> String {
    let lib = nixos_dir().join("lib.nix");
    let expression = format!(
        "let lib = import {}; in lib.toTOML (lib.toConfig ({options}))",
        lib.display()
    );
    eval_json(&expression)
        .as_str()
        .expect("toTOML returns a string")
        .to_owned()
}

fn nix_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read nixos directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            nix_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "nix") {
            files.push(path);
        }
    }
}

#[test]
fn nix_files_parse() {
    if !have_nix("nix_files_parse") {
        return;
    }
    let mut files = Vec::new();
    nix_files(&nixos_dir(), &mut files);
    for name in ["module.nix", "lib.nix", "package.nix"] {
        assert!(
            files.contains(&nixos_dir().join(name)),
            "nixos/{name} missing"
        );
    }
    for file in files {
        let output = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(&file)
            .output()
            .expect("run nix-instantiate");
        assert!(
            output.status.success(),
            "{} does not parse: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn check(config: &Path) -> serde_json::Value {
    let output = Command::new(netnsctl_bin())
        .args(["check", "--json", "-c"])
        .arg(config)
        .output()
        .expect("run netnsctl check");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "check --json printed no JSON ({err}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn example_converts_to_expected_config() {
    if !have_nix("example_converts_to_expected_config") {
        return;
    }
    let example = nixos_dir().join("tests/example.nix");
    let generated = to_toml(&format!("import {}", example.display()));
    let dir = tempfile::tempdir().expect("temporary directory");
    let generated_path = dir.path().join("netnsctl.toml");
    std::fs::write(&generated_path, &generated).expect("write generated TOML");

    // check reads the WireGuard key file, so the copies given to it point at a key of the test's.
    let key = dir.path().join("wg0.key");
    std::fs::write(&key, "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n").expect("write key");
    let with_key = |text: &str, name: &str| {
        let path = dir.path().join(name);
        let text = text.replace("/run/keys/wg0.key", &key.display().to_string());
        std::fs::write(&path, text).expect("write config for check");
        path
    };

    let report = check(&with_key(&generated, "generated-check.toml"));
    assert_eq!(
        report["valid"], true,
        "check rejects the TOML from Nix: {report}\n{generated}"
    );

    let expected_path = nixos_dir().join("tests/expected.toml");
    let expected_text = std::fs::read_to_string(&expected_path).expect("read expected.toml");
    let report = check(&with_key(&expected_text, "expected-check.toml"));
    assert_eq!(
        report["valid"], true,
        "check rejects expected.toml: {report}"
    );

    let generated_config = netnsctl::config::parse(&generated_path, &generated)
        .expect("generated TOML parses")
        .config;
    let expected_config = netnsctl::config::parse(&expected_path, &expected_text)
        .expect("expected.toml parses")
        .config;
    assert_eq!(
        generated_config, expected_config,
        "generated TOML:\n{generated}"
    );
}

#[test]
fn null_sysctl_is_unset_and_false_kept() {
    if !have_nix("null_sysctl_is_unset_and_false_kept") {
        return;
    }
    let generated = to_toml(
        r#"{ namespaces.a = { sysctl = { "net.ipv4.ip_forward" = null; "net.ipv6.conf.all.forwarding" = false; }; adopt = false; dns = null; }; }"#,
    );
    let table: toml::Table = toml::from_str(&generated).expect("generated TOML parses");
    let namespace = table["namespaces"]["a"]
        .as_table()
        .expect("namespace table");
    let sysctl = namespace["sysctl"].as_table().expect("sysctl table");
    assert!(!sysctl.contains_key("net.ipv4.ip_forward"), "{generated}");
    assert_eq!(
        sysctl["net.ipv6.conf.all.forwarding"],
        toml::Value::Boolean(false)
    );
    assert!(!namespace.contains_key("adopt"), "{generated}");
    assert!(!namespace.contains_key("dns"), "{generated}");
}

#[test]
fn strings_survive_conversion() {
    if !have_nix("strings_survive_conversion") {
        return;
    }
    // Nix strings for: triple quotes, a trailing quote, a carriage return, a DEL character,
    // a tab, backslashes and a key that needs quoting.
    let values = [
        ("triple", r#""a'''b\nc""#, "a'''b\nc"),
        ("trailing_quote", r#""line\nquote'""#, "line\nquote'"),
        ("carriage_return", r#""a\r\nb""#, "a\r\nb"),
        (
            "delete",
            r#"("a" + builtins.fromJSON "\"\\u007f\"")"#,
            "a\u{7f}",
        ),
        ("tab", r#""a\tb\nc""#, "a\tb\nc"),
        ("backslash", r#""C:\\path\n\\n""#, "C:\\path\n\\n"),
    ];
    let fields: Vec<String> = values
        .iter()
        .map(|(key, nix, _)| format!("{key} = {nix};"))
        .collect();
    let expression = format!(
        "{{ namespaces.a.service.Service = {{ {} \"odd \\\"key\\\"\" = \"x\"; }}; }}",
        fields.join(" ")
    );
    let generated = to_toml(&expression);
    let table: toml::Table = toml::from_str(&generated)
        .unwrap_or_else(|err| panic!("generated TOML does not parse: {err}\n{generated}"));
    let section = &table["namespaces"]["a"]["service"]["Service"];
    for (key, _, expected) in values {
        assert_eq!(
            section[key].as_str(),
            Some(expected),
            "{key} in:\n{generated}"
        );
    }
    assert_eq!(section["odd \"key\""].as_str(), Some("x"), "{generated}");
}

/// Property names of the schema's definitions that the module mirrors.
fn schema_keys() -> BTreeSet<String> {
    let schema: serde_json::Value =
        serde_json::from_str(&netnsctl::config::schema::schema_json()).expect("schema is JSON");
    let mut keys = BTreeSet::new();
    for definition in [
        "Namespace",
        "Dns",
        "Veth",
        "Route",
        "PortMapping",
        "WireGuard",
        "WireGuardPeer",
        "Bridge",
    ] {
        let properties = schema["definitions"][definition]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema has no definition {definition}"));
        keys.extend(properties.keys().cloned());
    }
    keys
}

#[test]
fn module_options_match_schema() {
    let module = std::fs::read_to_string(nixos_dir().join("module.nix")).expect("read module.nix");
    let options: BTreeSet<String> = module
        .lines()
        .filter_map(|line| line.trim().strip_suffix(" = mkOption {"))
        .map(str::to_owned)
        .collect();
    let schema = schema_keys();
    for key in &schema {
        assert!(
            options.contains(key),
            "module.nix has no option for config key {key}"
        );
    }
    // Options of the module itself, outside netnsctl's config.
    let module_only = ["package", "namespaces", "bridges"];
    for option in &options {
        assert!(
            schema.contains(option) || module_only.contains(&option.as_str()),
            "module.nix option {option} is not a netnsctl config key"
        );
    }
}
