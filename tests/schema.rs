//! The committed JSON Schema matches the config types.

use std::path::Path;

use netnsctl::config::schema::{schema_json, SCHEMA_PATH};

#[test]
fn committed_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_PATH);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let generated = format!("{}\n", schema_json());
    assert!(
        committed == generated,
        "{SCHEMA_PATH} is stale: regenerate it with `cargo run -- generate schema > {SCHEMA_PATH}`"
    );
}

#[test]
fn schema_lists_every_namespace_key() {
    let schema: serde_json::Value = serde_json::from_str(&schema_json()).expect("schema is JSON");
    let properties = schema["definitions"]["Namespace"]["properties"]
        .as_object()
        .expect("Namespace has properties");
    let namespace = netnsctl::config::Namespace::default();
    let serialized = serde_json::to_value(&namespace).expect("namespace serializes");
    for key in serialized.as_object().expect("object").keys() {
        assert!(
            properties.contains_key(key),
            "schema lacks namespace key {key}"
        );
    }
    assert_eq!(
        schema["definitions"]["Namespace"]["additionalProperties"],
        false
    );
}

/// Validates TOML files against the committed schema with Python's jsonschema package, as a
/// Draft 4 validator (what taplo documents) and a Draft 7 one. Prints one line per file: the
/// file, then `ok` or the first error.
const VALIDATE_PY: &str = r#"
import json, sys, tomllib, jsonschema
schema = json.load(open(sys.argv[1]))
for validator in (jsonschema.Draft4Validator, jsonschema.Draft7Validator):
    validator.check_schema(schema)
    for path in sys.argv[2:]:
        with open(path, "rb") as file:
            errors = list(validator(schema).iter_errors(tomllib.load(file)))
        print(validator.__name__, path, errors[0].message if errors else "ok")
"#;

#[test]
fn schema_validates_configs() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import jsonschema, tomllib"])
        .output();
    if !probe.is_ok_and(|output| output.status.success()) {
        eprintln!(
            "SKIP: schema_validates_configs needs python3 (3.11 or later) with jsonschema (Debian: apt install python3-jsonschema)"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let invalid = dir.path().join("invalid.toml");
    std::fs::write(&invalid, "[namespaces.a]\nkillswich = true\n").expect("write invalid config");
    let valid = [
        root.join("examples/netnsctl.toml"),
        root.join("packaging/netnsctl.toml"),
        root.join("nixos/tests/expected.toml"),
    ];
    let output = std::process::Command::new("python3")
        .args(["-c", VALIDATE_PY])
        .arg(root.join(SCHEMA_PATH))
        .args(&valid)
        .arg(&invalid)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "validation failed to run: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for validator in ["Draft4Validator", "Draft7Validator"] {
        for path in &valid {
            let line = format!("{validator} {} ok", path.display());
            assert!(stdout.contains(&line), "expected {line:?} in:\n{stdout}");
        }
        let rejected = format!("{validator} {} Additional properties", invalid.display());
        assert!(
            stdout.contains(&rejected),
            "expected {rejected:?} in:\n{stdout}"
        );
    }
}
