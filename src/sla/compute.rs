//! The SLA state of one ticket as a pure function of its record row, its event log and the
//! contracts: its clocks (from the clock engine) under stable keys, the per-ticket facts reports
//! group by (hand-offs, holder, open), the thresholds a clock has crossed and when it will cross
//! the next one. The monitor stores what this computes; reports recomputed from the log use the
//! very same function, which is what makes the two agree.

use super::clock::Contracts;
use super::{Calendar, Clock, ClockState, Metric};
use crate::config::ContractDef;
use crate::domain::EventType;
use crate::store::models::{EventRow, IncidentRow};
use crate::store::sla::{ClockRow, TicketRow};
use chrono::{DateTime, Duration, Utc};

/// A clock with the key it is stored and alerted under.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedClock {
    /// [`Clock::key`] (which tells restarted clocks apart by their cycle); should the engine
    /// ever return two clocks under one key, the later get `#2`, `#3`..., in the engine's
    /// (log) order, so stored keys stay unique and stable.
    pub key: String,
    pub clock: Clock,
}

/// Everything the monitor stores for one ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub ticket: TicketRow,
    pub clocks: Vec<KeyedClock>,
}

/// Statuses after which the ticket takes no more work unless reopened.
fn is_open(status: &str) -> bool {
    !matches!(status, "resolved" | "closed" | "cancelled")
}

/// Hand-offs (routings to a different supplier after the first) and returns (hand-offs back to
/// a supplier that held the ticket before: ping-pong), from the `incident.routed` events.
pub fn handoffs(events: &[EventRow]) -> (i32, i32) {
    let mut held: Vec<&str> = Vec::new();
    let (mut handoffs, mut returns) = (0, 0);
    for e in events.iter().filter(|e| e.kind == EventType::Routed.as_str()) {
        let Some(to) = e.data.get("supplier").and_then(|s| s.as_str()) else { continue };
        match held.last() {
            None => held.push(to),
            Some(current) if *current == to => {}
            Some(_) => {
                handoffs += 1;
                if held.contains(&to) {
                    returns += 1;
                }
                held.push(to);
            }
        }
    }
    (handoffs, returns)
}

/// Computes the SLA state of one ticket as of `now`. With no contracts there are no clocks
/// (and the engine is not called).
pub fn compute(row: &IncidentRow, events: &[EventRow], contracts: &Contracts, now: DateTime<Utc>) -> Computed {
    let (handoffs, returns) = handoffs(events);
    let ticket = TicketRow {
        incident_id: row.id,
        reference: row.reference.clone(),
        opened_at: row.opened_at,
        priority: row.priority,
        open: is_open(&row.status),
        holder: row.assigned_supplier.clone(),
        handoffs,
        returns,
        computed_at: now,
    };
    let clocks = if contracts.contracts.is_empty() { Vec::new() } else { keyed(super::clocks(&row.reference, &super::ticket_events(events), contracts, now)) };
    Computed { ticket, clocks }
}

/// Gives each clock its stored key.
pub fn keyed(clocks: Vec<Clock>) -> Vec<KeyedClock> {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    clocks
        .into_iter()
        .map(|clock| {
            let base = clock.key();
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            let key = if *n == 1 { base } else { format!("{base}#{n}") };
            KeyedClock { key, clock }
        })
        .collect()
}

pub fn contract<'a>(contracts: &'a Contracts, id: &str) -> Option<&'a ContractDef> {
    contracts.contracts.iter().find(|c| c.id == id)
}

/// The calendar a clock of `contract_id` at `priority` counts business time on.
pub fn calendar_of<'a>(contracts: &'a Contracts, contract_id: &str, priority: i16) -> Option<&'a Calendar> {
    contracts.calendar_for(contract(contracts, contract_id)?, u8::try_from(priority).ok()?)
}

/// Warning thresholds of a contract (percent of the target, ascending, each once), without the
/// breach.
pub fn warn_thresholds(def: Option<&ContractDef>) -> Vec<i16> {
    let mut t: Vec<i16> = def.map(|d| d.warn_at.iter().map(|p| i16::from(*p)).filter(|p| (1..100).contains(p)).collect()).unwrap_or_default();
    t.sort_unstable();
    t.dedup();
    t
}

/// The threshold that stands for the breach in `sla_alerts`.
pub const BREACH: i16 = 100;

/// Whether `elapsed` business seconds reach `threshold` percent of `target`.
pub fn reached(elapsed: i64, target: i64, threshold: i16) -> bool {
    target <= 0 || i128::from(elapsed) * 100 >= i128::from(target) * i128::from(threshold)
}

/// A clock counting time now: not stopped and running (the engine reports a clock's motion
/// until it stops, even past its target).
pub fn advancing(stopped_at: Option<DateTime<Utc>>, state: &str) -> bool {
    stopped_at.is_none() && state == "running"
}

pub fn state_name(s: ClockState) -> &'static str {
    match s {
        ClockState::Running => "running",
        ClockState::Paused => "paused",
        ClockState::Idle => "idle",
        ClockState::Met => "met",
        ClockState::Breached => "breached",
    }
}

pub fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Response => "response",
        Metric::Resolution => "resolution",
    }
}

/// When a counting clock next crosses a warning threshold or its target, if nothing pauses
/// it; `None` when no crossing is ahead (stopped, paused, idle, or past its target already).
pub fn next_alert_at(c: &Clock, contracts: &Contracts, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if c.breached || !advancing(c.stopped_at, state_name(c.state)) {
        return None;
    }
    let def = contract(contracts, &c.contract);
    let next = warn_thresholds(def).into_iter().find(|t| !reached(c.elapsed_secs, c.target_secs, *t));
    let at = match next {
        None => c.breach_at?,
        Some(t) => {
            let needed = (i128::from(c.target_secs) * i128::from(t)).div_euclid(100) as i64;
            let needed = if i128::from(needed) * 100 < i128::from(c.target_secs) * i128::from(t) { needed + 1 } else { needed };
            let remaining = (needed - c.elapsed_secs).max(1);
            match calendar_of(contracts, &c.contract, i16::from(c.priority)) {
                Some(cal) => cal.add_business_secs(now, remaining),
                // Business time never runs faster than the wall clock: a safe earliest time.
                None => now + Duration::seconds(remaining),
            }
        }
    };
    // Never in the past, so a clock due now is not revisited in a loop within one round.
    Some(at.max(now + Duration::seconds(1)))
}

/// Business seconds a stored clock has used by `now`: the stored figure, plus the time since
/// it was computed while it was counting (no event since, or it would have been recomputed).
pub fn elapsed_now(row: &ClockRow, contracts: &Contracts, now: DateTime<Utc>) -> i64 {
    if !advancing(row.stopped_at, &row.state) || now <= row.computed_at {
        return row.elapsed_secs;
    }
    let more = match calendar_of(contracts, &row.contract, row.priority) {
        Some(cal) => cal.business_secs(row.computed_at, now),
        None => 0,
    };
    row.elapsed_secs + more
}

/// The stored row of a clock.
pub fn clock_row(ticket: &TicketRow, k: &KeyedClock, contracts: &Contracts, now: DateTime<Utc>) -> ClockRow {
    let c = &k.clock;
    ClockRow {
        incident_id: ticket.incident_id,
        clock_key: k.key.clone(),
        reference: ticket.reference.clone(),
        opened_at: ticket.opened_at,
        contract: c.contract.clone(),
        supplier: c.supplier.clone(),
        metric: metric_name(c.metric).into(),
        cycle: i32::try_from(c.cycle).unwrap_or(i32::MAX),
        priority: i16::from(c.priority),
        target_secs: c.target_secs,
        elapsed_secs: c.elapsed_secs,
        state: state_name(c.state).into(),
        started_at: c.started_at,
        stopped_at: c.stopped_at,
        breach_at: c.breach_at,
        breached: c.breached,
        pauses: serde_json::to_value(&c.pauses).unwrap_or_default(),
        holdings: serde_json::to_value(&c.holdings).unwrap_or_default(),
        next_alert_at: next_alert_at(c, contracts, now),
        computed_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn routed(id: i64, supplier: &str) -> EventRow {
        EventRow {
            id,
            event_id: uuid::Uuid::new_v4(),
            incident_id: 1,
            kind: "incident.routed".into(),
            source: "hub".into(),
            data: json!({ "supplier": supplier }),
            occurred_at: Utc::now(),
            correlation_id: None,
        }
    }

    #[test]
    fn hand_offs_count_changes_of_supplier_and_returns_count_ping_pong() {
        assert_eq!(handoffs(&[routed(1, "a")]), (0, 0));
        assert_eq!(handoffs(&[routed(1, "a"), routed(2, "a")]), (0, 0), "a re-route to the holder is no hand-off");
        assert_eq!(handoffs(&[routed(1, "a"), routed(2, "b"), routed(3, "c")]), (2, 0));
        assert_eq!(handoffs(&[routed(1, "a"), routed(2, "b"), routed(3, "a"), routed(4, "b")]), (3, 2));
    }

    #[test]
    fn thresholds_are_reached_in_whole_seconds() {
        assert!(!reached(44, 60, 75));
        assert!(reached(45, 60, 75));
        assert!(reached(60, 60, BREACH));
        assert!(!reached(59, 60, BREACH));
        assert!(reached(0, 0, 75), "a zero target is used up at once");
    }

    #[test]
    fn duplicate_clock_keys_get_a_sequence_number() {
        let clock = |metric| Clock {
            incident_ref: "INC-000001".into(),
            contract: "E2E".into(),
            supplier: None,
            metric,
            cycle: 0,
            priority: 2,
            target_secs: 60,
            elapsed_secs: 0,
            state: ClockState::Running,
            started_at: Utc::now(),
            stopped_at: None,
            breach_at: None,
            breached: false,
            pauses: vec![],
            holdings: vec![],
            runs: vec![],
        };
        let keys: Vec<String> = keyed(vec![clock(Metric::Response), clock(Metric::Resolution), clock(Metric::Resolution)]).into_iter().map(|k| k.key).collect();
        assert_eq!(keys, ["e2e:-:response", "e2e:-:resolution", "e2e:-:resolution#2"]);
    }
}
