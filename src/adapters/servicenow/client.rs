//! The ServiceNow Table API client: basic auth, JSON checks (a sleeping instance answers 200
//! with HTML), ServiceNow error bodies, retries through [`SupplierHttp`].

use super::mapping::{create_body, sn_time};
use crate::adapters::change::ChangeClient;
use crate::adapters::http::{status_error, transport_error, SupplierHttp};
use crate::adapters::{Client, NativeAttachment, OutgoingFile, SupplierError};
use crate::domain::{Incident, Visibility};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone)]
pub struct ServiceNowClient {
    pub(super) http: SupplierHttp,
    pub(super) base: String,
    pub(super) user: String,
    password: SecretString,
    /// The instance's own priority matrix, when the hub's is not its.
    priority_matrix: Option<crate::domain::PriorityMatrix>,
    /// The instance's own values over the profile, as configured (discovery compares the
    /// instance's vocabulary with them).
    pub(super) overrides: crate::config::ProfileOverrides,
}

/// Incidents read when looking a hub reference up: one per time the instance was given it.
const LOOKUP_LIMIT: usize = 50;

/// Fields read on every incident query: the synced ones plus identity and change tracking.
pub(super) const READ_FIELDS: &str = "sys_id,number,correlation_id,state,hold_reason,impact,urgency,priority,short_description,description,category,cmdb_ci,caller_id,assigned_to,assignment_group,close_code,close_notes,sys_mod_count,sys_updated_on,opened_at,resolved_at,closed_at";

impl ServiceNowClient {
    pub fn new(http: SupplierHttp, base_url: &str, user: &str, password: SecretString) -> Self {
        ServiceNowClient { http, base: base_url.trim_end_matches('/').to_string(), user: user.to_string(), password, priority_matrix: None, overrides: Default::default() }
    }

    /// Knows the instance's configured overrides of the profile (read by discovery only: the
    /// mapping applies them to records).
    pub fn with_overrides(mut self, overrides: crate::config::ProfileOverrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// Creates tickets whose impact and urgency give the record's priority under `matrix`.
    pub fn with_priority_matrix(mut self, matrix: Option<crate::domain::PriorityMatrix>) -> Self {
        self.priority_matrix = matrix;
        self
    }

    /// One Table API request with retries; returns the `result` member.
    pub(super) async fn call(&self, what: &str, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value, SupplierError> {
        self.http.retrying(what, || self.attempt(what, method.clone(), path, query, body)).await
    }

    /// One Table API request, no retry; returns the `result` member.
    pub(super) async fn attempt(&self, what: &str, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value, SupplierError> {
        let url = format!("{}{}", self.base, path);
        {
            {
                let mut req =
                    self.http.client.request(method.clone(), &url).basic_auth(&self.user, Some(self.password.expose_secret())).header("Accept", "application/json").query(query);
                if let Some(b) = body {
                    req = req.json(b);
                }
                async move {
                    let resp = req.send().await.map_err(|e| transport_error(what, e))?;
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let is_json = headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
                    let text = self.http.read_text(what, resp).await?;
                    if !status.is_success() {
                        return Err(status_error(what, status, &headers, &error_detail(&text)));
                    }
                    if status == reqwest::StatusCode::NO_CONTENT {
                        return Ok(Value::Null);
                    }
                    if !is_json {
                        // A hibernating developer instance answers 200 with a login page.
                        return Err(SupplierError::Transient {
                            message: format!("{what}: ServiceNow answered {status} without JSON (instance asleep or behind a login page)"),
                            retry_after: None,
                            unsent: false,
                        });
                    }
                    let v: Value = serde_json::from_str(&text).map_err(|e| SupplierError::Protocol(format!("{what}: unreadable JSON from ServiceNow: {e}")))?;
                    Ok(v.get("result").cloned().unwrap_or(v))
                }
                .await
            }
        }
    }

    /// One attempt at listing the incidents carrying `reference`, newest first (ties by
    /// `sys_id`, so the order is stable).
    async fn lookup_attempt(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        let query = [
            ("sysparm_query", format!("correlation_id={reference}^ORDERBYDESCsys_created_on^ORDERBYsys_id")),
            ("sysparm_limit", LOOKUP_LIMIT.to_string()),
            ("sysparm_fields", READ_FIELDS.into()),
        ];
        let r = self.attempt("ServiceNow lookup by correlation_id", Method::GET, "/api/now/table/incident", &query, None).await?;
        Ok(r.as_array().cloned().unwrap_or_default())
    }

    async fn patch(&self, sys_id: &str, body: &Value) -> Result<Value, SupplierError> {
        let path = format!("/api/now/table/incident/{sys_id}");
        self.call("ServiceNow update incident", Method::PATCH, &path, &[("sysparm_fields", READ_FIELDS.into())], Some(body)).await
    }

    async fn page_updated_since(&self, since: DateTime<Utc>, offset: usize, limit: usize) -> Result<Vec<Value>, SupplierError> {
        let r = self
            .call(
                "ServiceNow poll",
                Method::GET,
                "/api/now/table/incident",
                &[
                    ("sysparm_query", format!("sys_updated_on>={}^correlation_idSTARTSWITHINC-^ORDERBYsys_updated_on^ORDERBYsys_id", sn_time(&since))),
                    ("sysparm_fields", READ_FIELDS.into()),
                    ("sysparm_limit", limit.to_string()),
                    ("sysparm_offset", offset.to_string()),
                ],
                None,
            )
            .await?;
        Ok(r.as_array().cloned().unwrap_or_default())
    }

    async fn journal(&self, sys_id: &str) -> Result<Vec<Value>, SupplierError> {
        let r = self
            .call(
                "ServiceNow journal",
                Method::GET,
                "/api/now/table/sys_journal_field",
                &[("sysparm_query", format!("element_id={sys_id}^elementINwork_notes,comments^ORDERBYsys_created_on")), ("sysparm_limit", "1000".into())],
                None,
            )
            .await?;
        Ok(r.as_array().cloned().unwrap_or_default())
    }
}

#[async_trait]
impl Client for ServiceNowClient {
    /// Looks the hub reference up in `correlation_id`.
    async fn find_by_correlation(&self, reference: &str) -> Result<Vec<Value>, SupplierError> {
        self.http.retrying("ServiceNow lookup by correlation_id", || self.lookup_attempt(reference)).await
    }

    /// Creates once ([`SupplierHttp::write_once`]): a retry first looks for the ticket a failed
    /// attempt may have created (its answer lost on the way back), which is none of `known`.
    async fn create(&self, incident: &Incident, known: &[String]) -> Result<Value, SupplierError> {
        let body = create_body(&crate::adapters::aligned_priority(self.priority_matrix.as_ref(), incident));
        let reference = incident.reference.as_str();
        let what = "ServiceNow create incident";
        let sys_id = |v: &Value| v.get("sys_id").and_then(Value::as_str).map(str::to_string);
        let read = [("sysparm_fields", READ_FIELDS.into())];
        self.http
            .write_once(
                what,
                || self.attempt(what, Method::POST, "/api/now/table/incident", &read, Some(&body)),
                || async { Ok(crate::adapters::first_unknown(self.lookup_attempt(reference).await?, known, sys_id)) },
            )
            .await
    }

    async fn update(&self, native_id: &str, changes: &BTreeMap<String, String>) -> Result<Value, SupplierError> {
        let body: serde_json::Map<String, Value> = changes.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        self.patch(native_id, &Value::Object(body)).await
    }

    /// Internal notes go to `work_notes`, public ones to `comments`: never the other way.
    async fn add_note(&self, native_id: &str, visibility: Visibility, text: &str) -> Result<Option<Value>, SupplierError> {
        let field = match visibility {
            Visibility::Internal => "work_notes",
            Visibility::Public => "comments",
        };
        let what = "ServiceNow add note";
        let path = format!("/api/now/table/incident/{native_id}");
        let body = serde_json::json!({ field: text });
        let read = [("sysparm_fields", READ_FIELDS.into())];
        self.http
            .write_once(
                what,
                || self.attempt(what, Method::PATCH, &path, &read, Some(&body)),
                // A failed attempt may have written the entry: a second write would repeat it.
                || async {
                    let query = [("sysparm_query", format!("element_id={native_id}^element={field}^ORDERBYDESCsys_created_on")), ("sysparm_limit", "20".to_string())];
                    let rows = self.attempt("ServiceNow journal", Method::GET, "/api/now/table/sys_journal_field", &query, None).await?;
                    if !rows.as_array().is_some_and(|r| r.iter().any(|j| j.get("value").and_then(|v| v.as_str()) == Some(text))) {
                        return Ok(None);
                    }
                    self.attempt(what, Method::GET, &path, &read, None).await.map(Some)
                },
            )
            .await
            .map(Some)
    }

    /// Incidents raised by a hub (correlation id `INC-...`), by `sys_updated_on`.
    async fn updated_since(&self, since: DateTime<Utc>, offset: usize, limit: usize) -> Result<Vec<Value>, SupplierError> {
        self.page_updated_since(since, offset, limit).await
    }

    /// `sys_journal_field` rows of the incident, oldest first.
    async fn notes(&self, native_id: &str) -> Result<Value, SupplierError> {
        Ok(Value::Array(self.journal(native_id).await?))
    }

    fn ticket_url(&self, native_id: &str) -> String {
        format!("{}/nav_to.do?uri=incident.do?sys_id={native_id}", self.base)
    }

    /// `POST /api/now/attachment/file` with the raw bytes, streamed, written once.
    async fn upload_attachment(&self, native_id: &str, file: &OutgoingFile) -> Result<String, SupplierError> {
        let url = format!("{}/api/now/attachment/file", self.base);
        let what = "ServiceNow attachment upload";
        let attempt = || {
            let req = self
                .http
                .client
                .post(&url)
                .basic_auth(&self.user, Some(self.password.expose_secret()))
                .header("Accept", "application/json")
                .header("Content-Type", &file.content_type)
                .query(&[("table_name", "incident"), ("table_sys_id", native_id), ("file_name", file.file_name.as_str())])
                .body(file.body());
            async move {
                let resp = req.send().await.map_err(|e| transport_error(what, e))?;
                let (status, headers) = (resp.status(), resp.headers().clone());
                let text = self.http.read_text(what, resp).await?;
                if !status.is_success() {
                    return Err(status_error(what, status, &headers, &error_detail(&text)));
                }
                let answer = serde_json::from_str::<Value>(&text).map_err(|e| SupplierError::Protocol(format!("{what}: {e}")))?;
                answer.pointer("/result/sys_id").and_then(|v| v.as_str()).map(str::to_string).ok_or_else(|| SupplierError::Protocol(format!("{what}: no sys_id in the answer")))
            }
        };
        // Before trying again, the file an earlier attempt may have attached is taken instead.
        self.http.write_once(what, attempt, || self.find_uploaded(native_id, file, &[])).await
    }

    /// `GET /api/now/attachment?sysparm_query=table_sys_id=...`.
    async fn list_attachments(&self, native_id: &str) -> Result<Vec<NativeAttachment>, SupplierError> {
        let rows = self
            .call(
                "ServiceNow attachment list",
                Method::GET,
                "/api/now/attachment",
                &[("sysparm_query", format!("table_sys_id={native_id}^ORDERBYsys_created_on")), ("sysparm_limit", "500".into())],
                None,
            )
            .await?;
        let s = |v: &Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        Ok(rows
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| !s(r, "sys_id").is_empty())
                    .map(|r| NativeAttachment {
                        native_id: s(r, "sys_id"),
                        file_name: s(r, "file_name"),
                        content_type: s(r, "content_type"),
                        size: s(r, "size_bytes").parse().ok(),
                        sha256: Some(s(r, "hash")).filter(|h| h.len() == 64),
                        location: None,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `GET /api/now/attachment/{sys_id}/file` on the instance itself (not the listing's
    /// `download_link`), as a stream.
    async fn download_attachment(&self, file: &NativeAttachment) -> Result<reqwest::Response, SupplierError> {
        let url = format!("{}/api/now/attachment/{}/file", self.base, url::form_urlencoded::byte_serialize(file.native_id.as_bytes()).collect::<String>());
        self.http.download("ServiceNow attachment download", &url, |r| r.basic_auth(&self.user, Some(self.password.expose_secret())), error_detail).await
    }

    /// Change requests, on the `change_request` table.
    fn changes(&self) -> Option<&dyn ChangeClient> {
        Some(self)
    }
}

/// ServiceNow's `{"error":{"message","detail"}}` as one line; other bodies shortened.
fn error_detail(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if let Some(e) = v.get("error") {
            let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            let detail = e.get("detail").and_then(|m| m.as_str()).unwrap_or("");
            return if detail.is_empty() { msg.to_string() } else { format!("{msg}: {detail}") };
        }
    }
    body.chars().take(200).collect()
}
