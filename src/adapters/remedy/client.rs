//! The AR System REST client for Remedy incidents (its change requests: `change_client`).
//!
//! Authentication is a JWT from `POST /api/jwt/login` (form-encoded credentials, a plain-text
//! token in answer) sent as `Authorization: AR-JWT <token>`. The token is cached and shared by
//! every call of this supplier instance; when Remedy answers 401 (AR error 623, the token
//! expired or was invalidated), the client logs in again and repeats the request once, inside
//! the same attempt, so an expiry never costs a retry or surfaces as a failure.
//!
//! Every call goes through [`SupplierHttp`] (rate governor, backoff honouring `Retry-After`).
//! Creates are not blindly repeated: a retried create first looks its hub reference up in
//! `Vendor Ticket Number`, so an answer lost after Remedy committed never makes a second
//! incident; a retried work log likewise adopts the identical one an earlier attempt made.
//!
//! Files travel in work logs: an upload is a multipart `POST` of a `HPD:WorkLog` entry (an
//! `entry` JSON part and an `attach-z2AF Work Log01` part with the content, streamed), filed
//! with the profile's internal view access since the hub cannot know who at the supplier may
//! see a file; a download reads `.../HPD:WorkLog/{id}/attach/{field}`.

use super::mapping::{self, create_body, parse_entry, parse_errors, percent_encode, update_body, worklog_body, Profile, WORKLOG_FILE_FIELDS};
use crate::adapters::change::ChangeClient;
use crate::adapters::http::{status_error, transport_error, SupplierHttp};
use crate::adapters::{Client, NativeAttachment, OutgoingFile, SupplierError};
use crate::config::RemedySettings;
use crate::domain::{Incident, Visibility};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

/// Incident fields read on every incident call: the synced ones, identity and change tracking.
pub(super) const READ_FIELDS: &[&str] = &[
    "Entry ID",
    "Request ID",
    "Incident Number",
    "Vendor Ticket Number",
    "Status",
    "Status_Reason",
    "Impact",
    "Urgency",
    "Priority",
    "Priority Weight",
    "Description",
    "Detailed Decription",
    "Resolution",
    "Categorization Tier 1",
    "HPD_CI",
    "Assignee",
    "Assigned Group",
    "Customer Login ID",
    "First Name",
    "Last Name",
    "Service Type",
    "InstanceId",
    "Submit Date",
    "Last Modified Date",
    "Last Resolved Date",
    "Closed Date",
];

/// Incident work log fields read: those of every work log, the incident's ids, the
/// submission date and the attachment fields.
pub(super) static WORKLOG_FIELDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut fields = worklog_fields(&["Incident Number", "Incident Entry ID"], &["Work Log Submit Date", "Number of Attachments"]);
    fields.extend(WORKLOG_FILE_FIELDS);
    fields
});

/// What every work log form (of an incident or a change) is read with besides its id and the
/// record it is filed under.
const WORKLOG_ENTRY_FIELDS: &[&str] = &["Work Log Type", "Description", "Detailed Description", "View Access", "Secure Work Log", "Work Log Submitter", "Submitter", "Submit Date"];

/// The fields a work log is read with: its id, the fields naming its record (`parent`), those
/// of every work log, then `extra`.
pub(super) fn worklog_fields(parent: &[&'static str], extra: &[&'static str]) -> Vec<&'static str> {
    std::iter::once("Work Log ID").chain(parent.iter().copied()).chain(WORKLOG_ENTRY_FIELDS.iter().copied()).chain(extra.iter().copied()).collect()
}

/// Result pages of one query the client follows through `_links.next` before giving up.
const MAX_PAGES: usize = 50;
const PAGE_SIZE: usize = 200;
/// Incident numbers per `OR` qualification when fetching incidents that gained work logs.
const NUMBERS_PER_QUERY: usize = 25;
/// Incidents read when looking a hub reference up: one per time the instance was given it.
const LOOKUP_LIMIT: usize = 50;

pub(super) fn values_param(fields: &[&str]) -> String {
    format!("values({})", fields.join(","))
}

/// A qualification string literal: AR doubles an embedded quote.
pub(super) fn ar_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An answer the client accepted (2xx).
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    body: String,
}

impl Answer {
    pub(super) fn json(&self, what: &str) -> Result<Value, SupplierError> {
        if self.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&self.body).map_err(|e| SupplierError::Protocol(format!("{what}: unreadable JSON from Remedy: {e}")))
    }
}

/// AR's error list as one line; other bodies shortened.
fn error_detail(body: &str) -> String {
    let parsed = serde_json::from_str::<Value>(body).ok().map(|v| parse_errors(&v)).unwrap_or_default();
    if parsed.is_empty() {
        return body.chars().take(200).collect();
    }
    parsed
        .iter()
        .map(|m| {
            let mut s = format!("{} {}: {}", m.kind, m.number.map(|n| n.to_string()).unwrap_or_default(), m.text);
            if !m.appended.is_empty() {
                s.push_str(&format!(" ({})", m.appended));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sorts a failed answer. AR also answers 500 for workflow refusals (numbers of 10000 and up)
/// and data errors, which no retry will cure; everything else follows the shared rules.
fn classify(what: &str, status: StatusCode, headers: &HeaderMap, body: &str) -> SupplierError {
    let detail = error_detail(body);
    if status.is_server_error() {
        let msgs = serde_json::from_str::<Value>(body).ok().map(|v| parse_errors(&v)).unwrap_or_default();
        let definitive = !msgs.is_empty()
            && msgs.iter().filter(|m| m.kind.eq_ignore_ascii_case("ERROR")).all(|m| matches!(m.number, Some(302 | 303 | 306 | 307 | 326) | Some(10000..)))
            && msgs.iter().any(|m| m.kind.eq_ignore_ascii_case("ERROR"));
        if definitive {
            return SupplierError::Rejected { status: status.as_u16(), message: format!("{what} answered {status}: {detail}") };
        }
    }
    status_error(what, status, headers, &detail)
}

/// How a create attempt ended.
enum Created {
    /// Remedy made the incident: its `HPD:Help Desk` entry id, when the answer gave it.
    New(Option<String>),
    /// An earlier attempt had made it after all.
    Existing(Value),
}

#[derive(Clone)]
pub struct RemedyClient {
    pub(super) http: SupplierHttp,
    pub(super) base: String,
    pub(super) user: String,
    password: SecretString,
    pub(super) settings: RemedySettings,
    pub(super) profile: Arc<Profile>,
    /// The current JWT; the lock also makes concurrent callers wait for one login.
    token: Arc<tokio::sync::Mutex<Option<String>>>,
    /// Entry id -> Incident Number, learnt from every incident read (work logs name the number).
    numbers: Arc<Mutex<HashMap<String, String>>>,
}

impl RemedyClient {
    pub fn new(http: SupplierHttp, base_url: &str, user: &str, password: SecretString, settings: RemedySettings, profile: Arc<Profile>) -> Self {
        RemedyClient { http, base: base_url.trim_end_matches('/').to_string(), user: user.to_string(), password, settings, profile, token: Arc::default(), numbers: Arc::default() }
    }

    pub(super) fn form_url(&self, form: &str) -> String {
        format!("{}/api/arsys/v1/entry/{}", self.base, percent_encode(form))
    }

    /// The interface entry of a Help Desk entry id, by its composite `Request ID` (`X|X`).
    fn incident_url(&self, entry_id: &str) -> String {
        format!("{}/{}", self.form_url(&self.profile.forms.incident), percent_encode(&format!("{entry_id}|{entry_id}")))
    }

    /// `POST /api/jwt/login`: the answer is the bare token as text, not JSON.
    pub(super) async fn login(&self) -> Result<String, SupplierError> {
        let what = "Remedy login";
        let mut form = vec![("username", self.user.clone()), ("password", self.password.expose_secret().to_string())];
        if let Some(a) = self.settings.auth_string.as_ref().filter(|a| !a.is_empty()) {
            form.push(("authString", a.clone()));
        }
        let resp = self.http.client.post(format!("{}/api/jwt/login", self.base)).form(&form).send().await.map_err(|e| transport_error(what, e))?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = self.http.read_text(what, resp).await?;
        if !status.is_success() {
            return Err(classify(what, status, &headers, &body));
        }
        let token = body.trim();
        if token.is_empty() || token.contains(char::is_whitespace) || token.starts_with(['<', '{', '[']) {
            return Err(SupplierError::Protocol(format!("{what}: expected a bare token, got {:?}", body.chars().take(80).collect::<String>())));
        }
        tracing::debug!(user = %self.user, "logged in to Remedy");
        Ok(token.to_string())
    }

    async fn current_token(&self) -> Result<String, SupplierError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let t = self.login().await?;
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Replaces `stale` with a fresh token, unless another call already did.
    async fn renew(&self, stale: &str) -> Result<String, SupplierError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| t.as_str() != stale) {
            return Ok(t.clone());
        }
        *slot = None;
        let t = self.login().await?;
        *slot = Some(t.clone());
        Ok(t)
    }

    /// One attempt: the request with the cached token, and once more with a fresh one if Remedy
    /// says the token is no good (401, AR error 623).
    pub(super) async fn attempt(&self, what: &str, method: &Method, url: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Answer, SupplierError> {
        let resp = self
            .send_authed(what, |token| {
                let req = self.http.client.request(method.clone(), url).header("Authorization", format!("AR-JWT {token}")).header("Accept", "application/json").query(query);
                Ok(match body {
                    Some(b) => req.json(b),
                    None => req,
                })
            })
            .await?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = self.http.read_text(what, resp).await?;
        Ok(Answer { status, headers, body })
    }

    /// A call with retries.
    pub(super) async fn call(&self, what: &str, method: Method, url: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Answer, SupplierError> {
        self.http.retrying(what, || self.attempt(what, &method, url, query, body)).await
    }

    /// Notes the entry id -> Incident Number pair of an incident entry.
    fn remember(&self, entry: &Value) {
        if let Ok(rec) = parse_entry(&self.profile, entry, true) {
            if let (Some(id), Some(number)) = (rec.entry_id, rec.incident_number) {
                if let Ok(mut m) = self.numbers.lock() {
                    m.insert(id, number);
                }
            }
        }
    }

    async fn get_incident(&self, entry_id: &str) -> Result<Value, SupplierError> {
        let url = self.incident_url(entry_id);
        let entry = self.call("Remedy read incident", Method::GET, &url, &[("fields", values_param(READ_FIELDS))], None).await?.json("Remedy read incident")?;
        if !entry.is_object() {
            return Err(SupplierError::Protocol("Remedy read incident: the answer is not an entry".into()));
        }
        self.remember(&entry);
        Ok(entry)
    }

    /// One page of a query: its entries and whether Remedy says there is more.
    pub(super) async fn query_page(&self, what: &str, form: &str, q: &str, fields: &[&str], sort: &str, offset: usize, limit: usize) -> Result<(Vec<Value>, bool), SupplierError> {
        let query = [("q", q.to_string()), ("fields", values_param(fields)), ("sort", sort.to_string()), ("offset", offset.to_string()), ("limit", limit.to_string())];
        let v = self.call(what, Method::GET, &self.form_url(form), &query, None).await?.json(what)?;
        let entries = v.get("entries").and_then(Value::as_array).cloned().unwrap_or_default();
        let more = v.pointer("/_links/next").is_some_and(|n| n.as_array().is_some_and(|a| !a.is_empty()));
        Ok((entries, more))
    }

    /// Every entry a query matches, page by page while Remedy offers a `next` link.
    pub(super) async fn query_all(&self, what: &str, form: &str, q: &str, fields: &[&str], sort: &str) -> Result<Vec<Value>, SupplierError> {
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let (entries, more) = self.query_page(what, form, q, fields, sort, page * PAGE_SIZE, PAGE_SIZE).await?;
            let n = entries.len();
            all.extend(entries);
            if !more || n == 0 {
                return Ok(all);
            }
        }
        tracing::warn!(call = what, pages = MAX_PAGES, "Remedy query still had more pages; the rest waits for the next sweep");
        Ok(all)
    }

    /// The incidents carrying the hub reference, newest first.
    async fn lookup(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        let q = format!("'{}' = {}", mapping::VENDOR_TICKET, ar_quote(reference));
        let (entries, _) = self.query_page("Remedy lookup by Vendor Ticket Number", &self.profile.forms.incident, &q, READ_FIELDS, "Submit Date.desc", 0, LOOKUP_LIMIT).await?;
        for e in &entries {
            self.remember(e);
        }
        Ok(entries)
    }

    /// The incident carrying the hub reference that is none of `known`: the one a create made.
    async fn lookup_new(&self, reference: &str, known: &[String]) -> Result<Option<Value>, SupplierError> {
        let entry_id = |e: &Value| parse_entry(&self.profile, e, true).ok().and_then(|r| r.entry_id);
        Ok(crate::adapters::first_unknown(self.lookup(reference).await?, known, entry_id))
    }

    /// The Incident Number of an entry id (work logs are filed by number).
    async fn incident_number(&self, entry_id: &str) -> Result<String, SupplierError> {
        if let Some(n) = self.numbers.lock().ok().and_then(|m| m.get(entry_id).cloned()) {
            return Ok(n);
        }
        let entry = self.get_incident(entry_id).await?;
        parse_entry(&self.profile, &entry, true)
            .ok()
            .and_then(|r| r.incident_number)
            .ok_or_else(|| SupplierError::Protocol(format!("Remedy incident {entry_id} has no Incident Number")))
    }

    async fn worklogs(&self, number: &str) -> Result<Vec<Value>, SupplierError> {
        let q = format!("'Incident Number' = {}", ar_quote(number));
        self.query_all("Remedy work logs", &self.profile.forms.worklog, &q, &WORKLOG_FIELDS, "Submit Date.asc").await
    }

    /// One create attempt.
    async fn create_attempt(&self, body: &Value) -> Result<Created, SupplierError> {
        let what = "Remedy create incident";
        let url = self.form_url(&self.profile.forms.create);
        let answer = self.attempt(what, &Method::POST, &url, &[("fields", "values(Incident_Entry_ID,Incident Number)".into())], Some(body)).await?;
        let v = answer.json(what).unwrap_or(Value::Null);
        let id = v.pointer("/values/Incident_Entry_ID").map(|x| mapping::text_of(Some(x))).filter(|s| !s.trim().is_empty());
        if id.is_none() {
            let location = answer.headers.get("location").and_then(|l| l.to_str().ok()).unwrap_or("");
            tracing::warn!(status = %answer.status, %location, "Remedy created an entry but named no incident entry id");
        }
        Ok(Created::New(id))
    }

    /// Sends a request built by `build` (which sets everything but the token), logging in
    /// again once if Remedy refuses the token; answers the raw response when it succeeded.
    async fn send_authed(&self, what: &str, build: impl Fn(&str) -> Result<reqwest::RequestBuilder, SupplierError>) -> Result<reqwest::Response, SupplierError> {
        let token = self.current_token().await?;
        let mut resp = build(&token)?.send().await.map_err(|e| transport_error(what, e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            tracing::info!(call = what, "Remedy refused the token; logging in again");
            let fresh = self.renew(&token).await?;
            resp = build(&fresh)?.send().await.map_err(|e| transport_error(what, e))?;
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = self.http.read_text(what, resp).await.unwrap_or_default();
        Err(classify(what, status, &headers, &text))
    }

    /// One upload attempt: a work log holding the file; answers the file's id
    /// (`<Work Log ID>/<field>`).
    async fn attach_attempt(&self, number: &str, file: &OutgoingFile) -> Result<String, SupplierError> {
        let what = "Remedy attach file";
        let field = WORKLOG_FILE_FIELDS[0];
        let wl = &self.profile.worklog;
        let entry = json!({ "values": {
            "Incident Number": number,
            "Work Log Type": wl.log_type,
            "Description": mapping::truncate_chars(&file.file_name, wl.summary_max_chars),
            "View Access": wl.internal,
            "Secure Work Log": "No",
            field: file.file_name,
        }});
        let url = self.form_url(&self.profile.forms.worklog);
        let length = u64::try_from(file.size).unwrap_or(0);
        let resp = self
            .send_authed(what, |token| {
                let entry_part = reqwest::multipart::Part::text(entry.to_string()).mime_str("application/json").map_err(|e| SupplierError::Protocol(format!("{what}: {e}")))?;
                let file_part = reqwest::multipart::Part::stream_with_length(file.body(), length)
                    .file_name(file.file_name.clone())
                    .mime_str(&file.content_type)
                    .map_err(|e| SupplierError::Protocol(format!("{what}: content type `{}`: {e}", file.content_type)))?;
                // AR names the part after the field, spaces and all: sent as written, not
                // percent-encoded.
                let form = reqwest::multipart::Form::new().percent_encode_noop().part("entry", entry_part).part(format!("attach-{field}"), file_part);
                Ok(self
                    .http
                    .client
                    .post(&url)
                    .header("Authorization", format!("AR-JWT {token}"))
                    .header("Accept", "application/json")
                    .query(&[("fields", values_param(&["Work Log ID"]))])
                    .multipart(form))
            })
            .await?;
        let location = resp.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string);
        let body: Value = serde_json::from_str(&self.http.read_text(what, resp).await?).unwrap_or(Value::Null);
        let id = Some(mapping::text_of(body.pointer("/values/Work Log ID")))
            .filter(|s| !s.trim().is_empty())
            .or_else(|| location.and_then(|l| l.rsplit('/').next().map(mapping::percent_decode)).filter(|s| s.starts_with("WLG")))
            .ok_or_else(|| SupplierError::Protocol(format!("{what}: Remedy named no work log for the file")))?;
        Ok(format!("{id}/{field}"))
    }

    /// The work log an earlier attempt filed for the note: same text and view access, by the
    /// integration user.
    async fn worklog_written(&self, number: &str, visibility: Visibility, text: &str) -> Result<Option<Value>, SupplierError> {
        let access = match visibility {
            Visibility::Internal => &self.profile.worklog.internal,
            Visibility::Public => &self.profile.worklog.public,
        };
        let held = self.worklogs(number).await?;
        Ok(held.into_iter().find(|e| {
            let v = e.get("values").unwrap_or(e);
            mapping::text_of(v.get("Detailed Description")).trim() == text.trim()
                && mapping::text_of(v.get("View Access")) == *access
                && [v.get("Work Log Submitter"), v.get("Submitter")].iter().any(|s| mapping::text_of(*s) == self.user)
        }))
    }

    /// One attempt at filing a work log; answers the work log when Remedy gives it back.
    async fn worklog_attempt(&self, number: &str, visibility: Visibility, text: &str) -> Result<Option<Value>, SupplierError> {
        let what = "Remedy add work log";
        let url = self.form_url(&self.profile.forms.worklog);
        let body = worklog_body(&self.profile, number, visibility, text);
        let answer = self.attempt(what, &Method::POST, &url, &[("fields", values_param(&WORKLOG_FIELDS))], Some(&body)).await?;
        Ok(answer.json(what).ok().filter(|v| v.get("values").is_some()))
    }
}

#[async_trait]
impl Client for RemedyClient {
    /// Looks the hub reference up in `Vendor Ticket Number`.
    async fn find_by_correlation(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        self.lookup(reference).await
    }

    /// Creates through `HPD:IncidentInterface_Create`, then reads the incident back from the
    /// interface (the create form answers with its own ids and names only).
    async fn create(&self, incident: &Incident, known: &[String]) -> Result<Value, SupplierError> {
        let body = create_body(&self.profile, &self.settings, Some(&self.user), incident);
        let reference = incident.reference.as_str();
        let created =
            self.http.write_once("Remedy create incident", || self.create_attempt(&body), || async { Ok(self.lookup_new(reference, known).await?.map(Created::Existing)) }).await?;
        match created {
            Created::Existing(entry) => Ok(entry),
            Created::New(Some(id)) => self.get_incident(&id).await,
            Created::New(None) => self
                .lookup_new(incident.reference.as_str(), known)
                .await?
                .ok_or_else(|| SupplierError::Protocol("Remedy accepted the create but no incident carries the hub reference (was z1D_Action CREATE honoured?)".into())),
        }
    }

    /// `PUT` of the changed fields (Remedy answers 204 with no body), then a read of the result.
    async fn update(&self, native_id: &str, changes: &BTreeMap<String, String>) -> Result<Value, SupplierError> {
        let url = self.incident_url(native_id);
        self.call("Remedy update incident", Method::PUT, &url, &[], Some(&update_body(changes))).await?;
        self.get_incident(native_id).await
    }

    /// A `HPD:WorkLog` record whose `View Access` follows the note: Internal stays Internal.
    /// Answers with the incident and the new work log, so the echo is linked at once.
    async fn add_note(&self, native_id: &str, visibility: Visibility, text: &str) -> Result<Option<Value>, SupplierError> {
        let number = self.incident_number(native_id).await?;
        let created = self
            .http
            .write_once(
                "Remedy add work log",
                || self.worklog_attempt(&number, visibility, text),
                || async { Ok(self.worklog_written(&number, visibility, text).await?.map(Some)) },
            )
            .await?;
        let entry = self.get_incident(native_id).await?;
        Ok(Some(json!({ "entry": entry, "worklogs": created.into_iter().collect::<Vec<_>>() })))
    }

    /// Hub incidents (`Vendor Ticket Number` like `INC-%`) modified at or after `since`, oldest
    /// first; on the first page also those that gained a work log since, which need not have
    /// touched their incident's `Last Modified Date`.
    async fn updated_since(&self, since: DateTime<Utc>, offset: usize, limit: usize) -> Result<Vec<Value>, SupplierError> {
        let hub_tickets = format!("'{}' LIKE \"INC-%\"", mapping::VENDOR_TICKET);
        let from = ar_quote(&since.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let q = format!("'Last Modified Date' >= {from} AND {hub_tickets}");
        let (mut page, _) = self.query_page("Remedy poll", &self.profile.forms.incident, &q, READ_FIELDS, "Last Modified Date.asc", offset, limit).await?;
        if offset == 0 {
            let logs = self
                .query_all("Remedy poll work logs", &self.profile.forms.worklog, &format!("'Submit Date' >= {from}"), &["Work Log ID", "Incident Number"], "Submit Date.asc")
                .await?;
            let listed: Vec<String> = page.iter().filter_map(|e| parse_entry(&self.profile, e, false).ok()?.incident_number).collect();
            let mut wanted: Vec<String> = Vec::new();
            for l in &logs {
                let n = mapping::text_of(l.get("values").unwrap_or(l).get("Incident Number"));
                if !n.is_empty() && !listed.contains(&n) && !wanted.contains(&n) {
                    wanted.push(n);
                }
            }
            for chunk in wanted.chunks(NUMBERS_PER_QUERY) {
                let any = chunk.iter().map(|n| format!("'Incident Number' = {}", ar_quote(n))).collect::<Vec<_>>().join(" OR ");
                let q = format!("({any}) AND {hub_tickets}");
                page.extend(self.query_all("Remedy poll incidents with new work logs", &self.profile.forms.incident, &q, READ_FIELDS, "Last Modified Date.asc").await?);
            }
        }
        for e in &page {
            self.remember(e);
        }
        Ok(page)
    }

    /// The incident's work logs, oldest first, as a `HPD:WorkLog` query answer.
    async fn notes(&self, native_id: &str) -> Result<Value, SupplierError> {
        let number = self.incident_number(native_id).await?;
        Ok(json!({ "entries": self.worklogs(&number).await? }))
    }

    /// A work log holding the file. Before trying again after a failure, looks for the file an
    /// earlier attempt may have attached (same name and size), so a lost answer never files it
    /// twice.
    async fn upload_attachment(&self, native_id: &str, file: &OutgoingFile) -> Result<String, SupplierError> {
        let number = self.incident_number(native_id).await?;
        self.http.write_once("Remedy attach file", || self.attach_attempt(&number, file), || self.find_uploaded(native_id, file, &[])).await
    }

    /// The files in the attachment fields of the incident's work logs.
    async fn list_attachments(&self, native_id: &str) -> Result<Vec<NativeAttachment>, SupplierError> {
        let number = self.incident_number(native_id).await?;
        Ok(mapping::worklog_attachments(&self.profile, &json!({ "entries": self.worklogs(&number).await? })))
    }

    /// `GET .../entry/HPD:WorkLog/{id}/attach/{field}` on the server itself (not the `href` a
    /// work log lists), as a stream.
    async fn download_attachment(&self, file: &NativeAttachment) -> Result<reqwest::Response, SupplierError> {
        let what = "Remedy download file";
        let (log, field) = file.native_id.split_once('/').ok_or_else(|| SupplierError::Protocol(format!("{what}: `{}` names no work log field", file.native_id)))?;
        let url = self.http.check_own(what, &format!("{}/{}/attach/{}", self.form_url(&self.profile.forms.worklog), percent_encode(log), percent_encode(field)))?;
        self.http.retrying(what, || self.send_authed(what, |token| Ok(self.http.client.get(url.clone()).header("Authorization", format!("AR-JWT {token}"))))).await
    }

    /// The interface entry's REST address (Remedy's mid-tier address is not known to the hub).
    fn ticket_url(&self, native_id: &str) -> String {
        self.incident_url(native_id)
    }

    /// Change requests on the `CHG:` forms (see `change_client`).
    fn changes(&self) -> Option<&dyn ChangeClient> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_one_line_and_workflow_refusals_are_not_retried() {
        let body =
            r#"[{"messageType":"ERROR","messageText":"Entry does not exist in database","messageAppendedText":"HPD:IncidentInterface : INC000000000999","messageNumber":302}]"#;
        assert_eq!(error_detail(body), "ERROR 302: Entry does not exist in database (HPD:IncidentInterface : INC000000000999)");
        let h = HeaderMap::new();
        assert!(
            !classify("x", StatusCode::INTERNAL_SERVER_ERROR, &h, r#"[{"messageType":"ERROR","messageText":"Assigned Group is invalid","messageNumber":1291053}]"#).is_transient()
        );
        assert!(classify("x", StatusCode::INTERNAL_SERVER_ERROR, &h, r#"[{"messageType":"ERROR","messageText":"Cannot establish a network connection","messageNumber":90}]"#)
            .is_transient());
        assert!(classify("x", StatusCode::SERVICE_UNAVAILABLE, &h, "<html>gateway</html>").is_transient());
        assert!(!classify("x", StatusCode::BAD_REQUEST, &h, body).is_transient());
        assert_eq!(error_detail("plain"), "plain");
    }

    #[test]
    fn qualification_literals_double_embedded_quotes() {
        assert_eq!(ar_quote("INC-000001"), "\"INC-000001\"");
        assert_eq!(ar_quote("a\"b"), "\"a\"\"b\"");
    }

    /// AR's reading of a qualification string literal: the text between the outer quotes, a
    /// doubled quote standing for one; `None` when a lone quote would end the literal early.
    fn ar_unquote(q: &str) -> Option<String> {
        let inner = q.strip_prefix('"')?.strip_suffix('"')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '"' && chars.next() != Some('"') {
                return None;
            }
            out.push(c);
        }
        Some(out)
    }

    proptest::proptest! {
        #![proptest_config(crate::testkit::config(512))]

        /// Any text (a hub reference, a supplier's value) stays one literal in a qualification.
        #[test]
        fn any_text_is_one_qualification_literal(s in crate::testkit::odd_text()) {
            proptest::prop_assert_eq!(ar_unquote(&ar_quote(&s)), Some(s));
        }

        /// Any answer body, JSON or not, reads as one line of detail and a classified error.
        #[test]
        fn any_error_body_is_classified(body in proptest::prop_oneof![proptest::strategy::Strategy::prop_map(crate::testkit::json(), |v| v.to_string()), crate::testkit::odd_text()], status in 400u16..600) {
            let _ = error_detail(&body);
            let status = StatusCode::from_u16(status).expect("a status code");
            let _ = classify("x", status, &HeaderMap::new(), &body);
        }
    }
}
