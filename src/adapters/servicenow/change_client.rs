//! Change legs on a ServiceNow instance: the `change_request` table over the Table API, read in
//! raw values (`sysparm_display_value=false`) in the shape [`ServiceNowChange`] reads and
//! written with the body its `create_body` makes.
//!
//! [`ServiceNowChange`]: crate::adapters::change::servicenow::ServiceNowChange

use super::client::ServiceNowClient;
use crate::adapters::change::ChangeClient;
use crate::adapters::SupplierError;
use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;

const TABLE_PATH: &str = "/api/now/table/change_request";

/// Change requests read when looking a hub reference up.
const LOOKUP_LIMIT: usize = 20;

/// Fields read on every change query: what the change mapping reads, plus identity and change
/// tracking.
const CHANGE_FIELDS: &str = "sys_id,number,sys_class_name,correlation_id,correlation_display,state,approval,type,on_hold,on_hold_reason,risk,impact,urgency,priority,short_description,description,start_date,end_date,work_start,work_end,opened_at,closed_at,close_code,close_notes,business_service,cmdb_ci,assignment_group,assigned_to,sys_mod_count,sys_created_on,sys_updated_on,sys_updated_by";

/// Fields an update never sends: the record keeps pointing at the change it was created for.
const CREATE_ONLY: &[&str] = &["correlation_id", "correlation_display"];

/// Raw values, references as bare sys_ids, the fields above.
fn read_query() -> [(&'static str, String); 3] {
    [("sysparm_display_value", "false".into()), ("sysparm_exclude_reference_link", "true".into()), ("sysparm_fields", CHANGE_FIELDS.into())]
}

/// A sys_id as one path segment: anything but unreserved characters percent-encoded, so an id
/// can never reach another resource.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Refuses a value that cannot stand in an encoded query as one term's value (`^` separates
/// terms) or that would match records with no value at all.
fn query_value<'a>(what: &str, field: &str, value: &'a str) -> Result<&'a str, SupplierError> {
    if value.trim().is_empty() || value.contains('^') || value.contains(['\r', '\n']) {
        return Err(SupplierError::Rejected { status: 0, message: format!("{what}: `{value}` cannot be looked up in {field}") });
    }
    Ok(value)
}

/// A record id the hub can address: not empty.
fn record_id<'a>(what: &str, id: &'a str) -> Result<&'a str, SupplierError> {
    if id.trim().is_empty() {
        return Err(SupplierError::Rejected { status: 0, message: format!("{what}: no change_request sys_id") });
    }
    Ok(id)
}

impl ServiceNowClient {
    /// One attempt at listing the change requests carrying `reference`, newest first (ties by
    /// `sys_id`, so the order is stable).
    async fn change_lookup_attempt(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        let what = "ServiceNow change lookup by correlation_id";
        let reference = query_value(what, "correlation_id", reference)?;
        let mut query = read_query().to_vec();
        query.push(("sysparm_query", format!("correlation_id={reference}^ORDERBYDESCsys_created_on^ORDERBYsys_id")));
        query.push(("sysparm_limit", LOOKUP_LIMIT.to_string()));
        let r = self.attempt(what, Method::GET, TABLE_PATH, &query, None).await?;
        match r {
            Value::Array(rows) => Ok(rows),
            other => Err(SupplierError::Protocol(format!("{what}: expected a list of records, got {}", kind(&other)))),
        }
    }
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

#[async_trait]
impl ChangeClient for ServiceNowClient {
    fn change_system(&self) -> &'static str {
        "servicenow"
    }

    /// Looks the hub's change reference up in `correlation_id`.
    async fn find_changes(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        self.http.retrying("ServiceNow change lookup by correlation_id", || self.change_lookup_attempt(reference)).await
    }

    /// Creates once ([`crate::adapters::http::SupplierHttp::write_once`]): before a retry, the
    /// change request an unanswered attempt may have made is looked up by `reference` and taken
    /// (a change has one leg per supplier, so any record carrying the reference is that leg's).
    async fn create_change(&self, reference: &str, body: &Value) -> Result<Value, SupplierError> {
        let what = "ServiceNow create change";
        query_value(what, "correlation_id", reference)?;
        let query = read_query();
        self.http
            .write_once(what, || self.attempt(what, Method::POST, TABLE_PATH, &query, Some(body)), || async { Ok(self.change_lookup_attempt(reference).await?.into_iter().next()) })
            .await
    }

    /// `PATCH` with the body less the correlation fields.
    async fn update_change(&self, native_id: &str, body: &Value) -> Result<Value, SupplierError> {
        let what = "ServiceNow update change";
        let native_id = record_id(what, native_id)?;
        let Value::Object(fields) = body else {
            return Err(SupplierError::Rejected { status: 0, message: format!("{what}: the change body is {}, not an object of fields", kind(body)) });
        };
        let fields: serde_json::Map<String, Value> = fields.iter().filter(|(k, _)| !CREATE_ONLY.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        let path = format!("{TABLE_PATH}/{}", segment(native_id));
        self.call(what, Method::PATCH, &path, &read_query(), Some(&Value::Object(fields))).await
    }

    async fn fetch_change(&self, native_id: &str) -> Result<Value, SupplierError> {
        let what = "ServiceNow read change";
        let path = format!("{TABLE_PATH}/{}", segment(record_id(what, native_id)?));
        self.call(what, Method::GET, &path, &read_query(), None).await
    }

    /// A `work_notes` entry (the change team's internal journal), written once: before a retry
    /// the journal is searched for the entry an unanswered attempt may have made.
    async fn add_change_note(&self, native_id: &str, text: &str) -> Result<(), SupplierError> {
        let what = "ServiceNow add change note";
        let native_id = record_id(what, native_id)?;
        let path = format!("{TABLE_PATH}/{}", segment(native_id));
        let body = serde_json::json!({ "work_notes": text });
        let read = [("sysparm_fields", "sys_id".to_string())];
        let element_id = query_value(what, "element_id", native_id)?;
        self.http
            .write_once(
                what,
                || async { self.attempt(what, Method::PATCH, &path, &read, Some(&body)).await.map(|_| ()) },
                || async {
                    let query = [
                        ("sysparm_query", format!("element_id={element_id}^element=work_notes^ORDERBYDESCsys_created_on")),
                        ("sysparm_fields", "value".to_string()),
                        ("sysparm_limit", "20".to_string()),
                    ];
                    let rows = self.attempt("ServiceNow change journal", Method::GET, "/api/now/table/sys_journal_field", &query, None).await?;
                    let written = rows.as_array().is_some_and(|r| r.iter().any(|j| j.get("value").and_then(Value::as_str) == Some(text)));
                    Ok(written.then_some(()))
                },
            )
            .await
    }

    fn change_url(&self, native_id: &str) -> String {
        format!("{}/nav_to.do?uri=change_request.do?sys_id={}", self.base, segment(native_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::change::mapping_for;
    use crate::adapters::http::SupplierHttp;
    use crate::adapters::Client;
    use crate::domain::change::{Approval, Change, ChangeStatus, ChangeType};
    use crate::sim::servicenow::{Fault, ServiceNowSim, SimConfig};
    use chrono::{DateTime, Utc};
    use secrecy::SecretString;
    use serde_json::json;
    use std::net::TcpListener;
    use std::time::Duration;

    const USER: &str = "hub.integration";
    const PASSWORD: &str = "s3cret";
    const REF: &str = "CHG-000045";

    /// A started simulator and a client of it.
    fn start() -> (ServiceNowSim, ServiceNowClient) {
        let sim = ServiceNowSim::new(SimConfig { user: USER.into(), password: PASSWORD.into(), ..SimConfig::default() });
        sim.start(TcpListener::bind("127.0.0.1:0").expect("bind")).expect("start");
        let base = sim.base_url().expect("base url");
        let http = SupplierHttp::new(Duration::from_secs(1), 100, 3).expect("http").with_min_backoff(Duration::from_millis(10));
        (sim, ServiceNowClient::new(http, &base, USER, SecretString::from(PASSWORD.to_string())))
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("instant").with_timezone(&Utc)
    }

    fn change() -> Change {
        crate::adapters::change::scheduled_change(REF)
    }

    fn body(c: &Change) -> Value {
        mapping_for("servicenow").expect("mapping").create_body(c)
    }

    fn read(record: &Value) -> Change {
        mapping_for("servicenow").expect("mapping").read(record).expect("a change_request record")
    }

    fn sys_id(record: &Value) -> String {
        record["sys_id"].as_str().expect("sys_id").to_string()
    }

    fn posts(sim: &ServiceNowSim) -> usize {
        sim.request_log().iter().filter(|r| r.method == "POST" && r.path.starts_with(TABLE_PATH)).count()
    }

    #[actix_web::test]
    async fn a_created_change_reads_back_with_its_status_window_and_reference() {
        let (sim, client) = start();
        let changes = client.changes().expect("ServiceNow takes changes");
        assert_eq!(changes.change_system(), "servicenow");
        let created = changes.create_change(REF, &body(&change())).await.expect("created");
        let c = read(&created);
        assert_eq!(c.status, Some(ChangeStatus::Scheduled));
        assert_eq!(c.approval, Some(Approval::Approved));
        assert_eq!(c.change_type, Some(ChangeType::Normal));
        assert_eq!((c.planned_start, c.planned_end), (Some(at("2030-05-20T22:00:00Z")), Some(at("2030-05-21T02:00:00Z"))));
        assert_eq!(c.reference.as_ref().map(|r| r.to_string()).as_deref(), Some(REF));
        assert_eq!(c.title, "Replace the core switch in DC2");
        assert!(c.legs[0].unmapped.is_empty(), "{:?}", c.legs[0].unmapped);
        assert_eq!(c.legs[0].native_number.as_deref(), Some("CHG0030001"));

        let stored = sim.changes();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0]["sys_id"], created["sys_id"]);
        assert_eq!(stored[0]["correlation_display"], "SIAM Hub");
        assert_eq!(stored[0]["sys_created_by"], USER);

        let found = changes.find_changes(REF).await.expect("lookup");
        assert_eq!(found.len(), 1);
        assert_eq!(read(&found[0]).legs[0].native_id, sys_id(&created));
        assert!(changes.find_changes("CHG-000046").await.expect("lookup").is_empty());
        let fetched = changes.fetch_change(&sys_id(&created)).await.expect("fetched");
        assert_eq!(read(&fetched), c);
        let url = changes.change_url(&sys_id(&created));
        assert!(url.ends_with(&format!("/nav_to.do?uri=change_request.do?sys_id={}", sys_id(&created))), "{url}");
        assert!(sim.incidents().is_empty(), "changes are not incidents");
    }

    #[actix_web::test]
    async fn a_create_whose_answer_is_lost_makes_one_change() {
        let (sim, client) = start();
        sim.push_fault(Fault::LoseResponseAfterCommit);
        let created = client.create_change(REF, &body(&change())).await.expect("the committed change is adopted");
        let stored = sim.changes();
        assert_eq!(stored.len(), 1, "exactly one change_request");
        assert_eq!(stored[0]["sys_id"], created["sys_id"]);
        assert_eq!(posts(&sim), 1, "the create was not sent again");
        assert_eq!(read(&created).status, Some(ChangeStatus::Scheduled));
    }

    #[actix_web::test]
    async fn a_refused_lookup_value_sends_nothing() {
        let (sim, client) = start();
        for bad in ["", "CHG-000045^ORcorrelation_idISEMPTY"] {
            let e = client.create_change(bad, &body(&change())).await.expect_err("refused");
            assert!(!e.is_transient(), "{e}");
            assert!(client.find_changes(bad).await.is_err());
        }
        assert!(sim.request_log().is_empty());
        assert!(sim.changes().is_empty());
    }

    #[actix_web::test]
    async fn an_update_moves_the_state_and_never_repoints_the_record() {
        let (sim, client) = start();
        let created = client.create_change(REF, &body(&change())).await.expect("created");
        let id = sys_id(&created);
        let mut now = change();
        now.status = Some(ChangeStatus::Implement);
        now.actual_start = Some(at("2030-05-20T22:05:00Z"));
        let mut update = body(&now);
        update["correlation_id"] = json!("CHG-999999");
        let after = client.update_change(&id, &update).await.expect("updated");
        let c = read(&after);
        assert_eq!(c.status, Some(ChangeStatus::Implement));
        assert_eq!(c.actual_start, Some(at("2030-05-20T22:05:00Z")));
        assert_eq!(c.reference.as_ref().map(|r| r.to_string()).as_deref(), Some(REF));
        let stored = &sim.changes()[0];
        assert_eq!((stored["state"].as_str(), stored["correlation_id"].as_str(), stored["sys_mod_count"].as_str()), (Some("-1"), Some(REF), Some("1")));

        now.status = Some(ChangeStatus::Cancelled);
        let cancelled = read(&client.update_change(&id, &body(&now)).await.expect("cancelled"));
        assert_eq!(cancelled.status, Some(ChangeStatus::Cancelled));
        assert!(cancelled.closed_at.is_some(), "cancelling closes the record");

        let e = client.update_change("0123456789abcdef0123456789abcdef", &body(&now)).await.expect_err("no such change");
        assert!(matches!(e, SupplierError::Rejected { status: 404, .. }), "{e:?}");
        assert!(client.update_change(&id, &json!(["state"])).await.is_err());
    }

    #[actix_web::test]
    async fn a_note_lands_once_in_the_work_notes_journal() {
        let (sim, client) = start();
        let id = sys_id(&client.create_change(REF, &body(&change())).await.expect("created"));
        client.add_change_note(&id, "Maintenance window confirmed with the data centre.").await.expect("noted");
        sim.push_fault(Fault::LoseResponseAfterCommit);
        client.add_change_note(&id, "Line card shipped.").await.expect("noted though the answer was lost");
        let journal = sim.journal(&id);
        let notes: Vec<(&str, &str, &str)> =
            journal.iter().map(|j| (j["element"].as_str().unwrap_or(""), j["name"].as_str().unwrap_or(""), j["value"].as_str().unwrap_or(""))).collect();
        assert_eq!(notes, [("work_notes", "change_request", "Maintenance window confirmed with the data centre."), ("work_notes", "change_request", "Line card shipped.")]);
        assert!(client.add_change_note("0123456789abcdef0123456789abcdef", "x").await.is_err());
    }

    #[actix_web::test]
    async fn the_suppliers_own_edit_is_seen_by_fetch() {
        let (sim, client) = start();
        let id = sys_id(&client.create_change(REF, &body(&change())).await.expect("created"));
        sim.agent_update_change(&id, json!({"state": "-1", "work_start": "2030-05-20 22:10:00", "on_hold": "true", "on_hold_reason": "Waiting for the vendor's engineer"}))
            .expect("agent edit");
        let fetched = client.fetch_change(&id).await.expect("fetched");
        let c = read(&fetched);
        assert_eq!(c.status, Some(ChangeStatus::Implement));
        assert_eq!(c.actual_start, Some(at("2030-05-20T22:10:00Z")));
        assert!(c.on_hold);
        assert_eq!(c.hold_reason.as_deref(), Some("Waiting for the vendor's engineer"));
        assert_eq!((fetched["sys_updated_by"].as_str(), fetched["sys_mod_count"].as_str()), (Some("agent.smith"), Some("1")));
        let e = client.fetch_change("no/such/../change").await.expect_err("unknown");
        assert!(matches!(e, SupplierError::Rejected { status: 404, .. }), "{e:?}");
    }
}
