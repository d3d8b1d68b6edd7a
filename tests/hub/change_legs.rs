//! Change legs in the suppliers' own systems: one change raised at the hub becomes a change in
//! ServiceNow, in BMC Remedy and in a TMF655 partner's tool; each supplier approves, schedules
//! and implements its part there, and the hub's record follows, in dependency order. A failed
//! leg's back-out request reaches the other suppliers' changes, and a create whose answer was
//! lost makes no second supplier change.

use crate::changes::{normal_change, ts, ChangeHub};
use crate::helpers::*;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use siam_hub::adapters::change::mapping_for;
use siam_hub::config::{RoutingRule, SecretRef, Settings};
use siam_hub::domain::change::{Change, ChangeStatus};
use siam_hub::sim::remedy::{RemedySim, SimConfig as RemedyConfig, WebhookTarget as RemedyHook};
use siam_hub::sim::servicenow::Fault;
use siam_hub::sim::tmf621::{SimConfig as TmfConfig, Tmf621Sim};

const HOSTING: &str = "bmc-hosting";
const APPS: &str = "tmf-apps";

const CAB: &str = r#"
[[services]]
name = "hosting"
[[services]]
name = "apps"

[[changes.cab]]
type = "normal"
integrator_approvals = 1
every_supplier = true
"#;

struct Estate {
    h: ChangeHub,
    remedy: RemedySim,
    tmf: Tmf621Sim,
}

/// The network on ServiceNow, hosting on Remedy, the applications with a TMF621/TMF655 partner.
async fn estate() -> Estate {
    let remedy = RemedySim::new(RemedyConfig { user: SIM_USER.into(), password: "remedy-password".into(), ..RemedyConfig::default() });
    remedy.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let listener = Some((APPS.to_string(), "tmf-listener-secret-01".to_string()));
    let tmf = Tmf621Sim::new(TmfConfig { user: SIM_USER.into(), password: SIM_PASSWORD.into(), listener_auth: listener, ..TmfConfig::default() });
    tmf.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let mut extra = Settings::from_toml(&format!(
        r#"
        [[suppliers]]
        id = "{HOSTING}"
        name = "Hosting (Remedy)"
        system = "remedy"
        base_url = "{rurl}"
        username = "{SIM_USER}"
        webhook_auth = "basic"
        poll_interval_secs = 0
        timeout_secs = 2
        rate_per_sec = 50
        [suppliers.remedy]
        support_company = "Calbro Services"
        support_organization = "IT Support"
        support_group = "Hosting"

        [[suppliers]]
        id = "{APPS}"
        name = "Applications (TMF)"
        system = "tmf621"
        base_url = "{turl}"
        username = "{SIM_USER}"
        webhook_auth = "basic"
        poll_interval_secs = 0
        timeout_secs = 2
        rate_per_sec = 50
        "#,
        rurl = remedy.base_url().unwrap(),
        turl = tmf.base_url().unwrap(),
    ))
    .unwrap();
    let mut suppliers = std::mem::take(&mut extra.suppliers);
    suppliers[0].password = Some(SecretRef::Value(SecretString::from("remedy-password".to_string())));
    suppliers[0].webhook_secret = Some(SecretRef::Value(SecretString::from("remedy-webhook-secret-01".to_string())));
    suppliers[1].password = Some(SecretRef::Value(SecretString::from(SIM_PASSWORD.to_string())));
    suppliers[1].webhook_secret = Some(SecretRef::Value(SecretString::from("tmf-listener-secret-01".to_string())));
    let rules = [("hosting", HOSTING), ("apps", APPS)].map(|(s, id)| RoutingRule { service: Some(s.into()), ci: None, category: None, supplier: id.into() }).to_vec();
    let hub = TestHub::spawn_with_suppliers(Options { extra_toml: CAB.into(), ..Options::default() }, suppliers, rules).await;
    remedy.set_webhook(Some(RemedyHook { url: hub.url(&format!("/webhooks/{HOSTING}")), username: HOSTING.into(), password: "remedy-webhook-secret-01".into() }));
    let cm = hub.key("change_manager", None).await;
    let network = hub.keys.supplier.clone();
    let hosting = hub.key("supplier", Some(HOSTING)).await;
    let apps = hub.key("supplier", Some(APPS)).await;
    Estate { h: ChangeHub { hub, cm, network, apps, payroll: hosting }, remedy, tmf }
}

/// The supplier's changes carrying the hub reference `r`, as the system's change mapping reads them.
fn carrying(system: &str, records: Vec<Value>, r: &str) -> Vec<(Value, Change)> {
    let mapping = mapping_for(system).unwrap();
    records
        .into_iter()
        .filter_map(|v| {
            let c = mapping.read(&v).ok()?;
            (c.reference.as_ref().map(|x| x.as_str()) == Some(r)).then_some((v, c))
        })
        .collect()
}

impl Estate {
    /// Each system's change for `r`, waiting until every one exists: (system, native id, read).
    fn natives(&self, r: &str) -> Vec<(&'static str, Vec<(Value, Change)>)> {
        vec![
            ("servicenow", carrying("servicenow", self.h.hub.sim.changes(), r)),
            ("remedy", carrying("remedy", self.remedy.changes(), r)),
            ("tmf655", carrying("tmf655", self.tmf.changes(), r)),
        ]
    }

    /// Waits until every supplier's change for `r` reads `status`; returns their native ids.
    async fn wait_native(&self, r: &str, status: ChangeStatus) -> [String; 3] {
        let ids = wait_for(&format!("every supplier's change for {r} at {status}"), || {
            let natives = self.natives(r);
            let all: Option<Vec<String>> =
                natives.iter().map(|(_, list)| list.first().filter(|(_, c)| c.status == Some(status)).map(|(_, c)| c.legs[0].native_id.clone())).collect();
            all
        })
        .await;
        for (system, list) in self.natives(r) {
            assert_eq!(list.len(), 1, "{system} holds exactly one change for {r}");
        }
        [ids[0].clone(), ids[1].clone(), ids[2].clone()]
    }

    async fn reconcile(&self, supplier: &str) {
        let resp = self.h.hub.post(&format!("/api/v1/admin/suppliers/{supplier}/reconcile"), &self.h.hub.keys.admin, &json!({})).await;
        assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);
    }

    /// Sweeps `supplier` until the change document satisfies `cond`.
    async fn wait_leg(&self, r: &str, supplier: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            self.reconcile(supplier).await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let doc = self.h.get(&format!("/api/v1/changes/{r}")).await;
            if let Some(l) = leg_of(&doc, supplier) {
                if cond(&l) {
                    return doc;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: {}", leg_of(&doc, supplier).unwrap_or_default());
        }
    }
}

fn leg_of(doc: &Value, supplier: &str) -> Option<Value> {
    doc["legs"].as_array()?.iter().find(|l| l["supplier"] == supplier).cloned()
}

fn sn_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn remedy_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn a_change_over_three_systems_is_approved_scheduled_and_implemented_in_each_suppliers_own_tool() {
    let e = estate().await;
    let h = &e.h;
    let now = Utc::now().trunc_subsecs(0);
    let (start, end) = (now - Duration::minutes(10), now + Duration::hours(3));
    let r = h.raise(normal_change("Core firmware upgrade", &["network", "hosting", "apps"], start, end)).await;

    // Submitted: a change in each supplier's own system, in assessment, carrying the reference.
    assert_eq!(h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    let [sn, crq, tmf] = e.wait_native(&r, ChangeStatus::Assess).await;
    let doc = wait_for_doc(h, &r, |d| [SUPPLIER, HOSTING, APPS].iter().all(|s| leg_of(d, s).is_some_and(|l| l["native_id"].is_string()))).await;
    for s in [SUPPLIER, HOSTING, APPS] {
        let l = leg_of(&doc, s).unwrap();
        assert!(l["native_id"].is_string() && l["native_number"].is_string(), "{l}");
    }
    let sn_read = &e.natives(&r)[0].1[0].1;
    assert_eq!((sn_read.title.as_str(), sn_read.planned_start, sn_read.planned_end), ("Core firmware upgrade", Some(start), Some(end)));

    // Authorisation is asked of every supplier in its tool.
    h.move_to(&r, "authorize").await;
    e.wait_native(&r, ChangeStatus::Authorize).await;
    assert_eq!(h.decide(&r, &h.cm, "approve", "CAB 6 Dec: go").await.0, StatusCode::CREATED);

    // Each supplier approves and schedules its part in its own tool, in its own window.
    let hour = |n: i64| start + Duration::hours(n);
    e.h.hub.sim.agent_update_change(&sn, json!({ "approval": "approved", "state": "-2", "start_date": sn_time(hour(0)), "end_date": sn_time(hour(1)) })).unwrap();
    e.remedy
        .agent_update_change(&crq, json!({ "Change Request Status": "Scheduled", "Scheduled Start Date": remedy_time(hour(1)), "Scheduled End Date": remedy_time(hour(2)) }))
        .unwrap();
    e.tmf.agent_update_change(&tmf, json!({ "status": "approved", "plannedStartTime": ts(hour(0)), "plannedEndTime": ts(hour(1)) })).unwrap();
    for (s, from, to) in [(SUPPLIER, 0, 1), (HOSTING, 1, 2), (APPS, 0, 1)] {
        let doc = e.wait_leg(&r, s, &format!("{s}'s leg ready in its own window"), |l| l["state"] == "ready").await;
        let l = leg_of(&doc, s).unwrap();
        assert_eq!((l["planned_start"].as_str(), l["planned_end"].as_str()), (Some(ts_ms(hour(from)).as_str()), Some(ts_ms(hour(to)).as_str())), "{l}");
    }
    let doc = h.get(&format!("/api/v1/changes/{r}")).await;
    assert_eq!(doc["approval"]["state"], "approved", "{}", doc["approval"]);
    let history = h.get(&format!("/api/v1/changes/{r}/history")).await;
    let by_suppliers = history["events"].as_array().unwrap().iter().filter(|e| e["type"] == "change.approval" && e["data"]["by"]["kind"] == "supplier").count();
    assert_eq!(by_suppliers, 3, "each supplier's approval in its own tool counts as its approval");

    // Hosting goes after the network.
    assert_eq!(h.leg(&r, HOSTING, &h.cm, json!({ "depends_on": [SUPPLIER] })).await.0, StatusCode::OK);
    h.move_to(&r, "scheduled").await;
    h.move_to(&r, "implement").await;

    // Hosting starts too early in Remedy: the record keeps its leg waiting and says why.
    e.remedy.agent_update_change(&crq, json!({ "Change Request Status": "Implementation In Progress" })).unwrap();
    let doc = e.wait_leg(&r, HOSTING, "the early start refused", |l| l["last_error"].as_str().is_some_and(|m| m.contains("has not succeeded"))).await;
    assert_eq!(leg_of(&doc, HOSTING).unwrap()["state"], "ready");

    // The network implements and closes its part in ServiceNow; hosting's start then counts.
    e.h.hub.sim.agent_update_change(&sn, json!({ "state": "-1" })).unwrap();
    e.wait_leg(&r, SUPPLIER, "the network implementing", |l| l["state"] == "in_progress").await;
    e.h.hub.sim.agent_update_change(&sn, json!({ "state": "0", "close_code": "successful", "close_notes": "Upgraded" })).unwrap();
    e.wait_leg(&r, SUPPLIER, "the network done", |l| l["state"] == "succeeded").await;
    e.wait_leg(&r, HOSTING, "hosting implementing", |l| l["state"] == "in_progress").await;
    e.remedy.agent_update_change(&crq, json!({ "Change Request Status": "Completed", "Status Reason": "Successful" })).unwrap();
    e.wait_leg(&r, HOSTING, "hosting done", |l| l["state"] == "succeeded").await;
    e.tmf.agent_update_change(&tmf, json!({ "status": "inProgress" })).unwrap();
    e.tmf.agent_update_change(&tmf, json!({ "status": "completed" })).unwrap();
    e.wait_leg(&r, APPS, "the applications done", |l| l["state"] == "succeeded").await;

    let doc = h.move_to(&r, "review").await;
    assert_eq!(doc["outcome"], "successful");
    h.move_to(&r, "closed").await;
    // Each supplier's change is closed in its own tool.
    e.wait_native(&r, ChangeStatus::Closed).await;

    // A supplier reads its own leg whole, and of the others only how far they got.
    let all = h.get(&format!("/api/v1/changes/{r}/history")).await;
    let kinds = |h: &Value, s: &str| -> Vec<String> {
        h["events"].as_array().unwrap().iter().filter(|e| e["data"]["supplier"] == s).map(|e| e["type"].as_str().unwrap().to_string()).collect()
    };
    assert!(kinds(&all, HOSTING).contains(&"change.leg_refused".to_string()), "{all}");
    let theirs: Value = h.hub.get_as(&format!("/api/v1/changes/{r}/history"), &h.apps).await.json().await.unwrap();
    for s in [SUPPLIER, HOSTING] {
        let seen = kinds(&theirs, s);
        assert!(!seen.is_empty() && seen.iter().all(|k| k == "change.leg_opened" || k == "change.leg_updated"), "{s}: {seen:?}");
    }
    assert!(kinds(&theirs, APPS).contains(&"change.leg_linked".to_string()));
    let doc: Value = h.hub.get_as(&format!("/api/v1/changes/{r}"), &h.apps).await.json().await.unwrap();
    assert!(leg_of(&doc, SUPPLIER).unwrap().get("native_number").is_none(), "{doc}");
    assert!(leg_of(&doc, APPS).unwrap()["native_number"].is_string(), "{doc}");
    e.h.hub.finish().await;
}

fn ts_ms(t: DateTime<Utc>) -> String {
    siam_hub::domain::time::rfc3339(&t)
}

#[tokio::test]
async fn a_rejection_in_a_suppliers_tool_rejects_the_change_and_cancels_the_other_suppliers_changes() {
    let e = estate().await;
    let h = &e.h;
    let now = Utc::now().trunc_subsecs(0);
    let r = h.raise(normal_change("Storage array swap", &["network", "hosting", "apps"], now + Duration::days(3), now + Duration::days(3) + Duration::hours(2))).await;
    assert_eq!(h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    h.move_to(&r, "authorize").await;
    let [sn, _, _] = e.wait_native(&r, ChangeStatus::Authorize).await;
    e.h.hub.sim.agent_update_change(&sn, json!({ "approval": "rejected", "state": "-5" })).unwrap();
    let doc = e.wait_leg(&r, SUPPLIER, "the rejection read", |l| l["state"] == "cancelled").await;
    assert_eq!(doc["status"], "rejected");
    let history = h.get(&format!("/api/v1/changes/{r}/history")).await;
    let rejection = history["events"].as_array().unwrap().iter().find(|e| e["type"] == "change.approval").cloned().unwrap();
    assert_eq!((rejection["data"]["by"]["id"].as_str(), rejection["data"]["decision"].as_str()), (Some(SUPPLIER), Some("reject")), "{rejection}");
    // The other suppliers' changes are cancelled in their tools.
    wait_for("the other changes cancelled", || {
        let n = e.natives(&r);
        (n[1].1.first()?.1.status == Some(ChangeStatus::Cancelled) && n[2].1.first()?.1.status == Some(ChangeStatus::Cancelled)).then_some(())
    })
    .await;
    e.h.hub.finish().await;
}

#[tokio::test]
async fn a_failed_leg_sends_a_back_out_request_to_the_suppliers_change_that_did_its_part() {
    let e = estate().await;
    let h = &e.h;
    let now = Utc::now().trunc_subsecs(0);
    let (start, end) = (now - Duration::minutes(5), now + Duration::hours(2));
    let r = h.raise(normal_change("Load balancer firmware", &["network", "apps"], start, end)).await;
    assert_eq!(h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    h.move_to(&r, "authorize").await;
    let sn = wait_for("the ServiceNow change", || carrying("servicenow", e.h.hub.sim.changes(), &r).first().map(|(_, c)| c.legs[0].native_id.clone())).await;
    assert_eq!(h.decide(&r, &h.cm, "approve", "go").await.0, StatusCode::CREATED);
    for (s, key) in [(SUPPLIER, &h.network), (APPS, &h.apps)] {
        assert_eq!(h.decide(&r, key, "approve", "ok").await.0, StatusCode::CREATED);
        assert_eq!(h.leg(&r, s, key, json!({ "state": "ready" })).await.0, StatusCode::OK);
    }
    h.move_to(&r, "scheduled").await;
    h.move_to(&r, "implement").await;
    e.h.hub.sim.agent_update_change(&sn, json!({ "state": "-1" })).unwrap();
    e.wait_leg(&r, SUPPLIER, "the network implementing", |l| l["state"] == "in_progress").await;
    e.h.hub.sim.agent_update_change(&sn, json!({ "state": "0", "close_code": "successful" })).unwrap();
    e.wait_leg(&r, SUPPLIER, "the network done", |l| l["state"] == "succeeded").await;
    assert_eq!(h.leg(&r, APPS, &h.apps, json!({ "state": "in_progress" })).await.0, StatusCode::OK);
    assert_eq!(h.leg(&r, APPS, &h.apps, json!({ "state": "failed" })).await.0, StatusCode::OK);
    // The request reaches ServiceNow as a work note on the network's change, once.
    let note = wait_for("the back-out request in ServiceNow", || {
        e.h.hub.sim.journal(&sn).into_iter().find(|j| j["element"] == "work_notes" && j["value"].as_str().is_some_and(|v| v.contains("Back-out requested")))
    })
    .await;
    assert!(note["value"].as_str().unwrap().contains(&r), "{note}");
    let doc = e.wait_leg(&r, SUPPLIER, "the request recorded as sent", |_| true).await;
    let history = h.get(&format!("/api/v1/changes/{r}/history")).await;
    assert_eq!(history["events"].as_array().unwrap().iter().filter(|e| e["type"] == "change.backout_sent").count(), 1, "{doc}");
    e.h.hub.finish().await;
}

#[tokio::test]
async fn a_change_create_retried_after_a_lost_answer_makes_no_second_supplier_change() {
    let e = estate().await;
    let h = &e.h;
    let now = Utc::now().trunc_subsecs(0);
    let r = h.raise(normal_change("DNS resolver patch", &["network"], now + Duration::days(1), now + Duration::days(1) + Duration::hours(1))).await;
    // ServiceNow commits the create and the answer is lost on the way back.
    e.h.hub.sim.push_fault(Fault::LoseResponseAfterCommit);
    assert_eq!(h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    let doc = wait_for_doc(h, &r, |d| leg_of(d, SUPPLIER).is_some_and(|l| l["native_id"].is_string())).await;
    let changes = carrying("servicenow", e.h.hub.sim.changes(), &r);
    assert_eq!(changes.len(), 1, "one change in ServiceNow");
    assert_eq!(leg_of(&doc, SUPPLIER).unwrap()["native_id"].as_str(), Some(changes[0].1.legs[0].native_id.as_str()));
    e.h.hub.finish().await;
}

async fn wait_for_doc(h: &ChangeHub, r: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let doc = h.get(&format!("/api/v1/changes/{r}")).await;
        if cond(&doc) {
            return doc;
        }
        assert!(tokio::time::Instant::now() < deadline, "the change never got there: {doc}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

impl Estate {
    /// A change on `service` alone, in authorisation, its supplier's change read through
    /// `system`'s mapping from `records`: (reference, the supplier's change id, window start).
    async fn awaiting_approval(&self, title: &str, service: &str, system: &str, records: impl Fn() -> Vec<Value>) -> (String, String, DateTime<Utc>) {
        let h = &self.h;
        let start = Utc::now().trunc_subsecs(0) + Duration::days(2);
        let r = h.raise(normal_change(title, &[service], start, start + Duration::hours(4))).await;
        assert_eq!(h.patch(&r, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
        h.move_to(&r, "authorize").await;
        let id = wait_for(&format!("the {system} change in authorisation"), || {
            carrying(system, records(), &r).first().filter(|(_, c)| c.status == Some(ChangeStatus::Authorize)).map(|(_, c)| c.legs[0].native_id.clone())
        })
        .await;
        (r, id, start)
    }

    /// With no sweep running, only the supplier's notification can bring the leg to `ready`,
    /// in its own window, with its approval recorded.
    async fn assert_approved_by_notification(&self, r: &str, supplier: &str, from: DateTime<Utc>, to: DateTime<Utc>) {
        let doc = wait_for_doc(&self.h, r, |d| leg_of(d, supplier).is_some_and(|l| l["state"] == "ready")).await;
        let l = leg_of(&doc, supplier).unwrap();
        assert_eq!((l["planned_start"].as_str(), l["planned_end"].as_str()), (Some(ts_ms(from).as_str()), Some(ts_ms(to).as_str())), "{l}");
        let decisions = doc["approval"]["decisions"].as_array().unwrap();
        assert!(decisions.iter().any(|d| d["by"]["id"] == supplier && d["decision"] == "approve"), "{}", doc["approval"]);
    }
}

#[tokio::test]
async fn a_change_made_in_servicenow_reaches_the_record_by_its_notification_without_a_sweep() {
    let e = estate().await;
    let (r, sn, start) = e.awaiting_approval("Core router reload", "network", "servicenow", || e.h.hub.sim.changes()).await;
    // The supplier approves and plans its part in a narrower window; ServiceNow pushes the record.
    let (from, to) = (start + Duration::minutes(30), start + Duration::minutes(90));
    e.h.hub.sim.agent_update_change(&sn, json!({ "approval": "approved", "state": "-2", "start_date": sn_time(from), "end_date": sn_time(to) })).unwrap();
    e.assert_approved_by_notification(&r, SUPPLIER, from, to).await;
    e.h.hub.finish().await;
}

#[tokio::test]
async fn a_change_scheduled_in_remedy_reaches_the_record_by_its_notification_without_a_sweep() {
    let e = estate().await;
    let (r, crq, start) = e.awaiting_approval("Hypervisor patching", "hosting", "remedy", || e.remedy.changes()).await;
    // Hosting's approvals pass in Remedy and it plans its part in the second hour.
    let (from, to) = (start + Duration::hours(1), start + Duration::hours(2));
    e.remedy.agent_update_change(&crq, json!({ "Change Request Status": "Scheduled", "Scheduled Start Date": remedy_time(from), "Scheduled End Date": remedy_time(to) })).unwrap();
    e.assert_approved_by_notification(&r, HOSTING, from, to).await;
    e.h.hub.finish().await;
}

#[tokio::test]
async fn a_change_approved_at_the_tmf_partner_reaches_the_record_by_its_event_notification() {
    let e = estate().await;
    // The hub follows the partner's change requests at the TMF655 API's own hub.
    let callback = format!("{}/webhooks/{APPS}", e.h.hub.addr);
    let sub = wait_for("the hub's subscription to TMF655 events", || e.tmf.change_subscriptions().into_iter().find(|s| s.callback == callback)).await;
    assert!(sub.query.contains("ChangeRequestStateChangeEvent"), "{}", sub.query);
    let (r, id, start) = e.awaiting_approval("Payroll app release 4.2", "apps", "tmf655", || e.tmf.changes()).await;
    let (from, to) = (start + Duration::hours(1), start + Duration::hours(2));
    e.tmf.agent_update_change(&id, json!({ "status": "approved", "plannedStartTime": ts(from), "plannedEndTime": ts(to) })).unwrap();
    e.assert_approved_by_notification(&r, APPS, from, to).await;
    e.h.hub.finish().await;
}
