//! The TMF621 API client: Basic, static bearer or OAuth2 client-credentials auth, TMF630 error
//! bodies, merge-patch updates, note appends, `offset`/`limit` paging with `lastUpdate.gt`, and
//! the hub's own subscription at the supplier's `/hub`. Retries go through [`SupplierHttp`].
//! The same client keeps the supplier's TMF655 change requests (`super::change_client`).
//!
//! Files travel in the ticket's `attachment[]`: an upload patches in an attachment value whose
//! base64 `content` is streamed into the request body (the file is never held whole); a
//! download follows the attachment's `url` (with the instance's credentials on its own origin,
//! without them on an origin its `attachment_origins` allows, refused anywhere else), or
//! decodes content the server lists inline.

use super::mapping::{self, Instance};
use crate::adapters::change::ChangeClient;
use crate::adapters::egress::FileUrl;
use crate::adapters::http::{status_error, transport_error, SupplierHttp};
use crate::adapters::{Client, ContentStream, NativeAttachment, OutgoingFile, SupplierError};
use crate::config::{Tmf621Settings, TmfAuth, TmfFlavour, TmfNotePatch, TmfVersion};
use crate::domain::{Incident, Visibility};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Pages read when looking a reference up, in case the server ignores the filter.
pub(super) const LOOKUP_PAGES: usize = 20;
pub(super) const LOOKUP_PAGE: usize = 100;

#[derive(Clone)]
enum Auth {
    Basic {
        user: String,
        password: SecretString,
    },
    Bearer(SecretString),
    /// Client credentials; the token is cached until shortly before it expires.
    Oauth2 {
        token_url: String,
        client_id: String,
        secret: SecretString,
        token: Arc<Mutex<Option<(SecretString, Instant)>>>,
    },
}

#[derive(Clone)]
pub struct Tmf621Client {
    pub(super) http: SupplierHttp,
    base: String,
    pub(super) inst: Instance,
    auth: Auth,
    /// The TMF655 Change Management root on the supplier (`/tmf-api/changeManagement/v4`).
    change_base: String,
    /// The user (Basic) or OAuth2 client id, as configured.
    pub(super) user: String,
    /// The hub registers at the supplier's `/hub` for event notifications.
    pub(super) subscribes: bool,
}

impl Tmf621Client {
    pub fn new(http: SupplierHttp, base_url: &str, settings: &Tmf621Settings, user: &str, password: SecretString) -> Self {
        let base = base_url.trim_end_matches('/').to_string();
        let auth = match settings.auth {
            TmfAuth::Basic => Auth::Basic { user: user.to_string(), password },
            TmfAuth::Bearer => Auth::Bearer(password),
            TmfAuth::Oauth2 => {
                let url = settings.token_url.clone().unwrap_or_else(|| "/oauth/token".into());
                let token_url = if url.starts_with("http://") || url.starts_with("https://") { url } else { format!("{base}{url}") };
                Auth::Oauth2 { token_url, client_id: user.to_string(), secret: password, token: Arc::default() }
            }
        };
        let change_path = settings.change_base_path.trim().trim_matches('/');
        let change_base = if change_path.is_empty() { String::new() } else { format!("/{change_path}") };
        Tmf621Client { http, base, inst: Instance::new(settings), auth, change_base, user: user.to_string(), subscribes: settings.subscribe }
    }

    /// How the hub authenticates: `basic`, `bearer` or `oauth2`.
    pub(super) fn auth_kind(&self) -> &'static str {
        match self.auth {
            Auth::Basic { .. } => "basic",
            Auth::Bearer(_) => "bearer",
            Auth::Oauth2 { .. } => "oauth2",
        }
    }

    pub fn instance(&self) -> &Instance {
        &self.inst
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.base, self.inst.base_path, path)
    }

    /// A URL of the supplier's TMF655 Change Management API.
    pub(super) fn change_api_url(&self, path: &str) -> String {
        format!("{}{}{}", self.base, self.change_base, path)
    }

    /// An OAuth2 access token, from the cache or the token endpoint.
    pub(super) async fn token(&self) -> Result<Option<String>, SupplierError> {
        let Auth::Oauth2 { token_url, client_id, secret, token } = &self.auth else { return Ok(None) };
        let mut cached = token.lock().await;
        if let Some((t, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(Some(t.expose_secret().to_string()));
            }
        }
        let what = "TMF621 OAuth2 token";
        let resp = self
            .http
            .client
            .post(token_url)
            .basic_auth(client_id, Some(secret.expose_secret()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| transport_error(what, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = self.http.read_text(what, resp).await?;
        if !status.is_success() {
            return Err(status_error(what, status, &headers, &error_detail(&body)));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| SupplierError::Protocol(format!("{what}: unreadable answer: {e}")))?;
        let access = v.get("access_token").and_then(Value::as_str).ok_or_else(|| SupplierError::Protocol(format!("{what}: no access_token in the answer")))?;
        // Renew a little early so a token never expires in flight.
        let ttl = v.get("expires_in").and_then(Value::as_u64).unwrap_or(300).saturating_sub(10).max(1);
        *cached = Some((SecretString::from(access.to_string()), Instant::now() + Duration::from_secs(ttl)));
        Ok(Some(access.to_string()))
    }

    async fn forget_token(&self) {
        if let Auth::Oauth2 { token, .. } = &self.auth {
            *token.lock().await = None;
        }
    }

    /// One API call with retries; `Value::Null` for an empty answer.
    async fn call(&self, what: &str, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value, SupplierError> {
        self.http.retrying(what, || self.attempt(what, method.clone(), path, query, body)).await
    }

    /// A single attempt, for writes that must look before they try again.
    async fn send_once(&self, what: &str, method: Method, path: &str, body: &Value) -> Result<Value, SupplierError> {
        self.attempt(what, method, path, &[], Some(body)).await
    }

    pub(super) async fn attempt(&self, what: &str, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value, SupplierError> {
        // TMF630 names merge-patch for PATCH; ServiceNow's API takes plain JSON.
        let merge = method == Method::PATCH && self.inst.flavour == TmfFlavour::Standard;
        self.attempt_at(what, method, &self.url(path), query, body, merge).await
    }

    /// A single attempt at an absolute URL on the supplier; a body is sent as a merge-patch
    /// when `merge_patch`, as plain JSON otherwise.
    pub(super) async fn attempt_at(
        &self,
        what: &str,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        merge_patch: bool,
    ) -> Result<Value, SupplierError> {
        let req = self.http.client.request(method, url).query(query);
        self.exchange_json(what, req, body.map(|b| reqwest::Body::from(b.to_string())), merge_patch).await
    }

    /// Sends a JSON body (a merge-patch when `merge` and the flavour is standard) and reads the
    /// JSON answer; `Value::Null` for an empty one.
    async fn exchange(&self, what: &str, req: reqwest::RequestBuilder, body: Option<reqwest::Body>, merge: bool) -> Result<Value, SupplierError> {
        // TMF630 names merge-patch for PATCH; ServiceNow's API takes plain JSON.
        self.exchange_json(what, req, body, merge && self.inst.flavour == TmfFlavour::Standard).await
    }

    /// Sends a JSON body (as `application/merge-patch+json` when `merge_patch`) and reads the
    /// JSON answer; `Value::Null` for an empty one.
    async fn exchange_json(&self, what: &str, req: reqwest::RequestBuilder, body: Option<reqwest::Body>, merge_patch: bool) -> Result<Value, SupplierError> {
        let mut req = req.header("Accept", "application/json");
        if let Some(b) = body {
            let kind = if merge_patch { "application/merge-patch+json" } else { "application/json" };
            req = req.header("Content-Type", kind).body(b);
        }
        let resp = self.send(what, req).await?;
        let status = resp.status();
        let text = self.http.read_text(what, resp).await?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| SupplierError::Transient {
            // A gateway or a sleeping instance answering HTML with 200.
            message: format!("{what}: the supplier answered {status} without JSON"),
            retry_after: None,
            unsent: false,
        })
    }

    /// Authenticates and sends a request; answers the response when it succeeded.
    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> Result<reqwest::Response, SupplierError> {
        let req = match &self.auth {
            Auth::Basic { user, password } => req.basic_auth(user, Some(password.expose_secret())),
            Auth::Bearer(t) => req.bearer_auth(t.expose_secret()),
            Auth::Oauth2 { .. } => req.bearer_auth(self.token().await?.unwrap_or_default()),
        };
        let resp = req.send().await.map_err(|e| transport_error(what, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let headers = resp.headers().clone();
        let text = self.http.read_text(what, resp).await.unwrap_or_default();
        if status.as_u16() == 401 && matches!(self.auth, Auth::Oauth2 { .. }) {
            // The token expired or was revoked: fetch a new one on the next attempt.
            self.forget_token().await;
            return Err(SupplierError::Transient { message: format!("{what}: the access token was refused"), retry_after: Some(Duration::ZERO), unsent: true });
        }
        Err(status_error(what, status, &headers, &error_detail(&text)))
    }

    pub async fn get_ticket(&self, id: &str) -> Result<Value, SupplierError> {
        self.call("TMF621 read trouble ticket", Method::GET, &format!("/troubleTicket/{}", encode(id)), &[], None).await
    }

    async fn list(&self, what: &str, query: &[(&str, String)]) -> Result<Vec<Value>, SupplierError> {
        let v = self.call(what, Method::GET, "/troubleTicket", query, None).await?;
        let items = match v {
            Value::Array(a) => a,
            Value::Object(mut o) => match o.remove("result").or_else(|| o.remove("troubleTicket")) {
                Some(Value::Array(a)) => a,
                _ => return Err(SupplierError::Protocol(format!("{what}: expected a JSON array of trouble tickets"))),
            },
            Value::Null => vec![],
            _ => return Err(SupplierError::Protocol(format!("{what}: expected a JSON array of trouble tickets"))),
        };
        Ok(items)
    }

    async fn patch(&self, id: &str, body: &Value) -> Result<Value, SupplierError> {
        let answer = self.call("TMF621 update trouble ticket", Method::PATCH, &format!("/troubleTicket/{}", encode(id)), &[], Some(body)).await?;
        // Some servers answer 204; the record after is what the sync needs.
        if answer.get("id").is_some() {
            Ok(answer)
        } else {
            self.get_ticket(id).await
        }
    }

    fn time_param(&self, t: &DateTime<Utc>) -> String {
        match self.inst.flavour {
            TmfFlavour::Servicenow => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            TmfFlavour::Standard => crate::domain::time::rfc3339(t),
        }
    }

    /// Registers `callback` for the ticket events at the supplier's `/hub`; returns the id.
    /// Registers `callback` at the `/hub` of the API whose events it wants: the trouble tickets'
    /// (TMF621) or, with `changes`, the change requests' (TMF655).
    pub async fn subscribe(&self, changes: bool, callback: &str, query: &str) -> Result<String, SupplierError> {
        let body = json!({ "callback": callback, "query": query });
        let v = if changes {
            let url = self.change_api_url("/hub");
            self.http.retrying("TMF655 subscribe", || self.attempt_at("TMF655 subscribe", Method::POST, &url, &[], Some(&body), false)).await?
        } else {
            self.call("TMF621 subscribe", Method::POST, "/hub", &[], Some(&body)).await?
        };
        v.get("id")
            .and_then(|i| i.as_str().map(str::to_string).or_else(|| i.as_i64().map(|n| n.to_string())))
            .ok_or_else(|| SupplierError::Protocol("TMF subscribe: the answer has no id".into()))
    }

    pub async fn unsubscribe(&self, changes: bool, id: &str) -> Result<(), SupplierError> {
        let path = format!("/hub/{}", encode(id));
        let done = if changes {
            let url = self.change_api_url(&path);
            self.http.retrying("TMF655 unsubscribe", || self.attempt_at("TMF655 unsubscribe", Method::DELETE, &url, &[], None, false)).await
        } else {
            self.call("TMF621 unsubscribe", Method::DELETE, &path, &[], None).await
        };
        match done {
            Ok(_) | Err(SupplierError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Base64 of a content stream, chunk by chunk (a chunk's last one or two bytes wait for the
/// next, so the pieces join into one valid encoding).
fn base64_stream(content: ContentStream) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    use base64::Engine as _;
    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
    futures_util::stream::unfold((content, Vec::new(), false), |(mut content, mut carry, done)| async move {
        if done {
            return None;
        }
        match content.next().await {
            Some(Ok(chunk)) => {
                carry.extend_from_slice(&chunk);
                let whole = carry.len() / 3 * 3;
                let out = B64.encode(&carry[..whole]).into_bytes();
                carry.drain(..whole);
                Some((Ok(out), (content, carry, false)))
            }
            Some(Err(e)) => Some((Err(e), (content, carry, true))),
            None => Some((Ok(B64.encode(&carry).into_bytes()), (content, Vec::new(), true))),
        }
    })
}

impl Tmf621Client {
    /// The ticket carrying the hub reference that is none of `known`: the one a create made.
    async fn lookup_new(&self, reference: &str, known: &[String]) -> Result<Option<Value>, SupplierError> {
        let id = |t: &Value| mapping::parse_ticket(&self.inst, t).ok().map(|t| t.id);
        Ok(crate::adapters::first_unknown(self.find_by_correlation(reference).await?, known, id))
    }
}

pub(super) fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// How many notes of a record (ticket or change request) read `text`.
pub(super) fn note_copies(v: &Value, text: &str) -> usize {
    v.get("note").and_then(Value::as_array).map(|n| n.iter().filter(|x| x.get("text").and_then(Value::as_str) == Some(text)).count()).unwrap_or(0)
}

/// The merge-patch adding `entry` to a record's notes: the entry alone where the server
/// appends, else the notes of `current` (the record as last read) with the entry after them.
pub(super) fn note_patch(mode: TmfNotePatch, current: &std::sync::Mutex<Value>, entry: &Value) -> Value {
    let notes = match mode {
        TmfNotePatch::Append => vec![entry.clone()],
        TmfNotePatch::Full => {
            let mut notes = current.lock().unwrap_or_else(|p| p.into_inner()).get("note").and_then(Value::as_array).cloned().unwrap_or_default();
            notes.push(entry.clone());
            notes
        }
    };
    json!({ "note": notes })
}

#[async_trait]
impl Client for Tmf621Client {
    /// Looks the hub reference up in `externalId` (v4) or `externalIdentifier.id` (v5), and checks
    /// every answer itself: a server that ignores the filter must not make the hub adopt a
    /// stranger's ticket.
    /// Newest first by `creationDate` (tickets without one last, in the server's order).
    async fn find_by_correlation(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        let filter = match self.inst.version {
            TmfVersion::V4 => "externalId",
            TmfVersion::V5 => "externalIdentifier.id",
        };
        let mut found: Vec<(Option<DateTime<Utc>>, Value)> = Vec::new();
        for page in 0..LOOKUP_PAGES {
            let q = [(filter, reference.to_string()), ("offset", (page * LOOKUP_PAGE).to_string()), ("limit", LOOKUP_PAGE.to_string())];
            let items = self.list("TMF621 lookup by external reference", &q).await?;
            let n = items.len();
            for t in items {
                if let Ok(ticket) = mapping::parse_ticket(&self.inst, &t) {
                    if ticket.correlation.as_deref() == Some(reference) {
                        found.push((ticket.created, t));
                    }
                }
            }
            if n < LOOKUP_PAGE {
                found.sort_by_key(|t| std::cmp::Reverse(t.0));
                return Ok(found.into_iter().map(|(_, t)| t).collect());
            }
        }
        Err(SupplierError::Protocol(format!("TMF621 lookup of {reference}: the supplier ignores the {filter} filter and holds more than {} tickets", LOOKUP_PAGES * LOOKUP_PAGE)))
    }

    /// POSTs the ticket once per attempt; before trying again after a failure (which may have
    /// come after the server committed), it looks the reference up and adopts the ticket that is
    /// none of `known`, so a lost answer never makes a second ticket.
    async fn create(&self, incident: &Incident, known: &[String]) -> Result<Value, SupplierError> {
        let body = mapping::create_body(&self.inst, incident);
        let reference = incident.reference.as_str();
        let answer = self
            .http
            .write_once(
                "TMF621 create trouble ticket",
                || self.send_once("TMF621 create trouble ticket", Method::POST, "/troubleTicket", &body),
                || self.lookup_new(reference, known),
            )
            .await?;
        if answer.get("id").is_some() {
            return Ok(answer);
        }
        // 201 without a body: read back what was made.
        self.lookup_new(reference, known).await?.ok_or_else(|| SupplierError::Protocol("TMF621 create answered without the ticket, and the ticket cannot be found".into()))
    }

    async fn update(&self, native_id: &str, changes: &BTreeMap<String, String>) -> Result<Value, SupplierError> {
        let needs_current = changes.keys().any(|k| k == mapping::F_CI || k.starts_with(mapping::F_CHAR));
        let current = if needs_current { Some(self.get_ticket(native_id).await?) } else { None };
        let body = mapping::patch_body(&self.inst, changes, current.as_ref());
        self.patch(native_id, &body).await
    }

    /// Appends a note. An internal note reaches the supplier only as the instance's private-note
    /// type; without one it is withheld (answer `None`) and never sent. A failed attempt may have
    /// been committed, so before trying again the ticket is read: a note that appeared is taken
    /// as delivered instead of being appended twice.
    async fn add_note(&self, native_id: &str, visibility: Visibility, text: &str) -> Result<Option<Value>, SupplierError> {
        let Some(entry) = mapping::note_entry(&self.inst, visibility, text) else {
            tracing::info!(ticket = %native_id, "internal note withheld: this TMF621 supplier declares no private-note type");
            return Ok(None);
        };
        // The ticket as last read: a full-array patch resends its notes with the new one.
        let current = std::sync::Mutex::new(self.get_ticket(native_id).await?);
        let before = note_copies(&current.lock().unwrap_or_else(|p| p.into_inner()), text);
        let path = format!("/troubleTicket/{}", encode(native_id));
        let answer = self
            .http
            .write_once(
                "TMF621 add note",
                || {
                    let body = note_patch(self.inst.note_patch, &current, &entry);
                    let path = &path;
                    async move { self.send_once("TMF621 add note", Method::PATCH, path, &body).await }
                },
                || async {
                    let now = self.get_ticket(native_id).await?;
                    if note_copies(&now, text) > before {
                        return Ok(Some(now));
                    }
                    *current.lock().unwrap_or_else(|p| p.into_inner()) = now;
                    Ok(None)
                },
            )
            .await?;
        if answer.get("id").is_some() {
            Ok(Some(answer))
        } else {
            self.get_ticket(native_id).await.map(Some)
        }
    }

    /// Tickets with `lastUpdate` at or after `since`, by `lastUpdate`. Foreign tickets are
    /// returned too (the page length drives paging); the sweep skips those without a leg. The
    /// filter is `lastUpdate.gt` (what every server takes) a millisecond before `since`.
    async fn updated_since(&self, since: DateTime<Utc>, offset: usize, limit: usize) -> Result<Vec<Value>, SupplierError> {
        let q = [
            ("lastUpdate.gt", self.time_param(&(since - chrono::Duration::milliseconds(1)))),
            ("sort", "lastUpdate".to_string()),
            ("offset", offset.to_string()),
            ("limit", limit.to_string()),
        ];
        let mut items = self.list("TMF621 poll", &q).await?;
        let key = |v: &Value| mapping::parse_ticket(&self.inst, v).ok().and_then(|t| t.last_update);
        items.sort_by_key(key);
        Ok(items)
    }

    /// The ticket itself: its `note[]` is the journal.
    async fn notes(&self, native_id: &str) -> Result<Value, SupplierError> {
        self.get_ticket(native_id).await
    }

    async fn fetch(&self, native_id: &str) -> Result<Option<Value>, SupplierError> {
        self.get_ticket(native_id).await.map(Some)
    }

    fn ticket_url(&self, native_id: &str) -> String {
        self.url(&format!("/troubleTicket/{}", encode(native_id)))
    }

    /// Change legs are kept as TMF655 change requests (`super::change_client`).
    fn changes(&self) -> Option<&dyn ChangeClient> {
        Some(self)
    }

    /// Patches an attachment value into `attachment[]` (the whole array or the new entry, as the
    /// instance adds to arrays), its content streamed as base64. A failed attempt may have been
    /// committed, so before trying again the ticket is read and a new file of the same name and
    /// size is taken as delivered.
    async fn upload_attachment(&self, native_id: &str, file: &OutgoingFile) -> Result<String, SupplierError> {
        let what = "TMF621 attach file";
        if self.inst.flavour == TmfFlavour::Servicenow {
            return Err(SupplierError::Rejected { status: 0, message: "ServiceNow's Trouble Ticket API carries no attachments; the file stays on the hub's record".into() });
        }
        let first = self.get_ticket(native_id).await?;
        let before: HashSet<String> = mapping::attachments(&first).into_iter().map(|a| a.native_id).collect();
        let added = |t: &Value| mapping::attachments(t).into_iter().find(|a| !before.contains(&a.native_id) && file.left_by_write(a)).map(|a| a.native_id);
        let current = std::sync::Mutex::new(first);
        let url = self.url(&format!("/troubleTicket/{}", encode(native_id)));
        let answer = self
            .http
            .write_once(
                what,
                || {
                    let mut list = match self.inst.note_patch {
                        TmfNotePatch::Append => vec![],
                        TmfNotePatch::Full => current.lock().unwrap_or_else(|p| p.into_inner()).get("attachment").and_then(Value::as_array).cloned().unwrap_or_default(),
                    };
                    let url = &url;
                    async move {
                        let marker = uuid::Uuid::new_v4().simple().to_string();
                        list.push(mapping::attachment_value(&file.file_name, &file.content_type, file.size, &marker));
                        let text = json!({ "attachment": list }).to_string();
                        let (head, tail) = text.split_once(&marker).ok_or_else(|| SupplierError::Protocol(format!("{what}: could not frame the request")))?;
                        let (head, tail) = (head.as_bytes().to_vec(), tail.as_bytes().to_vec());
                        let body =
                            futures_util::stream::once(async move { Ok(head) }).chain(base64_stream((file.content)())).chain(futures_util::stream::once(async move { Ok(tail) }));
                        self.exchange(what, self.http.client.patch(url), Some(reqwest::Body::wrap_stream(body)), true).await
                    }
                },
                || async {
                    let now = self.get_ticket(native_id).await?;
                    if added(&now).is_some() {
                        return Ok(Some(now));
                    }
                    *current.lock().unwrap_or_else(|p| p.into_inner()) = now;
                    Ok(None)
                },
            )
            .await?;
        let after = if answer.get("id").is_some() { answer } else { self.get_ticket(native_id).await? };
        added(&after).ok_or_else(|| SupplierError::Rejected { status: 0, message: "the supplier accepted the file but lists no attachment for it (it keeps no files)".into() })
    }

    /// The ticket's `attachment[]`.
    async fn list_attachments(&self, native_id: &str) -> Result<Vec<NativeAttachment>, SupplierError> {
        if self.inst.flavour == TmfFlavour::Servicenow {
            return Ok(vec![]);
        }
        Ok(mapping::attachments(&self.get_ticket(native_id).await?))
    }

    /// The attachment's `url` (relative ones on the supplier's address) as a stream: with the
    /// instance's credentials on its own origin, without them on an origin `attachment_origins`
    /// allows, refused (with why) anywhere else. Content listed inline is decoded instead.
    async fn download_attachment(&self, file: &NativeAttachment) -> Result<reqwest::Response, SupplierError> {
        let what = "TMF621 download file";
        let Some(location) = file.location.as_deref() else {
            return Err(SupplierError::Rejected { status: 0, message: format!("the supplier lists `{}` with neither a url nor content", file.file_name) });
        };
        if let Some(inline) = location.strip_prefix("data:") {
            return data_url(inline).map_err(|e| SupplierError::Rejected { status: 0, message: format!("{what}: `{}`: {e}", file.file_name) });
        }
        let url = match url::Url::parse(location) {
            Ok(absolute) => absolute,
            Err(_) => {
                let relative = format!("{}/{}", self.base, location.trim_start_matches('/'));
                url::Url::parse(&relative).map_err(|e| SupplierError::Rejected { status: 0, message: format!("{what}: `{location}` is not a URL: {e}") })?
            }
        };
        match self.http.file_url(&url)? {
            FileUrl::Own(url) => self.http.retrying(what, || self.send(what, self.http.client.get(url.clone()))).await,
            FileUrl::Allowed(url) => self.http.download_elsewhere(what, &url, error_detail).await,
        }
    }
}

/// The content of an RFC 2397 `data:` URL (after the scheme) as a response to stream from.
fn data_url(rest: &str) -> Result<reqwest::Response, String> {
    use base64::Engine as _;
    let (meta, data) = rest.split_once(',').ok_or("not a data: URL")?;
    let mime = meta.strip_suffix(";base64").ok_or("only base64 content is read")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(data.trim()).map_err(|e| format!("the content is not base64: {e}"))?;
    let resp = http::Response::builder().header("content-type", if mime.is_empty() { "application/octet-stream" } else { mime }).body(bytes).map_err(|e| e.to_string())?;
    Ok(reqwest::Response::from(resp))
}

/// TMF630's `{code, reason, message, status}` as one line; other bodies shortened.
fn error_detail(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str().map(str::to_string).or_else(|| x.as_i64().map(|n| n.to_string())));
        if let Some(reason) = s("reason").or_else(|| s("error")) {
            let code = s("code").map(|c| format!(" (code {c})")).unwrap_or_default();
            return match s("message").or_else(|| s("error_description")) {
                Some(m) if !m.is_empty() => format!("{reason}{code}: {m}"),
                _ => format!("{reason}{code}"),
            };
        }
    }
    body.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmf630_error_bodies_read_as_one_line() {
        assert_eq!(
            error_detail(r#"{"code":"60","reason":"Resource not found","message":"TroubleTicket 42 not found","status":"404"}"#),
            "Resource not found (code 60): TroubleTicket 42 not found"
        );
        assert_eq!(error_detail(r#"{"code":60,"reason":"Resource not found"}"#), "Resource not found (code 60)");
        assert_eq!(error_detail("<html>"), "<html>");
    }

    #[tokio::test]
    async fn streamed_base64_joins_into_one_encoding_whatever_the_chunking() {
        use base64::Engine as _;
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for sizes in [vec![1000], vec![1, 1, 1, 997], vec![2, 5, 300, 693], vec![999, 1]] {
            let mut at = 0;
            let chunks: Vec<std::io::Result<Vec<u8>>> = sizes
                .iter()
                .map(|n| {
                    let c = data[at..at + n].to_vec();
                    at += n;
                    Ok(c)
                })
                .collect();
            let out: Vec<Vec<u8>> = base64_stream(futures_util::stream::iter(chunks).boxed()).map(|c| c.unwrap()).collect().await;
            assert_eq!(String::from_utf8(out.concat()).unwrap(), base64::engine::general_purpose::STANDARD.encode(&data), "{sizes:?}");
        }
    }

    #[tokio::test]
    async fn inline_content_reads_as_a_response() {
        let resp = data_url("text/plain;base64,aGVsbG8=").unwrap();
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), b"hello");
        assert!(data_url("text/plain,hello").is_err());
        assert!(data_url(";base64,@@@").is_err());
    }

    #[tokio::test]
    async fn a_file_url_redirecting_off_the_supplier_origin_is_not_followed_with_credentials() {
        use crate::adapters::http::test_server::{response, start};
        let (elsewhere, reached) = start(|_, _| response("200 OK", &[], b"x")).await;
        let (port, seen) = start(move |_, _| response("302 Found", &[("Location", format!("http://127.0.0.1:{elsewhere}/collect"))], b"")).await;
        let base = format!("http://127.0.0.1:{port}");
        let toml = format!("[[suppliers]]\nid = \"t\"\nname = \"T\"\nsystem = \"tmf621\"\nbase_url = \"{base}\"\nmax_attempts = 1\nattachment_origins = [\"http://127.0.0.1:{elsewhere}\"]\n[egress]\nallow_networks = [\"127.0.0.0/8\"]\n");
        let settings = crate::config::Settings::from_toml(&toml).unwrap();
        let s = &settings.suppliers[0];
        let http = SupplierHttp::for_supplier(s, &settings.egress).unwrap();
        let client = Tmf621Client::new(http, &s.base_url, &s.tmf621, "hub", SecretString::from("pw".to_string()));
        let file = NativeAttachment { native_id: "f1".into(), file_name: "f.txt".into(), location: Some("/files/f1".into()), ..Default::default() };
        // Even to an origin the supplier's files may come from: the redirect would carry the credentials.
        let err = client.download_attachment(&file).await.unwrap_err();
        assert!(matches!(&err, SupplierError::Rejected { message, .. } if message.contains("leaves the origins")), "{err:?}");
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert!(seen.lock().unwrap()[0].contains("authorization: Basic"), "the supplier's own origin gets the credentials");
        assert!(reached.lock().unwrap().is_empty(), "the redirect was followed");
    }

    #[test]
    fn ids_are_encoded_in_paths() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
