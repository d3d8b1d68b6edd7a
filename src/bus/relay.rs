//! The outbox relay: publishes committed outbox rows with publisher confirms, a whole batch in
//! flight at once, and marks them published only once the broker has confirmed them. While the
//! database is unreachable it waits for it on the same broker session (ending the session would
//! give the consumers' held deliveries back to the broker, spending their delivery limit).

use super::Topology;
use crate::store::{outbox, Store};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::BasicProperties;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a claimed batch stays ours; a relay that died gives its rows up after this.
const LEASE_SECS: i32 = 30;
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
            let publish = channel.basic_publish(&exchange, &m.routing_key, BasicPublishOptions::default(), &body, props);
            let confirm = publish.await.map_err(|e| format!("publishing: {e}"))?;
            confirms.push((m.id, confirm));
        }
        let mut acked = Vec::with_capacity(confirms.len());
        let mut nacked = Vec::new();
        for (id, confirm) in confirms {
            match tokio::time::timeout(Duration::from_secs(10), confirm).await {
                Ok(Ok(Confirmation::Nack(_))) => nacked.push(id),
                Ok(Ok(_)) => acked.push(id),
                Ok(Err(e)) => return Err(format!("waiting for publisher confirm: {e}")),
                Err(_) => return Err("publisher confirm timed out".into()),
            }
        }
        let n = acked.len();
        // What the broker confirmed is marked as soon as the database answers, so it is not
        // published twice.
        loop {
            let (acked, nacked) = (acked.clone(), nacked.clone());
            let marked = store
                .run(move |c| {
                    outbox::mark_published(c, &acked)?;
                    if !nacked.is_empty() {
                        outbox::release(c, &nacked)?;
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
