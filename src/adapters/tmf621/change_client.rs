//! TMF655 Change Management at a TMF621 supplier: the hub's change legs kept as `changeRequest`
//! resources (`{base_url}{change_base_path}/changeRequest`), with the instance's own
//! authentication, TMF630 error handling and retries.
//!
//! The records are exchanged in the shapes `crate::adapters::change::tmf655` reads and writes:
//! the hub's change reference travels in `externalId`, the native id is the resource's `id`.
//! Updates are merge-patches (RFC 7386) of what the mapping writes; notes are appended to
//! `note[]`. A create and a note are written once: before trying again after an attempt whose
//! answer was lost, the client looks for what that attempt left at the supplier.

use super::client::{encode, note_copies, note_patch, Tmf621Client, LOOKUP_PAGE, LOOKUP_PAGES};
use crate::adapters::change::ChangeClient;
use crate::adapters::SupplierError;
use async_trait::async_trait;
use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};

/// The change mapping the records are read with.
const SYSTEM: &str = "tmf655";
/// The attribute the TMF655 mapping writes the hub's change reference to.
const REFERENCE: &str = "externalId";
/// Members an update never sends: those the server owns, those identifying the record, and
/// the journal (added to only through [`ChangeClient::add_change_note`]).
const NOT_UPDATED: &[&str] = &["id", "href", REFERENCE, "lastUpdate", "lastUpdateDate", "statusChangeDate", "note", "@baseType", "@schemaLocation"];

/// The id of a change request, a string or a number.
fn record_id(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether the record carries `reference` in its reference attribute.
fn carries(v: &Value, reference: &str) -> bool {
    v.get(REFERENCE).and_then(Value::as_str).is_some_and(|r| r.trim() == reference)
}

fn path_of(native_id: &str) -> String {
    format!("/changeRequest/{}", encode(native_id))
}

impl Tmf621Client {
    /// One call to the change API with retries; PATCH bodies go as merge-patches.
    async fn change_call(&self, what: &str, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value, SupplierError> {
        let url = self.change_api_url(path);
        let merge = method == Method::PATCH;
        self.http.retrying(what, || self.attempt_at(what, method.clone(), &url, query, body, merge)).await
    }

    /// A single attempt at a write to the change API, for writes that look before trying again.
    async fn change_once(&self, what: &str, method: Method, path: &str, body: &Value) -> Result<Value, SupplierError> {
        let merge = method == Method::PATCH;
        self.attempt_at(what, method, &self.change_api_url(path), &[], Some(body), merge).await
    }

    /// One page of change requests; the list may come bare or wrapped.
    async fn change_list(&self, what: &str, query: &[(&str, String)]) -> Result<Vec<Value>, SupplierError> {
        match self.change_call(what, Method::GET, "/changeRequest", query, None).await? {
            Value::Array(a) => Ok(a),
            Value::Object(mut o) => match o.remove("changeRequest").or_else(|| o.remove("result")) {
                Some(Value::Array(a)) => Ok(a),
                _ => Err(SupplierError::Protocol(format!("{what}: expected a JSON array of change requests"))),
            },
            Value::Null => Ok(vec![]),
            _ => Err(SupplierError::Protocol(format!("{what}: expected a JSON array of change requests"))),
        }
    }

    /// The one change request an answer carries (bare, or a list of one).
    fn one_change(what: &str, answer: Value) -> Result<Value, SupplierError> {
        let record = match answer {
            Value::Array(mut a) if a.len() == 1 => a.remove(0),
            other => other,
        };
        if record_id(&record).is_some() {
            Ok(record)
        } else {
            Err(SupplierError::Protocol(format!("{what}: the answer is not a change request")))
        }
    }

    /// The first change request carrying `reference`: the one an unanswered create made.
    async fn created_change(&self, reference: &str) -> Result<Option<Value>, SupplierError> {
        Ok(self.find_changes(reference).await?.into_iter().next())
    }
}

#[async_trait]
impl ChangeClient for Tmf621Client {
    fn change_system(&self) -> &'static str {
        SYSTEM
    }

    /// Looks the reference up with an `externalId` filter, and checks every answer itself: a
    /// server that ignores the filter must not make the hub adopt a stranger's change.
    async fn find_changes(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        let what = "TMF655 lookup by external reference";
        let mut found = Vec::new();
        for page in 0..LOOKUP_PAGES {
            let q = [(REFERENCE, reference.to_string()), ("offset", (page * LOOKUP_PAGE).to_string()), ("limit", LOOKUP_PAGE.to_string())];
            let items = self.change_list(what, &q).await?;
            let n = items.len();
            found.extend(items.into_iter().filter(|c| record_id(c).is_some() && carries(c, reference)));
            if n < LOOKUP_PAGE {
                return Ok(found);
            }
        }
        Err(SupplierError::Protocol(format!(
            "TMF655 lookup of {reference}: the supplier ignores the {REFERENCE} filter and holds more than {} change requests",
            LOOKUP_PAGES * LOOKUP_PAGE
        )))
    }

    /// POSTs the change request once per attempt; before trying again after a failure (which
    /// may have come after the server committed) it looks the reference up and adopts the
    /// change request found, so a lost answer never makes a second one. The body carries the
    /// reference in `externalId` (added when missing) so the look can find it.
    async fn create_change(&self, reference: &str, body: &Value) -> Result<Value, SupplierError> {
        let what = "TMF655 create change request";
        let mut body = body.clone();
        let Some(fields) = body.as_object_mut() else {
            return Err(SupplierError::Rejected { status: 0, message: format!("{what}: the change request must be a JSON object") });
        };
        fields.entry(REFERENCE).or_insert_with(|| json!(reference));
        let body = &body;
        let answer = self.http.write_once(what, || self.change_once(what, Method::POST, "/changeRequest", body), || self.created_change(reference)).await?;
        if record_id(&answer).is_some() {
            return Ok(answer);
        }
        // 201 without a body: read back what was made.
        self.created_change(reference).await?.ok_or_else(|| SupplierError::Protocol(format!("{what}: answered without the change request, and it cannot be found")))
    }

    /// Merge-patches the members the mapping writes, never the record's identity (`id`, `href`,
    /// the reference) nor what the server keeps; members the body lacks are left as they are.
    async fn update_change(&self, native_id: &str, body: &Value) -> Result<Value, SupplierError> {
        let what = "TMF655 update change request";
        let Some(fields) = body.as_object() else {
            return Err(SupplierError::Rejected { status: 0, message: format!("{what}: the change request must be a JSON object") });
        };
        let patch: serde_json::Map<String, Value> = fields.iter().filter(|(k, _)| !NOT_UPDATED.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        if patch.is_empty() {
            return self.fetch_change(native_id).await;
        }
        let answer = self.change_call(what, Method::PATCH, &path_of(native_id), &[], Some(&Value::Object(patch))).await?;
        // Some servers answer 204; the record after is what the sync needs.
        match Self::one_change(what, answer) {
            Ok(record) => Ok(record),
            Err(_) => self.fetch_change(native_id).await,
        }
    }

    async fn fetch_change(&self, native_id: &str) -> Result<Value, SupplierError> {
        let what = "TMF655 read change request";
        let answer = self.change_call(what, Method::GET, &path_of(native_id), &[], None).await?;
        Self::one_change(what, answer)
    }

    /// Appends a note (typed as the instance's private notes where it declares them). A failed
    /// attempt may have been committed, so before trying again the record is read: a note that
    /// appeared is taken as delivered instead of being appended twice. A merge-patch replaces
    /// arrays, so where the server takes the whole array it is sent with the new note added.
    async fn add_change_note(&self, native_id: &str, text: &str) -> Result<(), SupplierError> {
        let what = "TMF655 add change note";
        let kind = self.inst.private_note_type.clone().unwrap_or_else(|| "Note".into());
        let entry = json!({ "author": "SIAM Hub", "date": crate::domain::time::rfc3339(&Utc::now()), "text": text, "@type": kind });
        // The record as last read: a full-array patch resends its notes with the new one.
        let current = std::sync::Mutex::new(self.fetch_change(native_id).await?);
        let before = note_copies(&current.lock().unwrap_or_else(|p| p.into_inner()), text);
        let path = path_of(native_id);
        self.http
            .write_once(
                what,
                || {
                    let body = note_patch(self.inst.note_patch, &current, &entry);
                    let path = &path;
                    async move { self.change_once(what, Method::PATCH, path, &body).await }
                },
                || async {
                    let now = self.fetch_change(native_id).await?;
                    if note_copies(&now, text) > before {
                        return Ok(Some(now));
                    }
                    *current.lock().unwrap_or_else(|p| p.into_inner()) = now;
                    Ok(None)
                },
            )
            .await?;
        Ok(())
    }

    /// The change request's own address on the supplier (its `href`).
    fn change_url(&self, native_id: &str) -> String {
        self.change_api_url(&path_of(native_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::change::mapping_for;
    use crate::adapters::http::SupplierHttp;
    use crate::adapters::Client;
    use crate::domain::change::{Change, ChangeRef, ChangeStatus, ChangeType};
    use crate::sim::tmf621::{Fault, SimConfig, Tmf621Sim};
    use chrono::{DateTime, TimeZone};
    use secrecy::SecretString;
    use std::time::Duration;

    const USER: &str = "hub.integration";
    const PASSWORD: &str = "hub-password";

    fn start_sim() -> Tmf621Sim {
        let sim = Tmf621Sim::new(SimConfig { user: USER.into(), password: PASSWORD.into(), ..SimConfig::default() });
        sim.start(std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).expect("start");
        sim
    }

    fn client_for(sim: &Tmf621Sim, extra: &str) -> Tmf621Client {
        let base = sim.base_url().expect("started");
        let toml = format!(
            "[[suppliers]]\nid = \"t\"\nname = \"T\"\nsystem = \"tmf621\"\nbase_url = \"{base}\"\ntimeout_secs = 1\nmax_attempts = 3\n[suppliers.tmf621]\n{extra}\n[egress]\nallow_networks = [\"127.0.0.0/8\"]\n"
        );
        let settings = crate::config::Settings::from_toml(&toml).expect("settings");
        let s = &settings.suppliers[0];
        let http = SupplierHttp::for_supplier(s, &settings.egress).expect("http").with_min_backoff(Duration::from_millis(10));
        Tmf621Client::new(http, &s.base_url, &s.tmf621, USER, SecretString::from(PASSWORD.to_string()))
    }

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 14, h, 0, 0).single().expect("a time")
    }

    fn change(reference: &str) -> Change {
        let mut c = Change::blank();
        c.reference = Some(reference.parse::<ChangeRef>().expect("a reference"));
        c.title = "Upgrade the mail relays".into();
        c.description = "Rolling upgrade, one relay at a time.".into();
        c.change_type = Some(ChangeType::Normal);
        c.status = Some(ChangeStatus::Assess);
        c.planned_start = Some(at(22));
        c.planned_end = Some(at(23));
        c
    }

    fn read(record: &Value) -> Change {
        mapping_for("tmf655").expect("tmf655 maps").read(record).expect("a change request")
    }

    #[actix_web::test]
    async fn a_change_request_is_created_found_and_read_back_as_the_change() {
        let sim = start_sim();
        let client = client_for(&sim, "");
        assert!(client.changes().is_some_and(|c| c.change_system() == "tmf655"));
        let body = mapping_for("tmf655").expect("maps").create_body(&change("CHG-000101"));
        let made = client.create_change("CHG-000101", &body).await.expect("created");
        let c = read(&made);
        let id = c.legs[0].native_id.clone();
        assert_eq!(c.reference.as_ref().map(|r| r.as_str()), Some("CHG-000101"));
        assert_eq!(c.status, Some(ChangeStatus::Assess));
        assert_eq!((c.planned_start, c.planned_end), (Some(at(22)), Some(at(23))));
        assert_eq!(c.title, "Upgrade the mail relays");
        assert_eq!(c.change_type, Some(ChangeType::Normal));

        let fetched = read(&client.fetch_change(&id).await.expect("read"));
        assert_eq!((fetched.status, fetched.planned_start, fetched.reference), (c.status, c.planned_start, c.reference.clone()));
        let found = client.find_changes("CHG-000101").await.expect("found");
        assert_eq!(found.len(), 1);
        assert_eq!(record_id(&found[0]).as_deref(), Some(id.as_str()));
        assert!(client.find_changes("CHG-000102").await.expect("looked").is_empty());
        assert_eq!(made["href"].as_str(), Some(client.change_url(&id).as_str()));
        let unknown = client.fetch_change("no-such-change").await.unwrap_err();
        assert!(matches!(&unknown, SupplierError::Rejected { status: 404, message } if message.contains("Resource not found")), "{unknown:?}");
    }

    #[actix_web::test]
    async fn a_create_whose_answer_is_lost_after_commit_makes_one_change_request() {
        let sim = start_sim();
        let client = client_for(&sim, "");
        sim.push_fault_on("POST", Fault::LoseResponseAfterCommit);
        let body = mapping_for("tmf655").expect("maps").create_body(&change("CHG-000201"));
        let made = client.create_change("CHG-000201", &body).await.expect("adopted");
        let held: Vec<Value> = sim.changes().into_iter().filter(|c| carries(c, "CHG-000201")).collect();
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(record_id(&made), record_id(&held[0]));
        let posts = sim.request_log().iter().filter(|r| r.method == "POST" && r.path.contains("/changeRequest")).count();
        assert_eq!(posts, 1, "the lost answer was looked for, not posted again");
    }

    #[actix_web::test]
    async fn updates_move_the_status_notes_are_added_once_and_the_suppliers_own_edits_are_read() {
        let sim = start_sim();
        // A server that takes the whole array in a merge-patch: the note is added to those held.
        let client = client_for(&sim, "note_patch = \"full\"");
        let mapping = mapping_for("tmf655").expect("maps");
        let mut c = change("CHG-000301");
        let made = client.create_change("CHG-000301", &mapping.create_body(&c)).await.expect("created");
        let id = record_id(&made).expect("an id");

        c.status = Some(ChangeStatus::Implement);
        c.planned_end = Some(at(23) + chrono::Duration::minutes(30));
        let after = client.update_change(&id, &mapping.create_body(&c)).await.expect("updated");
        let read_after = read(&after);
        assert_eq!(read_after.status, Some(ChangeStatus::Implement));
        assert_eq!(read_after.planned_end, c.planned_end);
        assert_eq!(read_after.reference.as_ref().map(|r| r.as_str()), Some("CHG-000301"));
        let patch = sim.request_log().into_iter().filter(|r| r.method == "PATCH").count();
        assert_eq!(patch, 1);
        let kept = client.update_change(&id, &json!({ "externalId": "CHG-000999", "id": "stolen", "risk": "Low" })).await.expect("updated");
        assert_eq!((kept["externalId"].as_str(), kept["id"].as_str(), kept["risk"].as_str()), (Some("CHG-000301"), Some(id.as_str()), Some("Low")));

        client.add_change_note(&id, "Relay 1 upgraded").await.expect("noted");
        client.add_change_note(&id, "Relay 2 upgraded").await.expect("noted");
        let notes: Vec<String> =
            client.fetch_change(&id).await.expect("read")["note"].as_array().expect("notes").iter().filter_map(|n| n["text"].as_str().map(str::to_string)).collect();
        assert_eq!(notes, ["Relay 1 upgraded", "Relay 2 upgraded"]);
        // A note whose answer is lost is looked for before it is sent again.
        sim.push_fault_on("PATCH", Fault::LoseResponseAfterCommit);
        client.add_change_note(&id, "Relay 3 upgraded").await.expect("noted");
        let record = client.fetch_change(&id).await.expect("read");
        assert_eq!(note_copies(&record, "Relay 3 upgraded"), 1);

        // The supplier's change manager moves the change on in its own tool.
        let before = record["lastUpdate"].as_str().expect("lastUpdate").to_string();
        sim.agent_update_change(&id, json!({ "status": "completed", "actualStartTime": "2026-03-14T22:05:00.000Z" })).expect("edited");
        let seen = client.fetch_change(&id).await.expect("read");
        let c = read(&seen);
        assert_eq!(c.status, Some(ChangeStatus::Review));
        assert_eq!(c.actual_start, Some(at(22) + chrono::Duration::minutes(5)));
        assert!(seen["lastUpdate"].as_str().expect("lastUpdate") > before.as_str());
        assert_eq!(seen["statusChangeDate"], seen["lastUpdate"]);
    }

    #[tokio::test]
    async fn updates_are_merge_patches_of_what_the_mapping_writes_whatever_the_ticket_flavour() {
        use crate::adapters::http::test_server::{response, start};
        let record = json!({ "id": "42", "externalId": "CHG-000501", "status": "inProgress" }).to_string();
        let (port, seen) =
            start(move |_, _| response("200 OK", &[("Content-Type", "application/json".into()), ("Content-Length", record.len().to_string())], record.as_bytes())).await;
        let toml = format!(
            "[[suppliers]]\nid = \"t\"\nname = \"T\"\nsystem = \"tmf621\"\nbase_url = \"http://127.0.0.1:{port}\"\nmax_attempts = 1\n[suppliers.tmf621]\nflavour = \"servicenow\"\n[egress]\nallow_networks = [\"127.0.0.0/8\"]\n"
        );
        let settings = crate::config::Settings::from_toml(&toml).expect("settings");
        let s = &settings.suppliers[0];
        let http = SupplierHttp::for_supplier(s, &settings.egress).expect("http");
        let client = Tmf621Client::new(http, &s.base_url, &s.tmf621, USER, SecretString::from(PASSWORD.to_string()));
        let body = json!({ "id": "7", "href": "x", "externalId": "CHG-000999", "status": "inProgress", "note": [{ "text": "again" }] });
        let after = client.update_change("42", &body).await.expect("updated");
        assert_eq!(after["externalId"], "CHG-000501");
        let heads = seen.lock().expect("heads").clone();
        assert_eq!(heads.len(), 1);
        let head = heads[0].to_ascii_lowercase();
        assert!(head.starts_with("patch /tmf-api/changemanagement/v4/changerequest/42 "), "{head}");
        assert!(head.contains("content-type: application/merge-patch+json"), "{head}");
        // Nothing but identity members: the record as it is, no write.
        client.update_change("42", &json!({ "id": "42", "externalId": "CHG-000501" })).await.expect("read");
        assert!(seen.lock().expect("heads")[1].starts_with("GET "));
        assert!(matches!(client.update_change("42", &json!([])).await, Err(SupplierError::Rejected { .. })));
    }

    #[actix_web::test]
    async fn the_change_api_root_is_configurable_and_credentials_follow_the_instance() {
        let sim = start_sim();
        let moved = client_for(&sim, "change_base_path = \"/elsewhere/changeManagement/v4/\"");
        assert!(moved.change_url("42").ends_with("/elsewhere/changeManagement/v4/changeRequest/42"));
        let err = moved.fetch_change("42").await.unwrap_err();
        assert!(matches!(err, SupplierError::Rejected { status: 404, .. }), "{err:?}");
        // OAuth2 client credentials reach the change API as they reach the ticket API.
        let oauth = client_for(&sim, "auth = \"oauth2\"");
        let made = oauth.create_change("CHG-000401", &json!({ "description": "Patch the firewalls" })).await.expect("created");
        assert_eq!(made["externalId"], "CHG-000401", "the reference is added for the look-up");
        assert!(sim.request_log().iter().filter(|r| r.path.contains("/changeRequest")).all(|r| r.user.is_some()));
    }
}
