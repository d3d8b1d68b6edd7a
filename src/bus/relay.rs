//! The outbox relay: publishes committed outbox rows with publisher confirms, a whole batch in
//! flight at once, and marks them published only once the broker has confirmed them. Work for
//! the hub's own queues is published mandatory: a message the broker cannot route (its queue or
//! binding is gone) comes back, stays unpublished and is tried again a little later. While the
//! database is unreachable it waits for it on the same broker session (ending the session would
//! give the consumers' held deliveries back to the broker, spending their delivery limit).

use super::Topology;
use crate::store::{outbox, Store};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a claimed batch stays ours; a relay that died gives its rows up after this.
const LEASE_SECS: i32 = 30;
/// Seconds before a message the broker could not route is published again.
const UNROUTABLE_RETRY_SECS: i32 = 2;
/// How long the relay waits before asking an unreachable database again.
const STORE_PAUSE: Duration = Duration::from_secs(1);

pub async fn run(channel: lapin::Channel, store: Store, topology: Topology, signal: Arc<Notify>) -> Result<(), String> {
    channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| e.to_string())?;
    let exchange = topology.exchange();
    let window = topology.confirm_window.max(1);
    loop {
        let batch = match store.run(move |c| outbox::claim(c, window, LEASE_SECS)).await {
            Ok(batch) => batch,
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "outbox unreachable; waiting for the database");
                tokio::time::sleep(STORE_PAUSE).await;
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        if batch.is_empty() {
            // Woken by a commit in this process; the timeout covers commits by other hubs.
            let _ = tokio::time::timeout(Duration::from_millis(200), signal.notified()).await;
            continue;
        }
        let mut confirms = Vec::with_capacity(batch.len());
        for m in &batch {
            let body = serde_json::to_vec(&m.payload).map_err(|e| e.to_string())?;
            let kind = m.payload.get("type").and_then(|t| t.as_str()).unwrap_or("").to_string();
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(m.message_id.to_string().into())
                .with_content_type("application/cloudevents+json".into())
                .with_type(kind.into())
                .with_app_id("siam-hub".into());
            let options = BasicPublishOptions { mandatory: topology.must_route(&m.routing_key), ..Default::default() };
            let publish = channel.basic_publish(&exchange, &m.routing_key, options, &body, props);
            let confirm = publish.await.map_err(|e| format!("publishing: {e}"))?;
            confirms.push((m.id, confirm));
        }
        let mut acked = Vec::with_capacity(confirms.len());
        let mut nacked = Vec::new();
        // A returned message travels with whichever confirm the broker sent next: it is known
        // by its message id.
        let mut returned: Vec<(String, String)> = Vec::new();
        for (id, confirm) in confirms {
            match tokio::time::timeout(Duration::from_secs(10), confirm).await {
                Ok(Ok(confirmation)) => {
                    if confirmation.is_nack() {
                        nacked.push(id);
                    } else {
                        acked.push(id);
                    }
                    if let Some(back) = confirmation.take_message() {
                        let message_id = back.delivery.properties.message_id().as_ref().map(|m| m.to_string()).unwrap_or_default();
                        returned.push((message_id, back.reply_text.to_string()));
                    }
                }
                Ok(Err(e)) => return Err(format!("waiting for publisher confirm: {e}")),
                Err(_) => return Err("publisher confirm timed out".into()),
            }
        }
        let mut unroutable = Vec::new();
        for (message_id, reason) in &returned {
            if let Some(m) = batch.iter().find(|m| m.message_id.to_string() == *message_id) {
                tracing::warn!(routing_key = %m.routing_key, message = %message_id, %reason, "the broker could not route the message; it stays in the outbox and is published again");
                unroutable.push(m.id);
            }
        }
        acked.retain(|id| !unroutable.contains(id));
        nacked.retain(|id| !unroutable.contains(id));
        let n = acked.len();
        // What the broker confirmed is marked as soon as the database answers, so it is not
        // published twice.
        loop {
            let (acked, nacked, unroutable) = (acked.clone(), nacked.clone(), unroutable.clone());
            let marked = store
                .run(move |c| {
                    outbox::mark_published(c, &acked)?;
                    if !nacked.is_empty() {
                        outbox::release(c, &nacked)?;
                    }
                    if !unroutable.is_empty() {
                        outbox::postpone(c, &unroutable, UNROUTABLE_RETRY_SECS)?;
                    }
                    Ok(())
                })
                .await;
            match marked {
                Ok(()) => break,
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(error = %e, "cannot mark confirmed outbox rows yet; waiting for the database");
                    tokio::time::sleep(STORE_PAUSE).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        tracing::debug!(published = n, "outbox batch confirmed");
    }
}
