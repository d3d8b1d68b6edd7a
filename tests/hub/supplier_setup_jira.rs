//! First contact with a Jira site and a TMF621 instance, through the adapters' own check and
//! discovery (`siam_hub::adapters::setup_for`) against the simulators: every step passing, a
//! wrong password and a missing permission named with what to change, a site's own status ids
//! discovered with proposals by category and, pasted as the TOML snippet, mapped; and, end to
//! end, a ticket moved to a status the configuration does not know, read through its category
//! and shown to the administrator as inferred.

use crate::helpers::*;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use siam_hub::adapters::setup::{Discovery, Step};
use siam_hub::config::{EgressSettings, RoutingRule, SecretRef, Settings, SupplierSettings, TmfFlavour, TmfVersion};
use siam_hub::sim::jira::{JiraSim, SimConfig as JiraSimConfig, WebhookTarget};
use siam_hub::sim::tmf621::{SimConfig as TmfSimConfig, Tmf621Sim};

const TMF_USER: &str = "hub.integration";
const TMF_PASSWORD: &str = "tmf-setup-password";

fn egress() -> EgressSettings {
    EgressSettings { allow_networks: vec!["127.0.0.1/32".into()] }
}

fn start_jira() -> JiraSim {
    let sim = JiraSim::new(JiraSimConfig::default());
    sim.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).expect("the Jira simulator starts");
    sim
}

/// A Jira supplier's settings for `sim`, followed by `extra` (lines of `[suppliers.jira]`, a
/// pasted snippet).
fn jira_supplier(sim: &JiraSim, id: &str, extra: &str) -> SupplierSettings {
    let config = JiraSimConfig::default();
    let toml = format!(
        "[[suppliers]]\nid = \"{id}\"\nname = \"Jira site\"\nsystem = \"jira\"\nbase_url = \"{url}\"\nusername = \"{email}\"\nwebhook_auth = \"hub_signature\"\npoll_interval_secs = 0\ntimeout_secs = 2\nmax_attempts = 3\nrate_per_sec = 50\n[suppliers.jira]\nproject_key = \"OPS\"\ntime_zone = \"America/Los_Angeles\"\n{extra}",
        url = sim.base_url().expect("started"),
        email = config.email,
    );
    let mut s = Settings::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}")).suppliers.remove(0);
    s.password = Some(SecretRef::Value(SecretString::from(config.api_token)));
    s
}

async fn steps_of(settings: &SupplierSettings, password: &str) -> Vec<Step> {
    let (setup, _) = siam_hub::adapters::setup_for(settings, &egress(), SecretString::from(password.to_string())).expect("a supported system");
    setup.steps().await
}

async fn discover(settings: &SupplierSettings, password: &str) -> Discovery {
    let (setup, _) = siam_hub::adapters::setup_for(settings, &egress(), SecretString::from(password.to_string())).expect("a supported system");
    setup.discover().await.expect("discovery succeeds")
}

fn step<'a>(steps: &'a [Step], name: &str) -> &'a Step {
    steps.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no step `{name}` in {steps:#?}"))
}

const JIRA_STEPS: &[&str] =
    &["credentials", "read tickets", "create tickets", "update tickets", "write public notes", "write internal notes", "upload files", "download files", "read profile fields"];

#[tokio::test]
async fn supplier_setup_jira_check_passes_against_the_simulator() {
    let sim = start_jira();
    let steps = steps_of(&jira_supplier(&sim, "jira-check", ""), &JiraSimConfig::default().api_token).await;
    for name in JIRA_STEPS {
        let s = step(&steps, name);
        assert!(s.ok, "{s:#?}");
    }
    assert!(step(&steps, "credentials").detail.contains("hub.integration@example.org"), "{steps:#?}");
    assert!(sim.request_log().iter().all(|l| l.method == "GET"), "a check writes nothing");
}

#[tokio::test]
async fn supplier_setup_jira_check_names_a_wrong_token_and_a_missing_permission() {
    let sim = start_jira();
    let settings = jira_supplier(&sim, "jira-check", "");
    let steps = steps_of(&settings, "not-the-token").await;
    let credentials = step(&steps, "credentials");
    assert!(!credentials.ok && credentials.detail.contains("hub.integration@example.org") && credentials.detail.contains("401"), "{credentials:#?}");
    assert!(credentials.fix.as_deref().unwrap_or("").contains("API token"), "{credentials:#?}");

    sim.deny_permission("SERVICEDESK_AGENT");
    sim.deny_permission("CREATE_ATTACHMENTS");
    let steps = steps_of(&settings, &JiraSimConfig::default().api_token).await;
    let internal = step(&steps, "write internal notes");
    assert!(!internal.ok && internal.detail.contains("SERVICEDESK_AGENT"), "{internal:#?}");
    assert!(internal.fix.as_deref().unwrap_or("").contains("agent licence"), "{internal:#?}");
    let upload = step(&steps, "upload files");
    assert!(!upload.ok && upload.fix.as_deref().unwrap_or("").contains("CREATE_ATTACHMENTS"), "{upload:#?}");
    assert!(step(&steps, "write public notes").ok && step(&steps, "download files").ok, "{steps:#?}");

    // A field the configuration names that the site does not have.
    let steps = steps_of(&jira_supplier(&sim, "jira-check", "impact_field = \"customfield_19999\"\n"), &JiraSimConfig::default().api_token).await;
    let fields = step(&steps, "read profile fields");
    assert!(!fields.ok && fields.detail.contains("customfield_19999"), "{fields:#?}");
}

#[tokio::test]
async fn supplier_setup_jira_discovers_a_sites_own_ids_and_the_snippet_maps_them() {
    let sim = start_jira();
    // This site's "Work in progress" is 10018, not the profile's 10011, and it has a status of
    // its own.
    sim.renumber_status("10011", "10018");
    sim.add_status("10019", "Waiting for vendor", "indeterminate");
    let token = JiraSimConfig::default().api_token;
    let d = discover(&jira_supplier(&sim, "jira-site", ""), &token).await;
    let by = |id: &str| d.statuses.iter().find(|p| p.native == id).cloned().unwrap_or_else(|| panic!("no status {id} in {:#?}", d.statuses));
    let wip = by("10018");
    assert_eq!((wip.label.as_str(), wip.proposed.as_deref(), wip.configured.as_deref()), ("Work in progress", Some("in_progress"), None), "{wip:#?}");
    assert!(wip.why.contains("indeterminate"), "{wip:#?}");
    let vendor = by("10019");
    assert_eq!((vendor.proposed.as_deref(), vendor.configured.as_deref()), (Some("in_progress"), None));
    assert_eq!(by("10012").configured.as_deref(), Some("on_hold:awaiting_caller"));
    assert!(d.statuses.iter().all(|p| !p.native.starts_with("101")), "only the incident workflow: {:#?}", d.statuses);
    assert!(d.priorities.iter().all(|p| p.configured.is_some()), "{:#?}", d.priorities);
    assert!(d.fields.iter().any(|p| p.label == "Impact" && p.configured.as_deref() == Some("impact_field")), "{:#?}", d.fields);
    assert!(d.toml.contains("\"10018\""), "{}", d.toml);

    // The snippet, pasted: the site's own status reads as the mapping says, not inferred.
    let applied = jira_supplier(&sim, "jira-site", &d.toml);
    let mapping = siam_hub::adapters::connect(&applied, &egress(), SecretString::from(token.clone())).expect("the supplier connects").0;
    let issue = json!({"id": "10042", "key": "OPS-42", "fields": {
        "updated": "2024-05-14T06:52:10.000-0700",
        "status": {"id": "10018", "name": "Work in progress", "statusCategory": {"key": "indeterminate"}},
        "resolution": null
    }});
    let rec = mapping.parse_record(&issue).unwrap();
    let c = mapping.to_canonical(&rec.fields, false);
    assert_eq!(c.status, Some(siam_hub::domain::Status::InProgress));
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    let again = discover(&applied, &token).await;
    assert_eq!(again.statuses.iter().find(|p| p.native == "10018").and_then(|p| p.configured.as_deref()), Some("in_progress"));
}

#[tokio::test]
async fn supplier_setup_jira_a_status_the_configuration_does_not_know_is_followed_and_reported() {
    let sim = start_jira();
    sim.add_status("10019", "Waiting for vendor", "indeterminate");
    let secret = format!("jira-{}", uuid::Uuid::new_v4().simple());
    let mut supplier = jira_supplier(&sim, "jira-site", "");
    supplier.webhook_secret = Some(SecretRef::Value(SecretString::from(secret.clone())));
    let rule = RoutingRule { service: Some("email".into()), ci: None, category: None, supplier: "jira-site".into() };
    let hub = TestHub::spawn_with_suppliers(Options::default(), vec![supplier], vec![rule]).await;
    sim.set_webhook(Some(WebhookTarget { url: hub.url("/webhooks/jira-site"), secret: Some(secret) }));

    let mut incident = network_incident("Outbound mail queued");
    incident["service"] = json!("email");
    incident["ci"] = json!("mail-relay-01");
    incident["category"] = json!("email");
    let doc = hub.raise(&incident).await;
    let r = doc["ref"].as_str().unwrap().to_string();
    let doc = hub.wait_incident(&r, "the Jira leg to open", |d| d["legs"][0]["state"] == "open" && d["legs"][0]["supplier"] == "jira-site").await;
    let id = doc["legs"][0]["native_id"].as_str().unwrap().to_string();

    sim.agent_transition(&id, "Set Waiting for vendor", None).unwrap_or_else(|e| panic!("{e}: {id} in {doc:#} / {:#?}", sim.issues()));
    let doc = hub.wait_incident(&r, "the record to follow the site's own status", |d| d["status"] == "in_progress").await;
    let leg = &doc["legs"][0];
    assert_eq!(leg["native_status"], "10019", "{leg:#}");
    let note = leg["unmapped"]["status"].as_str().unwrap_or("");
    assert!(note.starts_with("10019") && note.contains("inferred"), "{leg:#}");

    let resp = hub.get_as("/api/v1/admin/mapping-events", &hub.keys.admin).await;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{text}");
    let events: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let listed =
        events["items"].as_array().unwrap().iter().any(|e| e["ref"] == r.as_str() && e["field"] == "status" && e["value"].as_str().is_some_and(|v| v.starts_with("10019")));
    assert!(listed, "{events:#}");

    // The hub does not move the ticket out of the site's status for the same meaning.
    hub.settle(&r).await;
    assert_eq!(sim.issue(&id).unwrap()["fields"]["status"]["id"], "10019");
    let resp = hub.get_as("/api/v1/admin/mapping-events", &hub.keys.service_desk).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    hub.finish().await;
}

// ---- TMF621 ------------------------------------------------------------------------------------

fn start_tmf(flavour: TmfFlavour) -> Tmf621Sim {
    let sim = Tmf621Sim::new(TmfSimConfig { version: TmfVersion::V4, flavour, user: TMF_USER.into(), password: TMF_PASSWORD.into(), ..TmfSimConfig::default() });
    sim.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).expect("the TMF simulator starts");
    sim
}

fn tmf_supplier(sim: &Tmf621Sim, flavour: &str, auth: &str, extra: &str) -> SupplierSettings {
    let toml = format!(
        "[[suppliers]]\nid = \"tmf-site\"\nname = \"TMF site\"\nsystem = \"tmf621\"\nbase_url = \"{url}\"\nusername = \"{TMF_USER}\"\ntimeout_secs = 2\nmax_attempts = 1\n[suppliers.tmf621]\nflavour = \"{flavour}\"\nauth = \"{auth}\"\n{extra}",
        url = sim.base_url().expect("started"),
    );
    Settings::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}")).suppliers.remove(0)
}

#[tokio::test]
async fn supplier_setup_tmf621_check_passes_and_names_a_wrong_password() {
    for (flavour, auth) in [(TmfFlavour::Standard, "basic"), (TmfFlavour::Servicenow, "oauth2")] {
        let sim = start_tmf(flavour);
        let f = if flavour == TmfFlavour::Servicenow { "servicenow" } else { "standard" };
        let settings = tmf_supplier(&sim, f, auth, "");
        let steps = steps_of(&settings, TMF_PASSWORD).await;
        for name in [
            "credentials",
            "read tickets",
            "create tickets",
            "update tickets",
            "write public notes",
            "write internal notes",
            "upload files",
            "download files",
            "event subscription",
        ] {
            assert!(step(&steps, name).ok, "{auth}: {steps:#?}");
        }
        assert!(step(&steps, "create tickets").detail.contains("not verified without writing"), "{steps:#?}");
        assert!(sim.tickets().is_empty() && sim.subscriptions().is_empty(), "a check writes nothing");

        let steps = steps_of(&settings, "wrong-password").await;
        let credentials = step(&steps, "credentials");
        assert!(!credentials.ok && credentials.detail.contains(TMF_USER) && credentials.fix.is_some(), "{auth}: {credentials:#?}");
    }
}

#[tokio::test]
async fn supplier_setup_tmf621_discovers_servicenow_labels_and_the_snippet_maps_them() {
    let sim = start_tmf(TmfFlavour::Servicenow);
    let settings = tmf_supplier(&sim, "servicenow", "basic", "");
    let (_, client) = siam_hub::adapters::connect(&settings, &egress(), SecretString::from(TMF_PASSWORD.to_string())).expect("the supplier connects");
    let incident: siam_hub::domain::Incident = serde_json::from_value(json!({
        "ref": "INC-000001", "title": "Link down", "description": "d", "status": "assigned", "hold_reason": null,
        "impact": 2, "urgency": 2, "priority": 3, "priority_source": "derived", "category": null,
        "service": null, "ci": null, "caller": "c", "assigned_supplier": null, "resolution": null, "notes": [],
        "opened_at": "2024-05-15T07:45:00.000Z", "updated_at": "2024-05-15T07:45:00.000Z", "resolved_at": null,
        "closed_at": null, "version": 1, "legs": []
    }))
    .unwrap();
    let mut ids = vec![];
    for _ in 0..3 {
        let t = client.create(&incident, &[]).await.expect("created");
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    sim.agent_update(&ids[0], json!({"status": "On Hold"})).unwrap();
    sim.agent_update(&ids[1], json!({"status": "Canceled"})).unwrap();

    let d = discover(&settings, TMF_PASSWORD).await;
    let by = |n: &str| d.statuses.iter().find(|p| p.native == n).cloned().unwrap_or_else(|| panic!("no status {n} in {:#?}", d.statuses));
    assert_eq!((by("On Hold").proposed.as_deref(), by("On Hold").configured.as_deref()), (Some("on_hold"), None));
    assert_eq!((by("Canceled").proposed.as_deref(), by("Canceled").configured.as_deref()), (Some("cancelled"), None));
    assert_eq!(by("New").configured.as_deref(), Some("new"));

    // Without the snippet, the label is inferred at run time; with it, configured.
    let mapping = siam_hub::adapters::mapping_for_supplier(&settings).unwrap();
    let held = sim.tickets().into_iter().find(|t| t["id"] == ids[0].as_str()).unwrap();
    let c = mapping.to_canonical(&mapping.parse_record(&held).unwrap().fields, false);
    assert_eq!(c.status, Some(siam_hub::domain::Status::OnHold));
    assert!(c.unmapped["status"].contains("inferred"), "{:?}", c.unmapped);
    let applied = tmf_supplier(&sim, "servicenow", "basic", &d.toml);
    let mapping = siam_hub::adapters::mapping_for_supplier(&applied).unwrap();
    let c = mapping.to_canonical(&mapping.parse_record(&held).unwrap().fields, false);
    assert_eq!((c.status, c.unmapped.get("status")), (Some(siam_hub::domain::Status::OnHold), None));
}
