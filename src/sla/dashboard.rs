//! What the managers' dashboard shows, gathered from the stored clocks with a handful of
//! indexed aggregate queries (so it stays fast however large the record): compliance per
//! contract for the chosen month against its target, the trend over the months before, the
//! month's breaches, and the open tickets at risk now. Rendering is the API's business.

use super::clock::Contracts;
use super::compute::elapsed_now;
use super::report::{breach_view, Breach, Period};
use crate::config::ReportingSettings;
use crate::store::sla::{self as db, Filter, MonthAgg, Scope};
use crate::store::StoreResult;
use chrono::{DateTime, Utc};
use diesel::PgConnection;
use std::collections::BTreeMap;

/// Months shown in the trend, the chosen one included.
pub const TREND_MONTHS: u32 = 6;

/// Met share of one metric of one contract in one month.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compliance {
    pub met: i64,
    pub breached: i64,
}

impl Compliance {
    /// Percentage of the decided clocks met; `None` when nothing is decided yet.
    pub fn percent(&self) -> Option<f64> {
        let decided = self.met + self.breached;
        (decided > 0).then(|| self.met as f64 * 100.0 / decided as f64)
    }
}

/// One contract's line on the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractLine {
    pub contract: String,
    pub supplier: Option<String>,
    pub target: f64,
    /// Tickets opened in the chosen month with a clock of this contract.
    pub tickets: i64,
    pub response: Compliance,
    pub resolution: Compliance,
    /// Resolution compliance per month of the trend, oldest first (`None`: nothing decided).
    pub trend: Vec<Option<f64>>,
}

/// An open ticket whose clock has used much of its target, or is past it.
#[derive(Debug, Clone, PartialEq)]
pub struct AtRisk {
    pub reference: String,
    pub contract: String,
    pub supplier: Option<String>,
    pub metric: String,
    pub priority: i16,
    pub state: String,
    pub used_percent: f64,
    pub elapsed_secs: i64,
    pub target_secs: i64,
    pub breach_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Overview {
    pub period: Period,
    /// Labels (`YYYY-MM`) of the trend months, oldest first.
    pub months: Vec<String>,
    pub lines: Vec<ContractLine>,
    pub breaches: Vec<Breach>,
    pub breaches_total: i64,
    /// The most urgent clocks at risk (at most [`LIST_LIMIT`]).
    pub at_risk: Vec<AtRisk>,
    /// How many tickets have a clock at risk (all of them, not only those listed).
    pub at_risk_tickets: usize,
    pub at_risk_percent: f64,
    pub pending_tickets: i64,
    pub generated_at: DateTime<Utc>,
}

/// Most breaches and at-risk tickets listed.
pub const LIST_LIMIT: usize = 25;
/// Live clocks examined for the at-risk list (soonest breach first).
const LIVE_SCAN: i64 = 5_000;

pub fn overview(conn: &mut PgConnection, contracts: &Contracts, reporting: &ReportingSettings, period: &Period, scope: &Scope, now: DateTime<Utc>) -> StoreResult<Overview> {
    db::snapshot(conn, |conn| {
        let trend: Vec<Period> = (0..TREND_MONTHS).rev().filter_map(|n| period.months_before(n).ok()).collect();
        let months: Vec<String> = trend.iter().map(|p| p.label.clone()).collect();
        let mut bounds: Vec<DateTime<Utc>> = trend.iter().map(|p| p.from).collect();
        bounds.push(period.to);
        let trend_filter = Filter { from: period.from, to: period.to, now, scope: scope.clone(), priority: None };
        let rows: Vec<MonthAgg> = db::monthly(conn, &trend_filter, &bounds)?;
        let chosen = months.len().saturating_sub(1);

        let mut lines: BTreeMap<String, ContractLine> = BTreeMap::new();
        for c in contracts.contracts.iter().filter(|c| match scope {
            Scope::All => true,
            Scope::EndToEnd => c.supplier.is_none(),
            Scope::Supplier(s) => c.supplier.as_deref() == Some(s),
        }) {
            lines.insert(c.id.clone(), line(&c.id, c.supplier.clone(), reporting, months.len()));
        }
        for r in &rows {
            let l = lines.entry(r.contract.clone()).or_insert_with(|| line(&r.contract, r.supplier.clone(), reporting, months.len()));
            let Ok(i) = usize::try_from(r.month) else { continue };
            if i == chosen {
                let c = Compliance { met: r.met, breached: r.breached };
                match r.metric.as_str() {
                    "response" => l.response = c,
                    _ => {
                        l.resolution = c;
                        l.tickets = r.tickets;
                    }
                }
            }
            if r.metric == "resolution" {
                if let Some(slot) = l.trend.get_mut(i) {
                    *slot = Compliance { met: r.met, breached: r.breached }.percent();
                }
            }
        }

        let month_filter = Filter { from: period.from, to: period.to, now, scope: scope.clone(), priority: None };
        let breach_rows = db::breaches(conn, &month_filter, LIST_LIMIT as i64)?;
        let breaches_total = lines.values().map(|l| l.response.breached + l.resolution.breached).sum();
        let breaches = breach_rows.iter().map(|row| breach_view(row, contracts, now)).collect();

        let mut at_risk: Vec<AtRisk> = db::live_clocks(conn, scope, LIVE_SCAN)?
            .into_iter()
            .filter_map(|row| {
                let elapsed = elapsed_now(&row, contracts, now);
                let used = if row.target_secs > 0 { elapsed as f64 * 100.0 / row.target_secs as f64 } else { 100.0 };
                (used >= reporting.at_risk_percent || row.breached).then_some(AtRisk {
                    reference: row.reference,
                    contract: row.contract,
                    supplier: row.supplier,
                    metric: row.metric,
                    priority: row.priority,
                    state: row.state,
                    used_percent: used,
                    elapsed_secs: elapsed,
                    target_secs: row.target_secs,
                    breach_at: row.breach_at,
                })
            })
            .collect();
        // Past target first, then the most used.
        at_risk.sort_by(|a, b| b.used_percent.total_cmp(&a.used_percent).then_with(|| a.reference.cmp(&b.reference)));
        let at_risk_tickets = at_risk.iter().map(|a| a.reference.as_str()).collect::<std::collections::HashSet<_>>().len();
        at_risk.truncate(LIST_LIMIT);

        Ok(Overview {
            period: period.clone(),
            months,
            lines: lines.into_values().collect(),
            breaches,
            breaches_total,
            at_risk,
            at_risk_tickets,
            at_risk_percent: reporting.at_risk_percent,
            pending_tickets: db::pending(conn)?,
            generated_at: now,
        })
    })
}

fn line(contract: &str, supplier: Option<String>, reporting: &ReportingSettings, months: usize) -> ContractLine {
    ContractLine {
        contract: contract.to_string(),
        supplier,
        target: reporting.target_for(contract),
        tickets: 0,
        response: Compliance::default(),
        resolution: Compliance::default(),
        trend: vec![None; months],
    }
}

/// How a ticket stands against its SLA clocks, as a queue shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// A clock still counting has used at least the reporting's at-risk share of its target.
    AtRisk,
    /// A clock is past its target.
    Breached,
}

/// The worst standing among a ticket's stored clocks (`None`: every clock is within bounds),
/// counting the time a live clock has run since it was stored.
pub fn standing(clocks: &[db::ClockRow], contracts: &Contracts, reporting: &ReportingSettings, now: DateTime<Utc>) -> Option<Standing> {
    clocks
        .iter()
        .filter_map(|row| {
            let live = row.stopped_at.is_none() && (row.state == "running" || row.state == "paused");
            let elapsed = if live { elapsed_now(row, contracts, now) } else { row.elapsed_secs };
            let used = if row.target_secs > 0 { elapsed as f64 * 100.0 / row.target_secs as f64 } else { 0.0 };
            if row.breached || (live && row.target_secs > 0 && elapsed > row.target_secs) {
                Some(Standing::Breached)
            } else {
                (live && used >= reporting.at_risk_percent).then_some(Standing::AtRisk)
            }
        })
        .max()
}
