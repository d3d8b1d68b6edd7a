//! ServiceNow (Table API, `incident` table): record parsing in all three display modes, the
//! mapping to and from the canonical model, and the API client.

pub mod client;
pub mod mapping;

use super::{Canonical, MapError, Mapping, NativeNote, NativeRecord};
use crate::domain::Incident;
pub use client::ServiceNowClient;
pub use mapping::{parse_record, JournalEntry, SnRecord, SYNCED_FIELDS};
use serde_json::Value;
use std::collections::BTreeMap;

/// The ServiceNow mapping.
pub struct ServiceNow;

impl From<SnRecord> for NativeRecord {
    fn from(r: SnRecord) -> Self {
        NativeRecord {
            native_status: r.fields.get("state").cloned(),
            native_id: r.sys_id,
            native_number: r.number,
            correlation: r.correlation_id,
            revision: r.mod_count,
            updated_at: r.updated_on,
            fields: r.fields,
            assigned: r.assigned,
        }
    }
}

impl From<JournalEntry> for NativeNote {
    fn from(j: JournalEntry) -> Self {
        NativeNote { native_id: j.sys_id, ticket_id: j.element_id, visibility: j.visibility, author: j.author, text: j.text, created_at: j.created_on }
    }
}

impl Mapping for ServiceNow {
    fn system(&self) -> &'static str {
        "servicenow"
    }

    fn parse_record(&self, payload: &Value) -> Result<NativeRecord, MapError> {
        mapping::parse_record(payload).map(NativeRecord::from)
    }

    /// Journal rows: a webhook body's `journal`, or a `sys_journal_field` query answer.
    fn parse_notes(&self, payload: &Value) -> Vec<NativeNote> {
        let rows = payload
            .get("journal")
            .or_else(|| payload.get("result"))
            .unwrap_or(payload)
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        mapping::parse_journal(rows).into_iter().map(NativeNote::from).collect()
    }

    fn to_canonical(&self, fields: &BTreeMap<String, String>, assigned: bool) -> Canonical {
        mapping::to_canonical(fields, assigned)
    }

    fn from_canonical(&self, incident: &Incident) -> BTreeMap<String, String> {
        mapping::from_canonical(incident)
    }

    fn canonical_document(&self, payload: &Value) -> Result<Value, MapError> {
        mapping::canonical_document(payload)
    }

    fn native_document(&self, canonical: &Value) -> Result<Value, MapError> {
        mapping::native_document(canonical)
    }
}
