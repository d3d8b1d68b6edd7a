//! Housekeeping: published outbox messages and handled-message ids are pruned after their
//! retention, content of uploads never finished is deleted, and pruning from several hubs at
//! once is harmless.

use crate::helpers::*;
use diesel::prelude::*;
use diesel::sql_query;
use reqwest::StatusCode;
use siam_hub::store::housekeeping::{prune, Retention};
use siam_hub::store::{attachments, Store};

const HOUSEKEEPING: &str = r#"
[housekeeping]
interval_secs = 1
outbox_retention_secs = 60
inbox_retention_secs = 86400
stale_upload_secs = 3600
"#;

async fn count(store: &Store, sql: &'static str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    store.run(move |c| Ok(sql_query(sql).get_result::<N>(c)?.n)).await.unwrap()
}

async fn exec(store: &Store, sql: &'static str) {
    store.run(move |c| Ok(sql_query(sql).execute(c)?)).await.unwrap();
}

/// Makes what the hub has published and handled so far look old enough to prune.
async fn age(store: &Store) {
    exec(store, "UPDATE outbox SET published_at = now() - interval '2 minutes' WHERE published_at IS NOT NULL").await;
    exec(store, "UPDATE inbox SET processed_at = now() - interval '2 days'").await;
}

#[tokio::test]
async fn old_messages_and_abandoned_uploads_are_pruned_and_nothing_else() {
    let hub = TestHub::spawn_with(Options { extra_toml: HOUSEKEEPING.into(), ..Default::default() }).await;
    let store = hub.app().store.clone();
    let (r, _) = hub.open_ticket("Pruned later").await;
    let kept = hub.attach(&r, "kept.txt", "text/plain", b"a file on record".to_vec()).await;
    assert_eq!(kept.status(), StatusCode::CREATED);
    let kept: serde_json::Value = kept.json().await.unwrap();
    hub.settle(&r).await;
    assert!(count(&store, "SELECT count(*) AS n FROM inbox").await > 0);

    age(&store).await;
    // A message the relay has not published yet, and a message handled just now.
    exec(&store, "INSERT INTO outbox (message_id, routing_key, payload, created_at, lease_until) VALUES (gen_random_uuid(), 'dispatch.nowhere', '{}', now() - interval '30 days', now() + interval '1 hour')").await;
    exec(&store, "INSERT INTO inbox (consumer, message_id) VALUES ('test', 'just now')").await;
    // An upload the hub stopped in the middle of two hours ago, and one under way.
    let (abandoned, under_way) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    store.run(move |c| attachments::stage_chunk(c, abandoned, 0, b"half a file")).await.unwrap();
    store.run(move |c| attachments::stage_chunk(c, under_way, 0, b"arriving")).await.unwrap();
    store
        .run(move |c| {
            Ok(sql_query("UPDATE staged_uploads SET touched_at = now() - interval '2 hours' WHERE upload_id = $1").bind::<diesel::sql_types::Uuid, _>(abandoned).execute(c)?)
        })
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while count(&store, "SELECT count(*) AS n FROM outbox WHERE published_at IS NOT NULL").await > 0
        || count(&store, "SELECT count(*) AS n FROM inbox WHERE consumer <> 'test'").await > 0
        || count(&store, "SELECT count(*) AS n FROM staged_uploads").await > 1
    {
        assert!(tokio::time::Instant::now() < deadline, "housekeeping never pruned");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(count(&store, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL").await, 1, "unpublished messages are never pruned");
    assert_eq!(count(&store, "SELECT count(*) AS n FROM inbox").await, 1, "recently handled ids stay");
    let chunks = |id: uuid::Uuid| {
        let store = store.clone();
        async move {
            use siam_hub::store::schema::blob_chunks;
            store.run(move |c| Ok(blob_chunks::table.filter(blob_chunks::upload_id.eq(id)).count().get_result::<i64>(c)?)).await.unwrap()
        }
    };
    assert_eq!(chunks(abandoned).await, 0, "the abandoned upload's content is gone");
    assert_eq!(chunks(under_way).await, 1, "an upload under way keeps its content");
    let back = hub.get_as(&format!("/api/v1/incidents/{r}/attachments/{}", kept["id"]), &hub.keys.service_desk).await;
    assert_eq!(back.bytes().await.unwrap().as_ref(), b"a file on record", "filed content is never pruned");

    // Several hubs pruning at once share the work; nothing fails and nothing is left.
    hub.settle(&r).await;
    hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &serde_json::json!({"text": "more", "visibility": "internal"})).await;
    hub.settle(&r).await;
    age(&store).await;
    let retention = Retention { outbox_secs: 60, inbox_secs: 86400, stale_upload_secs: 3600 };
    let (a, b) = tokio::join!(store.run(move |c| prune(c, &retention)), store.run(move |c| prune(c, &retention)));
    a.unwrap();
    b.unwrap();
    assert_eq!(count(&store, "SELECT count(*) AS n FROM outbox WHERE published_at < now() - interval '1 minute'").await, 0);
    assert_eq!(count(&store, "SELECT count(*) AS n FROM inbox WHERE processed_at < now() - interval '1 day'").await, 0);
    hub.finish().await;
}
