//! The SLA monitor: a worker in every hub process that keeps the stored clocks equal to what
//! the clock engine computes from the event log, and announces each warning threshold and each
//! breach of each clock on the bus exactly once.
//!
//! A round takes the tickets whose log changed (`sla_dirty`, marked by a trigger in the
//! event's own transaction) and those with a clock due to cross a threshold
//! (`sla_clocks.next_alert_at`), a batch per transaction. In that transaction it locks each
//! ticket against the other hubs, recomputes its clocks, replaces the stored ones and, for each
//! threshold newly crossed, inserts the `sla_alerts` row and (only if that insert took) appends
//! the `sla.warning` / `sla.breached` event with its outbox row. A crash before the commit
//! leaves nothing behind; a second hub finds the alert row and stays silent; a restart finds
//! the same rows. Hence once, and once only.

use super::clock::Contracts;
use super::compute::{self, KeyedClock, BREACH};
use crate::config::SlaMonitorSettings;
use crate::domain::{time, EventType, NewEvent};
use crate::store::models::{EventRow, IncidentRow};
use crate::store::record::{self, Context};
use crate::store::sla as db;
use crate::store::{Store, StoreResult};
use chrono::{DateTime, Duration, Utc};
use diesel::{Connection, PgConnection};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Tickets recomputed.
    pub computed: usize,
    /// Warnings and breaches announced.
    pub alerts: usize,
    /// Whether a full batch was claimed (more may be waiting).
    pub full: bool,
}

/// Recomputes one batch of dirty or due tickets as of `now` and announces what they crossed,
/// in one transaction.
pub fn refresh_batch(conn: &mut PgConnection, contracts: &Contracts, cfg: &SlaMonitorSettings, now: DateTime<Utc>) -> StoreResult<Batch> {
    conn.transaction(|conn| {
        let marks = db::claim_dirty(conn, cfg.batch)?;
        let due = db::due(conn, now, cfg.batch)?;
        let full = marks.len() as i64 >= cfg.batch || due.len() as i64 >= cfg.batch;
        let mut ids = db::lock_for_compute(conn, &due)?;
        ids.extend(marks.iter().map(|(id, _)| *id));
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Batch::default());
        }
        // The marks were read before the logs: an event committed from here on has re-marked
        // its ticket with a new seq, which `clear_dirty` then leaves in place.
        let rows = db::incidents(conn, &ids)?;
        let mut logs: HashMap<i64, Vec<EventRow>> = HashMap::new();
        for e in db::events(conn, &ids)? {
            logs.entry(e.incident_id).or_default().push(e);
        }
        let computed: Vec<(IncidentRow, compute::Computed)> = rows
            .into_iter()
            .map(|row| {
                let c = compute::compute(&row, logs.get(&row.id).map(Vec::as_slice).unwrap_or(&[]), contracts, now);
                (row, c)
            })
            .collect();
        let tickets: Vec<_> = computed.iter().map(|(_, c)| c.ticket.clone()).collect();
        let clocks: Vec<_> = computed.iter().flat_map(|(_, c)| c.clocks.iter().map(|k| compute::clock_row(&c.ticket, k, contracts, now))).collect();
        db::replace(conn, &ids, &tickets, &clocks)?;
        let mut alerts = 0;
        for (row, c) in &computed {
            let correlation = logs.get(&row.id).and_then(|l| l.last()).and_then(|e| e.correlation_id.clone());
            for k in &c.clocks {
                alerts += announce(conn, contracts, cfg, row, correlation.as_deref(), k, now)?;
            }
        }
        db::clear_dirty(conn, &marks)?;
        Ok(Batch { computed: ids.len(), alerts, full })
    })
}

/// The thresholds of one clock that must be announced now: every warning it has reached while
/// still counting, or (once breached) the breach alone, unless that breach is older than the
/// announcement window. A warning is not sent after the breach it warned of.
pub fn thresholds_to_announce(k: &KeyedClock, contracts: &Contracts, cfg: &SlaMonitorSettings, now: DateTime<Utc>) -> Vec<i16> {
    let c = &k.clock;
    if c.breached {
        let at = c.breach_at.or(c.stopped_at).unwrap_or(now);
        return if now - at <= Duration::seconds(cfg.announce_within_secs) { vec![BREACH] } else { vec![] };
    }
    if c.stopped_at.is_some() {
        return vec![];
    }
    compute::warn_thresholds(compute::contract(contracts, &c.contract)).into_iter().filter(|t| compute::reached(c.elapsed_secs, c.target_secs, *t)).collect()
}

fn announce(
    conn: &mut PgConnection,
    contracts: &Contracts,
    cfg: &SlaMonitorSettings,
    row: &IncidentRow,
    correlation: Option<&str>,
    k: &KeyedClock,
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let mut n = 0;
    for threshold in thresholds_to_announce(k, contracts, cfg, now) {
        let id = uuid::Uuid::now_v7();
        if !db::claim_alert(conn, row.id, &k.key, threshold, id)? {
            continue;
        }
        let c = &k.clock;
        let kind = if threshold == BREACH { EventType::SlaBreached } else { EventType::SlaWarning };
        let data = json!({
            "ref": row.reference,
            "contract": c.contract,
            "supplier": c.supplier,
            "metric": compute::metric_name(c.metric),
            "priority": c.priority,
            "clock": k.key,
            "threshold": threshold,
            "used_percent": (c.used_percent() * 10.0).round() / 10.0,
            "target_secs": c.target_secs,
            "elapsed_secs": c.elapsed_secs,
            "breach_at": c.breach_at.map(|t| time::rfc3339(&t)),
        });
        let ctx = Context::hub(correlation.map(str::to_string).unwrap_or_else(|| uuid::Uuid::now_v7().to_string()));
        record::append_event(conn, &ctx, row, id, NewEvent::new(kind, "hub", data))?;
        tracing::info!(reference = %row.reference, clock = %k.key, threshold, "SLA {}", kind.as_str());
        n += 1;
    }
    Ok(n)
}

/// The monitor of one hub process.
#[derive(Clone)]
pub struct Monitor {
    pub store: Store,
    pub contracts: Arc<Contracts>,
    pub settings: SlaMonitorSettings,
    /// Wakes the outbox relay when alerts were queued.
    pub outbox_signal: Arc<Notify>,
}

impl Monitor {
    /// Works through every dirty and due ticket (a batch per transaction), until none is left
    /// or `shutdown` turns true. Returns tickets computed and alerts raised.
    pub async fn round(&self, shutdown: Option<&watch::Receiver<bool>>) -> StoreResult<(usize, usize)> {
        let (mut computed, mut alerts) = (0, 0);
        loop {
            let (contracts, cfg) = (self.contracts.clone(), self.settings.clone());
            let batch = self.store.run(move |c| refresh_batch(c, &contracts, &cfg, Utc::now())).await?;
            computed += batch.computed;
            alerts += batch.alerts;
            if batch.alerts > 0 {
                self.outbox_signal.notify_one();
            }
            if !batch.full || shutdown.is_some_and(|s| *s.borrow()) {
                return Ok((computed, alerts));
            }
        }
    }

    /// Runs rounds every `interval_secs` until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let interval = std::time::Duration::from_secs(self.settings.interval_secs);
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.round(Some(&shutdown)).await {
                Ok((computed, alerts)) if computed > 0 => tracing::debug!(computed, alerts, "SLA monitor round"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "SLA monitor round failed; retrying next round"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
