//! Exchange and queue names, and their declaration.
//!
//! - `<prefix>.events`: topic exchange every outbox message is published to. Domain events use
//!   their type as routing key (`incident.status_changed`); dispatch requests use
//!   `dispatch.<supplier>`.
//! - `<prefix>.dispatch.<supplier>`: durable quorum queue per supplier, bound to
//!   `dispatch.<supplier>`, with `x-delivery-limit` and dead-lettering to `<prefix>.dlx`.
//! - `<prefix>.dlx` -> `<prefix>.dead`: what the broker gave up on, recorded by the hub in its
//!   dead-letter list.
//! - `<prefix>.tmf621.notify`: quorum queue bound to `incident.#` (and `tmf621.notify`, for
//!   replayed notifications), feeding the event notifications of the hub's TMF621 API.

use crate::config::BrokerSettings;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    pub delivery_limit: i64,
    pub confirm_window: i64,
    pub queue_expires_ms: Option<i64>,
    pub suppliers: Vec<String>,
}

impl Topology {
    pub fn new(settings: &BrokerSettings, suppliers: Vec<String>) -> Self {
        Topology {
            prefix: settings.prefix.clone(),
            delivery_limit: settings.delivery_limit,
            confirm_window: settings.confirm_window,
            queue_expires_ms: settings.queue_expires_ms,
            suppliers,
        }
    }

    pub fn exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }
    pub fn dlx(&self) -> String {
        format!("{}.dlx", self.prefix)
    }
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    pub fn dispatch_queue(&self, supplier: &str) -> String {
        format!("{}.dispatch.{supplier}", self.prefix)
    }
    pub fn tmf621_notify_queue(&self) -> String {
        format!("{}.tmf621.notify", self.prefix)
    }

    /// Whether a message with this routing key is work for the hub's own queues (a dispatch, a
    /// TMF621 event notification) and is lost if no queue takes it. Other events are broadcasts
    /// for whoever binds to them; with no one bound, no one wants them.
    pub fn must_route(&self, routing_key: &str) -> bool {
        routing_key.starts_with("dispatch.") || routing_key.starts_with("incident.") || routing_key == "tmf621.notify"
    }

    fn quorum_args(&self, dead_letter: bool) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
        if dead_letter {
            args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(self.delivery_limit));
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from(self.dlx())));
        }
        if let Some(ms) = self.queue_expires_ms {
            args.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
        }
        args
    }

    pub async fn declare(&self, ch: &Channel) -> Result<(), String> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        let e = |e: lapin::Error| e.to_string();
        ch.exchange_declare(&self.exchange(), ExchangeKind::Topic, durable, FieldTable::default()).await.map_err(e)?;
        ch.exchange_declare(&self.dlx(), ExchangeKind::Fanout, durable, FieldTable::default()).await.map_err(e)?;
        let q = QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare(&self.dead_queue(), q, self.quorum_args(false)).await.map_err(e)?;
        ch.queue_bind(&self.dead_queue(), &self.dlx(), "", QueueBindOptions::default(), FieldTable::default()).await.map_err(e)?;
        let notify = self.tmf621_notify_queue();
        ch.queue_declare(&notify, q, self.quorum_args(true)).await.map_err(e)?;
        for key in ["incident.#", "tmf621.notify"] {
            ch.queue_bind(&notify, &self.exchange(), key, QueueBindOptions::default(), FieldTable::default()).await.map_err(e)?;
        }
        for s in &self.suppliers {
            let name = self.dispatch_queue(s);
            ch.queue_declare(&name, q, self.quorum_args(true)).await.map_err(e)?;
            ch.queue_bind(&name, &self.exchange(), &format!("dispatch.{s}"), QueueBindOptions::default(), FieldTable::default()).await.map_err(e)?;
        }
        Ok(())
    }
}
