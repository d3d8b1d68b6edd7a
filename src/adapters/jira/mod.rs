//! Jira Cloud / Jira Service Management: issue parsing in every shape (REST v3 with ADF, REST
//! v2 and webhooks with wiki markup, JSM customer requests), rich-text conversion, the mapping to
//! and from the canonical model, and the API client (transitions, JQL cursor search, JSM
//! internal comments).

pub mod change_client;
pub mod client;
pub mod mapping;
mod setup;
pub mod text;

use super::{Canonical, MapError, Mapping, NativeNote, NativeRecord};
use crate::domain::Incident;
pub use client::JiraClient;
pub use mapping::{JiraConfig, JiraRecord};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The Jira mapping of one site (the profile with the instance's overrides).
#[derive(Clone, Default)]
pub struct Jira {
    pub config: Arc<JiraConfig>,
}

impl Jira {
    pub fn new(config: JiraConfig) -> Self {
        Jira { config: Arc::new(config) }
    }
}

impl From<JiraRecord> for NativeRecord {
    fn from(r: JiraRecord) -> Self {
        NativeRecord {
            native_status: if r.has_state { r.status_id.clone() } else { None },
            native_id: r.id,
            native_number: r.key,
            correlation: r.correlation,
            // A summary of the issue (comment webhooks) cannot be ordered against what the hub
            // holds: it ranks below every real state, so it changes no field, only adds notes.
            revision: if r.has_state { r.revision } else { Some(i64::MIN) },
            updated_at: r.updated,
            fields: r.fields,
            assigned: r.assigned,
        }
    }
}

impl Mapping for Jira {
    fn system(&self) -> &'static str {
        "jira"
    }

    fn parse_record(&self, payload: &Value) -> Result<NativeRecord, MapError> {
        mapping::parse_record(&self.config, payload).map(NativeRecord::from)
    }

    /// Comments: a webhook's `comment`, an issue's `fields.comment`, a comment list or a JSM page.
    fn parse_notes(&self, payload: &Value) -> Vec<NativeNote> {
        mapping::parse_comments(payload)
    }

    fn to_canonical(&self, fields: &BTreeMap<String, String>, assigned: bool) -> Canonical {
        mapping::to_canonical(&self.config, fields, assigned)
    }

    fn from_canonical(&self, incident: &Incident) -> BTreeMap<String, String> {
        mapping::from_canonical(&self.config, incident)
    }

    /// A status read through its category stays as the supplier has it while it means what the
    /// hub wants.
    fn desired(&self, incident: &Incident, baseline: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        mapping::desired(&self.config, incident, baseline)
    }

    fn canonical_document(&self, payload: &Value) -> Result<Value, MapError> {
        mapping::canonical_document(&self.config, payload)
    }

    fn native_document(&self, canonical: &Value) -> Result<Value, MapError> {
        mapping::native_document(&self.config, canonical)
    }
}
