//! TMF621: the golden fixtures of the mapping (`adapters/tmf621/fixtures/`), a TMF621 supplier
//! (the simulator, as v4, v5 with OAuth2, and ServiceNow's flavour) beside the ServiceNow one,
//! and the hub's own TMF621 API, on the real PostgreSQL and RabbitMQ.
//!
//! Fixtures: `<case>.native.json` -> `<case>.canonical.json` (what `siam-hub map --system
//! tmf621` prints), `<case>.canonical-in.json` -> `<case>.native-out.json` (`--reverse`), and an
//! optional `<case>.instance.json` holding the `[suppliers.tmf621]` settings of the instance the
//! case is read as (ServiceNow's flavour, v5). The expected documents were written from
//! `reference/suppliers/tmf621.md` and `adapters/tmf621/profile.json`, not copied from output.

use crate::fixtures::{binary_fixture_failures, cases, check_native_fixtures, check_reverse_fixtures, fixtures_dir, mismatch, read_json, run_map};
use crate::helpers::*;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use siam_hub::adapters::tmf621::{Instance, Tmf621};
use siam_hub::cli::map_payload_with;
use siam_hub::config::{RoutingRule, SecretRef, Settings, SupplierSettings, Tmf621Settings, TmfFlavour, TmfVersion};
use siam_hub::sim::tmf621::{EventBehaviour, Fault, SimConfig, Tmf621Sim};
use siam_hub::validation::{validate, Doc};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---- Golden fixtures ---------------------------------------------------------------------------

/// The instance settings a case is read with (`<case>.instance.json`, else the defaults).
fn instance_settings(case: &str) -> Option<Value> {
    let p = fixtures_dir("tmf621").join(format!("{case}.instance.json"));
    p.exists().then(|| read_json(&p))
}

fn mapping(case: &str) -> Tmf621 {
    let settings: Tmf621Settings = instance_settings(case).map(|v| serde_json::from_value(v).expect("instance settings")).unwrap_or_default();
    Tmf621::new(&settings)
}

#[test]
fn tmf621_golden_native_fixtures_map_to_their_canonical_documents() {
    check_native_fixtures("tmf621", 10, |case, text| map_payload_with(&mapping(case), false, text));
}

#[test]
fn tmf621_golden_canonical_fixtures_are_valid_and_map_to_their_native_bodies() {
    check_reverse_fixtures("tmf621", 3, |case, text| map_payload_with(&mapping(case), true, text));
}

/// The canonical fields an instance can hold: impact only where severity is the impact, urgency,
/// category and resolution code only where the instance has characteristics.
fn held(inst: &Instance, doc: &Value) -> Value {
    let mut v = json!({
        "title": doc["title"], "description": doc["description"], "status": doc["status"],
        "hold_reason": doc["hold_reason"], "ci": doc["ci"], "resolution_notes": doc["resolution"]["notes"],
    });
    if !inst.severity_is_priority {
        v["impact"] = doc["impact"].clone();
    }
    if inst.characteristics {
        v["urgency"] = doc["urgency"].clone();
        v["category"] = doc["category"].clone();
        v["resolution_code"] = doc["resolution"]["code"].clone();
    }
    v
}

#[test]
fn tmf621_golden_round_trips_keep_what_the_instance_can_hold() {
    let mut failures = vec![];
    for (i, (case, path)) in cases("tmf621", ".canonical-in.json").iter().enumerate() {
        let m = mapping(case);
        let canonical = read_json(path);
        let native = map_payload_with(&m, true, &canonical.to_string()).unwrap_or_else(|e| panic!("{case}: {e}"));
        // What the server would hold: the body plus the attributes it assigns.
        let mut ticket = native.as_object().cloned().unwrap_or_default();
        ticket.insert("id".into(), json!(format!("RT-{i}")));
        ticket.insert("creationDate".into(), json!("2024-05-14T06:52:10.118Z"));
        ticket.insert("lastUpdate".into(), json!("2024-05-14T07:00:00.000Z"));
        let back = map_payload_with(&m, false, &Value::Object(ticket).to_string()).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(back["correlation_ref"], canonical["ref"], "{case}: the hub reference travels");
        failures.extend(mismatch(case, "held fields after canonical -> native -> canonical", &held(&m.instance, &canonical), &held(&m.instance, &back)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `siam-hub map --system tmf621 ARGS`, with `--config` and `--supplier` for a case read as a
/// configured instance.
fn run_case(case: &str, args: &[&str]) -> std::process::Output {
    let Some(settings) = instance_settings(case) else { return run_map(&[&["--system", "tmf621"], args].concat()) };
    let mut toml = String::from("[[suppliers]]\nid = \"fx\"\nname = \"Fixture instance\"\nsystem = \"tmf621\"\nbase_url = \"https://tmf.example.net\"\n[suppliers.tmf621]\n");
    for (k, v) in settings.as_object().into_iter().flatten() {
        toml.push_str(&format!("{k} = {v}\n"));
    }
    let file = std::env::temp_dir().join(format!("siam-tmf-{case}-{}.toml", std::process::id()));
    std::fs::write(&file, toml).expect("temp config written");
    std::process::Command::new(env!("CARGO_BIN_EXE_siam-hub"))
        .env_remove("RUST_LOG")
        .env_remove("SIAM_CONFIG")
        .arg("--config")
        .arg(&file)
        .args(["map", "--system", "tmf621", "--supplier", "fx"])
        .args(args)
        .output()
        .expect("siam-hub runs")
}

#[test]
fn tmf621_golden_binary_maps_every_fixture_both_ways() {
    let failures = binary_fixture_failures("tmf621", run_case);
    let out = run_map(&["--system", "tmf622", "x.json"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("tmf621"), "the systems are listed");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---- A TMF621 supplier beside the ServiceNow one -----------------------------------------------

const TMF: &str = "tmf-apps";

struct TmfHub {
    hub: TestHub,
    sim: Tmf621Sim,
    secret: String,
}

fn tmf_supplier(sim_url: &str, version: &str, flavour: &str, auth: &str, secret: &str) -> SupplierSettings {
    let toml = format!(
        r#"
        [[suppliers]]
        id = "{TMF}"
        name = "Applications supplier (TMF621)"
        system = "tmf621"
        base_url = "{sim_url}"
        username = "{SIM_USER}"
        webhook_auth = "basic"
        poll_interval_secs = 0
        poll_overlap_secs = 120
        timeout_secs = 2
        max_attempts = 4
        rate_per_sec = 50
        [suppliers.tmf621]
        version = "{version}"
        flavour = "{flavour}"
        auth = "{auth}"
        "#
    );
    let mut s = Settings::from_toml(&toml).expect("valid TMF621 supplier").suppliers.remove(0);
    s.password = Some(SecretRef::Value(SecretString::from(SIM_PASSWORD.to_string())));
    s.webhook_secret = Some(SecretRef::Value(SecretString::from(secret.to_string())));
    s
}

async fn spawn_tmf(version: TmfVersion, flavour: TmfFlavour, auth: &str) -> TmfHub {
    spawn_tmf_with(version, flavour, auth, |_| {}, Options::default()).await
}

/// A TMF621 supplier whose settings `tweak` changes, in a hub with `options`.
async fn spawn_tmf_with(version: TmfVersion, flavour: TmfFlavour, auth: &str, tweak: impl FnOnce(&mut SupplierSettings), options: Options) -> TmfHub {
    let secret = format!("tmf-{}", uuid::Uuid::new_v4().simple());
    let sim = Tmf621Sim::new(SimConfig {
        version,
        flavour,
        user: SIM_USER.into(),
        password: SIM_PASSWORD.into(),
        listener_auth: Some((TMF.into(), secret.clone())),
        ..SimConfig::default()
    });
    sim.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).expect("TMF simulator starts");
    let v = if version == TmfVersion::V5 { "v5" } else { "v4" };
    let f = if flavour == TmfFlavour::Servicenow { "servicenow" } else { "standard" };
    let mut supplier = tmf_supplier(&sim.base_url().unwrap(), v, f, auth, &secret);
    tweak(&mut supplier);
    let rule = RoutingRule { service: Some("email".into()), ci: None, category: None, supplier: TMF.into() };
    let hub = TestHub::spawn_with_suppliers(options, vec![supplier], vec![rule]).await;
    let callback = format!("{}/webhooks/{TMF}", hub.addr);
    wait_for("the hub to subscribe to the supplier's events", || sim.subscriptions().into_iter().find(|s| s.callback == callback)).await;
    TmfHub { hub, sim, secret }
}

fn email_incident(title: &str) -> Value {
    json!({
        "title": title,
        "description": "Outbound mail is queued for more than 30 minutes",
        "service": "email",
        "ci": "mail-relay-01",
        "impact": 2,
        "urgency": 2,
        "caller": "j.smith",
        "category": "email"
    })
}

impl TmfHub {
    /// Raises an incident routed to the TMF supplier; returns (ref, ticket id).
    async fn open(&self, title: &str) -> (String, String) {
        let doc = self.hub.raise(&email_incident(title)).await;
        let r = doc["ref"].as_str().unwrap().to_string();
        // The supplier's create event may open the leg before the create answer does; the
        // dispatcher's own opening (which links the ticket) follows.
        let doc = self.hub.wait_incident(&r, "the TMF leg to open", |d| d["legs"][0]["state"] == "open" && d["status"] == "assigned" && d["legs"][0]["url"].is_string()).await;
        (r, doc["legs"][0]["native_id"].as_str().unwrap().to_string())
    }

    async fn reconcile(&self) -> Value {
        let resp = self.hub.post(&format!("/api/v1/admin/suppliers/{TMF}/reconcile"), &self.hub.keys.admin, &json!({})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    fn ticket(&self, id: &str) -> Value {
        self.sim.tickets().into_iter().find(|t| t["id"] == id).unwrap_or(Value::Null)
    }

    async fn finish(self) {
        self.hub.finish().await;
    }
}

fn statuses(history: &[Value]) -> Vec<String> {
    history.iter().filter(|e| e["type"] == "incident.status_changed").map(|e| e["data"]["to"].as_str().unwrap_or("").to_string()).collect()
}

#[tokio::test]
async fn tmf_a_routed_incident_becomes_one_trouble_ticket_and_a_lost_create_answer_is_adopted() {
    let t = spawn_tmf(TmfVersion::V4, TmfFlavour::Standard, "basic").await;
    // The lookup by externalId passes; the create commits but its answer is lost.
    t.sim.push_fault(Fault::Timeout { delay: Duration::from_millis(1) });
    t.sim.push_fault(Fault::LoseResponseAfterCommit);
    let (r, id) = t.open("Mail relay rejecting messages").await;
    let tickets = t.sim.tickets_by_external_id(&r);
    assert_eq!(tickets.len(), 1, "exactly one trouble ticket: {tickets:#?}");
    let ticket = &tickets[0];
    assert_eq!(ticket["id"], id.as_str());
    assert_eq!(ticket["externalId"], r.as_str());
    assert_eq!(ticket["name"], "Mail relay rejecting messages");
    assert_eq!(ticket["description"], "Outbound mail is queued for more than 30 minutes");
    assert_eq!(ticket["severity"], "Major", "impact 2");
    assert_eq!(ticket["priority"], "Medium", "priority 3 = impact 2 x urgency 2");
    assert_eq!(ticket["ticketType"], "incident");
    assert_eq!(ticket["relatedParty"][0], json!({"id": "j.smith", "name": "j.smith", "role": "originator", "@referredType": "Individual", "@type": "RelatedParty"}));
    let entities: Vec<&str> = ticket["relatedEntity"].as_array().unwrap().iter().map(|e| e["role"].as_str().unwrap()).collect();
    assert_eq!(entities, ["affectedCI", "affectedService"]);
    let posts = t.sim.request_log().iter().filter(|l| l.method == "POST" && l.path.ends_with("/troubleTicket")).count();
    assert_eq!(posts, 1, "the retry looked the reference up instead of posting again");
    let doc = t.hub.incident(&r).await;
    assert_eq!(doc["status"], "assigned");
    assert_eq!(doc["legs"][0]["system"], "tmf621");
    assert_eq!(doc["legs"][0]["native_status"], "acknowledged");
    assert!(doc["legs"][0]["url"].as_str().unwrap().ends_with(&format!("/tmf-api/troubleTicket/v4/troubleTicket/{id}")));
    t.finish().await;
}

#[tokio::test]
async fn tmf_supplier_status_changes_and_notes_arrive_by_event_notification() {
    let t = spawn_tmf(TmfVersion::V4, TmfFlavour::Standard, "basic").await;
    let (r, id) = t.open("Shared mailbox missing").await;
    t.sim.agent_update(&id, json!({"status": "inProgress", "assignee": "noc.engineer", "note": [{"text": "Looking at the relay"}]})).unwrap();
    let doc = t.hub.wait_incident(&r, "in progress", |d| d["status"] == "in_progress").await;
    assert_eq!(doc["legs"][0]["native_status"], "inProgress");
    t.sim.agent_update(&id, json!({"status": "pending", "statusChangeReason": "Awaiting caller", "note": [{"text": "Which mailbox exactly?"}]})).unwrap();
    let doc = t.hub.wait_incident(&r, "on hold", |d| d["status"] == "on_hold").await;
    assert_eq!(doc["hold_reason"], "awaiting_caller");
    t.sim.agent_update(&id, json!({"status": "resolved", "statusChangeReason": "Mailbox permissions restored"})).unwrap();
    let doc = t.hub.wait_incident(&r, "resolved", |d| d["status"] == "resolved").await;
    assert_eq!(doc["resolution"], json!({"code": "other", "notes": "Mailbox permissions restored"}));
    assert_eq!(doc["hold_reason"], Value::Null);
    let doc = t.hub.wait_incident(&r, "both notes", |d| d["notes"].as_array().unwrap().len() == 2).await;
    for n in doc["notes"].as_array().unwrap() {
        assert_eq!((n["visibility"].as_str(), n["origin"].as_str(), n["author"].as_str()), (Some("public"), Some(TMF), Some("agent.smith")), "{n}");
    }
    assert_eq!(statuses(&t.hub.history(&r).await), ["assigned", "in_progress", "on_hold", "resolved"]);
    validate(Doc::Incident, &doc).expect("a valid canonical document");
    // The supplier's resolution does not bounce back to it.
    let settled = t.hub.settle(&r).await;
    assert_eq!(t.ticket(&id)["statusChange"].as_array().unwrap().len(), 4, "acknowledged, inProgress, pending, resolved");
    assert_eq!(settled["status"], "resolved");
    t.finish().await;
}

#[tokio::test]
async fn tmf_missed_and_reordered_events_are_caught_by_the_sweep_and_the_revision() {
    let t = spawn_tmf(TmfVersion::V4, TmfFlavour::Standard, "basic").await;
    let (r, id) = t.open("Calendar sync broken").await;
    // One update raises a status event and an attribute event: both lost.
    t.sim.set_event_behaviour(EventBehaviour { drop_next: 2, ..Default::default() });
    t.sim.agent_update(&id, json!({"status": "inProgress", "severity": "Critical", "note": [{"text": "found it"}]})).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(t.hub.incident(&r).await["status"], "assigned", "the events were dropped");
    let report = t.reconcile().await;
    assert_eq!((report["applied"].as_u64(), report["notes_added"].as_u64()), (Some(1), Some(1)), "{report}");
    let doc = t.hub.incident(&r).await;
    assert_eq!((doc["status"].as_str(), doc["impact"].as_u64(), doc["priority"].as_u64()), (Some("in_progress"), Some(1), Some(2)));
    assert_eq!(doc["notes"][0]["text"], "found it");
    let again = t.reconcile().await;
    assert_eq!(again["applied"], 0);
    assert_eq!(t.hub.incident(&r).await["version"], doc["version"], "a second sweep changes nothing");

    // Duplicated and reversed deliveries end as one in-order delivery would.
    t.sim.set_event_behaviour(EventBehaviour { duplicate: true, reverse_order_of_next: 2, ..Default::default() });
    t.sim.agent_update(&id, json!({"status": "held", "statusChangeReason": "Awaiting change"})).unwrap();
    t.sim.agent_update(&id, json!({"status": "inProgress"})).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let doc = t.hub.settle(&r).await;
    assert_eq!(doc["status"], "in_progress", "the older `held` arrived last and changed nothing");
    assert_eq!(statuses(&t.hub.history(&r).await).last().map(String::as_str), Some("in_progress"));
    t.finish().await;
}

#[tokio::test]
async fn tmf_hub_changes_reach_the_supplier_internal_notes_never_leak_and_nothing_echoes() {
    let t = spawn_tmf(TmfVersion::V4, TmfFlavour::Standard, "basic").await;
    let (r, id) = t.open("Spam filter quarantining invoices").await;
    let doc = t.hub.incident(&r).await;
    let resp = t.hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({"status": "in_progress", "urgency": 1, "title": "Spam filter quarantining all invoices"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let secret_text = "Caller is the CFO; do not phone before 10:00";
    let notes = format!("/api/v1/incidents/{r}/notes");
    assert_eq!(t.hub.post(&notes, &t.hub.keys.service_desk, &json!({"text": secret_text, "visibility": "internal"})).await.status(), StatusCode::CREATED);
    assert_eq!(t.hub.post(&notes, &t.hub.keys.service_desk, &json!({"text": "We are looking into it", "visibility": "public"})).await.status(), StatusCode::CREATED);
    wait_for("the supplier to hold the changes", || {
        let tk = t.ticket(&id);
        (tk["status"] == "inProgress" && tk["priority"] == "High" && tk["note"].as_array().is_some_and(|n| !n.is_empty())).then_some(())
    })
    .await;
    let settled = t.hub.settle(&r).await;
    let ticket = t.ticket(&id);
    assert_eq!(ticket["name"], "Spam filter quarantining all invoices");
    let texts: Vec<&str> = ticket["note"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["We are looking into it"], "the public note once, the internal one never");
    assert!(!t.sim.stored_notes(&id).iter().any(|n| n.text == secret_text));
    assert!(!serde_json::to_string(&t.sim.tickets()).unwrap().contains("CFO"), "the internal note reached the supplier");
    // Every hub write came back as an event notification; none may count as a supplier change.
    assert_eq!(settled["notes"].as_array().unwrap().len(), 2, "{}", settled["notes"]);
    assert_eq!(settled["status"], "in_progress");
    let from_supplier: Vec<Value> = t
        .hub
        .history(&r)
        .await
        .into_iter()
        .filter(|e| e["source"] == format!("supplier:{TMF}") && matches!(e["type"].as_str(), Some("incident.status_changed" | "incident.updated" | "incident.note_added")))
        .filter(|e| e["data"]["to"] != "assigned")
        .collect();
    assert!(from_supplier.is_empty(), "echoes were applied: {from_supplier:#?}");
    let report = t.reconcile().await;
    assert_eq!(report["notes_added"], 0);
    assert_eq!(t.hub.incident(&r).await["version"], settled["version"]);
    t.finish().await;
}

#[tokio::test]
async fn tmf_files_travel_both_ways_in_the_attachment_array_once_each() {
    let t = spawn_tmf(TmfVersion::V4, TmfFlavour::Standard, "basic").await;
    let (r, id) = t.open("Mail flow report").await;

    // The hub's file goes in as an inline value, once, although the answer to the patch is lost.
    t.sim.push_fault_on("PATCH", Fault::LoseResponseAfterCommit);
    let data: Vec<u8> = (0..300_001u32).map(|i| (i * 7 % 256) as u8).collect();
    assert_eq!(t.hub.attach(&r, "mail-flow.pdf", "application/pdf", data.clone()).await.status(), StatusCode::CREATED);
    let doc = t.hub.wait_incident(&r, "the file sent to the supplier", |d| d["attachments"][0]["deliveries"][0]["state"] == "sent").await;
    assert_eq!(doc["attachments"][0]["deliveries"][0]["supplier"], TMF);
    let files = t.sim.files(&id);
    assert_eq!(files.len(), 1, "one file at the supplier");
    assert_eq!((files[0].0.as_str(), files[0].1.as_str()), ("mail-flow.pdf", "application/pdf"));
    assert!(files[0].2 == data, "the supplier got different bytes");
    let listed = &t.ticket(&id)["attachment"][0];
    assert_eq!(listed["size"], json!({"amount": data.len(), "units": "bytes"}));

    // The supplier's attribute-change event and a sweep bring no copy back.
    t.reconcile().await;
    let doc = t.hub.settle(&r).await;
    assert_eq!(doc["attachments"].as_array().unwrap().len(), 1);

    // An agent's file arrives by its event, fetched from the url the ticket lists.
    let headers = b"Received: from mx1.example\r\nX-Spam: no".to_vec();
    t.sim.agent_attach(&id, "headers.txt", "text/plain", &headers).unwrap();
    let doc = t.hub.wait_incident(&r, "the supplier's file", |d| d["attachments"].as_array().unwrap().len() == 2).await;
    let theirs = doc["attachments"].as_array().unwrap().iter().find(|a| a["file_name"] == "headers.txt").unwrap().clone();
    assert_eq!(theirs["origin"], TMF);
    assert_eq!(theirs["content_type"], "text/plain");
    let back = t.hub.get_as(&format!("/api/v1/incidents/{r}/attachments/{}", theirs["id"]), &t.hub.keys.service_desk).await;
    assert!(back.bytes().await.unwrap().as_ref() == headers.as_slice());
    t.reconcile().await;
    t.hub.settle(&r).await;
    assert_eq!(t.sim.files(&id).len(), 2, "nothing sent back to the supplier");
    t.finish().await;
}

type FileRequests = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A file server on an origin of its own: serves `body` at any path and records each request's
/// path and `Authorization` header.
fn file_server(body: &'static [u8]) -> (String, FileRequests) {
    let got: FileRequests = Arc::default();
    let g = got.clone();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let g = g.clone();
        App::new().default_service(web::to(move |req: HttpRequest| {
            let g = g.clone();
            async move {
                let auth = req.headers().get("authorization").map(|v| v.to_str().unwrap_or("?").to_string());
                g.lock().unwrap().push((req.path().to_string(), auth));
                HttpResponse::Ok().content_type("text/plain").body(body)
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(l)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}"), got)
}

/// Lists a file at `url` on the supplier's ticket, as an agent would; returns the hub's record
/// of the file: its refusal event, or the file.
async fn list_remote_file(t: &TmfHub, title: &str, url: &str) -> (String, Value) {
    let (r, id) = t.open(title).await;
    t.sim.agent_update(&id, json!({"attachment": [{"name": "evidence.txt", "mimeType": "text/plain", "url": url, "@type": "Attachment"}]})).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let refused = t.hub.history(&r).await.into_iter().find(|e| e["type"] == "attachment.refused" && e["data"]["direction"] == "inbound");
        if let Some(e) = refused {
            return (r, e);
        }
        let doc = t.hub.incident(&r).await;
        if let Some(file) = doc["attachments"].as_array().and_then(|a| a.first()) {
            return (r, file.clone());
        }
        assert!(tokio::time::Instant::now() < deadline, "the hub neither fetched nor refused the file");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn tmf_a_file_on_another_origin_is_refused_unless_the_supplier_allows_that_origin() {
    let (files, requests) = file_server(b"stolen?");
    let t = spawn_tmf(TmfVersion::V4, TmfFlavour::Standard, "basic").await;
    let url = format!("{files}/x/evidence.txt");
    let (r, refusal) = list_remote_file(&t, "File elsewhere", &url).await;
    let origin = t.sim.base_url().unwrap();
    assert_eq!(refusal["data"]["file_name"], "evidence.txt");
    assert_eq!(refusal["data"]["reason"].as_str().unwrap(), format!("file URL {url} is on another origin than the supplier's ({origin}) and not in attachment_origins"));
    assert!(requests.lock().unwrap().is_empty(), "the hub sent a request to the other origin: {:?}", requests.lock().unwrap());
    assert!(t.hub.incident(&r).await["attachments"].as_array().unwrap().is_empty());
    t.finish().await;
}

#[tokio::test]
async fn tmf_a_file_on_an_allowed_origin_is_fetched_without_the_suppliers_credentials() {
    let (files, requests) = file_server(b"Received: from mx1.example");
    let allowed = files.clone();
    let t = spawn_tmf_with(TmfVersion::V4, TmfFlavour::Standard, "basic", move |s| s.attachment_origins = vec![allowed], Options::default()).await;
    let (r, file) = list_remote_file(&t, "File on the file server", &format!("{files}/x/evidence.txt")).await;
    assert_eq!((file["file_name"].as_str(), file["origin"].as_str()), (Some("evidence.txt"), Some(TMF)), "{file}");
    let back = t.hub.get_as(&format!("/api/v1/incidents/{r}/attachments/{}", file["id"]), &t.hub.keys.service_desk).await;
    assert_eq!(back.bytes().await.unwrap().as_ref(), b"Received: from mx1.example");
    let got = requests.lock().unwrap().clone();
    assert_eq!(got, vec![("/x/evidence.txt".to_string(), None)], "fetched once, with no Authorization header");
    t.finish().await;
}

#[tokio::test]
async fn tmf_a_file_on_an_allowed_origin_at_a_loopback_address_is_refused_unless_egress_allows_it() {
    let (files, requests) = file_server(b"internal");
    let allowed = files.clone();
    let options = Options { allow_networks: vec![], ..Default::default() };
    let t = spawn_tmf_with(TmfVersion::V4, TmfFlavour::Standard, "basic", move |s| s.attachment_origins = vec![allowed], options).await;
    let url = format!("{files}/x/evidence.txt");
    let (_, refusal) = list_remote_file(&t, "File on a loopback address", &url).await;
    let reason = refusal["data"]["reason"].as_str().unwrap();
    assert!(reason.starts_with(&format!("file URL {url}: 127.0.0.1 is a loopback address")) && reason.contains("allow_networks"), "{reason}");
    assert!(requests.lock().unwrap().is_empty());
    t.finish().await;
}

#[tokio::test]
async fn tmf_servicenow_flavour_gets_internal_notes_only_as_work_notes() {
    let t = spawn_tmf(TmfVersion::V4, TmfFlavour::Servicenow, "basic").await;
    let (r, id) = t.open("Distribution list bouncing").await;
    let ticket = t.ticket(&id);
    assert_eq!(ticket["severity"], "3 - Moderate", "the hub wrote ServiceNow priority 3");
    assert_eq!(ticket["status"], "New");
    assert_eq!(t.hub.incident(&r).await["legs"][0]["native_status"], "New");
    let notes = format!("/api/v1/incidents/{r}/notes");
    t.hub.post(&notes, &t.hub.keys.service_desk, &json!({"text": "Internal: owner is on leave", "visibility": "internal"})).await;
    t.hub.post(&notes, &t.hub.keys.service_desk, &json!({"text": "Public: we are on it", "visibility": "public"})).await;
    wait_for("both notes at the supplier", || (t.sim.stored_notes(&id).len() == 2).then_some(())).await;
    let stored = t.sim.stored_notes(&id);
    let kind = |text: &str| stored.iter().find(|n| n.text == text).map(|n| n.kind.clone());
    assert_eq!(kind("Internal: owner is on leave").as_deref(), Some("work_notes"));
    assert_eq!(kind("Public: we are on it").as_deref(), Some("comments"));
    t.sim.agent_update(&id, json!({"status": "Open", "note": [{"text": "Rebuilding the list", "@type": "comments"}]})).unwrap();
    let doc = t.hub.wait_incident(&r, "in progress", |d| d["status"] == "in_progress").await;
    assert_eq!(doc["legs"][0]["native_status"], "Open");
    let doc = t.hub.wait_incident(&r, "the supplier's comment", |d| d["notes"].as_array().unwrap().len() == 3).await;
    let settled = t.hub.settle(&r).await;
    assert_eq!(settled["notes"], doc["notes"], "no echo became a note");
    assert_eq!(t.sim.stored_notes(&id).len(), 3);
    // ServiceNow's Trouble Ticket API carries no files: the refusal is on record, not silent.
    t.hub.attach(&r, "dl-members.csv", "text/csv", b"alias,member".to_vec()).await;
    let doc = t.hub.wait_incident(&r, "the refusal", |d| d["attachments"][0]["deliveries"][0]["state"] == "refused").await;
    assert!(doc["attachments"][0]["deliveries"][0]["reason"].as_str().unwrap().contains("no attachments"), "{}", doc["attachments"]);
    t.finish().await;
}

#[tokio::test]
async fn tmf_v5_with_oauth2_carries_urgency_and_a_rejection_hands_the_ticket_back() {
    let t = spawn_tmf(TmfVersion::V5, TmfFlavour::Standard, "oauth2").await;
    let (r, id) = t.open("Webmail login loops").await;
    let ticket = t.ticket(&id);
    assert_eq!(ticket["externalIdentifier"][0]["id"], r.as_str());
    let chars: Vec<(String, String)> =
        ticket["troubleTicketCharacteristic"].as_array().unwrap().iter().map(|c| (c["name"].as_str().unwrap().to_string(), c["value"].as_str().unwrap().to_string())).collect();
    assert!(chars.contains(&("urgency".into(), "2".into())) && chars.contains(&("category".into(), "email".into())), "{chars:?}");
    assert!(t.sim.request_log().iter().all(|l| l.user.as_deref() == Some("oauth:hub.integration")), "every call used the bearer token");

    t.sim
        .agent_update(&id, json!({"troubleTicketCharacteristic": [{"name": "impact", "value": "2"}, {"name": "urgency", "value": "1"}, {"name": "category", "value": "email"}]}))
        .unwrap();
    let doc = t.hub.wait_incident(&r, "urgency 1", |d| d["urgency"] == 1).await;
    assert_eq!(doc["priority"], 2, "re-derived from impact 2 x urgency 1");

    t.sim.agent_update(&id, json!({"status": "rejected", "statusChangeReason": "Not ours: webmail is run by the hosting supplier"})).unwrap();
    // A rejection is a hand-back: the leg is kept, marked, and the ticket routed on (here no
    // other rule matches, so to the integrator's queue).
    let doc = t.hub.wait_incident(&r, "the hand-back", |d| d["legs"][0]["state"] == "handed_back").await;
    assert_eq!(doc["status"], "new", "the record stays open to be routed elsewhere");
    assert_eq!(doc["assigned_supplier"], "integrator");
    assert!(doc["legs"][0]["last_error"].as_str().unwrap().contains("Not ours: webmail"), "{}", doc["legs"][0]);
    let refusal = t.hub.history(&r).await.into_iter().find(|e| e["type"] == "leg.handed_back" && e["data"]["reason"].as_str().is_some_and(|r| r.contains("Not ours")));
    assert!(refusal.is_some(), "the refusal is in the event log");
    t.finish().await;
}

#[tokio::test]
async fn tmf_a_partial_event_is_completed_by_reading_the_ticket_and_listener_auth_is_checked() {
    let t = spawn_tmf(TmfVersion::V4, TmfFlavour::Standard, "basic").await;
    let (r, id) = t.open("Mailbox size alerts").await;
    t.sim.set_event_behaviour(EventBehaviour { drop_next: 1, ..Default::default() });
    t.sim.agent_update(&id, json!({"severity": "Critical"})).unwrap();
    let listener = t.hub.url(&format!("/webhooks/{TMF}/listener/troubleTicketAttributeValueChangeEvent"));
    let partial = json!({"eventId": "partial-1", "eventType": "TroubleTicketAttributeValueChangeEvent", "fieldPath": "severity",
        "timeOcurred": "2024-05-14T08:00:00Z", "event": {"troubleTicket": {"id": id, "severity": "Critical"}}});
    let wrong = t.hub.http.post(&listener).basic_auth(TMF, Some("guess")).json(&partial).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = t.hub.http.post(&listener).basic_auth(TMF, Some(&t.secret)).json(&partial).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    let doc = t.hub.incident(&r).await;
    assert_eq!((doc["impact"].as_u64(), doc["title"].as_str()), (Some(1), Some("Mailbox size alerts")), "nothing absent from the event was taken as cleared");
    // A delete notification changes nothing on the record.
    let deleted = json!({"eventId": "del-1", "eventType": "TroubleTicketDeleteEvent", "event": {"troubleTicket": {"id": id}}});
    let resp = t.hub.http.post(t.hub.url(&format!("/webhooks/{TMF}/listener/troubleTicketDeleteEvent"))).basic_auth(TMF, Some(&t.secret)).json(&deleted).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(t.hub.incident(&r).await["version"], doc["version"]);
    t.finish().await;
}

// ---- The hub's own TMF621 API ------------------------------------------------------------------

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A TMF listener the test controls: records `(path, body)`, answers 204.
fn listener() -> (String, Received) {
    let got: Received = Arc::default();
    let g = got.clone();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let g = g.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((req.path().to_string(), serde_json::from_slice(&body).unwrap_or(Value::Null)));
                HttpResponse::NoContent().finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(l)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/client"), got)
}

const API: &str = "/tmf-api/troubleTicket/v4";

async fn tmf_error(resp: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!((body["code"].as_str(), body["status"].as_str()), (Some(code), Some(status.as_str())), "{body}");
    assert!(body["reason"].is_string() && body["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn tmf_api_create_read_patch_and_subscribe_to_status_changes() {
    let hub = TestHub::spawn().await;
    let sd = hub.keys.service_desk.clone();
    let (callback, got) = listener();
    let sub =
        hub.post(&format!("{API}/hub"), &sd, &json!({"callback": callback, "query": "eventType=TroubleTicketStatusChangeEvent,TroubleTicketAttributeValueChangeEvent"})).await;
    let sub_status = sub.status();
    let sub: Value = sub.json().await.unwrap();
    assert_eq!(sub_status, StatusCode::CREATED, "{sub}");

    let body = json!({
        "name": "Core router unreachable", "description": "Site B has no WAN since 09:10", "severity": "Major", "priority": "High",
        "ticketType": "incident", "externalId": "CUST-4711",
        "relatedEntity": [{"id": "network", "role": "affectedService", "@referredType": "Service"}],
        "relatedParty": [{"id": "j.smith", "name": "j.smith", "role": "originator"}],
        "note": [{"text": "Reported by phone", "author": "customer-portal"}]
    });
    let created = hub.post(&format!("{API}/troubleTicket"), &sd, &body).await;
    let created_status = created.status();
    let t: Value = created.json().await.unwrap();
    assert_eq!(created_status, StatusCode::CREATED, "{t}");
    let r = t["id"].as_str().unwrap().to_string();
    assert!(r.starts_with("INC-"));
    assert_eq!(
        (t["status"].as_str(), t["externalId"].as_str(), t["severity"].as_str(), t["priority"].as_str()),
        (Some("acknowledged"), Some("CUST-4711"), Some("Major"), Some("High"))
    );
    assert_eq!(t["note"][0]["text"], "Reported by phone");
    // A retry with the same externalId is the same ticket.
    let again: Value = hub.post(&format!("{API}/troubleTicket"), &sd, &body).await.json().await.unwrap();
    assert_eq!(again["id"], r.as_str());
    // Routed like any incident: impact 2 (Major) x urgency 1 (High) to the network supplier.
    let doc = hub.incident(&r).await;
    assert_eq!((doc["impact"].as_u64(), doc["urgency"].as_u64(), doc["priority"].as_u64()), (Some(2), Some(1), Some(2)));
    hub.wait_sim_ticket(&r).await;
    let doc = hub.wait_incident(&r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
    assert_eq!(doc["legs"][0]["supplier"], SUPPLIER);

    // The record's files are listed with a url to their content.
    let log = b"ping 10.2.0.1: 100% loss".to_vec();
    assert_eq!(hub.attach(&r, "ping.txt", "text/plain", log.clone()).await.status(), StatusCode::CREATED);
    let t: Value = hub.get_as(&format!("{API}/troubleTicket/{r}"), &sd).await.json().await.unwrap();
    let file = &t["attachment"][0];
    assert_eq!((file["name"].as_str(), file["mimeType"].as_str(), file["size"]["amount"].as_i64()), (Some("ping.txt"), Some("text/plain"), Some(log.len() as i64)), "{t}");
    let content = hub.http.get(file["url"].as_str().unwrap()).bearer_auth(&sd).send().await.unwrap();
    assert!(content.bytes().await.unwrap().as_ref() == log.as_slice());
    assert_eq!(siam_hub::adapters::tmf621::mapping::attachments(&t).len(), 1, "the hub's tickets read as its adapter reads a supplier's");
    // A client re-sending the array is fine; a new file inline is refused with where to send it.
    let resend = hub.http.patch(hub.url(&format!("{API}/troubleTicket/{r}"))).bearer_auth(&sd).json(&json!({"attachment": t["attachment"]})).send().await.unwrap();
    assert_eq!(resend.status(), StatusCode::OK);
    let inline =
        hub.http.patch(hub.url(&format!("{API}/troubleTicket/{r}"))).bearer_auth(&sd).json(&json!({"attachment": [{"name": "x.txt", "content": "eA=="}]})).send().await.unwrap();
    let err = tmf_error(inline, StatusCode::BAD_REQUEST, "24").await;
    assert!(err["message"].as_str().unwrap().contains("/attachments?file_name="), "{err}");

    let list = hub.get_as(&format!("{API}/troubleTicket?externalId=CUST-4711&fields=status,externalId"), &sd).await;
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.headers()["x-total-count"], "1");
    assert_eq!(list.headers()["x-result-count"], "1");
    let items: Vec<Value> = list.json().await.unwrap();
    assert_eq!(items[0]["id"], r.as_str());
    assert!(items[0].get("name").is_none(), "fields projects the answer");

    let secret_text = "Internal: the router is under a maintenance contract dispute";
    hub.post(&format!("/api/v1/incidents/{r}/notes"), &sd, &json!({"text": secret_text, "visibility": "internal"})).await;
    let patch = hub
        .http
        .patch(hub.url(&format!("{API}/troubleTicket/{r}")))
        .bearer_auth(&sd)
        .json(&json!({"status": "pending", "statusChangeReason": "Awaiting caller", "note": [{"text": "Is the site powered?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::OK);
    let t: Value = patch.json().await.unwrap();
    assert_eq!((t["status"].as_str(), t["statusChangeReason"].as_str()), (Some("pending"), Some("Awaiting caller")));
    let doc = hub.incident(&r).await;
    assert_eq!((doc["status"].as_str(), doc["hold_reason"].as_str()), (Some("on_hold"), Some("awaiting_caller")));
    let one: Value = hub.get_as(&format!("{API}/troubleTicket/{r}"), &sd).await.json().await.unwrap();
    let texts: Vec<&str> = one["note"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Reported by phone", "Is the site powered?"], "internal notes are never shown");
    let history: Vec<&str> = one["statusChange"].as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["acknowledged", "pending"]);

    let event = wait_for("the status change notification", || {
        got.lock().unwrap().iter().find(|(_, e)| e["eventType"] == "TroubleTicketStatusChangeEvent" && e["event"]["troubleTicket"]["status"] == "pending").cloned()
    })
    .await;
    assert_eq!(event.0, "/client/listener/troubleTicketStatusChangeEvent");
    assert!(event.1["timeOcurred"].is_string() && event.1["eventId"].is_string());
    assert_eq!(event.1["event"]["troubleTicket"]["id"], r.as_str());
    wait_for("the note notification", || got.lock().unwrap().iter().find(|(_, e)| e["fieldPath"] == "note").cloned()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = serde_json::to_string(&*got.lock().unwrap()).unwrap();
    assert!(!all.contains("maintenance contract dispute"), "an internal note reached a subscriber");
    assert!(!all.contains("TroubleTicketCreateEvent"), "the subscription did not ask for creates");

    // Errors are TMF630 bodies.
    tmf_error(hub.get_as(&format!("{API}/troubleTicket/INC-999999"), &sd).await, StatusCode::NOT_FOUND, "60").await;
    tmf_error(hub.http.get(hub.url(&format!("{API}/troubleTicket"))).send().await.unwrap(), StatusCode::UNAUTHORIZED, "41").await;
    tmf_error(hub.post(&format!("{API}/troubleTicket"), &hub.keys.manager, &body).await, StatusCode::FORBIDDEN, "50").await;
    let bad = hub.http.patch(hub.url(&format!("{API}/troubleTicket/{r}"))).bearer_auth(&sd).json(&json!({"status": "asleep"})).send().await.unwrap();
    tmf_error(bad, StatusCode::BAD_REQUEST, "24").await;
    let mut no_entity = body.clone();
    no_entity.as_object_mut().unwrap().remove("relatedEntity");
    no_entity["externalId"] = json!("CUST-4712");
    tmf_error(hub.post(&format!("{API}/troubleTicket"), &sd, &no_entity).await, StatusCode::BAD_REQUEST, "23").await;
    tmf_error(hub.get_as(&format!("{API}/troubleTicket?colour=red"), &sd).await, StatusCode::BAD_REQUEST, "28").await;

    // A supplier key sees only its own tickets.
    let mine: Vec<Value> = hub.get_as(&format!("{API}/troubleTicket"), &hub.keys.supplier).await.json().await.unwrap();
    assert_eq!(mine.len(), 1);

    let sub_id = sub["id"].as_str().unwrap();
    let del = hub.http.delete(hub.url(&format!("{API}/hub/{sub_id}"))).bearer_auth(&sd).send().await.unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    tmf_error(hub.get_as(&format!("{API}/hub/{sub_id}"), &sd).await, StatusCode::NOT_FOUND, "60").await;
    let api: Value = hub.http.get(hub.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(api["paths"][format!("{API}/troubleTicket")]["post"].is_object() && api["paths"][format!("{API}/hub")]["post"].is_object());
    hub.finish().await;
}

#[tokio::test]
async fn tmf_api_an_unreachable_subscriber_gets_a_dead_letter_of_its_own_replayed_to_it_alone() {
    let hub = TestHub::spawn().await;
    let sd = hub.keys.service_desk.clone();
    // A port nobody listens on (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = format!("http://127.0.0.1:{port}/down");
    let (up, got) = listener();
    for callback in [&down, &up] {
        let resp = hub.post(&format!("{API}/hub"), &sd, &json!({"callback": callback, "query": "eventType=TroubleTicketCreateEvent"})).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let doc = hub.raise(&network_incident("Notify me")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    wait_for("the reachable subscriber's create event", || got.lock().unwrap().iter().find(|(_, e)| e["event"]["troubleTicket"]["id"] == r.as_str()).cloned()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let dead = loop {
        assert!(tokio::time::Instant::now() < deadline, "no dead letter for the unreachable subscriber");
        let list: Value = hub.get_as("/api/v1/admin/dead-letters", &hub.keys.admin).await.json().await.unwrap();
        if let Some(d) = list["items"].as_array().and_then(|i| i.iter().find(|d| d["routing_key"] == "tmf621.notify").cloned()) {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead["incident_ref"], r.as_str());
    assert!(dead["reason"].as_str().unwrap().contains(&down), "{dead}");

    // The subscriber comes back; the replay reaches it, and only it.
    let (back_got, back_port) = {
        let got: Received = Arc::default();
        let g = got.clone();
        let server = HttpServer::new(move || {
            let g = g.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let g = g.clone();
                async move {
                    g.lock().unwrap().push((req.path().to_string(), serde_json::from_slice(&body).unwrap_or(Value::Null)));
                    HttpResponse::NoContent().finish()
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", port))
        .unwrap()
        .run();
        tokio::spawn(server);
        (got, port)
    };
    assert_eq!(back_port, port);
    let before = got.lock().unwrap().len();
    let replay = hub.post(&format!("/api/v1/admin/dead-letters/{}/replay", dead["id"]), &hub.keys.admin, &json!({})).await;
    assert_eq!(replay.status(), StatusCode::ACCEPTED);
    let (path, event) = wait_for("the replayed event", || back_got.lock().unwrap().first().cloned()).await;
    assert_eq!(path, "/down/listener/troubleTicketCreateEvent");
    assert_eq!(event["event"]["troubleTicket"]["id"], r.as_str());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), before, "the subscriber that had the event did not get it again");
    hub.finish().await;
}

#[tokio::test]
async fn tmf_api_subscriptions_are_for_working_roles_with_checked_callbacks_and_a_limit_per_key() {
    let hub = TestHub::spawn().await;
    let (callback, _) = listener();
    let subscribe = |key: String, callback: String| {
        let hub = &hub;
        async move { hub.post(&format!("{API}/hub"), &key, &json!({"callback": callback, "query": "eventType=TroubleTicketCreateEvent"})).await }
    };
    tmf_error(subscribe(hub.keys.manager.clone(), callback.clone()).await, StatusCode::FORBIDDEN, "50").await;
    for (bad, why) in [
        ("http://hub:secret@127.0.0.1:9/x".to_string(), "user-info"),
        ("http://169.254.169.254/latest/meta-data".to_string(), "169.254.169.254 is a cloud metadata address"),
        ("http://[fd00:ec2::254]/latest".to_string(), "cloud metadata"),
        ("http://10.1.2.3:8080/events".to_string(), "10.1.2.3 is a private address"),
        ("http://[::ffff:192.168.0.10]/events".to_string(), "192.168.0.10 is a private address"),
        ("http://0.0.0.0:8080/events".to_string(), "unspecified"),
        ("file:///etc/passwd".to_string(), "http(s) URL"),
    ] {
        let err = tmf_error(subscribe(hub.keys.service_desk.clone(), bad.clone()).await, StatusCode::BAD_REQUEST, "24").await;
        assert!(err["message"].as_str().unwrap().contains(why), "{bad}: {err}");
    }
    // Ten per key; the eleventh is refused with the limit, other keys are unaffected.
    let mut ids = vec![];
    for _ in 0..10 {
        let resp = subscribe(hub.keys.service_desk.clone(), callback.clone()).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        ids.push(resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    let err = tmf_error(subscribe(hub.keys.service_desk.clone(), callback.clone()).await, StatusCode::CONFLICT, "24").await;
    assert!(err["message"].as_str().unwrap().contains("max_subscriptions_per_key = 10"), "{err}");
    assert_eq!(subscribe(hub.keys.supplier.clone(), callback.clone()).await.status(), StatusCode::CREATED, "a supplier key subscribes to its own tickets");
    assert_eq!(subscribe(hub.keys.admin.clone(), callback.clone()).await.status(), StatusCode::CREATED);
    let del = hub.http.delete(hub.url(&format!("{API}/hub/{}", ids[0]))).bearer_auth(&hub.keys.service_desk).send().await.unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    assert_eq!(subscribe(hub.keys.service_desk.clone(), callback.clone()).await.status(), StatusCode::CREATED, "a freed place can be taken");
    hub.finish().await;
}

/// A listener that accepts connections and never answers; counts the connections.
async fn hanging_listener() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((sock, _)) = l.accept().await {
            a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(sock);
        }
    });
    (format!("http://127.0.0.1:{port}/stuck"), accepted)
}

async fn tmf_dead_letters(hub: &TestHub) -> Vec<Value> {
    let list: Value = hub.get_as("/api/v1/admin/dead-letters", &hub.keys.admin).await.json().await.unwrap();
    list["items"].as_array().unwrap().iter().filter(|d| d["routing_key"] == "tmf621.notify").cloned().collect()
}

#[tokio::test]
async fn tmf_api_a_subscriber_that_never_answers_delays_no_one_and_its_events_are_dead_lettered() {
    let hub = TestHub::spawn_with(Options { notify_retry_budget_secs: 10, notify_timeout_secs: 1, ..Default::default() }).await;
    let sd = hub.keys.service_desk.clone();
    let (stuck, accepted) = hanging_listener().await;
    let (healthy, got) = listener();
    // The one that never answers subscribes first.
    for callback in [&stuck, &healthy] {
        let resp = hub.post(&format!("{API}/hub"), &sd, &json!({"callback": callback, "query": "eventType=TroubleTicketCreateEvent"})).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let mut refs = vec![];
    for i in 0..5 {
        refs.push(hub.raise(&network_incident(&format!("Notify me {i}"))).await["ref"].as_str().unwrap().to_string());
    }
    let created = |got: &Received| -> usize { got.lock().unwrap().iter().filter(|(_, e)| refs.iter().any(|r| e["event"]["troubleTicket"]["id"] == r.as_str())).count() };
    wait_for("the healthy subscriber's five create events", || (created(&got) == refs.len()).then_some(())).await;
    wait_for("the stuck subscriber to be tried", || (accepted.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(())).await;
    assert!(tmf_dead_letters(&hub).await.is_empty(), "the stuck subscriber was given up on before the healthy one had its events");

    // Within its retry budget the stuck subscriber's events are all dead-lettered, its own.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let dead = loop {
        let dead = tmf_dead_letters(&hub).await;
        if dead.len() >= refs.len() {
            break dead;
        }
        assert!(tokio::time::Instant::now() < deadline, "the stuck subscriber's events were not dead-lettered: {dead:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut dead_refs: Vec<String> = dead.iter().map(|d| d["incident_ref"].as_str().unwrap().to_string()).collect();
    dead_refs.sort();
    let mut want = refs.clone();
    want.sort();
    assert_eq!(dead_refs, want, "one dead letter per event");
    for d in &dead {
        let reason = d["reason"].as_str().unwrap();
        assert!(reason.contains(&stuck) && reason.contains("did not answer in time"), "{reason}");
    }
    assert_eq!(created(&got), refs.len(), "the healthy subscriber got each event once");
    hub.finish().await;
}

#[tokio::test]
async fn tmf_api_a_callback_the_egress_policy_no_longer_allows_gets_nothing_at_delivery() {
    let mut hub = TestHub::spawn().await;
    let (callback, got) = listener();
    let resp = hub.post(&format!("{API}/hub"), &hub.keys.service_desk, &json!({"callback": callback, "query": "eventType=TroubleTicketCreateEvent"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "loopback is allowed when it subscribes");
    // The hub now runs without loopback allowed: the stored callback is checked as it is posted.
    hub.settings.egress.allow_networks.clear();
    hub.restart().await;
    let r = hub.raise(&network_incident("Not for loopback")).await["ref"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let dead = loop {
        if let Some(d) = tmf_dead_letters(&hub).await.into_iter().find(|d| d["incident_ref"] == r.as_str()) {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead letter for the refused callback");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reason = dead["reason"].as_str().unwrap();
    assert!(reason.contains(&callback) && reason.contains("127.0.0.1 is a loopback address"), "{reason}");
    assert!(got.lock().unwrap().is_empty(), "the callback was posted to");
    hub.finish().await;
}

#[tokio::test]
async fn tmf_a_ticket_routed_back_gets_one_fresh_trouble_ticket_even_when_the_create_answer_is_lost() {
    let t = spawn_tmf(TmfVersion::V4, TmfFlavour::Standard, "basic").await;
    let (r, first) = t.open("Back and forth").await;
    let lose_create = || t.sim.push_fault_on("POST", Fault::LoseResponseAfterCommit);
    let tickets = || t.sim.tickets_by_external_id(&r).iter().map(|x| x["id"].as_str().unwrap().to_string()).collect();
    t.hub.routed_back_gets_one_fresh_ticket(&r, TMF, SUPPLIER, &first, lose_create, tickets).await;
    t.finish().await;
}

/// The TMF621 server's slow answers outlive the hub's timeout (2 s) and commit after it: one
/// trouble ticket, one note.
#[tokio::test]
async fn tmf_a_create_and_a_note_answered_after_the_timeout_are_written_once() {
    let t = spawn_tmf(TmfVersion::V4, TmfFlavour::Standard, "basic").await;
    let slow = || Fault::Timeout { delay: Duration::from_millis(3000) };
    t.sim.push_fault_on("POST", slow());
    let (r, id) = t.open("Slow create").await;
    quiet(|| t.sim.request_log().len()).await;
    let tickets = t.sim.tickets_by_external_id(&r);
    assert_eq!(tickets.len(), 1, "exactly one trouble ticket: {:#?}", t.sim.request_log());
    assert_eq!(tickets[0]["id"], id.as_str());

    t.sim.push_fault_on("PATCH", slow());
    let resp = t.hub.post(&format!("/api/v1/incidents/{r}/notes"), &t.hub.keys.service_desk, &json!({"text": "written once, slowly", "visibility": "public"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let count = || t.sim.stored_notes(&id).iter().filter(|n| n.text == "written once, slowly").count();
    wait_for("the note at the supplier", || (count() > 0).then_some(())).await;
    quiet(|| t.sim.request_log().len()).await;
    assert_eq!(count(), 1, "{:#?}", t.sim.request_log());
    assert_eq!(t.hub.settle(&r).await["notes"].as_array().unwrap().len(), 1);
    t.finish().await;
}
