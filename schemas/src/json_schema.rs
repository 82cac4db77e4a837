//! JSON Schema documents for the wire types, checked into `schemas/json/`.
//!
//! `cargo test -p taskfactory-schemas` fails when the files are stale; regenerate them with
//! `UPDATE_SCHEMAS=1 cargo test -p taskfactory-schemas json_schemas`.

use schemars::{JsonSchema, schema_for};

use crate::definition::ActivityDefinition;
use crate::events::{TraceEvent, TriggerEvent};
use crate::plan::Plan;

/// `(file name, pretty JSON)` of every published schema.
pub fn all() -> Vec<(&'static str, String)> {
    fn render<T: JsonSchema>() -> String {
        let mut text = serde_json::to_string_pretty(&schema_for!(T)).expect("schemas serialize");
        text.push('\n');
        text
    }
    vec![
        ("activity-definition.schema.json", render::<ActivityDefinition>()),
        ("trigger-event.schema.json", render::<TriggerEvent>()),
        ("trace-event.schema.json", render::<TraceEvent>()),
        ("plan.schema.json", render::<Plan>()),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn json_schemas_are_fresh() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
        let mut stale = Vec::new();
        for (name, text) in super::all() {
            let path = dir.join(name);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "stale JSON schemas {stale:?}: run `UPDATE_SCHEMAS=1 cargo test -p taskfactory-schemas json_schemas`"
        );
    }
}
