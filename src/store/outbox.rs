//! The outbox (messages waiting for the broker) and the inbox (messages already handled).

use super::schema::*;
use super::StoreResult;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Jsonb, Text, Uuid as SqlUuid};
use diesel::PgConnection;

#[derive(Debug, Clone, QueryableByName)]
pub struct OutboxMessage {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = SqlUuid)]
    pub message_id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub routing_key: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
}

/// Claims up to `limit` unpublished messages, oldest first, for `lease_secs`. Rows another relay
/// holds are skipped, and a relay that died leaves its rows to the next one when the lease ends.
pub fn claim(conn: &mut PgConnection, limit: i64, lease_secs: i32) -> StoreResult<Vec<OutboxMessage>> {
    let mut rows = diesel::sql_query(
        "UPDATE outbox SET lease_until = now() + make_interval(secs => $2)
         WHERE id IN (SELECT id FROM outbox
                      WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < now())
                      ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, message_id, routing_key, payload",
    )
    .bind::<BigInt, _>(limit)
    .bind::<Integer, _>(lease_secs)
    .load::<OutboxMessage>(conn)?;
    rows.sort_by_key(|m| m.id);
    Ok(rows)
}

pub fn mark_published(conn: &mut PgConnection, ids: &[i64]) -> StoreResult<()> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((outbox::published_at.eq(diesel::dsl::now), outbox::lease_until.eq(None::<chrono::DateTime<chrono::Utc>>)))
        .execute(conn)?;
    Ok(())
}

/// Gives claimed messages back at once (the broker refused or dropped them).
pub fn release(conn: &mut PgConnection, ids: &[i64]) -> StoreResult<()> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids))).set(outbox::lease_until.eq(None::<chrono::DateTime<chrono::Utc>>)).execute(conn)?;
    Ok(())
}

/// Gives claimed messages back to be tried again in `secs` (the broker could not route them).
pub fn postpone(conn: &mut PgConnection, ids: &[i64], secs: i32) -> StoreResult<()> {
    diesel::sql_query("UPDATE outbox SET lease_until = now() + make_interval(secs => $2) WHERE id = ANY($1)")
        .bind::<diesel::sql_types::Array<BigInt>, _>(ids)
        .bind::<Integer, _>(secs)
        .execute(conn)?;
    Ok(())
}

pub fn pending_count(conn: &mut PgConnection) -> StoreResult<i64> {
    Ok(outbox::table.filter(outbox::published_at.is_null()).count().get_result(conn)?)
}

/// Whether `consumer` already handled `message_id`.
pub fn seen(conn: &mut PgConnection, consumer: &str, message_id: &str) -> StoreResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(inbox::table.find((consumer, message_id)))).get_result(conn)?)
}

/// Records that `consumer` handled `message_id`; `false` if it already had.
pub fn mark_seen(conn: &mut PgConnection, consumer: &str, message_id: &str) -> StoreResult<bool> {
    let n = diesel::insert_into(inbox::table).values((inbox::consumer.eq(consumer), inbox::message_id.eq(message_id))).on_conflict_do_nothing().execute(conn)?;
    Ok(n == 1)
}
