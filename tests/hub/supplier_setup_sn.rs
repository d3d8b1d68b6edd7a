//! First contact with a ServiceNow instance and a Remedy server, through the adapters' own
//! check and discovery (`siam_hub::adapters::setup_for`) against the simulators: every step
//! passing, a wrong password and a missing permission named with what to change, and a site's
//! own vocabulary discovered, proposed and, pasted as the TOML snippet, mapped.

use secrecy::SecretString;
use serde_json::{json, Value};
use siam_hub::adapters::setup::{Discovery, Proposal, Step};
use siam_hub::adapters::Mapping;
use siam_hub::config::{EgressSettings, Settings, SupplierSettings};
use siam_hub::sim::{remedy, servicenow};
use std::collections::BTreeMap;

const USER: &str = "hub.integration";
const PASSWORD: &str = "setup-password";

fn egress() -> EgressSettings {
    EgressSettings { allow_networks: vec!["127.0.0.1/32".into()] }
}

/// The supplier's settings: its `[[suppliers]]` entry followed by `extra` (a pasted snippet).
fn supplier(system: &str, url: &str, extra: &str) -> SupplierSettings {
    let toml = format!("[[suppliers]]\nid = \"first-contact\"\nname = \"First contact\"\nsystem = \"{system}\"\nbase_url = \"{url}\"\nusername = \"{USER}\"\ntimeout_secs = 2\nmax_attempts = 1\n{extra}");
    Settings::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}")).suppliers.remove(0)
}

async fn check(settings: &SupplierSettings, password: &str) -> Vec<Step> {
    let (setup, _) = siam_hub::adapters::setup_for(settings, &egress(), SecretString::from(password.to_string())).expect("a supported system");
    setup.steps().await
}

async fn discover(settings: &SupplierSettings) -> Discovery {
    let (setup, _) = siam_hub::adapters::setup_for(settings, &egress(), SecretString::from(PASSWORD.to_string())).expect("a supported system");
    setup.discover().await.expect("discovery succeeds")
}

fn step<'a>(steps: &'a [Step], name: &str) -> &'a Step {
    steps.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no step `{name}` in {steps:#?}"))
}

fn proposal<'a>(list: &'a [Proposal], native: &str) -> &'a Proposal {
    list.iter().find(|p| p.native == native).unwrap_or_else(|| panic!("no `{native}` in {list:#?}"))
}

const STEPS: &[&str] =
    &["credentials", "read tickets", "create tickets", "update tickets", "write public notes", "write internal notes", "upload files", "download files", "read profile fields"];

// ---- ServiceNow --------------------------------------------------------------------------------

fn servicenow_sim() -> (servicenow::ServiceNowSim, String) {
    let sim = servicenow::ServiceNowSim::new(servicenow::SimConfig { user: USER.into(), password: PASSWORD.into(), ..Default::default() });
    sim.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).expect("the ServiceNow simulator starts");
    let url = sim.base_url().unwrap();
    (sim, url)
}

/// An incident raised at the instance through its Table API; answers its sys_id.
async fn servicenow_incident(url: &str) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("{url}/api/now/table/incident"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({"short_description": "Core switch flapping", "impact": "2", "urgency": "2"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["result"]["sys_id"].as_str().expect("a sys_id").to_string()
}

#[tokio::test]
async fn servicenow_check_passes_every_step_without_writing() {
    let (sim, url) = servicenow_sim();
    servicenow_incident(&url).await;
    let writes_before = sim.request_log().iter().filter(|r| r.method != "GET").count();
    let steps = check(&supplier("servicenow", &url, ""), PASSWORD).await;
    for name in STEPS.iter().chain(&["read notes"]) {
        let s = step(&steps, name);
        assert!(s.ok && s.fix.is_none(), "{s:#?}");
    }
    assert!(step(&steps, "create tickets").detail.contains("itil"), "{steps:#?}");
    assert!(step(&steps, "read profile fields").detail.contains("close_code"), "{steps:#?}");
    assert_eq!(sim.request_log().iter().filter(|r| r.method != "GET").count(), writes_before, "the check writes nothing");
}

#[tokio::test]
async fn servicenow_check_names_a_wrong_password() {
    let (_sim, url) = servicenow_sim();
    let steps = check(&supplier("servicenow", &url, ""), "not-the-password").await;
    let s = step(&steps, "credentials");
    assert!(!s.ok && s.detail.contains(USER) && s.fix.as_deref().is_some_and(|f| f.contains("password")), "{s:#?}");
}

#[tokio::test]
async fn servicenow_check_names_a_missing_role_with_its_fix() {
    let (sim, url) = servicenow_sim();
    let id = servicenow_incident(&url).await;
    let settings = supplier("servicenow", &url, "");

    // A user that may create and update incidents but not write work notes: the instance would
    // drop them silently, and the check says so before the first ticket.
    sim.set_roles(&["sn_incident_write", "snc_platform_rest_api_access"]);
    let steps = check(&settings, PASSWORD).await;
    assert!(step(&steps, "create tickets").ok && step(&steps, "write public notes").ok, "{steps:#?}");
    let notes = step(&steps, "write internal notes");
    assert!(!notes.ok && notes.detail.contains("without an error") && notes.fix.as_deref().is_some_and(|f| f.contains("itil") && f.contains(USER)), "{notes:#?}");
    let dropped =
        reqwest::Client::new().patch(format!("{url}/api/now/table/incident/{id}")).basic_auth(USER, Some(PASSWORD)).json(&json!({"work_notes": "checked"})).send().await.unwrap();
    assert!(dropped.status().is_success() && sim.journal(&id).is_empty(), "the simulator drops the work note as the instance does");

    // No itil at all: every write is refused, and reads see only the user's own incidents.
    sim.set_roles(&["snc_platform_rest_api_access"]);
    let steps = check(&settings, PASSWORD).await;
    assert!(step(&steps, "credentials").ok);
    for name in ["read tickets", "create tickets", "update tickets", "write internal notes", "upload files"] {
        let s = step(&steps, name);
        assert!(!s.ok && s.fix.as_deref().is_some_and(|f| f.contains("itil")), "{s:#?}");
    }
}

#[tokio::test]
async fn servicenow_discovery_proposes_a_sites_own_values_and_the_snippet_maps_them() {
    let (sim, url) = servicenow_sim();
    sim.add_choice(servicenow::SiteChoice::new("incident", "state", "10", "Awaiting vendor"));
    sim.add_choice(servicenow::SiteChoice::new("incident", "hold_reason", "7", "Awaiting Vendor Fix"));
    sim.add_choice(servicenow::SiteChoice::new("incident", "close_code", "Solved by Vendor Patch", "Solved by Vendor Patch"));
    sim.add_choice(servicenow::SiteChoice::new("change_request", "state", "-6", "Peer Review"));
    let settings = supplier("servicenow", &url, "");
    let d = discover(&settings).await;

    let custom = proposal(&d.statuses, "10");
    assert_eq!((custom.label.as_str(), custom.proposed.as_deref(), custom.configured.as_deref()), ("Awaiting vendor", Some("on_hold"), None), "{custom:#?}");
    assert!(custom.why.contains("label"), "{custom:#?}");
    let resolved = proposal(&d.statuses, "6");
    assert_eq!((resolved.proposed.as_deref(), resolved.configured.as_deref()), (Some("resolved"), Some("resolved")));
    assert_eq!(resolved.why, "the reference profile maps 6 to resolved");
    assert_eq!(proposal(&d.statuses, "change_request.state=-6").proposed.as_deref(), Some("review"));
    assert_eq!(proposal(&d.statuses, "change_request.state=-5").configured.as_deref(), Some("draft"));
    let hold = proposal(&d.fields, "hold_reason=7");
    assert_eq!((hold.proposed.as_deref(), hold.configured.as_deref()), (Some("awaiting_supplier"), None));
    assert_eq!(proposal(&d.fields, "hold_reason=4").configured.as_deref(), Some("awaiting_supplier"));
    let code = proposal(&d.fields, "close_code=Solved by Vendor Patch");
    assert_eq!((code.proposed.as_deref(), code.configured.as_deref()), (Some("fixed"), None));
    assert_eq!(proposal(&d.fields, "close_code=Solved Remotely (Permanently)").configured.as_deref(), Some("fixed"));
    assert_eq!(proposal(&d.priorities, "impact=1").configured.as_deref(), Some("1"));

    // The snippet maps only what the configuration does not know, and parses as pasted.
    assert!(d.toml.contains("[suppliers.overrides.states]") && !d.toml.contains("\"6\" ="), "{}", d.toml);
    let updated = supplier("servicenow", &url, &d.toml);
    assert_eq!(updated.overrides.states.get("10").map(|s| s.as_str()), Some("on_hold"));
    assert_eq!(updated.overrides.resolutions.get("Solved by Vendor Patch").map(String::as_str), Some("fixed"));
    let again = discover(&updated).await;
    assert_eq!(proposal(&again.statuses, "10").configured.as_deref(), Some("on_hold"));

    // A ticket the supplier moves to the site's state maps through the new overrides.
    let id = servicenow_incident(&url).await;
    sim.agent_update(&id, json!({"state": "10", "hold_reason": "7"})).expect("the agent's save");
    let record = sim.incidents().into_iter().find(|r| r["sys_id"] == id).expect("the incident");
    let before = siam_hub::adapters::servicenow::ServiceNow::with_overrides(settings.overrides.clone());
    let native = before.parse_record(&record).expect("a ServiceNow record");
    assert_eq!(before.to_canonical(&native.fields, native.assigned).status, None, "unknown before the snippet");
    let after = siam_hub::adapters::servicenow::ServiceNow::with_overrides(updated.overrides.clone());
    let c = after.to_canonical(&native.fields, native.assigned);
    assert_eq!(c.status.map(|s| s.as_str()), Some("on_hold"));
    assert_eq!(c.hold_reason.map(|h| h.as_str()), Some("awaiting_supplier"));
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
}

// ---- Remedy ------------------------------------------------------------------------------------

fn remedy_sim(extra_statuses: &[&str]) -> (remedy::RemedySim, String) {
    let sim = remedy::RemedySim::new(remedy::SimConfig {
        user: USER.into(),
        password: PASSWORD.into(),
        extra_statuses: extra_statuses.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    });
    sim.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).expect("the Remedy simulator starts");
    let url = sim.base_url().unwrap();
    (sim, url)
}

/// An incident raised on the create form; answers its Incident Number.
async fn remedy_incident(url: &str) -> String {
    let http = reqwest::Client::new();
    let token = http.post(format!("{url}/api/jwt/login")).form(&[("username", USER), ("password", PASSWORD)]).send().await.unwrap().text().await.unwrap();
    let r: Value = http
        .post(format!("{url}/api/arsys/v1/entry/HPD:IncidentInterface_Create"))
        .query(&[("fields", "values(Incident Number)")])
        .header("Authorization", format!("AR-JWT {token}"))
        .json(&json!({"values": {
            "z1D_Action": "CREATE", "Login_ID": "Mary", "Description": "Printer jammed",
            "Detailed_Decription": "Tray 2 jams", "Impact": "3-Moderate/Limited", "Urgency": "2-High",
            "Status": "Assigned", "Reported Source": "Web", "Service_Type": "User Service Restoration",
            "Vendor Ticket Number": "INC-000001",
        }}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["values"]["Incident Number"].as_str().expect("an incident number").to_string()
}

#[tokio::test]
async fn remedy_check_passes_every_step_without_writing() {
    let (sim, url) = remedy_sim(&[]);
    let steps = check(&supplier("remedy", &url, ""), PASSWORD).await;
    for name in STEPS.iter().chain(&["read notes"]) {
        let s = step(&steps, name);
        assert!(s.ok && s.fix.is_none(), "{s:#?}");
    }
    assert!(step(&steps, "update tickets").detail.contains("Incident Master"), "{steps:#?}");
    assert!(step(&steps, "read profile fields").detail.contains("every field"), "{steps:#?}");
    let writes: Vec<_> = sim.request_log().into_iter().filter(|r| r.method != "GET" && !r.path.starts_with("/api/jwt/")).collect();
    assert!(writes.is_empty(), "the check writes nothing: {writes:?}");
}

#[tokio::test]
async fn remedy_check_names_a_wrong_password() {
    let (_sim, url) = remedy_sim(&[]);
    let steps = check(&supplier("remedy", &url, ""), "not-the-password").await;
    let s = step(&steps, "credentials");
    assert!(!s.ok && s.detail.contains(USER) && s.fix.as_deref().is_some_and(|f| f.contains("password")), "{s:#?}");
    assert_eq!(steps.len(), 1, "nothing else is checked with refused credentials");
}

#[tokio::test]
async fn remedy_check_names_a_missing_group_with_its_fix() {
    let (sim, url) = remedy_sim(&[]);
    sim.set_groups(&["Incident Viewer"]);
    let steps = check(&supplier("remedy", &url, ""), PASSWORD).await;
    assert!(step(&steps, "read tickets").ok && step(&steps, "read notes").ok, "{steps:#?}");
    for name in ["create tickets", "update tickets", "write public notes", "write internal notes", "upload files"] {
        let s = step(&steps, name);
        assert!(!s.ok && s.detail.contains("Incident Viewer") && s.fix.as_deref().is_some_and(|f| f.contains("Incident Master") && f.contains(USER)), "{s:#?}");
    }
    sim.set_groups(&[]);
    let steps = check(&supplier("remedy", &url, ""), PASSWORD).await;
    let read = step(&steps, "read tickets");
    assert!(!read.ok && read.fix.as_deref().is_some_and(|f| f.contains("Incident Viewer")), "{read:#?}");
}

#[tokio::test]
async fn remedy_discovery_proposes_a_sites_own_values_and_the_snippet_maps_them() {
    let (sim, url) = remedy_sim(&["Awaiting Vendor"]);
    sim.add_status_reason("Vendor Escalation");
    let settings = supplier("remedy", &url, "");
    let d = discover(&settings).await;

    let custom = proposal(&d.statuses, "Awaiting Vendor");
    assert_eq!((custom.proposed.as_deref(), custom.configured.as_deref()), (Some("on_hold"), None), "{custom:#?}");
    assert!(custom.why.contains("label"));
    let resolved = proposal(&d.statuses, "Resolved");
    assert_eq!((resolved.proposed.as_deref(), resolved.configured.as_deref()), (Some("resolved"), Some("resolved")));
    let reason = proposal(&d.fields, "Status_Reason=Vendor Escalation");
    assert_eq!((reason.proposed.as_deref(), reason.configured.as_deref()), (Some("awaiting_supplier"), None), "{reason:#?}");
    assert_eq!(proposal(&d.fields, "Status_Reason=Supplier Delivery").configured.as_deref(), Some("awaiting_supplier"));
    assert_eq!(proposal(&d.priorities, "Impact=2-Significant/Large").configured.as_deref(), Some("1"));
    assert!(!d.toml.contains("\"Resolved\""), "{}", d.toml);

    let updated = supplier("remedy", &url, &d.toml);
    let again = discover(&updated).await;
    assert_eq!(proposal(&again.statuses, "Awaiting Vendor").configured.as_deref(), Some("on_hold"));
    assert_eq!(proposal(&again.fields, "Status_Reason=Vendor Escalation").configured.as_deref(), Some("awaiting_supplier"));

    // A ticket the supplier moves to the site's status maps through the new profile.
    let number = remedy_incident(&url).await;
    sim.agent_update(&number, json!({"Status": "Awaiting Vendor", "Status_Reason": "Vendor Escalation"})).expect("the agent's save");
    let entry = sim.incidents().into_iter().find(|e| e.pointer("/values/Incident Number").or_else(|| e.get("Incident Number")) == Some(&json!(number))).expect("the incident");
    let entry = if entry.get("values").is_some() { entry } else { json!({ "values": entry }) };
    let before = siam_hub::adapters::remedy::Remedy::for_instance(&settings.remedy).unwrap();
    let native = before.parse_record(&entry).expect("a Remedy entry");
    assert_eq!(before.to_canonical(&native.fields, native.assigned).status, None, "unknown before the snippet");
    let after = siam_hub::adapters::remedy::Remedy::for_instance(&updated.remedy).expect("the pasted profile is coherent");
    let c = after.to_canonical(&native.fields, native.assigned);
    assert_eq!(c.status.map(|s| s.as_str()), Some("on_hold"));
    assert_eq!(c.hold_reason.map(|h| h.as_str()), Some("awaiting_supplier"));
    let fields: BTreeMap<String, String> = native.fields.clone();
    assert_eq!(fields.get("Status").map(String::as_str), Some("Awaiting Vendor"));
}
