//! Changes on the real stack: one request for change over three suppliers, the integrated CAB,
//! gates that name what is missing, legs implemented in dependency order, back-out after a
//! failure, conflicts in the forward schedule, freezes, and the calendar as JSON and iCalendar.

use crate::helpers::*;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use siam_hub::config::{SecretRef, Settings};

pub(crate) const APPS: &str = "apps-sn";
pub(crate) const PAYROLL: &str = "payroll-sn";

/// Three suppliers (network, email and payroll services), a CAB rule asking every affected
/// supplier's approval for normal changes, a hard freeze on payroll next month and a template.
pub(crate) fn change_options() -> Options {
    let freeze_start = Utc::now() + Duration::days(30);
    let extra = format!(
        r#"
        [[suppliers]]
        id = "{APPS}"
        name = "Applications supplier"
        system = "servicenow"
        base_url = "http://127.0.0.1:9"
        username = "hub"
        poll_interval_secs = 0

        [[suppliers]]
        id = "{PAYROLL}"
        name = "Payroll supplier"
        system = "servicenow"
        base_url = "http://127.0.0.1:9"
        username = "hub"
        poll_interval_secs = 0

        [[routing.rules]]
        service = "email"
        supplier = "{APPS}"

        [[routing.rules]]
        service = "payroll"
        supplier = "{PAYROLL}"

        [[changes.cab]]
        type = "normal"
        integrator_approvals = 1
        every_supplier = true

        [[changes.freezes]]
        name = "payroll-run"
        services = ["payroll"]
        start = "{fs}"
        end = "{fe}"
        hard = true

        [[changes.templates]]
        name = "cert-renewal"
        title = "Renew the mail gateway's TLS certificate"
        services = ["email"]
        risk = 4
        implementation_plan = "Install the new certificate, reload the gateway"
        "#,
        fs = freeze_start.to_rfc3339(),
        fe = (freeze_start + Duration::days(3)).to_rfc3339(),
    );
    Options {
        extra_toml: extra,
        tweak: Some(|s: &mut Settings| {
            for sup in s.suppliers.iter_mut().filter(|x| x.password.is_none()) {
                sup.password = Some(SecretRef::Value(SecretString::from("not-used".to_string())));
            }
            // These suppliers work their legs through the hub's API.
            for sup in s.suppliers.iter_mut() {
                sup.change_records = false;
            }
        }),
        ..Options::default()
    }
}

pub(crate) struct ChangeHub {
    pub(crate) hub: TestHub,
    pub(crate) cm: String,
    pub(crate) network: String,
    pub(crate) apps: String,
    pub(crate) payroll: String,
}

pub(crate) async fn change_hub() -> ChangeHub {
    change_hub_with(change_options()).await
}

/// A [`change_hub`] on other options (e.g. [`change_options`] with more configuration appended).
pub(crate) async fn change_hub_with(options: Options) -> ChangeHub {
    let hub = TestHub::spawn_with(options).await;
    let cm = hub.key("change_manager", None).await;
    let network = hub.keys.supplier.clone();
    let apps = hub.key("supplier", Some(APPS)).await;
    let payroll = hub.key("supplier", Some(PAYROLL)).await;
    ChangeHub { hub, cm, network, apps, payroll }
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

impl ChangeHub {
    /// One request; a `PATCH` of the change sends the version just read, and reads and sends
    /// again when the record moved in between (a supplier's change read back meanwhile), as a
    /// client of the API does.
    async fn send(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        for _ in 0..4 {
            let (status, doc) = self.send_once(method, path, key, body.clone()).await;
            if status != StatusCode::PRECONDITION_FAILED {
                return (status, doc);
            }
        }
        panic!("{method} {path}: the change kept moving under the request");
    }

    async fn send_once(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.hub.http.request(method.parse().unwrap(), self.hub.url(path)).bearer_auth(key);
        if method == "PATCH" && !path.contains("/legs/") {
            let current = self.get(path).await;
            req = req.header("If-Match", format!("\"{}\"", current["version"]));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        let resp = self.hub.get_as(path, &self.cm).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.json().await.unwrap()
    }

    pub(crate) async fn raise(&self, body: Value) -> String {
        let (status, doc) = self.send("POST", "/api/v1/changes", &self.hub.keys.service_desk, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{doc}");
        doc["ref"].as_str().unwrap().to_string()
    }

    pub(crate) async fn patch(&self, r: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.send("PATCH", &format!("/api/v1/changes/{r}"), key, Some(body)).await
    }

    pub(crate) async fn move_to(&self, r: &str, status: &str) -> Value {
        let (code, doc) = self.patch(r, &self.cm, json!({ "status": status })).await;
        assert_eq!(code, StatusCode::OK, "moving {r} to {status}: {doc}");
        assert_eq!(doc["status"], status);
        doc
    }

    pub(crate) async fn leg(&self, r: &str, supplier: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.send("PATCH", &format!("/api/v1/changes/{r}/legs/{supplier}"), key, Some(body)).await
    }

    pub(crate) async fn decide(&self, r: &str, key: &str, decision: &str, comment: &str) -> (StatusCode, Value) {
        self.send("POST", &format!("/api/v1/changes/{r}/approvals"), key, Some(json!({ "decision": decision, "comment": comment }))).await
    }
}

pub(crate) fn normal_change(title: &str, services: &[&str], start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    json!({
        "title": title, "description": "Firmware 17.3 on the core and the apps behind it", "type": "normal", "risk": 2,
        "impact": 2, "urgency": 3, "services": services, "planned_start": ts(start), "planned_end": ts(end),
        "implementation_plan": "Upgrade in order", "backout_plan": "Roll back to 17.2", "test_plan": "Smoke tests",
    })
}

fn missing(doc: &Value) -> String {
    doc["missing"].as_array().map(|m| m.iter().map(|v| v.as_str().unwrap_or("").to_string()).collect::<Vec<_>>().join(" | ")).unwrap_or_default()
}

#[tokio::test]
async fn a_normal_change_over_three_suppliers_is_approved_scheduled_and_implemented_in_dependency_order() {
    let h = change_hub().await;
    let mut events = h.hub.subscribe("change.#").await;
    let now = Utc::now();
    let (start, end) = (now - Duration::minutes(10), now + Duration::hours(3));
    let r = h.raise(normal_change("Core firmware upgrade", &["network", "email", "payroll"], start, end)).await;
    assert!(r.starts_with("CHG-"), "{r}");
    let doc = h.get(&format!("/api/v1/changes/{r}")).await;
    assert_eq!((doc["status"].as_str(), doc["legs"].as_array().unwrap().len()), (Some("draft"), 0));

    // Submitted: one leg per supplier that routing gives its services.
    let (code, doc) = h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "assess" })).await;
    assert_eq!(code, StatusCode::OK, "{doc}");
    let mut suppliers: Vec<&str> = doc["legs"].as_array().unwrap().iter().map(|l| l["supplier"].as_str().unwrap()).collect();
    suppliers.sort();
    let mut want = vec![APPS, SUPPLIER, PAYROLL];
    want.sort();
    assert_eq!(suppliers, want);
    assert!(doc["legs"].as_array().unwrap().iter().all(|l| l["state"] == "proposed"));

    // The desk may not authorise.
    let (code, _) = h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "authorize" })).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    h.move_to(&r, "authorize").await;

    // Scheduling waits for the CAB and the suppliers, and says so.
    let (code, doc) = h.patch(&r, &h.cm, json!({ "status": "scheduled" })).await;
    assert_eq!(code, StatusCode::CONFLICT, "{doc}");
    let m = missing(&doc);
    assert!(m.contains("1 more integrator approval"), "{m}");
    for s in [SUPPLIER, APPS, PAYROLL] {
        assert!(m.contains(&format!("supplier {s}'s approval")), "{m}");
        assert!(m.contains(&format!("supplier {s}'s leg is proposed, it must be scheduled")), "{m}");
    }
    let (code, _) = h.decide(&r, &h.cm, "approve", "CAB 5 Dec: go").await;
    assert_eq!(code, StatusCode::CREATED);
    // The network and the applications in the first hour, payroll in the second.
    let hour = |n: i32| ts(start + Duration::hours(n.into()));
    for (s, key, from, to) in [(SUPPLIER, &h.network, 0, 1), (APPS, &h.apps, 0, 1), (PAYROLL, &h.payroll, 1, 2)] {
        let (code, doc) = h.decide(&r, key, "approve", "fine by us").await;
        assert_eq!(code, StatusCode::CREATED, "{doc}");
        let (code, doc) = h.leg(&r, s, key, json!({ "state": "scheduled", "planned_start": hour(from), "planned_end": hour(to), "native_number": format!("{s}-CHG1") })).await;
        assert_eq!(code, StatusCode::OK, "{doc}");
    }
    assert_eq!(h.get(&format!("/api/v1/changes/{r}")).await["approval"]["state"], "approved");
    // Payroll goes after the network.
    let (code, doc) = h.leg(&r, PAYROLL, &h.cm, json!({ "depends_on": [SUPPLIER] })).await;
    assert_eq!(code, StatusCode::OK, "{doc}");
    h.move_to(&r, "scheduled").await;

    // Implementation needs every leg ready.
    let (code, doc) = h.patch(&r, &h.cm, json!({ "status": "implement" })).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(missing(&doc).contains(&format!("supplier {APPS}'s leg is scheduled, it must be ready")), "{doc}");
    for (s, key) in [(SUPPLIER, &h.network), (APPS, &h.apps), (PAYROLL, &h.payroll)] {
        assert_eq!(h.leg(&r, s, key, json!({ "state": "ready" })).await.0, StatusCode::OK);
    }
    h.move_to(&r, "implement").await;

    // In dependency order: payroll may not start before the network succeeded.
    let (code, doc) = h.leg(&r, PAYROLL, &h.payroll, json!({ "state": "in_progress" })).await;
    assert_eq!(code, StatusCode::CONFLICT, "{doc}");
    assert!(doc["detail"].as_str().unwrap().contains(&format!("supplier {SUPPLIER}'s leg has not succeeded")), "{doc}");
    for (s, key, end_state) in [(SUPPLIER, &h.network, "succeeded"), (PAYROLL, &h.payroll, "succeeded"), (APPS, &h.apps, "succeeded_with_issues")] {
        assert_eq!(h.leg(&r, s, key, json!({ "state": "in_progress" })).await.0, StatusCode::OK);
        assert_eq!(h.leg(&r, s, key, json!({ "state": end_state })).await.0, StatusCode::OK);
    }
    let doc = h.move_to(&r, "review").await;
    assert_eq!(doc["outcome"], "successful_with_issues");
    assert!(doc["actual_start"].is_string() && doc["actual_end"].is_string());
    let doc = h.move_to(&r, "closed").await;
    assert!(doc["closed_at"].is_string());

    // The log says who decided what, and the bus carried every transition.
    let history = h.get(&format!("/api/v1/changes/{r}/history")).await;
    let approvals: Vec<&Value> = history["events"].as_array().unwrap().iter().filter(|e| e["type"] == "change.approval").collect();
    assert_eq!(approvals.len(), 4);
    assert!(approvals.iter().any(|e| e["data"]["by"]["kind"] == "integrator" && e["data"]["comment"] == "CAB 5 Dec: go"));
    let seen = events.drain(std::time::Duration::from_millis(1500)).await;
    let moves: Vec<String> =
        seen.iter().filter(|(k, e)| k == "change.status_changed" && e["subject"] == r.as_str()).map(|(_, e)| e["data"]["to"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(moves, ["assess", "authorize", "scheduled", "implement", "review", "closed"]);
    h.hub.finish().await;
}

#[tokio::test]
async fn a_rejected_change_ends_with_its_legs_cancelled_and_suppliers_see_only_their_changes() {
    let h = change_hub().await;
    let now = Utc::now();
    let r = h.raise(normal_change("New firewall rule", &["network"], now + Duration::days(2), now + Duration::days(2) + Duration::hours(1))).await;
    let other = h.raise(normal_change("Mail relay patch", &["email"], now + Duration::days(2), now + Duration::days(2) + Duration::hours(1))).await;
    for c in [&r, &other] {
        assert_eq!(h.patch(c, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    }
    // A supplier sees the change it holds a leg of, and nothing of the other.
    let listed: Value = h.hub.get_as("/api/v1/changes", &h.network).await.json().await.unwrap();
    let refs: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|c| c["ref"].as_str().unwrap()).collect();
    assert_eq!(refs, [r.as_str()]);
    assert_eq!(h.hub.get_as(&format!("/api/v1/changes/{other}"), &h.network).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.decide(&other, &h.network, "approve", "").await.0, StatusCode::NOT_FOUND);
    // A supplier does not approve for the integrator; a manager key decides nothing.
    assert_eq!(h.decide(&r, &h.hub.keys.manager, "approve", "").await.0, StatusCode::FORBIDDEN);
    // A rejection needs a reason, and ends the change.
    assert_eq!(h.decide(&r, &h.cm, "reject", " ").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, doc) = h.decide(&r, &h.cm, "reject", "No rollback tested").await;
    assert_eq!(code, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["status"], "rejected");
    assert_eq!(doc["approval"]["state"], "rejected");
    assert!(doc["legs"].as_array().unwrap().iter().all(|l| l["state"] == "cancelled"), "{doc}");
    let (code, doc) = h.patch(&r, &h.cm, json!({ "status": "authorize" })).await;
    assert_eq!(code, StatusCode::CONFLICT, "{doc}");
    h.hub.finish().await;
}

#[tokio::test]
async fn a_failed_leg_makes_the_change_unsuccessful_and_asks_the_legs_that_did_their_part_to_back_out() {
    let h = change_hub().await;
    let now = Utc::now();
    let (start, end) = (now - Duration::minutes(5), now + Duration::hours(2));
    let r = h.raise(normal_change("Storage firmware", &["network", "email", "payroll"], start, end)).await;
    assert_eq!(h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    h.move_to(&r, "authorize").await;
    assert_eq!(h.decide(&r, &h.cm, "approve", "go").await.0, StatusCode::CREATED);
    for (s, key) in [(SUPPLIER, &h.network), (APPS, &h.apps), (PAYROLL, &h.payroll)] {
        assert_eq!(h.decide(&r, key, "approve", "ok").await.0, StatusCode::CREATED);
        assert_eq!(h.leg(&r, s, key, json!({ "state": "ready" })).await.0, StatusCode::OK);
    }
    h.move_to(&r, "scheduled").await;
    h.move_to(&r, "implement").await;
    let mut events = h.hub.subscribe("change.backout_requested").await;
    for (s, key) in [(SUPPLIER, &h.network), (APPS, &h.apps)] {
        assert_eq!(h.leg(&r, s, key, json!({ "state": "in_progress" })).await.0, StatusCode::OK);
    }
    assert_eq!(h.leg(&r, SUPPLIER, &h.network, json!({ "state": "succeeded" })).await.0, StatusCode::OK);
    // The review waits for every leg to end.
    let (code, doc) = h.patch(&r, &h.cm, json!({ "status": "review" })).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(missing(&doc).contains(&format!("supplier {APPS}'s leg is in_progress, not yet final")), "{doc}");
    let (code, doc) = h.leg(&r, APPS, &h.apps, json!({ "state": "failed" })).await;
    assert_eq!(code, StatusCode::OK, "{doc}");
    let asked: Vec<String> = events.drain(std::time::Duration::from_millis(1500)).await.into_iter().map(|(_, e)| e["data"]["supplier"].as_str().unwrap().to_string()).collect();
    assert_eq!(asked, [SUPPLIER], "only the leg that did its part backs out");
    let leg = |doc: &Value, s: &str| doc["legs"].as_array().unwrap().iter().find(|l| l["supplier"] == s).cloned().unwrap();
    assert!(leg(&doc, SUPPLIER)["backout_requested_at"].is_string());
    assert!(leg(&doc, PAYROLL)["backout_requested_at"].is_null());
    assert_eq!(h.leg(&r, SUPPLIER, &h.network, json!({ "state": "backed_out" })).await.0, StatusCode::OK);
    assert_eq!(h.leg(&r, PAYROLL, &h.payroll, json!({ "state": "cancelled" })).await.0, StatusCode::OK);
    let doc = h.move_to(&r, "review").await;
    assert_eq!(doc["outcome"], "unsuccessful");
    h.hub.finish().await;
}

#[tokio::test]
async fn changes_on_one_service_in_intersecting_windows_conflict_until_acknowledged_and_back_to_back_ones_do_not() {
    let h = change_hub().await;
    let t0 = (Utc::now() + Duration::days(3)).trunc_subsecs(0);
    let first = h.raise(normal_change("Switch stack A", &["network"], t0, t0 + Duration::hours(2))).await;
    let second = h.raise(normal_change("Switch stack B", &["network"], t0 + Duration::hours(1), t0 + Duration::hours(3))).await;
    let third = h.raise(normal_change("Switch stack C", &["network"], t0 + Duration::hours(2), t0 + Duration::hours(4))).await;
    for c in [&first, &second, &third] {
        assert_eq!(h.patch(c, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    }
    let conflicts = |v: &Value| v["conflicts"].as_array().unwrap().clone();
    let of_first = conflicts(&h.get(&format!("/api/v1/changes/{first}/conflicts")).await);
    assert_eq!(of_first.len(), 1, "{of_first:?}");
    assert_eq!(of_first[0]["kind"], "overlap");
    assert_eq!(of_first[0]["other"], second.as_str());
    assert_eq!(of_first[0]["subject"], "service network");
    assert_eq!(of_first[0]["period"]["start"], siam_hub::domain::time::rfc3339(&(t0 + Duration::hours(1))));
    // Back to back (first ends when third starts) is no conflict; second overlaps both.
    let of_third = conflicts(&h.get(&format!("/api/v1/changes/{third}/conflicts")).await);
    assert_eq!(of_third.iter().map(|c| c["other"].as_str().unwrap()).collect::<Vec<_>>(), [second.as_str()]);
    assert_eq!(conflicts(&h.get(&format!("/api/v1/changes/{second}/conflicts")).await).len(), 2);

    // Moving the second change away clears the conflict on both sides.
    let (code, doc) =
        h.patch(&second, &h.hub.keys.service_desk, json!({ "planned_start": ts(t0 + Duration::days(1)), "planned_end": ts(t0 + Duration::days(1) + Duration::hours(1)) })).await;
    assert_eq!(code, StatusCode::OK, "{doc}");
    assert!(conflicts(&doc).is_empty(), "{doc}");
    assert!(conflicts(&h.get(&format!("/api/v1/changes/{first}/conflicts")).await).is_empty());

    // An acknowledged conflict stays listed, with who and why.
    let (code, _) = h.patch(&third, &h.hub.keys.service_desk, json!({ "planned_start": ts(t0 + Duration::minutes(90)) })).await;
    assert_eq!(code, StatusCode::OK);
    let found = conflicts(&h.get(&format!("/api/v1/changes/{third}/conflicts")).await);
    let key = found[0]["key"].as_str().unwrap().to_string();
    let path = format!("/api/v1/changes/{third}/conflicts/acknowledge");
    let ack = |key: &str| Some(json!({ "key": key, "reason": "different stacks" }));
    assert_eq!(h.send("POST", &path, &h.hub.keys.service_desk, ack(&key)).await.0, StatusCode::FORBIDDEN);
    let (code, doc) = h.send("POST", &path, &h.cm, ack(&key)).await;
    assert_eq!(code, StatusCode::OK, "{doc}");
    assert_eq!(conflicts(&doc)[0]["acknowledged"]["reason"], "different stacks");
    assert_eq!(h.send("POST", &path, &h.cm, ack("overlap:CHG-999999:service network")).await.0, StatusCode::NOT_FOUND);
    h.hub.finish().await;
}

#[tokio::test]
async fn a_hard_freeze_blocks_implementation_and_only_an_emergency_change_may_override_it() {
    let h = change_hub().await;
    // The freeze of the test configuration starts in 30 days; this window falls in it.
    let start = Utc::now() + Duration::days(30) + Duration::hours(2);
    let normal = h.raise(normal_change("Payroll DB patch", &["payroll"], start, start + Duration::hours(1))).await;
    let doc = h.get(&format!("/api/v1/changes/{normal}/conflicts")).await;
    let freeze = doc["conflicts"].as_array().unwrap().iter().find(|c| c["kind"] == "freeze").cloned().expect("a freeze conflict");
    assert_eq!(freeze["hard"], true);
    let key = freeze["key"].as_str().unwrap();
    let (code, doc) = h.send("POST", &format!("/api/v1/changes/{normal}/conflicts/acknowledge"), &h.cm, Some(json!({ "key": key, "reason": "urgent" }))).await;
    assert_eq!(code, StatusCode::CONFLICT, "{doc}");
    assert!(doc["detail"].as_str().unwrap().contains("only an emergency change"), "{doc}");

    // An emergency change on the same window: the freeze blocks implementation until overridden.
    let mut body = normal_change("Payroll DB emergency fix", &["payroll"], start, start + Duration::hours(1));
    body["type"] = json!("emergency");
    let emergency = h.raise(body).await;
    assert_eq!(h.patch(&emergency, &h.hub.keys.service_desk, json!({ "status": "authorize" })).await.0, StatusCode::OK);
    assert_eq!(h.decide(&emergency, &h.cm, "approve", "ECAB").await.0, StatusCode::CREATED);
    assert_eq!(h.decide(&emergency, &h.payroll, "approve", "ok").await.0, StatusCode::CREATED);
    assert_eq!(h.leg(&emergency, PAYROLL, &h.payroll, json!({ "state": "ready" })).await.0, StatusCode::OK);
    h.move_to(&emergency, "scheduled").await;
    let (code, doc) = h.patch(&emergency, &h.cm, json!({ "status": "implement" })).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let m = missing(&doc);
    assert!(m.contains("open conflict: freeze on service payroll"), "{m}");
    assert!(m.contains("the window opens at"), "{m}");
    let conflicts = h.get(&format!("/api/v1/changes/{emergency}/conflicts")).await;
    let key = conflicts["conflicts"].as_array().unwrap().iter().find(|c| c["kind"] == "freeze").unwrap()["key"].as_str().unwrap().to_string();
    let (code, doc) =
        h.send("POST", &format!("/api/v1/changes/{emergency}/conflicts/acknowledge"), &h.cm, Some(json!({ "key": key, "reason": "payroll cannot run without it" }))).await;
    assert_eq!(code, StatusCode::OK, "{doc}");
    let (code, doc) = h.patch(&emergency, &h.cm, json!({ "status": "implement" })).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(!missing(&doc).contains("freeze"), "the override holds: {doc}");
    h.hub.finish().await;
}

#[tokio::test]
async fn an_edit_of_the_window_after_approval_voids_it_and_sends_the_change_back_to_assess() {
    let h = change_hub().await;
    let start = Utc::now() + Duration::days(5);
    let r = h.raise(normal_change("Core router OS", &["network"], start, start + Duration::hours(1))).await;
    assert_eq!(h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    h.move_to(&r, "authorize").await;
    assert_eq!(h.decide(&r, &h.cm, "approve", "go").await.0, StatusCode::CREATED);
    assert_eq!(h.decide(&r, &h.network, "approve", "ok").await.0, StatusCode::CREATED);
    assert_eq!(h.get(&format!("/api/v1/changes/{r}")).await["approval"]["state"], "approved");
    // A new title voids nothing; a new window voids both approvals.
    let (code, doc) = h.patch(&r, &h.hub.keys.service_desk, json!({ "title": "Core router OS 17.3" })).await;
    assert_eq!((code, doc["status"].as_str()), (StatusCode::OK, Some("authorize")));
    let (code, doc) = h.patch(&r, &h.hub.keys.service_desk, json!({ "planned_end": ts(start + Duration::hours(4)) })).await;
    assert_eq!(code, StatusCode::OK, "{doc}");
    assert_eq!(doc["status"], "assess");
    assert_eq!(doc["approval"]["state"], "pending");
    assert!(doc["approval"]["decisions"].as_array().unwrap().is_empty());
    // Bad edits are refused whole, with nothing changed.
    let (code, _) = h.patch(&r, &h.hub.keys.service_desk, json!({ "planned_end": ts(start - Duration::hours(1)) })).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, _) = h.patch(&r, &h.hub.keys.service_desk, json!({ "risk": 9 })).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, _) = h.patch(&r, &h.hub.keys.service_desk, json!({ "colour": "red" })).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, doc) = h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "implement" })).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{doc}");
    let (code, doc) = h.patch(&r, &h.cm, json!({ "status": "closed" })).await;
    assert_eq!(code, StatusCode::CONFLICT, "{doc}");
    assert!(doc["detail"].as_str().unwrap().contains("cannot move from assess to closed"), "{doc}");
    let history = h.get(&format!("/api/v1/changes/{r}/history")).await;
    assert!(history["events"].as_array().unwrap().iter().any(|e| e["type"] == "change.approvals_voided" && e["data"]["voided"] == 2), "{history}");
    h.hub.finish().await;
}

#[tokio::test]
async fn a_standard_change_from_a_template_is_pre_approved_and_a_retried_create_makes_one_change() {
    let h = change_hub().await;
    let start = Utc::now() + Duration::days(1);
    let body = json!({ "template": "cert-renewal", "planned_start": ts(start), "planned_end": ts(start + Duration::minutes(30)) });
    let send = || h.hub.http.post(h.hub.url("/api/v1/changes")).bearer_auth(&h.cm).header("Idempotency-Key", "cert-2026").json(&body).send();
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(again.json::<Value>().await.unwrap()["ref"], first["ref"]);
    assert_eq!((first["type"].as_str(), first["risk"].as_i64(), first["title"].as_str()), (Some("standard"), Some(4), Some("Renew the mail gateway's TLS certificate")));
    assert_eq!(first["approval"]["state"], "pre_approved");
    let r = first["ref"].as_str().unwrap();
    // Straight to scheduled: no assessment, no CAB.
    let doc = h.move_to(r, "scheduled").await;
    assert_eq!(doc["legs"][0]["supplier"], APPS);
    // A standard change needs its template; an unknown template is named.
    let (code, doc) = h.send("POST", "/api/v1/changes", &h.hub.keys.service_desk, Some(json!({ "title": "x", "type": "standard", "services": ["email"] }))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{doc}");
    let (code, doc) = h.send("POST", "/api/v1/changes", &h.hub.keys.service_desk, Some(json!({ "template": "nope" }))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(doc["detail"].as_str().unwrap().contains("cert-renewal"), "{doc}");
    let (code, _) = h.send("POST", "/api/v1/changes", &h.hub.keys.service_desk, Some(json!({ "title": "x", "services": ["printing"] }))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, _) = h.send("POST", "/api/v1/changes", &h.hub.keys.manager, Some(json!({ "title": "x" }))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    h.hub.finish().await;
}

#[tokio::test]
async fn the_forward_schedule_reads_as_json_and_as_icalendar() {
    let h = change_hub().await;
    let t0 = Utc::now() + Duration::days(2);
    let a = h.raise(normal_change("Switch stack A", &["network"], t0, t0 + Duration::hours(2))).await;
    let b = h.raise(normal_change("Mail relay", &["email"], t0 + Duration::days(1), t0 + Duration::days(1) + Duration::hours(1))).await;
    let draft = h.raise(normal_change("Not submitted", &["network"], t0, t0 + Duration::hours(1))).await;
    for c in [&a, &b] {
        assert_eq!(h.patch(c, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    }
    let from = (Utc::now()).format("%Y-%m-%d").to_string();
    let to = (Utc::now() + Duration::days(40)).format("%Y-%m-%d").to_string();
    let cal = h.get(&format!("/api/v1/changes/calendar?from={from}&to={to}")).await;
    let refs: Vec<&str> = cal["changes"].as_array().unwrap().iter().map(|c| c["ref"].as_str().unwrap()).collect();
    assert_eq!(refs, [a.as_str(), b.as_str()], "by start, drafts left out ({draft})");
    assert_eq!(cal["freezes"][0]["name"], "payroll-run");
    let only_mail = h.get(&format!("/api/v1/changes/calendar?from={from}&to={to}&service=email")).await;
    assert_eq!(only_mail["changes"].as_array().unwrap().len(), 1);

    let resp = h.hub.get_as(&format!("/api/v1/changes/calendar?from={from}&to={to}&format=ics"), &h.cm).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/calendar"));
    let text = resp.text().await.unwrap();
    let parsed: icalendar::Calendar = text.parse().expect("an RFC 5545 calendar");
    use icalendar::Component;
    let events: Vec<&icalendar::Event> = parsed.components.iter().filter_map(|c| c.as_event()).collect();
    assert_eq!(events.len(), 3, "two changes and the freeze: {text}");
    let first = events.iter().find(|e| e.get_summary().is_some_and(|s| s.starts_with(&a))).expect("change A");
    assert_eq!(first.get_summary(), Some(format!("{a} Switch stack A").as_str()));
    let start = match first.get_start() {
        Some(icalendar::DatePerhapsTime::DateTime(icalendar::CalendarDateTime::Utc(t))) => t,
        other => panic!("start {other:?}"),
    };
    assert_eq!(start.timestamp(), t0.timestamp());
    assert!(first.get_uid().is_some_and(|u| u.starts_with(&a)));

    let (code, _) = h.send("GET", &format!("/api/v1/changes/calendar?from={to}&to={from}"), &h.cm, None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = h.send("GET", "/api/v1/changes/calendar?format=pdf", &h.cm, None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    h.hub.finish().await;
}

#[tokio::test]
async fn an_incident_names_the_change_that_caused_or_fixed_it_and_the_change_lists_it() {
    let h = change_hub().await;
    let now = Utc::now();
    let chg = h.raise(normal_change("Core switch firmware", &["network", "email"], now + Duration::days(1), now + Duration::days(1) + Duration::hours(2))).await;
    let fix = h.raise(normal_change("Roll the firmware back", &["network"], now + Duration::days(3), now + Duration::days(3) + Duration::hours(1))).await;
    let r = h.hub.raise(&network_incident("Switch reboots since the upgrade")).await["ref"].as_str().unwrap().to_string();
    // Once the supplier holds it, nothing else moves the incident's version meanwhile.
    let inc = h.hub.settle(&r).await;

    // Only a change reference, and only one that exists.
    let resp = h.hub.patch(&r, inc["version"].as_i64().unwrap(), &json!({ "caused_by_change": "INC-000001" })).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = h.hub.patch(&r, inc["version"].as_i64().unwrap(), &json!({ "caused_by_change": "CHG-999999" })).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = resp.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap_or("").contains("CHG-999999"), "{problem}");

    let resp = h.hub.patch(&r, inc["version"].as_i64().unwrap(), &json!({ "caused_by_change": chg })).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["caused_by_change"], chg.as_str());
    assert!(doc.get("fixed_by_change").is_none(), "{doc}");
    let linked = h.get(&format!("/api/v1/changes/{chg}")).await;
    assert_eq!(linked["incidents"], json!([{ "ref": r, "title": "Switch reboots since the upgrade", "status": doc["status"], "relation": "caused" }]));
    // Each supplier on the change sees the linked incidents it may see itself, no others.
    assert_eq!(h.patch(&chg, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    let path = format!("/api/v1/changes/{chg}");
    let by_network: Value = h.hub.get_as(&path, &h.network).await.json().await.unwrap();
    assert_eq!(by_network["incidents"][0]["ref"], r.as_str());
    let by_apps: Value = h.hub.get_as(&path, &h.apps).await.json().await.unwrap();
    assert_eq!(by_apps["incidents"], json!([]), "the apps supplier holds a leg of the change, not the incident");

    // The fix is named, the cause unnamed; the incident's history says who did both.
    let resp = h.hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({ "caused_by_change": null, "fixed_by_change": fix })).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc.get("caused_by_change").is_none(), "{doc}");
    assert_eq!(doc["fixed_by_change"], fix.as_str());
    assert_eq!(h.get(&format!("/api/v1/changes/{chg}")).await["incidents"], json!([]));
    assert_eq!(h.get(&format!("/api/v1/changes/{fix}")).await["incidents"][0]["relation"], "fixed");
    let history = h.hub.history(&r).await;
    let updates: Vec<&Value> = history.iter().filter(|e| e["type"] == "incident.updated").map(|e| &e["data"]["changes"]).collect();
    assert_eq!(updates, [&json!({ "caused_by_change": chg }), &json!({ "caused_by_change": null, "fixed_by_change": fix })]);
    h.hub.finish().await;
}

#[tokio::test]
async fn files_on_a_change_are_kept_once_read_back_whole_and_refused_once_the_change_is_closed() {
    let h = change_hub().await;
    let now = Utc::now();
    let r = h.raise(normal_change("Switch stack replacement", &["network"], now + Duration::days(4), now + Duration::days(4) + Duration::hours(2))).await;
    assert_eq!(h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    let upload = |key: &str, name: &str, body: Vec<u8>| {
        h.hub
            .http
            .post(h.hub.url(&format!("/api/v1/changes/{r}/attachments")))
            .bearer_auth(key.to_string())
            .query(&[("file_name", name)])
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    let plan = b"1. drain the stack\n2. swap\n3. verify LACP".repeat(40_000);
    let resp = upload(&h.cm, "cutover-plan.txt", plan.clone()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let file: Value = resp.json().await.unwrap();
    // The supplier holding a leg adds its evidence; the same content again is the one file.
    assert_eq!(upload(&h.network, "pre-checks.txt", b"all green".to_vec()).await.unwrap().status(), StatusCode::CREATED);
    let again = upload(&h.hub.keys.service_desk, "copy-of-plan.txt", plan.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], file["id"]);
    // A supplier without a leg neither reads nor adds; a manager only reads.
    assert_eq!(upload(&h.apps, "x.txt", b"x".to_vec()).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(upload(&h.hub.keys.manager, "x.txt", b"x".to_vec()).await.unwrap().status(), StatusCode::FORBIDDEN);
    let doc = h.get(&format!("/api/v1/changes/{r}")).await;
    let names: Vec<&str> = doc["attachments"].as_array().unwrap().iter().map(|a| a["file_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cutover-plan.txt", "pre-checks.txt"]);
    // The download is the file as sent, byte for byte, whoever may read the change.
    let got = h.hub.get_as(file["href"].as_str().unwrap(), &h.network).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert!(got.headers()["content-disposition"].to_str().unwrap().contains("cutover-plan.txt"));
    assert_eq!(got.bytes().await.unwrap().as_ref(), plan.as_slice());
    assert_eq!(h.hub.get_as(file["href"].as_str().unwrap(), &h.apps).await.status(), StatusCode::NOT_FOUND);
    let history = h.get(&format!("/api/v1/changes/{r}/history")).await;
    assert_eq!(history["events"].as_array().unwrap().iter().filter(|e| e["type"] == "change.attachment_added").count(), 2);
    // A closed change takes no new files; its files stay readable.
    h.move_to(&r, "cancelled").await;
    assert_eq!(upload(&h.cm, "late.txt", b"too late".to_vec()).await.unwrap().status(), StatusCode::CONFLICT);
    assert_eq!(h.hub.get_as(file["href"].as_str().unwrap(), &h.cm).await.status(), StatusCode::OK);
    h.hub.finish().await;
}
