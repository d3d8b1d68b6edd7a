//! Files both ways: streamed, de-duplicated by SHA-256, within each supplier's size limit, and a
//! refusal always on record.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn file(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32) as u8).collect()
}

async fn upload(hub: &TestHub, r: &str, name: &str, data: Vec<u8>) -> reqwest::Response {
    hub.attach(r, name, "application/pdf", data).await
}

#[tokio::test]
async fn a_file_attached_at_the_hub_reaches_the_supplier_once_and_reads_back_identical() {
    let hub = TestHub::spawn().await;
    let (r, sys_id) = hub.open_ticket("Logs attached").await;
    let data = file(600 * 1024 + 17, 7);
    let sha = hex::encode(Sha256::digest(&data));

    let resp = upload(&hub, &r, "router-logs.pdf", data.clone()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let att: Value = resp.json().await.unwrap();
    assert_eq!(att["sha256"], sha);
    assert_eq!(att["size"], data.len());
    assert_eq!(att["origin"], "hub");

    let sent = wait_for("the file at the supplier", || hub.sim.attachments(&sys_id).first().cloned()).await;
    assert_eq!(sent.0, "router-logs.pdf");
    assert_eq!(sent.1, "application/pdf");
    assert!(sent.2 == data, "the supplier got different bytes");
    let doc = hub.wait_incident(&r, "the delivery on record", |d| d["attachments"][0]["deliveries"][0]["state"] == "sent").await;
    assert_eq!(doc["attachments"][0]["deliveries"][0]["supplier"], SUPPLIER);
    siam_hub::validation::validate(siam_hub::validation::Doc::Incident, &doc).expect("valid canonical document");

    let back = hub.get_as(&format!("/api/v1/incidents/{r}/attachments/{}", att["id"]), &hub.keys.service_desk).await;
    assert_eq!(back.status(), StatusCode::OK);
    assert_eq!(back.headers()["content-type"], "application/pdf");
    assert!(back.bytes().await.unwrap().as_ref() == data.as_slice());

    // The same content again is the same attachment, and is not sent twice.
    let again = upload(&hub, &r, "router-logs-copy.pdf", data.clone()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], att["id"]);
    let settled = hub.settle(&r).await;
    assert_eq!(settled["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(hub.sim.attachments(&sys_id).len(), 1, "the supplier's copy must not come back as a new file either");
    hub.finish().await;
}

#[tokio::test]
async fn a_file_attached_at_the_supplier_arrives_on_the_record_and_is_not_sent_back() {
    let hub = TestHub::spawn().await;
    let (r, sys_id) = hub.open_ticket("Screenshot from the supplier").await;
    let data = file(300_000, 3);
    hub.sim.agent_attach(&sys_id, "screenshot.png", "image/png", data.clone()).unwrap();
    let doc = hub.wait_incident(&r, "the supplier's file", |d| !d["attachments"].as_array().unwrap().is_empty()).await;
    let att = &doc["attachments"][0];
    assert_eq!(att["file_name"], "screenshot.png");
    assert_eq!(att["origin"], SUPPLIER);
    assert_eq!(att["deliveries"][0]["state"], "received");
    let back = hub.get_as(&format!("/api/v1/incidents/{r}/attachments/{}", att["id"]), &hub.keys.service_desk).await;
    assert!(back.bytes().await.unwrap().as_ref() == data.as_slice());
    hub.settle(&r).await;
    assert_eq!(hub.sim.attachments(&sys_id).len(), 1, "not echoed back to the supplier");
    hub.finish().await;
}

#[tokio::test]
async fn files_over_a_limit_are_refused_and_the_refusal_is_on_record() {
    let hub = TestHub::spawn_with(Options { supplier_max_attachment_bytes: 10_000, ..Default::default() }).await;
    let (r, sys_id) = hub.open_ticket("Big files").await;

    let resp = upload(&hub, &r, "core-dump.bin", file(50_000, 1)).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "the hub takes it; this supplier cannot");
    let doc = hub.wait_incident(&r, "the refusal", |d| d["attachments"][0]["deliveries"][0]["state"] == "refused").await;
    assert!(doc["attachments"][0]["deliveries"][0]["reason"].as_str().unwrap().contains("limit of 10000 bytes"));
    assert!(hub.sim.attachments(&sys_id).is_empty());

    hub.sim.agent_attach(&sys_id, "huge-trace.pcap", "application/octet-stream", file(20_000, 2)).unwrap();
    let events = wait_for_event(&hub, &r, |e| e["type"] == "attachment.refused" && e["data"]["direction"] == "inbound").await;
    assert_eq!(events["data"]["file_name"], "huge-trace.pcap");
    assert_eq!(hub.incident(&r).await["attachments"].as_array().unwrap().len(), 1);

    let too_big = upload(&hub, &r, "too-big.bin", file(2 * 1024 * 1024 + 1, 4)).await;
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let no_name = hub.http.post(hub.url(&format!("/api/v1/incidents/{r}/attachments"))).bearer_auth(&hub.keys.service_desk).body("x").send().await.unwrap();
    assert_eq!(no_name.status(), StatusCode::BAD_REQUEST);
    let sneaky = upload(&hub, &r, "..%2Fetc%2Fpasswd", b"x".to_vec()).await;
    assert_eq!(sneaky.status(), StatusCode::BAD_REQUEST);
    assert_eq!(hub.incident(&r).await["attachments"].as_array().unwrap().len(), 1, "refused uploads leave nothing behind");
    hub.finish().await;
}

async fn wait_for_event(hub: &TestHub, r: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(e) = hub.history(r).await.into_iter().find(|e| pred(e)) {
            return e;
        }
        assert!(tokio::time::Instant::now() < deadline, "event never came");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_incident_holds_at_most_the_configured_number_of_files() {
    let hub = TestHub::spawn_with(Options { tweak: Some(|s| s.max_attachments_per_incident = 3), ..Default::default() }).await;
    let (r, sys_id) = hub.open_ticket("Many files").await;
    for n in 0..3u8 {
        assert_eq!(upload(&hub, &r, &format!("f{n}.pdf"), file(1000, n)).await.status(), StatusCode::CREATED);
    }
    let refused = upload(&hub, &r, "f3.pdf", file(1000, 3)).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let problem: Value = refused.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("max_attachments_per_incident = 3"), "{problem}");
    // The same content again is no new file.
    assert_eq!(upload(&hub, &r, "f0-again.pdf", file(1000, 0)).await.status(), StatusCode::OK);
    let staged: i64 = hub
        .app()
        .store
        .run(|c| {
            use diesel::prelude::*;
            Ok(siam_hub::store::schema::staged_uploads::table.count().get_result(c)?)
        })
        .await
        .unwrap();
    assert_eq!(staged, 0, "the refused upload's content is not kept");

    // A further file the supplier attaches is refused on record, not fetched.
    hub.sim.agent_attach(&sys_id, "from-the-supplier.txt", "text/plain", b"one too many".to_vec()).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let events = hub.history(&r).await;
        if let Some(e) = events.iter().find(|e| e["type"] == "attachment.refused" && e["data"]["file_name"] == "from-the-supplier.txt") {
            assert!(e["data"]["reason"].as_str().unwrap().contains("max_attachments_per_incident"), "{e}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no refusal on record: {events:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(hub.incident(&r).await["attachments"].as_array().unwrap().len(), 3);
    hub.finish().await;
}
