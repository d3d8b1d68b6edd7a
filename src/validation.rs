//! JSON Schema validation against `schemas/`, the single source of truth for every document
//! the hub accepts or emits.

use serde_json::Value;
use std::sync::OnceLock;

pub const INCIDENT_SCHEMA: &str = include_str!("../schemas/incident.v1.json");

/// One violation: where in the document, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

/// Which document of `incident.v1.json` to check.
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
}

fn compile(def: Option<&str>) -> jsonschema::Validator {
    let root: Value = serde_json::from_str(INCIDENT_SCHEMA).expect("schemas/incident.v1.json is valid JSON");
    let schema = match def {
        None => root,
        Some(name) => {
            // Validate against one $def while keeping every $ref inside the document resolvable.
            let mut s = serde_json::json!({ "$schema": root["$schema"], "$defs": root["$defs"] });
            s["$ref"] = Value::String(format!("#/$defs/{name}"));
            s
        }
    };
    jsonschema::validator_for(&schema).expect("schemas/incident.v1.json compiles")
}

fn validator(doc: Doc) -> &'static jsonschema::Validator {
    static V: OnceLock<[jsonschema::Validator; 6]> = OnceLock::new();
    let all = V.get_or_init(|| {
        [compile(None), compile(Some("create")), compile(Some("patch")), compile(Some("note_create")), compile(Some("route")), compile(Some("handback"))]
    });
    &all[doc as usize]
}

/// Every violation of `instance`, in document order.
pub fn validate(doc: Doc, instance: &Value) -> Result<(), Vec<Violation>> {
    let errors: Vec<Violation> = validator(doc)
        .iter_errors(instance)
        .map(|e| Violation { pointer: e.instance_path.to_string(), message: e.to_string() })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
