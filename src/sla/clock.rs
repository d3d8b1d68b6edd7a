//! Clocks as a pure function of a ticket's event log. (Interface; implementation in progress.)

use super::{Calendar, Clock};
use crate::config::{ContractDef, SlaSettings};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// One row of a ticket's event log, as the SLA engine reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketEvent {
    pub id: uuid::Uuid,
    /// `incident.created`, `incident.routed`, `incident.status_changed`, ...
    pub kind: String,
    /// `api:<key>`, `supplier:<id>`, `hub`.
    pub source: String,
    pub data: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// The calendars and contracts of a deployment, checked and ready to use.
#[derive(Debug, Clone)]
pub struct Contracts {
    pub calendars: HashMap<String, Calendar>,
    pub contracts: Vec<ContractDef>,
}

impl Contracts {
    pub fn from_settings(s: &SlaSettings) -> Result<Contracts, String> {
        let mut calendars = HashMap::new();
        for c in &s.calendars {
            calendars.insert(c.id.clone(), Calendar::from_def(c)?);
        }
        Ok(Contracts { calendars, contracts: s.contracts.clone() })
    }
}

/// The SLA-relevant facts of an event log, in order.
pub fn timeline(_events: &[TicketEvent]) -> Vec<super::clock::SlaEvent> {
    todo!("timeline")
}

/// One SLA-relevant fact read from the event log. Every variant names the instant and the id of
/// the event it came from, so a clock's pauses and stops can be traced back to the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SlaEvent {
    /// The ticket was raised (`incident.created`), with its priority if it had a valid one.
    Opened { at: DateTime<Utc>, event: Uuid, priority: Option<u8> },
    /// The priority changed mid-flight (`incident.updated` with `changes.priority`).
    PriorityChanged { at: DateTime<Utc>, event: Uuid, priority: u8 },
    /// `supplier` holds the ticket from now on (`incident.routed`).
    Held { at: DateTime<Utc>, event: Uuid, supplier: String },
    /// `supplier` no longer holds the ticket (routed elsewhere, or `leg.handed_back`).
    Released { at: DateTime<Utc>, event: Uuid, supplier: String },
    /// First acknowledgement by `supplier` while it held the ticket, or (`None`) the service
    /// desk's first move to `in_progress`.
    Responded { at: DateTime<Utc>, event: Uuid, supplier: Option<String> },
    /// The ticket went on hold, or its hold reason changed while on hold.
    HoldStarted { at: DateTime<Utc>, event: Uuid, reason: Option<String> },
    /// The ticket left `on_hold`.
    HoldEnded { at: DateTime<Utc>, event: Uuid },
    /// Resolved (or closed/cancelled without a resolution first).
    Resolved { at: DateTime<Utc>, event: Uuid },
    /// Moved from resolved/closed back to an open status.
    Reopened { at: DateTime<Utc>, event: Uuid },
}

/// Every clock of one ticket under every contract that applies, as of `now`.
pub fn clocks(_reference: &str, _events: &[TicketEvent], _contracts: &Contracts, _now: DateTime<Utc>) -> Vec<Clock> {
    todo!("clock engine")
}

/// The store's event rows as the engine reads them.
pub fn ticket_events(rows: &[crate::store::models::EventRow]) -> Vec<TicketEvent> {
    rows.iter().map(TicketEvent::from).collect()
}

impl From<&crate::store::models::EventRow> for TicketEvent {
    fn from(r: &crate::store::models::EventRow) -> Self {
        TicketEvent { id: r.event_id, kind: r.kind.clone(), source: r.source.clone(), data: r.data.clone(), at: r.occurred_at }
    }
}
