//! JSON Schema of the config file, generated from the serde types with schemars.
//!
//! The committed copy at `schema/netnsctl.schema.json` is for editors (taplo, the Even Better
//! TOML extension); a test fails when it differs from [`schema_json`].

use super::Config;

/// Location of the committed schema, relative to the repository root.
pub const SCHEMA_PATH: &str = "schema/netnsctl.schema.json";

/// Returns the schema of [`Config`] as pretty-printed JSON, without a trailing newline.
pub fn schema_json() -> String {
    let mut schema = schemars::schema_for!(Config);
    schema.insert("title".into(), "netnsctl configuration".into());
    serde_json::to_string_pretty(&schema).expect("a schema serializes to JSON")
}
