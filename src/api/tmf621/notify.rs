//! Event notifications to subscribers of the hub's TMF621 API.
//!
//! A consumer of the `<prefix>.tmf621.notify` queue (bound to `incident.#` on the events
//! exchange) turns each hub event into its TMF621 event (`TroubleTicketCreateEvent`,
//! `...StatusChangeEvent`, `...AttributeValueChangeEvent`; internal notes never), with the ticket
//! as it stands, and in one transaction queues it for every matching subscription that has not
//! had it (the subscription's inbox, so a redelivered message reaches only who has not had it);
//! then it acknowledges. Nothing is posted on the consumer's time.
//!
//! The delivery workers ([`Deliveries::run`]) post each subscription's queue to
//! `{callback}/listener/{eventName}` in order, one notification in flight per subscription and
//! every subscription in parallel, retrying with backoff: a dead or slow subscriber delays no
//! one else. A subscriber that has failed for longer than the retry budget, or has more than
//! `max_pending_deliveries` waiting, gets its waiting notifications as dead letters of its own
//! (listed with the reason, replayable to it alone). Callbacks are posted through the egress
//! policy ([`crate::adapters::egress`]), which checks their address on every connection.

use super::render;
use crate::adapters::egress::{self, AddressPolicy};
use crate::bus::{Handler, Incoming, Outcome};
use crate::config::{Settings, Tmf621HubSettings};
use crate::store::{deadletters, outbox, tmf621 as tmf_store, Store, StoreError};
use chrono::Utc;
use diesel::PgConnection;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Routing key of replayed dead letters (bound to the notification queue only).
pub const REPLAY_KEY: &str = "tmf621.notify";
/// The member of a replayed payload naming the subscriptions still owed the event.
pub const OWED: &str = "tmf621_subscriptions";
/// Longest wait between two attempts at one notification.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The notification queue's handler and the delivery workers, sharing a wake-up signal.
pub struct Deliveries {
    store: Store,
    /// Prefixes the tickets' `href`.
    base_url: String,
    settings: Tmf621HubSettings,
    addresses: AddressPolicy,
    http: reqwest::Client,
    wake: Notify,
}

impl Deliveries {
    pub fn new(store: Store, base_url: String, settings: &Settings) -> Result<Arc<Deliveries>, String> {
        let addresses = AddressPolicy::new(&settings.egress)?;
        let http = addresses.client(Duration::from_secs(settings.tmf621_hub.delivery_timeout_secs.max(1)), reqwest::redirect::Policy::none())?;
        Ok(Arc::new(Deliveries { store, base_url, settings: settings.tmf621_hub.clone(), addresses, http, wake: Notify::new() }))
    }

    /// The handler of the notification queue.
    pub fn handler(self: &Arc<Self>) -> Handler {
        let this = self.clone();
        Arc::new(move |msg: Incoming| {
            let this = this.clone();
            Box::pin(async move {
                match this.queue(&msg).await {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::store_failure(&e),
                }
            })
        })
    }

    /// Queues the TMF621 event of one hub event for its subscribers.
    async fn queue(&self, msg: &Incoming) -> Result<(), StoreError> {
        let p = &msg.payload;
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
        let data = p.get("data").cloned().unwrap_or(Value::Null);
        let Some((event_type, field_path)) = render::event_for(kind, &data) else { return Ok(()) };
        let Some(reference) = p.get("subject").and_then(Value::as_str).map(str::to_string) else { return Ok(()) };
        let owed: Option<Vec<String>> = p.get(OWED).and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
        let r = reference.clone();
        let loaded = self
            .store
            .run(move |c| {
                let subs: Vec<tmf_store::Subscription> = tmf_store::subscriptions(c)?
                    .into_iter()
                    .filter(|s| render::query_wants(&s.query, event_type))
                    .filter(|s| owed.as_ref().is_none_or(|o| o.contains(&s.id.to_string())))
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
        // A supplier-scoped subscription hears only of tickets its supplier may see.
        let subs: Vec<tmf_store::Subscription> =
            subs.into_iter().filter(|s| s.supplier_id.as_ref().is_none_or(|sup| incident.supplier_access(sup) != crate::domain::SupplierAccess::None)).collect();
        if subs.is_empty() {
            return Ok(());
        }
        let ticket = render::trouble_ticket(&self.base_url, &incident, ext.as_deref(), &history);
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
        let (message_id, message, max_pending) = (msg.message_id.clone(), p.clone(), self.settings.max_pending_deliveries);
        self.store
            .tx(move |c| {
                for sub in &subs {
                    if !outbox::mark_seen(c, &inbox_consumer(sub.id), &message_id)? {
                        continue;
                    }
                    let d =
                        tmf_store::NewDelivery { subscription_id: sub.id, message_id: &message_id, event_type, incident_ref: &reference, envelope: &envelope, message: &message };
                    tmf_store::queue_delivery(c, &d)?;
                    let waiting = tmf_store::pending_deliveries(c, sub.id)?;
                    if waiting > max_pending {
                        let why = format!("{waiting} notifications were waiting for it, more than max_pending_deliveries ({max_pending})");
                        dead_letter_waiting(c, sub.id, &sub.callback, &why)?;
                    }
                }
                Ok(())
            })
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Runs the delivery workers until shutdown: one task per subscription with notifications
    /// due, posting them in order.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut running: HashMap<uuid::Uuid, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            running.retain(|_, task| !task.is_finished());
            let mut wait = Duration::from_secs(1);
            match self.store.run(tmf_store::due_subscriptions).await {
                Ok((due, next)) => {
                    for sub in due {
                        running.entry(sub).or_insert_with(|| {
                            let this = self.clone();
                            tokio::spawn(async move { this.drain(sub).await })
                        });
                    }
                    if let Some(at) = next {
                        wait = wait.min((at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the TMF621 notifications waiting"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(20))) => {}
                _ = shutdown.changed() => break,
            }
        }
        // A notification cut off in flight is posted again once its lease ends.
        for (_, task) in running {
            task.abort();
        }
    }

    /// Posts one subscription's due notifications in order, until none is due or one fails.
    async fn drain(&self, subscription: uuid::Uuid) {
        let timeout = self.settings.delivery_timeout_secs.max(1);
        let lease = i64::try_from(timeout * 2 + 10).unwrap_or(60);
        loop {
            let claimed = match self.store.run(move |c| tmf_store::claim_delivery(c, subscription, lease)).await {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(%subscription, error = %e, "cannot claim a TMF621 notification");
                    return;
                }
            };
            let (delivery, callback) = claimed;
            let outcome = self.post(&callback, &delivery.event_type, &delivery.envelope).await;
            let id = delivery.id;
            let result = match outcome {
                Ok(()) => self.store.run(move |c| tmf_store::delivery_done(c, id)).await,
                Err(error) => {
                    let now = Utc::now();
                    let budget = chrono::Duration::seconds(i64::try_from(self.settings.retry_budget_secs).unwrap_or(i64::MAX / 1000));
                    let failing_since = delivery.failing_since.unwrap_or(now);
                    if now - failing_since >= budget {
                        let why = format!("{error} (failing for {} s, over the retry budget)", (now - failing_since).num_seconds());
                        tracing::warn!(%subscription, %callback, reason = %why, "TMF621 subscriber's notifications dead-lettered");
                        self.store.tx(move |c| dead_letter_waiting(c, subscription, &callback, &why).map(|_| ())).await
                    } else {
                        let backoff = Duration::from_millis(200).saturating_mul(2u32.saturating_pow(delivery.attempts.clamp(0, 16) as u32)).min(MAX_BACKOFF);
                        let next = now + chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::seconds(60));
                        tracing::info!(%subscription, %callback, %error, retry_in = ?backoff, "TMF621 subscriber did not take a notification");
                        let _ = self.store.run(move |c| tmf_store::delivery_failed(c, id, &error, next)).await;
                        // The supervisor starts this subscription again when the retry is due.
                        self.wake.notify_one();
                        return;
                    }
                }
            };
            if let Err(e) = result {
                tracing::warn!(%subscription, error = %e, "cannot record a TMF621 notification's outcome");
                return;
            }
        }
    }

    /// One attempt at posting an event to a subscriber's listener.
    async fn post(&self, callback: &str, event_type: &str, body: &Value) -> Result<(), String> {
        let url = url::Url::parse(&format!("{}/listener/{}", callback.trim_end_matches('/'), listener_name(event_type))).map_err(|e| format!("callback is not a URL: {e}"))?;
        self.addresses.check_url(&url)?;
        match self.http.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status())),
            Err(e) => Err(match egress::refusal(&e) {
                Some(why) => format!("refused: {why}"),
                None if e.is_timeout() => "did not answer in time".to_string(),
                None => format!("unreachable: {e}"),
            }),
        }
    }
}

/// The inbox consumer of one subscription.
fn inbox_consumer(subscription: uuid::Uuid) -> String {
    format!("tmf621-notify:{subscription}")
}

fn listener_name(event_type: &str) -> String {
    let mut c = event_type.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

/// Moves every notification waiting for a subscription to the dead-letter list, each replayable
/// to that subscription alone.
fn dead_letter_waiting(c: &mut PgConnection, subscription: uuid::Uuid, callback: &str, why: &str) -> Result<usize, StoreError> {
    let waiting = tmf_store::take_deliveries(c, subscription)?;
    for d in &waiting {
        let mut owed = d.message.clone();
        if let Some(o) = owed.as_object_mut() {
            o.insert(OWED.into(), json!([subscription.to_string()]));
        }
        let last = d.last_error.as_deref().filter(|e| !why.starts_with(*e)).map(|e| format!(" (last answer: {e})")).unwrap_or_default();
        let reason = format!("TMF621 subscriber {callback} did not take {}: {why}{last}", d.event_type);
        deadletters::insert(
            c,
            &deadletters::NewDeadLetter {
                message_id: uuid::Uuid::parse_str(&d.message_id).unwrap_or_else(|_| uuid::Uuid::now_v7()),
                routing_key: REPLAY_KEY,
                payload: &owed,
                supplier_id: None,
                incident_ref: Some(&d.incident_ref),
                reason: &reason,
            },
        )?;
    }
    Ok(waiting.len())
}
