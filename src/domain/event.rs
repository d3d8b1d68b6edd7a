//! What happened to a ticket: the append-only event log and the bus both carry these.

use serde::{Deserialize, Serialize};

/// Event types, named as the `type` of the CloudEvents the hub publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "incident.created")]
    Created,
    #[serde(rename = "incident.routed")]
    Routed,
    #[serde(rename = "incident.updated")]
    Updated,
    #[serde(rename = "incident.status_changed")]
    StatusChanged,
    #[serde(rename = "incident.note_added")]
    NoteAdded,
    #[serde(rename = "leg.opened")]
    LegOpened,
    #[serde(rename = "leg.updated")]
    LegUpdated,
    #[serde(rename = "leg.failed")]
    LegFailed,
    #[serde(rename = "mapping.unmapped_value")]
    UnmappedValue,
    #[serde(rename = "leg.handed_back")]
    LegHandedBack,
    #[serde(rename = "leg.withdrawn")]
    LegWithdrawn,
    #[serde(rename = "leg.added")]
    LegAdded,
    #[serde(rename = "incident.conflict_resolved")]
    ConflictResolved,
    #[serde(rename = "attachment.added")]
    AttachmentAdded,
    #[serde(rename = "attachment.refused")]
    AttachmentRefused,
    /// An SLA clock crossed a warning threshold (a percentage of its target).
    #[serde(rename = "sla.warning")]
    SlaWarning,
    /// An SLA clock exceeded its target.
    #[serde(rename = "sla.breached")]
    SlaBreached,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Created => "incident.created",
            EventType::Routed => "incident.routed",
            EventType::Updated => "incident.updated",
            EventType::StatusChanged => "incident.status_changed",
            EventType::NoteAdded => "incident.note_added",
            EventType::LegOpened => "leg.opened",
            EventType::LegUpdated => "leg.updated",
            EventType::LegFailed => "leg.failed",
            EventType::UnmappedValue => "mapping.unmapped_value",
            EventType::LegHandedBack => "leg.handed_back",
            EventType::LegWithdrawn => "leg.withdrawn",
            EventType::LegAdded => "leg.added",
            EventType::ConflictResolved => "incident.conflict_resolved",
            EventType::AttachmentAdded => "attachment.added",
            EventType::AttachmentRefused => "attachment.refused",
            EventType::SlaWarning => "sla.warning",
            EventType::SlaBreached => "sla.breached",
        }
    }
}

/// An event about to be appended to a ticket's log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventType,
    /// Who caused it: `api:<key prefix>`, `supplier:<id>`, `hub`.
    pub source: String,
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn new(kind: EventType, source: impl Into<String>, data: serde_json::Value) -> Self {
        NewEvent { kind, source: source.into(), data }
    }
}

/// Wraps `data` in a CloudEvents 1.0 envelope (JSON format). `correlationid` is an extension
/// attribute that follows the ticket through HTTP, the record and the broker.
pub fn cloud_event(id: uuid::Uuid, kind: &str, subject: &str, time: &chrono::DateTime<chrono::Utc>, correlation_id: &str, data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": id.to_string(),
        "source": "/siam-hub",
        "type": kind,
        "subject": subject,
        "time": super::time::rfc3339(time),
        "datacontenttype": "application/json",
        "correlationid": correlation_id,
        "data": data,
    })
}
