//! The API as the service desk meets it: validation, idempotency, auth, reading and listing.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use siam_hub::validation::{validate, Doc};

async fn problem(resp: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    body
}

async fn count(hub: &TestHub) -> usize {
    let v: Value = hub.get_as("/api/v1/incidents?limit=200", &hub.keys.service_desk).await.json().await.unwrap();
    v["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn create_returns_the_canonical_document_with_derived_priority_and_route() {
    let hub = TestHub::spawn().await;
    let resp = hub.create(&network_incident("Core switch down"), Some("k-1")).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let doc: Value = resp.json().await.unwrap();
    validate(Doc::Incident, &doc).expect("the answer is a valid canonical incident");
    assert!(doc["ref"].as_str().unwrap().starts_with("INC-"));
    assert_eq!(doc["priority"], 2, "impact 1 x urgency 2 is priority 2 in the default matrix");
    assert_eq!(doc["priority_source"], "derived");
    assert_eq!(doc["assigned_supplier"], SUPPLIER);
    assert_eq!(doc["legs"][0]["supplier"], SUPPLIER);
    assert_eq!(doc["legs"][0]["system"], "servicenow");
    let history = hub.history(doc["ref"].as_str().unwrap()).await;
    let types: Vec<&str> = history.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(&types[..2], ["incident.created", "incident.routed"]);
    assert_eq!(history[1]["data"]["rule"], "rule 1");
    hub.finish().await;
}

#[tokio::test]
async fn unmatched_incident_goes_to_the_integrator_queue() {
    let hub = TestHub::spawn().await;
    let mut body = network_incident("Payslips missing");
    body["service"] = json!("payroll");
    body["category"] = json!("software");
    let doc = hub.raise(&body).await;
    assert_eq!(doc["assigned_supplier"], "integrator");
    assert_eq!(doc["legs"], json!([]));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(hub.sim.incidents().is_empty(), "nothing may reach a supplier");
    hub.finish().await;
}

#[tokio::test]
async fn same_idempotency_key_returns_the_same_incident_and_a_different_body_is_refused() {
    let hub = TestHub::spawn().await;
    let body = network_incident("Printer on fire");
    let first: Value = hub.create(&body, Some("same-key")).await.json().await.unwrap();
    let again = hub.create(&body, Some("same-key")).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["ref"], first["ref"]);

    let mut other = body.clone();
    other["title"] = json!("Something else entirely");
    let p = problem(hub.create(&other, Some("same-key")).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["type"].as_str().unwrap().ends_with("idempotency-key-reused"));

    // Concurrent retries of one request still make one incident.
    let responses = futures_util::future::join_all((0..6).map(|_| hub.create(&body, Some("racing-key")))).await;
    let mut refs = std::collections::HashSet::new();
    for r in responses {
        assert_eq!(r.status(), StatusCode::CREATED);
        refs.insert(r.json::<Value>().await.unwrap()["ref"].as_str().unwrap().to_string());
    }
    assert_eq!(refs.len(), 1);
    assert_eq!(count(&hub).await, 2);
    hub.wait_sim_ticket(first["ref"].as_str().unwrap()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(hub.sim.incident_by_correlation(first["ref"].as_str().unwrap()).len(), 1);
    hub.finish().await;
}

#[tokio::test]
async fn bad_input_gets_a_precise_problem_and_changes_nothing() {
    let hub = TestHub::spawn().await;
    let sd = hub.keys.service_desk.clone();
    let raw = |body: &'static str| hub.http.post(hub.url("/api/v1/incidents")).bearer_auth(&sd).header("content-type", "application/json").body(body).send();

    let p = problem(raw("{\"title\": ").await.unwrap(), StatusCode::BAD_REQUEST).await;
    assert!(p["detail"].as_str().unwrap().contains("line 1"), "{p}");
    problem(raw("").await.unwrap(), StatusCode::BAD_REQUEST).await;

    let mut body = network_incident("Bad impact");
    body["impact"] = json!(5);
    body["colour"] = json!("red");
    let p = problem(hub.create(&body, None).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let pointers: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
    assert!(pointers.contains(&"/impact"), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("colour"), "{p}");

    let mut body = network_incident("No such service");
    body["service"] = json!("teleportation");
    let p = problem(hub.create(&body, None).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("teleportation"));

    let mut body = network_incident("Huge");
    body["description"] = json!("x".repeat(70_000));
    problem(hub.create(&body, None).await, StatusCode::PAYLOAD_TOO_LARGE).await;

    let resp = hub.http.post(hub.url("/api/v1/incidents")).json(&network_incident("no key")).send().await.unwrap();
    problem(resp, StatusCode::UNAUTHORIZED).await;
    let resp = hub.post("/api/v1/incidents", &hub.keys.supplier, &network_incident("supplier may not raise")).await;
    problem(resp, StatusCode::FORBIDDEN).await;
    let resp = hub.post("/api/v1/incidents", &hub.keys.manager, &network_incident("managers read, they do not raise")).await;
    problem(resp, StatusCode::FORBIDDEN).await;
    problem(hub.get_as("/api/v1/incidents/INC-999999", &sd).await, StatusCode::NOT_FOUND).await;
    problem(hub.get_as("/api/v1/nowhere", &sd).await, StatusCode::NOT_FOUND).await;
    assert_eq!(count(&hub).await, 0, "no bad request may leave anything behind");

    // A change needs the version it was based on. The incident stays in the integrator's queue,
    // so no supplier dispatch moves its version while the refusals are checked.
    let mut versioned = network_incident("Versioned");
    versioned["service"] = json!("payroll");
    let doc = hub.raise(&versioned).await;
    let r = doc["ref"].as_str().unwrap();
    let resp = hub.http.patch(hub.url(&format!("/api/v1/incidents/{r}"))).bearer_auth(&sd).json(&json!({"urgency": 1})).send().await.unwrap();
    problem(resp, StatusCode::PRECONDITION_REQUIRED).await;
    let p = problem(hub.patch(r, 99, &json!({"urgency": 1})).await, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(p["current_version"], 1);
    problem(hub.patch(r, 1, &json!({"status": "on_hold"})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(hub.patch(r, 1, &json!({"status": "sleeping"})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let after = hub.incident(r).await;
    assert_eq!(after["urgency"], 2);
    assert_eq!(after["status"], doc["status"]);
    hub.finish().await;
}

#[tokio::test]
async fn list_filters_and_pages_with_a_cursor_and_suppliers_see_only_their_tickets() {
    let hub = TestHub::spawn().await;
    let mut refs = vec![];
    for i in 0..5 {
        refs.push(hub.raise(&network_incident(&format!("network {i}"))).await["ref"].as_str().unwrap().to_string());
    }
    let mut payroll = network_incident("payroll");
    payroll["service"] = json!("payroll");
    let internal = hub.raise(&payroll).await["ref"].as_str().unwrap().to_string();

    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/incidents?service=network&limit=2&cursor={c}"),
            None => "/api/v1/incidents?service=network&limit=2".to_string(),
        };
        let page: Value = hub.get_as(&path, &hub.keys.service_desk).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["ref"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    refs.reverse();
    assert_eq!(seen, refs, "newest first, every network incident exactly once");

    let bad = hub.get_as("/api/v1/incidents?cursor=garbage", &hub.keys.service_desk).await;
    problem(bad, StatusCode::BAD_REQUEST).await;
    // A query value the endpoint's types cannot read is refused like any other, as problem+json.
    for bad in ["limit=abc", "priority=high", "limit=-"] {
        let doc = problem(hub.get_as(&format!("/api/v1/incidents?{bad}"), &hub.keys.service_desk).await, StatusCode::BAD_REQUEST).await;
        assert!(doc["type"].as_str().unwrap().ends_with("/invalid-query"), "{bad}: {doc}");
    }
    let path = format!("/api/v1/incidents/{internal}/attachments/not-a-number");
    problem(hub.get_as(&path, &hub.keys.service_desk).await, StatusCode::NOT_FOUND).await;

    let mine: Value = hub.get_as("/api/v1/incidents?limit=200", &hub.keys.supplier).await.json().await.unwrap();
    let mine: Vec<&str> = mine["items"].as_array().unwrap().iter().map(|i| i["ref"].as_str().unwrap()).collect();
    assert_eq!(mine.len(), 5);
    assert!(!mine.contains(&internal.as_str()));
    problem(hub.get_as(&format!("/api/v1/incidents/{internal}"), &hub.keys.supplier).await, StatusCode::NOT_FOUND).await;
    hub.finish().await;
}

#[tokio::test]
async fn health_readiness_and_openapi() {
    let hub = TestHub::spawn().await;
    assert_eq!(hub.http.get(hub.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = hub.http.get(hub.url("/readyz")).send().await.unwrap();
        if r.status() == StatusCode::OK {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["checks"]["database"], true);
            assert_eq!(v["checks"]["broker"], true);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let api: Value = hub.http.get(hub.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(api["openapi"].as_str().unwrap().starts_with("3."));
    assert!(api["paths"]["/api/v1/incidents"]["post"].is_object());
    assert!(api["paths"]["/api/v1/incidents/{ref}"]["patch"].is_object());
    assert!(api["components"]["schemas"]["create"]["properties"]["impact"].is_object());
    hub.finish().await;
}

#[tokio::test]
async fn the_history_comes_a_bounded_page_at_a_time() {
    let hub = TestHub::spawn().await;
    let (r, _) = hub.open_ticket("Chatty").await;
    for n in 0..7 {
        let resp = hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &json!({"text": format!("update {n}"), "visibility": "internal"})).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    hub.settle(&r).await;
    let path = format!("/api/v1/incidents/{r}/history");
    let all: Value = hub.get_as(&format!("{path}?limit=1000"), &hub.keys.service_desk).await.json().await.unwrap();
    assert!(all["next_cursor"].is_null());
    let everything = all["events"].as_array().unwrap().clone();
    assert!(everything.len() > 9, "{everything:#?}");

    let (mut paged, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=3&cursor={c}"),
            None => format!("{path}?limit=3"),
        };
        let page: Value = hub.get_as(&url, &hub.keys.service_desk).await.json().await.unwrap();
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 3);
        assert_eq!(page["holders"], all["holders"], "every page says who held the ticket");
        paged.extend(events.iter().cloned());
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, everything, "the pages together are the whole log, in order");
    assert_eq!(pages, everything.len().div_ceil(3));

    for bad in ["limit=0", "limit=1001", "cursor=bm9wZQ"] {
        problem(hub.get_as(&format!("{path}?{bad}"), &hub.keys.service_desk).await, StatusCode::BAD_REQUEST).await;
    }
    hub.finish().await;
}
