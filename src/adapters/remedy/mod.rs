//! BMC Helix / Remedy ITSM (AR System REST API, `HPD:` incident forms): entry and work log
//! parsing in create and read names, the mapping to and from the canonical model, and the API
//! client (JWT login, `HPD:IncidentInterface_Create`, `HPD:IncidentInterface`, `HPD:WorkLog`).
//! The same client keeps change requests on the `CHG:` forms (`CHG:ChangeInterface_Create`,
//! `CHG:ChangeInterface`, `CHG:WorkLog`), read with the change mapping in
//! `adapters::change::remedy`.
//!
//! Identity: the hub keys a Remedy leg by the `HPD:Help Desk` entry id (`Entry ID`, which the
//! interface's composite `Request ID` repeats as `X|X`), shows `Incident Number` (a *different*
//! INC number) as the ticket number, and writes its own reference to `Vendor Ticket Number`.
//!
//! Change notifications: Remedy has no standard outbound webhook. The sweep (polling
//! `HPD:IncidentInterface` on `'Last Modified Date'`, plus `HPD:WorkLog` on `'Submit Date'`,
//! because a work log is a separate record that need not touch its incident) is the main path.
//! A filter that calls the hub's `/webhooks/{supplier}` with basic auth may add speed: its body
//! is the interface entry, optionally with the new work logs (`{"entry": {...}, "worklogs":
//! [...]}`), which [`Remedy`] reads like any other entry.

mod change_client;
pub mod client;
pub mod mapping;
mod setup;

use super::{Canonical, MapError, Mapping, NativeAttachment, NativeNote, NativeRecord};
use crate::config::RemedySettings;
use crate::domain::Incident;
pub use client::RemedyClient;
pub use mapping::{Profile, RemedyRecord, WorkLog, SYNCED_FIELDS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The Remedy mapping of one instance: the shipped profile with the instance's overrides.
#[derive(Clone)]
pub struct Remedy {
    pub profile: Arc<Profile>,
}

impl Default for Remedy {
    fn default() -> Self {
        Remedy { profile: mapping::default_profile() }
    }
}

impl Remedy {
    /// The mapping of an instance whose settings may override the profile.
    pub fn for_instance(settings: &RemedySettings) -> Result<Remedy, String> {
        match &settings.profile {
            None => Ok(Remedy::default()),
            Some(over) => Ok(Remedy { profile: Arc::new(Profile::with_overrides(Some(over))?) }),
        }
    }
}

impl RemedyRecord {
    fn into_native(self) -> Result<NativeRecord, MapError> {
        let native_id = self.entry_id.clone().ok_or_else(|| MapError("the entry has no Entry ID".into()))?;
        Ok(NativeRecord {
            native_status: self.fields.get(mapping::STATUS).filter(|s| !s.is_empty()).cloned(),
            revision: self.revision(),
            native_id,
            native_number: self.incident_number,
            correlation: self.vendor_ticket,
            updated_at: self.last_modified,
            fields: self.fields,
            assigned: self.assigned,
        })
    }
}

impl Mapping for Remedy {
    fn system(&self) -> &'static str {
        "remedy"
    }

    fn parse_record(&self, payload: &Value) -> Result<NativeRecord, MapError> {
        mapping::parse_entry(&self.profile, payload, true)?.into_native()
    }

    /// Work logs of a `HPD:WorkLog` answer or a webhook body. When the payload also carries the
    /// incident, work logs of any other incident are left out.
    fn parse_notes(&self, payload: &Value) -> Vec<NativeNote> {
        let own = mapping::parse_entry(&self.profile, payload, false).ok().and_then(|r| r.incident_number);
        mapping::parse_worklogs(&self.profile, payload)
            .into_iter()
            .filter(|w| own.as_deref().is_none_or(|n| w.incident_number.is_empty() || w.incident_number == n))
            // A work log that only carries files is fetched as attachments, not read as a note.
            .filter(|w| !w.files_only)
            .map(|w| NativeNote {
                native_id: w.id,
                // Work logs name their incident by number; the entry id is the leg's key, so an
                // unknown entry id stays empty ("the ticket this payload is about").
                ticket_id: w.incident_entry_id,
                visibility: w.visibility,
                author: w.author,
                text: w.text,
                created_at: w.created_at,
            })
            .collect()
    }

    /// The files in the attachment fields of the work logs.
    fn parse_attachments(&self, payload: &Value) -> Option<Vec<NativeAttachment>> {
        Some(mapping::worklog_attachments(&self.profile, payload))
    }

    fn to_canonical(&self, fields: &BTreeMap<String, String>, assigned: bool) -> Canonical {
        mapping::to_canonical(&self.profile, fields, assigned)
    }

    fn from_canonical(&self, incident: &Incident) -> BTreeMap<String, String> {
        mapping::from_canonical(&self.profile, incident)
    }

    fn desired(&self, incident: &Incident, baseline: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        mapping::desired(&self.profile, incident, baseline)
    }

    fn canonical_document(&self, payload: &Value) -> Result<Value, MapError> {
        mapping::canonical_document(&self.profile, payload)
    }

    fn native_document(&self, canonical: &Value) -> Result<Value, MapError> {
        mapping::native_document(&self.profile, canonical)
    }
}
