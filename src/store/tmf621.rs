//! What TMF621 needs stored beside the record: subscriptions to the hub's own TMF621 API and
//! the notifications queued for each (posted in order per subscription), the `externalId` a
//! customer gave a ticket, the status history the API renders, TMF-style paging
//! (offset, limit, total) over incidents, and the hub's own subscription at each TMF621
//! supplier (claimed so several hub processes register it once).

use super::models::{IncidentRow, LegRow, NoteRow};
use super::schema::{events, incidents, legs, notes};
use super::StoreResult;
use crate::domain::Incident;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Text};
use diesel::PgConnection;
use serde::Serialize;
use std::collections::HashMap;

diesel::table! {
    tmf_subscriptions (id) {
        id -> Uuid,
        callback -> Text,
        query -> Text,
        principal -> Text,
        supplier_id -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    tmf_deliveries (id) {
        id -> Int8,
        subscription_id -> Uuid,
        message_id -> Text,
        event_type -> Text,
        incident_ref -> Text,
        envelope -> Jsonb,
        message -> Jsonb,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        failing_since -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(tmf_deliveries -> tmf_subscriptions (subscription_id));
diesel::allow_tables_to_appear_in_same_query!(tmf_deliveries, tmf_subscriptions);

diesel::table! {
    tmf_external_ids (incident_id) {
        incident_id -> Int8,
        principal -> Text,
        external_id -> Text,
    }
}

diesel::table! {
    tmf_supplier_subscriptions (supplier_id, api) {
        supplier_id -> Text,
        subscription_id -> Nullable<Text>,
        callback -> Text,
        claimed_until -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        api -> Text,
    }
}

// The external-id filter is a subselect inside incident queries.
diesel::allow_tables_to_appear_in_same_query!(tmf_external_ids, incidents);
diesel::allow_tables_to_appear_in_same_query!(tmf_external_ids, legs);

/// A subscription to the hub's TMF621 events.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = tmf_subscriptions, check_for_backend(diesel::pg::Pg))]
pub struct Subscription {
    pub id: uuid::Uuid,
    pub callback: String,
    pub query: String,
    pub principal: String,
    pub supplier_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Adds a subscription, unless `principal` already holds `limit` of them (then `Err` with how
/// many it holds). Concurrent requests of one principal are counted one after the other.
pub fn add_subscription(conn: &mut PgConnection, callback: &str, query: &str, principal: &str, supplier: Option<&str>, limit: usize) -> StoreResult<Result<Subscription, i64>> {
    conn.transaction(|conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock(716619, hashtext($1))").bind::<Text, _>(principal).execute(conn)?;
        let held: i64 = tmf_subscriptions::table.filter(tmf_subscriptions::principal.eq(principal)).count().get_result(conn)?;
        if held >= i64::try_from(limit).unwrap_or(i64::MAX) {
            return Ok(Err(held));
        }
        Ok(Ok(diesel::insert_into(tmf_subscriptions::table)
            .values((
                tmf_subscriptions::id.eq(uuid::Uuid::now_v7()),
                tmf_subscriptions::callback.eq(callback),
                tmf_subscriptions::query.eq(query),
                tmf_subscriptions::principal.eq(principal),
                tmf_subscriptions::supplier_id.eq(supplier),
            ))
            .returning(Subscription::as_returning())
            .get_result(conn)?))
    })
}

pub fn subscription(conn: &mut PgConnection, id: uuid::Uuid) -> StoreResult<Option<Subscription>> {
    Ok(tmf_subscriptions::table.find(id).select(Subscription::as_select()).first(conn).optional()?)
}

pub fn subscriptions(conn: &mut PgConnection) -> StoreResult<Vec<Subscription>> {
    Ok(tmf_subscriptions::table.order(tmf_subscriptions::created_at).select(Subscription::as_select()).load(conn)?)
}

pub fn delete_subscription(conn: &mut PgConnection, id: uuid::Uuid) -> StoreResult<bool> {
    Ok(diesel::delete(tmf_subscriptions::table.find(id)).execute(conn)? == 1)
}

/// A notification queued for a subscriber.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tmf_deliveries, check_for_backend(diesel::pg::Pg))]
pub struct Delivery {
    pub id: i64,
    pub subscription_id: uuid::Uuid,
    pub message_id: String,
    pub event_type: String,
    pub incident_ref: String,
    /// The TMF621 event to post.
    pub envelope: serde_json::Value,
    /// The hub event it came from, as the broker carried it.
    pub message: serde_json::Value,
    pub attempts: i32,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A notification to queue.
pub struct NewDelivery<'a> {
    pub subscription_id: uuid::Uuid,
    pub message_id: &'a str,
    pub event_type: &'a str,
    pub incident_ref: &'a str,
    pub envelope: &'a serde_json::Value,
    pub message: &'a serde_json::Value,
}

pub fn queue_delivery(conn: &mut PgConnection, d: &NewDelivery) -> StoreResult<()> {
    diesel::insert_into(tmf_deliveries::table)
        .values((
            tmf_deliveries::subscription_id.eq(d.subscription_id),
            tmf_deliveries::message_id.eq(d.message_id),
            tmf_deliveries::event_type.eq(d.event_type),
            tmf_deliveries::incident_ref.eq(d.incident_ref),
            tmf_deliveries::envelope.eq(d.envelope),
            tmf_deliveries::message.eq(d.message),
        ))
        .execute(conn)?;
    Ok(())
}

/// Notifications waiting for one subscription.
pub fn pending_deliveries(conn: &mut PgConnection, subscription: uuid::Uuid) -> StoreResult<i64> {
    Ok(tmf_deliveries::table.filter(tmf_deliveries::subscription_id.eq(subscription)).count().get_result(conn)?)
}

/// Removes and returns every notification waiting for one subscription, oldest first.
pub fn take_deliveries(conn: &mut PgConnection, subscription: uuid::Uuid) -> StoreResult<Vec<Delivery>> {
    let mut rows: Vec<Delivery> =
        diesel::delete(tmf_deliveries::table.filter(tmf_deliveries::subscription_id.eq(subscription))).returning(Delivery::as_returning()).get_results(conn)?;
    rows.sort_by_key(|d| d.id);
    Ok(rows)
}

/// The subscriptions whose oldest waiting notification may be posted now (not leased, not
/// backing off), and the earliest time another one will be.
pub fn due_subscriptions(conn: &mut PgConnection) -> StoreResult<(Vec<uuid::Uuid>, Option<DateTime<Utc>>)> {
    #[derive(QueryableByName)]
    struct Head {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        subscription_id: uuid::Uuid,
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        ready_at: DateTime<Utc>,
    }
    let heads: Vec<Head> = diesel::sql_query(
        "SELECT subscription_id, GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at)) AS ready_at
         FROM (SELECT DISTINCT ON (subscription_id) subscription_id, next_attempt_at, lease_until
               FROM tmf_deliveries ORDER BY subscription_id, id) heads",
    )
    .load(conn)?;
    let now = Utc::now();
    let due = heads.iter().filter(|h| h.ready_at <= now).map(|h| h.subscription_id).collect();
    let next = heads.iter().filter(|h| h.ready_at > now).map(|h| h.ready_at).min();
    Ok((due, next))
}

/// Leases the oldest waiting notification of a subscription for `lease_secs`, with the
/// subscription's callback, when it is due and no worker (of any hub process) holds one.
pub fn claim_delivery(conn: &mut PgConnection, subscription: uuid::Uuid, lease_secs: i64) -> StoreResult<Option<(Delivery, String)>> {
    conn.transaction(|conn| {
        // The subscription row serialises the claims of one subscription.
        let callback: Option<String> = tmf_subscriptions::table.find(subscription).select(tmf_subscriptions::callback).for_update().skip_locked().first(conn).optional()?;
        let Some(callback) = callback else { return Ok(None) };
        let head: Option<(Delivery, DateTime<Utc>, Option<DateTime<Utc>>)> = tmf_deliveries::table
            .filter(tmf_deliveries::subscription_id.eq(subscription))
            .order(tmf_deliveries::id)
            .select((Delivery::as_select(), tmf_deliveries::next_attempt_at, tmf_deliveries::lease_until))
            .first(conn)
            .optional()?;
        let now = Utc::now();
        match head {
            Some((d, next, lease)) if next <= now && lease.is_none_or(|l| l <= now) => {
                diesel::update(tmf_deliveries::table.find(d.id)).set(tmf_deliveries::lease_until.eq(now + chrono::Duration::seconds(lease_secs))).execute(conn)?;
                Ok(Some((d, callback)))
            }
            _ => Ok(None),
        }
    })
}

/// The subscriber took the notification.
pub fn delivery_done(conn: &mut PgConnection, id: i64) -> StoreResult<()> {
    diesel::delete(tmf_deliveries::table.find(id)).execute(conn)?;
    Ok(())
}

/// The subscriber did not take it: try again at `next_attempt_at`.
pub fn delivery_failed(conn: &mut PgConnection, id: i64, error: &str, next_attempt_at: DateTime<Utc>) -> StoreResult<()> {
    diesel::update(tmf_deliveries::table.find(id))
        .set((
            tmf_deliveries::attempts.eq(tmf_deliveries::attempts + 1),
            tmf_deliveries::failing_since.eq(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>("COALESCE(failing_since, now())")),
            tmf_deliveries::last_error.eq(error),
            tmf_deliveries::next_attempt_at.eq(next_attempt_at),
            tmf_deliveries::lease_until.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Remembers a customer's `externalId` for a ticket (the first one given stays).
pub fn set_external_id(conn: &mut PgConnection, incident_id: i64, principal: &str, external_id: &str) -> StoreResult<()> {
    diesel::insert_into(tmf_external_ids::table)
        .values((tmf_external_ids::incident_id.eq(incident_id), tmf_external_ids::principal.eq(principal), tmf_external_ids::external_id.eq(external_id)))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(())
}

pub fn external_ids(conn: &mut PgConnection, incident_ids: &[i64]) -> StoreResult<HashMap<i64, String>> {
    Ok(tmf_external_ids::table
        .filter(tmf_external_ids::incident_id.eq_any(incident_ids))
        .select((tmf_external_ids::incident_id, tmf_external_ids::external_id))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect())
}

/// One status change from the event log.
#[derive(Debug, Clone)]
pub struct StatusEntry {
    pub status: String,
    pub hold_reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// The status changes of each incident, oldest first.
pub fn status_history(conn: &mut PgConnection, incident_ids: &[i64]) -> StoreResult<HashMap<i64, Vec<StatusEntry>>> {
    let rows: Vec<(i64, serde_json::Value, DateTime<Utc>)> = events::table
        .filter(events::incident_id.eq_any(incident_ids))
        .filter(events::kind.eq("incident.status_changed"))
        .order(events::id)
        .select((events::incident_id, events::data, events::occurred_at))
        .load(conn)?;
    let mut out: HashMap<i64, Vec<StatusEntry>> = HashMap::new();
    for (id, data, at) in rows {
        let Some(status) = data.get("to").and_then(|v| v.as_str()) else { continue };
        let hold_reason = data.get("hold_reason").and_then(|v| v.as_str()).map(str::to_string);
        out.entry(id).or_default().push(StatusEntry { status: status.to_string(), hold_reason, at });
    }
    Ok(out)
}

/// Filters of the TMF621 list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Canonical statuses any of which matches.
    pub statuses: Option<Vec<String>>,
    /// Hold reasons an `on_hold` incident must have to match (TMF `pending` vs `held`).
    pub on_hold_reasons: Option<Vec<String>>,
    pub visible_to_supplier: Option<String>,
    pub updated_after: Option<DateTime<Utc>>,
    pub external_id: Option<String>,
    pub reference: Option<String>,
}

type Boxed<'a> = incidents::BoxedQuery<'a, diesel::pg::Pg>;

fn filtered(f: &Filter) -> Boxed<'static> {
    let mut q = incidents::table.into_boxed();
    if f.statuses.is_some() || f.on_hold_reasons.is_some() {
        // (status IN plain) OR (status = on_hold AND hold_reason IN holds)
        let plain = f.statuses.clone().unwrap_or_default();
        let holds = f.on_hold_reasons.clone().unwrap_or_default();
        q = q.filter(
            diesel::dsl::sql::<Bool>("(status = ANY(")
                .bind::<Array<Text>, _>(plain)
                .sql(") OR (status = 'on_hold' AND hold_reason = ANY(")
                .bind::<Array<Text>, _>(holds)
                .sql(")))"),
        );
    }
    if let Some(s) = &f.visible_to_supplier {
        q = q.filter(incidents::id.eq_any(super::record::seen_by_supplier(s)));
    }
    if let Some(t) = f.updated_after {
        q = q.filter(incidents::updated_at.gt(t));
    }
    if let Some(e) = &f.external_id {
        q = q.filter(incidents::id.eq_any(tmf_external_ids::table.filter(tmf_external_ids::external_id.eq(e.clone())).select(tmf_external_ids::incident_id)));
    }
    if let Some(r) = &f.reference {
        q = q.filter(incidents::reference.eq(r.clone()));
    }
    q
}

/// A page of incidents in creation order, with the total that match.
pub fn list(conn: &mut PgConnection, f: &Filter, offset: i64, limit: i64) -> StoreResult<(Vec<(i64, Incident)>, i64)> {
    let total: i64 = filtered(f).count().get_result(conn)?;
    let rows: Vec<IncidentRow> = filtered(f).order(incidents::id).offset(offset).limit(limit).select(IncidentRow::as_select()).load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let all_notes: Vec<NoteRow> = notes::table.filter(notes::incident_id.eq_any(&ids)).order(notes::id).select(NoteRow::as_select()).load(conn)?;
    let all_legs: Vec<LegRow> = legs::table.filter(legs::incident_id.eq_any(&ids)).order(legs::id).select(LegRow::as_select()).load(conn)?;
    let docs = rows
        .iter()
        .map(|r| {
            let n: Vec<NoteRow> = all_notes.iter().filter(|x| x.incident_id == r.id).cloned().collect();
            let l: Vec<LegRow> = all_legs.iter().filter(|x| x.incident_id == r.id).cloned().collect();
            Ok((r.id, r.to_domain(&n, &l)?))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((docs, total))
}

/// One incident with its row id.
pub fn find(conn: &mut PgConnection, reference: &str) -> StoreResult<(i64, Incident)> {
    let row = super::record::find_row(conn, reference)?;
    Ok((row.id, super::record::document(conn, &row)?))
}

/// Where the hub's subscription at a supplier stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Registered with this callback already.
    Done,
    /// Another hub process is registering it now.
    Busy,
    /// This process registers it; `old` is a subscription to remove first.
    Claimed { old: Option<String> },
}

/// Claims the (re)registration of the hub's subscription to `api` (`troubleTicket`,
/// `changeRequest`) at `supplier` for `callback`.
pub fn claim_supplier_subscription(conn: &mut PgConnection, supplier: &str, api: &str, callback: &str) -> StoreResult<Claim> {
    conn.transaction(|conn| {
        diesel::insert_into(tmf_supplier_subscriptions::table)
            .values((tmf_supplier_subscriptions::supplier_id.eq(supplier), tmf_supplier_subscriptions::api.eq(api)))
            .on_conflict_do_nothing()
            .execute(conn)?;
        let (id, cb, until): (Option<String>, String, Option<DateTime<Utc>>) = tmf_supplier_subscriptions::table
            .find((supplier, api))
            .select((tmf_supplier_subscriptions::subscription_id, tmf_supplier_subscriptions::callback, tmf_supplier_subscriptions::claimed_until))
            .for_update()
            .first(conn)?;
        if id.is_some() && cb == callback {
            return Ok(Claim::Done);
        }
        if until.is_some_and(|u| u > Utc::now()) {
            return Ok(Claim::Busy);
        }
        diesel::update(tmf_supplier_subscriptions::table.find((supplier, api)))
            .set((tmf_supplier_subscriptions::claimed_until.eq(Utc::now() + chrono::Duration::seconds(60)), tmf_supplier_subscriptions::updated_at.eq(Utc::now())))
            .execute(conn)?;
        Ok(Claim::Claimed { old: id })
    })
}

/// Records the registered subscription (or, with `None`, that the old one is gone).
pub fn finish_supplier_subscription(conn: &mut PgConnection, supplier: &str, api: &str, subscription_id: Option<&str>, callback: &str) -> StoreResult<()> {
    diesel::update(tmf_supplier_subscriptions::table.find((supplier, api)))
        .set((
            tmf_supplier_subscriptions::subscription_id.eq(subscription_id),
            tmf_supplier_subscriptions::callback.eq(callback),
            tmf_supplier_subscriptions::claimed_until.eq(None::<DateTime<Utc>>),
            tmf_supplier_subscriptions::updated_at.eq(Utc::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Gives a claim up after a failure, so the next attempt (by any process) can take it.
pub fn release_supplier_claim(conn: &mut PgConnection, supplier: &str, api: &str) -> StoreResult<()> {
    diesel::update(tmf_supplier_subscriptions::table.find((supplier, api))).set(tmf_supplier_subscriptions::claimed_until.eq(None::<DateTime<Utc>>)).execute(conn)?;
    Ok(())
}

/// The hub's subscription id to `api` at `supplier`, if registered.
pub fn supplier_subscription(conn: &mut PgConnection, supplier: &str, api: &str) -> StoreResult<Option<(String, String)>> {
    Ok(tmf_supplier_subscriptions::table
        .find((supplier, api))
        .select((tmf_supplier_subscriptions::subscription_id, tmf_supplier_subscriptions::callback))
        .first::<(Option<String>, String)>(conn)
        .optional()?
        .and_then(|(id, cb)| id.map(|id| (id, cb))))
}
