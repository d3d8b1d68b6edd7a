//! TMF621 Trouble Ticket (v4 and v5, and ServiceNow's flavour of it): reading every ticket and
//! event shape in use, the mapping to and from the canonical model, and the API client
//! (create, merge-patch, notes, paging sweep, event subscription at the supplier's `/hub`), which
//! also keeps the supplier's TMF655 change requests.

pub mod change_client;
pub mod client;
pub mod mapping;
mod setup;
pub mod subscription;

use super::{Canonical, MapError, Mapping, NativeAttachment, NativeNote, NativeRecord};
use crate::config::Tmf621Settings;
use crate::domain::Incident;
pub use client::Tmf621Client;
pub use mapping::Instance;
use serde_json::Value;
use std::collections::BTreeMap;

/// The TMF621 mapping of one supplier instance (its version, flavour and vocabularies).
#[derive(Debug, Clone, Default)]
pub struct Tmf621 {
    pub instance: Instance,
}

impl Tmf621 {
    pub fn new(settings: &Tmf621Settings) -> Self {
        Tmf621 { instance: Instance::new(settings) }
    }
}

impl Mapping for Tmf621 {
    fn system(&self) -> &'static str {
        "tmf621"
    }

    /// A TroubleTicket resource, `{"troubleTicket": ...}`, or an event notification whose
    /// `event.troubleTicket` may be partial (then it carries no revision).
    fn parse_record(&self, payload: &Value) -> Result<NativeRecord, MapError> {
        mapping::parse_ticket(&self.instance, payload).map(NativeRecord::from)
    }

    fn parse_notes(&self, payload: &Value) -> Vec<NativeNote> {
        mapping::parse_notes(&self.instance, payload)
    }

    /// The ticket's `attachment[]` (none in ServiceNow's flavour, which carries no files).
    fn parse_attachments(&self, payload: &Value) -> Option<Vec<NativeAttachment>> {
        Some(if self.instance.flavour == crate::config::TmfFlavour::Servicenow { vec![] } else { mapping::attachments(payload) })
    }

    fn to_canonical(&self, fields: &BTreeMap<String, String>, assigned: bool) -> Canonical {
        mapping::to_canonical(&self.instance, fields, assigned)
    }

    fn from_canonical(&self, incident: &Incident) -> BTreeMap<String, String> {
        mapping::from_canonical(&self.instance, incident)
    }

    /// An inferred status label stays as the supplier has it while it means what the hub wants.
    fn desired(&self, incident: &Incident, baseline: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        mapping::desired(&self.instance, incident, baseline)
    }

    fn canonical_document(&self, payload: &Value) -> Result<Value, MapError> {
        mapping::canonical_document(&self.instance, payload)
    }

    fn native_document(&self, canonical: &Value) -> Result<Value, MapError> {
        mapping::native_document(&self.instance, canonical)
    }
}
