//! Supplier-side work reaching the unified record: webhooks in every record shape, the
//! reconciliation sweep, duplicate and out-of-order deliveries, and webhook authentication.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use siam_hub::sim::servicenow::{sign_webhook, DisplayMode, WebhookBehaviour, WebhookTarget};

async fn supplier_works_the_ticket(mode: DisplayMode) {
    let hub = TestHub::spawn_with(Options { webhook_mode: mode, ..Default::default() }).await;
    let (r, sys_id) = hub.open_ticket("Wi-Fi outage").await;

    hub.sim.agent_update(&sys_id, json!({"state": "2", "work_notes": "Looking at the controller"})).unwrap();
    let doc = hub.wait_incident(&r, "in progress", |d| d["status"] == "in_progress").await;
    assert_eq!(doc["legs"][0]["native_status"], "2");

    hub.sim.agent_update(&sys_id, json!({"state": "3", "hold_reason": "1", "comments": "Can you tell us which floor?"})).unwrap();
    let doc = hub.wait_incident(&r, "on hold", |d| d["status"] == "on_hold").await;
    assert_eq!(doc["hold_reason"], "awaiting_caller");

    hub.sim.agent_update(&sys_id, json!({"state": "6", "close_code": "Solved (Work Around)", "close_notes": "Rebooted the controller"})).unwrap();
    let doc = hub.wait_incident(&r, "resolved", |d| d["status"] == "resolved").await;
    assert_eq!(doc["resolution"], json!({"code": "workaround", "notes": "Rebooted the controller"}));
    assert!(doc["resolved_at"].is_string());
    assert_eq!(doc["hold_reason"], Value::Null);

    let doc = hub.wait_incident(&r, "both notes", |d| d["notes"].as_array().unwrap().len() == 2).await;
    let notes = doc["notes"].as_array().unwrap();
    let note = |text: &str| notes.iter().find(|n| n["text"] == text).unwrap_or_else(|| panic!("note {text} missing: {notes:?}"));
    assert_eq!(note("Looking at the controller")["visibility"], "internal");
    assert_eq!(note("Can you tell us which floor?")["visibility"], "public");
    assert_eq!(note("Can you tell us which floor?")["origin"], SUPPLIER);
    assert_eq!(note("Can you tell us which floor?")["author"], "agent.smith");

    let history = hub.history(&r).await;
    let statuses: Vec<&str> = history.iter().filter(|e| e["type"] == "incident.status_changed").map(|e| e["data"]["to"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["assigned", "in_progress", "on_hold", "resolved"]);
    siam_hub::validation::validate(siam_hub::validation::Doc::Incident, &doc).expect("still a valid canonical document");
    hub.finish().await;
}

#[tokio::test]
async fn supplier_updates_arrive_by_webhook_in_raw_records() {
    supplier_works_the_ticket(DisplayMode::Raw).await;
}

#[tokio::test]
async fn supplier_updates_arrive_by_webhook_in_display_records() {
    supplier_works_the_ticket(DisplayMode::Display).await;
}

#[tokio::test]
async fn supplier_updates_arrive_by_webhook_in_display_all_records() {
    supplier_works_the_ticket(DisplayMode::All).await;
}

#[tokio::test]
async fn a_missed_webhook_is_caught_by_the_reconciliation_sweep() {
    let hub = TestHub::spawn().await;
    let (r, sys_id) = hub.open_ticket("Missed").await;
    hub.sim.set_webhook_behaviour(WebhookBehaviour { drop_next: 1, ..Default::default() });
    hub.sim.agent_update(&sys_id, json!({"state": "2", "urgency": "1", "work_notes": "found it"})).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(hub.incident(&r).await["status"], "assigned", "the webhook was dropped");

    let report = hub.reconcile().await;
    assert_eq!(report["applied"], 1);
    assert_eq!(report["notes_added"], 1);
    let doc = hub.incident(&r).await;
    assert_eq!(doc["status"], "in_progress");
    assert_eq!(doc["urgency"], 1);
    assert_eq!(doc["priority"], 1);
    assert_eq!(doc["notes"][0]["text"], "found it");
    // A second sweep over the same window changes nothing.
    let again = hub.reconcile().await;
    assert_eq!(again["applied"], 0);
    assert_eq!(hub.incident(&r).await["version"], doc["version"]);
    hub.finish().await;
}

#[tokio::test]
async fn the_background_poller_catches_up_with_a_supplier_clock_behind_ours() {
    let hub = TestHub::spawn_with(Options { poll_interval_secs: 1, sim_clock_skew_secs: -90, ..Default::default() }).await;
    let (r, sys_id) = hub.open_ticket("Polled").await;
    hub.sim.set_webhook(None);
    // Let a sweep run first so the watermark is set from the supplier's own (late) clock; the
    // overlap window must still catch a change stamped before the hub's "now".
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    hub.sim.agent_update(&sys_id, json!({"state": "3", "hold_reason": "4", "comments": "waiting on the carrier"})).unwrap();
    let doc = hub.wait_incident(&r, "the poller to apply the change", |d| d["status"] == "on_hold").await;
    assert_eq!(doc["hold_reason"], "awaiting_supplier");
    assert_eq!(doc["notes"][0]["visibility"], "public");
    hub.finish().await;
}

#[tokio::test]
async fn duplicate_and_out_of_order_webhooks_end_as_one_in_order_delivery_would() {
    let hub = TestHub::spawn().await;
    let (r, sys_id) = hub.open_ticket("Flapping link").await;
    hub.sim.set_webhook_behaviour(WebhookBehaviour { duplicate: true, reverse_order_of_next: 3, ..Default::default() });
    hub.sim.agent_update(&sys_id, json!({"state": "2", "work_notes": "step 1"})).unwrap();
    hub.sim.agent_update(&sys_id, json!({"state": "3", "hold_reason": "4", "work_notes": "step 2"})).unwrap();
    hub.sim.agent_update(&sys_id, json!({"urgency": "1", "comments": "step 3"})).unwrap();
    let doc = hub.wait_incident(&r, "all three changes", |d| d["notes"].as_array().unwrap().len() >= 3 && d["urgency"] == 1).await;
    let doc = {
        let _ = doc;
        hub.settle(&r).await
    };
    assert_eq!(doc["status"], "on_hold", "the newest supplier state wins whatever the arrival order");
    assert_eq!(doc["hold_reason"], "awaiting_supplier");
    assert_eq!(doc["urgency"], 1);
    let texts: Vec<&str> = doc["notes"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 3, "each note once: {texts:?}");
    for t in ["step 1", "step 2", "step 3"] {
        assert!(texts.contains(&t));
    }
    // The stale first delivery (state 2) arrived last and must not have moved the status back.
    let history = hub.history(&r).await;
    let statuses: Vec<&str> = history.iter().filter(|e| e["type"] == "incident.status_changed").map(|e| e["data"]["to"].as_str().unwrap()).collect();
    assert_eq!(statuses.last(), Some(&"on_hold"));
    assert!(statuses.len() <= 3, "{statuses:?}");
    hub.finish().await;
}

#[tokio::test]
async fn webhooks_must_be_signed_fresh_and_well_formed() {
    let hub = TestHub::spawn().await;
    let (r, sys_id) = hub.open_ticket("Auth").await;
    let record = hub.sim.incident_by_correlation(&r)[0].clone();
    let mut changed = record.clone();
    changed["state"] = json!("2");
    changed["sys_mod_count"] = json!("99");
    let body = json!({"event": "incident.updated", "record": changed}).to_string();
    let now = chrono::Utc::now().timestamp();
    let send = |ts: i64, sig: String, body: String| {
        hub.http
            .post(hub.url(&format!("/webhooks/{SUPPLIER}")))
            .header("content-type", "application/json")
            .header("X-Siam-Timestamp", ts.to_string())
            .header("X-Siam-Signature", sig)
            .body(body)
            .send()
    };
    let wrong = send(now, sign_webhook("not-the-secret", &now.to_string(), &body), body.clone()).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // A supplier id the hub does not know is answered exactly like a bad signature, so the
    // webhook endpoint cannot be used to list the configured suppliers.
    let wrong: Value = wrong.json().await.unwrap();
    let unknown = hub
        .http
        .post(hub.url("/webhooks/not-a-supplier"))
        .header("content-type", "application/json")
        .header("X-Siam-Timestamp", now.to_string())
        .header("X-Siam-Signature", sign_webhook("not-the-secret", &now.to_string(), &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!((&unknown["type"], &unknown["detail"]), (&wrong["type"], &wrong["detail"]));
    let old = now - 3600;
    let stale = send(old, sign_webhook(&hub.webhook_secret, &old.to_string(), &body), body.clone()).await.unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let unsigned = hub.http.post(hub.url(&format!("/webhooks/{SUPPLIER}"))).body(body.clone()).send().await.unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(hub.incident(&r).await["status"], "assigned", "nothing unauthenticated was applied");

    let junk = "{not json".to_string();
    let resp = send(now, sign_webhook(&hub.webhook_secret, &now.to_string(), &junk), junk.clone()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let no_id = json!({"record": {"state": "2"}}).to_string();
    let resp = send(now, sign_webhook(&hub.webhook_secret, &now.to_string(), &no_id), no_id.clone()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let ok = send(now, sign_webhook(&hub.webhook_secret, &now.to_string(), &body), body.clone()).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(hub.incident(&r).await["status"], "in_progress");

    // A ticket the hub never raised is acknowledged and ignored.
    let mut foreign = record.clone();
    foreign["sys_id"] = json!("0123456789abcdef0123456789abcdef");
    foreign["correlation_id"] = json!("");
    let fb = foreign.to_string();
    let resp = send(now, sign_webhook(&hub.webhook_secret, &now.to_string(), &fb), fb).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["unknown_ticket"], true);
    let _ = sys_id;
    hub.sim.set_webhook(Some(WebhookTarget { url: hub.url(&format!("/webhooks/{SUPPLIER}")), secret: hub.webhook_secret.clone(), display_value: DisplayMode::Raw }));
    hub.finish().await;
}

#[tokio::test]
async fn an_unknown_supplier_value_is_kept_on_the_leg_and_listed_for_administrators() {
    let hub = TestHub::spawn().await;
    let (r, sys_id) = hub.open_ticket("Custom state").await;
    hub.sim.agent_update(&sys_id, json!({"state": "2"})).unwrap();
    hub.wait_incident(&r, "in progress", |d| d["status"] == "in_progress").await;
    // A customised instance's own state, which the base profile does not know.
    hub.sim.agent_update(&sys_id, json!({"state": "11", "work_notes": "moved to our vendor queue"})).unwrap();
    let doc = hub.wait_incident(&r, "the unmapped state on the leg", |d| d["legs"][0]["unmapped"]["state"] == "11").await;
    assert_eq!(doc["status"], "in_progress", "an unknown state never changes the record");
    assert_eq!(doc["legs"][0]["native_status"], "11");
    assert_eq!(doc["notes"][0]["text"], "moved to our vendor queue", "the rest of the update is not dropped");

    let list: Value = hub.get_as("/api/v1/admin/mapping-events", &hub.keys.admin).await.json().await.unwrap();
    let item = list["items"].as_array().unwrap().iter().find(|i| i["ref"] == r.as_str()).expect("listed");
    assert_eq!(
        (item["supplier"].as_str(), item["system"].as_str(), item["field"].as_str(), item["value"].as_str()),
        (Some(SUPPLIER), Some("servicenow"), Some("state"), Some("11"))
    );
    assert_eq!(hub.get_as("/api/v1/admin/mapping-events", &hub.keys.service_desk).await.status(), StatusCode::FORBIDDEN);
    hub.finish().await;
}

#[tokio::test]
async fn an_instance_with_its_own_priority_matrix_gets_the_records_priority() {
    // This supplier's instance rates everything a step more urgent than the hub's matrix does.
    let lookup = vec![vec![1, 1, 2], vec![1, 2, 3], vec![2, 3, 4]];
    let hub = TestHub::spawn_with(Options { extra_toml: "[suppliers.overrides]\npriority_matrix = [[1, 1, 2], [1, 2, 3], [2, 3, 4]]\n".into(), ..Default::default() }).await;
    hub.sim.set_priority_lookup(Some(lookup));
    let mut body = network_incident("Slow VPN");
    (body["impact"], body["urgency"]) = (json!(2), json!(2));
    let doc = hub.raise(&body).await;
    assert_eq!(doc["priority"], 3);
    let r = doc["ref"].as_str().unwrap().to_string();
    let ticket = hub.wait_sim_ticket(&r).await;
    assert_eq!(ticket["priority"], "3", "the supplier works to the record's priority: {ticket}");
    assert_eq!((ticket["impact"].as_str(), ticket["urgency"].as_str()), (Some("2"), Some("3")), "the impact is kept, the urgency gives way");
    let sys_id = ticket["sys_id"].as_str().unwrap().to_string();

    // The supplier's own pair does not come back as a change to the record.
    hub.sim.agent_update(&sys_id, json!({"state": "2"})).unwrap();
    hub.wait_incident(&r, "in progress", |d| d["status"] == "in_progress").await;
    hub.reconcile().await;
    let doc = hub.settle(&r).await;
    assert_eq!((doc["impact"].as_i64(), doc["urgency"].as_i64(), doc["priority"].as_i64()), (Some(2), Some(2), Some(3)));

    // The desk raises the urgency: priority 2 on both sides.
    let resp = hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({"urgency": 1})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ticket = wait_for("priority 2 at the supplier", || hub.sim.incident_by_correlation(&r).into_iter().next().filter(|t| t["priority"] == "2")).await;
    assert_eq!((ticket["impact"].as_str(), ticket["urgency"].as_str()), (Some("2"), Some("2")));
    let doc = hub.settle(&r).await;
    assert_eq!((doc["urgency"].as_i64(), doc["priority"].as_i64()), (Some(1), Some(2)));
    hub.finish().await;
}

#[tokio::test]
async fn the_notification_of_the_hubs_own_write_arriving_before_its_answer_is_not_taken_for_a_supplier_change() {
    // An instance with its own priority matrix gets an aligned impact/urgency pair, which reads
    // back as other values than the record's: only knowing it as the hub's own write keeps the
    // desk's change. The instance is busy: it notifies the hub of each write at once and answers
    // the write 1.5 s later.
    let lookup = vec![vec![1, 1, 2], vec![1, 2, 3], vec![2, 3, 4]];
    let hub = TestHub::spawn_with(Options { extra_toml: "[suppliers.overrides]\npriority_matrix = [[1, 1, 2], [1, 2, 3], [2, 3, 4]]\n".into(), ..Default::default() }).await;
    hub.sim.set_priority_lookup(Some(lookup));
    let mut body = network_incident("Slow VPN, busy instance");
    (body["impact"], body["urgency"]) = (json!(2), json!(2));
    let r = hub.raise(&body).await["ref"].as_str().unwrap().to_string();
    hub.wait_sim_ticket(&r).await;
    let doc = hub.settle(&r).await;
    hub.sim.set_write_answer_delay(std::time::Duration::from_millis(1500));

    let resp = hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({"urgency": 1})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    wait_for("priority 2 at the supplier", || hub.sim.incident_by_correlation(&r).into_iter().next().filter(|t| t["priority"] == "2")).await;
    // The write's answer comes after its notification; then the record settles.
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    let doc = hub.settle(&r).await;
    assert_eq!((doc["urgency"].as_i64(), doc["priority"].as_i64()), (Some(1), Some(2)), "the desk's change stands: {doc}");
    hub.finish().await;
}

#[tokio::test]
async fn a_ticket_dated_in_the_future_does_not_stop_later_sweeps() {
    let hub = TestHub::spawn().await;
    let (_, stray) = hub.open_ticket("Touched under a wrong clock").await;
    let (r, sys_id) = hub.open_ticket("Worked normally").await;
    hub.sim.set_webhook(None);

    // Someone at the supplier touches a ticket while the instance's clock is a day ahead.
    hub.sim.set_clock_skew(24 * 3600);
    hub.sim.agent_update(&stray, json!({"work_notes": "stamped tomorrow"})).unwrap();
    hub.sim.set_clock_skew(0);
    let first = hub.reconcile().await;
    let watermark: chrono::DateTime<chrono::Utc> = first["watermark"].as_str().unwrap().parse().unwrap();
    assert!(watermark < chrono::Utc::now() + chrono::Duration::minutes(5), "the watermark follows the hub's clock, not the stray ticket: {first}");

    // A normal change whose webhook is lost is still caught by the next sweep.
    hub.sim.agent_update(&sys_id, json!({"state": "2", "work_notes": "on it"})).unwrap();
    let second = hub.reconcile().await;
    assert_eq!(second["applied"], 1, "{second}");
    let doc = hub.incident(&r).await;
    assert_eq!(doc["status"], "in_progress");
    assert_eq!(doc["notes"][0]["text"], "on it");
    hub.finish().await;
}
