//! The AR System REST calls for Remedy change requests.
//!
//! Changes are created on `CHG:ChangeInterface_Create` and read and updated on
//! `CHG:ChangeInterface`, whose names differ: the create form's `Status` is the interface's
//! `Change Request Status`, and the create answer names its own staging entry in `Request ID`
//! and `Location`, the change itself in `Change_Entry_ID` / `Infrastructure Change Id`. So a
//! create is read back from the interface by the change's entry id, and an update sends the
//! interface's names, leaving out what is set once at create (the hub reference in
//! `Vendor Ticket Number`, the request class in `Change Type`). Work notes are `CHG:WorkLog`
//! entries linked by `Infrastructure Change ID`, filed with the internal view access.
//!
//! Login, retries and the rate governor are the incident client's ([`RemedyClient`]); creates
//! and work notes are written once: before a retry of an attempt whose outcome is unknown, the
//! client looks for what that attempt made and adopts it.

use super::client::{ar_quote, values_param, worklog_fields, RemedyClient};
use super::mapping::{self, percent_encode};
use crate::adapters::change::remedy::RemedyChange;
use crate::adapters::change::ChangeClient;
use crate::adapters::SupplierError;
use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::sync::LazyLock;

const CREATE_FORM: &str = "CHG:ChangeInterface_Create";
const CHANGE_FORM: &str = "CHG:ChangeInterface";
const WORKLOG_FORM: &str = "CHG:WorkLog";
/// Where the create body carries the hub's change reference (read and create name alike).
const CORRELATION: &str = "Vendor Ticket Number";
/// Create names the interface knows under another name.
const RENAMED_ON_UPDATE: &[(&str, &str)] = &[("Status", "Change Request Status")];
/// Create fields set once: an update leaves them out.
const CREATE_ONLY: &[&str] = &[CORRELATION, "Change Type"];
/// The change's business id, which its work logs are filed under.
const CHANGE_NUMBER: &str = "Infrastructure Change ID";
/// Changes read when looking a hub reference up.
const LOOKUP_LIMIT: usize = 50;

/// Change fields read on every change call: everything the change mapping reads.
static READ_FIELDS: LazyLock<Vec<&'static str>> = LazyLock::new(RemedyChange::read_names);

/// Change work log fields read: those of every work log, under the change's number.
static WORKLOG_FIELDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| worklog_fields(&[CHANGE_NUMBER], &[]));

/// How a change create attempt ended.
enum Created {
    /// Remedy made the change: its entry id, when the answer gave it.
    New(Option<String>),
    /// An earlier attempt had made it after all: the change as the interface reads it.
    Existing(Value),
}

/// The field values of a `{"values": {...}}` body.
fn body_values<'a>(what: &str, body: &'a Value) -> Result<&'a Map<String, Value>, SupplierError> {
    body.get("values").and_then(Value::as_object).ok_or_else(|| SupplierError::Rejected { status: 0, message: format!("{what}: the body must be {{\"values\": {{...}}}}") })
}

/// What the interface takes of a create body: its names for the create form's, without the
/// fields set once at create.
fn update_values(create: &Map<String, Value>) -> Map<String, Value> {
    create
        .iter()
        .filter(|(k, _)| !CREATE_ONLY.contains(&k.as_str()))
        .map(|(k, v)| {
            let name = RENAMED_ON_UPDATE.iter().find(|(c, _)| c == k).map(|(_, r)| r.to_string()).unwrap_or_else(|| k.clone());
            (name, v.clone())
        })
        .collect()
}

/// A field of an entry (`{"values": {...}}` or bare values) as text; `""` when missing.
fn field(entry: &Value, name: &str) -> String {
    mapping::text_of(entry.get("values").unwrap_or(entry).get(name))
}

impl RemedyClient {
    /// The change's interface entry, by its entry id (`Request ID`).
    fn change_entry_url(&self, native_id: &str) -> String {
        format!("{}/{}", self.form_url(CHANGE_FORM), percent_encode(native_id))
    }

    async fn get_change(&self, native_id: &str) -> Result<Value, SupplierError> {
        let what = "Remedy read change";
        let entry = self.call(what, Method::GET, &self.change_entry_url(native_id), &[("fields", values_param(&READ_FIELDS))], None).await?.json(what)?;
        if !entry.get("values").is_some_and(Value::is_object) {
            return Err(SupplierError::Protocol(format!("{what}: the answer is not an entry")));
        }
        Ok(entry)
    }

    /// One create attempt; answers the change's entry id when Remedy names it.
    async fn create_change_attempt(&self, body: &Value) -> Result<Created, SupplierError> {
        let what = "Remedy create change";
        let answer =
            self.attempt(what, &Method::POST, &self.form_url(CREATE_FORM), &[("fields", values_param(&["Change_Entry_ID", "Infrastructure Change Id"]))], Some(body)).await?;
        let v = answer.json(what).unwrap_or(Value::Null);
        let id = ["Change_Entry_ID", "Infrastructure Change Id"].iter().map(|k| field(&v, k)).find(|s| !s.trim().is_empty());
        if id.is_none() {
            let location = answer.headers.get("location").and_then(|l| l.to_str().ok()).unwrap_or("");
            tracing::warn!(status = %answer.status, %location, "Remedy created an entry but named no change entry id");
        }
        Ok(Created::New(id))
    }

    /// The create body with what this instance's settings add: the company the change is for
    /// and, when configured, the customer by name.
    fn change_create_body(&self, body: &Value) -> Result<Value, SupplierError> {
        let mut values = body_values("Remedy create change", body)?.clone();
        let s = &self.settings;
        let non_empty = |v: &Option<String>| v.as_ref().filter(|v| !v.trim().is_empty()).cloned();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                values.entry(k.to_string()).or_insert(json!(v));
            }
        };
        add("Company", non_empty(&s.company));
        add("Location Company", non_empty(&s.company));
        if let (Some(first), Some(last)) = (non_empty(&s.customer_first_name), non_empty(&s.customer_last_name)) {
            add("Customer First Name", Some(first));
            add("Customer Last Name", Some(last));
        }
        Ok(json!({ "values": values }))
    }

    /// The change's business id, which its work logs name.
    async fn change_number(&self, native_id: &str) -> Result<String, SupplierError> {
        let entry = self.get_change(native_id).await?;
        Some(field(&entry, CHANGE_NUMBER)).filter(|n| !n.trim().is_empty()).ok_or_else(|| SupplierError::Protocol(format!("Remedy change {native_id} has no {CHANGE_NUMBER}")))
    }

    fn change_worklog_body(&self, number: &str, text: &str) -> Value {
        let wl = &self.profile.worklog;
        let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        json!({ "values": {
            CHANGE_NUMBER: number,
            "Work Log Type": wl.log_type,
            "Description": mapping::truncate_chars(first_line, wl.summary_max_chars),
            "Detailed Description": text,
            // Written out every time: the form's default is Public.
            "View Access": wl.internal,
            "Secure Work Log": "No",
        }})
    }

    async fn change_worklog_attempt(&self, number: &str, text: &str) -> Result<(), SupplierError> {
        let what = "Remedy add change work log";
        self.attempt(what, &Method::POST, &self.form_url(WORKLOG_FORM), &[("fields", values_param(&["Work Log ID"]))], Some(&self.change_worklog_body(number, text))).await?;
        Ok(())
    }

    /// Whether an earlier attempt filed the note: a work log of the change with the same text
    /// and internal view access, by the integration user.
    async fn change_worklog_written(&self, number: &str, text: &str) -> Result<Option<()>, SupplierError> {
        let q = format!("'{CHANGE_NUMBER}' = {}", ar_quote(number));
        let held = self.query_all("Remedy change work logs", WORKLOG_FORM, &q, &WORKLOG_FIELDS, "Submit Date.asc").await?;
        let found = held.iter().any(|e| {
            field(e, "Detailed Description").trim() == text.trim()
                && field(e, "View Access") == self.profile.worklog.internal
                && [field(e, "Work Log Submitter"), field(e, "Submitter")].contains(&self.user)
        });
        Ok(found.then_some(()))
    }
}

#[async_trait]
impl ChangeClient for RemedyClient {
    fn change_system(&self) -> &'static str {
        "remedy"
    }

    /// The changes carrying the reference in `Vendor Ticket Number`, newest first.
    async fn find_changes(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        let q = format!("'{CORRELATION}' = {}", ar_quote(reference));
        let (entries, _) = self.query_page("Remedy lookup change by Vendor Ticket Number", CHANGE_FORM, &q, &READ_FIELDS, "Submit Date.desc", 0, LOOKUP_LIMIT).await?;
        Ok(entries)
    }

    /// Creates through `CHG:ChangeInterface_Create`, then reads the change back from the
    /// interface (the create form answers in its own names and ids).
    async fn create_change(&self, reference: &str, body: &Value) -> Result<Value, SupplierError> {
        let body = self.change_create_body(body)?;
        let created = self
            .http
            .write_once(
                "Remedy create change",
                || self.create_change_attempt(&body),
                || async { Ok(self.find_changes(reference).await?.into_iter().next().map(Created::Existing)) },
            )
            .await?;
        match created {
            Created::Existing(entry) => Ok(entry),
            Created::New(Some(id)) => self.get_change(&id).await,
            Created::New(None) => self
                .find_changes(reference)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| SupplierError::Protocol(format!("Remedy accepted the change create but no change carries {reference} in {CORRELATION}"))),
        }
    }

    /// `PUT` of the fields the interface takes (Remedy answers 204 with no body), then a read
    /// of the result.
    async fn update_change(&self, native_id: &str, body: &Value) -> Result<Value, SupplierError> {
        let what = "Remedy update change";
        let values = update_values(body_values(what, body)?);
        if !values.is_empty() {
            self.call(what, Method::PUT, &self.change_entry_url(native_id), &[], Some(&json!({ "values": values }))).await?;
        }
        self.get_change(native_id).await
    }

    async fn fetch_change(&self, native_id: &str) -> Result<Value, SupplierError> {
        self.get_change(native_id).await
    }

    /// A `CHG:WorkLog` entry with internal view access.
    async fn add_change_note(&self, native_id: &str, text: &str) -> Result<(), SupplierError> {
        let number = self.change_number(native_id).await?;
        self.http.write_once("Remedy add change work log", || self.change_worklog_attempt(&number, text), || self.change_worklog_written(&number, text)).await
    }

    /// The interface entry's REST address (Remedy's mid-tier address is not known to the hub).
    fn change_url(&self, native_id: &str) -> String {
        self.change_entry_url(native_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::change::mapping_for;
    use crate::adapters::http::SupplierHttp;
    use crate::config::RemedySettings;
    use crate::domain::change::{Change, ChangeRef, ChangeStatus, ChangeType};
    use crate::sim::remedy::{Fault, FaultTarget, RemedySim, SimConfig, CHANGE_CREATE_FORM};
    use chrono::{TimeZone, Utc};
    use secrecy::SecretString;
    use std::time::Duration;

    const USER: &str = "hub.integration";
    const PASSWORD: &str = "remedy-password";

    #[test]
    fn forms_and_names_are_the_change_profiles() {
        let p: Value = serde_json::from_str(include_str!("../../../adapters/remedy/change_profile.json")).expect("the change profile is JSON");
        assert_eq!(p["forms"]["create"], CREATE_FORM);
        assert_eq!(p["forms"]["read"], CHANGE_FORM);
        assert_eq!(p["create"]["correlation"], CORRELATION);
        assert_eq!(p["fields"]["correlation"][0], CORRELATION);
        assert_eq!(p["fields"]["number"][0], CHANGE_NUMBER);
        for key in p["create"]["defaults"].as_object().expect("defaults").keys() {
            assert!(CREATE_ONLY.contains(&key.as_str()), "{key} is set at create only");
        }
        for (create, read) in RENAMED_ON_UPDATE {
            let key = p["create"].as_object().expect("create").iter().find(|(_, v)| *v == create).map(|(k, _)| k.clone()).expect("a create name");
            assert_eq!(p["fields"][&key][0], *read, "{key}");
        }
        // Every field the mapping reads is asked for, in one of its names.
        for (key, names) in p["fields"].as_object().expect("fields") {
            let Some(names) = names.as_array() else { continue };
            assert!(names.iter().any(|n| n.as_str().is_some_and(|n| READ_FIELDS.contains(&n))), "{key} is read");
        }
    }

    #[test]
    fn updates_send_interface_names_without_set_once_fields() {
        let create = json!({"Status": "Scheduled", "Description": "x", "Vendor Ticket Number": "CHG-000001", "Change Type": "Change", "Status Reason": "r"});
        let sent = update_values(create.as_object().expect("an object"));
        assert_eq!(Value::Object(sent), json!({"Change Request Status": "Scheduled", "Description": "x", "Status Reason": "r"}));
    }

    struct Setup {
        sim: RemedySim,
        client: RemedyClient,
    }

    async fn setup() -> Setup {
        let sim = RemedySim::new(SimConfig { user: USER.into(), password: PASSWORD.into(), ..SimConfig::default() });
        sim.start(std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).expect("start");
        let base = sim.base_url().expect("base url");
        let http = SupplierHttp::new(Duration::from_secs(2), 100, 4).expect("an HTTP client").with_min_backoff(Duration::from_millis(20));
        let settings: RemedySettings = serde_json::from_value(json!({})).expect("default settings");
        let client = RemedyClient::new(http, &base, USER, SecretString::from(PASSWORD.to_string()), settings, mapping::default_profile());
        Setup { sim, client }
    }

    fn change(n: i64) -> Change {
        let mut c = Change::blank();
        c.reference = Some(ChangeRef::new(n));
        c.title = "Core switch firmware upgrade".into();
        c.description = "Upgrade both core switches to 17.9.4".into();
        c.status = Some(ChangeStatus::Assess);
        c.change_type = Some(ChangeType::Normal);
        c.planned_start = Utc.with_ymd_and_hms(2026, 12, 6, 22, 0, 0).single();
        c.planned_end = Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).single();
        c
    }

    fn read(v: &Value) -> Change {
        mapping_for("remedy").expect("the remedy change mapping").read(v).expect("a change")
    }

    #[tokio::test]
    async fn a_change_is_created_and_read_back_as_the_mapping_reads_it() {
        let s = setup().await;
        let c = change(1);
        let body = mapping_for("remedy").expect("mapping").create_body(&c);
        let created = s.client.create_change("CHG-000001", &body).await.expect("created");
        let got = read(&created);
        assert_eq!(got.status, Some(ChangeStatus::Assess));
        assert_eq!(got.legs[0].native_status.as_deref(), Some("Planning In Progress"));
        assert_eq!((got.planned_start, got.planned_end), (c.planned_start, c.planned_end));
        assert_eq!(got.reference, c.reference);
        assert_eq!(got.title, c.title);
        assert_eq!(got.change_type, Some(ChangeType::Normal));
        let id = got.legs[0].native_id.clone();
        assert!(id.starts_with("CRQ"), "{id}");
        assert_eq!(got.legs[0].native_number.as_deref(), Some(id.as_str()));

        assert_eq!(s.sim.changes_by_vendor_ticket("CHG-000001").len(), 1);
        let found = s.client.find_changes("CHG-000001").await.expect("found");
        assert_eq!(found.len(), 1);
        assert_eq!(read(&found[0]).legs[0].native_id, id);
        assert!(s.client.find_changes("CHG-000002").await.expect("none").is_empty());
        assert_eq!(read(&s.client.fetch_change(&id).await.expect("fetched")).reference, c.reference);
        assert!(s.client.change_url(&id).ends_with(&format!("/api/arsys/v1/entry/CHG:ChangeInterface/{id}")));
        assert_eq!(s.client.change_system(), "remedy");
        assert!(crate::adapters::Client::changes(&s.client).is_some());
    }

    #[tokio::test]
    async fn a_create_whose_answer_is_lost_after_commit_makes_one_change() {
        let s = setup().await;
        s.sim.push_fault_for(FaultTarget { method: Some("POST".into()), form: Some(CHANGE_CREATE_FORM.into()) }, Fault::LoseResponseAfterCommit);
        let body = mapping_for("remedy").expect("mapping").create_body(&change(7));
        let created = s.client.create_change("CHG-000007", &body).await.expect("adopted");
        assert_eq!(s.sim.changes_by_vendor_ticket("CHG-000007").len(), 1, "exactly one change");
        assert_eq!(s.sim.changes().len(), 1);
        assert_eq!(read(&created).reference, Some(ChangeRef::new(7)));
        let posts: Vec<u16> = s.sim.request_log().iter().filter(|r| r.method == "POST" && r.path.contains("ChangeInterface_Create")).map(|r| r.status).collect();
        assert_eq!(posts, [504], "the answer was lost, and the retry adopted the change instead of posting again");
    }

    #[tokio::test]
    async fn updates_move_the_status_and_notes_land_as_internal_work_logs() {
        let s = setup().await;
        let mapping = mapping_for("remedy").expect("mapping");
        let mut c = change(3);
        let id = read(&s.client.create_change("CHG-000003", &mapping.create_body(&c)).await.expect("created")).legs[0].native_id.clone();

        c.status = Some(ChangeStatus::Authorize);
        let after = read(&s.client.update_change(&id, &mapping.create_body(&c)).await.expect("updated"));
        assert_eq!(after.status, Some(ChangeStatus::Authorize));
        assert_eq!(after.legs[0].native_status.as_deref(), Some("Scheduled For Approval"));
        assert_eq!(after.reference, c.reference, "the reference stays");
        c.on_hold = true;
        c.hold_reason = Some("Waiting for the vendor's firmware".into());
        let held = read(&s.client.update_change(&id, &mapping.create_body(&c)).await.expect("updated"));
        assert!(held.on_hold);
        assert_eq!(held.hold_reason, c.hold_reason);

        s.client.add_change_note(&id, "Back-out requested\nPlease back out the work.").await.expect("noted");
        let logs = s.sim.change_worklogs(&id);
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0]["Detailed Description"], "Back-out requested\nPlease back out the work.");
        assert_eq!(logs[0]["Description"], "Back-out requested");
        assert_eq!(logs[0]["View Access"], "Internal");
        assert_eq!(logs[0]["Infrastructure Change ID"], id.as_str());
        assert_eq!(logs[0]["Work Log Submitter"], USER);
    }

    #[tokio::test]
    async fn a_note_whose_answer_is_lost_is_filed_once() {
        let s = setup().await;
        let id = read(&s.client.create_change("CHG-000004", &mapping_for("remedy").expect("mapping").create_body(&change(4))).await.expect("created")).legs[0].native_id.clone();
        s.sim.push_fault_for(FaultTarget { method: Some("POST".into()), form: Some("CHG:WorkLog".into()) }, Fault::LoseResponseAfterCommit);
        s.client.add_change_note(&id, "Please confirm the window").await.expect("noted");
        assert_eq!(s.sim.change_worklogs(&id).len(), 1);
    }

    #[tokio::test]
    async fn the_coordinators_edits_in_remedy_are_fetched() {
        let s = setup().await;
        let id = read(&s.client.create_change("CHG-000005", &mapping_for("remedy").expect("mapping").create_body(&change(5))).await.expect("created")).legs[0].native_id.clone();
        let after = s
            .sim
            .agent_update_change(&id, json!({"Change Request Status": "Scheduled", "Scheduled Start Date": "2026-12-08T22:00:00Z", "Scheduled End Date": "2026-12-08T23:30:00Z"}))
            .expect("the coordinator's save");
        assert_eq!(after["Last Modified By"], "Allen");
        let got = read(&s.client.fetch_change(&id).await.expect("fetched"));
        assert_eq!(got.status, Some(ChangeStatus::Scheduled));
        assert_eq!((got.planned_start, got.planned_end), (Utc.with_ymd_and_hms(2026, 12, 8, 22, 0, 0).single(), Utc.with_ymd_and_hms(2026, 12, 8, 23, 30, 0).single()));
        assert!(got.updated_at.is_some());
    }

    #[tokio::test]
    async fn a_throttled_or_failing_change_call_is_retried_and_an_unknown_change_is_refused() {
        let s = setup().await;
        let id = read(&s.client.create_change("CHG-000006", &mapping_for("remedy").expect("mapping").create_body(&change(6))).await.expect("created")).legs[0].native_id.clone();
        s.sim.push_fault_for(FaultTarget { method: Some("GET".into()), form: Some("CHG:ChangeInterface".into()) }, Fault::RateLimited { retry_after_secs: 0 });
        s.sim.push_fault_for(FaultTarget { method: Some("GET".into()), form: Some("CHG:ChangeInterface".into()) }, Fault::ServerError);
        assert!(s.client.fetch_change(&id).await.is_ok());
        s.sim.expire_tokens();
        assert!(s.client.fetch_change(&id).await.is_ok(), "a fresh login after the token expired");
        let err = s.client.fetch_change("CRQ000000999999").await.expect_err("no such change");
        assert!(matches!(err, SupplierError::Rejected { status: 404, .. }), "{err:?}");
        let err = s.client.update_change(&id, &json!({"Status": "Draft"})).await.expect_err("not a values body");
        assert!(matches!(err, SupplierError::Rejected { status: 0, .. }), "{err:?}");
    }
}
