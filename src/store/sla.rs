//! The SLA tables: which tickets need their clocks recomputed (`sla_dirty`, filled by a trigger
//! on `events`), the clocks and per-ticket facts as last computed (`sla_clocks`, `sla_tickets`),
//! the once-only alerts (`sla_alerts`), and the aggregate queries reports are built from.
//!
//! Everything but `sla_alerts` is derived from the event log and can be rebuilt from it.

use super::models::{EventRow, IncidentRow};
use super::schema::*;
use super::StoreResult;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel::PgConnection;

/// One stored clock.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = sla_clocks, check_for_backend(diesel::pg::Pg))]
pub struct ClockRow {
    pub incident_id: i64,
    pub clock_key: String,
    pub reference: String,
    pub opened_at: DateTime<Utc>,
    pub contract: String,
    pub supplier: Option<String>,
    pub metric: String,
    pub cycle: i32,
    pub priority: i16,
    pub target_secs: i64,
    pub elapsed_secs: i64,
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub breach_at: Option<DateTime<Utc>>,
    pub breached: bool,
    pub pauses: serde_json::Value,
    pub holdings: serde_json::Value,
    pub next_alert_at: Option<DateTime<Utc>>,
    pub computed_at: DateTime<Utc>,
}

/// The per-ticket facts reports group by.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sla_tickets, check_for_backend(diesel::pg::Pg))]
pub struct TicketRow {
    pub incident_id: i64,
    pub reference: String,
    pub opened_at: DateTime<Utc>,
    pub priority: i16,
    pub open: bool,
    pub holder: Option<String>,
    pub handoffs: i32,
    pub returns: i32,
    pub computed_at: DateTime<Utc>,
}

/// Which clocks a query covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every contract (the managers' dashboard).
    All,
    /// The end-to-end (customer) contracts.
    EndToEnd,
    /// One supplier's contracts.
    Supplier(String),
}

impl Scope {
    /// The SQL condition on a `sla_clocks` row aliased `c`; `$4` is bound to the supplier.
    fn condition(&self) -> &'static str {
        match self {
            Scope::All => "TRUE",
            Scope::EndToEnd => "c.supplier IS NULL",
            Scope::Supplier(_) => "c.supplier = $4",
        }
    }

    fn supplier(&self) -> Option<String> {
        match self {
            Scope::Supplier(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// Runs the queries of one report in one read-only snapshot, so its figures add up even while
/// the monitor writes, with enough memory to sort a month of clocks without spilling to disk.
pub fn snapshot<T>(conn: &mut PgConnection, f: impl FnOnce(&mut PgConnection) -> StoreResult<T>) -> StoreResult<T> {
    conn.build_transaction().read_only().repeatable_read().run(|c| {
        diesel::sql_query("SET LOCAL work_mem = '64MB'").execute(c)?;
        f(c)
    })
}

/// A ticket's dirty mark as read: removed later only if still the same.
pub type Mark = (i64, i64);

/// Takes up to `limit` marked tickets that no other hub is computing: each one taken is locked
/// (a transaction-long advisory lock) against the other hubs. The marks themselves are only
/// read, never row-locked, so a request writing an event is never made to wait on the monitor.
pub fn claim_dirty(conn: &mut PgConnection, limit: i64) -> StoreResult<Vec<Mark>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        incident_id: i64,
        #[diesel(sql_type = BigInt)]
        seq: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT incident_id, seq FROM sla_dirty WHERE pg_try_advisory_xact_lock(7166190, hashint8(incident_id))
         ORDER BY incident_id LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.incident_id, r.seq)).collect())
}

/// Tickets with a clock due to cross a threshold by `now`.
pub fn due(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<i64>> {
    Ok(sla_clocks::table.filter(sla_clocks::next_alert_at.le(now)).select(sla_clocks::incident_id).distinct().order(sla_clocks::incident_id).limit(limit).load(conn)?)
}

/// Takes the same advisory lock for each ticket no other hub is computing (a lock this
/// transaction already holds is taken again) and returns those; the others are left to their
/// owner.
pub fn lock_for_compute(conn: &mut PgConnection, ids: &[i64]) -> StoreResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let rows: Vec<Id> = diesel::sql_query("SELECT id FROM unnest($1::bigint[]) AS id WHERE pg_try_advisory_xact_lock(7166190, hashint8(id)) ORDER BY id")
        .bind::<Array<BigInt>, _>(ids)
        .load(conn)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Removes the marks that are still as read; a ticket marked again meanwhile stays marked.
/// The caller runs this last in its transaction, so it never waits while holding anything a
/// writer of the ticket could need.
pub fn clear_dirty(conn: &mut PgConnection, marks: &[Mark]) -> StoreResult<()> {
    let (ids, seqs): (Vec<i64>, Vec<i64>) = marks.iter().copied().unzip();
    diesel::sql_query("DELETE FROM sla_dirty d USING unnest($1::bigint[], $2::bigint[]) AS m(id, seq) WHERE d.incident_id = m.id AND d.seq = m.seq")
        .bind::<Array<BigInt>, _>(ids)
        .bind::<Array<BigInt>, _>(seqs)
        .execute(conn)?;
    Ok(())
}

/// Records the fingerprint of the SLA configuration in force; when it differs from the one the
/// stored clocks were computed under, marks every ticket for recomputation (and returns how
/// many). Hubs starting together serialise on an advisory lock, so one of them does it.
pub fn adopt_configuration(conn: &mut PgConnection, fingerprint: &str) -> StoreResult<i64> {
    conn.transaction(|conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock(7166190003)").execute(conn)?;
        let stored: Option<String> = sla_configuration::table.find(1).select(sla_configuration::fingerprint).first(conn).optional()?;
        if stored.as_deref() == Some(fingerprint) {
            return Ok(0);
        }
        diesel::insert_into(sla_configuration::table)
            .values((sla_configuration::id.eq(1), sla_configuration::fingerprint.eq(fingerprint)))
            .on_conflict(sla_configuration::id)
            .do_update()
            .set((sla_configuration::fingerprint.eq(fingerprint), sla_configuration::updated_at.eq(diesel::dsl::now)))
            .execute(conn)?;
        if stored.is_none() {
            // The migration already marked every ticket recorded before it.
            return Ok(0);
        }
        Ok(diesel::sql_query(
            "INSERT INTO sla_dirty (incident_id) SELECT id FROM incidents
             ON CONFLICT (incident_id) DO UPDATE SET seq = nextval('sla_dirty_seq'), marked_at = now()",
        )
        .execute(conn)? as i64)
    })
}

/// How many tickets wait for their clocks to be recomputed.
pub fn pending(conn: &mut PgConnection) -> StoreResult<i64> {
    Ok(sla_dirty::table.count().get_result(conn)?)
}

pub fn incidents(conn: &mut PgConnection, ids: &[i64]) -> StoreResult<Vec<IncidentRow>> {
    Ok(incidents::table.filter(incidents::id.eq_any(ids)).order(incidents::id).select(IncidentRow::as_select()).load(conn)?)
}

/// The event logs of several tickets, each in log order.
pub fn events(conn: &mut PgConnection, ids: &[i64]) -> StoreResult<Vec<EventRow>> {
    Ok(events::table.filter(events::incident_id.eq_any(ids)).order((events::incident_id, events::id)).select(EventRow::as_select()).load(conn)?)
}

/// Ids of the incidents opened in `[from, to)`, in id order.
pub fn opened_between(conn: &mut PgConnection, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<i64>> {
    Ok(incidents::table.filter(incidents::opened_at.ge(from)).filter(incidents::opened_at.lt(to)).order(incidents::id).select(incidents::id).load(conn)?)
}

/// Replaces the stored clocks and facts of `ids` with freshly computed ones.
pub fn replace(conn: &mut PgConnection, ids: &[i64], tickets: &[TicketRow], clocks: &[ClockRow]) -> StoreResult<()> {
    diesel::delete(sla_clocks::table.filter(sla_clocks::incident_id.eq_any(ids))).execute(conn)?;
    // Postgres takes at most 65,535 bound values per statement; a clock row binds 19.
    for chunk in clocks.chunks(2_000) {
        diesel::insert_into(sla_clocks::table).values(chunk).execute(conn)?;
    }
    for chunk in tickets.chunks(5_000) {
        diesel::insert_into(sla_tickets::table)
            .values(chunk)
            .on_conflict(sla_tickets::incident_id)
            .do_update()
            .set((
                sla_tickets::reference.eq(diesel::upsert::excluded(sla_tickets::reference)),
                sla_tickets::opened_at.eq(diesel::upsert::excluded(sla_tickets::opened_at)),
                sla_tickets::priority.eq(diesel::upsert::excluded(sla_tickets::priority)),
                sla_tickets::open.eq(diesel::upsert::excluded(sla_tickets::open)),
                sla_tickets::holder.eq(diesel::upsert::excluded(sla_tickets::holder)),
                sla_tickets::handoffs.eq(diesel::upsert::excluded(sla_tickets::handoffs)),
                sla_tickets::returns.eq(diesel::upsert::excluded(sla_tickets::returns)),
                sla_tickets::computed_at.eq(diesel::upsert::excluded(sla_tickets::computed_at)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Records that `threshold` of a clock is announced under `event_id`; `false` if it already
/// was (by this hub or another), in which case the caller must not announce it again.
pub fn claim_alert(conn: &mut PgConnection, incident_id: i64, clock_key: &str, threshold: i16, event_id: uuid::Uuid) -> StoreResult<bool> {
    let n = diesel::insert_into(sla_alerts::table)
        .values((sla_alerts::incident_id.eq(incident_id), sla_alerts::clock_key.eq(clock_key), sla_alerts::threshold.eq(threshold), sla_alerts::event_id.eq(event_id)))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(n == 1)
}

/// The stored clocks of one ticket.
pub fn clocks_of(conn: &mut PgConnection, incident_id: i64) -> StoreResult<Vec<ClockRow>> {
    Ok(sla_clocks::table.filter(sla_clocks::incident_id.eq(incident_id)).order(sla_clocks::clock_key).select(ClockRow::as_select()).load(conn)?)
}

/// The stored clocks of several tickets, by reference.
pub fn clocks_of_many(conn: &mut PgConnection, references: &[String]) -> StoreResult<Vec<ClockRow>> {
    let ids = incidents::table.filter(incidents::reference.eq_any(references)).select(incidents::id);
    Ok(sla_clocks::table.filter(sla_clocks::incident_id.eq_any(ids)).order((sla_clocks::incident_id, sla_clocks::clock_key)).select(ClockRow::as_select()).load(conn)?)
}

pub fn ticket(conn: &mut PgConnection, incident_id: i64) -> StoreResult<Option<TicketRow>> {
    Ok(sla_tickets::table.find(incident_id).select(TicketRow::as_select()).first(conn).optional()?)
}

/// Met/breached counts and business times of the clocks of one contract, priority (`None`:
/// all priorities together) and metric.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct MetricAgg {
    #[diesel(sql_type = Text)]
    pub contract: String,
    #[diesel(sql_type = Nullable<SmallInt>)]
    pub priority: Option<i16>,
    #[diesel(sql_type = Text)]
    pub metric: String,
    #[diesel(sql_type = BigInt)]
    pub clocks: i64,
    #[diesel(sql_type = BigInt)]
    pub met: i64,
    #[diesel(sql_type = BigInt)]
    pub breached: i64,
    /// Over stopped clocks (responded, resolved).
    #[diesel(sql_type = Nullable<Double>)]
    pub mean_secs: Option<f64>,
    /// Nearest-rank 90th percentile over stopped clocks.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub p90_secs: Option<i64>,
}

/// Tickets, hand-offs and open backlog of one contract and priority (`None`: all).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct TicketAgg {
    #[diesel(sql_type = Text)]
    pub contract: String,
    #[diesel(sql_type = Nullable<SmallInt>)]
    pub priority: Option<i16>,
    #[diesel(sql_type = BigInt)]
    pub tickets: i64,
    #[diesel(sql_type = BigInt)]
    pub handoffs: i64,
    #[diesel(sql_type = BigInt)]
    pub handed_off: i64,
    #[diesel(sql_type = BigInt)]
    pub ping_pong: i64,
    #[diesel(sql_type = BigInt)]
    pub max_handoffs: i64,
    /// Open tickets the scope's supplier holds (end to end: all open tickets), by age bucket
    /// (bounds in [`BACKLOG_BOUNDS_SECS`]).
    #[diesel(sql_type = Array<BigInt>)]
    pub backlog: Vec<i64>,
}

/// Upper bounds (exclusive, seconds since the ticket opened) of the backlog age buckets; a last
/// bucket takes everything older.
pub const BACKLOG_BOUNDS_SECS: [i64; 5] = [4 * 3600, 24 * 3600, 3 * 86400, 7 * 86400, 30 * 86400];

/// The columns of a [`ClockRow`] in raw SQL (the table's `ref` column is the row's `reference`).
const CLOCK_COLUMNS: &str = "c.incident_id, c.clock_key, c.ref AS reference, c.opened_at, c.contract, c.supplier, c.metric, c.cycle, c.priority, \
     c.target_secs, c.elapsed_secs, c.state, c.started_at, c.stopped_at, c.breach_at, c.breached, c.pauses, c.holdings, \
     c.next_alert_at, c.computed_at";

/// A clock that is breached as of `$3` (now): breached when computed, or running past its
/// breach time since. The same rule as the clock engine applied at `now`.
const BREACHED: &str = "(c.breached OR (c.stopped_at IS NULL AND c.state = 'running' AND c.breach_at <= $3))";

/// The filters every report query shares: tickets opened in `[from, to)`, a scope, a priority.
#[derive(Debug, Clone)]
pub struct Filter {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub scope: Scope,
    pub priority: Option<i16>,
}

macro_rules! bind_filter {
    ($q:expr, $f:expr) => {
        $q.bind::<Timestamptz, _>($f.from)
            .bind::<Timestamptz, _>($f.to)
            .bind::<Timestamptz, _>($f.now)
            .bind::<Nullable<Text>, _>($f.scope.supplier())
            .bind::<Nullable<SmallInt>, _>($f.priority)
    };
}

impl Filter {
    /// `WHERE` conditions on `sla_clocks c`; binds `$1`..`$5`.
    fn conditions(&self) -> String {
        format!("c.opened_at >= $1 AND c.opened_at < $2 AND {} AND ($5::smallint IS NULL OR c.priority = $5)", self.scope.condition())
    }
}

pub fn metric_aggregates(conn: &mut PgConnection, f: &Filter) -> StoreResult<Vec<MetricAgg>> {
    let sql = format!(
        "SELECT c.contract, c.priority, c.metric,
                count(*) AS clocks,
                count(*) FILTER (WHERE c.stopped_at IS NOT NULL AND NOT c.breached) AS met,
                count(*) FILTER (WHERE {BREACHED}) AS breached,
                (avg(c.elapsed_secs) FILTER (WHERE c.stopped_at IS NOT NULL))::float8 AS mean_secs,
                percentile_disc(0.9) WITHIN GROUP (ORDER BY c.elapsed_secs) FILTER (WHERE c.stopped_at IS NOT NULL) AS p90_secs
         FROM sla_clocks c
         WHERE {}
         GROUP BY GROUPING SETS ((c.contract, c.priority, c.metric), (c.contract, c.metric))
         ORDER BY c.contract, c.priority NULLS LAST, c.metric",
        f.conditions()
    );
    Ok(bind_filter!(diesel::sql_query(sql).into_boxed(), f).load(conn)?)
}

pub fn ticket_aggregates(conn: &mut PgConnection, f: &Filter) -> StoreResult<Vec<TicketAgg>> {
    let open = "s.open AND (t.supplier IS NULL OR s.holder = t.supplier)";
    let age = "extract(epoch FROM ($3 - s.opened_at))";
    let mut buckets = Vec::new();
    let mut lower: Option<i64> = None;
    for upper in BACKLOG_BOUNDS_SECS.iter().map(Some).chain([None]) {
        let mut cond = open.to_string();
        if let Some(l) = lower {
            cond.push_str(&format!(" AND {age} >= {l}"));
        }
        if let Some(u) = upper {
            cond.push_str(&format!(" AND {age} < {u}"));
        }
        buckets.push(format!("count(*) FILTER (WHERE {cond})"));
        lower = upper.copied();
    }
    let sql = format!(
        "WITH t AS (SELECT DISTINCT c.incident_id, c.contract, c.supplier, c.priority FROM sla_clocks c WHERE {})
         SELECT t.contract, t.priority,
                count(*) AS tickets,
                coalesce(sum(s.handoffs), 0)::bigint AS handoffs,
                count(*) FILTER (WHERE s.handoffs > 0) AS handed_off,
                count(*) FILTER (WHERE s.returns > 0) AS ping_pong,
                coalesce(max(s.handoffs), 0)::bigint AS max_handoffs,
                ARRAY[{}]::bigint[] AS backlog
         FROM t JOIN sla_tickets s ON s.incident_id = t.incident_id
         GROUP BY GROUPING SETS ((t.contract, t.priority), (t.contract))
         ORDER BY t.contract, t.priority NULLS LAST",
        f.conditions(),
        buckets.join(", ")
    );
    Ok(bind_filter!(diesel::sql_query(sql).into_boxed(), f).load(conn)?)
}

/// Breached clocks, most recent breach first, at most `limit`. (How many there are in all is
/// the sum of the `breached` figures of [`metric_aggregates`].)
pub fn breaches(conn: &mut PgConnection, f: &Filter, limit: i64) -> StoreResult<Vec<ClockRow>> {
    let sql = format!(
        "SELECT {CLOCK_COLUMNS} FROM sla_clocks c WHERE {} AND {BREACHED}
         ORDER BY c.breach_at DESC NULLS LAST, c.ref COLLATE \"C\", c.clock_key COLLATE \"C\" LIMIT $6",
        f.conditions()
    );
    Ok(bind_filter!(diesel::sql_query(sql).into_boxed(), f).bind::<BigInt, _>(limit).load(conn)?)
}

/// Met and breached clocks per contract, month and metric.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct MonthAgg {
    #[diesel(sql_type = Text)]
    pub contract: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub supplier: Option<String>,
    /// Index of the month in the bounds given to [`monthly`] (0 = the first).
    #[diesel(sql_type = Integer)]
    pub month: i32,
    #[diesel(sql_type = Text)]
    pub metric: String,
    /// Tickets (first-cycle clocks) of this metric.
    #[diesel(sql_type = BigInt)]
    pub tickets: i64,
    #[diesel(sql_type = BigInt)]
    pub met: i64,
    #[diesel(sql_type = BigInt)]
    pub breached: i64,
}

/// [`MonthAgg`]s of the months whose boundaries are `bounds` (n + 1 instants for n months);
/// the filter's own period is ignored. Bucketing by bound, not by formatting each timestamp,
/// keeps this a single hash aggregate over the range.
pub fn monthly(conn: &mut PgConnection, f: &Filter, bounds: &[DateTime<Utc>]) -> StoreResult<Vec<MonthAgg>> {
    let (Some(first), Some(last)) = (bounds.first(), bounds.last()) else { return Ok(vec![]) };
    let f = Filter { from: *first, to: *last, ..f.clone() };
    let sql = format!(
        "SELECT c.contract, c.supplier, (width_bucket(c.opened_at, $6::timestamptz[]) - 1) AS month, c.metric,
                count(*) FILTER (WHERE c.cycle = 0) AS tickets,
                count(*) FILTER (WHERE c.stopped_at IS NOT NULL AND NOT c.breached) AS met,
                count(*) FILTER (WHERE {BREACHED}) AS breached
         FROM sla_clocks c WHERE {}
         GROUP BY 1, 2, 3, 4",
        f.conditions()
    );
    Ok(bind_filter!(diesel::sql_query(sql).into_boxed(), f).bind::<Array<Timestamptz>, _>(bounds).load(conn)?)
}

/// Clocks of open tickets that are still counting or paused, soonest breach first (at most
/// `limit`), whatever the period: the candidates for "at risk".
pub fn live_clocks(conn: &mut PgConnection, scope: &Scope, limit: i64) -> StoreResult<Vec<ClockRow>> {
    // Every period: from the epoch to a date no ticket reaches.
    let (from, to) = (DateTime::<Utc>::UNIX_EPOCH, DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(365 * 1000));
    let f = Filter { from, to, now: Utc::now(), scope: scope.clone(), priority: None };
    let sql = format!(
        "SELECT {CLOCK_COLUMNS} FROM sla_clocks c JOIN sla_tickets s ON s.incident_id = c.incident_id
         WHERE {} AND s.open AND c.stopped_at IS NULL AND c.state IN ('running', 'paused')
         ORDER BY c.breach_at NULLS LAST, c.ref LIMIT $6",
        f.conditions()
    );
    Ok(bind_filter!(diesel::sql_query(sql).into_boxed(), f).bind::<BigInt, _>(limit).load(conn)?)
}

/// The suppliers that hold a clock in the record, for pickers.
pub fn suppliers_with_clocks(conn: &mut PgConnection) -> StoreResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct S {
        #[diesel(sql_type = Text)]
        supplier: String,
    }
    let rows: Vec<S> = diesel::sql_query("SELECT DISTINCT supplier FROM sla_clocks WHERE supplier IS NOT NULL ORDER BY 1").load(conn)?;
    Ok(rows.into_iter().map(|r| r.supplier).collect())
}

/// Whether `$1` is known as a supplier (or the integrator queue).
pub fn supplier_exists(conn: &mut PgConnection, id: &str) -> StoreResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(suppliers::table.find(id))).get_result(conn)?)
}
