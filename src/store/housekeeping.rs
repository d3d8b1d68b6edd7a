//! Pruning of what grows with use: published outbox messages and the ids of handled messages
//! once their retention has passed, and the content of uploads that stopped without being
//! finished. Deletes go in small batches that skip rows another hub is deleting, so several hubs
//! pruning at once only share the work.

use super::{Store, StoreResult};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel::PgConnection;
use std::time::Duration;
use tokio::sync::watch;

/// Rows deleted per statement.
const BATCH: i64 = 1000;

/// How long each kind of row is kept, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub outbox_secs: i64,
    pub inbox_secs: i64,
    pub stale_upload_secs: i64,
}

/// What one round deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: usize,
    pub inbox: usize,
    /// Unfinished uploads whose content was deleted.
    pub uploads: usize,
}

/// Runs `statement` (one batch, its `$1` the retention and `$2` the batch size) until a batch
/// deletes less than a full batch; returns the rows deleted.
fn in_batches(conn: &mut PgConnection, statement: &str, secs: i64) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let n = diesel::sql_query(statement).bind::<BigInt, _>(secs).bind::<BigInt, _>(BATCH).execute(conn)?;
        total += n;
        if (n as i64) < BATCH {
            return Ok(total);
        }
    }
}

/// Deletes outbox messages published more than `secs` ago (unpublished ones are never deleted).
pub fn prune_outbox(conn: &mut PgConnection, secs: i64) -> StoreResult<usize> {
    in_batches(
        conn,
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1)
                                         ORDER BY published_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        secs,
    )
}

/// Forgets messages handled more than `secs` ago.
pub fn prune_inbox(conn: &mut PgConnection, secs: i64) -> StoreResult<usize> {
    in_batches(
        conn,
        "DELETE FROM inbox WHERE (consumer, message_id) IN (SELECT consumer, message_id FROM inbox WHERE processed_at < now() - make_interval(secs => $1)
                                                           ORDER BY processed_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        secs,
    )
}

#[derive(QueryableByName)]
struct StaleUpload {
    #[diesel(sql_type = SqlUuid)]
    upload_id: uuid::Uuid,
}

/// Deletes the staged content of uploads nothing was added to for `secs` and that were never
/// filed (the hub stopped mid-upload); returns how many uploads.
pub fn clean_stale_uploads(conn: &mut PgConnection, secs: i64) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let n = conn.transaction(|conn| {
            let stale: Vec<StaleUpload> = diesel::sql_query(
                "DELETE FROM staged_uploads WHERE upload_id IN (SELECT upload_id FROM staged_uploads WHERE touched_at < now() - make_interval(secs => $1)
                                                                ORDER BY touched_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING upload_id",
            )
            .bind::<BigInt, _>(secs)
            .bind::<BigInt, _>(BATCH)
            .load(conn)?;
            let ids: Vec<uuid::Uuid> = stale.iter().map(|s| s.upload_id).collect();
            // Content a blob points at was filed after all: it stays.
            diesel::sql_query("DELETE FROM blob_chunks c WHERE c.upload_id = ANY($1) AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.upload_id = c.upload_id)")
                .bind::<diesel::sql_types::Array<SqlUuid>, _>(&ids)
                .execute(conn)?;
            StoreResult::Ok(ids.len())
        })?;
        total += n;
        if (n as i64) < BATCH {
            return Ok(total);
        }
    }
}

/// One round of pruning.
pub fn prune(conn: &mut PgConnection, r: &Retention) -> StoreResult<Pruned> {
    Ok(Pruned { outbox: prune_outbox(conn, r.outbox_secs)?, inbox: prune_inbox(conn, r.inbox_secs)?, uploads: clean_stale_uploads(conn, r.stale_upload_secs)? })
}

/// Prunes every `every` until shutdown, starting at once.
pub async fn run(store: Store, retention: Retention, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        match store.run(move |c| prune(c, &retention)).await {
            Ok(p) if p != Pruned::default() => tracing::info!(outbox = p.outbox, inbox = p.inbox, uploads = p.uploads, "housekeeping pruned old rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping round failed; trying again next round"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}
