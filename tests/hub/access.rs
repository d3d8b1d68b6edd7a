//! Who may see and work what: a supplier works a ticket while its leg is in play, loses it
//! when it lets go (hand-back, re-route), keeps reading what it worked to the end, and never
//! sees another supplier's leg details.

use crate::handoff::{two_supplier_hub, SECOND};
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

/// The callers of the access matrix, in the order of its columns.
const CALLERS: [&str; 8] = ["anonymous", "service_desk", "manager", "admin", "own supplier", "former supplier", "other supplier", "change_manager"];

/// Who may call what: the expected status per caller (columns as [`CALLERS`]), on a ticket the
/// own supplier holds, the former supplier handed back and the other supplier never had. Every
/// endpoint the hub serves must have a row; a new endpoint fails the test until it gets one.
const MATRIX: &[(&str, &str, [u16; 8])] = &[
    ("GET", "/healthz", [200, 200, 200, 200, 200, 200, 200, 200]),
    ("GET", "/readyz", [200, 200, 200, 200, 200, 200, 200, 200]),
    ("GET", "/openapi.json", [200, 200, 200, 200, 200, 200, 200, 200]),
    ("POST", "/api/v1/incidents", [401, 201, 403, 201, 403, 403, 403, 403]),
    ("GET", "/api/v1/incidents", [401, 200, 200, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/incidents/{ref}", [401, 200, 200, 200, 200, 404, 404, 200]),
    ("PATCH", "/api/v1/incidents/{ref}", [401, 200, 403, 200, 403, 403, 403, 403]),
    ("POST", "/api/v1/incidents/{ref}/notes", [401, 201, 403, 201, 201, 404, 404, 403]),
    ("GET", "/api/v1/incidents/{ref}/history", [401, 200, 200, 200, 200, 404, 404, 200]),
    ("POST", "/api/v1/incidents/{ref}/attachments", [401, 201, 403, 201, 201, 404, 404, 403]),
    ("GET", "/api/v1/incidents/{ref}/attachments/{id}", [401, 200, 200, 200, 200, 404, 404, 200]),
    ("POST", "/api/v1/incidents/{ref}/route", [401, 409, 403, 409, 403, 403, 403, 403]),
    ("POST", "/api/v1/incidents/{ref}/handback", [401, 403, 403, 403, 200, 404, 404, 403]),
    ("GET", "/api/v1/incidents/{ref}/sla", [401, 200, 200, 200, 200, 404, 404, 200]),
    ("GET", "/api/v1/reports/sla", [401, 403, 200, 200, 200, 200, 200, 403]),
    ("GET", "/api/v1/admin/dead-letters", [401, 403, 403, 200, 403, 403, 403, 403]),
    ("GET", "/api/v1/admin/mapping-events", [401, 403, 403, 200, 403, 403, 403, 403]),
    ("GET", "/api/v1/changes/calendar", [401, 200, 200, 200, 200, 200, 200, 200]),
    ("POST", "/api/v1/changes", [401, 201, 403, 201, 403, 403, 403, 201]),
    ("GET", "/api/v1/changes", [401, 200, 200, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/changes/{ref}", [401, 200, 200, 200, 404, 200, 404, 200]),
    ("PATCH", "/api/v1/changes/{ref}", [401, 200, 403, 200, 403, 403, 403, 200]),
    ("PATCH", "/api/v1/changes/{ref}/legs/{supplier}", [401, 403, 403, 200, 404, 200, 404, 200]),
    ("POST", "/api/v1/changes/{ref}/approvals", [401, 403, 403, 201, 404, 201, 404, 201]),
    ("GET", "/api/v1/changes/{ref}/conflicts", [401, 200, 200, 200, 404, 200, 404, 200]),
    ("POST", "/api/v1/changes/{ref}/conflicts/acknowledge", [401, 403, 403, 404, 403, 403, 403, 404]),
    ("POST", "/api/v1/changes/{ref}/notes", [401, 201, 403, 201, 404, 201, 404, 201]),
    ("POST", "/api/v1/changes/{ref}/attachments", [401, 201, 403, 201, 404, 201, 404, 201]),
    ("GET", "/api/v1/changes/{ref}/attachments/{id}", [401, 200, 200, 200, 404, 200, 404, 200]),
    ("GET", "/api/v1/changes/{ref}/history", [401, 200, 200, 200, 404, 200, 404, 200]),
    ("POST", "/api/v1/admin/dead-letters/{id}/replay", [401, 403, 403, 404, 403, 403, 403, 403]),
    ("POST", "/api/v1/admin/suppliers/{id}/reconcile", [401, 403, 403, 200, 403, 403, 403, 403]),
    ("GET", "/api/v1/admin/suppliers", [401, 403, 403, 200, 403, 403, 403, 403]),
    ("GET", "/api/v1/admin/suppliers/{id}/check", [401, 403, 403, 200, 403, 403, 403, 403]),
    ("GET", "/api/v1/admin/suppliers/{id}/discovery", [401, 403, 403, 200, 403, 403, 403, 403]),
    ("POST", "/webhooks/{supplier}", [401, 401, 401, 401, 401, 401, 401, 401]),
    ("POST", "/webhooks/{supplier}/listener/{event}", [401, 401, 401, 401, 401, 401, 401, 401]),
    ("POST", "/tmf-api/troubleTicket/v4/troubleTicket", [401, 201, 403, 201, 403, 403, 403, 403]),
    ("GET", "/tmf-api/troubleTicket/v4/troubleTicket", [401, 200, 200, 200, 200, 200, 200, 200]),
    ("GET", "/tmf-api/troubleTicket/v4/troubleTicket/{id}", [401, 200, 200, 200, 200, 404, 404, 200]),
    ("PATCH", "/tmf-api/troubleTicket/v4/troubleTicket/{id}", [401, 200, 403, 200, 200, 404, 404, 403]),
    ("POST", "/tmf-api/troubleTicket/v4/hub", [401, 201, 403, 201, 201, 201, 201, 403]),
    ("GET", "/tmf-api/troubleTicket/v4/hub/{id}", [401, 404, 404, 404, 404, 404, 404, 404]),
    ("DELETE", "/tmf-api/troubleTicket/v4/hub/{id}", [401, 404, 404, 404, 404, 404, 404, 404]),
    ("GET", "/dashboard", [401, 401, 200, 200, 200, 200, 200, 403]),
    ("GET", "/dashboard/login", [200, 200, 200, 200, 200, 200, 200, 200]),
    ("POST", "/dashboard/login", [400, 403, 303, 303, 303, 303, 303, 303]),
    ("POST", "/dashboard/logout", [303, 303, 303, 303, 303, 303, 303, 303]),
    ("GET", "/dashboard/incidents/{ref}", [401, 401, 200, 200, 200, 404, 404, 403]),
    ("GET", "/dashboard/changes", [401, 401, 200, 200, 200, 200, 200, 200]),
    ("GET", "/dashboard/changes/{ref}", [401, 401, 200, 200, 404, 200, 404, 200]),
    ("GET", "/dashboard/suppliers", [401, 401, 403, 200, 403, 403, 403, 403]),
    ("POST", "/dashboard/suppliers/{id}/check", [401, 401, 403, 200, 403, 403, 403, 403]),
    // The console: every key signs in; each page and form allows what the API allows the key.
    ("GET", "/console", [303, 303, 303, 303, 303, 303, 303, 303]),
    ("GET", "/console/login", [200, 200, 200, 200, 200, 200, 200, 200]),
    ("POST", "/console/login", [400, 303, 303, 303, 303, 303, 303, 303]),
    ("POST", "/console/logout", [303, 303, 303, 303, 303, 303, 303, 303]),
    ("GET", "/console/assets/console.js", [200, 200, 200, 200, 200, 200, 200, 200]),
    ("GET", "/console/incidents", [401, 200, 200, 200, 200, 200, 200, 200]),
    ("POST", "/console/incidents", [401, 303, 403, 303, 403, 403, 403, 403]),
    ("GET", "/console/incidents/new", [401, 200, 403, 200, 403, 403, 403, 403]),
    ("GET", "/console/incidents/{ref}", [401, 200, 200, 200, 200, 404, 404, 200]),
    ("GET", "/console/incidents/{ref}/fingerprint", [401, 200, 200, 200, 200, 404, 404, 200]),
    ("POST", "/console/incidents/{ref}/notes", [401, 303, 403, 303, 303, 404, 404, 403]),
    ("POST", "/console/incidents/{ref}/attachments", [401, 303, 403, 303, 303, 404, 404, 403]),
    ("GET", "/console/incidents/{ref}/attachments/{id}", [401, 200, 200, 200, 200, 404, 404, 200]),
    ("POST", "/console/incidents/{ref}/route", [401, 409, 403, 409, 403, 403, 403, 403]),
    ("POST", "/console/incidents/{ref}/status", [401, 303, 403, 303, 403, 403, 403, 403]),
    ("POST", "/console/incidents/{ref}/link", [401, 303, 403, 303, 403, 403, 403, 403]),
    ("POST", "/console/incidents/{ref}/handback", [401, 403, 403, 403, 303, 404, 404, 403]),
    ("GET", "/console/changes", [401, 200, 200, 200, 200, 200, 200, 200]),
    ("GET", "/console/changes/calendar", [401, 200, 200, 200, 200, 200, 200, 200]),
    ("GET", "/console/changes/{ref}", [401, 200, 200, 200, 404, 200, 404, 200]),
];

#[tokio::test]
async fn every_endpoint_answers_every_role_and_supplier_as_the_access_matrix_says() {
    let (hub, _sim2) = two_supplier_hub(Options::sla(), "").await;
    let own = hub.key("supplier", Some(SECOND)).await;
    let other = hub.key("supplier", Some("hosting")).await;
    let change_manager = hub.key("change_manager", None).await;
    let keys: [Option<String>; 8] = [
        None,
        Some(hub.keys.service_desk.clone()),
        Some(hub.keys.manager.clone()),
        Some(hub.keys.admin.clone()),
        Some(own),
        Some(hub.keys.supplier.clone()),
        Some(other),
        Some(change_manager),
    ];
    // The ticket: the first supplier held it and handed it back; the second holds it now. A
    // second such ticket is for the console's hand-back (the API's ends the first one's part).
    let mut tickets = vec![];
    for title in ["Access matrix", "Access matrix, console hand-back"] {
        let r = hub.raise(&network_incident(title)).await["ref"].as_str().unwrap().to_string();
        hub.wait_incident(&r, "the first leg", |d| leg(d, SUPPLIER, "open").is_some()).await;
        let resp = hub.post(&format!("/api/v1/incidents/{r}/handback"), &hub.keys.supplier, &json!({"reason": "not ours"})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        hub.wait_incident(&r, "the second leg", |d| leg(d, SECOND, "open").is_some()).await;
        tickets.push(r);
    }
    let (r, r2) = (tickets[0].clone(), tickets[1].clone());
    assert_eq!(hub.attach(&r, "evidence.txt", "text/plain", b"evidence".to_vec()).await.status(), StatusCode::CREATED);
    let file_id = hub.incident(&r).await["attachments"][0]["id"].as_i64().unwrap();
    // The change: submitted, so the first supplier (the network's by rule) holds its one leg.
    let change = hub.post("/api/v1/changes", &hub.keys.service_desk, &matrix_change("the matrix's change")).await.json::<Value>().await.unwrap();
    let c = change["ref"].as_str().unwrap().to_string();
    let submitted = hub
        .http
        .patch(hub.url(&format!("/api/v1/changes/{c}")))
        .bearer_auth(&hub.keys.service_desk)
        .header("If-Match", "\"1\"")
        .json(&json!({"status": "assess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), StatusCode::OK);
    let change_file = hub
        .http
        .post(hub.url(&format!("/api/v1/changes/{c}/attachments")))
        .bearer_auth(&hub.keys.service_desk)
        .query(&[("file_name", "plan.txt")])
        .body("the matrix's plan")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    // Every endpoint the app serves, hand-back last (it ends the own supplier's part).
    let mut endpoints = siam_hub::api::routes::list();
    endpoints.sort_by_key(|(_, path)| path.ends_with("/handback"));
    let mut wrong = Vec::new();
    for (method, path) in &endpoints {
        let Some((_, _, want)) = MATRIX.iter().find(|(m, p, _)| *m == method.as_str() && p == path) else {
            wrong.push(format!("{method} {path} has no row in the access matrix: decide who may call it"));
            continue;
        };
        let ticket = if path == "/console/incidents/{ref}/handback" { &r2 } else { &r };
        let url = path
            .replace("/changes/{ref}/attachments/{id}", &format!("/changes/{c}/attachments/{change_file}"))
            .replace("/changes/{ref}", &format!("/changes/{c}"))
            .replace("{ref}", ticket)
            .replace("/troubleTicket/{id}", &format!("/troubleTicket/{ticket}"))
            .replace("/attachments/{id}", &format!("/attachments/{file_id}"))
            .replace("/hub/{id}", &format!("/hub/{}", uuid::Uuid::new_v4()))
            .replace("/dead-letters/{id}", "/dead-letters/999999")
            .replace("/suppliers/{id}", &format!("/suppliers/{SUPPLIER}"))
            .replace("{supplier}", SUPPLIER)
            .replace("{event}", "troubleTicketStatusChangeEvent");
        for (i, key) in keys.iter().enumerate() {
            let got = call(&hub, method.as_str(), path, &url, key.as_deref(), CALLERS[i], &c).await;
            if got != want[i] {
                wrong.push(format!("{method} {path} as {}: {got}, the matrix says {}", CALLERS[i], want[i]));
            }
        }
    }
    for (m, p, _) in MATRIX {
        if !endpoints.iter().any(|(method, path)| method.as_str() == *m && path == p) {
            wrong.push(format!("the matrix lists {m} {p}, which the hub does not serve"));
        }
    }
    assert!(wrong.is_empty(), "the access matrix does not hold:\n{}", wrong.join("\n"));
    hub.finish().await;
}

/// One call of the matrix: `key` presented as the API expects (a bearer key; for the dashboard
/// and the console, the session their sign-in form gives), with a body that the endpoint would
/// accept from a caller allowed to use it, so what decides the answer is who calls.
async fn call(hub: &TestHub, method: &str, pattern: &str, url: &str, key: Option<&str>, caller: &str, change: &str) -> u16 {
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    if (pattern == "/dashboard/login" || pattern == "/console/login") && method == "POST" {
        let form: Vec<(&str, &str)> = key.map(|k| vec![("key", k)]).unwrap_or_default();
        return plain.post(hub.url(url)).form(&form).send().await.unwrap().status().as_u16();
    }
    let mut req = plain.request(method.parse().unwrap(), hub.url(url));
    let area = ["/dashboard", "/console"].into_iter().find(|a| pattern.starts_with(a));
    if let Some(area) = area {
        if let Some(k) = key {
            let signed = plain.post(hub.url(&format!("{area}/login"))).form(&[("key", k)]).send().await.unwrap();
            if let Some(cookie) = signed.headers().get("set-cookie") {
                req = req.header("cookie", cookie.to_str().unwrap().split(';').next().unwrap().to_string());
            }
        }
    } else if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if area == Some("/console") && method == "POST" {
        let version = || async { hub.incident(url.split('/').nth(3).unwrap()).await["version"].to_string() };
        let form: Vec<(&str, String)> = match pattern.rsplit('/').next().unwrap_or("") {
            "incidents" => vec![
                ("title", format!("raised by {caller}")),
                ("caller", "j.smith".into()),
                ("service", "network".into()),
                ("impact", "2".into()),
                ("urgency", "2".into()),
                ("idempotency_key", uuid::Uuid::new_v4().to_string()),
            ],
            "notes" => vec![("text", format!("note by {caller}")), ("visibility", "public".into())],
            "route" => vec![("supplier", SECOND.into()), ("reason", "already theirs".into()), ("mode", "move".into())],
            "status" => vec![("version", version().await), ("status", "in_progress".into())],
            "link" => vec![("version", version().await), ("caused_by_change", change.to_string())],
            "handback" => vec![("reason", "not ours either".into())],
            "attachments" => {
                let part = reqwest::multipart::Part::bytes(format!("uploaded by {caller}").into_bytes()).file_name("matrix.txt").mime_str("text/plain").unwrap();
                return req.multipart(reqwest::multipart::Form::new().part("file", part)).send().await.unwrap().status().as_u16();
            }
            _ => vec![],
        };
        return req.form(&form).send().await.unwrap().status().as_u16();
    }
    let reference = pattern.contains("{ref}") || pattern.contains("/troubleTicket/{id}");
    let body = match (method, pattern.rsplit('/').next().unwrap_or("")) {
        ("POST", "incidents") => Some(network_incident(&format!("raised by {caller}"))),
        ("POST", "changes") => Some(matrix_change(&format!("raised by {caller}"))),
        ("PATCH", "{supplier}") => Some(json!({"native_number": format!("CHG-of-{caller}")})),
        ("POST", "approvals") => Some(json!({"decision": "approve", "comment": format!("approved by {caller}")})),
        ("POST", "acknowledge") => Some(json!({"key": "overlap:CHG-000999:service network", "reason": "matrix"})),
        ("PATCH", "{ref}") => Some(json!({"description": format!("edited by {caller}")})),
        ("POST", "notes") => Some(json!({"text": format!("note by {caller}"), "visibility": "public"})),
        ("POST", "route") => Some(json!({"supplier": SECOND, "reason": "already theirs"})),
        ("POST", "handback") => Some(json!({"reason": "not ours either"})),
        ("POST", "troubleTicket") => Some(json!({
            "name": format!("raised by {caller}"), "description": "matrix", "severity": "Minor", "ticketType": "incident",
            "relatedEntity": [{"id": "network", "role": "affectedService", "@referredType": "Service"}],
        })),
        ("PATCH", "{id}") if reference => Some(json!({"note": [{"text": format!("TMF note by {caller}")}]})),
        ("POST", "hub") => Some(json!({"callback": "http://127.0.0.1:9/listener"})),
        ("POST", _) if pattern.starts_with("/webhooks") => Some(json!({})),
        _ => None,
    };
    if let Some(b) = body {
        req = req.json(&b);
    }
    if pattern.ends_with("/attachments") {
        req = req.query(&[("file_name", "matrix.txt")]).header("content-type", "text/plain").body(format!("uploaded by {caller}"));
    }
    if method == "PATCH" && pattern.starts_with("/api/v1/incidents") {
        req = req.header("If-Match", format!("\"{}\"", hub.incident(url.rsplit('/').next().unwrap()).await["version"]));
    }
    if method == "PATCH" && pattern == "/api/v1/changes/{ref}" {
        let change: Value = hub.get_as(url, &hub.keys.admin).await.json().await.unwrap();
        req = req.header("If-Match", format!("\"{}\"", change["version"]));
    }
    req.send().await.unwrap().status().as_u16()
}

/// A change on the network service, in a window next week.
fn matrix_change(title: &str) -> Value {
    let start = chrono::Utc::now() + chrono::Duration::days(7);
    json!({ "title": title, "services": ["network"], "planned_start": start.to_rfc3339(), "planned_end": (start + chrono::Duration::hours(1)).to_rfc3339() })
}
