//! Messages the hub gave up on, each with the reason, kept until someone replays them.

use super::schema::*;
use super::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::PgConnection;
use serde::Serialize;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = dead_letters, check_for_backend(diesel::pg::Pg))]
pub struct DeadLetter {
    pub id: i64,
    pub message_id: uuid::Uuid,
    pub routing_key: String,
    pub payload: serde_json::Value,
    pub supplier_id: Option<String>,
    pub incident_ref: Option<String>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
}

pub struct NewDeadLetter<'a> {
    pub message_id: uuid::Uuid,
    pub routing_key: &'a str,
    pub payload: &'a serde_json::Value,
    pub supplier_id: Option<&'a str>,
    pub incident_ref: Option<&'a str>,
    pub reason: &'a str,
}

pub fn insert(conn: &mut PgConnection, d: &NewDeadLetter) -> StoreResult<i64> {
    Ok(diesel::insert_into(dead_letters::table)
        .values((
            dead_letters::message_id.eq(d.message_id),
            dead_letters::routing_key.eq(d.routing_key),
            dead_letters::payload.eq(d.payload),
            dead_letters::supplier_id.eq(d.supplier_id),
            dead_letters::incident_ref.eq(d.incident_ref),
            dead_letters::reason.eq(d.reason),
        ))
        .returning(dead_letters::id)
        .get_result(conn)?)
}

pub fn list(conn: &mut PgConnection, include_replayed: bool) -> StoreResult<Vec<DeadLetter>> {
    let mut q = dead_letters::table.select(DeadLetter::as_select()).order(dead_letters::id.desc()).limit(500).into_boxed();
    if !include_replayed {
        q = q.filter(dead_letters::replayed_at.is_null());
    }
    Ok(q.load(conn)?)
}

/// Puts a dead letter back in the outbox under a new message id and marks it replayed.
pub fn replay(conn: &mut PgConnection, id: i64) -> StoreResult<DeadLetter> {
    conn.transaction(|conn| {
        let d: DeadLetter =
            dead_letters::table.find(id).select(DeadLetter::as_select()).for_update().first(conn).optional()?.ok_or_else(|| StoreError::NotFound(format!("dead letter {id}")))?;
        let new_id = uuid::Uuid::now_v7();
        let mut payload = d.payload.clone();
        if let Some(obj) = payload.as_object_mut() {
            obj.insert("id".into(), serde_json::json!(new_id.to_string()));
        }
        super::record::enqueue(conn, new_id, &d.routing_key, &payload)?;
        diesel::update(dead_letters::table.find(id)).set(dead_letters::replayed_at.eq(Utc::now())).execute(conn)?;
        Ok(DeadLetter { replayed_at: Some(Utc::now()), ..d })
    })
}
