//! The broker: RabbitMQ through lapin.
//!
//! [`Bus::run`] supervises one connection at a time: connect (with a timeout), declare the
//! topology, then run the outbox relay and the consumers on it. When the broker goes away or
//! any of them fails, everything on that connection stops and the supervisor starts again
//! after a backoff; nothing is lost because unconfirmed outbox rows are simply republished and
//! unacknowledged deliveries are redelivered. (lapin's own recovery does not survive a broker
//! restart, hence a supervisor of our own.)
//!
//! A redelivery counts against a queue's delivery limit, so only failures a redelivery may cure
//! are given back to the broker ([`Outcome::Retry`]). When the hub itself cannot work (its
//! database is unreachable) the consumer holds the delivery and runs its handler again after a
//! pause ([`Outcome::Wait`]); with every delivery of its prefetch held, it takes no more.

mod relay;
pub mod topology;

use crate::store::claims::Claims;
use crate::store::{deadletters, Store, StoreError};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
pub use topology::Topology;

/// A delivery as handlers see it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub message_id: String,
    pub routing_key: String,
    /// The CloudEvent; `Null` if the body was not JSON.
    pub payload: serde_json::Value,
    pub redelivered: bool,
    /// For dead-lettered messages: why the broker gave up on them.
    pub death: Option<String>,
}

/// What a handler made of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or already done before): acknowledge.
    Done,
    /// A fault a later delivery may not meet: redeliver later (the queue's delivery limit applies).
    Retry(String),
    /// The hub itself cannot work now (its database is unreachable): hold the delivery and run
    /// the handler again after a pause, without spending the delivery limit on the hub's outage.
    Wait(String),
    /// Give up: record it in the dead-letter list with this reason, then acknowledge.
    Dead(String),
}

impl Outcome {
    /// What a store failure means for a delivery: wait while the database is unreachable,
    /// otherwise redeliver.
    pub fn store_failure(e: &StoreError) -> Outcome {
        if e.is_unavailable() {
            Outcome::Wait(e.to_string())
        } else {
            Outcome::Retry(e.to_string())
        }
    }
}

/// The first pause of a held delivery; each further one doubles, up to [`WAIT_MAX`].
const WAIT_FIRST: Duration = Duration::from_millis(250);
const WAIT_MAX: Duration = Duration::from_secs(5);

pub type Handler = Arc<dyn Fn(Incoming) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// A queue and what handles its messages.
#[derive(Clone)]
pub struct ConsumerSpec {
    pub queue: String,
    /// The supplier a dispatch queue serves, recorded on its dead letters.
    pub supplier: Option<String>,
    pub prefetch: u16,
    pub handler: Handler,
}

#[derive(Clone)]
pub struct Bus {
    url: String,
    pub topology: Topology,
    store: Store,
    /// Wakes the relay as soon as something is written to the outbox.
    pub outbox_signal: Arc<Notify>,
    connected: watch::Sender<bool>,
    exclusion: Arc<Exclusion>,
}

impl Bus {
    pub fn new(url: &str, topology: Topology, store: Store) -> Bus {
        let (connected, _) = watch::channel(false);
        let exclusion = Arc::new(Exclusion { locks: SubjectLocks::default(), claims: store.claims() });
        Bus { url: url.to_string(), topology, store, outbox_signal: Arc::new(Notify::new()), connected, exclusion }
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    pub fn watch_connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    /// Runs until `shutdown` turns true: connection supervision, relay and consumers.
    pub async fn run(self, consumers: Vec<ConsumerSpec>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.connect().await {
                Ok(conn) => {
                    backoff = Duration::from_millis(250);
                    tracing::info!(broker = %crate::store::redact(&self.url), "connected to RabbitMQ");
                    let ended = self.session(&conn, &consumers, &mut shutdown).await;
                    self.connected.send_replace(false);
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "hub restarting broker session")).await;
                    match ended {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(error = %e, "broker session ended; reconnecting"),
                    }
                }
                Err(e) => {
                    tracing::warn!("RabbitMQ is not reachable at {} ({e}); start it with `rabbitmq-server -detached`; retrying in {:?}", crate::store::redact(&self.url), backoff);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// The messages waiting in each named supplier's dispatch queue (`None` for a queue the
    /// broker does not have), read by passive declares on a short connection of its own, so
    /// asking never disturbs the consumers' session.
    pub async fn dispatch_depths(&self, suppliers: &[String]) -> Result<Vec<Option<u32>>, String> {
        let props = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio)
            .with_connection_name("siam-hub health".into());
        let conn = tokio::time::timeout(Duration::from_secs(5), Connection::connect(&self.url, props))
            .await
            .map_err(|_| "connecting to RabbitMQ timed out".to_string())?
            .map_err(|e| format!("RabbitMQ: {e}"))?;
        let mut depths = Vec::with_capacity(suppliers.len());
        for s in suppliers {
            // A passive declare of a missing queue closes its channel: one channel per queue.
            let depth = async {
                let ch = conn.create_channel().await.ok()?;
                let q = ch
                    .queue_declare(&self.topology.dispatch_queue(s), lapin::options::QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
                    .await
                    .ok()?;
                let _ = ch.close(200, "depth read").await;
                Some(q.message_count())
            };
            depths.push(tokio::time::timeout(Duration::from_secs(5), depth).await.ok().flatten());
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "depths read")).await;
        Ok(depths)
    }

    async fn connect(&self) -> Result<Connection, String> {
        let props =
            ConnectionProperties::default().with_executor(tokio_executor_trait::Tokio::current()).with_reactor(tokio_reactor_trait::Tokio).with_connection_name("siam-hub".into());
        let conn = tokio::time::timeout(Duration::from_secs(5), Connection::connect(&self.url, props))
            .await
            .map_err(|_| "connection timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(10), self.topology.declare(&channel)).await.map_err(|_| "declaring the topology timed out".to_string())??;
        let _ = channel.close(200, "topology declared").await;
        Ok(conn)
    }

    /// Everything that runs on one connection; returns when it must be rebuilt.
    async fn session(&self, conn: &Connection, consumers: &[ConsumerSpec], shutdown: &mut watch::Receiver<bool>) -> Result<(), String> {
        let (err_tx, mut err_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        conn.on_error(move |e| {
            let _ = err_tx.send(e.to_string());
        });
        let mut tasks: JoinSet<Result<(), String>> = JoinSet::new();
        let relay_channel = conn.create_channel().await.map_err(|e| e.to_string())?;
        tasks.spawn(relay::run(relay_channel, self.store.clone(), self.topology.clone(), self.outbox_signal.clone()));
        let mut all = consumers.to_vec();
        all.push(self.dead_letter_recorder());
        for spec in all {
            let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
            tasks.spawn(consume(channel, spec, self.store.clone(), self.exclusion.clone(), shutdown.clone()));
        }
        self.connected.send_replace(true);
        let result = tokio::select! {
            Some(e) = err_rx.recv() => Err(format!("connection error: {e}")),
            Some(done) = tasks.join_next() => match done {
                Ok(Ok(())) => Err("a broker task stopped".to_string()),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(format!("a broker task failed: {e}")),
            },
            _ = shutdown.changed() => Ok(()),
        };
        tasks.abort_all();
        result
    }

    /// Records what the broker dead-lettered (delivery limit reached) in the dead-letter list.
    fn dead_letter_recorder(&self) -> ConsumerSpec {
        let store = self.store.clone();
        let handler: Handler = Arc::new(move |msg: Incoming| {
            let store = store.clone();
            Box::pin(async move {
                let reason = msg.death.clone().unwrap_or_else(|| "dead-lettered by the broker".into());
                let supplier = msg.routing_key.strip_prefix("dispatch.").map(str::to_string);
                match record_dead(&store, &msg, supplier.as_deref(), &reason).await {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::store_failure(&e),
                }
            })
        });
        ConsumerSpec { queue: self.topology.dead_queue(), supplier: None, prefetch: 16, handler }
    }
}

async fn record_dead(store: &Store, msg: &Incoming, supplier: Option<&str>, reason: &str) -> Result<(), StoreError> {
    let msg = msg.clone();
    let supplier = supplier.map(str::to_string);
    let reason = reason.to_string();
    store
        .run(move |conn| {
            let message_id = uuid::Uuid::parse_str(&msg.message_id).unwrap_or_else(|_| uuid::Uuid::now_v7());
            let incident_ref = msg.payload.get("subject").and_then(|s| s.as_str()).map(str::to_string);
            deadletters::insert(
                conn,
                &deadletters::NewDeadLetter {
                    message_id,
                    routing_key: &msg.routing_key,
                    payload: &msg.payload,
                    supplier_id: supplier.as_deref(),
                    incident_ref: incident_ref.as_deref(),
                    reason: &reason,
                },
            )
            .map(|_| ())
        })
        .await
}

fn death_reason(headers: Option<&FieldTable>) -> Option<String> {
    let deaths = headers?.inner().get("x-death")?;
    let AMQPValue::FieldArray(arr) = deaths else { return None };
    let first = arr.as_slice().first()?;
    let AMQPValue::FieldTable(t) = first else { return None };
    let s = |k: &str| match t.inner().get(k) {
        Some(AMQPValue::LongString(v)) => Some(v.to_string()),
        Some(AMQPValue::ShortString(v)) => Some(v.as_str().to_string()),
        _ => None,
    };
    Some(format!(
        "broker dead-lettered it from queue {} ({})",
        s("queue").unwrap_or_default(),
        s("reason").map(|r| if r == "delivery_limit" { "delivery limit reached".to_string() } else { r }).unwrap_or_default()
    ))
}

/// One ticket's messages one at a time on a queue: within this process (`locks`) and across
/// hub processes (`claims`), while different tickets proceed in parallel (up to each
/// consumer's prefetch). It outlives broker sessions: a handler still finishing a delivery of
/// a session that ended keeps the redelivery of the same message waiting until it is done.
struct Exclusion {
    locks: SubjectLocks,
    claims: Claims,
}

/// Serialises the handling of messages about one key within this process.
#[derive(Default)]
struct SubjectLocks(std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl SubjectLocks {
    fn get(&self, subject: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(subject.to_string()).or_default().clone()
    }
}

async fn consume(channel: lapin::Channel, spec: ConsumerSpec, store: Store, exclusion: Arc<Exclusion>, shutdown: watch::Receiver<bool>) -> Result<(), String> {
    channel.basic_qos(spec.prefetch, BasicQosOptions::default()).await.map_err(|e| e.to_string())?;
    let consumer = channel.basic_consume(&spec.queue, "", BasicConsumeOptions::default(), FieldTable::default()).await.map_err(|e| format!("consuming {}: {e}", spec.queue))?;
    let (fail_tx, mut fail_rx) = tokio::sync::mpsc::channel::<String>(1);
    let work = consumer.for_each_concurrent(usize::from(spec.prefetch.max(1)), |delivery| {
        let (spec, store, exclusion, fail_tx, shutdown) = (spec.clone(), store.clone(), exclusion.clone(), fail_tx.clone(), shutdown.clone());
        async move {
            let result = match delivery {
                // A task of its own: when the broker session ends, the handler still finishes
                // what it started at the supplier (and records it) instead of being dropped
                // with a write in flight; its acknowledgement then fails harmlessly and the
                // redelivery finds the work done.
                Ok(d) => {
                    let queue = spec.queue.clone();
                    tokio::spawn(handle_delivery(d, spec, store, exclusion, shutdown)).await.unwrap_or_else(|e| Err(format!("a handler of {queue} failed: {e}")))
                }
                Err(e) => Err(format!("consumer of {}: {e}", spec.queue)),
            };
            if let Err(e) = result {
                let _ = fail_tx.try_send(e);
            }
        }
    });
    tokio::select! {
        _ = work => Err(format!("consumer of {} was cancelled", spec.queue)),
        Some(e) = fail_rx.recv() => Err(e),
    }
}

/// Pauses a held delivery for `pause`; `false` when the hub stops meanwhile (the delivery then
/// goes back to the queue with the channel).
async fn hold(pause: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = shutdown.changed() => false,
    }
}

/// Claims a ticket's messages against other hub processes, waiting while one of them holds it
/// or while the database is unreachable; `false` when the hub stops meanwhile.
async fn claim_across_processes(claims: &Claims, key: &str, shutdown: &mut watch::Receiver<bool>) -> bool {
    let mut pause = Duration::from_millis(50);
    loop {
        match claims.try_claim(key).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, retry_in = ?pause, "cannot claim a ticket's messages yet; holding the delivery"),
        }
        if !hold(pause, shutdown).await {
            return false;
        }
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Runs the handler until it answers something other than [`Outcome::Wait`]; `None` when the
/// hub stops meanwhile (the delivery then goes back to the queue with the channel).
async fn run_handler(spec: &ConsumerSpec, msg: &Incoming, shutdown: &mut watch::Receiver<bool>) -> Option<Outcome> {
    let mut pause = WAIT_FIRST;
    loop {
        match (spec.handler)(msg.clone()).await {
            Outcome::Wait(reason) => {
                tracing::warn!(queue = %spec.queue, message = %msg.message_id, %reason, retry_in = ?pause, "the hub cannot handle the message now; holding it");
                if !hold(pause, shutdown).await {
                    return None;
                }
                pause = (pause * 2).min(WAIT_MAX);
            }
            other => return Some(other),
        }
    }
}

async fn handle_delivery(
    delivery: lapin::message::Delivery,
    spec: ConsumerSpec,
    store: Store,
    exclusion: Arc<Exclusion>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let (spec, store, shutdown) = (&spec, &store, &mut shutdown);
    let props = &delivery.properties;
    let payload: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap_or(serde_json::Value::Null);
    let message_id = props.message_id().as_ref().map(|m| m.as_str().to_string()).or_else(|| payload.get("id").and_then(|v| v.as_str()).map(str::to_string)).unwrap_or_default();
    let msg =
        Incoming { message_id, routing_key: delivery.routing_key.as_str().to_string(), payload, redelivered: delivery.redelivered, death: death_reason(props.headers().as_ref()) };
    let outcome = if msg.payload.is_null() {
        Outcome::Dead("the message body is not JSON".into())
    } else {
        let subject = msg.payload.get("subject").and_then(|s| s.as_str()).unwrap_or("").to_string();
        let claim = format!("{}\n{subject}", spec.queue);
        let lock = exclusion.locks.get(&claim);
        let _one_at_a_time = lock.lock().await;
        if !subject.is_empty() && !claim_across_processes(&exclusion.claims, &claim, shutdown).await {
            return Ok(());
        }
        let outcome = run_handler(spec, &msg, shutdown).await;
        if !subject.is_empty() {
            if let Err(e) = exclusion.claims.release(&claim).await {
                tracing::warn!(error = %e, "could not release a ticket's claim; it ends with its connection");
            }
        }
        match outcome {
            Some(outcome) => outcome,
            None => return Ok(()),
        }
    };
    match outcome {
        Outcome::Done => delivery.acker.ack(BasicAckOptions::default()).await.map_err(|e| e.to_string())?,
        Outcome::Dead(reason) => {
            tracing::warn!(queue = %spec.queue, message = %msg.message_id, %reason, "dead-lettering message");
            let mut pause = WAIT_FIRST;
            while let Err(e) = record_dead(store, &msg, spec.supplier.as_deref(), &reason).await {
                if !e.is_unavailable() {
                    tracing::error!(error = %e, "cannot record dead letter; leaving it to the broker");
                    delivery.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.map_err(|e| e.to_string())?;
                    return Ok(());
                }
                tracing::warn!(error = %e, retry_in = ?pause, "cannot record dead letter yet; holding the message");
                if !hold(pause, shutdown).await {
                    return Ok(());
                }
                pause = (pause * 2).min(WAIT_MAX);
            }
            delivery.acker.ack(BasicAckOptions::default()).await.map_err(|e| e.to_string())?;
        }
        // The handler loop above answers every `Wait` itself.
        Outcome::Retry(reason) | Outcome::Wait(reason) => {
            tracing::warn!(queue = %spec.queue, message = %msg.message_id, %reason, "will redeliver message");
            tokio::time::sleep(Duration::from_millis(500)).await;
            delivery.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
