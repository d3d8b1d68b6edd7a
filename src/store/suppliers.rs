//! The suppliers the hub knows (the `suppliers` table, kept in step with the configuration at
//! every start) and what the record says of how the work with each goes: its tickets' last
//! successful sync, its last webhook, its sweep watermark, its dead letters and the unmapped
//! values waiting on its legs.

use super::schema::*;
use super::StoreResult;
use chrono::{DateTime, Utc};
use diesel::dsl::{count_star, max};
use diesel::prelude::*;
use diesel::PgConnection;

/// A supplier as the database knows it.
#[derive(Debug, Clone, Queryable, PartialEq, Eq)]
pub struct KnownSupplier {
    pub id: String,
    pub name: String,
    pub system: String,
}

/// The supplier `id`, if the hub has ever been configured with it.
pub fn find(conn: &mut PgConnection, id: &str) -> StoreResult<Option<KnownSupplier>> {
    Ok(suppliers::table.find(id).select((suppliers::id, suppliers::name, suppliers::system)).first(conn).optional()?)
}

/// Every supplier the database knows, by id.
pub fn all(conn: &mut PgConnection) -> StoreResult<Vec<KnownSupplier>> {
    Ok(suppliers::table.select((suppliers::id, suppliers::name, suppliers::system)).order(suppliers::id).load(conn)?)
}

/// What the record holds about the work with one supplier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// When one of its tickets was last brought in step (created, or read and applied).
    pub last_synced_at: Option<DateTime<Utc>>,
    /// When its last webhook delivery with an identifier was applied (deliveries are
    /// remembered for `inbox_retention_secs`).
    pub last_webhook_at: Option<DateTime<Utc>>,
    /// The sweep's watermark: everything it changed before this was read.
    pub watermark: Option<DateTime<Utc>>,
    /// When a sweep last moved the watermark.
    pub watermark_moved_at: Option<DateTime<Utc>>,
    /// Dead letters of this supplier since `since`.
    pub dead_letters: i64,
    /// Legs still in play (incidents and changes) that hold native values no mapping knows.
    pub unmapped_waiting: i64,
    /// Legs still in play whose last attempt failed.
    pub failing_legs: i64,
}

/// What the record holds about `supplier`; dead letters counted from `since`.
pub fn recorded(conn: &mut PgConnection, supplier: &str, since: DateTime<Utc>) -> StoreResult<Recorded> {
    let in_play = ["pending", "open"];
    let last_synced_at = legs::table.filter(legs::supplier_id.eq(supplier)).select(max(legs::synced_at)).first::<Option<DateTime<Utc>>>(conn)?;
    let last_webhook_at = inbox::table.filter(inbox::consumer.eq(format!("webhook:{supplier}"))).select(max(inbox::processed_at)).first::<Option<DateTime<Utc>>>(conn)?;
    let sweep = poll_state::table.find(supplier).select((poll_state::watermark, poll_state::updated_at)).first::<(Option<DateTime<Utc>>, DateTime<Utc>)>(conn).optional()?;
    let dead_letters = dead_letters::table.filter(dead_letters::supplier_id.eq(supplier)).filter(dead_letters::created_at.ge(since)).select(count_star()).first::<i64>(conn)?;
    let empty = serde_json::json!({});
    let unmapped_incidents =
        legs::table.filter(legs::supplier_id.eq(supplier)).filter(legs::state.eq_any(in_play)).filter(legs::unmapped.ne(&empty)).select(count_star()).first::<i64>(conn)?;
    let change_done = ["succeeded", "succeeded_with_issues", "failed", "backed_out", "cancelled"];
    let unmapped_changes = change_legs::table
        .filter(change_legs::supplier_id.eq(supplier))
        .filter(change_legs::state.ne_all(change_done))
        .filter(change_legs::unmapped.ne(&empty))
        .select(count_star())
        .first::<i64>(conn)?;
    let failing_legs =
        legs::table.filter(legs::supplier_id.eq(supplier)).filter(legs::state.eq_any(in_play)).filter(legs::last_error.is_not_null()).select(count_star()).first::<i64>(conn)?;
    Ok(Recorded {
        last_synced_at,
        last_webhook_at,
        watermark: sweep.and_then(|(w, _)| w),
        watermark_moved_at: sweep.map(|(_, at)| at),
        dead_letters,
        unmapped_waiting: unmapped_incidents + unmapped_changes,
        failing_legs,
    })
}
