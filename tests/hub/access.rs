//! Who may see and work what: a supplier works a ticket while its leg is in play, loses it
//! when it lets go (hand-back, re-route), keeps reading what it worked to the end, and never
//! sees another supplier's leg details.

use crate::handoff::{leg, two_supplier_hub, SECOND};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const TMF: &str = "/tmf-api/troubleTicket/v4/troubleTicket";

#[tokio::test]
async fn a_supplier_that_handed_a_ticket_back_no_longer_sees_or_touches_it() {
    let (hub, sim2) = two_supplier_hub(Options::default(), "").await;
    let second = hub.key("supplier", Some(SECOND)).await;
    let first = hub.keys.supplier.clone();
    let doc = hub.raise(&network_incident("Switch stack down")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    hub.wait_incident(&r, "the first leg", |d| leg(d, SUPPLIER, "open").is_some()).await;
    assert_eq!(hub.get_as(&format!("/api/v1/incidents/{r}"), &first).await.status(), StatusCode::OK);
    let note = hub.post(&format!("/api/v1/incidents/{r}/notes"), &first, &json!({"text": "looking", "visibility": "internal"})).await;
    assert_eq!(note.status(), StatusCode::CREATED);
    assert_eq!(hub.get_as(&format!("/api/v1/incidents/{r}"), &second).await.status(), StatusCode::NOT_FOUND, "not yet the second supplier's");

    // The first supplier hands it back: the next rule gives it to the second.
    let resp = hub.post(&format!("/api/v1/incidents/{r}/handback"), &first, &json!({"reason": "not our kit"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    hub.wait_incident(&r, "the second leg", |d| leg(d, SECOND, "open").is_some()).await;
    hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &json!({"text": "desk only: VIP caller", "visibility": "internal"})).await;
    assert_eq!(hub.attach(&r, "later.txt", "text/plain", b"added after".to_vec()).await.status(), StatusCode::CREATED);
    let desk = hub.incident(&r).await;
    let file_id = desk["attachments"][0]["id"].as_i64().unwrap();

    // The first supplier lets go of everything: record, notes, files, history, clocks, lists.
    for path in [
        format!("/api/v1/incidents/{r}"),
        format!("/api/v1/incidents/{r}/history"),
        format!("/api/v1/incidents/{r}/sla"),
        format!("/api/v1/incidents/{r}/attachments/{file_id}"),
        format!("{TMF}/{r}"),
    ] {
        assert_eq!(hub.get_as(&path, &first).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let note = hub.post(&format!("/api/v1/incidents/{r}/notes"), &first, &json!({"text": "one more thing", "visibility": "public"})).await;
    assert_eq!(note.status(), StatusCode::NOT_FOUND, "a former supplier's note would reach the new owner");
    let listed: Value = hub.get_as("/api/v1/incidents", &first).await.json().await.unwrap();
    assert!(listed["items"].as_array().unwrap().iter().all(|i| i["ref"] != r), "{listed}");
    let tmf_listed: Value = hub.get_as(TMF, &first).await.json().await.unwrap();
    assert!(tmf_listed.as_array().unwrap().iter().all(|t| t["id"] != r), "{tmf_listed}");

    // The second supplier sees the record, but not the first supplier's ticket details.
    let seen: Value = hub.get_as(&format!("/api/v1/incidents/{r}"), &second).await.json().await.unwrap();
    let theirs = leg(&seen, SUPPLIER, "handed_back").expect("the first leg is listed");
    for field in ["native_id", "native_number", "native_status", "url", "last_error"] {
        assert!(theirs[field].is_null(), "{field} of another supplier's leg: {theirs}");
    }
    let desk_view = leg(&desk, SUPPLIER, "handed_back").unwrap();
    assert!(desk_view["native_id"].is_string() && desk_view["last_error"].as_str().unwrap().contains("not our kit"), "the desk sees it all: {desk_view}");
    assert!(leg(&seen, SECOND, "open").unwrap()["native_id"].is_string(), "its own leg in full");
    let history: Value = hub.get_as(&format!("/api/v1/incidents/{r}/history"), &second).await.json().await.unwrap();
    let events = history["events"].as_array().unwrap();
    for kind in ["leg.opened", "leg.handed_back"] {
        let e = events.iter().find(|e| e["type"] == kind && e["data"]["supplier"] == SUPPLIER).unwrap_or_else(|| panic!("{kind} in {history}"));
        assert_eq!(e["data"], json!({"supplier": SUPPLIER}), "another supplier's {kind} shows only whose it was");
    }
    // Why the ticket came to it is the record's own story (the routing reason), not a leg detail.
    assert!(events.iter().any(|e| e["type"] == "incident.routed" && e["data"]["supplier"] == SECOND && e["data"]["reason"].is_string()));
    let _ = sim2;
    hub.finish().await;
}

#[tokio::test]
async fn a_supplier_rerouted_away_loses_the_ticket_and_one_that_worked_it_to_the_end_keeps_reading_it() {
    let (hub, sim2) = two_supplier_hub(Options::default(), "").await;
    let second = hub.key("supplier", Some(SECOND)).await;
    let first = hub.keys.supplier.clone();

    // Re-routed away by the desk: the first supplier's leg is withdrawn and it loses sight.
    let doc = hub.raise(&network_incident("Wrong team")).await;
    let moved = doc["ref"].as_str().unwrap().to_string();
    hub.wait_incident(&moved, "the first leg", |d| leg(d, SUPPLIER, "open").is_some()).await;
    let resp = hub.post(&format!("/api/v1/incidents/{moved}/route"), &hub.keys.service_desk, &json!({"supplier": SECOND, "reason": "apps"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc = hub.wait_incident(&moved, "the move", |d| leg(d, SECOND, "open").is_some() && leg(d, SUPPLIER, "withdrawn").is_some_and(|l| l["closed_at"].is_string())).await;
    assert_eq!(doc["assigned_supplier"], SECOND);
    assert_eq!(hub.get_as(&format!("/api/v1/incidents/{moved}"), &first).await.status(), StatusCode::NOT_FOUND);
    let upload = hub.http.post(hub.url(&format!("/api/v1/incidents/{moved}/attachments?file_name=x.txt"))).bearer_auth(&first).body("late evidence").send().await.unwrap();
    assert_eq!(upload.status(), StatusCode::NOT_FOUND);

    // Worked to the end by the second supplier: resolved there, closed by the desk. It keeps
    // reading the ticket, and can no longer change it.
    let sys2 = leg(&doc, SECOND, "open").unwrap()["native_id"].as_str().unwrap().to_string();
    sim2.agent_update(&sys2, json!({"state": "6", "close_code": "Solved (Permanently)", "close_notes": "restarted"})).unwrap();
    let doc = hub.wait_incident(&moved, "the resolution", |d| d["status"] == "resolved").await;
    let resp = hub.patch(&moved, doc["version"].as_i64().unwrap(), &json!({"status": "closed"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let read = hub.get_as(&format!("/api/v1/incidents/{moved}"), &second).await;
    assert_eq!(read.status(), StatusCode::OK);
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["status"], "closed");
    assert_eq!(hub.get_as(&format!("/api/v1/incidents/{moved}/history"), &second).await.status(), StatusCode::OK);
    let note = hub.post(&format!("/api/v1/incidents/{moved}/notes"), &second, &json!({"text": "reopen please", "visibility": "public"})).await;
    assert_eq!(note.status(), StatusCode::FORBIDDEN, "read only once its part is over");
    let listed: Value = hub.get_as("/api/v1/incidents?status=closed", &second).await.json().await.unwrap();
    assert!(listed["items"].as_array().unwrap().iter().any(|i| i["ref"] == moved), "{listed}");
    hub.finish().await;
}

#[tokio::test]
async fn tmf621_notes_are_written_by_the_key_and_checked_like_the_api() {
    let hub = TestHub::spawn().await;
    let body = json!({
        "name": "Printer on fire", "description": "smoke", "severity": "Minor", "ticketType": "incident",
        "relatedEntity": [{"id": "network", "role": "affectedService", "@referredType": "Service"}],
        "note": [{"text": "raised from the portal", "author": "the.ceo@example.org"}],
    });
    let resp = hub.post(TMF, &hub.keys.service_desk, &body).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap_or_default());
    let ticket: Value = resp.json().await.unwrap();
    let r = ticket["id"].as_str().unwrap().to_string();
    let doc = hub.incident(&r).await;
    let desk_prefix = hub.keys.service_desk.split('_').nth(1).unwrap().to_string();
    assert_eq!(doc["notes"][0]["author"], format!("api:{desk_prefix}"), "the body's author is not taken: {doc}");

    // A note the API would refuse (over the length limit) is refused here too, with TMF630's code.
    let huge = "x".repeat(33_000);
    let resp = hub.http.patch(hub.url(&format!("{TMF}/{r}"))).bearer_auth(&hub.keys.service_desk).json(&json!({"note": [{"text": huge}]})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "24", "{err}");
    // So is a change the API would refuse (a title over its limit).
    let resp = hub.http.patch(hub.url(&format!("{TMF}/{r}"))).bearer_auth(&hub.keys.service_desk).json(&json!({"name": "y".repeat(1000)})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = hub
        .http
        .patch(hub.url(&format!("{TMF}/{r}")))
        .bearer_auth(&hub.keys.service_desk)
        .json(&json!({"note": [{"text": "second note", "author": "someone.else"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc = hub.incident(&r).await;
    assert_eq!(doc["notes"].as_array().unwrap().len(), 2, "the refused ones added nothing");
    assert!(doc["notes"].as_array().unwrap().iter().all(|n| n["author"] == format!("api:{desk_prefix}")), "{doc}");
    hub.finish().await;
}
