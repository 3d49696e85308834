//! JSON Schema of the config file, generated from the serde types with schemars.
//!
//! The committed copy at `schema/netnsctl.schema.json` is for editors; a test fails when it
//! differs from [`schema_json`]. taplo, the TOML language server behind editor plugins such as
//! Even Better TOML, documents support for JSON Schema Draft 4 features only. So the schema is
//! draft-07 with draft-4 keywords only: `definitions`, a single-value `enum` in place of
//! `const`, and no boolean subschemas.

use schemars::generate::SchemaSettings;
use schemars::transform::{ReplaceBoolSchemas, ReplaceConstValue};

use super::Config;

/// Location of the committed schema, relative to the repository root.
pub const SCHEMA_PATH: &str = "schema/netnsctl.schema.json";

/// Returns the schema of [`Config`] as pretty-printed JSON, without a trailing newline.
pub fn schema_json() -> String {
    let mut bool_schemas = ReplaceBoolSchemas::default();
    // `additionalProperties: false` is valid in draft 4, but boolean subschemas are not.
    bool_schemas.skip_additional_properties = true;
    let mut schema = SchemaSettings::draft07()
        .with_transform(ReplaceConstValue::default())
        .with_transform(bool_schemas)
        .into_generator()
        .into_root_schema_for::<Config>();
    schema.insert("title".into(), "netnsctl configuration".into());
    serde_json::to_string_pretty(&schema).expect("a schema serializes to JSON")
}
