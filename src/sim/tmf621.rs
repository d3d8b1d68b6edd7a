//! Stateful simulator of a TMF621 Trouble Ticket API server, for integration tests and demos.
//!
//! It serves `/troubleTicket` (list with `offset`/`limit`, `X-Total-Count`/`X-Result-Count`
//! and 206 on a partial page, attribute filters including `lastUpdate.gt` and `externalId`,
//! `fields` projection, `sort`), `GET`/`PATCH` (JSON merge-patch; `note[]` is an append-only
//! journal, so entries without a known id are appended whether the client sends the whole array
//! or only the new entry)/`DELETE` on one ticket, a server-kept `statusChange[]` history, and the
//! `/hub` subscription resource. After each committed change it POSTs the TMF event
//! notification to every matching subscriber at `{callback}/listener/{eventName}`, through one
//! ordered background queue (misordering, duplicates and losses only when asked for).
//! `attachment[]` is kept like the journal: an entry with a known id is a file already held, any
//! other is a new file, given inline (`content`, base64) or by `url`; files are listed with a
//! `url` to their content (`.../troubleTicket/{id}/attachment/{fileId}/content`), never inline.
//!
//! Switches reproduce the shapes of `reference/suppliers/tmf621.md`:
//! - [`TmfVersion::V5`]: `externalIdentifier[]`, `statusChangeHistory`, nested
//!   `partyOrPartyRole` / `entity`, `troubleTicketCharacteristic`, `@type` mandatory on create,
//!   events with `timeOccurred`, `@type` and `@baseType`;
//! - [`TmfFlavour::Servicenow`]: dates as `"2023-01-19 22:39:28"` (and note dates in another
//!   zone), `severity` as `"2 - High"` (written `1`..`5`), statuses `New`/`Open` and the
//!   incident state labels `In Progress`, `On Hold`, `Resolved`, `Closed`, `Canceled` (taken and
//!   shown as written, outside the TMF enum), related parties
//!   with the role in `@referredType` and `"id":""` when unset, `relatedEntity` with `href:""`
//!   and `@type:"relatedEntity"`, notes typed `comments` (work notes are accepted but never read
//!   back), `channel:{"name":"e_bonding"}`, relative `href`, `TroubleTicketAttributeChangeEvent`.
//!
//! Beside it, the supplier's TMF655 Change Management at [`CHANGE_BASE_PATH`]: `/changeRequest`
//! (POST answering 201 with a server-assigned `id` and `href`, status `acknowledged` unless one is
//! given; list with `offset`/`limit`, attribute filters on any rendered attribute, dotted paths
//! included, `.gt`/`.gte`/`.lt`/`.lte` on dates, `fields` projection, `sort`), `GET`/`PATCH`
//! (JSON merge-patch; `note[]` is an append-only journal as on tickets)/`DELETE` on one change
//! request. TMF655 leaves `status` a free string, so any non-empty one is taken; the server keeps
//! `lastUpdate` and `statusChangeDate`. Change requests raise no event notifications.
//!
//! Errors are TMF630 bodies `{code, reason, message, status}`; faults (429 with `Retry-After`,
//! 500, slow answers, answers lost after commit) are injected in order, into the calls of both
//! APIs. Authentication is Basic, or bearer tokens from the OAuth2 client-credentials endpoint
//! `/oauth/token`.

use crate::config::{TmfFlavour, TmfVersion};
use actix_web::dev::ServerHandle;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::outbox::{Notification, Outbox};

const STATUSES: &[&str] = &["acknowledged", "rejected", "pending", "held", "inProgress", "cancelled", "closed", "resolved"];
const TERMINAL: &[&str] = &["closed", "cancelled", "rejected", "Closed", "Canceled"];
/// ServiceNow's incident state labels, which its TMF621 flavour takes and shows as they are.
const SN_STATE_LABELS: &[&str] = &["In Progress", "On Hold", "Resolved", "Closed", "Canceled"];
const SN_SEVERITY: &[&str] = &["1 - Critical", "2 - High", "3 - Moderate", "4 - Low", "5 - Planning"];
const SN_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// ServiceNow renders note dates in the reading user's zone, not in the ticket's.
const SN_NOTE_OFFSET_HOURS: i64 = -8;
const DEFAULT_AGENT: &str = "agent.smith";
const EVENT_ATTEMPTS: u32 = 3;

/// The API root of the simulated TMF655 Change Management (before `/changeRequest`).
pub const CHANGE_BASE_PATH: &str = "/tmf-api/changeManagement/v4";
/// The status of a change request created without one.
const CHANGE_CREATED_STATUS: &str = "acknowledged";
/// Attributes a change request's server keeps itself: ignored when written.
const CHANGE_SERVER_OWNED: &[&str] = &["id", "href", "lastUpdate", "lastUpdateDate", "statusChangeDate"];
/// The date-time attributes of a change request: ISO 8601 with a zone when given.
const CHANGE_DATES: &[&str] = &["requestDate", "scheduledDate", "plannedStartTime", "plannedEndTime", "actualStartTime", "actualEndTime", "completionDate"];

// ---- Public API ------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub version: TmfVersion,
    pub flavour: TmfFlavour,
    /// Basic-auth user, and the OAuth2 client id.
    pub user: String,
    pub password: String,
    /// Added to the simulator's "now" (a supplier clock that is off).
    pub clock_skew_secs: i64,
    /// Lifetime of OAuth2 access tokens.
    pub token_ttl_secs: u64,
    /// Credentials sent with event notifications (agreed out of band; TMF's `/hub` has none).
    pub listener_auth: Option<(String, String)>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            version: TmfVersion::V4,
            flavour: TmfFlavour::Standard,
            user: "hub.integration".into(),
            password: "hub-password".into(),
            clock_skew_secs: 0,
            token_ttl_secs: 3600,
            listener_auth: None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Fault {
    RateLimited { retry_after_secs: u64 },
    ServerError,
    Timeout { delay: Duration },
    LoseResponseAfterCommit,
}

super::chance_faults!(Fault);

/// What happens to the next event notifications (a duplicate keeps its `eventId`).
pub type EventBehaviour = super::outbox::Behaviour;

pub use super::LoggedRequest;

/// A registered `/hub` subscription.
#[derive(Clone, Debug, Serialize)]
pub struct Subscription {
    pub id: String,
    pub callback: String,
    pub query: String,
}

/// A note as stored, private ones included.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredNote {
    pub id: String,
    pub author: String,
    pub date: DateTime<Utc>,
    pub text: String,
    /// `@type` as written (`Note`, `comments`, `work_notes`...).
    pub kind: String,
}

/// A file on a ticket: content held by the server, or a link to content elsewhere.
#[derive(Clone, PartialEq)]
struct StoredFile {
    id: String,
    name: String,
    mime: String,
    data: Option<Vec<u8>>,
    url: Option<String>,
    size: Option<i64>,
}

impl std::fmt::Debug for StoredFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredFile").field("id", &self.id).field("name", &self.name).field("size", &self.size).field("url", &self.url).finish()
    }
}

/// A failed request, rendered as a TMF630 error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct SimError {
    pub status: u16,
    pub code: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl SimError {
    fn not_found(what: &str) -> Self {
        SimError { status: 404, code: "60", reason: "Resource not found", message: format!("{what} not found") }
    }
    fn missing(field: &str) -> Self {
        SimError { status: 400, code: "23", reason: "Missing body field", message: format!("{field} is mandatory") }
    }
    fn invalid(field: &str, detail: impl Into<String>) -> Self {
        SimError { status: 400, code: "24", reason: "Invalid body field", message: format!("{field}: {}", detail.into()) }
    }
    fn response(&self) -> HttpResponse {
        tmf_error(self.status, self.code, self.reason, &self.message)
    }
}

#[derive(Clone)]
pub struct Tmf621Sim {
    inner: Arc<Mutex<State>>,
}

impl Tmf621Sim {
    pub fn new(config: SimConfig) -> Self {
        let state = State {
            config,
            base_url: None,
            tickets: Vec::new(),
            next_id: 1001,
            changes: Vec::new(),
            next_change_id: 5001,
            subs: Vec::new(),
            change_subs: Vec::new(),
            faults: VecDeque::new(),
            chance: super::Chance::default(),
            latency: Duration::ZERO,
            log: Vec::new(),
            outbox: Outbox::new("tmf621", EVENT_ATTEMPTS),
            tokens: Vec::new(),
            last_stamp: DateTime::<Utc>::MIN_UTC,
        };
        Tmf621Sim { inner: Arc::new(Mutex::new(state)) }
    }

    /// The API root for this version and flavour (before `/troubleTicket` and `/hub`).
    pub fn base_path(&self) -> String {
        base_path(&self.lock().config)
    }

    /// Starts the HTTP server on `listener`, on the current tokio runtime.
    pub fn start(&self, listener: std::net::TcpListener) -> std::io::Result<ServerHandle> {
        let sim = self.clone();
        let api_route = format!("{}/{{rest:.*}}", self.base_path());
        let change_route = format!("{CHANGE_BASE_PATH}/{{rest:.*}}");
        let running = super::serve("Tmf621Sim", listener, move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::new(sim.clone()))
                // Attachments travel inline in the ticket: room for a generous file.
                .app_data(web::PayloadConfig::new(64 << 20))
                .route("/oauth/token", web::post().to(token_endpoint))
                .route("/sim/tickets", web::get().to(sim_tickets))
                .route("/sim/tickets/{id}/agent", web::post().to(sim_agent))
                .route("/sim/changes", web::get().to(sim_changes))
                .route("/sim/changes/{id}/agent", web::post().to(sim_change_agent))
                .route("/sim/subscriptions", web::get().to(sim_subscriptions))
                .route("/sim/requests", web::get().to(sim_requests))
                .route("/sim/faults", web::post().to(sim_faults))
                .route(&api_route, web::route().to(api))
                .route(&change_route, web::route().to(change_api));
        })?;
        let mut st = self.lock();
        st.base_url = Some(running.base_url);
        st.outbox.runtime = Some(running.runtime);
        Ok(running.handle)
    }

    pub fn base_url(&self) -> Option<String> {
        self.lock().base_url.clone()
    }

    /// Every ticket as the API renders it, in creation order.
    pub fn tickets(&self) -> Vec<Value> {
        let st = self.lock();
        st.tickets.iter().map(|t| st.render(t)).collect()
    }

    /// Tickets carrying `reference` in `externalId` / `externalIdentifier`.
    pub fn tickets_by_external_id(&self, reference: &str) -> Vec<Value> {
        let st = self.lock();
        st.tickets.iter().filter(|t| t.external_ids().iter().any(|e| e == reference)).map(|t| st.render(t)).collect()
    }

    /// One ticket's notes as stored, including those the API never shows.
    pub fn stored_notes(&self, id: &str) -> Vec<StoredNote> {
        self.lock().tickets.iter().find(|t| t.id == id).map(|t| t.notes.clone()).unwrap_or_default()
    }

    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.lock().subs.clone()
    }

    /// The subscriptions at the TMF655 change API's `/hub`.
    pub fn change_subscriptions(&self) -> Vec<Subscription> {
        self.lock().change_subs.clone()
    }

    /// Registers a subscription directly (as an administrator would at the supplier).
    pub fn add_subscription(&self, callback: &str, query: &str) -> Subscription {
        let sub = Subscription { id: uuid::Uuid::new_v4().simple().to_string(), callback: callback.to_string(), query: query.to_string() };
        self.lock().subs.push(sub.clone());
        sub
    }

    pub fn set_listener_auth(&self, auth: Option<(String, String)>) {
        self.lock().config.listener_auth = auth;
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back((None, fault));
    }

    /// Queues a fault for the next request with this method (`PATCH`...), letting others pass.
    pub fn push_fault_on(&self, method: &str, fault: Fault) {
        self.lock().faults.push_back((Some(method.to_ascii_uppercase()), fault));
    }

    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// Answers a share of the API calls with faults, by seeded chance (after queued faults).
    pub fn set_chance(&self, spec: super::ChanceSpec) {
        self.lock().chance = super::Chance::new(spec);
    }

    pub fn set_event_behaviour(&self, b: EventBehaviour) {
        self.lock().outbox.behaviour = b;
    }

    /// Attaches a file to a ticket as a supplier agent would.
    pub fn agent_attach(&self, id: &str, name: &str, mime: &str, data: &[u8]) -> Result<Value, SimError> {
        let content = base64::engine::general_purpose::STANDARD.encode(data);
        self.agent_update(id, json!({ "attachment": [{ "name": name, "mimeType": mime, "content": content, "@type": "Attachment" }] }))
    }

    /// The files a ticket holds, as (name, content type, content) in the order they came.
    pub fn files(&self, id: &str) -> Vec<(String, String, Vec<u8>)> {
        let st = self.lock();
        st.tickets
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.attachments.iter().map(|a| (a.name.clone(), a.mime.clone(), a.data.clone().unwrap_or_default())).collect())
            .unwrap_or_default()
    }

    /// Changes a ticket as a supplier agent would (a merge-patch, with the same rules as the
    /// API). `"assignee": "name"` sets the assignee party in the version's shape.
    pub fn agent_update(&self, id: &str, patch: Value) -> Result<Value, SimError> {
        self.agent_update_as(id, DEFAULT_AGENT, patch)
    }

    pub fn agent_update_as(&self, id: &str, user: &str, patch: Value) -> Result<Value, SimError> {
        let Value::Object(mut body) = patch else { return Err(SimError::invalid("body", "expected a JSON object")) };
        let mut st = self.lock();
        if let Some(who) = body.remove("assignee").and_then(|v| v.as_str().map(str::to_string)) {
            let i = st.position(id).ok_or_else(|| SimError::not_found(&format!("TroubleTicket {id}")))?;
            let mut parties: Vec<Value> = st.tickets[i].parties.iter().filter(|p| p.role != "assignee").map(|p| st.render_ref(p, "partyOrPartyRole")).collect();
            parties.push(st.render_ref(&Ref { id: who.clone(), name: who, role: "assignee".into(), referred: "Individual".into() }, "partyOrPartyRole"));
            body.insert("relatedParty".into(), Value::Array(parties));
        }
        let t = st.write(Some(id), &body, user)?;
        Ok(st.render(&t))
    }

    /// The API root of the TMF655 Change Management (before `/changeRequest`).
    pub fn change_base_path(&self) -> String {
        CHANGE_BASE_PATH.to_string()
    }

    /// Every change request as the API renders it, in creation order.
    pub fn changes(&self) -> Vec<Value> {
        let st = self.lock();
        st.changes.iter().map(|c| st.render_change(c)).collect()
    }

    /// Changes a change request as the supplier's change manager would in its own tool (a
    /// merge-patch, with the same rules as the API): `lastUpdate` moves, and `statusChangeDate`
    /// with a new status.
    pub fn agent_update_change(&self, id: &str, patch: Value) -> Result<Value, SimError> {
        self.agent_update_change_as(id, DEFAULT_AGENT, patch)
    }

    pub fn agent_update_change_as(&self, id: &str, user: &str, patch: Value) -> Result<Value, SimError> {
        let Value::Object(body) = patch else { return Err(SimError::invalid("body", "expected a JSON object")) };
        let mut st = self.lock();
        let c = st.write_change(Some(id), &body, user)?;
        Ok(st.render_change(&c))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; a simulator's data stays usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The authenticated user (Basic, or a live bearer token), if any.
    fn authenticate(&self, req: &HttpRequest) -> Result<String, SimError> {
        let missing = SimError { status: 401, code: "40", reason: "Missing credentials", message: "send Basic or Bearer credentials".into() };
        let invalid = SimError { status: 401, code: "41", reason: "Invalid credentials", message: "the credentials are not valid".into() };
        let value = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(missing.clone())?;
        let (scheme, rest) = value.split_once(' ').ok_or(missing)?;
        let mut st = self.lock();
        let now = st.now();
        if scheme.eq_ignore_ascii_case("bearer") {
            st.tokens.retain(|(_, until)| *until > now);
            return if st.tokens.iter().any(|(t, _)| t == rest.trim()) { Ok(format!("oauth:{}", st.config.user)) } else { Err(invalid) };
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(invalid);
        }
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok().and_then(|d| String::from_utf8(d).ok()).ok_or(invalid.clone())?;
        let (user, password) = decoded.split_once(':').ok_or(invalid.clone())?;
        if user == st.config.user && password == st.config.password {
            Ok(user.to_string())
        } else {
            Err(invalid)
        }
    }
}

fn base_path(c: &SimConfig) -> String {
    match (c.flavour, c.version) {
        (TmfFlavour::Servicenow, _) => "/api/sn_ind_tsm_sdwan/ticket".into(),
        (TmfFlavour::Standard, TmfVersion::V4) => "/tmf-api/troubleTicket/v4".into(),
        (TmfFlavour::Standard, TmfVersion::V5) => "/tmf-api/troubleTicket/v5".into(),
    }
}

// ---- Stored model ----------------------------------------------------------------------------

/// A party or entity reference; `role` is stored lower-camel as TMF writes it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Ref {
    id: String,
    name: String,
    role: String,
    referred: String,
}

#[derive(Clone, Debug)]
struct Change {
    status: String,
    date: DateTime<Utc>,
    reason: Option<String>,
}

#[derive(Clone, Debug)]
struct Ticket {
    id: String,
    name: Option<String>,
    description: String,
    severity: String,
    priority: Option<String>,
    ticket_type: String,
    status: String,
    reason: Option<String>,
    status_date: DateTime<Utc>,
    history: Vec<Change>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    resolution_date: Option<DateTime<Utc>>,
    external_id: Option<String>,
    external_identifiers: Vec<Value>,
    notes: Vec<StoredNote>,
    attachments: Vec<StoredFile>,
    parties: Vec<Ref>,
    entities: Vec<Ref>,
    characteristics: Vec<(String, String)>,
    channel: Option<String>,
    at_type: String,
}

impl Ticket {
    fn external_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.external_id.iter().cloned().collect();
        ids.extend(self.external_identifiers.iter().filter_map(|e| e.get("id").and_then(Value::as_str).map(str::to_string)));
        ids
    }
}

/// A TMF655 change request: its attributes as written (merge-patched), and what the server
/// keeps itself.
#[derive(Clone, Debug, PartialEq)]
struct ChangeRequest {
    id: String,
    /// Every attribute but the server-kept ones and the journal.
    attrs: Map<String, Value>,
    notes: Vec<StoredNote>,
    status_date: DateTime<Utc>,
    updated: DateTime<Utc>,
}

/// RFC 7386: objects merge member by member, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in members {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The texts at a dotted path (`a.b`), through arrays.
fn values_at(v: &Value, path: &str) -> Vec<String> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let at = |item: &Value| -> Vec<String> {
        match (item.get(head), rest) {
            (Some(x), Some(r)) => values_at(x, r),
            (Some(Value::Array(a)), None) => a.iter().filter_map(str_of).collect(),
            (Some(x), None) => str_of(x).into_iter().collect(),
            (None, _) => vec![],
        }
    };
    match v {
        Value::Array(items) => items.iter().flat_map(at).collect(),
        other => at(other),
    }
}

fn iso(t: &DateTime<Utc>) -> Value {
    json!(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

struct State {
    config: SimConfig,
    base_url: Option<String>,
    tickets: Vec<Ticket>,
    next_id: u64,
    changes: Vec<ChangeRequest>,
    next_change_id: u64,
    subs: Vec<Subscription>,
    /// Subscriptions at the change API's own `/hub`.
    change_subs: Vec<Subscription>,
    /// Faults in order, each for any request or for one method.
    faults: VecDeque<(Option<String>, Fault)>,
    chance: super::Chance,
    latency: Duration,
    log: Vec<LoggedRequest>,
    outbox: Outbox,
    tokens: Vec<(String, DateTime<Utc>)>,
    /// Every write gets a later `lastUpdate` than the one before, as a database clock would.
    last_stamp: DateTime<Utc>,
}

/// What a write changed, for the event notifications.
#[derive(Default)]
struct Changed {
    status: bool,
    attributes: Vec<String>,
}

fn str_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads `relatedParty` / `relatedEntity` entries in any shape.
fn parse_refs(v: &Value, inner: &str, field: &str) -> Result<Vec<Ref>, SimError> {
    let items = match v {
        Value::Null => return Ok(vec![]),
        Value::Array(a) => a,
        _ => return Err(SimError::invalid(field, "expected an array")),
    };
    items
        .iter()
        .map(|item| {
            let o = item.as_object().ok_or_else(|| SimError::invalid(field, "entries must be objects"))?;
            let target = o.get(inner).and_then(Value::as_object).unwrap_or(o);
            let s = |m: &Map<String, Value>, k: &str| m.get(k).and_then(str_of).unwrap_or_default();
            let referred = Some(s(target, "@referredType")).filter(|r| !r.is_empty()).unwrap_or_else(|| s(o, "@referredType"));
            let role = Some(s(o, "role")).filter(|r| !r.is_empty()).unwrap_or_else(|| sn_role_to_tmf(&referred).to_string());
            Ok(Ref { id: s(target, "id"), name: s(target, "name"), role, referred })
        })
        .collect()
}

/// ServiceNow puts the role in `@referredType`.
fn sn_role_to_tmf(referred: &str) -> &str {
    match referred {
        "customer_contact" => "originator",
        "customer" => "customer",
        "assigned_to" => "assignee",
        "assignment_group" => "assignmentGroup",
        "cmdb_ci" | "asset" => "affectedCI",
        "cmdb_ci_service" | "product" | "product_inventory" => "affectedService",
        other => other,
    }
}

fn tmf_role_to_sn(role: &str) -> &str {
    match role {
        "originator" | "reporter" => "customer_contact",
        "customer" => "customer",
        "assignee" | "owner" => "assigned_to",
        "assignmentGroup" => "assignment_group",
        "affectedService" => "cmdb_ci_service",
        _ => "cmdb_ci",
    }
}

impl State {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        ChronoDuration::try_seconds(self.config.clock_skew_secs).and_then(|d| now.checked_add_signed(d)).unwrap_or(now)
    }

    /// The next write time, in whole milliseconds as rendered, so filters on rendered dates are
    /// exact.
    fn stamp(&mut self) -> DateTime<Utc> {
        let now = self.now();
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let next = self.last_stamp.checked_add_signed(ChronoDuration::milliseconds(1)).unwrap_or(now);
        self.last_stamp = now.max(next);
        self.last_stamp
    }

    fn sn(&self) -> bool {
        self.config.flavour == TmfFlavour::Servicenow
    }

    fn v5(&self) -> bool {
        self.config.version == TmfVersion::V5
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.tickets.iter().position(|t| t.id == id)
    }

    fn new_id(&mut self) -> String {
        if self.sn() {
            return uuid::Uuid::new_v4().simple().to_string();
        }
        self.next_id += 1;
        (self.next_id - 1).to_string()
    }

    /// A status as written: the TMF enum (ServiceNow also takes its own `New`/`Open`).
    fn parse_status(&self, raw: &str) -> Result<String, SimError> {
        if STATUSES.contains(&raw) {
            return Ok(raw.to_string());
        }
        match (self.sn(), raw) {
            (true, "New") => Ok("acknowledged".into()),
            (true, "Open") => Ok("inProgress".into()),
            (true, label) if SN_STATE_LABELS.contains(&label) => Ok(label.to_string()),
            _ => Err(SimError::invalid("status", format!("`{raw}` is not a TroubleTicketStatusType ({})", STATUSES.join(", ")))),
        }
    }

    fn parse_severity(&self, v: &Value) -> Result<String, SimError> {
        let raw = str_of(v).ok_or_else(|| SimError::invalid("severity", "expected a string"))?;
        if !self.sn() {
            return if raw.trim().is_empty() { Err(SimError::invalid("severity", "must not be empty")) } else { Ok(raw) };
        }
        // ServiceNow: the ServiceNow priority, written 1..5 (its label is read-only but accepted).
        let digit: String = raw.trim().chars().take_while(char::is_ascii_digit).collect();
        match digit.parse::<usize>() {
            Ok(n) if (1..=5).contains(&n) => Ok(n.to_string()),
            _ => Err(SimError::invalid("severity", format!("`{raw}` is not a priority 1..5"))),
        }
    }

    /// Insert (`id` None) or merge-patch a ticket, then queue its event notifications.
    fn write(&mut self, id: Option<&str>, body: &Map<String, Value>, user: &str) -> Result<Ticket, SimError> {
        let now = self.now();
        let (mut t, index) = match id {
            Some(id) => {
                let i = self.position(id).ok_or_else(|| SimError::not_found(&format!("TroubleTicket {id}")))?;
                let t = self.tickets[i].clone();
                if TERMINAL.contains(&t.status.as_str()) {
                    return Err(SimError { status: 400, code: "24", reason: "Invalid state", message: format!("TroubleTicket {id} is {} and can no longer be changed", t.status) });
                }
                (t, Some(i))
            }
            None => {
                for field in ["description", "severity", "ticketType"] {
                    if body.get(field).and_then(str_of).is_none_or(|s| s.trim().is_empty()) {
                        return Err(SimError::missing(field));
                    }
                }
                if self.v5() && body.get("@type").and_then(Value::as_str).is_none() {
                    return Err(SimError::missing("@type"));
                }
                let status = "acknowledged".to_string();
                let t = Ticket {
                    id: self.new_id(),
                    name: None,
                    description: String::new(),
                    severity: String::new(),
                    priority: None,
                    ticket_type: String::new(),
                    status: status.clone(),
                    reason: None,
                    status_date: now,
                    history: vec![Change { status, date: now, reason: None }],
                    created: now,
                    updated: now,
                    resolution_date: None,
                    external_id: None,
                    external_identifiers: vec![],
                    notes: vec![],
                    attachments: vec![],
                    parties: vec![],
                    entities: vec![],
                    characteristics: vec![],
                    channel: None,
                    at_type: "TroubleTicket".into(),
                };
                (t, None)
            }
        };
        let before = format!("{:?}", t);
        let mut changed = Changed::default();
        let mut new_status: Option<String> = None;
        for (key, value) in body {
            let attr = |changed: &mut Changed| changed.attributes.push(key.clone());
            match key.as_str() {
                "name" => {
                    let v = str_of(value);
                    if v != t.name {
                        t.name = v;
                        attr(&mut changed);
                    }
                }
                "description" => {
                    let v = str_of(value).ok_or_else(|| SimError::invalid("description", "expected a string"))?;
                    if v != t.description {
                        t.description = v;
                        attr(&mut changed);
                    }
                }
                "severity" => {
                    let v = self.parse_severity(value)?;
                    if v != t.severity {
                        t.severity = v;
                        attr(&mut changed);
                    }
                }
                // ServiceNow computes priority itself.
                "priority" if !self.sn() => {
                    let v = str_of(value);
                    if v != t.priority {
                        t.priority = v;
                        attr(&mut changed);
                    }
                }
                "ticketType" => {
                    if let Some(v) = str_of(value).filter(|v| *v != t.ticket_type) {
                        t.ticket_type = v;
                        attr(&mut changed);
                    }
                }
                "status" if index.is_some() => {
                    let raw = str_of(value).ok_or_else(|| SimError::invalid("status", "expected a string"))?;
                    new_status = Some(self.parse_status(&raw)?);
                }
                "statusChangeReason" => {
                    let v = str_of(value);
                    if v != t.reason {
                        t.reason = v;
                        attr(&mut changed);
                    }
                }
                "externalId" => {
                    let v = str_of(value);
                    if v != t.external_id {
                        t.external_id = v;
                        attr(&mut changed);
                    }
                }
                "externalIdentifier" => {
                    let v = value.as_array().cloned().unwrap_or_default();
                    if v != t.external_identifiers {
                        t.external_identifiers = v;
                        attr(&mut changed);
                    }
                }
                "relatedParty" => {
                    let v = parse_refs(value, "partyOrPartyRole", key)?;
                    if v != t.parties {
                        t.parties = v;
                        attr(&mut changed);
                    }
                }
                "relatedEntity" => {
                    let v = parse_refs(value, "entity", key)?;
                    if v != t.entities {
                        t.entities = v;
                        attr(&mut changed);
                    }
                }
                // A v4 TroubleTicket has no characteristics; a v4 server drops them.
                "troubleTicketCharacteristic" if self.v5() => {
                    let items = value.as_array().ok_or_else(|| SimError::invalid(key, "expected an array"))?;
                    let mut v = vec![];
                    for c in items {
                        let name = c.get("name").and_then(str_of).ok_or_else(|| SimError::missing("troubleTicketCharacteristic.name"))?;
                        v.push((name, c.get("value").and_then(str_of).unwrap_or_default()));
                    }
                    if v != t.characteristics {
                        t.characteristics = v;
                        attr(&mut changed);
                    }
                }
                "note" => {
                    let items = value.as_array().ok_or_else(|| SimError::invalid("note", "expected an array"))?;
                    let mut added = false;
                    for n in items {
                        let o = n.as_object().ok_or_else(|| SimError::invalid("note", "entries must be objects"))?;
                        if o.get("id").and_then(str_of).is_some_and(|id| t.notes.iter().any(|x| x.id == id)) {
                            continue; // already in the journal: notes are immutable
                        }
                        let text = o.get("text").and_then(str_of).filter(|s| !s.trim().is_empty()).ok_or_else(|| SimError::missing("note.text"))?;
                        let kind = o.get("@type").and_then(str_of).unwrap_or_else(|| if self.sn() { "comments".into() } else { "Note".into() });
                        if self.sn() && kind != "comments" && kind != "work_notes" {
                            return Err(SimError::invalid("note.@type", "must be comments or work_notes"));
                        }
                        let author = o.get("author").and_then(str_of).filter(|a| !a.is_empty()).unwrap_or_else(|| user.to_string());
                        let id = if self.sn() { uuid::Uuid::new_v4().simple().to_string() } else { format!("{}-{}", t.id, t.notes.len() + 1) };
                        t.notes.push(StoredNote { id, author, date: now, text, kind });
                        added = true;
                    }
                    if added {
                        attr(&mut changed);
                    }
                }
                // ServiceNow's flavour of the API has no attachments and ignores the attribute.
                "attachment" if !self.sn() => {
                    let items = value.as_array().ok_or_else(|| SimError::invalid("attachment", "expected an array"))?;
                    let mut added = false;
                    for a in items {
                        let o = a.as_object().ok_or_else(|| SimError::invalid("attachment", "entries must be objects"))?;
                        if o.get("id").and_then(str_of).is_some_and(|id| t.attachments.iter().any(|x| x.id == id)) {
                            continue; // a file the ticket holds
                        }
                        let name = o.get("name").and_then(str_of).filter(|s| !s.trim().is_empty()).ok_or_else(|| SimError::missing("attachment.name"))?;
                        let data = match o.get("content").and_then(str_of) {
                            Some(c) => {
                                Some(base64::engine::general_purpose::STANDARD.decode(c.trim()).map_err(|e| SimError::invalid("attachment.content", format!("not base64: {e}")))?)
                            }
                            None => None,
                        };
                        let url = o.get("url").and_then(str_of).filter(|u| !u.trim().is_empty());
                        if data.is_none() && url.is_none() {
                            return Err(SimError::missing("attachment.content or attachment.url"));
                        }
                        let declared = o.get("size").and_then(|s| s.get("amount").unwrap_or(s).as_i64());
                        let size = data.as_ref().map(|d| d.len() as i64).or(declared);
                        let id = format!("{}-file-{}", t.id, t.attachments.len() + 1);
                        let mime = o.get("mimeType").and_then(str_of).unwrap_or_else(|| "application/octet-stream".into());
                        t.attachments.push(StoredFile { id, name, mime, data, url, size });
                        added = true;
                    }
                    if added {
                        attr(&mut changed);
                    }
                }
                "channel" => t.channel = value.get("name").and_then(str_of),
                "@type" => {
                    if let Some(v) = str_of(value) {
                        t.at_type = v;
                    }
                }
                _ => {}
            }
        }
        if let Some(s) = new_status.filter(|s| *s != t.status) {
            if s == "resolved" {
                t.resolution_date = Some(now);
            }
            t.status = s.clone();
            t.status_date = now;
            t.history.push(Change { status: s, date: now, reason: body.get("statusChangeReason").and_then(str_of) });
            changed.status = true;
        }
        if index.is_some() && format!("{:?}", t) == before {
            return Ok(t);
        }
        let stamp = self.stamp();
        t.updated = stamp;
        if index.is_none() {
            t.created = stamp;
            t.status_date = stamp;
            if let Some(h) = t.history.first_mut() {
                h.date = stamp;
            }
        }
        changed.attributes.retain(|a| a != "statusChangeReason" || !changed.status);
        match index {
            Some(i) => self.tickets[i] = t.clone(),
            None => self.tickets.push(t.clone()),
        }
        let rendered = self.render(&t);
        if index.is_none() {
            self.notify("TroubleTicketCreateEvent", &rendered, None);
        } else {
            if changed.status {
                self.notify("TroubleTicketStatusChangeEvent", &rendered, None);
            }
            if !changed.attributes.is_empty() {
                let kind = if self.sn() { "TroubleTicketAttributeChangeEvent" } else { "TroubleTicketAttributeValueChangeEvent" };
                self.notify(kind, &rendered, Some(changed.attributes.join(",")));
            }
        }
        Ok(t)
    }

    // ---- Rendering ---------------------------------------------------------------------------

    fn date(&self, t: &DateTime<Utc>) -> Value {
        if self.sn() {
            json!(t.format(SN_FORMAT).to_string())
        } else {
            json!(t.to_rfc3339_opts(SecondsFormat::Millis, true))
        }
    }

    fn note_date(&self, t: &DateTime<Utc>) -> Value {
        if self.sn() {
            let shifted = t.naive_utc() + ChronoDuration::hours(SN_NOTE_OFFSET_HOURS);
            json!(shifted.format(SN_FORMAT).to_string())
        } else {
            self.date(t)
        }
    }

    fn href(&self, id: &str) -> String {
        let path = format!("{}/troubleTicket/{id}", base_path(&self.config));
        if self.sn() {
            path
        } else {
            format!("{}{path}", self.base_url.clone().unwrap_or_default())
        }
    }

    fn render_ref(&self, r: &Ref, inner: &str) -> Value {
        let entity = inner == "entity";
        if self.sn() {
            // Keep a ServiceNow slot name as written; otherwise derive it from the TMF role.
            let sn_slot = r.referred.contains('_') || r.referred == "customer";
            let referred = if sn_slot { r.referred.clone() } else { tmf_role_to_sn(&r.role).to_string() };
            return if entity {
                json!({ "id": r.id, "name": r.name, "href": "", "@referredType": referred, "@type": "relatedEntity" })
            } else {
                json!({ "id": r.id, "name": r.name, "@referredType": referred })
            };
        }
        let (kind, inner_type) = if entity { ("RelatedEntity", "EntityRef") } else { ("RelatedParty", "PartyRef") };
        if self.v5() {
            let outer = if entity { "RelatedEntity" } else { "RelatedPartyRefOrPartyRoleRef" };
            json!({ "role": r.role, inner: { "id": r.id, "name": r.name, "@referredType": r.referred, "@type": inner_type }, "@type": outer })
        } else {
            json!({ "id": r.id, "name": r.name, "role": r.role, "@referredType": r.referred, "@type": kind })
        }
    }

    fn render(&self, t: &Ticket) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), json!(t.id));
        o.insert("href".into(), json!(self.href(&t.id)));
        if let Some(n) = &t.name {
            o.insert("name".into(), json!(n));
        }
        o.insert("description".into(), json!(t.description));
        let severity = match (self.sn(), t.severity.parse::<usize>()) {
            (true, Ok(n)) => SN_SEVERITY.get(n.wrapping_sub(1)).map(|s| s.to_string()).unwrap_or_else(|| t.severity.clone()),
            _ => t.severity.clone(),
        };
        o.insert("severity".into(), json!(severity));
        if let Some(p) = &t.priority {
            o.insert("priority".into(), json!(p));
        }
        o.insert("ticketType".into(), json!(t.ticket_type));
        let status = match (self.sn(), t.status.as_str()) {
            (true, "acknowledged") => "New",
            (true, "inProgress") => "Open",
            (_, s) => s,
        };
        o.insert("status".into(), json!(status));
        o.insert("statusChangeDate".into(), self.date(&t.status_date));
        // Absent and cleared are both `null` here, as TMF servers commonly render them.
        o.insert("statusChangeReason".into(), t.reason.as_ref().map_or(Value::Null, |r| json!(r)));
        o.insert("creationDate".into(), self.date(&t.created));
        o.insert("lastUpdate".into(), self.date(&t.updated));
        if let Some(d) = &t.resolution_date {
            o.insert("resolutionDate".into(), self.date(d));
        }
        let history: Vec<Value> = t
            .history
            .iter()
            .map(|c| {
                if self.v5() {
                    json!({ "status": c.status, "statusChangeDate": self.date(&c.date), "statusChangeReason": c.reason, "@type": "StatusChange" })
                } else {
                    json!({ "status": c.status, "changeDate": self.date(&c.date), "changeReason": c.reason, "@type": "StatusChange" })
                }
            })
            .collect();
        if self.v5() {
            o.insert("statusChangeHistory".into(), Value::Array(history));
            let mut ids = t.external_identifiers.clone();
            if let Some(e) = &t.external_id {
                if !ids.iter().any(|x| x.get("id").and_then(Value::as_str) == Some(e)) {
                    ids.push(json!({ "id": e, "@type": "ExternalIdentifier" }));
                }
            }
            o.insert("externalIdentifier".into(), Value::Array(ids));
            o.insert(
                "troubleTicketCharacteristic".into(),
                Value::Array(t.characteristics.iter().map(|(n, v)| json!({ "name": n, "value": v, "valueType": "string", "@type": "StringCharacteristic" })).collect()),
            );
        } else {
            o.insert("statusChange".into(), Value::Array(history));
            let ext = t.external_id.clone().or_else(|| t.external_identifiers.first().and_then(|e| e.get("id")).and_then(str_of));
            o.insert("externalId".into(), ext.map_or(Value::Null, |e| json!(e)));
        }
        let mut parties: Vec<Value> = t.parties.iter().map(|p| self.render_ref(p, "partyOrPartyRole")).collect();
        if self.sn() {
            // ServiceNow always lists its four party slots, empty ones with "id":"".
            for slot in ["customer", "customer_contact", "assignment_group", "assigned_to"] {
                if !t.parties.iter().any(|p| tmf_role_to_sn(&p.role) == slot) {
                    parties.push(json!({ "id": "", "name": "", "@referredType": slot }));
                }
            }
        }
        o.insert("relatedParty".into(), Value::Array(parties));
        o.insert("relatedEntity".into(), Value::Array(t.entities.iter().map(|e| self.render_ref(e, "entity")).collect()));
        let notes: Vec<Value> = t
            .notes
            .iter()
            // ServiceNow never reads work notes back through this API.
            .filter(|n| !self.sn() || n.kind == "comments")
            .map(|n| {
                let mut v = json!({ "id": n.id, "author": n.author, "date": self.note_date(&n.date), "text": n.text, "@type": n.kind });
                if self.sn() {
                    v.as_object_mut().map(|m| m.remove("id"));
                }
                v
            })
            .collect();
        o.insert("note".into(), Value::Array(notes));
        if !t.attachments.is_empty() {
            let files: Vec<Value> = t
                .attachments
                .iter()
                .map(|a| {
                    let url = a.url.clone().unwrap_or_else(|| format!("{}/attachment/{}/content", self.href(&t.id), a.id));
                    json!({ "id": a.id, "name": a.name, "mimeType": a.mime, "size": {"amount": a.size, "units": "bytes"}, "url": url, "@type": "Attachment" })
                })
                .collect();
            o.insert("attachment".into(), Value::Array(files));
        }
        let channel = if self.sn() { Some("e_bonding".to_string()) } else { t.channel.clone() };
        if let Some(c) = channel {
            o.insert("channel".into(), json!({ "name": c }));
        }
        o.insert("@type".into(), json!(t.at_type));
        Value::Object(o)
    }

    // ---- Change requests (TMF655) ------------------------------------------------------------

    fn change_position(&self, id: &str) -> Option<usize> {
        self.changes.iter().position(|c| c.id == id)
    }

    /// Insert (`id` None) or merge-patch a change request.
    fn write_change(&mut self, id: Option<&str>, body: &Map<String, Value>, user: &str) -> Result<ChangeRequest, SimError> {
        let now = self.now();
        let (mut c, index) = match id {
            Some(id) => {
                let i = self.change_position(id).ok_or_else(|| SimError::not_found(&format!("ChangeRequest {id}")))?;
                (self.changes[i].clone(), Some(i))
            }
            None => {
                self.next_change_id += 1;
                let id = (self.next_change_id - 1).to_string();
                (ChangeRequest { id, attrs: Map::new(), notes: vec![], status_date: now, updated: now }, None)
            }
        };
        let before = c.clone();
        let old_status = c.attrs.get("status").cloned();
        let mut patch = Map::new();
        for (key, value) in body {
            match key.as_str() {
                k if CHANGE_SERVER_OWNED.contains(&k) => {}
                "note" => {
                    let items = value.as_array().ok_or_else(|| SimError::invalid("note", "expected an array"))?;
                    for n in items {
                        let o = n.as_object().ok_or_else(|| SimError::invalid("note", "entries must be objects"))?;
                        if o.get("id").and_then(str_of).is_some_and(|id| c.notes.iter().any(|x| x.id == id)) {
                            continue; // already in the journal: notes are immutable
                        }
                        let text = o.get("text").and_then(str_of).filter(|s| !s.trim().is_empty()).ok_or_else(|| SimError::missing("note.text"))?;
                        let kind = o.get("@type").and_then(str_of).unwrap_or_else(|| "Note".into());
                        let author = o.get("author").and_then(str_of).filter(|a| !a.is_empty()).unwrap_or_else(|| user.to_string());
                        let id = format!("{}-{}", c.id, c.notes.len() + 1);
                        c.notes.push(StoredNote { id, author, date: now, text, kind });
                    }
                }
                "status" => match value {
                    Value::String(s) if !s.trim().is_empty() => {
                        patch.insert(key.clone(), value.clone());
                    }
                    _ => return Err(SimError::invalid("status", "expected a non-empty string")),
                },
                k if CHANGE_DATES.contains(&k) => match value {
                    Value::Null => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Value::String(s) if DateTime::parse_from_rfc3339(s.trim()).is_ok() => {
                        patch.insert(key.clone(), value.clone());
                    }
                    _ => return Err(SimError::invalid(key, format!("`{value}` is not an ISO 8601 date-time with a zone"))),
                },
                _ => {
                    patch.insert(key.clone(), value.clone());
                }
            }
        }
        let mut attrs = Value::Object(std::mem::take(&mut c.attrs));
        merge_patch(&mut attrs, &Value::Object(patch));
        c.attrs = match attrs {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if index.is_none() {
            c.attrs.entry("status").or_insert_with(|| json!(CHANGE_CREATED_STATUS));
            c.attrs.entry("requestDate").or_insert_with(|| iso(&now));
            c.attrs.entry("@type").or_insert_with(|| json!("ChangeRequest"));
        }
        if index.is_some() && c == before {
            return Ok(c);
        }
        let stamp = self.stamp();
        c.updated = stamp;
        if index.is_none() || c.attrs.get("status") != old_status.as_ref() {
            c.status_date = stamp;
        }
        match index {
            Some(i) => self.changes[i] = c.clone(),
            None => self.changes.push(c.clone()),
        }
        let kind = match index {
            None => "ChangeRequestCreateEvent",
            Some(_) if c.attrs.get("status") != old_status.as_ref() => "ChangeRequestStateChangeEvent",
            Some(_) => "ChangeRequestAttributeValueChangeEvent",
        };
        let rendered = self.render_change(&c);
        let body = json!({
            "eventId": uuid::Uuid::new_v4().to_string(),
            "eventTime": iso(&stamp),
            "eventType": kind,
            "event": { "changeRequest": rendered },
        });
        self.send_event(kind, &body.to_string(), true);
        Ok(c)
    }

    fn change_href(&self, id: &str) -> String {
        format!("{}{CHANGE_BASE_PATH}/changeRequest/{id}", self.base_url.clone().unwrap_or_default())
    }

    fn render_change(&self, c: &ChangeRequest) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), json!(c.id));
        o.insert("href".into(), json!(self.change_href(&c.id)));
        o.extend(c.attrs.iter().map(|(k, v)| (k.clone(), v.clone())));
        o.insert("statusChangeDate".into(), iso(&c.status_date));
        o.insert("lastUpdate".into(), iso(&c.updated));
        let notes: Vec<Value> = c.notes.iter().map(|n| json!({ "id": n.id, "author": n.author, "date": iso(&n.date), "text": n.text, "@type": n.kind })).collect();
        o.insert("note".into(), Value::Array(notes));
        Value::Object(o)
    }

    // ---- Events ------------------------------------------------------------------------------

    fn envelope(&self, kind: &str, ticket: &Value, field_path: Option<String>) -> Value {
        let id = uuid::Uuid::new_v4().to_string();
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut e = json!({
            "eventId": id,
            "eventTime": now,
            "eventType": kind,
            "correlationId": uuid::Uuid::new_v4().to_string(),
            "domain": "TroubleTicket",
            "title": kind,
            "event": { "troubleTicket": ticket },
        });
        if self.v5() {
            e["id"] = json!(id);
            e["timeOccurred"] = json!(now);
            e["@type"] = json!(kind);
            e["@baseType"] = json!("Event");
            e["source"] = json!({ "id": "tmf-sim", "@referredType": "TroubleTicketManagement" });
        } else {
            // The v4 Event model's own spelling.
            e["timeOcurred"] = json!(now);
        }
        if let Some(f) = field_path {
            e["fieldPath"] = json!(f);
        }
        e
    }

    fn notify(&mut self, kind: &str, ticket: &Value, field_path: Option<String>) {
        let body = self.envelope(kind, ticket, field_path).to_string();
        self.send_event(kind, &body, false);
    }

    /// Queues `body` for every subscriber to `kind` at the trouble ticket API's hub, or with
    /// `changes` at the change API's.
    fn send_event(&mut self, kind: &str, body: &str, changes: bool) {
        let listener = {
            let mut c = kind.chars();
            c.next().map(|f| f.to_lowercase().chain(c).collect::<String>()).unwrap_or_default()
        };
        let subs = if changes { &self.change_subs } else { &self.subs };
        let targets: Vec<Notification> = subs
            .iter()
            .filter(|s| query_matches(&s.query, kind))
            .map(|s| Notification {
                id: uuid::Uuid::new_v4().to_string(),
                url: format!("{}/listener/{listener}", s.callback.trim_end_matches('/')),
                body: body.to_string(),
                basic_auth: self.config.listener_auth.clone(),
                headers: Arc::new(|_: &Notification, _| vec![]),
            })
            .collect();
        for n in targets {
            self.outbox.push(n);
        }
    }
}

/// `eventType=A,B` / `eventType=A&eventType=B`; no `eventType` term means every event.
fn query_matches(query: &str, kind: &str) -> bool {
    let wanted: Vec<String> = url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
        .filter(|(k, _)| k == "eventType")
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
        .collect();
    wanted.is_empty() || wanted.iter().any(|w| w == kind)
}

// ---- HTTP ------------------------------------------------------------------------------------

fn tmf_error(status: u16, code: &str, reason: &str, message: &str) -> HttpResponse {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status_code).json(json!({ "code": code, "reason": reason, "message": message, "status": status.to_string(), "@type": "Error" }))
}

fn read_object(body: &[u8]) -> Result<Map<String, Value>, SimError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SimError::invalid("body", "expected a JSON object")),
        Err(e) => Err(SimError { status: 400, code: "22", reason: "Invalid body", message: e.to_string() }),
    }
}

/// Which of the simulator's APIs a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    TroubleTicket,
    ChangeManagement,
}

async fn api(req: HttpRequest, body: web::Bytes, sim: web::Data<Tmf621Sim>) -> HttpResponse {
    entry(req, body, sim, Api::TroubleTicket).await
}

async fn change_api(req: HttpRequest, body: web::Bytes, sim: web::Data<Tmf621Sim>) -> HttpResponse {
    entry(req, body, sim, Api::ChangeManagement).await
}

/// Every API call: latency, then a queued or chance fault, or the answer.
async fn entry(req: HttpRequest, body: web::Bytes, sim: web::Data<Tmf621Sim>, which: Api) -> HttpResponse {
    let (fault, latency) = {
        let mut st = sim.lock();
        let method = req.method().as_str();
        let next = st.faults.iter().position(|(m, _)| m.as_deref().is_none_or(|m| m == method));
        let fault = next.and_then(|i| st.faults.remove(i)).map(|(_, f)| f).or_else(|| st.chance.draw());
        (fault, st.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let user = sim.authenticate(&req);
    let resp = match fault {
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut r = tmf_error(429, "53", "Too many requests", "the request rate limit is exceeded");
            if let Ok(v) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Some(Fault::ServerError) => tmf_error(500, "1", "Internal error", "an unexpected error occurred"),
        Some(Fault::Timeout { delay }) => {
            let (sim, req, body, user) = (sim.clone(), req.clone(), body.clone(), user.clone());
            super::answer_late(delay, move || serve(&sim, &req, &body, &user, which)).await
        }
        Some(Fault::LoseResponseAfterCommit) => {
            let _committed = serve(&sim, &req, &body, &user, which);
            tmf_error(500, "1", "Internal error", "the transaction was committed but the answer was lost")
        }
        None => serve(&sim, &req, &body, &user, which),
    };
    let path = req.uri().path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| req.path().to_string());
    sim.lock().log.push(LoggedRequest { method: req.method().to_string(), path, status: resp.status().as_u16(), user: user.ok() });
    resp
}

fn serve(sim: &Tmf621Sim, req: &HttpRequest, body: &[u8], user: &Result<String, SimError>, which: Api) -> HttpResponse {
    let user = match user {
        Ok(u) => u.clone(),
        Err(e) => return e.response(),
    };
    let rest = req.match_info().get("rest").unwrap_or("");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let mut st = sim.lock();
    if which == Api::ChangeManagement {
        return serve_change(&mut st, req, &segments, &params, body, &user);
    }
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["troubleTicket"]) => list(&st, &params),
        (&Method::POST, ["troubleTicket"]) => match read_object(body).and_then(|b| st.write(None, &b, &user)) {
            Ok(t) => {
                let v = st.render(&t);
                HttpResponse::Created().insert_header((header::LOCATION, st.href(&t.id))).json(v)
            }
            Err(e) => e.response(),
        },
        (&Method::GET, ["troubleTicket", id, "attachment", file, "content"]) => match st.position(id).and_then(|i| st.tickets[i].attachments.iter().find(|a| a.id == *file)) {
            Some(StoredFile { data: Some(data), mime, .. }) => HttpResponse::Ok().content_type(mime.as_str()).body(data.clone()),
            _ => SimError::not_found(&format!("Attachment {file} of TroubleTicket {id}")).response(),
        },
        (&Method::GET, ["troubleTicket", id]) => match st.position(id) {
            Some(i) => HttpResponse::Ok().json(project(st.render(&st.tickets[i]), &params)),
            None => SimError::not_found(&format!("TroubleTicket {id}")).response(),
        },
        (&Method::PATCH, ["troubleTicket", id]) => match read_object(body).and_then(|b| st.write(Some(id), &b, &user)) {
            Ok(t) => HttpResponse::Ok().json(st.render(&t)),
            Err(e) => e.response(),
        },
        (&Method::DELETE, ["troubleTicket", id]) => match st.position(id) {
            Some(i) => {
                let t = st.tickets.remove(i);
                let v = st.render(&t);
                st.notify("TroubleTicketDeleteEvent", &v, None);
                HttpResponse::NoContent().finish()
            }
            None => SimError::not_found(&format!("TroubleTicket {id}")).response(),
        },
        (&Method::POST, ["hub"]) | (&Method::GET | &Method::DELETE, ["hub", _]) => {
            let base = base_path(&st.config);
            serve_hub(&mut st.subs, req.method(), segments.get(1).copied(), body, &base)
        }
        (_, ["troubleTicket"] | ["troubleTicket", _] | ["hub"] | ["hub", _]) => tmf_error(405, "61", "Method not allowed", &format!("{} is not allowed here", req.method())),
        _ => tmf_error(404, "60", "Resource not found", &format!("no resource at {}", req.path())),
    }
}

/// The TMF655 Change Management API.
/// A `/hub` of subscriptions to one API's events: register (`POST`), read and remove by id.
fn serve_hub(subs: &mut Vec<Subscription>, method: &Method, id: Option<&str>, body: &[u8], base: &str) -> HttpResponse {
    match (method, id) {
        (&Method::POST, None) => {
            let b = match read_object(body) {
                Ok(b) => b,
                Err(e) => return e.response(),
            };
            let Some(callback) = b.get("callback").and_then(Value::as_str).filter(|c| c.starts_with("http")) else {
                return SimError::missing("callback").response();
            };
            let query = b.get("query").and_then(Value::as_str).unwrap_or("").to_string();
            let sub = Subscription { id: uuid::Uuid::new_v4().simple().to_string(), callback: callback.to_string(), query };
            subs.push(sub.clone());
            HttpResponse::Created().insert_header((header::LOCATION, format!("{base}/hub/{}", sub.id))).json(sub)
        }
        (&Method::GET, Some(id)) => match subs.iter().find(|s| s.id == id) {
            Some(s) => HttpResponse::Ok().json(s),
            None => SimError::not_found(&format!("Hub {id}")).response(),
        },
        (&Method::DELETE, Some(id)) => {
            let before = subs.len();
            subs.retain(|s| s.id != id);
            if subs.len() < before {
                HttpResponse::NoContent().finish()
            } else {
                SimError::not_found(&format!("Hub {id}")).response()
            }
        }
        _ => tmf_error(405, "61", "Method not allowed", &format!("{method} is not allowed here")),
    }
}

fn serve_change(st: &mut State, req: &HttpRequest, segments: &[&str], params: &[(String, String)], body: &[u8], user: &str) -> HttpResponse {
    match (req.method(), segments) {
        (&Method::POST, ["hub"]) | (&Method::GET | &Method::DELETE, ["hub", _]) => serve_hub(&mut st.change_subs, req.method(), segments.get(1).copied(), body, CHANGE_BASE_PATH),
        (&Method::GET, ["changeRequest"]) => list_changes(st, params),
        (&Method::POST, ["changeRequest"]) => match read_object(body).and_then(|b| st.write_change(None, &b, user)) {
            Ok(c) => HttpResponse::Created().insert_header((header::LOCATION, st.change_href(&c.id))).json(st.render_change(&c)),
            Err(e) => e.response(),
        },
        (&Method::GET, ["changeRequest", id]) => match st.change_position(id) {
            Some(i) => HttpResponse::Ok().json(project(st.render_change(&st.changes[i]), params)),
            None => SimError::not_found(&format!("ChangeRequest {id}")).response(),
        },
        (&Method::PATCH, ["changeRequest", id]) => match read_object(body).and_then(|b| st.write_change(Some(id), &b, user)) {
            Ok(c) => HttpResponse::Ok().json(st.render_change(&c)),
            Err(e) => e.response(),
        },
        (&Method::DELETE, ["changeRequest", id]) => match st.change_position(id) {
            Some(i) => {
                st.changes.remove(i);
                HttpResponse::NoContent().finish()
            }
            None => SimError::not_found(&format!("ChangeRequest {id}")).response(),
        },
        (_, ["changeRequest"] | ["changeRequest", _]) => tmf_error(405, "61", "Method not allowed", &format!("{} is not allowed here", req.method())),
        _ => tmf_error(404, "60", "Resource not found", &format!("no resource at {}", req.path())),
    }
}

/// Change requests matching every attribute filter (`attr=a,b`: one of the values at the dotted
/// path; `attr.gt=` and the like: a date comparison), sorted and paged.
fn list_changes(st: &State, params: &[(String, String)]) -> HttpResponse {
    let mut matched: Vec<Value> = Vec::new();
    'changes: for c in &st.changes {
        let rendered = st.render_change(c);
        for (k, v) in params {
            let ok = match k.as_str() {
                "offset" | "limit" | "fields" | "sort" => true,
                key => {
                    let compare = key.rsplit_once('.').filter(|(_, op)| matches!(*op, "gt" | "gte" | "lt" | "lte"));
                    match compare {
                        Some((attr, op)) => {
                            let Some(bound) = parse_date(v) else {
                                return SimError { status: 400, code: "28", reason: "Invalid query-string parameter value", message: format!("{k}={v} is not a date") }.response();
                            };
                            values_at(&rendered, attr).iter().filter_map(|x| parse_date(x)).any(|at| match op {
                                "gt" => at > bound,
                                "gte" => at >= bound,
                                "lt" => at < bound,
                                _ => at <= bound,
                            })
                        }
                        None => {
                            let held = values_at(&rendered, key);
                            v.split(',').any(|want| held.iter().any(|h| h == want))
                        }
                    }
                }
            };
            if !ok {
                continue 'changes;
            }
        }
        matched.push(rendered);
    }
    if let Some((_, sort)) = params.iter().find(|(k, _)| k == "sort") {
        let desc = sort.starts_with('-');
        let key = sort.trim_start_matches(['-', '+']);
        matched.sort_by_key(|c| {
            let v = values_at(c, key).into_iter().next();
            (v.as_deref().and_then(parse_date), v)
        });
        if desc {
            matched.reverse();
        }
    }
    paged(params, matched, |c| c)
}

/// One page (`offset`, `limit`, 1000 at most) of what a list matched, each item rendered and
/// projected to `fields`: 206 when the page holds fewer than matched, the counts in headers.
fn paged<T>(params: &[(String, String)], matched: Vec<T>, render: impl Fn(T) -> Value) -> HttpResponse {
    let param = |name: &str| params.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse::<usize>().ok());
    let total = matched.len();
    let offset = param("offset").unwrap_or(0);
    let limit = param("limit").filter(|l| *l > 0).unwrap_or(1000);
    let page: Vec<Value> = matched.into_iter().skip(offset).take(limit).map(|m| project(render(m), params)).collect();
    let status = if page.len() < total { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    HttpResponse::build(status).insert_header(("X-Total-Count", total.to_string())).insert_header(("X-Result-Count", page.len().to_string())).json(page)
}

fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).map(|t| t.with_timezone(&Utc)).ok().or_else(|| NaiveDateTime::parse_from_str(s.trim(), SN_FORMAT).ok().map(|n| n.and_utc()))
}

/// Keeps `id`, `href`, `@type` and the listed attributes.
fn project(v: Value, params: &[(String, String)]) -> Value {
    let Some((_, fields)) = params.iter().find(|(k, _)| k == "fields") else { return v };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    match v {
        Value::Object(o) => Value::Object(o.into_iter().filter(|(k, _)| matches!(k.as_str(), "id" | "href" | "@type") || wanted.contains(&k.as_str())).collect()),
        other => other,
    }
}

fn list(st: &State, params: &[(String, String)]) -> HttpResponse {
    let mut matched: Vec<&Ticket> = Vec::new();
    'tickets: for t in &st.tickets {
        let rendered = st.render(t);
        for (k, v) in params {
            let ok = match k.as_str() {
                "offset" | "limit" | "fields" | "sort" => true,
                "externalId" | "externalIdentifier.id" => t.external_ids().iter().any(|e| e == v),
                "lastUpdate.gt" | "lastUpdate.gte" | "lastUpdate.lt" | "lastUpdate.lte" | "creationDate.gt" | "creationDate.lt" => {
                    let Some(bound) = parse_date(v) else {
                        return SimError { status: 400, code: "28", reason: "Invalid query-string parameter value", message: format!("{k}={v} is not a date") }.response();
                    };
                    let at = if k.starts_with("lastUpdate") { t.updated } else { t.created };
                    // ServiceNow stores whole seconds.
                    let at = if st.sn() { at.with_nanosecond_zero() } else { at };
                    match k.rsplit('.').next() {
                        Some("gt") => at > bound,
                        Some("gte") => at >= bound,
                        Some("lt") => at < bound,
                        _ => at <= bound,
                    }
                }
                // Plain attribute equality on what the ticket renders.
                attr => match rendered.get(attr).and_then(str_of) {
                    Some(actual) => v.split(',').any(|x| x == actual),
                    None => !rendered.as_object().is_some_and(|o| o.contains_key(attr)),
                },
            };
            if !ok {
                continue 'tickets;
            }
        }
        matched.push(t);
    }
    if let Some((_, sort)) = params.iter().find(|(k, _)| k == "sort") {
        let desc = sort.starts_with('-');
        match sort.trim_start_matches(['-', '+']) {
            "lastUpdate" => matched.sort_by_key(|t| t.updated),
            "creationDate" => matched.sort_by_key(|t| t.created),
            _ => {}
        }
        if desc {
            matched.reverse();
        }
    }
    paged(params, matched, |t| st.render(t))
}

trait NanoZero {
    fn with_nanosecond_zero(self) -> Self;
}

impl NanoZero for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        DateTime::from_timestamp(self.timestamp(), 0).unwrap_or(self)
    }
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// OAuth2 client credentials: Basic client authentication or form fields.
async fn token_endpoint(req: HttpRequest, form: web::Bytes, sim: web::Data<Tmf621Sim>) -> HttpResponse {
    let f: TokenForm = serde_urlencoded_form(&form);
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|d| d.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())));
    let creds = basic.or_else(|| Some((f.client_id.clone()?, f.client_secret.clone()?)));
    let mut st = sim.lock();
    if f.grant_type.as_deref() != Some("client_credentials") {
        return HttpResponse::BadRequest().json(json!({ "error": "unsupported_grant_type" }));
    }
    match creds {
        Some((u, p)) if u == st.config.user && p == st.config.password => {
            let token = uuid::Uuid::new_v4().simple().to_string();
            let ttl = st.config.token_ttl_secs;
            let until = st.now() + ChronoDuration::seconds(i64::try_from(ttl).unwrap_or(3600));
            st.tokens.push((token.clone(), until));
            HttpResponse::Ok().json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": ttl }))
        }
        _ => HttpResponse::Unauthorized().json(json!({ "error": "invalid_client", "error_description": "unknown client or wrong secret" })),
    }
}

fn serde_urlencoded_form(body: &[u8]) -> TokenForm {
    let mut f = TokenForm { grant_type: None, client_id: None, client_secret: None };
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "grant_type" => f.grant_type = Some(v.into_owned()),
            "client_id" => f.client_id = Some(v.into_owned()),
            "client_secret" => f.client_secret = Some(v.into_owned()),
            _ => {}
        }
    }
    f
}

// ---- /sim control surface (no auth, no faults) -----------------------------------------------

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Control {
    RateLimited {
        #[serde(default)]
        retry_after_secs: u64,
    },
    ServerError,
    Timeout {
        delay_ms: u64,
    },
    LoseResponseAfterCommit,
    Latency {
        ms: u64,
    },
    Chance(super::ChanceSpec),
    EventBehaviour(EventBehaviour),
}

#[derive(Deserialize)]
struct AgentQuery {
    user: Option<String>,
}

async fn sim_tickets(sim: web::Data<Tmf621Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.tickets())
}

async fn sim_subscriptions(sim: web::Data<Tmf621Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.subscriptions())
}

async fn sim_requests(sim: web::Data<Tmf621Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.request_log())
}

async fn sim_agent(sim: web::Data<Tmf621Sim>, path: web::Path<String>, query: web::Query<AgentQuery>, body: web::Bytes) -> HttpResponse {
    agent_response(&query, &body, |user, b| sim.agent_update_as(&path, user, b))
}

/// An agent's update through the control API, as `?user=` (default the agent): the resource
/// after, or the API's error.
fn agent_response(query: &AgentQuery, body: &[u8], update: impl FnOnce(&str, Value) -> Result<Value, SimError>) -> HttpResponse {
    let user = query.user.clone().unwrap_or_else(|| DEFAULT_AGENT.into());
    match read_object(body).and_then(|b| update(&user, Value::Object(b))) {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => e.response(),
    }
}

async fn sim_changes(sim: web::Data<Tmf621Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.changes())
}

async fn sim_change_agent(sim: web::Data<Tmf621Sim>, path: web::Path<String>, query: web::Query<AgentQuery>, body: web::Bytes) -> HttpResponse {
    agent_response(&query, &body, |user, b| sim.agent_update_change_as(&path, user, b))
}

async fn sim_faults(sim: web::Data<Tmf621Sim>, body: web::Bytes) -> HttpResponse {
    let control = match serde_json::from_slice::<Control>(&body) {
        Ok(c) => c,
        Err(e) => return tmf_error(400, "22", "Invalid body", &e.to_string()),
    };
    let fault = match control {
        Control::RateLimited { retry_after_secs } => Fault::RateLimited { retry_after_secs },
        Control::ServerError => Fault::ServerError,
        Control::Timeout { delay_ms } => Fault::Timeout { delay: Duration::from_millis(delay_ms) },
        Control::LoseResponseAfterCommit => Fault::LoseResponseAfterCommit,
        Control::Latency { ms } => {
            sim.set_latency(Duration::from_millis(ms));
            return HttpResponse::NoContent().finish();
        }
        Control::Chance(spec) => {
            sim.set_chance(spec);
            return HttpResponse::NoContent().finish();
        }
        Control::EventBehaviour(b) => {
            sim.set_event_behaviour(b);
            return HttpResponse::NoContent().finish();
        }
    };
    sim.push_fault(fault);
    HttpResponse::Ok().json(json!({ "queued": sim.lock().faults.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, HttpServer};
    use std::net::TcpListener;

    const USER: &str = "hub.integration";
    const PASSWORD: &str = "s3cret";

    fn config(version: TmfVersion, flavour: TmfFlavour) -> SimConfig {
        SimConfig { version, flavour, user: USER.into(), password: PASSWORD.into(), ..SimConfig::default() }
    }

    struct Api {
        sim: Tmf621Sim,
        root: String,
        http: reqwest::Client,
    }

    impl Api {
        fn start(c: SimConfig) -> Api {
            let sim = Tmf621Sim::new(c);
            sim.start(TcpListener::bind("127.0.0.1:0").expect("bind")).expect("start");
            let root = format!("{}{}", sim.base_url().expect("url"), sim.base_path());
            Api { sim, root, http: reqwest::Client::new() }
        }

        async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, reqwest::header::HeaderMap, Value) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let mut req = self.http.request(method, format!("{}{path}", self.root)).basic_auth(USER, Some(PASSWORD));
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.expect("request");
            let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
            let text = resp.text().await.expect("body");
            (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }

        async fn create(&self, body: Value) -> Value {
            let (status, _, v) = self.call("POST", "/troubleTicket", Some(body)).await;
            assert_eq!(status, 201, "{v}");
            v
        }
    }

    fn ticket(reference: &str) -> Value {
        json!({"@type": "TroubleTicket", "name": "Link down", "description": "No traffic", "severity": "Major", "ticketType": "incident", "externalId": reference})
    }

    /// What a listener received: path, Authorization header, body.
    type Received = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

    /// A listener that records what it receives.
    fn receiver() -> (String, Received) {
        let store: Received = Arc::default();
        let s = store.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            let s = s.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let s = s.clone();
                async move {
                    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    s.lock().unwrap().push((req.path().to_string(), auth, v));
                    HttpResponse::NoContent().finish()
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        (format!("http://127.0.0.1:{port}/hooks"), store)
    }

    async fn wait_for(store: &Received, n: usize) -> Vec<(String, Option<String>, Value)> {
        for _ in 0..100 {
            if store.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.lock().unwrap().clone()
    }

    #[actix_web::test]
    async fn create_read_patch_with_history_and_an_append_only_journal() {
        let api = Api::start(config(TmfVersion::V4, TmfFlavour::Standard));
        let t = api.create(ticket("INC-000001")).await;
        assert_eq!(t["status"], "acknowledged");
        assert_eq!(t["externalId"], "INC-000001");
        assert!(t["lastUpdate"].as_str().unwrap().ends_with('Z'));
        let id = t["id"].as_str().unwrap().to_string();
        let path = format!("/troubleTicket/{id}");
        let (status, _, after) = api.call("PATCH", &path, Some(json!({"status": "inProgress", "note": [{"text": "on it"}]}))).await;
        assert_eq!(status, 200);
        assert_eq!(after["statusChange"].as_array().unwrap().len(), 2);
        assert_eq!(after["statusChange"][1]["status"], "inProgress");
        // The client re-sends the whole array with a new entry: existing notes are not duplicated.
        let mut notes = after["note"].as_array().unwrap().clone();
        notes.push(json!({"text": "second"}));
        let (_, _, after2) = api.call("PATCH", &path, Some(json!({"note": notes}))).await;
        let texts: Vec<&str> = after2["note"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["on it", "second"]);
        assert!(after2["lastUpdate"].as_str().unwrap() > after["lastUpdate"].as_str().unwrap());
        // A patch that changes nothing leaves lastUpdate alone.
        let (_, _, same) = api.call("PATCH", &path, Some(json!({"status": "inProgress"}))).await;
        assert_eq!(same["lastUpdate"], after2["lastUpdate"]);
        let (status, _, err) = api.call("PATCH", &path, Some(json!({"status": "in_progress"}))).await;
        assert_eq!((status, err["code"].as_str(), err["status"].as_str()), (400, Some("24"), Some("400")));
        let (status, _, _) = api.call("PATCH", &path, Some(json!({"status": "closed"}))).await;
        assert_eq!(status, 200);
        let (status, _, err) = api.call("PATCH", &path, Some(json!({"name": "again"}))).await;
        assert_eq!(status, 400, "{err}");
        let (status, _, err) = api.call("GET", "/troubleTicket/nope", None).await;
        assert_eq!((status, err["code"].as_str(), err["reason"].as_str()), (404, Some("60"), Some("Resource not found")));
        let (status, _, err) = api.call("POST", "/troubleTicket", Some(json!({"description": "x"}))).await;
        assert_eq!((status, err["code"].as_str()), (400, Some("23")));
    }

    #[actix_web::test]
    async fn list_pages_filters_and_counts() {
        let api = Api::start(config(TmfVersion::V4, TmfFlavour::Standard));
        let mut stamps = vec![];
        for i in 0..5 {
            let t = api.create(ticket(&format!("INC-00000{i}"))).await;
            stamps.push(t["lastUpdate"].as_str().unwrap().to_string());
        }
        let (status, headers, page) = api.call("GET", &format!("/troubleTicket?lastUpdate.gt={}&sort=lastUpdate&offset=1&limit=2", stamps[0]), None).await;
        assert_eq!(status, 206);
        assert_eq!(headers["x-total-count"], "4");
        assert_eq!(headers["x-result-count"], "2");
        let refs: Vec<&str> = page.as_array().unwrap().iter().map(|t| t["externalId"].as_str().unwrap()).collect();
        assert_eq!(refs, ["INC-000002", "INC-000003"]);
        let (status, _, one) = api.call("GET", "/troubleTicket?externalId=INC-000004&fields=status", None).await;
        assert_eq!(status, 200);
        assert_eq!(one.as_array().unwrap().len(), 1);
        assert!(one[0].get("name").is_none() && one[0]["status"] == "acknowledged");
        let (status, _, _) = api.call("GET", "/troubleTicket?lastUpdate.gt=soon", None).await;
        assert_eq!(status, 400);
        let anon = api.http.get(format!("{}/troubleTicket", api.root)).send().await.unwrap();
        assert_eq!(anon.status(), 401);
    }

    #[actix_web::test]
    async fn v5_shapes_and_mandatory_type() {
        let api = Api::start(config(TmfVersion::V5, TmfFlavour::Standard));
        let mut body = ticket("x");
        body.as_object_mut().unwrap().remove("@type");
        let (status, _, err) = api.call("POST", "/troubleTicket", Some(body)).await;
        assert_eq!((status, err["message"].as_str()), (400, Some("@type is mandatory")));
        let t = api
            .create(json!({"@type": "TroubleTicket", "description": "d", "severity": "Minor", "ticketType": "incident",
                "externalIdentifier": [{"id": "INC-000009", "owner": "SIAM Hub"}],
                "relatedParty": [{"role": "originator", "partyOrPartyRole": {"id": "j.smith", "@referredType": "Individual"}}],
                "troubleTicketCharacteristic": [{"name": "urgency", "value": "1"}]}))
            .await;
        assert_eq!(t["externalIdentifier"][0]["id"], "INC-000009");
        assert_eq!(t["relatedParty"][0]["partyOrPartyRole"]["id"], "j.smith");
        assert_eq!(t["troubleTicketCharacteristic"][0]["value"], "1");
        assert!(t["statusChangeHistory"][0]["statusChangeDate"].is_string());
        assert!(t.get("externalId").is_none() && t.get("statusChange").is_none());
        assert_eq!(api.sim.tickets_by_external_id("INC-000009").len(), 1);
    }

    #[actix_web::test]
    async fn servicenow_flavour_renders_its_deviations() {
        let api = Api::start(config(TmfVersion::V4, TmfFlavour::Servicenow));
        assert_eq!(api.sim.base_path(), "/api/sn_ind_tsm_sdwan/ticket");
        let (status, _, err) = api.call("POST", "/troubleTicket", Some(json!({"description": "d", "severity": "High", "ticketType": "Incident"}))).await;
        assert_eq!(status, 400, "severity must be 1..5: {err}");
        let t = api.create(json!({"description": "d", "severity": "2", "ticketType": "Incident", "relatedParty": [{"id": "abc", "@referredType": "customer_contact"}]})).await;
        assert_eq!(t["status"], "New");
        assert_eq!(t["severity"], "2 - High");
        assert!(t["creationDate"].as_str().unwrap().len() == 19 && !t["creationDate"].as_str().unwrap().contains('T'));
        assert!(t["href"].as_str().unwrap().starts_with("/api/sn_ind_tsm_sdwan/ticket/troubleTicket/"));
        assert_eq!(t["channel"]["name"], "e_bonding");
        let parties = t["relatedParty"].as_array().unwrap();
        assert!(parties.iter().all(|p| p.get("role").is_none()));
        assert!(parties.iter().any(|p| p["@referredType"] == "assigned_to" && p["id"] == ""));
        let id = t["id"].as_str().unwrap();
        let (_, _, after) = api
            .call(
                "PATCH",
                &format!("/troubleTicket/{id}"),
                Some(json!({"status": "inProgress", "note": [{"text": "secret", "@type": "work_notes"}, {"text": "hello", "@type": "comments"}]})),
            )
            .await;
        assert_eq!(after["status"], "Open");
        let notes = after["note"].as_array().unwrap();
        assert_eq!(notes.len(), 1, "work notes are not read back: {notes:?}");
        assert_eq!(notes[0]["@type"], "comments");
        assert_eq!(api.sim.stored_notes(id).len(), 2);
    }

    #[actix_web::test]
    async fn subscribers_receive_events_at_their_listener_paths() {
        let (url, store) = receiver();
        let api = Api::start(SimConfig { listener_auth: Some(("hub".into(), "pw".into())), ..config(TmfVersion::V4, TmfFlavour::Standard) });
        let (status, _, sub) = api.call("POST", "/hub", Some(json!({"callback": url, "query": "eventType=TroubleTicketStatusChangeEvent,TroubleTicketCreateEvent"}))).await;
        assert_eq!(status, 201);
        let t = api.create(ticket("INC-000001")).await;
        let id = t["id"].as_str().unwrap();
        api.sim.agent_update(id, json!({"status": "pending", "statusChangeReason": "Awaiting caller", "severity": "Minor"})).unwrap();
        let got = wait_for(&store, 2).await;
        assert_eq!(got.len(), 2, "attribute changes were not subscribed to");
        assert_eq!(got[0].0, "/hooks/listener/troubleTicketCreateEvent");
        assert_eq!(got[1].0, "/hooks/listener/troubleTicketStatusChangeEvent");
        assert!(got[1].1.as_deref().is_some_and(|a| a.starts_with("Basic ")));
        let ev = &got[1].2;
        assert_eq!(ev["eventType"], "TroubleTicketStatusChangeEvent");
        assert!(ev["timeOcurred"].is_string(), "v4 spells it timeOcurred");
        assert_eq!(ev["event"]["troubleTicket"]["status"], "pending");
        let (status, _, _) = api.call("DELETE", &format!("/hub/{}", sub["id"].as_str().unwrap()), None).await;
        assert_eq!(status, 204);
        api.sim.agent_update(id, json!({"status": "inProgress"})).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(store.lock().unwrap().len(), 2);
    }

    #[actix_web::test]
    async fn v5_and_servicenow_events_use_their_own_names() {
        let (url, store) = receiver();
        let api = Api::start(config(TmfVersion::V5, TmfFlavour::Servicenow));
        api.sim.add_subscription(&url, "");
        let t = api.create(json!({"@type": "TroubleTicket", "description": "d", "severity": "3", "ticketType": "Incident"})).await;
        api.sim.agent_update(t["id"].as_str().unwrap(), json!({"name": "renamed"})).unwrap();
        let got = wait_for(&store, 2).await;
        assert_eq!(got[1].0, "/hooks/listener/troubleTicketAttributeChangeEvent");
        assert_eq!(got[1].2["fieldPath"], "name");
        assert!(got[1].2["timeOccurred"].is_string());
        assert_eq!(got[1].2["@baseType"], "Event");
    }

    #[actix_web::test]
    async fn change_requests_are_created_listed_patched_and_edited_by_the_suppliers_change_manager() {
        let api = Api::start(config(TmfVersion::V4, TmfFlavour::Standard));
        let root = format!("{}{CHANGE_BASE_PATH}", api.sim.base_url().unwrap());
        let call = |method: &str, path: &str, body: Option<Value>| {
            let mut req = api.http.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{root}{path}")).basic_auth(USER, Some(PASSWORD));
            if let Some(b) = body {
                req = req.header("Content-Type", "application/merge-patch+json").body(b.to_string());
            }
            async move {
                let resp = req.send().await.unwrap();
                let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
                (status, headers, resp.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let (status, headers, made) =
            call("POST", "/changeRequest", Some(json!({"externalId": "CHG-000001", "description": "Upgrade", "plannedStartTime": "2026-03-14T22:00:00.000Z"}))).await;
        assert_eq!(status, 201, "{made}");
        assert_eq!(made["status"], "acknowledged", "the status of a change request created without one");
        assert_eq!(made["@type"], "ChangeRequest");
        let id = made["id"].as_str().unwrap().to_string();
        assert_eq!(made["href"].as_str(), Some(format!("{root}/changeRequest/{id}").as_str()));
        assert_eq!(headers["location"].to_str().unwrap(), made["href"].as_str().unwrap());
        for i in 2..=4 {
            call("POST", "/changeRequest", Some(json!({"externalId": format!("CHG-00000{i}"), "status": "draft", "description": "other"}))).await;
        }
        let (status, _, one) = call("GET", "/changeRequest?externalId=CHG-000001&fields=status", None).await;
        assert_eq!(status, 200);
        assert_eq!(one.as_array().unwrap().len(), 1);
        assert!(one[0].get("description").is_none() && one[0]["status"] == "acknowledged" && one[0]["id"] == id.as_str());
        let (_, _, none) = call("GET", "/changeRequest?externalId=CHG-999999", None).await;
        assert_eq!(none, json!([]));
        let (status, headers, page) = call("GET", "/changeRequest?status=draft&offset=1&limit=1", None).await;
        assert_eq!((status, headers["x-total-count"].to_str().unwrap()), (206, "3"));
        assert_eq!(page[0]["externalId"], "CHG-000003");
        let (_, _, later) = call("GET", &format!("/changeRequest?lastUpdate.gt={}", made["lastUpdate"].as_str().unwrap()), None).await;
        assert_eq!(later.as_array().unwrap().len(), 3);

        let path = format!("/changeRequest/{id}");
        let (status, _, after) = call("PATCH", &path, Some(json!({"status": "inProgress", "plannedStartTime": null, "id": "stolen", "note": [{"text": "started"}]}))).await;
        assert_eq!(status, 200, "{after}");
        assert_eq!((after["id"].as_str(), after["status"].as_str()), (Some(id.as_str()), Some("inProgress")));
        assert!(after.get("plannedStartTime").is_none(), "null removes");
        assert_eq!(after["statusChangeDate"], after["lastUpdate"]);
        // The whole journal sent back with a new entry: the held notes are not added again.
        let mut notes = after["note"].as_array().unwrap().clone();
        notes.push(json!({"text": "second"}));
        let (_, _, after2) = call("PATCH", &path, Some(json!({"note": notes}))).await;
        assert_eq!(after2["note"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect::<Vec<_>>(), ["started", "second"]);
        assert_eq!(after2["statusChangeDate"], after["statusChangeDate"]);
        let (_, _, same) = call("PATCH", &path, Some(json!({"status": "inProgress"}))).await;
        assert_eq!(same["lastUpdate"], after2["lastUpdate"], "a patch that changes nothing leaves lastUpdate alone");
        let (status, _, err) = call("PATCH", &path, Some(json!({"plannedEndTime": "tomorrow"}))).await;
        assert_eq!((status, err["code"].as_str()), (400, Some("24")));

        let edited = api.sim.agent_update_change(&id, json!({"status": "completed"})).unwrap();
        assert!(edited["lastUpdate"].as_str().unwrap() > after2["lastUpdate"].as_str().unwrap());
        assert_eq!(edited["statusChangeDate"], edited["lastUpdate"]);
        assert_eq!(api.sim.changes()[0]["status"], "completed");
        let via_http: Value =
            api.http.post(format!("{}/sim/changes/{id}/agent", api.sim.base_url().unwrap())).json(&json!({"status": "closed"})).send().await.unwrap().json().await.unwrap();
        assert_eq!(via_http["status"], "closed");
        let listed: Value = api.http.get(format!("{}/sim/changes", api.sim.base_url().unwrap())).send().await.unwrap().json().await.unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 4);
        assert!(api.sim.agent_update_change("nope", json!({})).is_err());

        let (status, _, err) = call("GET", "/changeRequest/nope", None).await;
        assert_eq!((status, err["code"].as_str(), err["message"].as_str()), (404, Some("60"), Some("ChangeRequest nope not found")));
        let (status, _, _) = call("PATCH", "/changeRequest/nope", Some(json!({"status": "x"}))).await;
        assert_eq!(status, 404);
        let anon = api.http.get(format!("{root}/changeRequest")).send().await.unwrap();
        assert_eq!(anon.status(), 401);
    }

    #[actix_web::test]
    async fn faults_apply_to_change_requests_as_to_tickets() {
        let api = Api::start(config(TmfVersion::V4, TmfFlavour::Standard));
        let root = format!("{}{CHANGE_BASE_PATH}", api.sim.base_url().unwrap());
        api.sim.push_fault(Fault::LoseResponseAfterCommit);
        let resp = api.http.post(format!("{root}/changeRequest")).basic_auth(USER, Some(PASSWORD)).json(&json!({"externalId": "CHG-000077"})).send().await.unwrap();
        assert_eq!(resp.status(), 500);
        assert_eq!(api.sim.changes().len(), 1, "committed");
        api.sim.push_fault(Fault::RateLimited { retry_after_secs: 2 });
        let resp = api.http.get(format!("{root}/changeRequest")).basic_auth(USER, Some(PASSWORD)).send().await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.headers()["retry-after"].to_str().unwrap()), (429, "2"));
        let log = api.sim.request_log();
        assert_eq!(log.iter().map(|l| (l.method.as_str(), l.status)).collect::<Vec<_>>(), [("POST", 500), ("GET", 429)]);
        assert!(log[0].path.starts_with(CHANGE_BASE_PATH));
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut v = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1]});
        merge_patch(&mut v, &json!({"a": "z", "c": {"f": null, "h": 1}, "l": [2, 3]}));
        assert_eq!(v, json!({"a": "z", "c": {"d": "e", "h": 1}, "l": [2, 3]}));
        assert_eq!(values_at(&json!({"x": [{"id": "1"}, {"id": 2}]}), "x.id"), ["1", "2"]);
    }

    #[actix_web::test]
    async fn faults_and_oauth() {
        let api = Api::start(SimConfig { token_ttl_secs: 1, ..config(TmfVersion::V4, TmfFlavour::Standard) });
        api.sim.push_fault(Fault::RateLimited { retry_after_secs: 3 });
        let (status, headers, err) = api.call("GET", "/troubleTicket", None).await;
        assert_eq!((status, headers["retry-after"].to_str().unwrap(), err["code"].as_str()), (429, "3", Some("53")));
        api.sim.push_fault(Fault::LoseResponseAfterCommit);
        let (status, _, _) = api.call("POST", "/troubleTicket", Some(ticket("INC-000077"))).await;
        assert_eq!(status, 500);
        assert_eq!(api.sim.tickets_by_external_id("INC-000077").len(), 1, "committed");
        let base = api.sim.base_url().unwrap();
        let tok: Value =
            api.http.post(format!("{base}/oauth/token")).basic_auth(USER, Some(PASSWORD)).form(&[("grant_type", "client_credentials")]).send().await.unwrap().json().await.unwrap();
        let token = tok["access_token"].as_str().unwrap();
        let ok = api.http.get(format!("{}/troubleTicket", api.root)).bearer_auth(token).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        let bad = api.http.post(format!("{base}/oauth/token")).basic_auth(USER, Some("wrong")).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
        assert_eq!(bad.status(), 401);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let expired = api.http.get(format!("{}/troubleTicket", api.root)).bearer_auth(token).send().await.unwrap();
        assert_eq!(expired.status(), 401);
        let log = api.sim.request_log();
        assert_eq!(log.iter().map(|l| l.status).collect::<Vec<_>>(), [429, 500, 200, 401]);
    }
}
