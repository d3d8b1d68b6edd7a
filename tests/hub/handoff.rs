//! Hand-offs between suppliers, major incidents with several legs, and conflicts between hub
//! and supplier edits.

use crate::helpers::*;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use siam_hub::config::{RoutingRule, SecretRef, Settings};
use siam_hub::sim::servicenow::{DisplayMode, ServiceNowSim, SimConfig, WebhookTarget};

pub(crate) const SECOND: &str = "sn-apps";

/// A hub whose `network` tickets may go to two ServiceNow suppliers (rule order: sn-network,
/// then sn-apps), each with its own simulator.
pub(crate) async fn two_supplier_hub(options: Options, extra_toml: &str) -> (TestHub, ServiceNowSim) {
    let sim2 = ServiceNowSim::new(SimConfig { user: SIM_USER.into(), password: SIM_PASSWORD.into(), ..SimConfig::default() });
    sim2.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let mut extra = Settings::from_toml(&format!(
        r#"
        [[suppliers]]
        id = "{SECOND}"
        name = "Applications supplier"
        system = "servicenow"
        base_url = "{}"
        username = "{SIM_USER}"
        poll_interval_secs = 0
        timeout_secs = 2
        max_attempts = 3
        {extra_toml}
        "#,
        sim2.base_url().unwrap()
    ))
    .unwrap();
    let mut second = extra.suppliers.remove(0);
    second.password = Some(SecretRef::Value(SecretString::from(SIM_PASSWORD.to_string())));
    second.webhook_secret = Some(SecretRef::Value(SecretString::from("second-webhook-secret-01".to_string())));
    let rule = RoutingRule { service: Some("network".into()), ci: None, category: None, supplier: SECOND.into() };
    let hub = TestHub::spawn_with_suppliers(options, vec![second], vec![rule]).await;
    sim2.set_webhook(Some(WebhookTarget { url: hub.url(&format!("/webhooks/{SECOND}")), secret: "second-webhook-secret-01".into(), display_value: DisplayMode::Raw }));
    (hub, sim2)
}

#[tokio::test]
async fn a_supplier_hands_a_ticket_back_and_the_next_supplier_by_rule_gets_it() {
    let (hub, sim2) = two_supplier_hub(Options::default(), "").await;
    let doc = hub.raise(&network_incident("Not ours")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    hub.wait_incident(&r, "the first leg to open", |d| leg(d, SUPPLIER, "open").is_some()).await;

    let resp = hub.post(&format!("/api/v1/incidents/{r}/handback"), &hub.keys.supplier, &json!({"reason": "This is an application fault, not network"})).await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
    let doc = hub.wait_incident(&r, "the second supplier's leg to open", |d| leg(d, SECOND, "open").is_some()).await;
    assert_eq!(doc["assigned_supplier"], SECOND);
    assert_eq!(doc["status"], "assigned");
    assert!(leg(&doc, SUPPLIER, "handed_back").is_some(), "the first leg is kept, marked handed back: {}", doc["legs"]);
    assert_eq!(leg(&doc, SECOND, "open").unwrap()["primary"], true);
    assert_eq!(sim2.incident_by_correlation(&r).len(), 1);

    let history: Value = hub.get_as(&format!("/api/v1/incidents/{r}/history"), &hub.keys.service_desk).await.json().await.unwrap();
    let holders = history["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 2);
    assert_eq!(holders[0]["supplier"], SUPPLIER);
    assert!(holders[0]["to"].is_string());
    assert_eq!(holders[1]["supplier"], SECOND);
    assert!(holders[1]["to"].is_null());
    let kinds: Vec<&str> = history["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"leg.handed_back"), "{kinds:?}");

    // The supplier that handed it back no longer sees it at all, so cannot hand it back twice.
    let again = hub.post(&format!("/api/v1/incidents/{r}/handback"), &hub.keys.supplier, &json!({"reason": "again"})).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    hub.finish().await;
}

#[tokio::test]
async fn the_service_desk_reroutes_and_the_previous_supplier_ticket_is_cancelled() {
    let (hub, sim2) = two_supplier_hub(Options::default(), "").await;
    let doc = hub.raise(&network_incident("Wrong team")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    hub.wait_incident(&r, "the first leg to open", |d| leg(d, SUPPLIER, "open").is_some()).await;

    let resp = hub.post(&format!("/api/v1/incidents/{r}/route"), &hub.keys.service_desk, &json!({"supplier": SECOND, "reason": "triage: application"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc = hub.wait_incident(&r, "the move", |d| leg(d, SECOND, "open").is_some() && leg(d, SUPPLIER, "withdrawn").is_some_and(|l| l["closed_at"].is_string())).await;
    assert_eq!(doc["assigned_supplier"], SECOND);
    let first_ticket = &hub.sim.incident_by_correlation(&r)[0];
    assert_eq!(first_ticket["state"], "8", "the withdrawn supplier ticket is cancelled");
    assert_eq!(sim2.incident_by_correlation(&r).len(), 1);

    // Back to the first supplier: it gets a fresh ticket, the old cancelled one is not reused.
    let resp = hub.post(&format!("/api/v1/incidents/{r}/route"), &hub.keys.service_desk, &json!({"supplier": SUPPLIER, "reason": "ping-pong"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc = hub.wait_incident(&r, "the return", |d| leg(d, SUPPLIER, "open").is_some() && leg(d, SECOND, "withdrawn").is_some_and(|l| l["closed_at"].is_string())).await;
    assert_eq!(hub.sim.incident_by_correlation(&r).len(), 2);
    assert_eq!(doc["legs"].as_array().unwrap().len(), 3, "every leg is kept on the record");

    let bad = hub.post(&format!("/api/v1/incidents/{r}/route"), &hub.keys.service_desk, &json!({"supplier": "nobody", "reason": "x"})).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let same = hub.post(&format!("/api/v1/incidents/{r}/route"), &hub.keys.service_desk, &json!({"supplier": SUPPLIER, "reason": "x"})).await;
    assert_eq!(same.status(), StatusCode::CONFLICT);
    let not_desk = hub.post(&format!("/api/v1/incidents/{r}/route"), &hub.keys.supplier, &json!({"reason": "x"})).await;
    assert_eq!(not_desk.status(), StatusCode::FORBIDDEN);
    hub.finish().await;
}

#[tokio::test]
async fn a_major_incident_has_several_legs_and_only_the_owner_moves_the_status() {
    let (hub, sim2) = two_supplier_hub(Options::default(), "").await;
    let doc = hub.raise(&network_incident("Data centre power loss")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    hub.wait_incident(&r, "the first leg", |d| leg(d, SUPPLIER, "open").is_some()).await;
    let resp = hub.post(&format!("/api/v1/incidents/{r}/route"), &hub.keys.service_desk, &json!({"supplier": SECOND, "reason": "apps down too", "mode": "add"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc = hub.wait_incident(&r, "both legs open", |d| leg(d, SUPPLIER, "open").is_some() && leg(d, SECOND, "open").is_some()).await;
    assert_eq!(doc["assigned_supplier"], SUPPLIER);

    // The secondary supplier works its ticket: its note arrives, its status stays on its leg.
    let sys2 = leg(&doc, SECOND, "open").unwrap()["native_id"].as_str().unwrap().to_string();
    sim2.agent_update(&sys2, json!({"state": "2", "comments": "apps team restarting services"})).unwrap();
    hub.wait_incident(&r, "the secondary note", |d| d["notes"].as_array().unwrap().iter().any(|n| n["origin"] == SECOND)).await;
    let doc = hub.wait_incident(&r, "the secondary leg status", |d| leg(d, SECOND, "open").is_some_and(|l| l["native_status"] == "2")).await;
    assert_eq!(doc["status"], "assigned", "a secondary leg does not move the record's status");

    // A hub note reaches both suppliers; the owner's resolution resolves the incident.
    hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &json!({"text": "bridge call at 14:00", "visibility": "internal"})).await;
    wait_for("the note at both suppliers", || {
        let a = hub.sim.journal(leg(&doc, SUPPLIER, "open")?["native_id"].as_str()?);
        let b = sim2.journal(&sys2);
        (a.iter().any(|j| j["value"] == "bridge call at 14:00") && b.iter().any(|j| j["value"] == "bridge call at 14:00" && j["element"] == "work_notes")).then_some(())
    })
    .await;
    let sys1 = leg(&doc, SUPPLIER, "open").unwrap()["native_id"].as_str().unwrap().to_string();
    hub.sim.agent_update(&sys1, json!({"state": "6", "close_code": "Solved (Permanently)", "close_notes": "power restored"})).unwrap();
    let doc = hub.wait_incident(&r, "resolution by the owner", |d| d["status"] == "resolved").await;
    assert_eq!(doc["resolution"]["code"], "fixed");
    hub.finish().await;
}

#[tokio::test]
async fn a_conflicting_edit_follows_the_field_policy() {
    let mut hub = TestHub::spawn_with(Options { broker_proxy: true, ..Default::default() }).await;
    let _ = &mut hub;
    let doc = hub.raise(&network_incident("Conflicts")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    let doc = hub.wait_incident(&r, "the leg", |d| d["legs"][0]["state"] == "open").await;
    let sys_id = doc["legs"][0]["native_id"].as_str().unwrap().to_string();

    // The hub's change cannot reach the supplier yet (no broker); the supplier edits the same
    // field meanwhile. By the default policy the later edit wins: the supplier's.
    hub.proxy.as_ref().unwrap().close();
    let v = doc["version"].as_i64().unwrap();
    let resp = hub.patch(&r, v, &json!({"urgency": 3})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    hub.sim.agent_update(&sys_id, json!({"urgency": "1"})).unwrap();
    let doc = hub.wait_incident(&r, "the supplier's later edit", |d| d["urgency"] == 1).await;
    hub.proxy.as_ref().unwrap().reopen();
    let settled = hub.settle(&r).await;
    assert_eq!(settled["urgency"], 1);
    assert_eq!(hub.sim.incident_by_correlation(&r)[0]["urgency"], "1");
    let _ = doc;
    hub.finish().await;
}

#[tokio::test]
async fn hub_wins_keeps_the_hub_value_and_pushes_it_again() {
    let mut hub = TestHub::spawn_with(Options { broker_proxy: true, extra_toml: "[sync.conflicts.fields]\ntitle = \"hub_wins\"\n".into(), ..Default::default() }).await;
    let _ = &mut hub;
    let doc = hub.raise(&network_incident("Original title")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    let doc = hub.wait_incident(&r, "the leg", |d| d["legs"][0]["state"] == "open").await;
    let sys_id = doc["legs"][0]["native_id"].as_str().unwrap().to_string();

    hub.proxy.as_ref().unwrap().close();
    let resp = hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({"title": "Title set by the service desk"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    hub.sim.agent_update(&sys_id, json!({"short_description": "Title the supplier typed", "work_notes": "renamed"})).unwrap();
    let doc = hub.wait_incident(&r, "the supplier's note", |d| !d["notes"].as_array().unwrap().is_empty()).await;
    assert_eq!(doc["title"], "Title set by the service desk");
    let events = hub.history(&r).await;
    assert!(events.iter().any(|e| e["type"] == "incident.conflict_resolved" && e["data"]["kept_hub_value"] == json!(["title"])), "{events:#?}");

    hub.proxy.as_ref().unwrap().reopen();
    wait_for("the hub's title at the supplier", || (hub.sim.incident_by_correlation(&r)[0]["short_description"] == "Title set by the service desk").then_some(())).await;
    let settled = hub.settle(&r).await;
    assert_eq!(settled["title"], "Title set by the service desk");
    hub.finish().await;
}

/// A queue-only supplier the service desk can route tickets to.
const HOSTING_TOML: &str = r#"
[[suppliers]]
id = "hosting"
name = "Hosting supplier"
system = "queue"
"#;

#[tokio::test]
async fn a_ticket_routed_back_to_servicenow_gets_one_fresh_ticket_even_when_the_create_answer_is_lost() {
    use siam_hub::sim::servicenow::Fault;
    let hub = TestHub::spawn_with(Options { extra_toml: HOSTING_TOML.into(), ..Default::default() }).await;
    let (r, first) = hub.open_ticket("Back and forth").await;
    let pass = || Fault::Timeout { delay: std::time::Duration::from_millis(1) };
    let lose_create = || {
        // The lookup passes; the create fails before ServiceNow commits it; the retry's lookup
        // passes and its create commits, the answer lost on the way back.
        for f in [pass(), Fault::ServerError, pass(), Fault::LoseResponseAfterCommit] {
            hub.sim.push_fault(f);
        }
    };
    let tickets = || hub.sim.incident_by_correlation(&r).iter().map(|t| t["sys_id"].as_str().unwrap().to_string()).collect();
    hub.routed_back_gets_one_fresh_ticket(&r, SUPPLIER, OTHER_SUPPLIER, &first, lose_create, tickets).await;
    let old = hub.sim.incident_by_correlation(&r).into_iter().find(|t| t["sys_id"] == first.as_str()).unwrap();
    eprintln!("LOG {:#?}", hub.sim.request_log().iter().map(|l| format!("{} {} {}", l.method, l.path, l.status)).collect::<Vec<_>>());
    assert_eq!(old["state"], "8", "the withdrawn ticket stays cancelled");
    hub.finish().await;
}
