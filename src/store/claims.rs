//! Claims on a ticket's messages that hold across hub processes.
//!
//! Two hubs may consume one broker prefix (a rolling restart, a second node for throughput).
//! Within a process the bus handles one ticket's messages one at a time; across processes it
//! claims the ticket first with a PostgreSQL session advisory lock, so two hubs never dispatch
//! one ticket at once (two creates racing past each other's look-before-write, a note appended
//! twice). The locks live on one connection of their own per consumer, outside the pool: a lock
//! is held for a whole delivery while the handler uses pooled connections, and a hub that dies
//! (even by `kill -9`) frees its claims when PostgreSQL sees its connection close. If that
//! connection breaks (PostgreSQL restarted), the claims it held are gone: deliveries in flight
//! finish unclaimed, as their handlers meet the same outage and wait.

use super::{StoreError, StoreResult};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use std::sync::{Arc, Mutex};

/// One connection's claims. Clones share the connection.
#[derive(Clone)]
pub struct Claims {
    url: String,
    conn: Arc<Mutex<Option<PgConnection>>>,
}

#[derive(QueryableByName)]
struct Answer {
    #[diesel(sql_type = Bool)]
    ok: bool,
}

impl Claims {
    pub(super) fn new(url: &str) -> Claims {
        Claims { url: url.to_string(), conn: Arc::new(Mutex::new(None)) }
    }

    /// Claims `key` unless another session holds it: `Ok(false)` then. Claims are re-entrant
    /// within one `Claims`, so callers keep their own one-at-a-time per key.
    pub async fn try_claim(&self, key: &str) -> StoreResult<bool> {
        self.ask("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok", key).await
    }

    /// Gives `key` back. A claim that cannot be given back (the connection broke) is freed by
    /// PostgreSQL with the connection, which is then dropped.
    pub async fn release(&self, key: &str) -> StoreResult<()> {
        self.ask("SELECT pg_advisory_unlock(hashtextextended($1, 0)) AS ok", key).await.map(|_| ())
    }

    async fn ask(&self, sql: &'static str, key: &str) -> StoreResult<bool> {
        let (url, conn, key) = (self.url.clone(), self.conn.clone(), key.to_string());
        tokio::task::spawn_blocking(move || {
            let mut slot = conn.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some(PgConnection::establish(&url).map_err(|e| StoreError::Pool(e.to_string()))?);
            }
            let Some(c) = slot.as_mut() else { return Err(StoreError::Pool("no connection for claims".into())) };
            match diesel::sql_query(sql).bind::<Text, _>(&key).get_result::<Answer>(c) {
                Ok(a) => Ok(a.ok),
                Err(e) => {
                    // Whatever the connection held is gone or going with it.
                    *slot = None;
                    Err(StoreError::Pool(e.to_string()))
                }
            }
        })
        .await
        .map_err(|e| StoreError::Pool(format!("worker stopped: {e}")))?
    }
}
