//! The Jira Cloud client: basic auth with an API token, Jira and JSM error bodies, retries
//! through [`SupplierHttp`] (429 with `Retry-After`), status changes through workflow
//! transitions, JQL search with a cursor (`nextPageToken`), internal comments through the JSM
//! request API.

use super::mapping::{self, field, JiraConfig};
use super::text::{text_to_adf, text_to_wiki};
use crate::adapters::change::ChangeClient;
use crate::adapters::http::{status_error, transport_error, SupplierHttp};
use crate::adapters::{Client, NativeAttachment, OutgoingFile, SupplierError};
use crate::config::{JiraCreate, JiraSettings};
use crate::domain::{Incident, Status, Visibility};
use async_trait::async_trait;
use chrono::{DateTime, Timelike, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Jira's own ceiling on a search page is higher; 100 keeps answers small.
const SEARCH_PAGE: usize = 100;
const COMMENT_PAGE: usize = 100;
/// Issues read when looking a hub reference up: one per time the site was given it.
const LOOKUP_LIMIT: usize = 50;

/// Where the last sweep page ended, so the next offset continues the same cursor instead of
/// re-reading from the start (the search API has no offsets, only `nextPageToken`).
struct Cursor {
    jql: String,
    offset: usize,
    buffer: VecDeque<Value>,
    token: Option<String>,
    last: bool,
}

pub struct JiraClient {
    pub(super) http: SupplierHttp,
    pub(super) base: String,
    pub(super) user: String,
    token: SecretString,
    pub(super) cfg: Arc<JiraConfig>,
    pub(super) settings: JiraSettings,
    tz: chrono_tz::Tz,
    cursor: Mutex<Option<Cursor>>,
}

impl JiraClient {
    /// `user` is the account's e-mail address and `token` its API token (basic auth).
    pub fn new(http: SupplierHttp, base_url: &str, user: &str, token: SecretString, cfg: Arc<JiraConfig>, settings: &JiraSettings) -> Result<Self, String> {
        let tz = settings.time_zone.parse::<chrono_tz::Tz>().map_err(|_| format!("time_zone `{}` is not an IANA time zone", settings.time_zone))?;
        Ok(JiraClient { http, base: base_url.trim_end_matches('/').to_string(), user: user.to_string(), token, cfg, settings: settings.clone(), tz, cursor: Mutex::new(None) })
    }

    /// One request, one attempt; 204 answers `Value::Null`.
    pub(super) async fn send_once(&self, what: &str, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value, SupplierError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.client.request(method, &url).basic_auth(&self.user, Some(self.token.expose_secret())).header("Accept", "application/json").query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| transport_error(what, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = self.http.read_text(what, resp).await?;
        if !status.is_success() {
            return Err(status_error(what, status, &headers, &error_detail(&text)));
        }
        if status == reqwest::StatusCode::NO_CONTENT || text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| SupplierError::Protocol(format!("{what}: unreadable JSON from Jira: {e}")))
    }

    /// A request whose repetition is harmless (reads, edits), with retries.
    pub(super) async fn call(&self, what: &str, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value, SupplierError> {
        self.http.retrying(what, || self.send_once(what, method.clone(), path, query, body)).await
    }

    fn read_fields(&self, comments: bool) -> Vec<String> {
        let mut f: Vec<String> =
            ["summary", "description", "status", "priority", "resolution", "resolutiondate", "assignee", "reporter", "created", "updated", "labels", "issuetype", "project"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        f.extend([&self.cfg.reference_field, &self.cfg.impact_field, &self.cfg.urgency_field].into_iter().flatten().cloned());
        if comments {
            f.push("comment".into());
        }
        f
    }

    /// The issue in REST v3, with its comments.
    async fn get_issue(&self, id: &str) -> Result<Value, SupplierError> {
        let path = format!("/rest/api/3/issue/{}", segment(id));
        self.call("Jira read issue", Method::GET, &path, &[("fields", self.read_fields(true).join(","))], None).await
    }

    async fn search(&self, jql: &str, token: Option<&str>, max: usize) -> Result<(Vec<Value>, Option<String>, bool), SupplierError> {
        let mut body = json!({ "jql": jql, "maxResults": max, "fields": self.read_fields(false) });
        if let Some(t) = token {
            body["nextPageToken"] = json!(t);
        }
        let r = self.call("Jira search", Method::POST, "/rest/api/3/search/jql", &[], Some(&body)).await?;
        let issues = r.get("issues").and_then(Value::as_array).cloned().ok_or_else(|| SupplierError::Protocol("Jira search answered without `issues`".into()))?;
        let next = r.get("nextPageToken").and_then(Value::as_str).map(str::to_string);
        // No token means no further page, whatever `isLast` says.
        let last = r.get("isLast").and_then(Value::as_bool).unwrap_or(true) || next.is_none();
        Ok((issues, next, last))
    }

    /// A JQL string literal.
    pub(super) fn quote(s: &str) -> String {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }

    fn scope(&self) -> String {
        let mut jql = format!("labels = {}", Self::quote(&self.cfg.marker_label));
        if !self.cfg.project_key.is_empty() {
            jql.push_str(&format!(" AND project = {}", Self::quote(&self.cfg.project_key)));
        }
        jql
    }

    /// JQL dates are read in the integration user's time zone, to the minute: render `since` in
    /// that zone, floored (the sweep's overlap absorbs the extra seconds).
    fn jql_time(&self, since: DateTime<Utc>) -> String {
        let local = since.with_timezone(&self.tz);
        let floored = local.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(local);
        floored.format("%Y-%m-%d %H:%M").to_string()
    }

    /// Moves the issue to `target` (a status id) unless it already is in a status meaning the
    /// same. Returns whether the resolution was set on the way. Each attempt starts from the
    /// issue as it is, so a retry after a lost answer finds the move made instead of trying a
    /// transition that is no longer available.
    async fn transition_to(&self, id: &str, target: &str, resolution: Option<&str>) -> Result<bool, SupplierError> {
        let cfg = &self.cfg;
        let Some(wanted) = cfg.statuses.get(target).and_then(|r| cfg.read_status(target, &r.category, resolution.unwrap_or(""))) else {
            return Err(SupplierError::Rejected { status: 422, message: format!("status {target} has no rule in the Jira profile") });
        };
        self.http.retrying("Jira transition issue", || self.try_transition(id, target, resolution, wanted)).await
    }

    async fn try_transition(&self, id: &str, target: &str, resolution: Option<&str>, wanted: (Status, Option<crate::domain::HoldReason>)) -> Result<bool, SupplierError> {
        let cfg = &self.cfg;
        let wanted_resolution = resolution.unwrap_or("");
        let same = |m: (Status, Option<crate::domain::HoldReason>)| m.0 == wanted.0 && (wanted.0 != Status::OnHold || m.1 == wanted.1);
        let issue_path = format!("/rest/api/3/issue/{}", segment(id));
        let issue = self.send_once("Jira read issue", Method::GET, &issue_path, &[("fields", self.read_fields(false).join(","))], None).await?;
        let current = mapping::parse_record(cfg, &issue).map_err(|e| SupplierError::Protocol(e.to_string()))?;
        let now = mapping::to_canonical(cfg, &current.fields, false);
        let now_resolution = current.fields.get(field::RESOLUTION).cloned().unwrap_or_default();
        if now.status.is_none() && now.unmapped.contains_key(field::STATUS) {
            // The issue sits in a status this site's profile does not map: the hub cannot tell
            // how it relates to the wanted one (it may be a finer step of the same), so it does
            // not move the ticket out of it. The leg shows the unmapped status; a rule for it
            // lets the next change through.
            tracing::warn!(issue = %id, status = ?current.status_id, wanted = %target, "Jira issue in an unmapped status: not transitioned");
            return Ok(true);
        }
        if current.status_id.as_deref() == Some(target) || now.status.is_some_and(|s| same((s, now.hold_reason))) {
            // Already there (maybe through another status meaning the same): only a changed
            // resolution remains to be written, by the caller.
            return Ok(resolution.is_none_or(|r| r == now_resolution));
        }
        let path = format!("/rest/api/3/issue/{}/transitions", segment(id));
        let listed = self.send_once("Jira list transitions", Method::GET, &path, &[], None).await?;
        let available = listed.get("transitions").and_then(Value::as_array).cloned().unwrap_or_default();
        let to = |t: &Value| -> (String, String) {
            (t.pointer("/to/id").and_then(Value::as_str).unwrap_or("").to_string(), t.pointer("/to/statusCategory/key").and_then(Value::as_str).unwrap_or("").to_string())
        };
        // Transition ids are per workflow: look the transition up by the status it reaches, or
        // else by a status the profile reads as the same canonical status.
        let chosen = available.iter().find(|t| to(t).0 == target).or_else(|| {
            available.iter().find(|t| {
                let (sid, cat) = to(t);
                cfg.read_status(&sid, &cat, wanted_resolution).is_some_and(same)
            })
        });
        let Some(chosen) = chosen else {
            let names: Vec<String> = available.iter().map(|t| format!("{} -> {}", t.get("name").and_then(Value::as_str).unwrap_or("?"), to(t).0)).collect();
            return Err(SupplierError::Rejected {
                status: 409,
                message: format!(
                    "Jira issue {id}: no transition from status {} reaches status {target} ({}); available: [{}]",
                    current.status_id.unwrap_or_default(),
                    wanted.0,
                    names.join(", ")
                ),
            });
        };
        let transition_id = chosen.get("id").and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string()))).unwrap_or_default();
        let mut body = json!({ "transition": { "id": transition_id } });
        // Fields can be sent only through a transition screen; the resolution belongs on the
        // way into a done status.
        let set_resolution = resolution.is_some() && to(chosen).1 == "done" && chosen.get("hasScreen").and_then(Value::as_bool).unwrap_or(false);
        if set_resolution {
            body["fields"] = json!({ "resolution": { "name": resolution } });
        }
        self.send_once("Jira transition issue", Method::POST, &path, &[], Some(&body)).await?;
        Ok(set_resolution || resolution.is_none())
    }

    /// The ids of the issues carrying the reference label, newest first.
    async fn lookup_ids(&self, reference: &str) -> Result<Vec<String>, SupplierError> {
        let jql = format!("{} AND labels = {} ORDER BY created DESC", self.scope(), Self::quote(&self.cfg.reference_label(reference)));
        let (issues, _, _) = self.search(&jql, None, LOOKUP_LIMIT).await?;
        Ok(issues.iter().filter_map(|i| i.get("id").and_then(Value::as_str)).map(str::to_string).collect())
    }

    /// One create attempt.
    async fn try_create(&self, incident: &Incident) -> Result<String, SupplierError> {
        let cfg = &self.cfg;
        let id = match self.settings.create_via {
            JiraCreate::Issue => {
                let body = json!({ "fields": mapping::create_fields(cfg, incident, &self.settings.issue_type) });
                let r = self.send_once("Jira create issue", Method::POST, "/rest/api/3/issue", &[], Some(&body)).await?;
                r.get("id").and_then(Value::as_str).map(str::to_string)
            }
            JiraCreate::Request => {
                let mut values = mapping::create_fields(cfg, incident, "");
                values.remove("project");
                let body = json!({
                    "serviceDeskId": self.settings.service_desk_id,
                    "requestTypeId": self.settings.request_type_id,
                    "isAdfRequest": true,
                    "requestFieldValues": values,
                });
                let r = self.send_once("JSM create request", Method::POST, "/rest/servicedeskapi/request", &[], Some(&body)).await?;
                r.get("issueId").and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())))
            }
        };
        id.ok_or_else(|| SupplierError::Protocol("Jira answered the create without an issue id".into()))
    }

    /// One attempt at adding a note.
    async fn try_add_note(&self, id: &str, visibility: Visibility, text: &str) -> Result<(), SupplierError> {
        match visibility {
            // Internal notes go through the JSM request API with `public: false`: on an issue
            // outside a service project it fails instead of posting a comment every Jira user
            // sees.
            Visibility::Internal => {
                let path = format!("/rest/servicedeskapi/request/{}/comment", segment(id));
                let body = json!({ "body": text_to_wiki(text), "public": false });
                let r = self.send_once("Jira add internal comment", Method::POST, &path, &[], Some(&body)).await?;
                if r.get("public").and_then(Value::as_bool) != Some(false) {
                    return Err(SupplierError::Protocol(format!(
                        "Jira issue {id}: the internal note was not confirmed internal (answer: {})",
                        r.get("public").unwrap_or(&Value::Null)
                    )));
                }
            }
            Visibility::Public => {
                let path = format!("/rest/api/3/issue/{}/comment", segment(id));
                self.send_once("Jira add comment", Method::POST, &path, &[], Some(&json!({ "body": text_to_adf(text) }))).await?;
            }
        }
        Ok(())
    }
}

/// A path segment: ids and keys are plain, but nothing the hub did not build goes in raw.
pub(super) fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[async_trait]
impl Client for JiraClient {
    /// Looks the `siam-INC-…` label up (labels match exactly in JQL; text fields do not).
    async fn find_by_correlation(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        let mut found = Vec::new();
        for id in self.lookup_ids(reference).await? {
            found.push(self.get_issue(&id).await?);
        }
        Ok(found)
    }

    /// Creates once ([`SupplierHttp::write_once`]): a retry first looks the reference up and
    /// adopts the issue a failed attempt made (its answer lost), which is none of `known`.
    async fn create(&self, incident: &Incident, known: &[String]) -> Result<Value, SupplierError> {
        let reference = incident.reference.as_str();
        let id = self
            .http
            .write_once("Jira create issue", || self.try_create(incident), || async { Ok(self.lookup_ids(reference).await?.into_iter().find(|id| !known.contains(id))) })
            .await?;
        // The create answer holds only ids: read the issue for its state and revision.
        self.get_issue(&id).await
    }

    /// A status change is a transition (looked up by the status it reaches), made first so a
    /// resolution can ride on its screen; the other values follow in one edit; the issue is
    /// read back for the record after.
    async fn update(&self, native_id: &str, changes: &BTreeMap<String, String>) -> Result<Value, SupplierError> {
        let mut rest = changes.clone();
        let status = rest.remove(field::STATUS);
        let resolution = rest.remove(field::RESOLUTION).filter(|r| !r.is_empty());
        rest.remove(field::STATUS_CATEGORY);
        let mut resolution_done = resolution.is_none();
        if let Some(target) = status {
            resolution_done = self.transition_to(native_id, &target, resolution.as_deref()).await?;
        }
        let mut fields: Map<String, Value> = mapping::write_fields(&self.cfg, &rest);
        if !resolution_done {
            if let Some(r) = &resolution {
                fields.insert("resolution".into(), json!({ "name": r }));
            }
        }
        if !fields.is_empty() {
            let path = format!("/rest/api/3/issue/{}", segment(native_id));
            self.call("Jira edit issue", Method::PUT, &path, &[], Some(&json!({ "fields": fields }))).await?;
        }
        self.get_issue(native_id).await
    }

    /// Adds the comment once ([`SupplierHttp::write_once`]): a retry first looks for it among
    /// the issue's comments (same visibility and text, made since this call began).
    async fn add_note(&self, native_id: &str, visibility: Visibility, text: &str) -> Result<Option<Value>, SupplierError> {
        // Comments from before this call cannot be this note (ten minutes absorb clock skew).
        let since = Utc::now() - chrono::Duration::minutes(10);
        self.http
            .write_once(
                "Jira add comment",
                || self.try_add_note(native_id, visibility, text),
                || async {
                    let held = mapping::parse_comments(&self.notes(native_id).await?);
                    Ok(held.iter().any(|n| n.visibility == visibility && n.text.trim() == text.trim() && n.created_at.is_none_or(|t| t >= since)).then_some(()))
                },
            )
            .await?;
        self.get_issue(native_id).await.map(Some)
    }

    /// The hub's issues (`siam-hub` label) updated since `since`, oldest first. Offsets are
    /// served from the search cursor; a page is filled across short Jira pages so a page shorter
    /// than `limit` really is the end.
    async fn updated_since(&self, since: DateTime<Utc>, offset: usize, limit: usize) -> Result<Vec<Value>, SupplierError> {
        let jql = format!("{} AND updated >= {} ORDER BY updated ASC", self.scope(), Self::quote(&self.jql_time(since)));
        let resumed = {
            let mut guard = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
            guard.take().filter(|c| c.jql == jql && c.offset == offset)
        };
        let (mut cur, mut skip) = match resumed {
            Some(c) => (c, 0),
            None => (Cursor { jql: jql.clone(), offset: 0, buffer: VecDeque::new(), token: None, last: false }, offset),
        };
        let mut out = Vec::new();
        while out.len() < limit.max(1) {
            if let Some(issue) = cur.buffer.pop_front() {
                if skip > 0 {
                    skip -= 1;
                } else {
                    out.push(issue);
                }
                continue;
            }
            if cur.last {
                break;
            }
            let (issues, next, last) = self.search(&jql, cur.token.as_deref(), SEARCH_PAGE.min(limit.max(1) + skip)).await?;
            cur.buffer.extend(issues);
            cur.token = next;
            cur.last = last;
        }
        cur.offset = offset + out.len();
        if !(cur.last && cur.buffer.is_empty()) {
            *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = Some(cur);
        }
        Ok(out)
    }

    /// All comments of the issue, oldest first: `{"comments": [...]}`.
    async fn notes(&self, native_id: &str) -> Result<Value, SupplierError> {
        let path = format!("/rest/api/3/issue/{}/comment", segment(native_id));
        let mut all = Vec::new();
        loop {
            let page = self
                .call(
                    "Jira list comments",
                    Method::GET,
                    &path,
                    &[("startAt", all.len().to_string()), ("maxResults", COMMENT_PAGE.to_string()), ("orderBy", "created".into())],
                    None,
                )
                .await?;
            let comments = page.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
            let total = page.get("total").and_then(Value::as_u64).unwrap_or(0) as usize;
            let got = comments.len();
            all.extend(comments);
            if got == 0 || all.len() >= total {
                break;
            }
        }
        Ok(json!({ "comments": all }))
    }

    fn changes(&self) -> Option<&dyn ChangeClient> {
        Some(self)
    }

    fn ticket_url(&self, native_id: &str) -> String {
        format!("{}/secure/ViewIssue.jspa?id={}", self.base, segment(native_id))
    }

    /// `POST /rest/api/3/issue/{id}/attachments` (multipart, `X-Atlassian-Token: no-check`),
    /// the content streamed. Before trying again after a failure, looks for the file an earlier
    /// attempt may have attached (same name and size), so a lost answer never attaches it twice.
    async fn upload_attachment(&self, native_id: &str, file: &OutgoingFile) -> Result<String, SupplierError> {
        let what = "Jira attachment upload";
        let url = format!("{}/rest/api/3/issue/{}/attachments", self.base, segment(native_id));
        self.http
            .write_once(
                what,
                || async {
                    let length = u64::try_from(file.size).unwrap_or(0);
                    let part = reqwest::multipart::Part::stream_with_length(file.body(), length)
                        .file_name(file.file_name.clone())
                        .mime_str(&file.content_type)
                        .map_err(|e| SupplierError::Protocol(format!("{what}: content type `{}`: {e}", file.content_type)))?;
                    let resp = self
                        .http
                        .client
                        .post(&url)
                        .basic_auth(&self.user, Some(self.token.expose_secret()))
                        .header("Accept", "application/json")
                        .header("X-Atlassian-Token", "no-check")
                        .multipart(reqwest::multipart::Form::new().part("file", part))
                        .send()
                        .await
                        .map_err(|e| transport_error(what, e))?;
                    let (status, headers) = (resp.status(), resp.headers().clone());
                    let text = self.http.read_text(what, resp).await?;
                    if !status.is_success() {
                        return Err(status_error(what, status, &headers, &error_detail(&text)));
                    }
                    let answer: Value = serde_json::from_str(&text).map_err(|e| SupplierError::Protocol(format!("{what}: unreadable JSON from Jira: {e}")))?;
                    answer
                        .pointer("/0/id")
                        .and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())))
                        .ok_or_else(|| SupplierError::Protocol(format!("{what}: no attachment id in the answer")))
                },
                || self.find_uploaded(native_id, file, &[]),
            )
            .await
    }

    /// The issue's `attachment` field.
    async fn list_attachments(&self, native_id: &str) -> Result<Vec<NativeAttachment>, SupplierError> {
        let path = format!("/rest/api/3/issue/{}", segment(native_id));
        let issue = self.call("Jira attachment list", Method::GET, &path, &[("fields", "attachment".into())], None).await?;
        let s = |v: &Value, k: &str| v.get(k).and_then(|x| x.as_str().map(str::to_string).or_else(|| x.as_i64().map(|n| n.to_string()))).unwrap_or_default();
        Ok(issue
            .pointer("/fields/attachment")
            .and_then(|a| a.as_array())
            .map(|files| {
                files
                    .iter()
                    .filter(|f| !s(f, "id").is_empty())
                    .map(|f| NativeAttachment {
                        native_id: s(f, "id"),
                        file_name: s(f, "filename"),
                        content_type: s(f, "mimeType"),
                        size: f.get("size").and_then(|v| v.as_i64()),
                        sha256: None,
                        location: None,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `GET /rest/api/3/attachment/content/{id}` on the site itself (not the `content` URL the
    /// listing gives), as a stream.
    async fn download_attachment(&self, file: &NativeAttachment) -> Result<reqwest::Response, SupplierError> {
        let url = format!("{}/rest/api/3/attachment/content/{}", self.base, segment(&file.native_id));
        self.http.download("Jira attachment download", &url, |r| r.basic_auth(&self.user, Some(self.token.expose_secret())), error_detail).await
    }
}

/// Jira's `{"errorMessages":[…],"errors":{field: message}}` or JSM's `{"errorMessage", …}` as one
/// line; other bodies (a 401 is often empty or HTML) shortened.
fn error_detail(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let mut parts: Vec<String> = v.get("errorMessages").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default();
        if let Some(errors) = v.get("errors").and_then(Value::as_object) {
            parts.extend(errors.iter().map(|(k, m)| format!("{k}: {}", m.as_str().map(str::to_string).unwrap_or_else(|| m.to_string()))));
        }
        if let Some(m) = v.get("errorMessage").and_then(Value::as_str) {
            parts.push(m.to_string());
        }
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let short: String = body.chars().take(200).collect();
    if short.trim().is_empty() {
        "(empty body)".into()
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_both_apis_read_as_one_line() {
        assert_eq!(
            error_detail(r#"{"errorMessages":["Issue does not exist or you do not have permission to see it."],"errors":{}}"#),
            "Issue does not exist or you do not have permission to see it."
        );
        assert_eq!(error_detail(r#"{"errorMessages":[],"errors":{"summary":"You must specify a summary of the issue."}}"#), "summary: You must specify a summary of the issue.");
        assert_eq!(error_detail(r#"{"errorMessage":"Request type not found","i18nErrorMessage":{"i18nKey":"x","parameters":[]}}"#), "Request type not found");
        assert_eq!(error_detail(""), "(empty body)");
        assert_eq!(error_detail("Client must be authenticated to access this resource."), "Client must be authenticated to access this resource.");
    }

    #[test]
    fn jql_dates_are_in_the_users_zone_to_the_minute() {
        let http = SupplierHttp::new(std::time::Duration::from_secs(1), 1, 1).unwrap();
        let settings = JiraSettings { time_zone: "America/Los_Angeles".into(), project_key: "OPS".into(), ..JiraSettings::default() };
        let c = JiraClient::new(http, "http://x", "u", SecretString::from(String::new()), Arc::new(JiraConfig::default()), &settings).unwrap();
        let t = DateTime::parse_from_rfc3339("2024-01-10T12:34:56.789Z").unwrap().with_timezone(&Utc);
        assert_eq!(c.jql_time(t), "2024-01-10 04:34");
        assert_eq!(JiraClient::quote("a\"b"), "\"a\\\"b\"");
    }
}
