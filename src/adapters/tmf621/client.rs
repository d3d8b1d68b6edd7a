//! The TMF621 API client: Basic, static bearer or OAuth2 client-credentials auth, TMF630 error
//! bodies, merge-patch updates, note appends, `offset`/`limit` paging with `lastUpdate.gt`, and
//! the hub's own subscription at the supplier's `/hub`. Retries go through [`SupplierHttp`].

use super::mapping::{self, Instance};
use crate::adapters::http::{status_error, transport_error, SupplierHttp};
use crate::adapters::{Client, SupplierError};
use crate::config::{Tmf621Settings, TmfAuth, TmfFlavour, TmfNotePatch, TmfVersion};
use crate::domain::{Incident, Visibility};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Pages read when looking a reference up, in case the server ignores the filter.
const LOOKUP_PAGES: usize = 20;
const LOOKUP_PAGE: usize = 100;

#[derive(Clone)]
enum Auth {
    Basic { user: String, password: SecretString },
    Bearer(SecretString),
    /// Client credentials; the token is cached until shortly before it expires.
    Oauth2 { token_url: String, client_id: String, secret: SecretString, token: Arc<Mutex<Option<(SecretString, Instant)>>> },
}

#[derive(Clone)]
pub struct Tmf621Client {
    http: SupplierHttp,
    base: String,
    inst: Instance,
    auth: Auth,
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
        Tmf621Client { http, base, inst: Instance::new(settings), auth }
    }

    pub fn instance(&self) -> &Instance {
        &self.inst
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.base, self.inst.base_path, path)
    }

    /// An OAuth2 access token, from the cache or the token endpoint.
    async fn token(&self) -> Result<Option<String>, SupplierError> {
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
        let body = resp.text().await.map_err(|e| transport_error(what, e))?;
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

    async fn attempt(&self, what: &str, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value, SupplierError> {
        let url = self.url(path);
        let method_is_patch = method == Method::PATCH;
        let mut req = self.http.client.request(method, &url).header("Accept", "application/json").query(query);
        req = match &self.auth {
            Auth::Basic { user, password } => req.basic_auth(user, Some(password.expose_secret())),
            Auth::Bearer(t) => req.bearer_auth(t.expose_secret()),
            Auth::Oauth2 { .. } => req.bearer_auth(self.token().await?.unwrap_or_default()),
        };
        if let Some(b) = body {
            // TMF630 names merge-patch for PATCH; ServiceNow's API takes plain JSON.
            let merge = method_is_patch && self.inst.flavour == TmfFlavour::Standard;
            let kind = if merge { "application/merge-patch+json" } else { "application/json" };
            req = req.header("Content-Type", kind).body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| transport_error(what, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| transport_error(what, e))?;
        if status.as_u16() == 401 && matches!(self.auth, Auth::Oauth2 { .. }) {
            // The token expired or was revoked: fetch a new one on the next attempt.
            self.forget_token().await;
            return Err(SupplierError::Transient { message: format!("{what}: the access token was refused"), retry_after: Some(Duration::ZERO) });
        }
        if !status.is_success() {
            return Err(status_error(what, status, &headers, &error_detail(&text)));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| SupplierError::Transient {
            // A gateway or a sleeping instance answering HTML with 200.
            message: format!("{what}: the supplier answered {status} without JSON"),
            retry_after: None,
        })
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
    pub async fn subscribe(&self, callback: &str, query: &str) -> Result<String, SupplierError> {
        let body = json!({ "callback": callback, "query": query });
        let v = self.call("TMF621 subscribe", Method::POST, "/hub", &[], Some(&body)).await?;
        v.get("id")
            .and_then(|i| i.as_str().map(str::to_string).or_else(|| i.as_i64().map(|n| n.to_string())))
            .ok_or_else(|| SupplierError::Protocol("TMF621 subscribe: the answer has no id".into()))
    }

    pub async fn unsubscribe(&self, id: &str) -> Result<(), SupplierError> {
        match self.call("TMF621 unsubscribe", Method::DELETE, &format!("/hub/{}", encode(id)), &[], None).await {
            Ok(_) | Err(SupplierError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

#[async_trait]
impl Client for Tmf621Client {
    /// Looks the hub reference up in `externalId` (v4) or `externalIdentifier.id` (v5), and checks
    /// every answer itself: a server that ignores the filter must not make the hub adopt a
    /// stranger's ticket.
    async fn find_by_correlation(&self, reference: &str) -> Result<Option<Value>, SupplierError> {
        let filter = match self.inst.version {
            TmfVersion::V4 => "externalId",
            TmfVersion::V5 => "externalIdentifier.id",
        };
        for page in 0..LOOKUP_PAGES {
            let q = [(filter, reference.to_string()), ("offset", (page * LOOKUP_PAGE).to_string()), ("limit", LOOKUP_PAGE.to_string())];
            let items = self.list("TMF621 lookup by external reference", &q).await?;
            let found = items.iter().find(|t| mapping::parse_ticket(&self.inst, t).ok().and_then(|t| t.correlation).as_deref() == Some(reference));
            if let Some(t) = found {
                return Ok(Some(t.clone()));
            }
            if items.len() < LOOKUP_PAGE {
                return Ok(None);
            }
        }
        Err(SupplierError::Protocol(format!(
            "TMF621 lookup of {reference}: the supplier ignores the {filter} filter and holds more than {} tickets",
            LOOKUP_PAGES * LOOKUP_PAGE
        )))
    }

    /// POSTs the ticket once per attempt; before trying again after a failure (which may have
    /// come after the server committed), it looks the reference up and adopts what it finds, so
    /// a lost answer never makes a second ticket.
    async fn create(&self, incident: &Incident) -> Result<Value, SupplierError> {
        let body = mapping::create_body(&self.inst, incident);
        let reference = incident.reference.as_str();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let answer = self
            .http
            .retrying("TMF621 create trouble ticket", || {
                let body = &body;
                let attempts = &attempts;
                async move {
                    if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                        if let Some(found) = self.find_by_correlation(reference).await? {
                            tracing::info!(%reference, "adopting the trouble ticket an unanswered create made");
                            return Ok(found);
                        }
                    }
                    self.send_once("TMF621 create trouble ticket", Method::POST, "/troubleTicket", body).await
                }
            })
            .await?;
        if answer.get("id").is_some() {
            return Ok(answer);
        }
        // 201 without a body: read back what was made.
        self.find_by_correlation(incident.reference.as_str())
            .await?
            .ok_or_else(|| SupplierError::Protocol("TMF621 create answered without the ticket, and the ticket cannot be found".into()))
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
        let copies = |t: &Value| t.get("note").and_then(Value::as_array).map(|n| n.iter().filter(|x| x.get("text").and_then(Value::as_str) == Some(text)).count()).unwrap_or(0);
        let first = self.get_ticket(native_id).await?;
        let before = copies(&first);
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let path = format!("/troubleTicket/{}", encode(native_id));
        let answer = self
            .http
            .retrying("TMF621 add note", || {
                let (first, entry, path, attempts) = (&first, &entry, &path, &attempts);
                async move {
                    let current = if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                        let now = self.get_ticket(native_id).await?;
                        if copies(&now) > before {
                            return Ok(now);
                        }
                        now
                    } else {
                        first.clone()
                    };
                    let notes = match self.inst.note_patch {
                        TmfNotePatch::Append => vec![entry.clone()],
                        TmfNotePatch::Full => {
                            let mut notes = current.get("note").and_then(Value::as_array).cloned().unwrap_or_default();
                            notes.push(entry.clone());
                            notes
                        }
                    };
                    self.send_once("TMF621 add note", Method::PATCH, path, &json!({ "note": notes })).await
                }
            })
            .await?;
        if answer.get("id").is_some() {
            Ok(Some(answer))
        } else {
            self.get_ticket(native_id).await.map(Some)
        }
    }

    /// Tickets with `lastUpdate` after `since`, by `lastUpdate`. Foreign tickets are returned too
    /// (the page length drives paging); the sweep skips those without a leg.
    async fn updated_since(&self, since: DateTime<Utc>, offset: usize, limit: usize) -> Result<Vec<Value>, SupplierError> {
        let q = [
            ("lastUpdate.gt", self.time_param(&since)),
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

    #[test]
    fn ids_are_encoded_in_paths() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
