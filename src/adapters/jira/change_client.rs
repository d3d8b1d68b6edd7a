//! Change legs on a Jira Service Management site: change issues in the service project, read in
//! REST v3 in the shape [`JiraChange`] reads and written with the body its `create_body` makes
//! (`fields`, plus the `transition` to the wanted status, since Jira sets statuses only through
//! workflow transitions).
//!
//! [`JiraChange`]: crate::adapters::change::jira::JiraChange

use super::client::{segment, JiraClient};
use crate::adapters::change::jira::{self as mapping, TRANSITION};
use crate::adapters::change::{loose, ChangeClient};
use crate::adapters::{Client, SupplierError};
use crate::domain::change::ChangeRef;
use crate::domain::Visibility;
use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Map, Value};

/// Change issues read when looking a hub reference up.
const LOOKUP_LIMIT: usize = 20;

/// A hub change reference the hub can look up: `CHG-` and digits, nothing else.
fn change_ref(what: &str, reference: &str) -> Result<ChangeRef, SupplierError> {
    reference.trim().parse::<ChangeRef>().map_err(|e| SupplierError::Rejected { status: 0, message: format!("{what}: {e}") })
}

/// An issue id the hub can address: not empty.
fn issue_id<'a>(what: &str, id: &'a str) -> Result<&'a str, SupplierError> {
    if id.trim().is_empty() {
        return Err(SupplierError::Rejected { status: 0, message: format!("{what}: no Jira issue id") });
    }
    Ok(id)
}

/// What a JSON value is, for an error message.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The status a change body asks for, and the resolution its transition screen takes.
type Wanted = Option<(String, Option<String>)>;

/// The `fields` and the wanted transition of a change body.
fn parts<'a>(what: &str, body: &'a Value) -> Result<(&'a Map<String, Value>, Wanted), SupplierError> {
    let fields = body
        .get("fields")
        .and_then(Value::as_object)
        .ok_or_else(|| SupplierError::Rejected { status: 0, message: format!("{what}: the change body is {} without an object of `fields`", kind(body)) })?;
    let transition = body.get(TRANSITION).and_then(|t| {
        let to = t.get("to").and_then(Value::as_str).filter(|s| !s.trim().is_empty())?;
        Some((to.to_string(), t.get("resolution").and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(str::to_string)))
    });
    Ok((fields, transition))
}

fn text_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string()))
}

impl JiraClient {
    /// The issue as the change mapping reads it.
    async fn read_change(&self, what: &str, id: &str) -> Result<Value, SupplierError> {
        let path = format!("/rest/api/3/issue/{}", segment(id));
        self.call(what, Method::GET, &path, &[("fields", mapping::read_fields().join(","))], None).await
    }

    /// One attempt at listing the change issues carrying `reference`, newest first.
    async fn change_lookup_attempt(&self, reference: &ChangeRef) -> Result<Vec<Value>, SupplierError> {
        let what = "Jira change lookup";
        let mut jql = format!("labels = {} AND issuetype = {}", Self::quote(&mapping::reference_label(reference.as_str())), Self::quote(mapping::issue_type()));
        if !self.cfg.project_key.is_empty() {
            jql.push_str(&format!(" AND project = {}", Self::quote(&self.cfg.project_key)));
        }
        jql.push_str(" ORDER BY created DESC");
        let body = json!({ "jql": jql, "maxResults": LOOKUP_LIMIT, "fields": mapping::read_fields() });
        let r = self.send_once(what, Method::POST, "/rest/api/3/search/jql", &[], Some(&body)).await?;
        let issues = r.get("issues").and_then(Value::as_array).ok_or_else(|| SupplierError::Protocol(format!("{what}: the search answered without `issues`")))?;
        // The reference field, where set, must agree: a label copied onto another issue by hand
        // does not make it this change's.
        let field = mapping::reference_field();
        Ok(issues
            .iter()
            .filter(|i| match i.pointer(&format!("/fields/{field}")).and_then(Value::as_str).map(str::trim) {
                Some(r) if !r.is_empty() => r == reference.as_str(),
                _ => true,
            })
            .cloned()
            .collect())
    }

    /// One create attempt: the issue's id.
    async fn try_create_change(&self, fields: &Map<String, Value>) -> Result<String, SupplierError> {
        let what = "Jira create change";
        let mut fields = fields.clone();
        if !self.cfg.project_key.is_empty() {
            fields.insert("project".into(), json!({ "key": self.cfg.project_key }));
        }
        let r = self.send_once(what, Method::POST, "/rest/api/3/issue", &[], Some(&json!({ "fields": fields }))).await?;
        r.get("id").and_then(text_of).ok_or_else(|| SupplierError::Protocol(format!("{what}: Jira answered without an issue id")))
    }

    /// Moves the change issue to the status named `to` through the transition reaching it, with
    /// `resolution` on its screen when it leads to a done status. Each attempt starts from the
    /// issue as it is, so a retry after a lost answer finds the move made.
    async fn move_change(&self, id: &str, to: &str, resolution: Option<&str>) -> Result<(), SupplierError> {
        self.http.retrying("Jira transition change", || self.try_move_change(id, to, resolution)).await
    }

    async fn try_move_change(&self, id: &str, to: &str, resolution: Option<&str>) -> Result<(), SupplierError> {
        let issue_path = format!("/rest/api/3/issue/{}", segment(id));
        let issue = self.send_once("Jira read change", Method::GET, &issue_path, &[("fields", "status".into())], None).await?;
        let current = issue.pointer("/fields/status/name").and_then(Value::as_str).unwrap_or("").to_string();
        if loose(&current) == loose(to) {
            return Ok(());
        }
        let path = format!("/rest/api/3/issue/{}/transitions", segment(id));
        let listed = self.send_once("Jira list transitions", Method::GET, &path, &[], None).await?;
        let available = listed.get("transitions").and_then(Value::as_array).cloned().unwrap_or_default();
        let target = |t: &Value| t.pointer("/to/name").and_then(Value::as_str).unwrap_or("").to_string();
        let Some(chosen) = available.iter().find(|t| loose(&target(t)) == loose(to)) else {
            let names: Vec<String> = available.iter().map(|t| format!("{} -> {}", t.get("name").and_then(Value::as_str).unwrap_or("?"), target(t))).collect();
            return Err(SupplierError::Rejected {
                status: 409,
                message: format!("Jira change {id}: no transition from `{current}` reaches `{to}`; available: [{}]", names.join(", ")),
            });
        };
        let mut body = json!({ "transition": { "id": chosen.get("id").and_then(text_of).unwrap_or_default() } });
        let to_done = chosen.pointer("/to/statusCategory/key").and_then(Value::as_str) == Some("done");
        if let Some(r) = resolution.filter(|_| to_done && chosen.get("hasScreen").and_then(Value::as_bool).unwrap_or(false)) {
            body["fields"] = json!({ "resolution": { "name": r } });
        }
        self.send_once("Jira transition change", Method::POST, &path, &[], Some(&body)).await?;
        Ok(())
    }
}

#[async_trait]
impl ChangeClient for JiraClient {
    fn change_system(&self) -> &'static str {
        "jira"
    }

    /// Looks the `siam-CHG-…` label up among the project's change issues (labels match exactly
    /// in JQL; text fields do not).
    async fn find_changes(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        let reference = change_ref("Jira change lookup", reference)?;
        self.http.retrying("Jira change lookup", || self.change_lookup_attempt(&reference)).await
    }

    /// Creates once ([`crate::adapters::http::SupplierHttp::write_once`]): before a retry, the
    /// change issue an unanswered attempt may have made is looked up by `reference` and taken.
    /// The issue is then moved to the wanted status and read back.
    async fn create_change(&self, reference: &str, body: &Value) -> Result<Value, SupplierError> {
        let what = "Jira create change";
        let reference = change_ref(what, reference)?;
        let (fields, transition) = parts(what, body)?;
        let id = self
            .http
            .write_once(what, || self.try_create_change(fields), || async { Ok(self.change_lookup_attempt(&reference).await?.first().and_then(|i| i.get("id")).and_then(text_of)) })
            .await?;
        if let Some((to, resolution)) = &transition {
            self.move_change(&id, to, resolution.as_deref()).await?;
        }
        self.read_change("Jira read change", &id).await
    }

    /// Edits the fields (less those only a create sets), then moves the status when it differs,
    /// and reads the issue back.
    async fn update_change(&self, native_id: &str, body: &Value) -> Result<Value, SupplierError> {
        let what = "Jira update change";
        let id = issue_id(what, native_id)?;
        let (fields, transition) = parts(what, body)?;
        let create_only = mapping::create_only_fields();
        let mut edit: Map<String, Value> = fields.iter().filter(|(k, _)| !create_only.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        // An emptied description is cleared, not left as it was.
        edit.entry("description").or_insert(Value::Null);
        let path = format!("/rest/api/3/issue/{}", segment(id));
        self.call("Jira edit change", Method::PUT, &path, &[], Some(&json!({ "fields": edit }))).await?;
        if let Some((to, resolution)) = &transition {
            self.move_change(id, to, resolution.as_deref()).await?;
        }
        self.read_change("Jira read change", id).await
    }

    async fn fetch_change(&self, native_id: &str) -> Result<Value, SupplierError> {
        let what = "Jira read change";
        self.read_change(what, issue_id(what, native_id)?).await
    }

    /// An internal comment (JSM `public: false`, read back as `jsdPublic: false`), written once
    /// as the incident notes are.
    async fn add_change_note(&self, native_id: &str, text: &str) -> Result<(), SupplierError> {
        let id = issue_id("Jira add change note", native_id)?;
        self.add_note(id, Visibility::Internal, text).await.map(|_| ())
    }

    /// The issue's page (issue ids open through `ViewIssue`; keys through `/browse`).
    fn change_url(&self, native_id: &str) -> String {
        if native_id.bytes().all(|b| b.is_ascii_digit()) {
            format!("{}/secure/ViewIssue.jspa?id={}", self.base, segment(native_id))
        } else {
            format!("{}/browse/{}", self.base, segment(native_id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::change::mapping_for;
    use crate::adapters::http::SupplierHttp;
    use crate::adapters::jira::JiraConfig;
    use crate::config::JiraSettings;
    use crate::domain::change::{Approval, Change, ChangeStatus, ChangeType, Outcome};
    use crate::sim::jira::{Fault, JiraSim, SimConfig};
    use chrono::{DateTime, Utc};
    use secrecy::SecretString;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::time::Duration;

    const REF: &str = "CHG-000045";

    /// A started simulator and a client of it.
    fn start() -> (JiraSim, JiraClient) {
        let config = SimConfig::default();
        let sim = JiraSim::new(config.clone());
        sim.start(TcpListener::bind("127.0.0.1:0").expect("bind")).expect("start");
        let base = sim.base_url().expect("base url");
        let http = SupplierHttp::new(Duration::from_secs(1), 100, 3).expect("http").with_min_backoff(Duration::from_millis(10));
        let settings = JiraSettings { project_key: config.project_key.clone(), time_zone: config.time_zone.name().to_string(), ..JiraSettings::default() };
        let cfg = Arc::new(JiraConfig::from_settings(&settings).expect("config"));
        let client = JiraClient::new(http, &base, &config.email, SecretString::from(config.api_token.clone()), cfg, &settings).expect("client");
        (sim, client)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("instant").with_timezone(&Utc)
    }

    fn change() -> Change {
        crate::adapters::change::scheduled_change(REF)
    }

    fn body(c: &Change) -> Value {
        mapping_for("jira").expect("mapping").create_body(c)
    }

    fn read(issue: &Value) -> Change {
        mapping_for("jira").expect("mapping").read(issue).expect("a change issue")
    }

    fn id_of(issue: &Value) -> String {
        read(issue).legs[0].native_id.clone()
    }

    fn creates(sim: &JiraSim) -> usize {
        sim.request_log().iter().filter(|r| r.method == "POST" && r.path == "/rest/api/3/issue").count()
    }

    #[actix_web::test]
    async fn a_created_change_reads_back_with_its_status_window_and_reference() {
        let (sim, client) = start();
        let changes = client.changes().expect("Jira takes changes");
        assert_eq!(changes.change_system(), "jira");
        let created = changes.create_change(REF, &body(&change())).await.expect("created");
        let c = read(&created);
        assert_eq!(c.status, Some(ChangeStatus::Scheduled));
        assert_eq!(c.approval, Some(Approval::Approved));
        assert_eq!(c.change_type, Some(ChangeType::Normal));
        assert_eq!((c.planned_start, c.planned_end), (Some(at("2030-05-20T22:00:00Z")), Some(at("2030-05-21T02:00:00Z"))));
        assert_eq!(c.reference.as_ref().map(|r| r.to_string()).as_deref(), Some(REF));
        assert_eq!(c.title, "Replace the core switch in DC2");
        assert_eq!(c.description, "Swap the failing line card; traffic moves to DC1 meanwhile.");
        assert!(c.legs[0].unmapped.is_empty(), "{:?}", c.legs[0].unmapped);
        assert_eq!(c.legs[0].native_number.as_deref(), Some("OPS-1"));
        assert_eq!(c.legs[0].native_status.as_deref(), Some("Awaiting implementation"));

        let stored = sim.changes();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0]["id"], created["id"]);
        assert_eq!(stored[0]["fields"]["issuetype"]["name"], "Change");
        assert_eq!(stored[0]["fields"]["project"]["key"], "OPS");
        assert!(sim.issues().is_empty(), "changes are not incidents");

        let found = changes.find_changes(REF).await.expect("lookup");
        assert_eq!(found.len(), 1);
        assert_eq!(id_of(&found[0]), id_of(&created));
        assert!(changes.find_changes("CHG-000046").await.expect("lookup").is_empty());
        let fetched = changes.fetch_change(&id_of(&created)).await.expect("fetched");
        assert_eq!(read(&fetched), c);
        let url = changes.change_url(&id_of(&created));
        assert!(url.ends_with(&format!("/secure/ViewIssue.jspa?id={}", id_of(&created))), "{url}");
        assert!(changes.change_url("OPS-1").ends_with("/browse/OPS-1"));
    }

    #[actix_web::test]
    async fn a_create_whose_answer_is_lost_makes_one_change() {
        let (sim, client) = start();
        sim.push_fault(Fault::LoseResponseAfterCommit);
        let created = client.create_change(REF, &body(&change())).await.expect("the committed change is adopted");
        let stored = sim.changes();
        assert_eq!(stored.len(), 1, "exactly one change issue");
        assert_eq!(stored[0]["id"], created["id"]);
        assert_eq!(creates(&sim), 1, "the create was not sent again");
        assert_eq!(read(&created).status, Some(ChangeStatus::Scheduled));
    }

    #[actix_web::test]
    async fn a_refused_reference_sends_nothing() {
        let (sim, client) = start();
        for bad in ["", "CHG-000045\" OR labels is not EMPTY", "INC-000045"] {
            let e = client.create_change(bad, &body(&change())).await.expect_err("refused");
            assert!(!e.is_transient(), "{e}");
            assert!(client.find_changes(bad).await.is_err());
        }
        assert!(client.create_change(REF, &json!(["fields"])).await.is_err());
        assert!(sim.request_log().is_empty());
    }

    #[actix_web::test]
    async fn an_update_moves_the_status_by_transition_and_edits_the_window() {
        let (sim, client) = start();
        let mut now = change();
        now.status = Some(ChangeStatus::Assess);
        let id = id_of(&client.create_change(REF, &body(&now)).await.expect("created"));
        assert_eq!(sim.changes()[0]["fields"]["status"]["name"], "Planning");

        now.status = Some(ChangeStatus::Authorize);
        now.planned_end = Some(at("2030-05-21T04:00:00Z"));
        let mut update = body(&now);
        update["fields"]["customfield_10100"] = json!("CHG-999999");
        let c = read(&client.update_change(&id, &update).await.expect("updated"));
        assert_eq!((c.status, c.approval), (Some(ChangeStatus::Authorize), Some(Approval::Requested)));
        assert_eq!(c.planned_end, Some(at("2030-05-21T04:00:00Z")));
        assert_eq!(c.reference.as_ref().map(|r| r.to_string()).as_deref(), Some(REF), "the reference is never repointed");

        // The same body again changes nothing and moves nothing.
        let before = sim.request_log().iter().filter(|r| r.method == "POST" && r.path.ends_with("/transitions")).count();
        client.update_change(&id, &update).await.expect("updated");
        assert_eq!(sim.request_log().iter().filter(|r| r.method == "POST" && r.path.ends_with("/transitions")).count(), before);

        now.status = Some(ChangeStatus::Cancelled);
        let c = read(&client.update_change(&id, &body(&now)).await.expect("cancelled"));
        assert_eq!(c.status, Some(ChangeStatus::Cancelled));
        assert!(c.closed_at.is_some());
        assert!(c.legs[0].unmapped.is_empty(), "{:?}", c.legs[0].unmapped);

        // No transition leads from Canceled to Implementing: a clear refusal, not a retry.
        now.status = Some(ChangeStatus::Implement);
        let e = client.update_change(&id, &body(&now)).await.expect_err("no way there");
        assert!(matches!(e, SupplierError::Rejected { status: 409, .. }), "{e:?}");
        let e = client.update_change("99999", &body(&now)).await.expect_err("no such change");
        assert!(matches!(e, SupplierError::Rejected { status: 404, .. }), "{e:?}");
    }

    #[actix_web::test]
    async fn a_note_lands_once_as_an_internal_comment() {
        let (sim, client) = start();
        let id = id_of(&client.create_change(REF, &body(&change())).await.expect("created"));
        client.add_change_note(&id, "Maintenance window confirmed with the data centre.").await.expect("noted");
        sim.push_fault(Fault::LoseResponseAfterCommit);
        client.add_change_note(&id, "Line card shipped.").await.expect("noted though the answer was lost");
        let comments = sim.changes()[0]["fields"]["comment"]["comments"].as_array().cloned().unwrap_or_default();
        let notes: Vec<(bool, String)> = comments.iter().map(|c| (c["jsdPublic"].as_bool().unwrap_or(true), crate::adapters::jira::text::adf_to_text(&c["body"]))).collect();
        assert_eq!(notes, [(false, "Maintenance window confirmed with the data centre.".to_string()), (false, "Line card shipped.".to_string())]);
        assert!(client.add_change_note("99999", "x").await.is_err());
    }

    #[actix_web::test]
    async fn the_change_managers_own_moves_are_seen_by_fetch() {
        let (sim, client) = start();
        let id = id_of(&client.create_change(REF, &body(&change())).await.expect("created"));
        sim.agent_transition_change(&id, "Implementing").expect("agent transition");
        sim.agent_edit_change(&id, json!({ "customfield_10036": { "value": "High" }, "customfield_10037": "2030-05-20T23:00:00.000+0000" })).expect("agent edit");
        let c = read(&client.fetch_change(&id).await.expect("fetched"));
        assert_eq!((c.status, c.approval), (Some(ChangeStatus::Implement), Some(Approval::Approved)));
        assert_eq!(c.risk, crate::domain::change::Risk::new(2));
        assert_eq!(c.planned_start, Some(at("2030-05-20T23:00:00Z")));
        sim.agent_resolve_change(&id, "Completed", Some("Failed")).expect("agent completes");
        let c = read(&client.fetch_change(&id).await.expect("fetched"));
        assert_eq!((c.status, c.outcome), (Some(ChangeStatus::Closed), Some(Outcome::Unsuccessful)));
        assert!(sim.agent_transition_change(&id, "Planning").is_err(), "Completed is final");
        let e = client.fetch_change("no/such/../change").await.expect_err("unknown");
        assert!(matches!(e, SupplierError::Rejected { status: 404, .. }), "{e:?}");
    }
}
