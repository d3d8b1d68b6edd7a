//! SLA compliance: business calendars, contract clocks derived from the event log, live
//! warnings, reports and the managers' dashboard.
//!
//! Every clock is a pure function of a ticket's events and its contract ([`clocks`]), so any
//! figure can be recomputed and audited later from the same log.

pub mod calendar;
pub mod clock;
pub mod compute;
pub mod dashboard;
pub mod monitor;
pub mod report;
pub mod ticket;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use calendar::Calendar;
pub use clock::{clocks, ticket_events, timeline, Contracts, SlaEvent, TicketEvent};

/// Which promise a clock measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Until the supplier (or, end to end, anyone working the ticket) acknowledges it.
    Response,
    /// Until the ticket is resolved.
    Resolution,
}

/// What a clock is doing as of `now`. A clock that has not stopped reports its motion
/// (`Running`, `Paused`, `Idle`) even when it is already past its target: the verdict so far is
/// [`Clock::breached`]. A stopped clock reports its verdict (`Met` or `Breached`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    Running,
    Paused,
    /// The supplier does not hold the ticket now (a supplier clock between its holding periods).
    Idle,
    Met,
    Breached,
}

/// A pause of a clock, with its reason and the event that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pause {
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
    /// The hold reason, e.g. `awaiting_caller`.
    pub reason: String,
    /// Id of the event that started the pause.
    pub source_event: uuid::Uuid,
}

/// A period in which a supplier held the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holding {
    pub supplier: String,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

/// A period in which a clock counted time (business time within it is what `elapsed_secs` sums).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub from: DateTime<Utc>,
    /// `None` while the clock is still running at `now`.
    pub to: Option<DateTime<Utc>>,
}

/// One clock of one ticket under one contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clock {
    pub incident_ref: String,
    pub contract: String,
    /// The supplier of a supplier contract; `None` end to end.
    pub supplier: Option<String>,
    pub metric: Metric,
    /// 0 for the ticket's first clock of this metric; `n` for the resolution clock a `restart`
    /// contract starts at the ticket's `n`-th reopen (see [`Clock::key`]).
    pub cycle: u32,
    /// The priority whose target applies.
    pub priority: u8,
    /// Target in business seconds.
    pub target_secs: i64,
    /// Business seconds used so far (up to `now`, or until the clock stopped).
    pub elapsed_secs: i64,
    pub state: ClockState,
    pub started_at: DateTime<Utc>,
    /// When the clock stopped (response given, resolved); `None` while it runs.
    pub stopped_at: Option<DateTime<Utc>>,
    /// When the target was (or, if nothing pauses it, will be) exceeded.
    pub breach_at: Option<DateTime<Utc>>,
    pub breached: bool,
    pub pauses: Vec<Pause>,
    /// Supplier clocks: when that supplier held the ticket. End-to-end clocks: every holder.
    /// Holdings that ended before the clock started, and instant-long ones, are left out.
    pub holdings: Vec<Holding>,
    /// When the clock counted time, in order; together with the calendar they give `elapsed_secs`.
    pub runs: Vec<Run>,
}

impl Clock {
    /// Percentage of the target used, for warnings and "at risk" lists.
    pub fn used_percent(&self) -> f64 {
        if self.target_secs <= 0 {
            return 100.0;
        }
        self.elapsed_secs as f64 * 100.0 / self.target_secs as f64
    }

    /// A stable key of this clock within its ticket (for once-only warnings):
    /// `contract:supplier:metric` (`-` for no supplier), with `:<cycle>` appended for the
    /// resolution clock a `restart` contract starts at the ticket's n-th reopen, e.g.
    /// `e2e:-:resolution` then `e2e:-:resolution:1`.
    pub fn key(&self) -> String {
        let base = format!("{}:{}:{:?}", self.contract, self.supplier.as_deref().unwrap_or("-"), self.metric);
        let key = if self.cycle == 0 { base } else { format!("{base}:{}", self.cycle) };
        key.to_lowercase()
    }
}
