//! SLA reports for managers: per supplier (or end to end) and period, per priority: tickets,
//! met and breached response and resolution clocks, mean and 90th-percentile business time to
//! respond and to resolve, hand-offs between suppliers, the open backlog by age, and the
//! breaches with their timelines; as JSON or CSV.
//!
//! **Which tickets**: those *opened* in the period (in the reporting time zone). A supplier's
//! report covers its own contracts' clocks, so the tickets it held at some time; the end-to-end
//! report covers the customer contracts. A clock counts as *met* once stopped within its target,
//! *breached* once past it (stopped or still counting), and as neither while it still counts
//! within its target; percentages are of the decided clocks (met + breached). Times are business
//! seconds over stopped clocks; the 90th percentile is nearest-rank. The backlog is the report's
//! tickets still open now (held by the supplier, for a supplier report), by age since opening.
//!
//! [`build`] aggregates the stored clocks in SQL (fast over any volume); [`recompute`] derives
//! the same report straight from the event log through the clock engine, for audits, and must
//! always agree with it.

use super::clock::Contracts;
use super::compute::{self, elapsed_now};
use crate::config::{ContractKind, ReportingSettings};
use crate::domain::time;
use crate::store::sla::{self as db, ClockRow, Filter, MetricAgg, Scope, TicketAgg, TicketRow, BACKLOG_BOUNDS_SECS};
use crate::store::StoreResult;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use diesel::PgConnection;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A reporting period: `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    #[serde(with = "time::serde_ms")]
    pub from: DateTime<Utc>,
    #[serde(with = "time::serde_ms")]
    pub to: DateTime<Utc>,
    /// `2026-11`, or `2026-11-03..2026-11-09` (dates inclusive) for a custom range.
    pub label: String,
    pub time_zone: String,
}

/// Midnight at the start of `date` in `tz` (the first instant of the day, across DST gaps).
pub fn day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    (0..4)
        .find_map(|h| tz.from_local_datetime(&(midnight + chrono::Duration::hours(h))).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

fn parse_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| format!("`{name}` is not an IANA time zone"))
}

impl Period {
    /// A calendar month, `YYYY-MM`.
    pub fn month(text: &str, time_zone: &str) -> Result<Period, String> {
        let tz = parse_tz(time_zone)?;
        let first = NaiveDate::parse_from_str(&format!("{}-01", text.trim()), "%Y-%m-%d")
            .ok()
            .filter(|_| text.trim().len() == 7)
            .ok_or_else(|| format!("month `{text}` is not of the form 2026-11"))?;
        let next = first.checked_add_months(chrono::Months::new(1)).ok_or_else(|| format!("month `{text}` is out of range"))?;
        Ok(Period { from: day_start(tz, first), to: day_start(tz, next), label: first.format("%Y-%m").to_string(), time_zone: time_zone.into() })
    }

    /// The month containing `now`.
    pub fn current_month(now: DateTime<Utc>, time_zone: &str) -> Result<Period, String> {
        let tz = parse_tz(time_zone)?;
        let local = now.with_timezone(&tz);
        Self::month(&format!("{:04}-{:02}", local.year(), local.month()), time_zone)
    }

    /// The month `n` months before this period's first month.
    pub fn months_before(&self, n: u32) -> Result<Period, String> {
        let tz = parse_tz(&self.time_zone)?;
        let first = self.from.with_timezone(&tz).date_naive().with_day(1).unwrap_or_default();
        let earlier = first.checked_sub_months(chrono::Months::new(n)).ok_or("month out of range")?;
        Self::month(&earlier.format("%Y-%m").to_string(), &self.time_zone)
    }

    /// A custom range: each end a date (`2026-11-03`; `to` inclusive) or an RFC 3339 instant
    /// (`to` exclusive).
    pub fn range(from: &str, to: &str, time_zone: &str) -> Result<Period, String> {
        let tz = parse_tz(time_zone)?;
        let end = |s: &str, inclusive_day: bool| -> Result<DateTime<Utc>, String> {
            if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
                let d = if inclusive_day { d.succ_opt().ok_or_else(|| format!("date `{s}` is out of range"))? } else { d };
                return Ok(day_start(tz, d));
            }
            DateTime::parse_from_rfc3339(s.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| format!("`{s}` is neither a date (2026-11-03) nor an RFC 3339 time (2026-11-03T09:00:00Z)"))
        };
        let (f, t) = (end(from, false)?, end(to, true)?);
        if f >= t {
            return Err(format!("the period is empty: from {from} is not before to {to}"));
        }
        Ok(Period { from: f, to: t, label: format!("{}..{}", from.trim(), to.trim()), time_zone: time_zone.into() })
    }

    /// The period a request names: a month, a from/to range, or (neither) the current month.
    pub fn parse(month: Option<&str>, from: Option<&str>, to: Option<&str>, time_zone: &str, now: DateTime<Utc>) -> Result<Period, String> {
        match (month, from, to) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err("give either month or from and to, not both".into()),
            (Some(m), None, None) => Self::month(m, time_zone),
            (None, Some(f), Some(t)) => Self::range(f, t, time_zone),
            (None, Some(_), None) | (None, None, Some(_)) => Err("a custom period needs both from and to".into()),
            (None, None, None) => Self::current_month(now, time_zone),
        }
    }
}

/// What a report covers.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    /// A supplier's contracts; `None`: the end-to-end contracts.
    pub supplier: Option<String>,
    pub period: Period,
    pub priority: Option<u8>,
    /// Most breaches listed (all are counted).
    pub breach_limit: i64,
}

impl ReportQuery {
    fn scope(&self) -> Scope {
        match &self.supplier {
            Some(s) => Scope::Supplier(s.clone()),
            None => Scope::EndToEnd,
        }
    }

    fn filter(&self, now: DateTime<Utc>) -> Filter {
        Filter { from: self.period.from, to: self.period.to, now, scope: self.scope(), priority: self.priority.map(i16::from) }
    }
}

/// Figures of one metric (response or resolution).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct MetricFigures {
    pub clocks: i64,
    pub met: i64,
    pub breached: i64,
    /// Still counting within target.
    pub pending: i64,
    /// Of the decided clocks (met + breached), to one decimal.
    pub met_percent: Option<f64>,
    pub breached_percent: Option<f64>,
    /// Business seconds over stopped clocks, to one decimal.
    pub mean_secs: Option<f64>,
    pub p90_secs: Option<i64>,
    /// Whether `met_percent` reaches the contract's compliance target.
    pub meets_target: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Reassignments {
    /// Hand-offs to another supplier, over all the tickets.
    pub handoffs: i64,
    pub tickets_handed_off: i64,
    /// Tickets handed back to a supplier that held them before.
    pub ping_pong_tickets: i64,
    pub max_handoffs: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgeBucket {
    pub label: &'static str,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Backlog {
    pub open: i64,
    pub by_age: Vec<AgeBucket>,
}

/// One line of a contract's table: a priority, or (`priority` null) all of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriorityRow {
    pub priority: Option<u8>,
    pub tickets: i64,
    pub response: MetricFigures,
    pub resolution: MetricFigures,
    pub reassignments: Reassignments,
    pub backlog: Backlog,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContractReport {
    pub contract: String,
    /// `supplier` or `end_to_end`.
    pub kind: &'static str,
    pub supplier: Option<String>,
    /// Percentage of clocks the contract expects met.
    pub compliance_target: f64,
    /// One row per priority with tickets, then the row of all priorities.
    pub rows: Vec<PriorityRow>,
}

/// A breached clock, with what explains it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    #[serde(rename = "ref")]
    pub reference: String,
    pub clock: String,
    pub contract: String,
    pub supplier: Option<String>,
    pub metric: String,
    pub priority: i16,
    pub target_secs: i64,
    /// Business seconds used by now (or when the clock stopped).
    pub elapsed_secs: i64,
    pub state: String,
    #[serde(with = "time::serde_ms")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "time::serde_ms::option")]
    pub breach_at: Option<DateTime<Utc>>,
    #[serde(with = "time::serde_ms::option")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// Pauses with their reasons and source events.
    pub pauses: serde_json::Value,
    /// Who held the ticket when (supplier clocks).
    pub holdings: serde_json::Value,
    /// The ticket's timeline page on the dashboard.
    pub timeline: String,
    /// The ticket's clocks in the API.
    pub clocks_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `supplier` or `end_to_end`.
    pub scope: &'static str,
    pub supplier: Option<String>,
    pub period: Period,
    pub priority: Option<u8>,
    /// Which tickets the figures cover.
    pub tickets_in_period: &'static str,
    #[serde(with = "time::serde_ms")]
    pub generated_at: DateTime<Utc>,
    /// `stored` (aggregated from the clocks the monitor keeps) or `recomputed` (from the log).
    pub source: &'static str,
    /// Tickets whose log changed since their clocks were stored (0 when recomputed).
    pub pending_tickets: i64,
    pub contracts: Vec<ContractReport>,
    pub breaches_total: i64,
    pub breaches: Vec<Breach>,
}

pub const TICKETS_IN_PERIOD: &str = "tickets opened in the period";

const BUCKET_LABELS: [&str; 6] = ["under 4 hours", "4 to 24 hours", "1 to 3 days", "3 to 7 days", "7 to 30 days", "over 30 days"];

fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

fn figures(agg: Option<&MetricAgg>, target: f64) -> MetricFigures {
    let Some(a) = agg else { return MetricFigures::default() };
    let decided = a.met + a.breached;
    let met_percent = percent(a.met, decided);
    MetricFigures {
        clocks: a.clocks,
        met: a.met,
        breached: a.breached,
        pending: a.clocks - decided,
        met_percent,
        breached_percent: percent(a.breached, decided),
        mean_secs: a.mean_secs.map(|m| (m * 10.0).round() / 10.0),
        p90_secs: a.p90_secs,
        meets_target: met_percent.map(|p| p >= target),
    }
}

/// A stored breached clock as reports and the dashboard list it.
pub fn breach_view(row: &ClockRow, contracts: &Contracts, now: DateTime<Utc>) -> Breach {
    Breach {
        reference: row.reference.clone(),
        clock: row.clock_key.clone(),
        contract: row.contract.clone(),
        supplier: row.supplier.clone(),
        metric: row.metric.clone(),
        priority: row.priority,
        target_secs: row.target_secs,
        elapsed_secs: elapsed_now(row, contracts, now),
        state: row.state.clone(),
        started_at: row.started_at,
        breach_at: row.breach_at,
        stopped_at: row.stopped_at,
        pauses: row.pauses.clone(),
        holdings: row.holdings.clone(),
        timeline: format!("/dashboard/incidents/{}", row.reference),
        clocks_url: format!("/api/v1/incidents/{}/sla", row.reference),
    }
}

/// Puts the aggregates together: a table per contract of the scope (configured ones even
/// without tickets), rows per priority then all.
#[allow(clippy::too_many_arguments)]
fn assemble(
    q: &ReportQuery,
    contracts: &Contracts,
    reporting: &ReportingSettings,
    metrics: Vec<MetricAgg>,
    tickets: Vec<TicketAgg>,
    breaches: Vec<ClockRow>,
    breaches_total: i64,
    pending: i64,
    source: &'static str,
    now: DateTime<Utc>,
) -> Report {
    let mut ids: BTreeSet<String> = contracts
        .contracts
        .iter()
        .filter(|c| match &q.supplier {
            Some(s) => c.kind == ContractKind::Supplier && c.supplier.as_deref() == Some(s),
            None => c.kind == ContractKind::EndToEnd,
        })
        .map(|c| c.id.clone())
        .collect();
    ids.extend(metrics.iter().map(|m| m.contract.clone()));
    ids.extend(tickets.iter().map(|t| t.contract.clone()));
    let mut out = Vec::new();
    for id in ids {
        let def = compute::contract(contracts, &id);
        let target = reporting.target_for(&id);
        let mut priorities: BTreeSet<i16> = metrics.iter().filter(|m| m.contract == id).filter_map(|m| m.priority).collect();
        priorities.extend(tickets.iter().filter(|t| t.contract == id).filter_map(|t| t.priority));
        let mut rows = Vec::new();
        for p in priorities.into_iter().map(Some).chain([None]) {
            let metric = |name: &str| metrics.iter().find(|m| m.contract == id && m.priority == p && m.metric == name);
            let t = tickets.iter().find(|t| t.contract == id && t.priority == p);
            rows.push(PriorityRow {
                priority: p.and_then(|p| u8::try_from(p).ok()),
                tickets: t.map_or(0, |t| t.tickets),
                response: figures(metric("response"), target),
                resolution: figures(metric("resolution"), target),
                reassignments: t
                    .map(|t| Reassignments { handoffs: t.handoffs, tickets_handed_off: t.handed_off, ping_pong_tickets: t.ping_pong, max_handoffs: t.max_handoffs })
                    .unwrap_or_default(),
                backlog: Backlog {
                    open: t.map_or(0, |t| t.backlog.iter().sum()),
                    by_age: BUCKET_LABELS.iter().enumerate().map(|(i, label)| AgeBucket { label, count: t.and_then(|t| t.backlog.get(i).copied()).unwrap_or(0) }).collect(),
                },
            });
        }
        let supplier = def.and_then(|d| d.supplier.clone()).or_else(|| q.supplier.clone());
        let kind = match def.map(|d| d.kind) {
            Some(ContractKind::EndToEnd) => "end_to_end",
            Some(ContractKind::Supplier) => "supplier",
            None if q.supplier.is_some() => "supplier",
            None => "end_to_end",
        };
        out.push(ContractReport { contract: id, kind, supplier, compliance_target: target, rows });
    }
    Report {
        scope: if q.supplier.is_some() { "supplier" } else { "end_to_end" },
        supplier: q.supplier.clone(),
        period: q.period.clone(),
        priority: q.priority,
        tickets_in_period: TICKETS_IN_PERIOD,
        generated_at: now,
        source,
        pending_tickets: pending,
        contracts: out,
        breaches_total,
        breaches: breaches.iter().map(|b| breach_view(b, contracts, now)).collect(),
    }
}

/// The report from the stored clocks, aggregated in SQL.
pub fn build(conn: &mut PgConnection, contracts: &Contracts, reporting: &ReportingSettings, q: &ReportQuery, now: DateTime<Utc>) -> StoreResult<Report> {
    let f = q.filter(now);
    db::snapshot(conn, |conn| {
        let metrics = db::metric_aggregates(conn, &f)?;
        let tickets = db::ticket_aggregates(conn, &f)?;
        let breaches = db::breaches(conn, &f, q.breach_limit)?;
        let total = metrics.iter().filter(|m| m.priority.is_none()).map(|m| m.breached).sum();
        let pending = db::pending(conn)?;
        Ok(assemble(q, contracts, reporting, metrics, tickets, breaches, total, pending, "stored", now))
    })
}

/// Whether a clock is breached as of `now` (the rule the SQL aggregates apply).
fn breached_now(c: &ClockRow, now: DateTime<Utc>) -> bool {
    c.breached || (c.stopped_at.is_none() && c.state == "running" && c.breach_at.is_some_and(|b| b <= now))
}

/// Nearest-rank percentile, as PostgreSQL's `percentile_disc` computes it.
fn percentile_disc(sorted: &[i64], fraction: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (fraction * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// The report derived straight from the event log: every ticket opened in the period is run
/// through the clock engine as of `now`, and the figures aggregated here.
pub fn recompute(conn: &mut PgConnection, contracts: &Contracts, reporting: &ReportingSettings, q: &ReportQuery, now: DateTime<Utc>) -> StoreResult<Report> {
    let f = q.filter(now);
    let in_scope = |c: &ClockRow| {
        (match &f.scope {
            Scope::All => true,
            Scope::EndToEnd => c.supplier.is_none(),
            Scope::Supplier(s) => c.supplier.as_deref() == Some(s),
        }) && f.priority.is_none_or(|p| c.priority == p)
    };
    let ids = db::opened_between(conn, f.from, f.to)?;
    let mut clocks: Vec<ClockRow> = Vec::new();
    let mut tickets: HashMap<i64, TicketRow> = HashMap::new();
    for chunk in ids.chunks(2_000) {
        let mut logs: HashMap<i64, Vec<crate::store::models::EventRow>> = HashMap::new();
        for e in db::events(conn, chunk)? {
            logs.entry(e.incident_id).or_default().push(e);
        }
        for row in db::incidents(conn, chunk)? {
            let c = compute::compute(&row, logs.get(&row.id).map(Vec::as_slice).unwrap_or(&[]), contracts, now);
            clocks.extend(c.clocks.iter().map(|k| compute::clock_row(&c.ticket, k, contracts, now)).filter(|r| in_scope(r)));
            tickets.insert(row.id, c.ticket);
        }
    }

    // (contract, priority or all, metric) -> clocks
    let mut by_metric: BTreeMap<(String, Option<i16>, String), Vec<&ClockRow>> = BTreeMap::new();
    for c in &clocks {
        for p in [Some(c.priority), None] {
            by_metric.entry((c.contract.clone(), p, c.metric.clone())).or_default().push(c);
        }
    }
    let metrics = by_metric
        .into_iter()
        .map(|((contract, priority, metric), cs)| {
            let mut stopped: Vec<i64> = cs.iter().filter(|c| c.stopped_at.is_some()).map(|c| c.elapsed_secs).collect();
            stopped.sort_unstable();
            MetricAgg {
                contract,
                priority,
                metric,
                clocks: cs.len() as i64,
                met: cs.iter().filter(|c| c.stopped_at.is_some() && !c.breached).count() as i64,
                breached: cs.iter().filter(|c| breached_now(c, now)).count() as i64,
                mean_secs: (!stopped.is_empty()).then(|| stopped.iter().map(|v| i128::from(*v)).sum::<i128>() as f64 / stopped.len() as f64),
                p90_secs: percentile_disc(&stopped, 0.9),
            }
        })
        .collect();

    // (contract, priority or all) -> distinct (ticket, clock supplier, clock priority), as the
    // SQL's `SELECT DISTINCT` over clocks.
    type TicketKey = (i64, Option<String>, i16);
    let mut by_ticket: BTreeMap<(String, Option<i16>), BTreeSet<TicketKey>> = BTreeMap::new();
    for c in &clocks {
        for p in [Some(c.priority), None] {
            by_ticket.entry((c.contract.clone(), p)).or_default().insert((c.incident_id, c.supplier.clone(), c.priority));
        }
    }
    let ticket_aggs = by_ticket
        .into_iter()
        .map(|((contract, priority), set)| {
            let mut agg = TicketAgg { contract, priority, tickets: 0, handoffs: 0, handed_off: 0, ping_pong: 0, max_handoffs: 0, backlog: vec![0; BACKLOG_BOUNDS_SECS.len() + 1] };
            for (id, supplier, _) in &set {
                let Some(t) = tickets.get(id) else { continue };
                agg.tickets += 1;
                agg.handoffs += i64::from(t.handoffs);
                agg.handed_off += i64::from(t.handoffs > 0);
                agg.ping_pong += i64::from(t.returns > 0);
                agg.max_handoffs = agg.max_handoffs.max(i64::from(t.handoffs));
                if t.open && supplier.as_ref().is_none_or(|s| t.holder.as_ref() == Some(s)) {
                    let age_us = (now - t.opened_at).num_microseconds().unwrap_or(i64::MAX);
                    let bucket = BACKLOG_BOUNDS_SECS.iter().position(|b| age_us < b * 1_000_000).unwrap_or(BACKLOG_BOUNDS_SECS.len());
                    agg.backlog[bucket] += 1;
                }
            }
            agg
        })
        .collect();

    let mut breaches: Vec<ClockRow> = clocks.iter().filter(|c| breached_now(c, now)).cloned().collect();
    // The SQL order: latest breach first, then ref and clock in byte order.
    breaches.sort_by(|a, b| {
        match (a.breach_at, b.breach_at) {
            (Some(x), Some(y)) => y.cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
        .then_with(|| a.reference.cmp(&b.reference))
        .then_with(|| a.clock_key.cmp(&b.clock_key))
    });
    let total = breaches.len() as i64;
    breaches.truncate(q.breach_limit.max(0) as usize);
    Ok(assemble(q, contracts, reporting, metrics, ticket_aggs, breaches, total, 0, "recomputed", now))
}

fn csv_field(s: &str) -> String {
    // Quote what would break the row, and neutralise spreadsheet formulas.
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The report's tables as CSV: a line per contract and priority (`all` for the total).
pub fn to_csv(r: &Report) -> String {
    let mut header = vec!["period", "contract", "supplier", "priority", "tickets"].into_iter().map(String::from).collect::<Vec<_>>();
    for m in ["response", "resolution"] {
        for f in ["met", "breached", "pending", "met_percent", "breached_percent", "mean_secs", "p90_secs"] {
            header.push(format!("{m}_{f}"));
        }
    }
    header.extend(["compliance_target", "handoffs", "tickets_handed_off", "ping_pong_tickets", "max_handoffs", "backlog_open"].map(String::from));
    header.extend(BUCKET_LABELS.iter().map(|l| format!("backlog_{}", l.replace(' ', "_"))));
    let mut out = header.join(",") + "\n";
    for c in &r.contracts {
        for row in &c.rows {
            let mut line = vec![
                r.period.label.clone(),
                c.contract.clone(),
                c.supplier.clone().unwrap_or_default(),
                row.priority.map_or("all".to_string(), |p| p.to_string()),
                row.tickets.to_string(),
            ];
            for m in [&row.response, &row.resolution] {
                line.extend([m.met.to_string(), m.breached.to_string(), m.pending.to_string(), opt(m.met_percent), opt(m.breached_percent), opt(m.mean_secs), opt(m.p90_secs)]);
            }
            let ra = &row.reassignments;
            line.extend([
                c.compliance_target.to_string(),
                ra.handoffs.to_string(),
                ra.tickets_handed_off.to_string(),
                ra.ping_pong_tickets.to_string(),
                ra.max_handoffs.to_string(),
                row.backlog.open.to_string(),
            ]);
            line.extend(row.backlog.by_age.iter().map(|b| b.count.to_string()));
            out.push_str(&line.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
    }
    out
}

/// The listed breaches as CSV.
pub fn breaches_csv(r: &Report) -> String {
    let mut out = String::from("ref,contract,supplier,metric,priority,target_secs,elapsed_secs,state,started_at,breach_at,stopped_at,timeline\n");
    for b in &r.breaches {
        let line = [
            b.reference.clone(),
            b.contract.clone(),
            b.supplier.clone().unwrap_or_default(),
            b.metric.clone(),
            b.priority.to_string(),
            b.target_secs.to_string(),
            b.elapsed_secs.to_string(),
            b.state.clone(),
            time::rfc3339(&b.started_at),
            b.breach_at.map(|t| time::rfc3339(&t)).unwrap_or_default(),
            b.stopped_at.map(|t| time::rfc3339(&t)).unwrap_or_default(),
            b.timeline.clone(),
        ];
        out.push_str(&line.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_begin_at_local_midnight() {
        let p = Period::month("2026-11", "Europe/London").unwrap();
        assert_eq!(time::rfc3339(&p.from), "2026-11-01T00:00:00.000Z");
        assert_eq!(time::rfc3339(&p.to), "2026-12-01T00:00:00.000Z");
        let p = Period::month("2026-07", "Europe/London").unwrap();
        assert_eq!(time::rfc3339(&p.from), "2026-06-30T23:00:00.000Z", "BST: midnight is 23:00 UTC");
        let p = Period::month("2026-12", "UTC").unwrap();
        assert_eq!(time::rfc3339(&p.to), "2027-01-01T00:00:00.000Z");
        assert_eq!(p.months_before(2).unwrap().label, "2026-10");
    }

    #[test]
    fn bad_periods_are_explained() {
        for bad in ["2026-13", "2026-1", "November", "", "2026-11-01"] {
            assert!(Period::month(bad, "UTC").is_err(), "{bad}");
        }
        let now = Utc::now();
        assert!(Period::parse(Some("2026-11"), Some("2026-11-01"), None, "UTC", now).unwrap_err().contains("either"));
        assert!(Period::parse(None, Some("2026-11-01"), None, "UTC", now).unwrap_err().contains("both"));
        assert!(Period::range("2026-11-05", "2026-11-01", "UTC").unwrap_err().contains("empty"));
        assert!(Period::range("yesterday", "2026-11-01", "UTC").is_err());
        let p = Period::range("2026-11-03", "2026-11-03", "UTC").unwrap();
        assert_eq!((p.to - p.from).num_hours(), 24, "a date `to` is inclusive");
        let p = Period::range("2026-11-03T09:00:00Z", "2026-11-03T10:00:00Z", "UTC").unwrap();
        assert_eq!((p.to - p.from).num_minutes(), 60);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        assert_eq!(percentile_disc(&[], 0.9), None);
        assert_eq!(percentile_disc(&[7], 0.9), Some(7));
        assert_eq!(percentile_disc(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9), Some(9));
        assert_eq!(percentile_disc(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 0.9), Some(10));
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-5"), "-5");
    }

    proptest::proptest! {
        #![proptest_config(crate::testkit::config(2000))]

        /// Whatever a report query names as its period and the configuration as its zone, the
        /// period is read (and is not empty) or refused with a reason; so are earlier months.
        #[test]
        fn any_period_query_is_read_or_refused(
            month in proptest::option::of(proptest::prop_oneof![crate::testkit::date_like(), crate::testkit::odd_text(), "[+-]?[0-9]{1,6}-[0-9]{1,2}"]),
            from in proptest::option::of(proptest::prop_oneof![crate::testkit::date_like(), crate::testkit::odd_text(), "[+-]?[0-9]{4,6}-[0-9]{2}-[0-9]{2}"]),
            to in proptest::option::of(proptest::prop_oneof![crate::testkit::date_like(), crate::testkit::odd_text(), "[+-]?[0-9]{4,6}-[0-9]{2}-[0-9]{2}"]),
            zone in proptest::prop_oneof![proptest::strategy::Strategy::prop_map(proptest::sample::select(vec!["UTC", "Europe/London", "Pacific/Kiritimati", "America/Adak", "Asia/Kathmandu", "Etc/GMT+12", "Etc/GMT-14"]), str::to_string), crate::testkit::odd_text()],
            now in -8_000_000_000_000i64..8_000_000_000_000,
            back in 0u32..4_000_000,
        ) {
            let now = DateTime::from_timestamp(now, 0).unwrap_or_default();
            match Period::parse(month.as_deref(), from.as_deref(), to.as_deref(), &zone, now) {
                Ok(p) => {
                    proptest::prop_assert!(p.from < p.to, "{p:?}");
                    if let Ok(earlier) = p.months_before(back) {
                        proptest::prop_assert!(earlier.from < earlier.to, "{earlier:?}");
                    }
                }
                Err(e) => proptest::prop_assert!(!e.is_empty()),
            }
        }
    }
}
