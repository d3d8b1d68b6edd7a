//! Failures: rate limiting, server errors, lost answers, exhausted retries, broker outages and
//! hub restarts. Nothing accepted is lost and no supplier ticket is made twice.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use siam_hub::sim::servicenow::Fault;

/// Polls `f` (up to 15 s) until it yields a value.
async fn wait_for_async<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for the dead letter");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let hub = TestHub::spawn().await;
    hub.sim.push_fault(Fault::RateLimited { retry_after_secs: 1 });
    hub.sim.push_fault(Fault::ServerError);
    let started = std::time::Instant::now();
    let doc = hub.raise(&network_incident("Storm")).await;
    let r = doc["ref"].as_str().unwrap();
    hub.wait_incident(r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After: 1 was not honoured");
    let statuses: Vec<u16> = hub.sim.request_log().iter().map(|l| l.status).collect();
    assert!(statuses.starts_with(&[429, 500]), "{statuses:?}");
    assert_eq!(hub.sim.incident_by_correlation(r).len(), 1);
    hub.finish().await;
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_adopted_not_duplicated() {
    let hub = TestHub::spawn().await;
    // The lookup by correlation_id passes, the create commits but its answer is lost.
    hub.sim.push_fault(Fault::Timeout { delay: std::time::Duration::from_millis(1) });
    hub.sim.push_fault(Fault::LoseResponseAfterCommit);
    let doc = hub.raise(&network_incident("Lost answer")).await;
    let r = doc["ref"].as_str().unwrap();
    let doc = hub.wait_incident(r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
    let tickets = hub.sim.incident_by_correlation(r);
    assert_eq!(tickets.len(), 1, "exactly one supplier ticket");
    assert_eq!(doc["legs"][0]["native_id"], tickets[0]["sys_id"]);
    // The retry after the lost answer looked the ticket up instead of posting it again.
    let posts = hub.sim.request_log().iter().filter(|l| l.method == "POST").count();
    assert_eq!(posts, 1, "{:#?}", hub.sim.request_log());
    hub.settle(r).await;
    assert_eq!(hub.sim.incident_by_correlation(r).len(), 1);
    hub.finish().await;
}

#[tokio::test]
async fn a_note_whose_answer_was_lost_is_not_written_twice() {
    let hub = TestHub::spawn().await;
    let doc = hub.raise(&network_incident("Lost note answer")).await;
    let r = doc["ref"].as_str().unwrap();
    let doc = hub.wait_incident(r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
    let sys_id = doc["legs"][0]["native_id"].as_str().unwrap().to_string();
    hub.sim.push_fault(Fault::LoseResponseAfterCommit);
    let resp = hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &json!({"text": "written once", "visibility": "internal"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    wait_for("the note at the supplier", || (!hub.sim.journal(&sys_id).is_empty()).then_some(())).await;
    let settled = hub.settle(r).await;
    let journal = hub.sim.journal(&sys_id);
    assert_eq!(journal.iter().filter(|j| j["value"] == "written once").count(), 1, "{journal:#?}");
    assert_eq!(settled["notes"].as_array().unwrap().len(), 1);
    hub.finish().await;
}

#[tokio::test]
async fn exhausted_retries_land_in_the_dead_letter_list_and_can_be_replayed() {
    let hub = TestHub::spawn_with(Options { max_attempts: 2, ..Default::default() }).await;
    // Both attempts the hub allows itself fail.
    for _ in 0..2 {
        hub.sim.push_fault(Fault::ServerError);
    }
    let doc = hub.raise(&network_incident("Supplier down")).await;
    let r = doc["ref"].as_str().unwrap();
    let doc = hub.wait_incident(r, "the leg to fail", |d| d["legs"][0]["state"] == "failed").await;
    assert!(doc["legs"][0]["last_error"].as_str().unwrap().contains("500"), "{}", doc["legs"][0]);

    // The broker dead-letters the message after the leg is marked failed.
    let list: Value = wait_for_async(|| async {
        let list: Value = hub.get_as("/api/v1/admin/dead-letters", &hub.keys.admin).await.json().await.unwrap();
        (!list["items"].as_array().unwrap().is_empty()).then_some(list)
    })
    .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["incident_ref"], r);
    assert_eq!(items[0]["supplier_id"], SUPPLIER);
    assert!(items[0]["reason"].as_str().unwrap().contains("retries exhausted"), "{}", items[0]);
    let forbidden = hub.get_as("/api/v1/admin/dead-letters", &hub.keys.service_desk).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    // The supplier is back: replaying delivers the ticket, once.
    let id = items[0]["id"].as_i64().unwrap();
    let resp = hub.post(&format!("/api/v1/admin/dead-letters/{id}/replay"), &hub.keys.admin, &json!({})).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let doc = hub.wait_incident(r, "the leg to open after replay", |d| d["legs"][0]["state"] == "open").await;
    assert!(doc["legs"][0].get("last_error").is_none());
    assert_eq!(hub.sim.incident_by_correlation(r).len(), 1);
    let list: Value = hub.get_as("/api/v1/admin/dead-letters", &hub.keys.admin).await.json().await.unwrap();
    assert!(list["items"].as_array().unwrap().is_empty(), "a replayed dead letter leaves the open list");
    hub.finish().await;
}

#[tokio::test]
async fn tickets_accepted_while_the_broker_is_down_are_delivered_when_it_returns() {
    let mut hub = TestHub::spawn_with(Options { broker_proxy: true, ..Default::default() }).await;
    let first = hub.raise(&network_incident("Before the outage")).await;
    hub.wait_sim_ticket(first["ref"].as_str().unwrap()).await;

    hub.proxy.as_ref().unwrap().close();
    let during = hub.raise(&network_incident("During the outage")).await;
    let r = during["ref"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(hub.sim.incident_by_correlation(&r).is_empty(), "nothing can be dispatched without the broker");
    let ready = hub.http.get(hub.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    hub.proxy.as_ref().unwrap().reopen();
    hub.wait_sim_ticket(&r).await;
    hub.wait_incident(&r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
    assert_eq!(hub.sim.incident_by_correlation(&r).len(), 1);
    let _ = &mut hub;
    hub.finish().await;
}

#[tokio::test]
async fn a_hub_restart_mid_flow_loses_nothing() {
    let mut hub = TestHub::spawn().await;
    let doc = hub.raise(&network_incident("Restart")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    let doc = hub.wait_incident(&r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
    let sys_id = doc["legs"][0]["native_id"].as_str().unwrap().to_string();

    // The hub goes down; tickets keep arriving at a second hub whose broker is unreachable,
    // and the supplier keeps working (its webhooks find no one).
    hub.stop().await;
    hub.sim.agent_update(&sys_id, json!({"state": "2", "comments": "on site now"})).unwrap();
    let good_amqp = hub.settings.amqp_url.clone();
    hub.set_amqp_url("amqp://guest:guest@127.0.0.1:1/%2f");
    hub.restart().await;
    let queued = hub.raise(&network_incident("Accepted while the broker is unreachable")).await;
    let q = queued["ref"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(hub.sim.incident_by_correlation(&q).is_empty());

    // Back to normal: the queued ticket is delivered, the missed supplier work is reconciled.
    hub.set_amqp_url(&good_amqp);
    hub.restart().await;
    hub.wait_sim_ticket(&q).await;
    hub.reconcile().await;
    let doc = hub.wait_incident(&r, "the missed update", |d| d["status"] == "in_progress").await;
    assert_eq!(doc["notes"][0]["text"], "on site now");
    assert_eq!(hub.sim.incidents().len(), 2, "one supplier ticket per incident");
    hub.finish().await;
}

#[tokio::test]
async fn a_database_outage_holds_dispatches_instead_of_spending_their_delivery_limit() {
    let hub = TestHub::spawn_with(Options { db_proxy: true, tweak: Some(|s| s.broker.delivery_limit = 2), ..Default::default() }).await;
    // Every supplier call takes a while, so the dispatches are under way when the database goes.
    hub.sim.set_latency(std::time::Duration::from_millis(700));
    let mut refs = vec![];
    for n in 0..6 {
        refs.push(hub.raise(&network_incident(&format!("Raised before the outage {n}"))).await["ref"].as_str().unwrap().to_string());
    }
    wait_for("the first dispatch to reach the supplier", || (!hub.sim.request_log().is_empty()).then_some(())).await;

    // The hub loses its database for far longer than two deliveries of every message take.
    hub.db_proxy.as_ref().unwrap().close();
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    hub.db_proxy.as_ref().unwrap().reopen();

    for r in &refs {
        hub.wait_incident(r, "the leg to open after the outage", |d| d["legs"][0]["state"] == "open").await;
        assert_eq!(hub.sim.incident_by_correlation(r).len(), 1, "exactly one supplier ticket for {r}");
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let list: Value = hub.get_as("/api/v1/admin/dead-letters", &hub.keys.admin).await.json().await.unwrap();
    assert_eq!(list["items"], json!([]), "nothing was dead-lettered");
    hub.finish().await;
}

#[tokio::test]
async fn a_hub_stopped_while_it_holds_a_delivery_stops_promptly_and_loses_nothing() {
    let mut hub = TestHub::spawn_with(Options { db_proxy: true, ..Default::default() }).await;
    hub.sim.set_latency(std::time::Duration::from_millis(700));
    let r = hub.raise(&network_incident("Held at shutdown")).await["ref"].as_str().unwrap().to_string();
    wait_for("the dispatch to reach the supplier", || (!hub.sim.request_log().is_empty()).then_some(())).await;
    hub.db_proxy.as_ref().unwrap().close();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let stopping = std::time::Instant::now();
    hub.stop().await;
    assert!(stopping.elapsed() < std::time::Duration::from_secs(15), "stopping took {:?}", stopping.elapsed());

    // The held delivery went back to the queue: the restarted hub finishes it.
    hub.db_proxy.as_ref().unwrap().reopen();
    hub.restart().await;
    hub.wait_incident(&r, "the leg to open after the restart", |d| d["legs"][0]["state"] == "open").await;
    assert_eq!(hub.sim.incident_by_correlation(&r).len(), 1);
    hub.finish().await;
}

/// The supplier's slow answer outlives the hub's timeout (2 s) and commits after it: the retry
/// must find the ticket and the note the first attempt made instead of writing them again.
#[tokio::test]
async fn a_create_and_a_note_answered_after_the_timeout_are_written_once() {
    let hub = TestHub::spawn().await;
    hub.sim.set_webhook(None);
    let slow = || Fault::Timeout { delay: std::time::Duration::from_millis(3000) };
    // The lookup before the create passes; the create is answered late.
    hub.sim.push_fault(Fault::Timeout { delay: std::time::Duration::from_millis(1) });
    hub.sim.push_fault(slow());
    let doc = hub.raise(&network_incident("Slow create")).await;
    let r = doc["ref"].as_str().unwrap();
    let doc = hub.wait_incident(r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
    quiet(|| hub.sim.request_log().len()).await;
    let tickets = hub.sim.incident_by_correlation(r);
    assert_eq!(tickets.len(), 1, "exactly one supplier ticket: {:#?}", hub.sim.request_log());
    assert_eq!(doc["legs"][0]["native_id"], tickets[0]["sys_id"]);

    let sys_id = tickets[0]["sys_id"].as_str().unwrap().to_string();
    hub.sim.push_fault(slow());
    let resp = hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &json!({"text": "written once, slowly", "visibility": "internal"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    wait_for("the note at the supplier", || (!hub.sim.journal(&sys_id).is_empty()).then_some(())).await;
    quiet(|| hub.sim.request_log().len()).await;
    let journal = hub.sim.journal(&sys_id);
    assert_eq!(journal.iter().filter(|j| j["value"] == "written once, slowly").count(), 1, "{journal:#?}");
    assert_eq!(hub.settle(r).await["notes"].as_array().unwrap().len(), 1);
    hub.finish().await;
}

/// A second copy of a hub note at the supplier (left by an attempt whose answer was lost) is
/// the hub's own writing: it never comes back as a supplier note.
#[tokio::test]
async fn a_second_copy_of_a_hub_note_at_the_supplier_is_not_imported() {
    let hub = TestHub::spawn().await;
    let (r, sys_id) = hub.open_ticket("Copied note").await;
    let resp = hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &json!({"text": "written by the hub", "visibility": "internal"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    wait_for("the note at the supplier", || (!hub.sim.journal(&sys_id).is_empty()).then_some(())).await;
    hub.settle(&r).await;
    // The copy, as the hub's integration user wrote it.
    hub.sim.agent_update_as(&sys_id, SIM_USER, json!({"work_notes": "written by the hub"})).unwrap();
    hub.sim.agent_update(&sys_id, json!({"comments": "an agent's own note"})).unwrap();
    hub.wait_incident(&r, "the agent's note", |d| d["notes"].as_array().unwrap().iter().any(|n| n["text"] == "an agent's own note")).await;
    hub.reconcile().await;
    let doc = hub.settle(&r).await;
    let texts: Vec<&str> = doc["notes"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["written by the hub", "an agent's own note"]);
    hub.finish().await;
}

/// Every attempt the client may make fails, the last one late but committed at the supplier
/// all the same: the client gives that last write its time and takes what it wrote, so the
/// note is delivered, the leg stays healthy and nothing is dead-lettered.
#[tokio::test]
async fn a_note_whose_last_attempt_lands_late_is_delivered_not_failed() {
    let hub = TestHub::spawn().await;
    let (r, sys_id) = hub.open_ticket("Last attempt lands late").await;
    let pass = || Fault::Timeout { delay: std::time::Duration::from_millis(1) };
    // Four attempts (the test setting): three refused with a 5xx, each followed by a look that
    // finds nothing, then one answered after the timeout.
    for _ in 0..3 {
        hub.sim.push_fault(Fault::ServerError);
        hub.sim.push_fault(pass());
    }
    hub.sim.push_fault(Fault::Timeout { delay: std::time::Duration::from_millis(3000) });
    let resp = hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &json!({"text": "the fourth try", "visibility": "public"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    wait_for("the note at the supplier", || (!hub.sim.journal(&sys_id).is_empty()).then_some(())).await;
    let doc = hub.settle(&r).await;
    quiet(|| hub.sim.request_log().len()).await;
    let journal = hub.sim.journal(&sys_id);
    assert_eq!(journal.iter().filter(|j| j["value"] == "the fourth try").count(), 1, "{journal:#?}");
    assert_eq!(doc["legs"][0]["state"], "open");
    assert!(doc["legs"][0].get("last_error").is_none(), "{}", doc["legs"][0]);
    let list: Value = hub.get_as("/api/v1/admin/dead-letters", &hub.keys.admin).await.json().await.unwrap();
    assert_eq!(list["items"], json!([]), "the delivered note is not a dead letter");
    hub.finish().await;
}

/// Sends a note whose write the supplier commits `commits_in` after receiving it, and returns
/// once that write is surely in flight (0.8 s later).
async fn send_note_committed_late(hub: &TestHub, r: &str, text: &str, commits_in: std::time::Duration) -> tokio::time::Instant {
    // The fault is for the note's write: nothing else may be asking the supplier then.
    quiet(|| hub.sim.request_log().len()).await;
    hub.sim.push_fault(Fault::Timeout { delay: commits_in });
    let sent = tokio::time::Instant::now();
    let resp = hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &json!({"text": text, "visibility": "internal"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    sent
}

/// Once past the late commit and the hub has nothing more to say: the supplier holds `text`
/// once.
async fn assert_written_once(hub: &TestHub, r: &str, sys_id: &str, text: &str, after: tokio::time::Instant) {
    tokio::time::sleep_until(after).await;
    wait_for("the note at the supplier", || (!hub.sim.journal(sys_id).is_empty()).then_some(())).await;
    hub.settle(r).await;
    quiet(|| hub.sim.request_log().len()).await;
    let journal = hub.sim.journal(sys_id);
    assert_eq!(journal.iter().filter(|j| j["value"] == text).count(), 1, "{journal:#?}\n{:#?}", hub.sim.request_log());
}

/// A hub stopped while its note is in flight, the supplier committing it after the hub came
/// back: the new process gives the old one's write its time before looking, and writes nothing.
#[tokio::test]
async fn a_note_left_in_flight_by_a_stopped_hub_is_written_once() {
    let mut hub = TestHub::spawn().await;
    let (r, sys_id) = hub.open_ticket("In flight across a restart").await;
    let commits_in = std::time::Duration::from_millis(3500);
    let sent = send_note_committed_late(&hub, &r, "sent before the restart", commits_in).await;
    hub.restart().await;
    assert!(hub.sim.journal(&sys_id).is_empty(), "the restart must come before the supplier commits the first write");
    assert_written_once(&hub, &r, &sys_id, "sent before the restart", sent + commits_in + std::time::Duration::from_secs(1)).await;
    hub.finish().await;
}

/// The broker connection drops while a note is on its way to the supplier, which commits it
/// late: the handler finishes what it started instead of being dropped with it, so the
/// redelivery after the reconnect finds the note delivered and writes nothing.
#[tokio::test]
async fn a_note_in_flight_when_the_broker_connection_drops_is_written_once() {
    let hub = TestHub::spawn_with(Options { broker_proxy: true, ..Default::default() }).await;
    let (r, sys_id) = hub.open_ticket("In flight across a broker reconnect").await;
    let commits_in = std::time::Duration::from_millis(3000);
    let sent = send_note_committed_late(&hub, &r, "sent before the reconnect", commits_in).await;
    hub.proxy.as_ref().unwrap().close();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    hub.proxy.as_ref().unwrap().reopen();
    assert!(hub.sim.journal(&sys_id).is_empty(), "the connection must drop before the supplier commits the first write");
    assert_written_once(&hub, &r, &sys_id, "sent before the reconnect", sent + commits_in + std::time::Duration::from_secs(2)).await;
    hub.finish().await;
}

/// A hub restarted while a file upload is in flight, the supplier storing the file after the hub
/// came back: the ticket holds the file once and the record says it reached the supplier.
#[tokio::test]
async fn a_file_upload_left_in_flight_by_a_stopped_hub_is_stored_once() {
    let mut hub = TestHub::spawn().await;
    let (r, sys_id) = hub.open_ticket("A file across a restart").await;
    quiet(|| hub.sim.request_log().len()).await;
    let commits_in = std::time::Duration::from_millis(3500);
    hub.sim.push_fault(Fault::Timeout { delay: commits_in });
    let sent = tokio::time::Instant::now();
    let resp = hub.attach(&r, "trace.txt", "text/plain", b"traceroute: loss at hop 7".to_vec()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    hub.restart().await;
    assert!(hub.sim.attachments(&sys_id).is_empty(), "the restart must come before the supplier stores the first upload");
    tokio::time::sleep_until(sent + commits_in + std::time::Duration::from_secs(1)).await;
    wait_for("the file at the supplier", || (!hub.sim.attachments(&sys_id).is_empty()).then_some(())).await;
    hub.settle(&r).await;
    quiet(|| hub.sim.request_log().len()).await;
    let stored = hub.sim.attachments(&sys_id);
    assert_eq!(stored.len(), 1, "{:?}\n{:#?}", stored.iter().map(|f| &f.0).collect::<Vec<_>>(), hub.sim.request_log());
    let doc = hub.incident(&r).await;
    let file = &doc["attachments"][0];
    assert!(file.to_string().contains("sent"), "the record says the file reached the supplier: {file}");
}
