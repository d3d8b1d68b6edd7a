//! One ticket through a whole multi-supplier estate: ServiceNow, then Jira Service Management
//! after a hand-back, then BMC Remedy after the service desk re-routes it; with notes both ways,
//! a file, a resolution, a reopen and a second resolution, all on the one record.

use crate::helpers::*;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use siam_hub::config::{RoutingRule, SecretRef, Settings};
use siam_hub::sim::jira::{JiraSim, SimConfig as JiraConfig, WebhookTarget as JiraHook};
use siam_hub::sim::remedy::{RemedySim, SimConfig as RemedyConfig, WebhookTarget as RemedyHook};

const JIRA: &str = "jira-apps";
const REMEDY: &str = "bmc-apps";

fn leg<'a>(doc: &'a Value, supplier: &str) -> Option<&'a Value> {
    doc["legs"].as_array().unwrap().iter().rev().find(|l| l["supplier"] == supplier)
}

#[tokio::test]
async fn one_ticket_travels_through_three_suppliers_on_three_systems() {
    let jira = JiraSim::new(JiraConfig::default());
    jira.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let remedy = RemedySim::new(RemedyConfig { user: SIM_USER.into(), password: "remedy-password".into(), ..RemedyConfig::default() });
    remedy.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let jc = JiraConfig::default();
    let mut extra = Settings::from_toml(&format!(
        r#"
        [[suppliers]]
        id = "{JIRA}"
        name = "Applications (JSM)"
        system = "jira"
        base_url = "{jurl}"
        username = "{email}"
        webhook_auth = "hub_signature"
        poll_interval_secs = 0
        timeout_secs = 2
        rate_per_sec = 50
        [suppliers.jira]
        project_key = "OPS"
        time_zone = "America/Los_Angeles"

        [[suppliers]]
        id = "{REMEDY}"
        name = "Applications (Remedy)"
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
        support_group = "Application Support"
        "#,
        jurl = jira.base_url().unwrap(),
        email = jc.email,
        rurl = remedy.base_url().unwrap(),
    ))
    .unwrap();
    let mut suppliers = std::mem::take(&mut extra.suppliers);
    suppliers[0].password = Some(SecretRef::Value(SecretString::from(jc.api_token.clone())));
    suppliers[0].webhook_secret = Some(SecretRef::Value(SecretString::from("jira-webhook-secret-01".to_string())));
    suppliers[1].password = Some(SecretRef::Value(SecretString::from("remedy-password".to_string())));
    suppliers[1].webhook_secret = Some(SecretRef::Value(SecretString::from("remedy-webhook-secret-01".to_string())));
    // network: ServiceNow first, then Jira, then Remedy.
    let rules = [JIRA, REMEDY].map(|s| RoutingRule { service: Some("network".into()), ci: None, category: None, supplier: s.into() }).to_vec();
    let hub = TestHub::spawn_with_suppliers(Options::default(), suppliers, rules).await;
    jira.set_webhook(Some(JiraHook { url: hub.url(&format!("/webhooks/{JIRA}")), secret: Some("jira-webhook-secret-01".into()) }));
    remedy.set_webhook(Some(RemedyHook { url: hub.url(&format!("/webhooks/{REMEDY}")), username: REMEDY.into(), password: "remedy-webhook-secret-01".into() }));

    // 1. Raised once, routed to ServiceNow, with a file.
    let doc = hub.raise(&network_incident("Intermittent packet loss to the HR portal")).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    let doc = hub.wait_incident(&r, "the ServiceNow leg", |d| leg(d, SUPPLIER).is_some_and(|l| l["state"] == "open")).await;
    let sn_id = leg(&doc, SUPPLIER).unwrap()["native_id"].as_str().unwrap().to_string();
    let file = b"traceroute to hr.example: 12 hops, loss at hop 7".to_vec();
    let up = hub.attach(&r, "traceroute.txt", "text/plain", file.clone()).await;
    assert_eq!(up.status(), StatusCode::CREATED);
    wait_for("the file at ServiceNow", || hub.sim.attachments(&sn_id).first().cloned()).await;
    hub.sim.agent_update(&sn_id, json!({"work_notes": "Checked our edge routers: clean", "comments": "This does not look like a network fault"})).unwrap();
    hub.wait_incident(&r, "ServiceNow's notes", |d| d["notes"].as_array().unwrap().len() == 2).await;

    // 2. ServiceNow hands it back; the next rule sends it to Jira, notes and all.
    let resp = hub.post(&format!("/api/v1/incidents/{r}/handback"), &hub.keys.supplier, &json!({"reason": "Application fault, not network"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc = hub.wait_incident(&r, "the Jira leg", |d| leg(d, JIRA).is_some_and(|l| l["state"] == "open")).await;
    assert_eq!(doc["assigned_supplier"], JIRA);
    let key = leg(&doc, JIRA).unwrap()["native_number"].as_str().unwrap().to_string();
    let comments = wait_for("the notes at Jira", || {
        let issue = jira.issue(&key)?;
        let c = issue["fields"]["comment"]["comments"].as_array()?.clone();
        (c.len() >= 2).then_some(c)
    })
    .await;
    let internal = comments.iter().find(|c| c.to_string().contains("Checked our edge routers")).expect("the work note went to Jira");
    assert_eq!(internal["jsdPublic"], false, "an internal note stays internal at the next supplier");
    jira.agent_transition(&key, "Start work", None).unwrap();
    hub.wait_incident(&r, "Jira starting work", |d| d["status"] == "in_progress").await;

    // 3. The service desk moves it to Remedy; Jira's issue is withdrawn.
    let resp =
        hub.post(&format!("/api/v1/incidents/{r}/route"), &hub.keys.service_desk, &json!({"supplier": REMEDY, "reason": "HR portal runs on the Remedy-managed platform"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc = hub.wait_incident(&r, "the Remedy leg", |d| leg(d, REMEDY).is_some_and(|l| l["state"] == "open")).await;
    let number = leg(&doc, REMEDY).unwrap()["native_number"].as_str().unwrap().to_string();
    assert_eq!(remedy.incidents_by_vendor_ticket(&r).len(), 1);

    // 4. Remedy works it, resolves; the desk reopens; Remedy resolves again.
    remedy.agent_update(&number, json!({"Status": "In Progress"})).unwrap();
    remedy.agent_work_log(&number, "Public", "Portal load balancer pool member was flapping.").unwrap();
    hub.wait_incident(&r, "Remedy working", |d| d["status"] == "in_progress" && d["notes"].as_array().unwrap().iter().any(|n| n["origin"] == REMEDY)).await;
    remedy.agent_update(&number, json!({"Status": "Resolved", "Status_Reason": "No Further Action Required", "Resolution": "Removed the flapping pool member."})).unwrap();
    let doc = hub.wait_incident(&r, "the first resolution", |d| d["status"] == "resolved").await;
    assert_eq!(doc["resolution"]["code"], "fixed");
    let resp = hub.patch(&r, doc["version"].as_i64().unwrap(), &json!({"status": "in_progress"})).await;
    assert_eq!(resp.status(), StatusCode::OK, "reopen");
    wait_for("the reopen at Remedy", || remedy.incidents_by_vendor_ticket(&r).first().filter(|i| i["values"]["Status"] == "In Progress" || i["Status"] == "In Progress").cloned())
        .await;
    remedy.agent_update(&number, json!({"Status": "Resolved", "Status_Reason": "No Further Action Required", "Resolution": "Pool member replaced."})).unwrap();
    let doc = hub.wait_incident(&r, "the second resolution", |d| d["status"] == "resolved" && d["resolution"]["notes"] == "Pool member replaced.").await;

    // 5. One record tells the whole story.
    let history: Value = hub.get_as(&format!("/api/v1/incidents/{r}/history"), &hub.keys.service_desk).await.json().await.unwrap();
    let holders: Vec<&str> = history["holders"].as_array().unwrap().iter().map(|h| h["supplier"].as_str().unwrap()).collect();
    assert_eq!(holders, [SUPPLIER, JIRA, REMEDY]);
    let statuses: Vec<&str> = history["events"].as_array().unwrap().iter().filter(|e| e["type"] == "incident.status_changed").map(|e| e["data"]["to"].as_str().unwrap()).collect();
    let tail: Vec<&str> = statuses.iter().rev().take(3).rev().copied().collect();
    assert_eq!(tail, ["resolved", "in_progress", "resolved"], "{statuses:?}");
    let legs: Vec<(String, String)> = doc["legs"].as_array().unwrap().iter().map(|l| (l["supplier"].as_str().unwrap().into(), l["state"].as_str().unwrap().into())).collect();
    assert_eq!(legs[0], (SUPPLIER.to_string(), "handed_back".to_string()));
    assert!(legs.iter().any(|(s, st)| s == JIRA && (st == "closed" || st == "withdrawn")), "{legs:?}");
    assert!(legs.iter().any(|(s, st)| s == REMEDY && st == "open"), "{legs:?}");
    let att = &doc["attachments"][0];
    let fate = |s: &str| att["deliveries"].as_array().unwrap().iter().find(|d| d["supplier"] == s).map(|d| d["state"].as_str().unwrap().to_string());
    assert_eq!(fate(SUPPLIER).as_deref(), Some("sent"));
    assert_eq!(fate(JIRA).as_deref(), Some("sent"));
    assert_eq!(jira.attachments(&key).first().map(|a| a.2.clone()), Some(file.clone()), "Jira got the file as sent");
    assert_eq!(fate(REMEDY).as_deref(), Some("sent"), "{att}");
    let held: Vec<Vec<u8>> = remedy
        .worklogs(&number)
        .iter()
        .filter_map(|w| w["z2AF Work Log01"]["name"].as_str().filter(|n| *n == "traceroute.txt").and_then(|_| remedy.file(w["Work Log ID"].as_str()?, "z2AF Work Log01")))
        .collect();
    assert_eq!(held, std::slice::from_ref(&file), "Remedy holds the file once, as sent");
    assert_eq!(doc["attachments"].as_array().unwrap().len(), 1, "no supplier's copy came back as a new file");
    siam_hub::validation::validate(siam_hub::validation::Doc::Incident, &doc).expect("a valid canonical document");
    hub.finish().await;
}
