//! JSON Schema validation against `schemas/`, the single source of truth for every document
//! the hub accepts or emits.

use serde_json::Value;
use std::sync::OnceLock;

pub const INCIDENT_SCHEMA: &str = include_str!("../schemas/incident.v1.json");
pub const CHANGE_SCHEMA: &str = include_str!("../schemas/change.v1.json");

/// One violation: where in the document, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

/// Which document to check: one of `incident.v1.json`, or the change of `change.v1.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    /// The canonical incident itself.
    Incident,
    /// `POST /api/v1/incidents` body (`$defs/create`).
    Create,
    /// `PATCH /api/v1/incidents/{ref}` body (`$defs/patch`).
    Patch,
    /// `POST /api/v1/incidents/{ref}/notes` body (`$defs/note_create`).
    NoteCreate,
    /// `POST /api/v1/incidents/{ref}/route` body (`$defs/route`).
    Route,
    /// `POST /api/v1/incidents/{ref}/handback` body (`$defs/handback`).
    Handback,
    /// The canonical change (`change.v1.json`).
    Change,
}

fn compile(def: Option<&str>) -> jsonschema::Validator {
    let root: Value = serde_json::from_str(INCIDENT_SCHEMA).expect("schemas/incident.v1.json is valid JSON");
    compile_root(root, def)
}

fn compile_root(root: Value, def: Option<&str>) -> jsonschema::Validator {
    let schema = match def {
        None => root,
        Some(name) => {
            // Validate against one $def while keeping every $ref inside the document resolvable.
            let mut s = serde_json::json!({ "$schema": root["$schema"], "$defs": root["$defs"] });
            s["$ref"] = Value::String(format!("#/$defs/{name}"));
            s
        }
    };
    jsonschema::validator_for(&schema).expect("the schemas in schemas/ compile (checked by tests)")
}

fn validator(doc: Doc) -> &'static jsonschema::Validator {
    static V: OnceLock<[jsonschema::Validator; 7]> = OnceLock::new();
    let all = V.get_or_init(|| {
        let change: Value = serde_json::from_str(CHANGE_SCHEMA).expect("schemas/change.v1.json is valid JSON");
        [
            compile(None),
            compile(Some("create")),
            compile(Some("patch")),
            compile(Some("note_create")),
            compile(Some("route")),
            compile(Some("handback")),
            compile_root(change, None),
        ]
    });
    &all[doc as usize]
}

/// Every violation of `instance`, in document order.
pub fn validate(doc: Doc, instance: &Value) -> Result<(), Vec<Violation>> {
    let errors: Vec<Violation> = validator(doc).iter_errors(instance).map(|e| Violation { pointer: e.instance_path.to_string(), message: e.to_string() }).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ResolutionCode;

    #[test]
    fn the_schema_and_the_domain_know_the_same_resolution_codes() {
        let schema: Value = serde_json::from_str(INCIDENT_SCHEMA).unwrap();
        let listed: Vec<&str> = schema["$defs"]["resolution"]["properties"]["code"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let known: Vec<&str> = ResolutionCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, known);
    }
}
