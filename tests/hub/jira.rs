//! A Jira Service Management supplier beside the ServiceNow one, on the real PostgreSQL and
//! RabbitMQ with the Jira simulator: create once (a lost answer adopted, not duplicated), agent
//! transitions and comments arriving by signed webhook and by the reconciliation sweep, hub
//! changes made through the right transitions, internal notes staying internal, duplicate and
//! out-of-order webhooks applied once, a 429 storm ridden out, and no echoes.

use crate::helpers::*;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use siam_hub::adapters::jira::{JiraClient, JiraConfig};
use siam_hub::adapters::Client;
use siam_hub::config::{RoutingRule, SecretRef, Settings, SupplierSettings};
use siam_hub::sim::jira::{sign_webhook, Fault, JiraSim, LoggedRequest, SimConfig, WebhookBehaviour, WebhookTarget, URGENCY_FIELD};
use std::time::Duration;

const JIRA: &str = "jira-apps";

struct JiraHub {
    hub: TestHub,
    sim: JiraSim,
    secret: String,
}

fn jira_settings(sim: &JiraSim, extra: &str) -> SupplierSettings {
    let config = SimConfig::default();
    let toml = format!(
        r#"
        [[suppliers]]
        id = "{JIRA}"
        name = "Applications supplier (JSM)"
        system = "jira"
        base_url = "{url}"
        username = "{email}"
        webhook_auth = "hub_signature"
        poll_interval_secs = 0
        poll_overlap_secs = 120
        timeout_secs = 2
        max_attempts = 6
        rate_per_sec = 50

        [suppliers.jira]
        project_key = "OPS"
        time_zone = "America/Los_Angeles"
        {extra}
        "#,
        url = sim.base_url().expect("started"),
        email = config.email,
    );
    let mut s = Settings::from_toml(&toml).expect("valid Jira supplier settings").suppliers.remove(0);
    s.password = Some(SecretRef::Value(SecretString::from(config.api_token)));
    s
}

impl JiraHub {
    async fn spawn() -> JiraHub {
        Self::spawn_with("").await
    }

    async fn spawn_with(extra: &str) -> JiraHub {
        let sim = JiraSim::new(SimConfig::default());
        sim.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).expect("the Jira simulator starts");
        let secret = format!("jira-{}", uuid::Uuid::new_v4().simple());
        let mut supplier = jira_settings(&sim, extra);
        supplier.webhook_secret = Some(SecretRef::Value(SecretString::from(secret.clone())));
        let rule = RoutingRule { service: Some("email".into()), ci: None, category: None, supplier: JIRA.into() };
        let hub = TestHub::spawn_with_suppliers(Options::default(), vec![supplier], vec![rule]).await;
        sim.set_webhook(Some(WebhookTarget { url: hub.url(&format!("/webhooks/{JIRA}")), secret: Some(secret.clone()) }));
        JiraHub { hub, sim, secret }
    }

    /// Raises an e-mail incident (routed to Jira) and waits for its leg to open.
    async fn open(&self, title: &str) -> (String, String) {
        let doc = self.hub.raise(&email_incident(title)).await;
        let r = doc["ref"].as_str().unwrap().to_string();
        let doc = self.hub.wait_incident(&r, "the Jira leg to open", |d| d["legs"][0]["state"] == "open").await;
        (r, doc["legs"][0]["native_id"].as_str().unwrap().to_string())
    }

    async fn reconcile(&self) -> Value {
        let resp = self.hub.post(&format!("/api/v1/admin/suppliers/{JIRA}/reconcile"), &self.hub.keys.admin, &json!({})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// PATCHes the incident at its current version.
    async fn patch(&self, r: &str, body: Value) -> Value {
        let version = self.hub.incident(r).await["version"].as_i64().unwrap();
        let resp = self.hub.patch(r, version, &body).await;
        assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap_or_default());
        resp.json().await.unwrap()
    }

    async fn note(&self, r: &str, visibility: &str, text: &str) {
        let resp = self.hub.post(&format!("/api/v1/incidents/{r}/notes"), &self.hub.keys.service_desk, &json!({"text": text, "visibility": visibility})).await;
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap_or_default());
    }

    /// The hub's writes to Jira (everything but reads).
    fn writes(&self) -> Vec<LoggedRequest> {
        self.sim.request_log().into_iter().filter(|l| l.method != "GET" && !l.path.starts_with("/rest/api/3/search/jql")).collect()
    }

    async fn finish(self) {
        self.hub.finish().await;
    }
}

fn email_incident(title: &str) -> Value {
    json!({
        "title": title,
        "description": "Outbound mail queues on relay-2.\n\nUsers see *451* errors [temporary].",
        "service": "email",
        "impact": 1,
        "urgency": 2,
        "caller": "j.smith",
        "category": "email"
    })
}

fn statuses(history: &[Value]) -> Vec<String> {
    history.iter().filter(|e| e["type"] == "incident.status_changed").map(|e| e["data"]["to"].as_str().unwrap().to_string()).collect()
}

fn adf_text(v: &Value) -> String {
    siam_hub::adapters::jira::text::adf_to_text(v)
}

#[tokio::test]
async fn a_ticket_routed_to_jira_is_created_once_with_mapped_fields() {
    let h = JiraHub::spawn().await;
    let (r, id) = h.open("Mail relay rejects outbound mail").await;
    let issues = h.sim.issues_by_reference(&r);
    assert_eq!(issues.len(), 1);
    let f = &issues[0]["fields"];
    assert_eq!(issues[0]["id"], id.as_str());
    assert_eq!(f["summary"], "Mail relay rejects outbound mail");
    assert_eq!(adf_text(&f["description"]), "Outbound mail queues on relay-2.\n\nUsers see *451* errors [temporary].");
    assert_eq!(f["priority"]["name"], "High", "hub priority 2 is the High label");
    assert_eq!(f["customfield_10004"]["value"], "Extensive / Widespread");
    assert_eq!(f[URGENCY_FIELD]["value"], "Medium");
    assert_eq!(f["customfield_10100"], r.as_str());
    assert_eq!(f["labels"], json!(["siam-hub", format!("siam-{r}")]));
    assert_eq!(f["status"]["id"], "10010");

    let doc = h.hub.settle(&r).await;
    let leg = &doc["legs"][0];
    assert_eq!(leg["system"], "jira");
    assert_eq!(leg["native_number"], "OPS-1");
    assert_eq!(leg["native_status"], "10010");
    assert!(leg["url"].as_str().unwrap().ends_with(&format!("ViewIssue.jspa?id={id}")), "{leg}");
    assert_eq!(doc["status"], "assigned");
    assert_eq!(doc["description"], "Outbound mail queues on relay-2.\n\nUsers see *451* errors [temporary].", "the creation echo changed nothing");
    let writes = h.writes();
    assert_eq!(writes.len(), 1, "one create and nothing else: {writes:?}");
    assert_eq!(writes[0].path, "/rest/api/3/issue");
    assert!(writes[0].body.as_ref().unwrap().pointer("/fields/status").is_none(), "status is never written");
    assert!(h.hub.sim.incidents().is_empty(), "nothing went to the ServiceNow supplier");
    h.finish().await;
}

#[tokio::test]
async fn agents_work_the_ticket_and_signed_webhooks_bring_it_to_the_hub() {
    let h = JiraHub::spawn().await;
    let (r, id) = h.open("Calendar sharing broken").await;

    h.sim.agent_transition(&id, "Start work", None).unwrap();
    let doc = h.hub.wait_incident(&r, "in progress", |d| d["status"] == "in_progress").await;
    assert_eq!(doc["legs"][0]["native_status"], "10011");

    h.sim.agent_comment(&id, "Looking at the *Exchange* connector", false).unwrap();
    h.sim.agent_comment(&id, "Could you tell us which calendar?\n\nThanks", true).unwrap();
    h.sim.agent_transition(&id, "Respond to customer", None).unwrap();
    let doc = h.hub.wait_incident(&r, "on hold", |d| d["status"] == "on_hold").await;
    assert_eq!(doc["hold_reason"], "awaiting_caller");

    h.sim.agent_edit(&id, json!({URGENCY_FIELD: {"value": "Critical"}})).unwrap();
    let doc = h.hub.wait_incident(&r, "urgency 1", |d| d["urgency"] == 1).await;
    assert_eq!(doc["priority"], 1, "impact 1 x urgency 1");

    h.sim.agent_transition(&id, "Start work", None).unwrap();
    h.sim.agent_transition(&id, "Resolve this issue", Some("Cannot Reproduce")).unwrap();
    let doc = h.hub.wait_incident(&r, "resolved", |d| d["status"] == "resolved").await;
    assert_eq!(doc["resolution"], json!({"code": "not_reproducible", "notes": ""}));
    assert_eq!(doc["hold_reason"], Value::Null);

    let doc = h.hub.wait_incident(&r, "both notes", |d| d["notes"].as_array().unwrap().len() == 2).await;
    let doc = {
        let _ = doc;
        h.hub.settle(&r).await
    };
    let notes = doc["notes"].as_array().unwrap();
    let note = |text: &str| notes.iter().find(|n| n["text"] == text).unwrap_or_else(|| panic!("note {text:?} missing: {notes:?}"));
    assert_eq!(note("Looking at the *Exchange* connector")["visibility"], "internal");
    assert_eq!(note("Could you tell us which calendar?\n\nThanks")["visibility"], "public");
    assert_eq!(note("Could you tell us which calendar?\n\nThanks")["author"], "Alana Grant");
    assert_eq!(note("Could you tell us which calendar?\n\nThanks")["origin"], JIRA);

    assert_eq!(statuses(&h.hub.history(&r).await), ["assigned", "in_progress", "on_hold", "in_progress", "resolved"]);
    // The hub took the supplier's changes in; none came back to Jira as a hub write.
    let writes: Vec<String> = h.writes().iter().map(|w| format!("{} {}", w.method, w.path)).collect();
    assert_eq!(writes, ["POST /rest/api/3/issue"]);
    siam_hub::validation::validate(siam_hub::validation::Doc::Incident, &doc).expect("a valid canonical document");
    h.finish().await;
}

#[tokio::test]
async fn hub_status_changes_are_made_through_the_right_transitions() {
    let h = JiraHub::spawn().await;
    let (r, id) = h.open("Shared mailbox permissions").await;
    let transitions = |h: &JiraHub| -> Vec<String> {
        h.writes().iter().filter(|w| w.path.ends_with("/transitions")).map(|w| w.body.as_ref().unwrap()["transition"]["id"].as_str().unwrap().to_string()).collect()
    };

    h.patch(&r, json!({"status": "in_progress"})).await;
    wait_for("Work in progress", || (h.sim.issue(&id).unwrap()["fields"]["status"]["id"] == "10011").then_some(())).await;
    h.patch(&r, json!({"status": "on_hold", "hold_reason": "awaiting_caller"})).await;
    wait_for("Waiting for customer", || (h.sim.issue(&id).unwrap()["fields"]["status"]["id"] == "10012").then_some(())).await;
    h.patch(&r, json!({"status": "resolved", "resolution": {"code": "duplicate", "notes": "Same as INC-000007"}})).await;
    wait_for("Resolved", || (h.sim.issue(&id).unwrap()["fields"]["status"]["id"] == "10015").then_some(())).await;
    assert_eq!(h.sim.issue(&id).unwrap()["fields"]["resolution"]["name"], "Duplicate", "the resolution rode on the resolve screen");
    h.patch(&r, json!({"status": "in_progress"})).await;
    wait_for("reopened", || (h.sim.issue(&id).unwrap()["fields"]["status"]["id"] == "10011").then_some(())).await;
    assert!(h.sim.issue(&id).unwrap()["fields"]["resolution"].is_null());

    let doc = h.hub.settle(&r).await;
    assert_eq!(transitions(&h), ["11", "21", "51", "81"], "transition ids looked up by target status");
    let resolve = h.writes().into_iter().find(|w| w.body.as_ref().is_some_and(|b| b["transition"]["id"] == "51")).unwrap();
    assert_eq!(resolve.body.unwrap()["fields"], json!({"resolution": {"name": "Duplicate"}}));
    assert!(h.writes().iter().all(|w| w.method != "PUT"), "status and resolution were never edited as fields");
    // The webhooks of the hub's own transitions changed nothing at the hub.
    assert_eq!(doc["status"], "in_progress");
    assert_eq!(statuses(&h.hub.history(&r).await), ["assigned", "in_progress", "on_hold", "resolved", "in_progress"]);
    let version = doc["version"].clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.hub.incident(&r).await["version"], version);

    // A status the workflow cannot reach from here is refused loudly, not faked.
    h.patch(&r, json!({"status": "closed"})).await;
    let doc = h.hub.wait_incident(&r, "the refusal on the leg", |d| d["legs"][0]["last_error"].is_string()).await;
    assert!(doc["legs"][0]["last_error"].as_str().unwrap().contains("no transition"), "{}", doc["legs"][0]);
    assert_eq!(h.sim.issue(&id).unwrap()["fields"]["status"]["id"], "10011");
    h.finish().await;
}

#[tokio::test]
async fn hub_field_edits_reach_jira_and_their_echo_changes_nothing() {
    let h = JiraHub::spawn().await;
    let (r, id) = h.open("Spam filter too strict").await;
    let text = "Legit mail from *partner.example* is quarantined.\nRule: {score > 5} [strict]\n\n-- C:\\mail\\rules.xml";
    let doc = h.patch(&r, json!({"title": "Spam filter quarantines partner mail", "description": text, "urgency": 3})).await;
    let version = doc["version"].as_i64().unwrap();
    wait_for("the edit", || (h.sim.issue(&id).unwrap()["fields"]["summary"] == "Spam filter quarantines partner mail").then_some(())).await;
    let issue = h.sim.issue(&id).unwrap();
    assert_eq!(adf_text(&issue["fields"]["description"]), text);
    assert_eq!(issue["fields"][URGENCY_FIELD]["value"], "Low");
    assert_eq!(issue["fields"]["priority"]["name"], "Medium", "impact 1 x urgency 3 = 3");
    let doc = h.hub.settle(&r).await;
    assert_eq!(doc["version"], version, "the webhook echo of the hub's edit (in wiki markup) changed nothing");
    assert_eq!(doc["description"], text);
    let puts: Vec<Value> = h.writes().into_iter().filter(|w| w.method == "PUT").map(|w| w.body.unwrap()).collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0]["fields"]["description"]["type"], "doc", "v3 writes carry ADF");
    h.finish().await;
}

#[tokio::test]
async fn hub_notes_keep_their_visibility_and_are_not_imported_back() {
    let h = JiraHub::spawn().await;
    let (r, id) = h.open("Mailbox full").await;
    let internal = "Root cause: *expired* cert on relay-2 [CHG-000045] -- see C:\\certs\nh1. not a heading";
    h.note(&r, "internal", internal).await;
    h.note(&r, "public", "We are renewing a certificate; mail flows again within the hour.").await;
    wait_for("both comments", || (h.sim.issue(&id).unwrap()["fields"]["comment"]["total"] == 2).then_some(())).await;
    let comments = h.sim.issue(&id).unwrap()["fields"]["comment"]["comments"].as_array().cloned().unwrap();
    let c_internal = comments.iter().find(|c| adf_text(&c["body"]) == internal).expect("the internal note, text intact");
    assert_eq!(c_internal["jsdPublic"], false);
    let c_public = comments.iter().find(|c| c["jsdPublic"] == true).expect("the public note");
    assert_eq!(adf_text(&c_public["body"]), "We are renewing a certificate; mail flows again within the hour.");

    let writes = h.writes();
    let jsm: Vec<&LoggedRequest> = writes.iter().filter(|w| w.path.starts_with("/rest/servicedeskapi/request/")).collect();
    assert_eq!(jsm.len(), 1, "the internal note went through the JSM request API");
    assert_eq!(jsm[0].body.as_ref().unwrap()["public"], false);
    let v3: Vec<&LoggedRequest> = writes.iter().filter(|w| w.path == format!("/rest/api/3/issue/{id}/comment")).collect();
    assert_eq!(v3.len(), 1);
    assert_eq!(v3[0].body.as_ref().unwrap()["body"]["type"], "doc");
    assert!(!v3[0].body.as_ref().unwrap().to_string().contains("Root cause"), "an internal note never travels on the public route");

    let doc = h.hub.settle(&r).await;
    let notes = doc["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2, "the comment webhooks of the hub's notes were linked, not imported: {notes:?}");
    assert!(notes.iter().all(|n| n["origin"] == "hub"));
    h.finish().await;
}

#[tokio::test]
async fn a_lost_create_answer_is_adopted_not_duplicated() {
    let h = JiraHub::spawn().await;
    h.sim.set_webhook(None);
    // The lookup passes (slowly); the create commits but its answer is lost at the edge.
    h.sim.push_fault(Fault::Timeout { delay: Duration::from_millis(1) });
    h.sim.push_fault(Fault::LoseResponseAfterCommit);
    let (r, id) = h.open("Lost answer").await;
    let doc = h.hub.settle(&r).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let issues = h.sim.issues_by_reference(&r);
    assert_eq!(issues.len(), 1, "exactly one Jira issue");
    assert_eq!(issues[0]["id"], id.as_str());
    assert_eq!(doc["legs"][0]["native_number"], "OPS-1");
    let creates: Vec<u16> = h.sim.request_log().iter().filter(|l| l.method == "POST" && l.path == "/rest/api/3/issue").map(|l| l.status).collect();
    assert_eq!(creates, [504], "the create was not sent again; the retry looked the reference up");
    h.finish().await;
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_honouring_retry_after() {
    let h = JiraHub::spawn().await;
    for _ in 0..3 {
        h.sim.push_fault(Fault::RateLimited { retry_after_secs: 1 });
    }
    h.sim.push_fault(Fault::ServiceUnavailable { retry_after_secs: 1 });
    let (r, _) = h.open("Storm").await;
    let log = h.sim.request_log();
    let statuses: Vec<u16> = log.iter().map(|l| l.status).collect();
    assert!(statuses.starts_with(&[429, 429, 429, 503]), "{statuses:?}");
    // Each retry came no sooner than the Retry-After second the previous answer asked for.
    for pair in log.windows(2).take(4) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= chrono::Duration::milliseconds(1000), "a retry came {gap} after a {}: {statuses:?}", pair[0].status);
    }
    assert_eq!(h.sim.issues_by_reference(&r).len(), 1);
    h.finish().await;
}

#[tokio::test]
async fn duplicate_and_out_of_order_webhooks_end_as_one_in_order_delivery_would() {
    let h = JiraHub::spawn().await;
    let (r, id) = h.open("Flapping mail relay").await;
    h.sim.set_webhook_behaviour(WebhookBehaviour { duplicate: true, reverse_order_of_next: 4, ..Default::default() });
    h.sim.agent_transition(&id, "Start work", None).unwrap();
    h.sim.agent_comment(&id, "step 1", false).unwrap();
    h.sim.agent_transition(&id, "Mark as pending", None).unwrap();
    h.sim.agent_edit(&id, json!({URGENCY_FIELD: {"value": "Low"}})).unwrap();
    h.hub.wait_incident(&r, "all four changes", |d| d["urgency"] == 3 && !d["notes"].as_array().unwrap().is_empty()).await;
    h.sim.set_webhook_behaviour(WebhookBehaviour { duplicate_with_new_identifier: true, ..Default::default() });
    h.sim.agent_comment(&id, "step 2", true).unwrap();
    h.hub.wait_incident(&r, "the second note", |d| d["notes"].as_array().unwrap().len() >= 2).await;
    let doc = h.hub.settle(&r).await;
    assert_eq!(doc["status"], "on_hold", "the newest Jira state wins whatever the arrival order");
    assert_eq!(doc["hold_reason"], "other", "Pending holds for a reason Jira does not say");
    assert_eq!(doc["urgency"], 3);
    let texts: Vec<&str> = doc["notes"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 2, "each comment once: {texts:?}");
    let st = statuses(&h.hub.history(&r).await);
    assert_eq!(st.last().map(String::as_str), Some("on_hold"));
    assert!(st.len() <= 3, "the stale in-progress delivery did not move the status back: {st:?}");
    h.finish().await;
}

#[tokio::test]
async fn missed_webhooks_are_caught_by_the_reconciliation_sweep() {
    let h = JiraHub::spawn().await;
    let (r, id) = h.open("Missed").await;
    h.sim.set_webhook_behaviour(WebhookBehaviour { drop_next: 2, ..Default::default() });
    h.sim.agent_transition(&id, "Start work", None).unwrap();
    h.sim.agent_comment(&id, "found the bad route", false).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.hub.incident(&r).await["status"], "assigned", "both webhooks were dropped");

    let report = h.reconcile().await;
    assert_eq!(report["applied"], 1, "{report}");
    assert_eq!(report["notes_added"], 1);
    let doc = h.hub.incident(&r).await;
    assert_eq!(doc["status"], "in_progress");
    assert_eq!(doc["notes"][0]["text"], "found the bad route");
    assert_eq!(doc["notes"][0]["visibility"], "internal");
    let again = h.reconcile().await;
    assert_eq!(again["applied"], 0);
    assert_eq!(h.hub.incident(&r).await["version"], doc["version"]);
    let searches: Vec<Value> = h.sim.request_log().into_iter().filter(|l| l.path == "/rest/api/3/search/jql").filter_map(|l| l.body).collect();
    let sweep = searches.iter().rev().find(|b| b["jql"].as_str().unwrap().contains("updated >=")).expect("a sweep search");
    assert!(sweep["jql"].as_str().unwrap().starts_with("labels = \"siam-hub\" AND project = \"OPS\" AND updated >= \""), "{sweep}");
    h.finish().await;
}

#[tokio::test]
async fn an_unknown_jira_status_is_read_through_its_category_and_marked_inferred() {
    let h = JiraHub::spawn().await;
    let (r, id) = h.open("Needs a change").await;
    h.sim.add_status("10300", "Awaiting CAB", "indeterminate");
    h.sim.agent_transition(&id, "Set Awaiting CAB", None).unwrap();
    let doc = h.hub.wait_incident(&r, "the native status", |d| d["legs"][0]["native_status"] == "10300").await;
    assert_eq!(doc["status"], "in_progress", "read through its category, so the record keeps following");
    let note = doc["legs"][0]["unmapped"]["status"].as_str().unwrap_or("");
    assert!(note.starts_with("10300 ") && note.contains("inferred"), "{}", doc["legs"][0]);
    let history = h.hub.history(&r).await;
    let unmapped: Vec<&Value> = history.iter().filter(|e| e["type"] == "mapping.unmapped_value").collect();
    assert_eq!(unmapped.len(), 1);
    assert!(unmapped[0]["data"]["value"].as_str().is_some_and(|v| v.starts_with("10300 ")), "{}", unmapped[0]);
    assert_eq!(unmapped[0]["data"]["system"], "jira");
    // A hub change later does not drag the ticket out of the site's status meaning the same.
    h.note(&r, "public", "Any news from the CAB?").await;
    wait_for("the note", || (h.sim.issue(&id).unwrap()["fields"]["comment"]["total"] == 1).then_some(())).await;
    h.hub.settle(&r).await;
    assert_eq!(h.sim.issue(&id).unwrap()["fields"]["status"]["id"], "10300");
    assert!(h.writes().iter().all(|w| !w.path.ends_with("/transitions")));
    h.finish().await;
}

#[tokio::test]
async fn jira_webhooks_must_carry_the_hub_signature() {
    let h = JiraHub::spawn().await;
    let (r, id) = h.open("Auth").await;
    let issue = h.sim.issue(&id).unwrap();
    let mut fields = issue["fields"].clone();
    fields["status"] = json!({"id": "10011", "statusCategory": {"key": "indeterminate"}});
    fields["updated"] = json!("2099-01-01T00:00:00.000-0800");
    fields["description"] = json!(adf_text(&issue["fields"]["description"]).replace('*', "\\*").replace('[', "\\[").replace(']', "\\]"));
    let now_ms = chrono::Utc::now().timestamp_millis();
    let body = json!({"timestamp": now_ms, "webhookEvent": "jira:issue_updated", "issue_event_type_name": "issue_generic",
                      "issue": {"id": id, "key": "OPS-1", "fields": fields}})
    .to_string();
    let send = |sig: Option<String>, delivery: &str| {
        let mut req =
            h.hub.http.post(h.hub.url(&format!("/webhooks/{JIRA}"))).header("content-type", "application/json").header("X-Atlassian-Webhook-Identifier", delivery.to_string());
        if let Some(s) = sig {
            req = req.header("X-Hub-Signature", s);
        }
        req.body(body.clone()).send()
    };
    assert_eq!(send(None, "d-1").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(send(Some(sign_webhook("guess", &body)), "d-1").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.hub.incident(&r).await["status"], "assigned");
    let ok = send(Some(sign_webhook(&h.secret, &body)), "d-1").await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(h.hub.incident(&r).await["status"], "in_progress");
    // The signature covers the body only: a replay of a captured body is refused whatever
    // delivery identifier it comes with, and so is a body signed longer ago than the tolerance.
    for delivery in ["d-1", "d-2-forged"] {
        let repeat = send(Some(sign_webhook(&h.secret, &body)), delivery).await.unwrap();
        assert_eq!(repeat.status(), StatusCode::CONFLICT, "a replay under {delivery}");
        let problem: Value = repeat.json().await.unwrap();
        assert_eq!(problem["type"].as_str().unwrap().rsplit('/').next(), Some("replayed-delivery"), "{problem}");
    }
    let mut old_fields = fields.clone();
    old_fields["summary"] = json!("an old, captured delivery");
    let old = json!({"timestamp": now_ms - 3_600_000, "webhookEvent": "jira:issue_updated", "issue": {"id": id, "key": "OPS-1", "fields": old_fields}}).to_string();
    let resp = h.hub.http.post(h.hub.url(&format!("/webhooks/{JIRA}"))).header("X-Hub-Signature", sign_webhook(&h.secret, &old)).body(old).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "a body signed an hour ago");
    let untimed = json!({"webhookEvent": "jira:issue_updated", "issue": {"id": id, "key": "OPS-1", "fields": fields}}).to_string();
    let resp = h.hub.http.post(h.hub.url(&format!("/webhooks/{JIRA}"))).header("X-Hub-Signature", sign_webhook(&h.secret, &untimed)).body(untimed).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "a body that carries no timestamp");
    assert_ne!(h.hub.incident(&r).await["title"], "an old, captured delivery");
    let deleted = json!({"timestamp": now_ms, "webhookEvent": "jira:issue_deleted", "issue": {"id": id, "fields": {}}}).to_string();
    let resp = h.hub.http.post(h.hub.url(&format!("/webhooks/{JIRA}"))).header("X-Hub-Signature", sign_webhook(&h.secret, &deleted)).body(deleted).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    h.finish().await;
}

#[tokio::test]
async fn a_jsm_request_create_opens_the_leg_too() {
    let h = JiraHub::spawn_with("create_via = \"request\"\nservice_desk_id = \"10\"\nrequest_type_id = \"25\"").await;
    let (r, id) = h.open("Request through the portal API").await;
    let creates: Vec<LoggedRequest> = h.writes().into_iter().filter(|w| w.method == "POST").collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].path, "/rest/servicedeskapi/request");
    let body = creates[0].body.clone().unwrap();
    assert_eq!(body["isAdfRequest"], true);
    assert_eq!(body["requestFieldValues"]["labels"], json!(["siam-hub", format!("siam-{r}")]));
    let issue = h.sim.issue(&id).unwrap();
    assert_eq!(issue["fields"]["customfield_10010"]["requestType"]["id"], "25");
    let doc = h.hub.settle(&r).await;
    assert_eq!(doc["legs"][0]["native_status"], "10010");
    assert_eq!(doc["status"], "assigned");
    h.finish().await;
}

#[tokio::test]
async fn the_client_pages_the_sweep_through_the_search_cursor() {
    let sim = JiraSim::new(SimConfig::default());
    sim.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let settings = jira_settings(&sim, "");
    let http = siam_hub::adapters::http::SupplierHttp::new(Duration::from_secs(2), 50, 3).unwrap();
    let password = SecretString::from(SimConfig::default().api_token);
    let client = JiraClient::new(
        http.clone(),
        &settings.base_url,
        &settings.username,
        password.clone(),
        std::sync::Arc::new(JiraConfig::from_settings(&settings.jira).unwrap()),
        &settings.jira,
    )
    .unwrap();
    let since = chrono::Utc::now() - chrono::Duration::minutes(5);
    for n in 0..7 {
        let incident: siam_hub::domain::Incident = serde_json::from_value(json!({
            "ref": format!("INC-{:06}", 500 + n), "title": format!("paged {n}"), "description": "", "status": "new", "hold_reason": null,
            "impact": 2, "urgency": 2, "priority": 3, "priority_source": "derived", "category": null, "service": null, "ci": null,
            "caller": "x", "assigned_supplier": null, "resolution": null, "notes": [], "opened_at": "2024-01-01T00:00:00.000Z",
            "updated_at": "2024-01-01T00:00:00.000Z", "resolved_at": null, "closed_at": null, "version": 1, "legs": []
        }))
        .unwrap();
        client.create(&incident, &[]).await.unwrap();
    }
    let title = |v: &Value| v["fields"]["summary"].as_str().unwrap().to_string();
    let mut seen = Vec::new();
    for offset in [0, 3, 6] {
        let page = client.updated_since(since, offset, 3).await.unwrap();
        seen.extend(page.iter().map(title));
    }
    assert_eq!(seen, (0..7).map(|n| format!("paged {n}")).collect::<Vec<_>>());
    let searches =
        sim.request_log().iter().filter(|l| l.path == "/rest/api/3/search/jql" && l.body.as_ref().is_some_and(|b| b["jql"].as_str().unwrap().contains("updated"))).count();
    assert_eq!(searches, 3, "each page continued the cursor");
    // A fresh client asked for a later offset walks the cursor to it.
    let fresh =
        JiraClient::new(http, &settings.base_url, &settings.username, password, std::sync::Arc::new(JiraConfig::from_settings(&settings.jira).unwrap()), &settings.jira).unwrap();
    let page = fresh.updated_since(since, 5, 3).await.unwrap();
    assert_eq!(page.iter().map(title).collect::<Vec<_>>(), ["paged 5", "paged 6"]);
    // The JQL minute is the user's (LA): a sweep from the future finds nothing.
    assert!(client.updated_since(chrono::Utc::now() + chrono::Duration::minutes(2), 0, 3).await.unwrap().is_empty());
}

#[tokio::test]
async fn files_travel_both_ways_with_jira_once_each() {
    let h = JiraHub::spawn().await;
    let (r, id) = h.open("Mailbox export attached").await;
    let data: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    let resp = h.hub.attach(&r, "export.pst", "application/vnd.ms-outlook", data.clone()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let sent = wait_for("the file at Jira", || h.sim.attachments(&id).first().cloned()).await;
    assert_eq!((sent.0.as_str(), sent.1.as_str()), ("export.pst", "application/vnd.ms-outlook"));
    assert!(sent.2 == data, "Jira got different bytes");
    let doc = h.hub.wait_incident(&r, "the delivery on record", |d| d["attachments"][0]["deliveries"][0]["state"] == "sent").await;
    assert_eq!(doc["attachments"][0]["deliveries"][0]["supplier"], JIRA);

    // An agent attaches a screenshot in Jira: it reaches the record, and is not sent back.
    let shot = b"\x89PNG fake screenshot bytes".to_vec();
    h.sim.agent_attach(&id, "screenshot.png", "image/png", shot.clone()).unwrap();
    let doc = h.hub.wait_incident(&r, "Jira's file on the record", |d| d["attachments"].as_array().unwrap().len() == 2).await;
    let theirs = doc["attachments"].as_array().unwrap().iter().find(|a| a["file_name"] == "screenshot.png").unwrap().clone();
    assert_eq!(theirs["origin"], JIRA);
    assert_eq!(theirs["deliveries"][0]["state"], "received");
    let back = h.hub.get_as(&format!("/api/v1/incidents/{r}/attachments/{}", theirs["id"]), &h.hub.keys.service_desk).await;
    assert!(back.bytes().await.unwrap().as_ref() == shot.as_slice());
    h.hub.settle(&r).await;
    assert_eq!(h.sim.attachments(&id).len(), 2, "each file exists once at Jira");
    h.finish().await;
}

#[tokio::test]
async fn a_ticket_routed_back_to_jira_gets_one_fresh_issue_even_when_the_create_answer_is_lost() {
    let h = JiraHub::spawn().await;
    let (r, first) = h.open("Back and forth").await;
    let lose_create = || {
        // The lookup (a search, then a read of the issue found) passes; the create commits and
        // its answer is lost.
        h.sim.push_fault(Fault::Timeout { delay: Duration::from_millis(1) });
        h.sim.push_fault(Fault::Timeout { delay: Duration::from_millis(1) });
        h.sim.push_fault(Fault::LoseResponseAfterCommit);
    };
    let issues = || h.sim.issues_by_reference(&r).iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    h.hub.routed_back_gets_one_fresh_ticket(&r, JIRA, SUPPLIER, &first, lose_create, issues).await;
    h.finish().await;
}

/// Jira's slow answers outlive the hub's timeout (2 s) and commit after it: one issue, one
/// comment.
#[tokio::test]
async fn a_create_and_a_comment_answered_after_the_timeout_are_written_once() {
    let h = JiraHub::spawn().await;
    h.sim.set_webhook(None);
    let slow = || Fault::Timeout { delay: Duration::from_millis(3000) };
    h.sim.push_fault(Fault::Timeout { delay: Duration::from_millis(1) });
    h.sim.push_fault(slow());
    let (r, id) = h.open("Slow create").await;
    quiet(|| h.sim.request_log().len()).await;
    let issues = h.sim.issues_by_reference(&r);
    assert_eq!(issues.len(), 1, "exactly one Jira issue: {:#?}", h.writes());
    assert_eq!(issues[0]["id"], id.as_str());

    h.sim.push_fault(slow());
    h.note(&r, "public", "written once, slowly").await;
    let count = || h.sim.issue(&id).unwrap()["fields"]["comment"]["comments"].as_array().unwrap().iter().filter(|c| c["body"].to_string().contains("written once, slowly")).count();
    wait_for("the comment at Jira", || (count() > 0).then_some(())).await;
    quiet(|| h.sim.request_log().len()).await;
    assert_eq!(count(), 1, "{:#?}", h.writes());
    assert_eq!(h.hub.settle(&r).await["notes"].as_array().unwrap().len(), 1);
    h.finish().await;
}

/// An agent starts work between the create and the hub's read of the new issue: the read brings
/// a supplier change, which the record takes, and the hub does not move the issue back.
#[tokio::test]
async fn work_started_before_the_new_issue_is_read_back_is_applied_not_reverted() {
    let h = JiraHub::spawn().await;
    h.sim.set_webhook(None);
    // The lookup and the create pass; the read of the created issue is slow.
    h.sim.push_fault(Fault::Timeout { delay: Duration::from_millis(1) });
    h.sim.push_fault(Fault::Timeout { delay: Duration::from_millis(1) });
    h.sim.push_fault(Fault::Timeout { delay: Duration::from_millis(1500) });
    let r = h.hub.raise(&email_incident("Quick agent")).await["ref"].as_str().unwrap().to_string();
    let id = wait_for("the issue at Jira", || h.sim.issues_by_reference(&r).first().map(|i| i["id"].as_str().unwrap().to_string())).await;
    h.sim.agent_transition(&id, "Start work", None).unwrap();
    let doc = h.hub.wait_incident(&r, "the Jira leg to open", |d| d["legs"][0]["state"] == "open").await;
    assert_eq!(doc["legs"][0]["native_id"], id.as_str());
    quiet(|| h.sim.request_log().len()).await;
    let doc = h.hub.settle(&r).await;
    assert_eq!(doc["status"], "in_progress", "the supplier's change reached the record: {:#?} {:#?}", h.hub.history(&r).await, h.sim.request_log());
    assert_eq!(h.sim.issue(&id).unwrap()["fields"]["status"]["name"], "Work in progress", "the hub moved the issue back: {:#?}", h.writes());
    h.finish().await;
}

/// A change whose service a JSM supplier runs becomes a change request in Jira; the supplier's
/// approval, its start and its completion there reach the record by Jira's notifications.
#[tokio::test]
async fn a_change_becomes_a_jsm_change_request_and_its_progress_in_jira_reaches_the_record() {
    use crate::changes::{normal_change, ChangeHub};
    use chrono::{Duration as Days, SubsecRound, Utc};
    use siam_hub::domain::change::ChangeStatus;
    let j = JiraHub::spawn().await;
    let (cm, apps) = (j.hub.key("change_manager", None).await, j.hub.key("supplier", Some(JIRA)).await);
    let (network, sim) = (j.hub.keys.supplier.clone(), j.sim);
    let h = ChangeHub { hub: j.hub, cm, network, apps: apps.clone(), payroll: apps };
    let now = Utc::now().trunc_subsecs(0);
    let r = h.raise(normal_change("Mail gateway upgrade", &["email"], now - Days::minutes(5), now + Days::hours(2))).await;
    assert_eq!(h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    h.move_to(&r, "authorize").await;
    let mapping = siam_hub::adapters::change::mapping_for("jira").unwrap();
    let ours = |status: ChangeStatus| {
        let found: Vec<Value> = sim.changes().into_iter().filter(|c| mapping.read(c).is_ok_and(|x| x.reference.as_ref().map(|x| x.to_string()) == Some(r.clone()))).collect();
        (found.len() == 1 && mapping.read(&found[0]).is_ok_and(|c| c.status == Some(status))).then(|| found[0]["key"].as_str().unwrap().to_string())
    };
    let key = wait_for("the JSM change awaiting approval", || ours(ChangeStatus::Authorize)).await;
    assert_eq!(h.decide(&r, &h.cm, "approve", "CAB: go").await.0, StatusCode::CREATED);
    // The supplier's change manager approves in Jira.
    sim.agent_transition_change(&key, "Awaiting implementation").unwrap();
    let leg_state = |doc: &Value| doc["legs"].as_array().unwrap().iter().find(|l| l["supplier"] == JIRA).map(|l| l["state"].as_str().unwrap_or("").to_string());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let wait_leg = |want: &'static str| {
        let h = &h;
        let r = r.clone();
        async move {
            loop {
                let doc = h.get(&format!("/api/v1/changes/{r}")).await;
                if leg_state(&doc).as_deref() == Some(want) {
                    return doc;
                }
                assert!(tokio::time::Instant::now() < deadline, "the JSM leg never got {want}: {}", doc["legs"]);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let doc = wait_leg("ready").await;
    assert!(doc["approval"]["decisions"].as_array().unwrap().iter().any(|d| d["by"]["id"] == JIRA), "{}", doc["approval"]);
    h.move_to(&r, "scheduled").await;
    h.move_to(&r, "implement").await;
    sim.agent_transition_change(&key, "Implementing").unwrap();
    wait_leg("in_progress").await;
    sim.agent_resolve_change(&key, "Completed", Some("Done")).unwrap();
    wait_leg("succeeded").await;
    assert_eq!(h.move_to(&r, "review").await["outcome"], "successful");
    h.move_to(&r, "closed").await;
    h.hub.finish().await;
}
