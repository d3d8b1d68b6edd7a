//! Event notifications to subscribers of the hub's TMF621 API.
//!
//! A consumer of the `<prefix>.tmf621.notify` queue (bound to `incident.#` on the events
//! exchange) turns each hub event into its TMF621 event (`TroubleTicketCreateEvent`,
//! `...StatusChangeEvent`, `...AttributeValueChangeEvent`; internal notes never) and POSTs it,
//! with the ticket as it stands, to `{callback}/listener/{eventName}` of every matching
//! subscription. Each delivery is remembered per subscription (the inbox), so a redelivered
//! message reaches only who has not had it. A subscriber that still fails after a few quick
//! attempts gets a dead letter of its own (listed with the reason, replayable to it alone)
//! instead of holding the queue up for everyone else.

use super::render;
use crate::bus::{Handler, Incoming, Outcome};
use crate::store::{deadletters, outbox, tmf621 as tmf_store, Store, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Routing key of replayed dead letters (bound to the notification queue only).
pub const REPLAY_KEY: &str = "tmf621.notify";
/// The member of a replayed payload naming the subscriptions still owed the event.
pub const OWED: &str = "tmf621_subscriptions";
const ATTEMPTS: u32 = 3;

/// The handler of the notification queue. `base_url` prefixes the tickets' `href`.
pub fn handler(store: Store, base_url: String) -> Handler {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    Arc::new(move |msg: Incoming| {
        let (store, http, base_url) = (store.clone(), http.clone(), base_url.clone());
        Box::pin(async move {
            match handle(&store, &http, &base_url, &msg).await {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::store_failure(&e),
            }
        })
    })
}

fn listener_name(event_type: &str) -> String {
    let mut c = event_type.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
        }
        match http.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("answered {}", r.status()),
            Err(e) => last = format!("unreachable: {e}"),
        }
    }
    Err(last)
}

async fn handle(store: &Store, http: &reqwest::Client, base_url: &str, msg: &Incoming) -> Result<(), StoreError> {
    let p = &msg.payload;
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
    let data = p.get("data").cloned().unwrap_or(Value::Null);
    let Some((event_type, field_path)) = render::event_for(kind, &data) else { return Ok(()) };
    let Some(reference) = p.get("subject").and_then(Value::as_str).map(str::to_string) else { return Ok(()) };
    let owed: Option<Vec<String>> = p.get(OWED).and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
    let message_id = msg.message_id.clone();
    let r = reference.clone();
    let loaded = store
        .run(move |c| {
            let subs: Vec<tmf_store::Subscription> = tmf_store::subscriptions(c)?
                .into_iter()
                .filter(|s| render::query_wants(&s.query, event_type))
                .filter(|s| owed.as_ref().is_none_or(|o| o.contains(&s.id.to_string())))
                .filter(|s| !outbox::seen(c, &format!("tmf621-notify:{}", s.id), &message_id).unwrap_or(false))
                .collect();
            if subs.is_empty() {
                return Ok(None);
            }
            let (id, incident) = match tmf_store::find(c, &r) {
                Ok(found) => found,
                Err(StoreError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let ext = tmf_store::external_ids(c, &[id])?.remove(&id);
            let history = tmf_store::status_history(c, &[id])?.remove(&id).unwrap_or_default();
            Ok(Some((subs, incident, ext, history)))
        })
        .await?;
    let Some((subs, incident, ext, history)) = loaded else { return Ok(()) };
    let ticket = render::trouble_ticket(base_url, &incident, ext.as_deref(), &history);
    let time = p.get("time").cloned().unwrap_or(Value::Null);
    let mut envelope = json!({
        "eventId": msg.message_id,
        "eventTime": time,
        "eventType": event_type,
        // The TMF621 v4 Event model spells it so.
        "timeOcurred": time,
        "correlationId": p.get("correlationid"),
        "domain": "TroubleTicket",
        "title": event_type,
        "event": { "troubleTicket": ticket },
    });
    if let Some(f) = field_path {
        envelope["fieldPath"] = json!(f);
    }
    for sub in subs {
        // A supplier-scoped subscription hears only of tickets its supplier holds a leg in.
        if let Some(s) = &sub.supplier_id {
            if !incident.legs.iter().any(|l| &l.supplier == s) {
                continue;
            }
        }
        let url = format!("{}/listener/{}", sub.callback.trim_end_matches('/'), listener_name(event_type));
        let outcome = post(http, &url, &envelope).await;
        let (consumer, id, payload) = (format!("tmf621-notify:{}", sub.id), msg.message_id.clone(), p.clone());
        let (callback, sub_id, r) = (sub.callback.clone(), sub.id.to_string(), reference.clone());
        store
            .tx(move |c| {
                if let Err(e) = &outcome {
                    let mut owed = payload;
                    if let Some(o) = owed.as_object_mut() {
                        o.insert(OWED.into(), json!([sub_id]));
                    }
                    let reason = format!("TMF621 subscriber {callback} did not take {event_type}: {e}");
                    tracing::warn!(%reason, "TMF621 notification dead-lettered");
                    deadletters::insert(
                        c,
                        &deadletters::NewDeadLetter {
                            message_id: uuid::Uuid::parse_str(&id).unwrap_or_else(|_| uuid::Uuid::now_v7()),
                            routing_key: REPLAY_KEY,
                            payload: &owed,
                            supplier_id: None,
                            incident_ref: Some(&r),
                            reason: &reason,
                        },
                    )?;
                }
                outbox::mark_seen(c, &consumer, &id)?;
                Ok(())
            })
            .await?;
    }
    Ok(())
}
