//! One ticket's SLA picture, computed live from its event log as of now: its clocks with their
//! pauses (and reasons) and holdings (who held it when), beside the log itself. Serves the API's
//! `GET /api/v1/incidents/{ref}/sla` and the dashboard's timeline page.

use super::clock::Contracts;
use super::compute::{self, KeyedClock};
use super::{Clock, Holding, Pause};
use crate::domain::{time, Incident};
use crate::store::models::EventRow;
use crate::store::{record, StoreResult};
use chrono::{DateTime, Utc};
use diesel::PgConnection;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct PauseView {
    #[serde(with = "time::serde_ms")]
    pub from: DateTime<Utc>,
    #[serde(with = "time::serde_ms::option")]
    pub to: Option<DateTime<Utc>>,
    pub reason: String,
    pub source_event: uuid::Uuid,
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldingView {
    pub supplier: String,
    #[serde(with = "time::serde_ms")]
    pub from: DateTime<Utc>,
    #[serde(with = "time::serde_ms::option")]
    pub to: Option<DateTime<Utc>>,
}

/// A clock as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClockView {
    pub key: String,
    pub contract: String,
    pub supplier: Option<String>,
    pub metric: &'static str,
    pub priority: u8,
    pub target_secs: i64,
    pub elapsed_secs: i64,
    pub used_percent: f64,
    pub state: &'static str,
    pub breached: bool,
    #[serde(with = "time::serde_ms")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "time::serde_ms::option")]
    pub stopped_at: Option<DateTime<Utc>>,
    #[serde(with = "time::serde_ms::option")]
    pub breach_at: Option<DateTime<Utc>>,
    pub pauses: Vec<PauseView>,
    pub holdings: Vec<HoldingView>,
}

impl ClockView {
    pub fn of(k: &KeyedClock) -> ClockView {
        let c: &Clock = &k.clock;
        ClockView {
            key: k.key.clone(),
            contract: c.contract.clone(),
            supplier: c.supplier.clone(),
            metric: compute::metric_name(c.metric),
            priority: c.priority,
            target_secs: c.target_secs,
            elapsed_secs: c.elapsed_secs,
            used_percent: (c.used_percent() * 10.0).round() / 10.0,
            state: compute::state_name(c.state),
            breached: c.breached,
            started_at: c.started_at,
            stopped_at: c.stopped_at,
            breach_at: c.breach_at,
            pauses: c.pauses.iter().map(|p: &Pause| PauseView { from: p.from, to: p.to, reason: p.reason.clone(), source_event: p.source_event }).collect(),
            holdings: c.holdings.iter().map(|h: &Holding| HoldingView { supplier: h.supplier.clone(), from: h.from, to: h.to }).collect(),
        }
    }
}

/// A ticket, its log and its clocks as of `now`.
#[derive(Debug, Clone)]
pub struct TicketSla {
    pub incident: Incident,
    pub events: Vec<EventRow>,
    pub clocks: Vec<KeyedClock>,
    pub now: DateTime<Utc>,
}

impl TicketSla {
    /// Keeps only what a supplier may see: its own clocks.
    pub fn only_supplier(mut self, supplier: &str) -> TicketSla {
        self.clocks.retain(|k| k.clock.supplier.as_deref() == Some(supplier));
        self
    }

    /// The ticket as `supplier` may see it (see [`crate::domain::access`]): only its own
    /// clocks, no other supplier's leg details; `None` when the ticket is not the supplier's.
    pub fn seen_by_supplier(self, supplier: &str) -> Option<TicketSla> {
        if self.incident.supplier_access(supplier) == crate::domain::SupplierAccess::None {
            return None;
        }
        let mut t = self.only_supplier(supplier);
        t.incident = t.incident.seen_by_supplier(supplier);
        for e in &mut t.events {
            e.data = crate::domain::access::event_data_seen_by_supplier(&e.kind, &e.data, supplier);
        }
        Some(t)
    }

    pub fn views(&self) -> Vec<ClockView> {
        self.clocks.iter().map(ClockView::of).collect()
    }
}

pub fn load(conn: &mut PgConnection, contracts: &Contracts, reference: &str, now: DateTime<Utc>) -> StoreResult<TicketSla> {
    let row = record::find_row(conn, reference)?;
    let incident = record::document(conn, &row)?;
    let events = record::history(conn, reference)?;
    let clocks = compute::compute(&row, &events, contracts, now).clocks;
    Ok(TicketSla { incident, events, clocks, now })
}
