//! A BMC Helix / Remedy supplier beside the ServiceNow one: the hub on the real PostgreSQL and
//! RabbitMQ with the Remedy simulator. Creates through the create interface (once, even when
//! the answer is lost), JWT expiry mid-flow, supplier work arriving by sweep and by
//! notification, hub changes and notes reaching Remedy without echoes or leaks, and faults.

use crate::helpers::*;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use siam_hub::config::{RoutingRule, SecretRef, Settings};
use siam_hub::sim::remedy::{Fault, FaultTarget, RemedySim, SimConfig, WebhookBehaviour, WebhookTarget, CREATE_FORM, INTERFACE, WORKLOG};
use std::time::Duration;

const REMEDY: &str = "bmc-apps";
const REMEDY_PASSWORD: &str = "remedy-password";

struct RemedyHub {
    hub: TestHub,
    sim: RemedySim,
    secret: String,
}

#[derive(Default)]
struct Setup {
    /// Notifications from the simulator to the hub's webhook (basic auth).
    notify: bool,
    max_attempts: Option<u32>,
    extra_statuses: Vec<String>,
    /// `customer_login_id` of the instance (the integration user's login when unset).
    customer: Option<String>,
}

async fn spawn(setup: Setup) -> RemedyHub {
    let sim = RemedySim::new(SimConfig { user: SIM_USER.into(), password: REMEDY_PASSWORD.into(), extra_statuses: setup.extra_statuses.clone(), ..SimConfig::default() });
    sim.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).expect("the Remedy simulator starts");
    let url = sim.base_url().unwrap();
    let toml = format!(
        r#"
        [[suppliers]]
        id = "{REMEDY}"
        name = "Applications supplier (Remedy)"
        system = "remedy"
        base_url = "{url}"
        username = "{SIM_USER}"
        webhook_auth = "basic"
        poll_interval_secs = 0
        timeout_secs = 2
        max_attempts = {attempts}
        rate_per_sec = 50

        [suppliers.remedy]
        support_company = "Calbro Services"
        support_organization = "IT Support"
        support_group = "Application Support"
        {customer}
        "#,
        attempts = setup.max_attempts.unwrap_or(4),
        customer = setup.customer.as_ref().map(|c| format!("customer_login_id = \"{c}\"")).unwrap_or_default(),
    );
    let mut supplier = Settings::from_toml(&toml).expect("valid Remedy settings").suppliers.remove(0);
    let secret = format!("remedy-{}", uuid::Uuid::new_v4().simple());
    supplier.password = Some(SecretRef::Value(SecretString::from(REMEDY_PASSWORD.to_string())));
    supplier.webhook_secret = Some(SecretRef::Value(SecretString::from(secret.clone())));
    let rule = RoutingRule { service: Some("email".into()), ci: None, category: None, supplier: REMEDY.into() };
    let hub = TestHub::spawn_with_suppliers(Options::default(), vec![supplier], vec![rule]).await;
    if setup.notify {
        sim.set_webhook(Some(WebhookTarget { url: hub.url(&format!("/webhooks/{REMEDY}")), username: REMEDY.into(), password: secret.clone() }));
    }
    RemedyHub { hub, sim, secret }
}

fn email_incident(title: &str) -> Value {
    json!({
        "title": title,
        "description": "Outbound mail queues on the relay.\nSince 07:00.",
        "service": "email",
        "ci": "mail-relay-01",
        "impact": 1,
        "urgency": 2,
        "caller": "j.smith",
        "category": "email"
    })
}

impl RemedyHub {
    /// Raises an email incident and waits for its Remedy leg to open: (ref, Entry ID, Incident Number).
    async fn open(&self, title: &str) -> (String, String, String) {
        let doc = self.hub.raise(&email_incident(title)).await;
        let r = doc["ref"].as_str().unwrap().to_string();
        let doc = self.hub.wait_incident(&r, "the Remedy leg to open", |d| d["legs"][0]["state"] == "open").await;
        let leg = &doc["legs"][0];
        (r, leg["native_id"].as_str().unwrap().to_string(), leg["native_number"].as_str().unwrap().to_string())
    }

    async fn reconcile(&self) -> Value {
        let resp = self.hub.post(&format!("/api/v1/admin/suppliers/{REMEDY}/reconcile"), &self.hub.keys.admin, &json!({})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    fn ticket(&self, reference: &str) -> Value {
        let all = self.sim.incidents_by_vendor_ticket(reference);
        assert_eq!(all.len(), 1, "exactly one Remedy incident for {reference}: {all:#?}");
        all[0].clone()
    }

    async fn wait_ticket(&self, reference: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, || self.sim.incidents_by_vendor_ticket(reference).into_iter().next().filter(|t| cond(t))).await
    }

    fn requests(&self, method: &str, needle: &str) -> Vec<u16> {
        self.sim.request_log().iter().filter(|l| l.method == method && l.path.contains(needle)).map(|l| l.status).collect()
    }

    async fn dead_letters(&self) -> Vec<Value> {
        let v: Value = self.hub.get_as("/api/v1/admin/dead-letters", &self.hub.keys.admin).await.json().await.unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// The broker dead-letters after the leg is marked failed: wait for the list to show it.
    async fn wait_dead_letters(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let items = self.dead_letters().await;
            if items.len() >= n {
                return items;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {n} dead letters: {items:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finish(self) {
        self.hub.finish().await;
    }
}

fn statuses(history: &[Value]) -> Vec<String> {
    history.iter().filter(|e| e["type"] == "incident.status_changed").map(|e| e["data"]["to"].as_str().unwrap_or("").to_string()).collect()
}

const CREATE_PATH: &str = "HPD:IncidentInterface_Create";

#[tokio::test]
async fn remedy_a_routed_incident_becomes_one_remedy_incident() {
    let rh = spawn(Setup::default()).await;
    let doc = rh.hub.raise(&email_incident("Mail relay queueing")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    assert_eq!(doc["legs"][0]["system"], "remedy");
    let ticket = rh.wait_ticket(&r, "the Remedy incident", |_| true).await;
    // Read names on the way back, whatever the create form called them.
    assert_eq!(ticket["Description"], "Mail relay queueing");
    assert_eq!(ticket["Detailed Decription"], "Outbound mail queues on the relay.\nSince 07:00.");
    assert_eq!(ticket["Impact"], "1-Extensive/Widespread");
    assert_eq!(ticket["Urgency"], "3-Medium");
    assert_eq!((ticket["Priority"].as_str(), ticket["Priority Weight"].as_i64()), (Some("High"), Some(19)));
    assert_eq!(ticket["Status"], "Assigned");
    assert_eq!(ticket["Assigned Group"], "Application Support");
    assert_eq!(ticket["Customer Login ID"], SIM_USER);
    assert_eq!(ticket["Service Type"], "User Service Restoration");
    assert_eq!(ticket["Reported Source"], "External Escalation");
    assert_eq!(ticket["Categorization Tier 1"], "email");
    assert_eq!(ticket["HPD_CI"], "mail-relay-01");
    assert_eq!(ticket["Vendor Name"], "SIAM Hub");

    let doc = rh.hub.wait_incident(&r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
    let leg = &doc["legs"][0];
    assert_eq!(leg["native_id"], ticket["Entry ID"]);
    assert_eq!(leg["native_number"], ticket["Incident Number"]);
    assert_ne!(leg["native_id"], leg["native_number"], "Entry ID and Incident Number differ");
    assert_eq!(leg["native_status"], "Assigned");
    assert!(leg["url"].as_str().unwrap().contains("/api/arsys/v1/entry/HPD:IncidentInterface/INC"), "{leg}");
    assert_eq!(doc["status"], "assigned");
    let settled = rh.hub.settle(&r).await;
    assert_eq!(settled["version"], doc["version"]);
    assert_eq!(rh.requests("POST", CREATE_PATH), [201]);
    assert_eq!(rh.requests("POST", "/api/jwt/login"), [200], "one login, the token is cached");
    assert!(rh.requests("PUT", INTERFACE).is_empty(), "nothing to push after the create: {:?}", rh.sim.request_log());
    rh.finish().await;
}

#[tokio::test]
async fn remedy_creates_whose_answer_was_lost_or_late_are_adopted_not_duplicated() {
    let rh = spawn(Setup::default()).await;
    let create = FaultTarget { method: Some("POST".into()), form: Some(CREATE_FORM.into()) };
    rh.sim.push_fault_for(create.clone(), Fault::LoseResponseAfterCommit);
    let (r, entry, _) = rh.open("Lost answer").await;
    assert_eq!(rh.ticket(&r)["Entry ID"], entry.as_str());
    assert_eq!(rh.requests("POST", CREATE_PATH), [504], "the retry looked the reference up instead of creating again");

    // An answer slower than the hub's timeout (2 s): the create commits, the hub gives up on the
    // answer, and the retry adopts what Remedy made.
    rh.sim.push_fault_for(create, Fault::Timeout { delay: Duration::from_millis(2500) });
    let (r2, entry2, _) = rh.open("Late answer").await;
    assert_eq!(rh.ticket(&r2)["Entry ID"], entry2.as_str());
    assert_eq!(rh.sim.incidents().len(), 2, "one Remedy incident per hub incident");
    assert!(rh.dead_letters().await.is_empty());
    rh.finish().await;
}

#[tokio::test]
async fn remedy_an_expired_token_is_renewed_transparently() {
    let rh = spawn(Setup::default()).await;
    let (r, _, _) = rh.open("Token expiry").await;
    let doc = rh.hub.incident(&r).await;

    // Every token dies (an hour passed, or the server restarted) between two hub changes.
    rh.sim.expire_tokens();
    let resp = rh.hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({"status": "in_progress"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    rh.wait_ticket(&r, "In Progress at Remedy", |t| t["Status"] == "In Progress").await;

    // And once more mid-call: the token expires on the read that follows the update.
    rh.sim.push_fault_for(FaultTarget { method: Some("GET".into()), form: Some(INTERFACE.into()) }, Fault::TokenExpired);
    let doc = rh.hub.settle(&r).await;
    let resp = rh.hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({"urgency": 1})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    rh.wait_ticket(&r, "urgency 1 at Remedy", |t| t["Urgency"] == "1-Critical").await;
    let doc = rh.hub.settle(&r).await;

    let logins = rh.requests("POST", "/api/jwt/login");
    assert_eq!(logins, [200, 200, 200], "one login at start and one per expiry");
    let refused: Vec<u16> = rh.sim.request_log().iter().filter(|l| l.status == 401).map(|l| l.status).collect();
    assert_eq!(refused.len(), 2, "each expiry cost exactly one refused call");
    assert!(doc["legs"][0].get("last_error").is_none(), "{}", doc["legs"][0]);
    assert_eq!(doc["legs"][0]["native_status"], "In Progress");
    assert!(rh.dead_letters().await.is_empty());
    rh.finish().await;
}

#[tokio::test]
async fn remedy_agent_work_reaches_the_hub_through_the_sweep() {
    let rh = spawn(Setup::default()).await;
    let (r, _, number) = rh.open("Sweep").await;

    rh.sim.agent_update(&number, json!({"Status": "In Progress"})).unwrap();
    rh.sim.agent_work_log(&number, "Public", "We are looking at the relay now.").unwrap();
    let report = rh.reconcile().await;
    assert_eq!((report["applied"].as_u64(), report["notes_added"].as_u64()), (Some(1), Some(1)), "{report}");
    let doc = rh.hub.incident(&r).await;
    assert_eq!(doc["status"], "in_progress");
    assert_eq!(doc["legs"][0]["native_status"], "In Progress");
    assert_eq!(doc["notes"][0]["visibility"], "public");
    assert_eq!(doc["notes"][0]["author"], "Allen");
    assert_eq!(doc["notes"][0]["origin"], REMEDY);

    rh.sim.agent_update(&number, json!({"Status": "Pending", "Status_Reason": "Client Hold"})).unwrap();
    rh.reconcile().await;
    let doc = rh.hub.incident(&r).await;
    assert_eq!((doc["status"].as_str(), doc["hold_reason"].as_str()), (Some("on_hold"), Some("awaiting_caller")));

    // A work log alone does not touch its incident: the sweep must still find it.
    let lmd = rh.ticket(&r)["Last Modified Date"].clone();
    rh.sim.agent_work_log(&number, "Internal", "Relay certificate expired overnight.").unwrap();
    assert_eq!(rh.ticket(&r)["Last Modified Date"], lmd);
    let report = rh.reconcile().await;
    assert_eq!(report["notes_added"], 1, "{report}");
    let doc = rh.hub.incident(&r).await;
    let internal = doc["notes"].as_array().unwrap().iter().find(|n| n["text"] == "Relay certificate expired overnight.").expect("the internal work log");
    assert_eq!(internal["visibility"], "internal");

    rh.sim.agent_update(&number, json!({"Status": "Resolved", "Status_Reason": "Temporary Corrective Action", "Resolution": "Installed a temporary certificate."})).unwrap();
    rh.reconcile().await;
    let doc = rh.hub.incident(&r).await;
    assert_eq!(doc["status"], "resolved");
    assert_eq!(doc["resolution"], json!({"code": "workaround", "notes": "Installed a temporary certificate."}));
    assert_eq!(doc["hold_reason"], Value::Null);
    assert!(doc["resolved_at"].is_string());

    // Sweeping the same window again changes nothing.
    let again = rh.reconcile().await;
    assert_eq!((again["applied"].as_u64(), again["notes_added"].as_u64()), (Some(0), Some(0)), "{again}");
    let after = rh.hub.settle(&r).await;
    assert_eq!(after["version"], doc["version"]);
    assert_eq!(statuses(&rh.hub.history(&r).await), ["assigned", "in_progress", "on_hold", "resolved"]);
    siam_hub::validation::validate(siam_hub::validation::Doc::Incident, &after).expect("a valid canonical document");
    // The hub never wrote back what it had just read.
    assert!(rh.requests("PUT", INTERFACE).is_empty(), "{:?}", rh.sim.request_log());
    assert!(rh.sim.worklogs(&number).iter().all(|w| w["Work Log Submitter"] == "Allen"));
    rh.finish().await;
}

#[tokio::test]
async fn remedy_hub_changes_and_notes_reach_remedy_without_echoes_or_leaks() {
    let rh = spawn(Setup { notify: true, ..Setup::default() }).await;
    let (r, _, number) = rh.open("Hub side").await;
    let doc = rh.hub.incident(&r).await;

    let resp = rh.hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({"status": "on_hold", "hold_reason": "awaiting_supplier", "urgency": 1})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let internal = rh
        .hub
        .post(
            &format!("/api/v1/incidents/{r}/notes"),
            &rh.hub.keys.service_desk,
            &json!({"text": "Vendor case 4471 opened; do not share with the caller.", "visibility": "internal"}),
        )
        .await;
    assert_eq!(internal.status(), StatusCode::CREATED);
    let public = rh
        .hub
        .post(
            &format!("/api/v1/incidents/{r}/notes"),
            &rh.hub.keys.service_desk,
            &json!({"text": "We are waiting for the mail vendor.\nNext update at 14:00.", "visibility": "public"}),
        )
        .await;
    assert_eq!(public.status(), StatusCode::CREATED);

    let ticket = rh.wait_ticket(&r, "Pending at Remedy", |t| t["Status"] == "Pending").await;
    assert_eq!(ticket["Status_Reason"], "Third Party Vendor Action Reqd");
    assert_eq!(ticket["Urgency"], "1-Critical");
    assert_eq!(ticket["Impact"], "1-Extensive/Widespread");
    wait_for("both work logs", || (rh.sim.worklogs(&number).len() == 2).then_some(())).await;
    let logs = rh.sim.worklogs(&number);
    let log = |text: &str| logs.iter().find(|l| l["Detailed Description"] == text).unwrap_or_else(|| panic!("work log {text:?} missing: {logs:#?}")).clone();
    let vendor = log("Vendor case 4471 opened; do not share with the caller.");
    assert_eq!(vendor["View Access"], "Internal", "an internal note stays internal");
    assert_eq!(log("We are waiting for the mail vendor.\nNext update at 14:00.")["View Access"], "Public");
    assert_eq!(log("We are waiting for the mail vendor.\nNext update at 14:00.")["Description"], "We are waiting for the mail vendor.");

    // Every change above came back as a notification (and will be swept): none is news.
    let settled = rh.hub.settle(&r).await;
    assert_eq!(settled["status"], "on_hold");
    assert_eq!(settled["hold_reason"], "awaiting_supplier");
    assert_eq!(settled["notes"].as_array().unwrap().len(), 2, "{}", settled["notes"]);
    let report = rh.reconcile().await;
    assert_eq!((report["applied"].as_u64(), report["notes_added"].as_u64()), (Some(0), Some(0)), "{report}");
    assert_eq!(rh.hub.incident(&r).await["version"], settled["version"]);
    let from_supplier: Vec<Value> = rh
        .hub
        .history(&r)
        .await
        .into_iter()
        .filter(|e| e["source"] == format!("supplier:{REMEDY}") && matches!(e["type"].as_str(), Some("incident.status_changed" | "incident.updated" | "incident.note_added")))
        .filter(|e| e["data"]["to"] != "assigned")
        .collect();
    assert!(from_supplier.is_empty(), "echoes were applied: {from_supplier:#?}");

    // Leaving hold clears the reason at Remedy.
    let resp = rh.hub.patch(&r, settled["version"].as_i64().unwrap(), &json!({"status": "in_progress"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ticket = rh.wait_ticket(&r, "In Progress at Remedy", |t| t["Status"] == "In Progress").await;
    assert_eq!(ticket["Status_Reason"], Value::Null);
    assert_eq!(rh.sim.worklogs(&number).len(), 2, "no note was sent twice");
    rh.finish().await;
}

#[tokio::test]
async fn remedy_notifications_apply_supplier_changes_once() {
    let rh = spawn(Setup { notify: true, ..Setup::default() }).await;
    let (r, _, number) = rh.open("Notified").await;
    rh.sim.set_webhook_behaviour(WebhookBehaviour { duplicate: true, ..Default::default() });
    rh.sim.agent_update(&number, json!({"Status": "In Progress"})).unwrap();
    rh.sim.agent_update(&number, json!({"Status": "Pending", "Status_Reason": "Supplier Delivery"})).unwrap();
    rh.sim.agent_work_log(&number, "Public", "A replacement relay is being shipped.").unwrap();
    let doc = rh.hub.wait_incident(&r, "on hold with the note", |d| d["status"] == "on_hold" && !d["notes"].as_array().unwrap().is_empty()).await;
    assert_eq!(doc["hold_reason"], "awaiting_supplier");
    let doc = rh.hub.settle(&r).await;
    assert_eq!(doc["notes"].as_array().unwrap().len(), 1, "each duplicate delivery applied once: {}", doc["notes"]);
    assert_eq!(statuses(&rh.hub.history(&r).await), ["assigned", "in_progress", "on_hold"]);

    // A notification with the wrong credentials is refused and changes nothing.
    let body = json!({"event": "modify", "entry": {"values": {"Entry ID": "INC1", "Status": "Closed"}}}).to_string();
    let resp = rh.hub.http.post(rh.hub.url(&format!("/webhooks/{REMEDY}"))).basic_auth(REMEDY, Some("guess")).body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = rh.hub.http.post(rh.hub.url(&format!("/webhooks/{REMEDY}"))).basic_auth(REMEDY, Some(&rh.secret)).body(body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["unknown_ticket"], true);
    assert_eq!(rh.hub.incident(&r).await["version"], doc["version"]);
    rh.finish().await;
}

#[tokio::test]
async fn remedy_native_values_that_mean_the_same_are_not_rewritten() {
    let rh = spawn(Setup::default()).await;
    let (r, _, number) = rh.open("Equivalents").await;
    // 2-Significant/Large and 2-High read as impact 1 and urgency 1; Client Hold as awaiting_caller.
    rh.sim.agent_update(&number, json!({"Impact": "2-Significant/Large", "Urgency": "2-High", "Status": "Pending", "Status_Reason": "Client Hold"})).unwrap();
    rh.reconcile().await;
    let doc = rh.hub.incident(&r).await;
    assert_eq!((doc["impact"].as_u64(), doc["urgency"].as_u64()), (Some(1), Some(1)));
    assert_eq!(doc["hold_reason"], "awaiting_caller");

    let resp = rh.hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({"title": "Mail relay queueing (floor 3 only)"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ticket = rh.wait_ticket(&r, "the new summary", |t| t["Description"] == "Mail relay queueing (floor 3 only)").await;
    assert_eq!(ticket["Impact"], "2-Significant/Large");
    assert_eq!(ticket["Urgency"], "2-High");
    assert_eq!(ticket["Status_Reason"], "Client Hold");
    let doc = rh.hub.settle(&r).await;
    assert_eq!(doc["legs"][0].get("unmapped"), None);
    rh.finish().await;
}

#[tokio::test]
async fn remedy_an_unknown_status_is_kept_on_the_leg_and_reported() {
    let rh = spawn(Setup { extra_statuses: vec!["Waiting Approval".into()], ..Setup::default() }).await;
    let (r, _, number) = rh.open("Custom status").await;
    rh.sim.agent_update(&number, json!({"Status": "Waiting Approval", "Impact": "3-Moderate/Limited"})).unwrap();
    let report = rh.reconcile().await;
    assert_eq!(report["applied"], 1, "the impact change still applies: {report}");
    let doc = rh.hub.incident(&r).await;
    assert_eq!(doc["status"], "assigned", "an unknown status is never guessed");
    assert_eq!(doc["impact"], 2);
    assert_eq!(doc["legs"][0]["native_status"], "Waiting Approval");
    assert_eq!(doc["legs"][0]["unmapped"], json!({"Status": "Waiting Approval"}));
    let events: Vec<Value> = rh.hub.history(&r).await.into_iter().filter(|e| e["type"] == "mapping.unmapped_value").collect();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0]["data"]["system"].as_str(), events[0]["data"]["field"].as_str(), events[0]["data"]["value"].as_str()),
        (Some("remedy"), Some("Status"), Some("Waiting Approval"))
    );
    rh.finish().await;
}

#[tokio::test]
async fn remedy_server_errors_throttling_and_timeouts_are_ridden_out() {
    let rh = spawn(Setup::default()).await;
    rh.sim.push_fault(Fault::ServerError);
    rh.sim.push_fault(Fault::RateLimited { retry_after_secs: 1 });
    let started = std::time::Instant::now();
    let (r, _, _) = rh.open("Storm").await;
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was not honoured");
    let statuses: Vec<u16> = rh.sim.request_log().iter().filter(|l| l.path.starts_with("/api/arsys")).map(|l| l.status).collect();
    assert!(statuses.starts_with(&[500, 429]), "{statuses:?}");
    rh.ticket(&r);

    // A PUT whose answer comes too late is simply repeated (it is idempotent).
    let doc = rh.hub.settle(&r).await;
    rh.sim.push_fault_for(FaultTarget { method: Some("PUT".into()), form: Some(INTERFACE.into()) }, Fault::Timeout { delay: Duration::from_millis(2500) });
    let resp = rh.hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({"status": "in_progress"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    rh.wait_ticket(&r, "In Progress at Remedy", |t| t["Status"] == "In Progress").await;
    let doc = rh.hub.settle(&r).await;
    assert!(doc["legs"][0].get("last_error").is_none(), "{}", doc["legs"][0]);
    assert!(rh.dead_letters().await.is_empty());
    rh.finish().await;
}

#[tokio::test]
async fn remedy_a_refused_create_is_not_retried_and_is_explained() {
    // The configured customer does not exist in the supplier's People data: ITSM refuses.
    let rh = spawn(Setup { customer: Some("nobody.known".into()), ..Setup::default() }).await;
    let doc = rh.hub.raise(&email_incident("Refused")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    let doc = rh.hub.wait_incident(&r, "the leg to fail", |d| d["legs"][0]["state"] == "failed").await;
    let error = doc["legs"][0]["last_error"].as_str().unwrap();
    assert!(error.contains("nobody.known") && error.contains("400"), "{error}");
    assert_eq!(rh.requests("POST", CREATE_PATH), [400], "a refusal is not retried");
    let dead = rh.wait_dead_letters(1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["supplier_id"], REMEDY);
    assert!(rh.sim.incidents().is_empty());
    rh.finish().await;
}

#[tokio::test]
async fn remedy_exhausted_retries_are_dead_lettered_and_replayable() {
    let rh = spawn(Setup { max_attempts: Some(3), ..Setup::default() }).await;
    // The AR server behind the REST tier is unreachable for every attempt the hub allows itself.
    let create = FaultTarget { method: Some("POST".into()), form: Some(CREATE_FORM.into()) };
    for _ in 0..3 {
        rh.sim.push_fault_for(create.clone(), Fault::ServerError);
    }
    let doc = rh.hub.raise(&email_incident("Supplier down")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    let doc = rh.hub.wait_incident(&r, "the leg to fail", |d| d["legs"][0]["state"] == "failed").await;
    assert!(doc["legs"][0]["last_error"].as_str().unwrap().contains("ERROR 90"), "{}", doc["legs"][0]);
    let dead = rh.wait_dead_letters(1).await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["reason"].as_str().unwrap().contains("retries exhausted"), "{}", dead[0]);
    assert!(rh.sim.incidents().is_empty());

    // Replayed once Remedy is back: one incident.
    let id = dead[0]["id"].as_i64().unwrap();
    let resp = rh.hub.post(&format!("/api/v1/admin/dead-letters/{id}/replay"), &rh.hub.keys.admin, &json!({})).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    rh.hub.wait_incident(&r, "the leg to open after replay", |d| d["legs"][0]["state"] == "open").await;
    rh.ticket(&r);
    rh.finish().await;
}

#[tokio::test]
async fn remedy_files_travel_both_ways_in_work_logs_once_each_and_are_not_read_as_notes() {
    let rh = spawn(Setup { notify: true, ..Setup::default() }).await;
    let (r, _, number) = rh.open("Bounce logs").await;

    // The hub's file reaches Remedy in a work log, once, although the first answer is lost.
    rh.sim.push_fault_for(FaultTarget { method: Some("POST".into()), form: Some(WORKLOG.into()) }, Fault::LoseResponseAfterCommit);
    let data: Vec<u8> = (0..250_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let resp = rh.hub.attach(&r, "relay-queue.log", "text/plain", data.clone()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let doc = rh.hub.wait_incident(&r, "the file sent to Remedy", |d| d["attachments"][0]["deliveries"][0]["state"] == "sent").await;
    assert_eq!(doc["attachments"][0]["deliveries"][0]["supplier"], REMEDY);
    let logs = rh.sim.worklogs(&number);
    assert_eq!(logs.len(), 1, "one work log holds the file: {logs:#?}");
    let log = &logs[0];
    assert_eq!(log["z2AF Work Log01"]["name"], "relay-queue.log");
    assert_eq!(log["z2AF Work Log01"]["sizeBytes"], data.len());
    assert_eq!(log["View Access"], "Internal", "the hub cannot know who may see a file at the supplier");
    assert!(rh.sim.file(log["Work Log ID"].as_str().unwrap(), "z2AF Work Log01") == Some(data.clone()), "Remedy got different bytes");
    assert_eq!(rh.requests("POST", WORKLOG), [504], "the retry found the file instead of attaching it again");

    // The carrier work log comes back with the next notification and sweep: not a note, not a
    // second file.
    rh.sim.agent_update(&number, json!({"Status": "In Progress"})).unwrap();
    rh.hub.wait_incident(&r, "Remedy working", |d| d["status"] == "in_progress").await;
    rh.reconcile().await;
    let doc = rh.hub.settle(&r).await;
    assert!(doc["notes"].as_array().unwrap().is_empty(), "{:#}", doc["notes"]);
    assert_eq!(doc["attachments"].as_array().unwrap().len(), 1);

    // An agent's files reach the record: one with a note, one alone, the second after the
    // token expired.
    let sample = b"Received: from relay-01\r\nSubject: Undelivered Mail Returned to Sender".to_vec();
    rh.sim.agent_attach(&number, "Public", "A bounce sample from the relay", "bounce.eml", sample.clone()).unwrap();
    let doc = rh.hub.wait_incident(&r, "Remedy's file", |d| d["attachments"].as_array().unwrap().len() == 2).await;
    let theirs = doc["attachments"].as_array().unwrap().iter().find(|a| a["file_name"] == "bounce.eml").unwrap().clone();
    assert_eq!(theirs["origin"], REMEDY);
    assert_eq!(theirs["content_type"], "message/rfc822");
    assert_eq!(theirs["deliveries"][0]["state"], "received");
    let back = rh.hub.get_as(&format!("/api/v1/incidents/{r}/attachments/{}", theirs["id"]), &rh.hub.keys.service_desk).await;
    assert!(back.bytes().await.unwrap().as_ref() == sample.as_slice());
    let doc = rh.hub.wait_incident(&r, "the work log's note", |d| !d["notes"].as_array().unwrap().is_empty()).await;
    assert_eq!(doc["notes"][0]["text"], "A bounce sample from the relay");
    assert_eq!(doc["notes"][0]["visibility"], "public");

    // The second comes with its notification lost and the token expired: the sweep finds it.
    rh.sim.expire_tokens();
    rh.sim.set_webhook_behaviour(WebhookBehaviour { drop_next: 1, ..Default::default() });
    let trace = vec![7u8; 4096];
    rh.sim.agent_attach(&number, "Internal", "", "smtp-trace.bin", trace.clone()).unwrap();
    let report = rh.reconcile().await;
    assert_eq!(report["attachments_added"], 1, "{report}");
    let doc = rh.hub.wait_incident(&r, "the second file", |d| d["attachments"].as_array().unwrap().len() == 3).await;
    let theirs = doc["attachments"].as_array().unwrap().iter().find(|a| a["file_name"] == "smtp-trace.bin").unwrap().clone();
    let back = rh.hub.get_as(&format!("/api/v1/incidents/{r}/attachments/{}", theirs["id"]), &rh.hub.keys.service_desk).await;
    assert!(back.bytes().await.unwrap().as_ref() == trace.as_slice());

    rh.reconcile().await;
    let doc = rh.hub.settle(&r).await;
    assert_eq!(doc["notes"].as_array().unwrap().len(), 1, "a work log that only holds a file is no note: {:#}", doc["notes"]);
    assert_eq!(doc["attachments"].as_array().unwrap().len(), 3);
    assert_eq!(rh.sim.worklogs(&number).len(), 3, "nothing was sent back to Remedy");
    rh.finish().await;
}

#[tokio::test]
async fn remedy_a_ticket_routed_back_gets_one_fresh_incident_even_when_the_create_answer_is_lost() {
    let rh = spawn(Setup::default()).await;
    let (r, first, _) = rh.open("Back and forth").await;
    let lose_create = || rh.sim.push_fault_for(FaultTarget { method: Some("POST".into()), form: Some(CREATE_FORM.into()) }, Fault::LoseResponseAfterCommit);
    let incidents = || rh.sim.incidents_by_vendor_ticket(&r).iter().map(|i| i["Entry ID"].as_str().unwrap().to_string()).collect();
    rh.hub.routed_back_gets_one_fresh_ticket(&r, REMEDY, SUPPLIER, &first, lose_create, incidents).await;
    assert!(rh.dead_letters().await.is_empty());
    rh.finish().await;
}

/// Remedy's slow answers outlive the hub's timeout (2 s) and commit after it: one incident, one
/// work log.
#[tokio::test]
async fn remedy_a_create_and_a_work_log_answered_after_the_timeout_are_written_once() {
    let rh = spawn(Setup::default()).await;
    let slow = || Fault::Timeout { delay: Duration::from_millis(3000) };
    rh.sim.push_fault_for(FaultTarget { method: Some("POST".into()), form: Some(CREATE_FORM.into()) }, slow());
    let (r, entry, number) = rh.open("Slow create").await;
    quiet(|| rh.sim.request_log().len()).await;
    assert_eq!(rh.ticket(&r)["Entry ID"], entry.as_str());

    rh.sim.push_fault_for(FaultTarget { method: Some("POST".into()), form: Some(WORKLOG.into()) }, slow());
    let resp = rh.hub.post(&format!("/api/v1/incidents/{r}/notes"), &rh.hub.keys.service_desk, &json!({"text": "written once, slowly", "visibility": "internal"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let count = || rh.sim.worklogs(&number).iter().filter(|w| w["Detailed Description"] == "written once, slowly").count();
    wait_for("the work log at Remedy", || (count() > 0).then_some(())).await;
    quiet(|| rh.sim.request_log().len()).await;
    assert_eq!(count(), 1, "{:#?}", rh.sim.request_log());
    assert_eq!(rh.hub.settle(&r).await["notes"].as_array().unwrap().len(), 1);
    assert_eq!(rh.sim.incidents().len(), 1);
    rh.finish().await;
}

/// An agent starts work between the create and the hub's read of the new incident: the read
/// brings a supplier change, which the record takes, and the hub does not move it back.
#[tokio::test]
async fn remedy_work_started_before_the_new_incident_is_read_back_is_applied_not_reverted() {
    let rh = spawn(Setup::default()).await;
    let read = FaultTarget { method: Some("GET".into()), form: Some(INTERFACE.into()) };
    // The lookup before the create passes; the read of the created incident is slow.
    rh.sim.push_fault_for(read.clone(), Fault::Timeout { delay: Duration::from_millis(1) });
    rh.sim.push_fault_for(read, Fault::Timeout { delay: Duration::from_millis(1500) });
    let r = rh.hub.raise(&email_incident("Quick agent")).await["ref"].as_str().unwrap().to_string();
    let number = rh.wait_ticket(&r, "the incident at Remedy", |_| true).await["Incident Number"].as_str().unwrap().to_string();
    rh.sim.agent_update(&number, json!({"Status": "In Progress"})).unwrap();
    rh.hub.wait_incident(&r, "the Remedy leg to open", |d| d["legs"][0]["state"] == "open").await;
    quiet(|| rh.sim.request_log().len()).await;
    let doc = rh.hub.settle(&r).await;
    assert_eq!(doc["status"], "in_progress", "the supplier's change reached the record");
    assert_eq!(rh.ticket(&r)["Status"], "In Progress", "the hub moved the incident back: {:#?}", rh.sim.request_log());
    rh.finish().await;
}

/// Two agent changes in one second carry the same revision (Remedy keeps whole seconds), and
/// their notifications arrive newest first: the older one must not undo the newer.
#[tokio::test]
async fn remedy_two_changes_in_one_second_arriving_out_of_order_leave_the_newer() {
    let rh = spawn(Setup { notify: true, ..Default::default() }).await;
    let (r, _, number) = rh.open("Same second").await;
    rh.hub.settle(&r).await;
    rh.sim.set_webhook_behaviour(WebhookBehaviour { reverse_order_of_next: 2, ..Default::default() });
    // Early in a second, so both changes fall in it.
    while chrono::Utc::now().timestamp_subsec_millis() > 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = rh.sim.agent_update(&number, json!({"Status": "In Progress"})).unwrap();
    let second = rh.sim.agent_update(&number, json!({"Status": "Pending", "Status_Reason": "Client Hold"})).unwrap();
    assert_eq!(first["Last Modified Date"], second["Last Modified Date"], "both changes share a revision");
    rh.hub.wait_incident(&r, "a supplier change", |d| d["status"] != "assigned").await;
    let doc = rh.hub.settle(&r).await;
    assert_eq!((doc["status"].as_str(), doc["hold_reason"].as_str()), (Some("on_hold"), Some("awaiting_caller")), "{:#?}", rh.hub.history(&r).await);
    assert_eq!(doc["legs"][0]["native_status"], "Pending");
    assert_eq!(rh.ticket(&r)["Status"], "Pending", "the hub moved the incident back");
    rh.finish().await;
}
