//! Clocks as a pure function of a ticket's event log. (Interface; implementation in progress.)

use super::{Calendar, Clock};
use crate::config::{ContractDef, SlaSettings};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

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

#[derive(Debug, Clone, PartialEq)]
pub enum SlaEvent {}

/// Every clock of one ticket under every contract that applies, as of `now`.
pub fn clocks(_reference: &str, _events: &[TicketEvent], _contracts: &Contracts, _now: DateTime<Utc>) -> Vec<Clock> {
    todo!("clock engine")
}
