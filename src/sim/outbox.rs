//! How every simulator sends its notifications (webhooks, TMF event notifications): through one
//! ordered background queue, so the hub sees them in commit order; duplicated, reordered or lost
//! only when a test asks; retried on connection errors and 5xx as the real senders do (a 4xx is
//! the receiver's final answer).

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What happens to the next notifications.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// Send every notification twice under the same id (an at-least-once retry).
    pub duplicate: bool,
    /// Send every notification twice, the second time under a new id (two registrations of one
    /// webhook).
    pub duplicate_with_new_identifier: bool,
    /// Hold the next N notifications, then send them newest first.
    pub reverse_order_of_next: usize,
    /// Silently drop the next N notifications (a missed webhook).
    pub drop_next: usize,
}

/// The headers of one attempt (numbered from 1) at sending a notification.
pub type Headers = Arc<dyn Fn(&Notification, u32) -> Vec<(String, String)> + Send + Sync>;

/// One notification: a JSON body POSTed to `url`.
#[derive(Clone)]
pub struct Notification {
    /// Its delivery id; the system's headers carry it where the system sends one.
    pub id: String,
    pub url: String,
    pub body: String,
    pub basic_auth: Option<(String, String)>,
    /// The system's own headers (ids, signatures over a fresh timestamp, retry counters).
    pub headers: Headers,
}

/// A simulator's queue of notifications.
pub struct Outbox {
    name: &'static str,
    attempts: u32,
    pub behaviour: Behaviour,
    held: Vec<Notification>,
    tx: Option<mpsc::UnboundedSender<Vec<Notification>>>,
    /// The runtime the simulator's server runs on, for changes made from outside any runtime.
    pub runtime: Option<tokio::runtime::Handle>,
    http: reqwest::Client,
}

impl Outbox {
    /// `name` prefixes the log lines; `attempts` is how often one notification is tried.
    pub fn new(name: &'static str, attempts: u32) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Outbox { name, attempts: attempts.max(1), behaviour: Behaviour::default(), held: Vec::new(), tx: None, runtime: None, http }
    }

    /// Queues a notification, as the behaviour asked for says.
    pub fn push(&mut self, n: Notification) {
        let b = &mut self.behaviour;
        if b.drop_next > 0 {
            b.drop_next -= 1;
            tracing::debug!(sim = self.name, delivery = %n.id, "dropping a notification on request");
            return;
        }
        let mut batch = vec![n];
        if b.reverse_order_of_next > 0 {
            self.held.append(&mut batch);
            if self.held.len() < b.reverse_order_of_next {
                return;
            }
            batch = std::mem::take(&mut self.held);
            batch.reverse();
            b.reverse_order_of_next = 0;
        }
        if b.duplicate {
            batch = batch.into_iter().flat_map(|n| [n.clone(), n]).collect();
        }
        if b.duplicate_with_new_identifier {
            batch = batch.into_iter().flat_map(|n| [n.clone(), Notification { id: uuid::Uuid::new_v4().to_string(), ..n }]).collect();
        }
        self.send(batch);
    }

    /// Hands a batch to the delivery worker, (re)starting it when needed: the worker dies with
    /// its runtime, which happens between tests.
    fn send(&mut self, batch: Vec<Notification>) {
        if self.tx.as_ref().is_none_or(|tx| tx.is_closed()) {
            let Some(runtime) = tokio::runtime::Handle::try_current().ok().or_else(|| self.runtime.clone()) else {
                tracing::warn!(sim = self.name, "no tokio runtime; notification lost");
                return;
            };
            let (tx, rx) = mpsc::unbounded_channel();
            runtime.spawn(worker(rx, self.http.clone(), self.name, self.attempts));
            self.tx = Some(tx);
        }
        if let Some(tx) = &self.tx {
            if tx.send(batch).is_err() {
                tracing::warn!(sim = self.name, "notification worker gone; notification lost");
            }
        }
    }
}

/// Drains batches in order, one notification at a time.
async fn worker(mut rx: mpsc::UnboundedReceiver<Vec<Notification>>, http: reqwest::Client, name: &'static str, attempts: u32) {
    while let Some(batch) = rx.recv().await {
        for n in batch {
            deliver(&http, &n, name, attempts).await;
        }
    }
}

async fn deliver(http: &reqwest::Client, n: &Notification, name: &'static str, attempts: u32) {
    let mut backoff = Duration::from_millis(200);
    for attempt in 1..=attempts {
        let mut req = http.post(&n.url).header("Content-Type", "application/json").body(n.body.clone());
        if let Some((user, password)) = &n.basic_auth {
            req = req.basic_auth(user, Some(password));
        }
        for (k, v) in (n.headers)(n, attempt) {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(r) if !r.status().is_server_error() => return,
            Ok(r) => tracing::warn!(sim = name, delivery = %n.id, status = %r.status(), attempt, "notification answered 5xx"),
            Err(e) => tracing::warn!(sim = name, delivery = %n.id, error = %e, attempt, "notification failed"),
        }
        if attempt < attempts {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
}
