//! ServiceNow (Table API, `incident` table): record parsing in all three display modes, the
//! mapping to and from the canonical model, and the API client (which also keeps change legs on
//! the `change_request` table).

pub mod change_client;
pub mod client;
pub mod mapping;
pub(crate) mod setup;

use super::{Canonical, MapError, Mapping, NativeNote, NativeRecord};
use crate::config::ProfileOverrides;
use crate::domain::Incident;
#[cfg(test)]
use crate::domain::PriorityMatrix;
pub use client::ServiceNowClient;
pub use mapping::{parse_record, JournalEntry, SnRecord, SYNCED_FIELDS};
use serde_json::Value;
use std::collections::BTreeMap;

/// The ServiceNow mapping, with an instance's own values over the base profile.
#[derive(Debug, Clone, Default)]
pub struct ServiceNow {
    overrides: ProfileOverrides,
}

impl ServiceNow {
    pub fn with_overrides(overrides: ProfileOverrides) -> Self {
        ServiceNow { overrides }
    }

    /// The fields with the instance's custom values replaced by the base values they stand for,
    /// so the base profile reads them; values the instance did not declare are left as they are
    /// (and reported unmapped).
    fn as_base(&self, fields: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let p = mapping::profile();
        let mut f = fields.clone();
        let mut swap = |key: &str, canonical: Option<&str>, table: &std::collections::HashMap<String, String>| {
            if let Some(base) = canonical.and_then(|c| table.get(c)) {
                f.insert(key.to_string(), base.clone());
            }
        };
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        swap("state", self.overrides.states.get(&get("state")).map(|s| s.as_str()), &p.status.from_canonical);
        swap("hold_reason", self.overrides.hold_reasons.get(&get("hold_reason")).map(|h| h.as_str()), &p.hold_reason.from_canonical);
        swap("close_code", self.overrides.resolutions.get(&get("close_code")).map(String::as_str), &p.resolution.from_canonical);
        f
    }
}

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
        let rows = payload.get("journal").or_else(|| payload.get("result")).unwrap_or(payload).as_array().map(Vec::as_slice).unwrap_or(&[]);
        mapping::parse_journal(rows).into_iter().map(NativeNote::from).collect()
    }

    fn to_canonical(&self, fields: &BTreeMap<String, String>, assigned: bool) -> Canonical {
        mapping::to_canonical(&self.as_base(fields), assigned)
    }

    fn from_canonical(&self, incident: &Incident) -> BTreeMap<String, String> {
        mapping::from_canonical(&super::aligned_priority(self.overrides.priority_matrix.as_ref(), incident))
    }

    fn canonical_document(&self, payload: &Value) -> Result<Value, MapError> {
        let mut doc = mapping::canonical_document(payload)?;
        if self.overrides.states.is_empty() && self.overrides.hold_reasons.is_empty() && self.overrides.resolutions.is_empty() {
            return Ok(doc);
        }
        // Re-read the synced fields through this instance's overrides.
        let rec = mapping::read_record(payload)?;
        let c = self.to_canonical(&rec.fields, rec.assigned);
        doc["status"] = serde_json::json!(c.status);
        doc["hold_reason"] = serde_json::json!(c.hold_reason);
        doc["resolution"] = serde_json::json!(c.resolution);
        doc["legs"][0]["unmapped"] = serde_json::json!(c.unmapped);
        Ok(doc)
    }

    fn native_document(&self, canonical: &Value) -> Result<Value, MapError> {
        let incident: Incident = serde_json::from_value(canonical.clone()).map_err(|e| MapError(format!("not a canonical incident document: {e}")))?;
        Ok(mapping::native_body(&super::aligned_priority(self.overrides.priority_matrix.as_ref(), &incident)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_matrix_moves_the_pair_not_the_priority() {
        let canonical: Value = serde_json::from_str(include_str!("../../../adapters/servicenow/fixtures/on_hold_awaiting_supplier.canonical-in.json")).unwrap();
        // impact 2 x urgency 1 is priority 2 for the hub; this instance makes it 1.
        let eager = PriorityMatrix::try_from(vec![vec![1, 1, 2], vec![1, 2, 3], vec![2, 3, 4]]).unwrap();
        let plain = ServiceNow::default().native_document(&canonical).unwrap();
        assert_eq!((plain["impact"].as_str(), plain["urgency"].as_str()), (Some("2"), Some("1")));
        let custom = ServiceNow::with_overrides(ProfileOverrides { priority_matrix: Some(eager.clone()), ..Default::default() });
        let body = custom.native_document(&canonical).unwrap();
        assert_eq!((body["impact"].as_str(), body["urgency"].as_str()), (Some("2"), Some("2")), "{body}");
        let incident: Incident = serde_json::from_value(canonical).unwrap();
        let fields = custom.from_canonical(&incident);
        assert_eq!((fields["impact"].as_str(), fields["urgency"].as_str()), ("2", "2"));
        let i = crate::domain::Impact::new(2).unwrap();
        let u = crate::domain::Urgency::new(2).unwrap();
        assert_eq!(eager.derive(i, u), incident.priority, "the supplier's ticket carries the record's priority");
    }
}
