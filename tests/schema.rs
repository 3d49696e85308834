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
    let properties = schema["$defs"]["Namespace"]["properties"]
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
    assert_eq!(schema["$defs"]["Namespace"]["additionalProperties"], false);
}
