//! Properties of what the hub's own API reads from clients and suppliers: TMF621 bodies and
//! query parameters, and webhook credentials. Whatever arrives is answered with an error the
//! caller can read, never a panic; a TroubleTicket the hub renders reads back as its incident.

use super::tmf621::render::{event_for, project, query_wants, read_create, read_patch, trouble_ticket};
use super::webhooks::verify;
use crate::domain::*;
use crate::sync::SupplierLink;
use crate::testkit::{self, config};
use actix_web::test::TestRequest;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::Sha256;

/// TroubleTicket bodies as clients send them: the shapes of the TMF621 fixtures and the hub's
/// own rendering.
fn ticket_bodies() -> BoxedStrategy<Value> {
    let mut seeds = testkit::fixtures("tmf621/fixtures", ".native.json");
    seeds.extend(testkit::fixtures("tmf621/fixtures", ".native-out.json"));
    seeds.push(json!({"description": "Printer jams\nSince Monday", "severity": "Minor", "ticketType": "incident", "priority": "High",
        "relatedEntity": [{"role": "affectedService", "entity": {"id": "printing"}}, {"role": "affectedCI", "id": "prn-4"}],
        "relatedParty": [{"role": "originator", "name": "m.jones"}], "externalId": "CUST-1", "note": [{"id": "1", "text": "hello"}],
        "status": "pending", "statusChangeReason": "Awaiting caller", "name": "Printer",
        "troubleTicketCharacteristic": [{"name": "impact", "value": "2"}, {"name": "urgency", "value": 3}, {"name": "category", "value": "hardware"}, {"name": "resolutionCode", "value": "fixed"}],
        "attachment": [{"id": "7"}]}));
    testkit::payloads(seeds)
}

fn sample_incident() -> Incident {
    serde_json::from_value(json!({
        "ref": "INC-000042", "title": "Core switch down", "description": "No network", "status": "on_hold",
        "hold_reason": "awaiting_change", "impact": 1, "urgency": 2, "priority": 2, "priority_source": "derived",
        "category": "network", "service": "network", "ci": "sw-02", "caller": "j.smith", "assigned_supplier": "sn-network",
        "resolution": null, "notes": [{"id": 1, "visibility": "public", "author": "sd", "text": "On it", "origin": "hub", "created_at": "2024-05-14T06:52:10.000Z"}],
        "opened_at": "2024-05-14T06:50:00.000Z", "updated_at": "2024-05-14T07:00:00.000Z", "resolved_at": null, "closed_at": null,
        "version": 5, "legs": [],
        "attachments": [{"id": 7, "file_name": "a.txt", "content_type": "text/plain", "size": 3, "sha256": "00", "origin": "hub", "created_at": "2024-05-14T06:52:10.000Z", "deliveries": []}]
    }))
    .expect("a canonical incident")
}

fn refused_clearly(code: &str) -> Result<(), TestCaseError> {
    prop_assert!(matches!(code, "22" | "23" | "24"), "TMF630 code {code}");
    Ok(())
}

const SECRET: &str = "a-long-enough-webhook-secret";

/// The supplier link of each webhook authentication, built once (an HTTP client is slow to make).
fn link(auth: &str) -> &'static SupplierLink {
    static LINKS: std::sync::OnceLock<Vec<(&'static str, SupplierLink)>> = std::sync::OnceLock::new();
    let links = LINKS.get_or_init(|| ["hmac", "hub_signature", "basic"].into_iter().map(|a| (a, new_link(a))).collect());
    &links.iter().find(|(a, _)| *a == auth).expect("a known authentication").1
}

fn new_link(auth: &str) -> SupplierLink {
    let s = crate::config::Settings::from_toml(&format!(
        "[[suppliers]]\nid = \"sn\"\nname = \"SN\"\nsystem = \"servicenow\"\nbase_url = \"http://127.0.0.1:1\"\nwebhook_auth = \"{auth}\"\nwebhook_tolerance_secs = 300\n"
    ))
    .expect("a valid configuration");
    let http = crate::adapters::http::SupplierHttp::new(std::time::Duration::from_secs(1), 1, 1).expect("an HTTP client");
    SupplierLink {
        settings: s.suppliers[0].clone(),
        mapping: std::sync::Arc::new(crate::adapters::servicenow::ServiceNow::default()),
        client: std::sync::Arc::new(crate::adapters::servicenow::ServiceNowClient::new(http, "http://127.0.0.1:1", "u", SecretString::from(String::new()))),
        webhook_secret: Some(SecretString::from(SECRET.to_string())),
    }
}

fn hmac_hex(parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    parts.iter().for_each(|p| mac.update(p));
    hex::encode(mac.finalize().into_bytes())
}

/// Header values a sender may put in any header: odd text, hex, base64, numbers.
fn header_value() -> BoxedStrategy<String> {
    prop_oneof![testkit::odd_text(), "(sha256=)?[0-9a-f]{0,70}", "Basic [A-Za-z0-9+/=]{0,40}", any::<i64>().prop_map(|n| n.to_string())].boxed()
}

proptest! {
    #![proptest_config(config(1000))]

    /// A `POST /troubleTicket` body is read as an incident or refused with a TMF630 code.
    #[test]
    fn create_bodies_are_read_or_refused(body in prop_oneof![ticket_bodies(), testkit::json()], caller in testkit::odd_text()) {
        match read_create(&body, &caller) {
            Ok(r) => {
                prop_assert!(!r.new.description.trim().is_empty());
                prop_assert!(r.new.service.is_some() || r.new.ci.is_some());
                prop_assert!(r.notes.iter().all(|t| !t.trim().is_empty()));
            }
            Err(e) => refused_clearly(e.code)?,
        }
    }

    /// A `PATCH /troubleTicket/{id}` body is read as changes or refused with a TMF630 code.
    #[test]
    fn patch_bodies_are_read_or_refused(body in prop_oneof![ticket_bodies(), testkit::json()]) {
        let current = sample_incident();
        match read_patch(&body, &current) {
            Ok(p) => prop_assert!(p.notes.iter().all(|t| !t.trim().is_empty())),
            Err(e) => refused_clearly(e.code)?,
        }
    }

    /// A client that reads a ticket and sends it back (to create it elsewhere, or as a
    /// whole-ticket patch) gives the incident's own values back.
    #[test]
    fn a_rendered_ticket_reads_back_as_its_incident(incident in testkit::incident()) {
        let ticket = trouble_ticket("https://hub", &incident, Some("CUST-1"), &[]);
        let has_text = |s: &str| !s.trim().is_empty();
        let located = incident.service.as_deref().is_some_and(has_text) || incident.ci.as_deref().is_some_and(has_text);
        match read_create(&ticket, "fallback") {
            Ok(r) => {
                prop_assert_eq!((r.new.impact, r.new.urgency), (incident.impact, incident.urgency));
                prop_assert_eq!(&r.new.description, &incident.description);
                prop_assert_eq!(r.external_id.as_deref(), Some("CUST-1"));
                if has_text(&incident.title) {
                    prop_assert_eq!(&r.new.title, &incident.title);
                }
            }
            Err(e) => prop_assert!(!has_text(&incident.description) || !located, "refused: {e:?}"),
        }
        match read_patch(&ticket, &incident) {
            Ok(p) => {
                let c = p.changes;
                prop_assert_eq!(c.impact, Some(incident.impact));
                prop_assert_eq!(c.urgency, Some(incident.urgency));
                prop_assert_eq!(c.title.as_deref(), Some(incident.title.as_str()));
                prop_assert_eq!(c.description.as_deref(), Some(incident.description.as_str()));
                if let Some(s) = c.status {
                    prop_assert_eq!(s, incident.status);
                }
                if incident.status == Status::OnHold {
                    prop_assert_eq!(c.hold_reason, Some(incident.hold_reason));
                }
                if let Some(Some(r)) = c.resolution {
                    prop_assert_eq!(Some(&r.code), incident.resolution.as_ref().map(|x| &x.code));
                }
            }
            Err(e) => prop_assert!(!has_text(&incident.title), "refused: {e:?}"),
        }
    }

    /// Hub events map to TMF621 events (or none) whatever their data; a `fields` projection
    /// only ever removes attributes; any subscription query is read.
    #[test]
    fn events_projections_and_queries_never_fail(
        kind in prop_oneof![prop::sample::select(vec!["incident.created", "incident.status_changed", "incident.note_added", "incident.updated"]).prop_map(str::to_string), testkit::odd_text()],
        data in testkit::json_in(vec!["changes".into(), "visibility".into(), "title".into(), "impact".into()], vec!["public".into(), "internal".into()]),
        fields in prop::option::of(prop_oneof!["[a-zA-Z@, ]{0,40}", testkit::odd_text()]),
        query in prop_oneof!["(eventType=[A-Za-z,%2C]{0,40}&?){0,3}", testkit::odd_text()],
    ) {
        let _ = event_for(&kind, &data);
        let ticket = trouble_ticket("", &sample_incident(), None, &[]);
        let projected = project(ticket.clone(), fields.as_deref());
        let (all, kept) = (ticket.as_object().expect("a ticket is an object"), projected.as_object().expect("a projection is an object"));
        prop_assert!(kept.keys().all(|k| all.contains_key(k)));
        prop_assert!(["id", "href", "@type"].iter().all(|k| kept.contains_key(*k)));
        let _ = query_wants(&query, "TroubleTicketCreateEvent");
    }

    /// Whatever headers and body a webhook delivery carries, it is let in or refused, never a
    /// crash; a correctly signed one is let in exactly when its timestamp is within tolerance.
    #[test]
    fn webhook_credentials_are_checked_whatever_arrives(
        headers in prop::collection::vec((prop::sample::select(vec!["x-siam-timestamp", "x-siam-signature", "x-hub-signature", "authorization", "x-other"]), header_value()), 0..5),
        body in prop_oneof![testkit::json().prop_map(|v| v.to_string().into_bytes()), prop::collection::vec(any::<u8>(), 0..64)],
        sent in prop_oneof![any::<i64>(), 1_700_000_000i64..1_700_001_000, Just(i64::MIN), Just(i64::MAX)],
        now in prop_oneof![1_700_000_000i64..1_700_001_000, any::<i64>()],
    ) {
        for auth in ["hmac", "hub_signature", "basic"] {
            let l = link(auth);
            let mut req = TestRequest::default();
            for (name, value) in &headers {
                if let Ok(v) = actix_web::http::header::HeaderValue::from_str(value) {
                    req = req.insert_header((*name, v));
                }
            }
            let _ = verify(l, &req.to_http_request(), &body, now);
        }
        // Signed as the supplier would, at `sent`.
        let fresh = now.checked_sub(sent).is_some_and(|age| age.checked_abs().is_some_and(|a| a <= 300));
        let ts = sent.to_string();
        let sig = hmac_hex(&[ts.as_bytes(), b".", &body]);
        let req = TestRequest::default().insert_header(("x-siam-timestamp", ts.as_str())).insert_header(("x-siam-signature", format!("sha256={sig}"))).to_http_request();
        prop_assert_eq!(verify(link("hmac"), &req, &body, now).is_ok(), fresh, "hmac at {} seen at {}", sent, now);
        let jira_body = json!({"timestamp": sent, "webhookEvent": "jira:issue_updated"}).to_string().into_bytes();
        let req = TestRequest::default().insert_header(("x-hub-signature", format!("sha256={}", hmac_hex(&[&jira_body])))).to_http_request();
        let fresh_ms = now.checked_sub(sent.div_euclid(1000)).is_some_and(|age| age.checked_abs().is_some_and(|a| a <= 300));
        prop_assert_eq!(verify(link("hub_signature"), &req, &jira_body, now).is_ok(), fresh_ms, "hub signature at {} ms seen at {}", sent, now);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("sn:{SECRET}"));
        let req = TestRequest::default().insert_header(("authorization", format!("Basic {basic}"))).to_http_request();
        prop_assert!(verify(link("basic"), &req, &body, now).is_ok());
    }
}

/// A validly signed delivery whose timestamp is at the far end of the number range is refused
/// as stale, not a crash of the request.
#[test]
fn a_signed_timestamp_at_the_end_of_the_number_range_is_refused() {
    let now = 1_700_000_000;
    for sent in [i64::MIN, i64::MIN + 1, -i64::MAX + now - 1] {
        let ts = sent.to_string();
        let sig = hmac_hex(&[ts.as_bytes(), b".", b"{}"]);
        let req = TestRequest::default().insert_header(("x-siam-timestamp", ts.as_str())).insert_header(("x-siam-signature", sig)).to_http_request();
        assert!(verify(link("hmac"), &req, b"{}", now).is_err(), "signed at {sent}");
    }
    let body = json!({"timestamp": i64::MIN}).to_string().into_bytes();
    let req = TestRequest::default().insert_header(("x-hub-signature", format!("sha256={}", hmac_hex(&[&body])))).to_http_request();
    assert!(verify(link("hub_signature"), &req, &body, i64::MAX).is_err());
}
