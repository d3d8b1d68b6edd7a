//! Stateful simulator of a Jira Cloud site with Jira Service Management, used by integration
//! tests and by demo mode.
//!
//! It owns one service project (`OPS`), its issues and comments, a JSM incident workflow
//! (statuses with categories, per-workflow transition ids, a resolve screen that requires a
//! resolution), priorities, resolutions, the JSM Impact/Urgency select fields and a text field
//! for the hub reference. Issues of type `Change` follow the JSM change workflow instead (Open,
//! Planning, Awaiting approval, Awaiting implementation, Implementing, Peer review, Completed,
//! Canceled, Declined; the done ones take a resolution on their screen) and carry the Change
//! type and Change risk select lists and the Planned start / Planned end date-time pickers. It reproduces the traps of the real APIs (see
//! `reference/suppliers/jira.md`):
//! - REST v3 renders descriptions and comments as ADF, REST v2 and every webhook as wiki markup;
//!   a v3 write of a plain string where ADF is due is refused;
//! - status cannot be edited, only transitioned; transition ids are not status ids; fields can
//!   only be set through a transition that has a screen; the resolve screen requires a
//!   resolution; leaving a done status clears the resolution;
//! - timestamps are rendered in the integration user's time zone with a colon-less offset
//!   (`-0800`), and JQL dates are read in that zone, to the minute;
//! - search is `/rest/api/3/search/jql` with a `nextPageToken` cursor and returns only ids
//!   unless `fields` is given; the old `/search` answers 410;
//! - errors are `{"errorMessages":[],"errors":{}}` (JSM: `{"errorMessage","i18nErrorMessage"}`),
//!   a 404 and a permission failure look the same, a bad token gets a 401 with a text body;
//! - injectable faults: 429 with `Retry-After` and `X-RateLimit-*` (reset as an ISO timestamp),
//!   500, 503 with `Retry-After`, slow answers, a response lost after the commit;
//! - internal comments: `jsdPublic:false`, from the JSM request API (`public:false`) or the
//!   platform API's `sd.public.comment` property.
//!
//! The site's vocabulary is served as the real API does, from the simulator's state: `myself`,
//! `mypermissions` (a permission can be taken from the integration user, and the writes it
//! guards are then refused), `project/{key}/statuses` per issue type with categories,
//! `priority`, `resolution` and `field`. A status can be given a site's own id
//! ([`JiraSim::renumber_status`]) and a site-only status added ([`JiraSim::add_status`]).
//!
//! Webhooks: after every committed change (including the hub's own writes, which the hub must
//! recognise as echoes) the site POSTs `jira:issue_created` / `jira:issue_updated` (with a
//! changelog) / `comment_created` (with a summary of the issue) in the REST v2 representation,
//! with `X-Atlassian-Webhook-Identifier` stable across retries and, when a secret is set,
//! `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`. Deliveries leave through one
//! ordered queue; duplicates, reordering and losses happen only when asked for.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::outbox::{Notification, Outbox};

use crate::adapters::jira::text::{text_to_adf, text_to_wiki, wiki_to_text};

const WEBHOOK_ATTEMPTS: u32 = 4;
const HUB_ACCOUNT: &str = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077";
/// The default agent: Atlassian hides this user's e-mail address, as privacy settings often do.
pub const AGENT_ACCOUNT: &str = "5b10ac8d82e05b22cc7d4ef5";
const CUSTOMER_ACCOUNT: &str = "qm:a713c8ea-1075-4e30-9d96-891a7d181739:5ad6d69abfa3980ce712caae";
pub const REFERENCE_FIELD: &str = "customfield_10100";
pub const IMPACT_FIELD: &str = "customfield_10004";
pub const URGENCY_FIELD: &str = "customfield_10005";
const REQUEST_TYPE_FIELD: &str = "customfield_10010";
/// Change issues' select lists ("Change type", "Change risk") and date-time pickers.
pub const CHANGE_TYPE_FIELD: &str = "customfield_10035";
pub const CHANGE_RISK_FIELD: &str = "customfield_10036";
pub const PLANNED_START_FIELD: &str = "customfield_10037";
pub const PLANNED_END_FIELD: &str = "customfield_10038";
const MAX_PAGE: usize = 100;

// ---- Public API ------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Basic auth: the account's e-mail address and its API token.
    pub email: String,
    pub api_token: String,
    pub site_name: String,
    pub project_key: String,
    pub service_desk_id: String,
    pub request_type_id: String,
    /// The integration user's time zone: timestamps are rendered and JQL dates read in it.
    pub time_zone: chrono_tz::Tz,
    pub webhook: Option<WebhookTarget>,
    /// Added to the site's own "now" (a supplier clock that is off).
    pub clock_skew_secs: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            email: "hub.integration@example.org".into(),
            api_token: "sim-api-token".into(),
            site_name: "sim-site".into(),
            project_key: "OPS".into(),
            service_desk_id: "10".into(),
            request_type_id: "25".into(),
            time_zone: chrono_tz::America::Los_Angeles,
            webhook: None,
            clock_skew_secs: 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct WebhookTarget {
    pub url: String,
    /// Without a secret the deliveries are unsigned (a webhook registered without one).
    pub secret: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Fault {
    RateLimited { retry_after_secs: u64 },
    ServerError,
    ServiceUnavailable { retry_after_secs: u64 },
    Timeout { delay: Duration },
    LoseResponseAfterCommit,
}

super::chance_faults!(Fault);

/// What happens to the next webhook deliveries.
pub type WebhookBehaviour = super::outbox::Behaviour;

#[derive(Clone, Debug, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    /// Path plus query string, as sent.
    pub path: String,
    pub status: u16,
    /// The authenticated account's e-mail, `None` when authentication failed.
    pub user: Option<String>,
    /// The JSON body sent, if any.
    pub body: Option<Value>,
    /// When the request arrived (the site's clock, before any injected delay).
    pub at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("Issue does not exist or you do not have permission to see it.")]
    NotFound,
    #[error("{}", describe(.messages, .errors))]
    Invalid { messages: Vec<String>, errors: BTreeMap<String, String> },
    /// The user lacks the permission the write needs.
    #[error("{0}")]
    Forbidden(String),
}

fn describe(messages: &[String], errors: &BTreeMap<String, String>) -> String {
    messages.iter().cloned().chain(errors.iter().map(|(k, v)| format!("{k}: {v}"))).collect::<Vec<_>>().join("; ")
}

impl SimError {
    fn message(m: impl Into<String>) -> Self {
        SimError::Invalid { messages: vec![m.into()], errors: BTreeMap::new() }
    }

    fn field(f: &str, m: impl Into<String>) -> Self {
        SimError::Invalid { messages: vec![], errors: BTreeMap::from([(f.to_string(), m.into())]) }
    }

    fn response(&self) -> HttpResponse {
        match self {
            SimError::NotFound => jira_error(StatusCode::NOT_FOUND, &[&self.to_string()], &BTreeMap::new()),
            SimError::Invalid { messages, errors } => {
                let m: Vec<&str> = messages.iter().map(String::as_str).collect();
                jira_error(StatusCode::BAD_REQUEST, &m, errors)
            }
            SimError::Forbidden(m) => jira_error(StatusCode::FORBIDDEN, &[m], &BTreeMap::new()),
        }
    }

    /// The JSM request API has its own error shape.
    fn jsm_response(&self) -> HttpResponse {
        let (status, key) = match self {
            SimError::NotFound => (StatusCode::NOT_FOUND, "sd.request.error.notfound"),
            SimError::Invalid { .. } => (StatusCode::BAD_REQUEST, "sd.validation.request.field.required"),
            SimError::Forbidden(_) => (StatusCode::FORBIDDEN, "sd.request.comment.error.permission"),
        };
        HttpResponse::build(status)
            .content_type("application/json;charset=UTF-8")
            .body(json!({"errorMessage": self.to_string(), "i18nErrorMessage": {"i18nKey": key, "parameters": []}}).to_string())
    }
}

fn jira_error(status: StatusCode, messages: &[&str], errors: &BTreeMap<String, String>) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json;charset=UTF-8").body(json!({"errorMessages": messages, "errors": errors}).to_string())
}

// ---- The site's catalogue --------------------------------------------------------------------

#[derive(Clone, Debug)]
struct StatusDef {
    id: String,
    name: String,
    category: &'static str,
}

#[derive(Clone, Debug)]
struct TransitionDef {
    id: String,
    name: String,
    to: String,
    /// Empty: a global transition, available from every other status.
    from: Vec<String>,
    has_screen: bool,
    requires_resolution: bool,
    /// The event Jira fires for it (`issue_generic` unless the workflow says otherwise).
    event: &'static str,
}

fn category(key: &str) -> Value {
    let (id, name, colour) = match key {
        "new" => (2, "To Do", "blue-gray"),
        "indeterminate" => (4, "In Progress", "yellow"),
        "done" => (3, "Done", "green"),
        _ => (1, "No Category", "medium-gray"),
    };
    json!({"id": id, "key": key, "colorName": colour, "name": name})
}

fn default_statuses() -> Vec<StatusDef> {
    [
        ("10010", "Waiting for support", "new"),
        ("10011", "Work in progress", "indeterminate"),
        ("10012", "Waiting for customer", "indeterminate"),
        ("10013", "Pending", "indeterminate"),
        ("10014", "Escalated", "indeterminate"),
        ("10015", "Resolved", "done"),
        ("10016", "Closed", "done"),
        ("10017", "Canceled", "done"),
        // The change workflow.
        ("10100", "Open", "new"),
        ("10101", "Planning", "indeterminate"),
        ("10102", "Awaiting approval", "indeterminate"),
        ("10103", "Awaiting implementation", "indeterminate"),
        ("10104", "Implementing", "indeterminate"),
        ("10105", "Peer review", "indeterminate"),
        ("10106", "Completed", "done"),
        ("10107", "Canceled", "done"),
        ("10108", "Declined", "done"),
    ]
    .into_iter()
    .map(|(id, name, category)| StatusDef { id: id.into(), name: name.into(), category })
    .collect()
}

impl TransitionDef {
    /// A transition to `to` from the `from` statuses; one with a screen asks for a resolution.
    fn new(id: &str, name: &str, to: &str, from: &[&str], has_screen: bool, event: &'static str) -> TransitionDef {
        TransitionDef { id: id.into(), name: name.into(), to: to.into(), from: from.iter().map(|s| s.to_string()).collect(), has_screen, requires_resolution: has_screen, event }
    }
}

fn default_transitions() -> Vec<TransitionDef> {
    let open = ["10010", "10011", "10012", "10013", "10014"];
    let t = TransitionDef::new;
    vec![
        t("11", "Start work", "10011", &["10010", "10012", "10013", "10014"], false, "issue_work_started"),
        t("21", "Respond to customer", "10012", &["10010", "10011", "10013", "10014"], false, "issue_generic"),
        t("31", "Mark as pending", "10013", &["10010", "10011", "10012", "10014"], false, "issue_generic"),
        t("41", "Escalate", "10014", &["10010", "10011"], false, "issue_generic"),
        t("51", "Resolve this issue", "10015", &open, true, "issue_resolved"),
        t("61", "Cancel request", "10017", &open, true, "issue_generic"),
        t("71", "Close", "10016", &["10015"], false, "issue_closed"),
        t("81", "Reopen", "10011", &["10015"], false, "issue_reopened"),
        t("91", "Back to support", "10010", &["10011", "10012", "10013", "10014"], false, "issue_generic"),
    ]
}

/// The JSM change workflow: a standard change may go from Open straight to Awaiting
/// implementation; the done statuses take a resolution on their screen.
fn change_transitions() -> Vec<TransitionDef> {
    let t = TransitionDef::new;
    vec![
        t("111", "Plan", "10101", &["10100", "10102", "10103", "10108"], false, "issue_generic"),
        t("121", "Request approval", "10102", &["10100", "10101"], false, "issue_generic"),
        t("131", "Approve", "10103", &["10100", "10101", "10102"], false, "issue_generic"),
        t("141", "Decline", "10108", &["10102"], true, "issue_generic"),
        t("151", "Start implementation", "10104", &["10103"], false, "issue_work_started"),
        t("161", "Request review", "10105", &["10104"], false, "issue_generic"),
        t("171", "Complete", "10106", &["10104", "10105"], true, "issue_resolved"),
        t("181", "Cancel", "10107", &["10100", "10101", "10102", "10103", "10104"], true, "issue_generic"),
    ]
}

/// Project permissions `mypermissions` knows: (key, id, name).
const PERMISSIONS: &[(&str, &str, &str)] = &[
    ("BROWSE_PROJECTS", "10", "Browse Projects"),
    ("CREATE_ISSUES", "11", "Create Issues"),
    ("EDIT_ISSUES", "12", "Edit Issues"),
    ("TRANSITION_ISSUES", "46", "Transition Issues"),
    ("ADD_COMMENTS", "15", "Add Comments"),
    ("CREATE_ATTACHMENTS", "19", "Create Attachments"),
    ("ASSIGN_ISSUES", "13", "Assign Issues"),
    ("SERVICEDESK_AGENT", "10200", "Service Desk Agent"),
];

/// `GET /rest/api/3/field`: the system fields the hub reads and the site's custom fields.
fn fields_list() -> Vec<Value> {
    let system = [
        ("summary", "Summary", "string"),
        ("description", "Description", "string"),
        ("status", "Status", "status"),
        ("priority", "Priority", "priority"),
        ("resolution", "Resolution", "resolution"),
        ("labels", "Labels", "array"),
    ];
    let custom = [
        (REFERENCE_FIELD, "SIAM reference", "string", "textfield"),
        (IMPACT_FIELD, "Impact", "option", "select"),
        (URGENCY_FIELD, "Urgency", "option", "select"),
        (REQUEST_TYPE_FIELD, "Request Type", "sd-customerrequesttype", "vp-origin"),
        (CHANGE_TYPE_FIELD, "Change type", "option", "select"),
        (CHANGE_RISK_FIELD, "Change risk", "option", "select"),
        (PLANNED_START_FIELD, "Planned start", "datetime", "datetime"),
        (PLANNED_END_FIELD, "Planned end", "datetime", "datetime"),
    ];
    let mut out: Vec<Value> = system
        .iter()
        .map(|(id, name, kind)| json!({"id": id, "key": id, "name": name, "custom": false, "orderable": true, "navigable": true, "searchable": true, "clauseNames": [id], "schema": {"type": kind, "system": id}}))
        .collect();
    out.extend(custom.iter().map(|(id, name, kind, plugin)| {
        let number = id.trim_start_matches("customfield_");
        json!({"id": id, "key": id, "name": name, "untranslatedName": name, "custom": true, "orderable": true, "navigable": true, "searchable": true,
               "clauseNames": [format!("cf[{number}]"), name],
               "schema": {"type": kind, "custom": format!("com.atlassian.jira.plugin.system.customfieldtypes:{plugin}"), "customId": number.parse::<u64>().unwrap_or(0)}})
    }));
    out
}

const PRIORITIES: &[(&str, &str)] = &[("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest")];
const RESOLUTIONS: &[(&str, &str)] = &[
    ("10000", "Done"),
    ("10001", "Won't Do"),
    ("10002", "Duplicate"),
    ("10003", "Cannot Reproduce"),
    ("10004", "Declined"),
    ("10005", "Won't Fix"),
    ("10006", "Fixed"),
    ("10007", "Completed with issues"),
    ("10008", "Failed"),
    ("10009", "Backed out"),
];
const IMPACT_OPTIONS: &[(&str, &str)] = &[("10020", "Extensive / Widespread"), ("10021", "Significant / Large"), ("10022", "Moderate / Limited"), ("10023", "Minor / Localized")];
const URGENCY_OPTIONS: &[(&str, &str)] = &[("10030", "Critical"), ("10031", "High"), ("10032", "Medium"), ("10033", "Low"), ("10034", "Lowest")];
const CHANGE_TYPE_OPTIONS: &[(&str, &str)] = &[("10050", "Standard"), ("10051", "Normal"), ("10052", "Emergency")];
const CHANGE_RISK_OPTIONS: &[(&str, &str)] = &[("10060", "Low"), ("10061", "Medium"), ("10062", "High"), ("10063", "Critical")];

/// The issue types of the service project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IssueType {
    Incident,
    Change,
}

impl IssueType {
    /// (id, name, description, icon)
    fn describe(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            IssueType::Incident => ("10020", "Incident", "For system outages or incidents.", "incident"),
            IssueType::Change => ("10021", "Change", "For changes to IT systems and services.", "change"),
        }
    }

    fn named(name_or_id: &str) -> Option<IssueType> {
        [IssueType::Incident, IssueType::Change].into_iter().find(|t| {
            let (id, name, _, _) = t.describe();
            id == name_or_id || name.eq_ignore_ascii_case(name_or_id)
        })
    }
}

/// Accounts of the site: (accountId, display name, e-mail when visible, account type).
fn account(id: &str) -> (String, Option<String>, &'static str) {
    match id {
        HUB_ACCOUNT => ("SIAM Hub Integration".into(), None, "atlassian"),
        AGENT_ACCOUNT => ("Alana Grant".into(), None, "atlassian"),
        CUSTOMER_ACCOUNT => ("J Smith".into(), Some("j.smith@example.org".into()), "customer"),
        other => (other.to_string(), None, "atlassian"),
    }
}

// ---- Stored issues ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Comment {
    id: u64,
    author: String,
    body: Value,
    public: bool,
    created: DateTime<Utc>,
}

#[derive(Clone, Debug)]
struct Issue {
    id: u64,
    key: String,
    issue_type: IssueType,
    summary: String,
    /// ADF, as Jira stores rich text.
    description: Option<Value>,
    status: String,
    resolution: Option<String>,
    resolution_date: Option<DateTime<Utc>>,
    priority: Option<String>,
    assignee: Option<String>,
    reporter: String,
    labels: Vec<String>,
    /// Custom field values as v3 renders them (text: string; select: `{value, id}`).
    custom: BTreeMap<String, Value>,
    request_type: Option<String>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    comments: Vec<Comment>,
    attachments: Vec<Attachment>,
}

/// A file attached to an issue.
#[derive(Clone, Debug)]
struct Attachment {
    id: u64,
    filename: String,
    mime: String,
    data: Vec<u8>,
    author: String,
    created: DateTime<Utc>,
}

/// One changelog item as webhooks carry it.
#[derive(Clone, Debug)]
struct Change {
    field: String,
    fieldtype: &'static str,
    field_id: String,
    from: Option<String>,
    from_string: Option<String>,
    to: Option<String>,
    to_string: Option<String>,
}

struct State {
    config: SimConfig,
    base_url: Option<String>,
    statuses: Vec<StatusDef>,
    transitions: Vec<TransitionDef>,
    change_transitions: Vec<TransitionDef>,
    issues: Vec<Issue>,
    next_issue: u64,
    next_comment: u64,
    next_changelog: u64,
    faults: VecDeque<Fault>,
    chance: super::Chance,
    latency: Duration,
    log: Vec<LoggedRequest>,
    outbox: Outbox,
    /// Project permissions the integration user lacks (`ADD_COMMENTS`, `SERVICEDESK_AGENT`...).
    denied: std::collections::BTreeSet<String>,
}

#[derive(Clone)]
pub struct JiraSim {
    inner: Arc<Mutex<State>>,
}

impl JiraSim {
    pub fn new(config: SimConfig) -> Self {
        JiraSim {
            inner: Arc::new(Mutex::new(State {
                config,
                base_url: None,
                statuses: default_statuses(),
                transitions: default_transitions(),
                change_transitions: change_transitions(),
                issues: Vec::new(),
                next_issue: 10_001,
                next_comment: 20_001,
                next_changelog: 30_001,
                faults: VecDeque::new(),
                chance: super::Chance::default(),
                latency: Duration::ZERO,
                log: Vec::new(),
                outbox: Outbox::new("jira", WEBHOOK_ATTEMPTS),
                denied: Default::default(),
            })),
        }
    }

    /// Starts the HTTP server on `listener` and spawns it on the current tokio runtime.
    pub fn start(&self, listener: std::net::TcpListener) -> std::io::Result<ServerHandle> {
        let sim = self.clone();
        let running = super::serve("JiraSim", listener, move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::new(sim.clone()))
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/sim/issues", web::get().to(sim_issues))
                .route("/sim/issues/{key}/transition", web::post().to(sim_transition))
                .route("/sim/issues/{key}/comment", web::post().to(sim_comment))
                .route("/sim/issues/{key}/edit", web::post().to(sim_edit))
                .route("/sim/changes", web::get().to(sim_changes))
                .route("/sim/changes/{key}/transition", web::post().to(sim_change_transition))
                .route("/sim/changes/{key}/comment", web::post().to(sim_comment))
                .route("/sim/changes/{key}/edit", web::post().to(sim_change_edit))
                .route("/sim/faults", web::post().to(sim_faults))
                .route("/sim/requests", web::get().to(sim_requests))
                .route("/rest/{tail:.*}", web::route().to(rest_api));
        })?;
        let mut st = self.lock();
        st.base_url = Some(running.base_url);
        st.outbox.runtime = Some(running.runtime);
        Ok(running.handle)
    }

    pub fn base_url(&self) -> Option<String> {
        self.lock().base_url.clone()
    }

    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        self.lock().config.webhook = target;
    }

    pub fn set_webhook_behaviour(&self, b: WebhookBehaviour) {
        self.lock().outbox.behaviour = b;
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// Answers a share of the API calls with faults, by seeded chance (after queued faults).
    pub fn set_chance(&self, spec: super::ChanceSpec) {
        self.lock().chance = super::Chance::new(spec);
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// All incident issues (every issue but changes) as REST v3 renders them, in creation order.
    pub fn issues(&self) -> Vec<Value> {
        let st = self.lock();
        st.issues.iter().filter(|i| i.issue_type != IssueType::Change).map(|i| st.render_issue(i, 3, None)).collect()
    }

    /// All change issues as `GET /rest/api/3/issue` renders them, in creation order.
    pub fn changes(&self) -> Vec<Value> {
        let st = self.lock();
        st.issues.iter().filter(|i| i.issue_type == IssueType::Change).map(|i| st.render_issue(i, 3, None)).collect()
    }

    /// The supplier's change manager moves a change (by id or key) to the status named
    /// `to_status` through the workflow transition reaching it, choosing the usual resolution
    /// on a done status's screen (`Done`, `Won't Do` for Canceled, `Declined`). Returns the issue.
    pub fn agent_transition_change(&self, key: &str, to_status: &str) -> Result<Value, SimError> {
        let resolution = match to_status.to_ascii_lowercase().as_str() {
            "completed" => Some("Done"),
            "canceled" | "cancelled" => Some("Won't Do"),
            "declined" => Some("Declined"),
            _ => None,
        };
        self.agent_resolve_change(key, to_status, resolution)
    }

    /// As [`JiraSim::agent_transition_change`], with the resolution chosen on the screen.
    pub fn agent_resolve_change(&self, key: &str, to_status: &str, resolution: Option<&str>) -> Result<Value, SimError> {
        let mut st = self.lock();
        let i = st.find_change(key)?;
        let to = st.statuses.iter().filter(|s| s.name.eq_ignore_ascii_case(to_status)).map(|s| s.id.clone()).collect::<Vec<_>>();
        let t = st
            .available(&st.issues[i])
            .into_iter()
            .find(|t| to.contains(&t.to))
            .map(|t| (t.id.clone(), t.has_screen))
            .ok_or_else(|| SimError::message(format!("No transition reaches '{to_status}' from this status")))?;
        let fields = resolution.filter(|_| t.1).map(|r| json!({"resolution": {"name": r}}));
        st.transition(i, &t.0, fields.as_ref().and_then(Value::as_object), None, AGENT_ACCOUNT)?;
        Ok(st.render_issue(&st.issues[i], 3, None))
    }

    /// The change manager edits a change's fields, given as REST v2 takes them (`description`
    /// as wiki text, selects as `{"value"}`, date-times as `2030-05-20T22:00:00.000+0000`).
    pub fn agent_edit_change(&self, key: &str, fields: Value) -> Result<Value, SimError> {
        let Value::Object(fields) = fields else { return Err(SimError::message("expected a JSON object of fields")) };
        let mut st = self.lock();
        let i = st.find_change(key)?;
        st.edit(i, &fields, None, 2, AGENT_ACCOUNT)?;
        Ok(st.render_issue(&st.issues[i], 3, None))
    }

    /// One issue (by id or key) as REST v3 renders it.
    pub fn issue(&self, id_or_key: &str) -> Option<Value> {
        let st = self.lock();
        st.find(id_or_key).map(|i| st.render_issue(&st.issues[i], 3, None))
    }

    /// The issues carrying the hub reference label `siam-<reference>`.
    pub fn issues_by_reference(&self, reference: &str) -> Vec<Value> {
        let label = format!("siam-{reference}");
        let st = self.lock();
        st.issues.iter().filter(|i| i.labels.contains(&label)).map(|i| st.render_issue(i, 3, None)).collect()
    }

    /// Adds a status to the workflow with a global transition (`Set <name>`) into it: a site's
    /// own status the hub's profile does not know.
    pub fn add_status(&self, id: &str, name: &str, category_key: &'static str) {
        let mut st = self.lock();
        st.statuses.push(StatusDef { id: id.into(), name: name.into(), category: category_key });
        let tid = format!("{}", 1000 + st.transitions.len());
        st.transitions.push(TransitionDef {
            id: tid,
            name: format!("Set {name}"),
            to: id.into(),
            from: vec![],
            has_screen: category_key == "done",
            requires_resolution: category_key == "done",
            event: "issue_generic",
        });
    }

    /// Gives a status this site's own id (`10011` "Work in progress" becoming `10018`, say):
    /// ids are per site, so a real site's differ from the reference profile's.
    pub fn renumber_status(&self, from: &str, to: &str) {
        let mut st = self.lock();
        for s in st.statuses.iter_mut().filter(|s| s.id == from) {
            s.id = to.to_string();
        }
        let st = &mut *st;
        for t in st.transitions.iter_mut().chain(st.change_transitions.iter_mut()) {
            if t.to == from {
                t.to = to.to_string();
            }
            for f in t.from.iter_mut().filter(|f| *f == from) {
                *f = to.to_string();
            }
        }
        for i in st.issues.iter_mut().filter(|i| i.status == from) {
            i.status = to.to_string();
        }
    }

    /// Takes a project permission from the integration user (`ADD_COMMENTS`,
    /// `CREATE_ATTACHMENTS`, `SERVICEDESK_AGENT` for JSM internal comments...): `mypermissions`
    /// says so and the writes it guards are refused.
    pub fn deny_permission(&self, key: &str) {
        self.lock().denied.insert(key.to_string());
    }

    /// An agent clicks the transition named `transition` (e.g. "Start work"), choosing
    /// `resolution` on the screen when it has one. Returns the issue (v3).
    pub fn agent_transition(&self, id_or_key: &str, transition: &str, resolution: Option<&str>) -> Result<Value, SimError> {
        let mut st = self.lock();
        let i = st.find(id_or_key).ok_or(SimError::NotFound)?;
        let t = st.transitions.iter().find(|t| t.name.eq_ignore_ascii_case(transition)).ok_or_else(|| SimError::message(format!("No transition named '{transition}'")))?.id.clone();
        let fields = resolution.map(|r| json!({"resolution": {"name": r}}));
        st.transition(i, &t, fields.as_ref().and_then(Value::as_object), None, AGENT_ACCOUNT)?;
        Ok(st.render_issue(&st.issues[i], 3, None))
    }

    /// An agent adds a comment: `public` (shared with the customer) or internal.
    pub fn agent_comment(&self, id_or_key: &str, text: &str, public: bool) -> Result<Value, SimError> {
        let mut st = self.lock();
        let i = st.find(id_or_key).ok_or(SimError::NotFound)?;
        let c = st.add_comment(i, text_to_adf(text), public, AGENT_ACCOUNT);
        Ok(st.render_comment(&st.issues[i], &c, 3))
    }

    /// An agent edits fields, given as REST v2 would take them (`description` as wiki text,
    /// `priority` as `{"name"}` or `{"id"}`, selects as `{"value"}`, `assignee` as
    /// `{"accountId"}` or null).
    /// An agent attaches a file to the issue in the Jira UI.
    pub fn agent_attach(&self, id_or_key: &str, filename: &str, mime: &str, data: Vec<u8>) -> Result<Value, SimError> {
        let mut st = self.lock();
        let i = st.find(id_or_key).ok_or(SimError::NotFound)?;
        let a = st.attach(i, filename, mime, data, AGENT_ACCOUNT);
        Ok(st.render_attachment(&a, 3))
    }

    /// Files attached to an issue: (file name, content type, bytes), oldest first.
    pub fn attachments(&self, id_or_key: &str) -> Vec<(String, String, Vec<u8>)> {
        let st = self.lock();
        st.find(id_or_key).map(|i| st.issues[i].attachments.iter().map(|a| (a.filename.clone(), a.mime.clone(), a.data.clone())).collect()).unwrap_or_default()
    }

    pub fn agent_edit(&self, id_or_key: &str, fields: Value) -> Result<Value, SimError> {
        let Value::Object(fields) = fields else { return Err(SimError::message("expected a JSON object of fields")) };
        let mut st = self.lock();
        let i = st.find(id_or_key).ok_or(SimError::NotFound)?;
        st.edit(i, &fields, None, 2, AGENT_ACCOUNT)?;
        Ok(st.render_issue(&st.issues[i], 3, None))
    }

    /// A poisoned lock only means a panic elsewhere; the data is still usable for a simulator.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The account (by e-mail) whose basic-auth credentials the request carries.
    fn authenticate(&self, req: &HttpRequest) -> Option<String> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (user, token) = decoded.split_once(':')?;
        let st = self.lock();
        (user == st.config.email && token == st.config.api_token).then(|| user.to_string())
    }
}

/// `X-Hub-Signature` value: `sha256=` and the hex HMAC-SHA256 of the raw body.
pub fn sign_webhook(secret: &str, body: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body.as_bytes());
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC accepts keys of any length, so this arm is unreachable in practice.
        Err(_) => String::new(),
    }
}

// ---- Rendering -------------------------------------------------------------------------------

/// Jira's ADF -> wiki conversion, as REST v2 and webhooks show rich text: text escaped so it
/// reads back literally, marks and blocks as wiki markup.
fn adf_to_wiki(doc: &Value) -> String {
    fn kids(n: &Value) -> &[Value] {
        n.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
    }
    fn inline(nodes: &[Value]) -> String {
        nodes
            .iter()
            .map(|n| match n.get("type").and_then(Value::as_str).unwrap_or("") {
                "text" => {
                    let mut s = text_to_wiki(n.get("text").and_then(Value::as_str).unwrap_or(""));
                    for m in n.get("marks").and_then(Value::as_array).into_iter().flatten() {
                        s = match m.get("type").and_then(Value::as_str).unwrap_or("") {
                            "strong" => format!("*{s}*"),
                            "em" => format!("_{s}_"),
                            "code" => format!("{{{{{s}}}}}"),
                            "strike" => format!("-{s}-"),
                            "link" => format!("[{s}|{}]", m.pointer("/attrs/href").and_then(Value::as_str).unwrap_or("")),
                            _ => s,
                        };
                    }
                    s
                }
                "hardBreak" => "\n".into(),
                "mention" => format!("[~accountid:{}]", n.pointer("/attrs/id").and_then(Value::as_str).unwrap_or("")),
                "inlineCard" => format!("[{}]", n.pointer("/attrs/url").and_then(Value::as_str).unwrap_or("")),
                _ => n.pointer("/attrs/text").and_then(Value::as_str).map(text_to_wiki).unwrap_or_else(|| inline(kids(n))),
            })
            .collect()
    }
    fn block(n: &Value, depth: usize) -> String {
        match n.get("type").and_then(Value::as_str).unwrap_or("") {
            "paragraph" => inline(kids(n)),
            "heading" => format!("h{}. {}", n.pointer("/attrs/level").and_then(Value::as_u64).unwrap_or(1), inline(kids(n))),
            "codeBlock" => {
                let body: String = kids(n).iter().filter_map(|t| t.get("text").and_then(Value::as_str)).collect();
                match n.pointer("/attrs/language").and_then(Value::as_str) {
                    Some(l) => format!("{{code:{l}}}\n{body}\n{{code}}"),
                    None => format!("{{code}}\n{body}\n{{code}}"),
                }
            }
            t @ ("bulletList" | "orderedList") => {
                let marker = if t == "bulletList" { "*" } else { "#" }.repeat(depth + 1);
                kids(n)
                    .iter()
                    .map(|item| {
                        kids(item)
                            .iter()
                            .map(|b| match b.get("type").and_then(Value::as_str) {
                                Some("bulletList" | "orderedList") => block(b, depth + 1),
                                _ => format!("{marker} {}", block(b, depth)),
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            "rule" => "----".into(),
            "blockquote" => format!("{{quote}}{}{{quote}}", kids(n).iter().map(|b| block(b, depth)).collect::<Vec<_>>().join("\n\n")),
            _ if kids(n).iter().any(|k| k.get("content").is_some()) => kids(n).iter().map(|b| block(b, depth)).collect::<Vec<_>>().join("\n\n"),
            _ => inline(kids(n)),
        }
    }
    kids(doc).iter().map(|b| block(b, 0)).collect::<Vec<_>>().join("\n\n")
}

fn jsm_date(t: &DateTime<Utc>, tz: &chrono_tz::Tz) -> Value {
    let local = t.with_timezone(tz);
    json!({
        "iso8601": local.format("%Y-%m-%dT%H:%M:%S%z").to_string(),
        "jira": local.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
        "friendly": local.format("%d/%b/%y %-I:%M %p").to_string(),
        "epochMillis": t.timestamp_millis(),
    })
}

fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

impl State {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        let skewed = chrono::Duration::try_seconds(self.config.clock_skew_secs).and_then(|s| now.checked_add_signed(s)).unwrap_or(now);
        truncate_ms(skewed)
    }

    /// The next update time of an issue: never equal to or before the last one, so `updated`
    /// (the only order Jira gives) orders every change.
    fn tick(&self, last: DateTime<Utc>) -> DateTime<Utc> {
        let now = self.now();
        if now <= last {
            last + chrono::Duration::milliseconds(1)
        } else {
            now
        }
    }

    fn base(&self) -> String {
        self.base_url.clone().unwrap_or_else(|| format!("https://{}.atlassian.net", self.config.site_name))
    }

    fn time(&self, t: &DateTime<Utc>) -> String {
        crate::adapters::jira::mapping::jira_time(t, &self.config.time_zone)
    }

    fn find(&self, id_or_key: &str) -> Option<usize> {
        self.issues.iter().position(|i| i.id.to_string() == id_or_key || i.key.eq_ignore_ascii_case(id_or_key))
    }

    fn find_change(&self, id_or_key: &str) -> Result<usize, SimError> {
        self.find(id_or_key).filter(|i| self.issues[*i].issue_type == IssueType::Change).ok_or(SimError::NotFound)
    }

    fn status_def(&self, id: &str) -> Option<&StatusDef> {
        self.statuses.iter().find(|s| s.id == id)
    }

    fn hub_account(&self, email: &str) -> &'static str {
        if email == self.config.email {
            HUB_ACCOUNT
        } else {
            AGENT_ACCOUNT
        }
    }

    fn render_user(&self, id: &str, v: u8) -> Value {
        let (name, email, kind) = account(id);
        let mut u = json!({
            "self": format!("{}/rest/api/{v}/user?accountId={id}", self.base()),
            "accountId": id,
            "avatarUrls": {"48x48": format!("https://avatar-management.example/{id}/48")},
            "displayName": name,
            "active": true,
            "timeZone": self.config.time_zone.name(),
            "accountType": kind,
        });
        if let Some(e) = email {
            u["emailAddress"] = json!(e);
        }
        u
    }

    fn render_status(&self, id: &str, v: u8) -> Value {
        let (name, cat) = self.status_def(id).map(|s| (s.name.clone(), s.category)).unwrap_or_else(|| (id.to_string(), "undefined"));
        let mut c = category(cat);
        c["self"] = json!(format!("{}/rest/api/{v}/statuscategory/{}", self.base(), c["id"]));
        json!({
            "self": format!("{}/rest/api/{v}/status/{id}", self.base()),
            "description": "",
            "iconUrl": format!("{}/images/icons/statuses/generic.png", self.base()),
            "name": name,
            "id": id,
            "statusCategory": c,
        })
    }

    fn render_priority(&self, id: &str, v: u8) -> Value {
        let name = PRIORITIES.iter().find(|(p, _)| *p == id).map(|(_, n)| *n).unwrap_or(id);
        json!({"self": format!("{}/rest/api/{v}/priority/{id}", self.base()), "iconUrl": format!("{}/images/icons/priorities/{}.svg", self.base(), name.to_lowercase()), "name": name, "id": id})
    }

    fn render_resolution(&self, name: &str, v: u8) -> Value {
        let id = RESOLUTIONS.iter().find(|(_, n)| *n == name).map(|(i, _)| *i).unwrap_or("0");
        json!({"self": format!("{}/rest/api/{v}/resolution/{id}", self.base()), "id": id, "description": "", "name": name})
    }

    fn rich(&self, adf: &Value, v: u8) -> Value {
        if v == 3 {
            adf.clone()
        } else {
            json!(adf_to_wiki(adf))
        }
    }

    fn render_comment(&self, issue: &Issue, c: &Comment, v: u8) -> Value {
        json!({
            "self": format!("{}/rest/api/{v}/issue/{}/comment/{}", self.base(), issue.id, c.id),
            "id": c.id.to_string(),
            "author": self.render_user(&c.author, v),
            "body": self.rich(&c.body, v),
            "updateAuthor": self.render_user(&c.author, v),
            "created": self.time(&c.created),
            "updated": self.time(&c.created),
            "jsdPublic": c.public,
        })
    }

    /// An issue as REST v2 or v3 renders it; `only` keeps just the named fields.
    fn render_issue(&self, issue: &Issue, v: u8, only: Option<&[String]>) -> Value {
        let base = self.base();
        let mut f = Map::new();
        f.insert("summary".into(), json!(issue.summary));
        f.insert("description".into(), issue.description.as_ref().map(|d| self.rich(d, v)).unwrap_or(Value::Null));
        f.insert("status".into(), self.render_status(&issue.status, v));
        f.insert("priority".into(), issue.priority.as_deref().map(|p| self.render_priority(p, v)).unwrap_or(Value::Null));
        f.insert("resolution".into(), issue.resolution.as_deref().map(|r| self.render_resolution(r, v)).unwrap_or(Value::Null));
        f.insert("resolutiondate".into(), issue.resolution_date.as_ref().map(|t| json!(self.time(t))).unwrap_or(Value::Null));
        f.insert("assignee".into(), issue.assignee.as_deref().map(|a| self.render_user(a, v)).unwrap_or(Value::Null));
        f.insert("reporter".into(), self.render_user(&issue.reporter, v));
        f.insert("creator".into(), self.render_user(&issue.reporter, v));
        f.insert("created".into(), json!(self.time(&issue.created)));
        f.insert("updated".into(), json!(self.time(&issue.updated)));
        f.insert("lastViewed".into(), Value::Null);
        f.insert("duedate".into(), Value::Null);
        f.insert("environment".into(), Value::Null);
        f.insert("labels".into(), json!(issue.labels));
        let (type_id, type_name, type_description, icon) = issue.issue_type.describe();
        f.insert(
            "issuetype".into(),
            json!({"self": format!("{base}/rest/api/{v}/issuetype/{type_id}"), "id": type_id, "description": type_description,
                   "iconUrl": format!("{base}/images/icons/issuetypes/{icon}.svg"), "name": type_name, "subtask": false, "avatarId": 10300, "hierarchyLevel": 0}),
        );
        f.insert(
            "project".into(),
            json!({"self": format!("{base}/rest/api/{v}/project/10000"), "id": "10000", "key": self.config.project_key, "name": "IT Operations",
                   "projectTypeKey": "service_desk", "avatarUrls": {"48x48": format!("{base}/images/project.png")}}),
        );
        for id in [REFERENCE_FIELD, IMPACT_FIELD, URGENCY_FIELD] {
            f.insert(id.into(), issue.custom.get(id).cloned().unwrap_or(Value::Null));
        }
        if issue.issue_type == IssueType::Change {
            for id in [CHANGE_TYPE_FIELD, CHANGE_RISK_FIELD] {
                f.insert(id.into(), issue.custom.get(id).cloned().unwrap_or(Value::Null));
            }
            // Date-times are stored in UTC and rendered in the user's zone, as Jira does.
            for id in [PLANNED_START_FIELD, PLANNED_END_FIELD] {
                let t = issue.custom.get(id).and_then(Value::as_str).and_then(parse_date_time);
                f.insert(id.into(), t.map(|t| json!(self.time(&t))).unwrap_or(Value::Null));
            }
        }
        let request_type = issue.request_type.as_ref().map(|rt| {
            let status = self.status_def(&issue.status);
            json!({
                "_links": {"jiraRest": format!("{base}/rest/api/2/issue/{}", issue.id), "web": format!("{base}/servicedesk/customer/portal/{}/{}", self.config.service_desk_id, issue.key)},
                "requestType": {"id": rt, "name": "Report a system problem", "serviceDeskId": self.config.service_desk_id},
                "currentStatus": {"status": status.map(|s| s.name.clone()), "statusCategory": status.map(|s| s.category.to_uppercase()), "statusDate": jsm_date(&issue.updated, &self.config.time_zone)},
            })
        });
        f.insert(REQUEST_TYPE_FIELD.into(), request_type.unwrap_or(Value::Null));
        let files: Vec<Value> = issue.attachments.iter().map(|a| self.render_attachment(a, v)).collect();
        f.insert("attachment".into(), json!(files));
        let comments: Vec<Value> = issue.comments.iter().map(|c| self.render_comment(issue, c, v)).collect();
        f.insert(
            "comment".into(),
            json!({"comments": comments, "self": format!("{base}/rest/api/{v}/issue/{}/comment", issue.id), "maxResults": comments.len(), "total": comments.len(), "startAt": 0}),
        );
        if let Some(only) = only {
            if !only.iter().any(|o| o == "*all") {
                let navigable = only.iter().any(|o| o == "*navigable");
                f.retain(|k, _| only.iter().any(|o| o == k) || (navigable && k != "comment"));
            }
        }
        json!({
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue.id.to_string(),
            "self": format!("{base}/rest/api/{v}/issue/{}", issue.id),
            "key": issue.key,
            "fields": f,
        })
    }

    fn render_attachment(&self, a: &Attachment, v: u8) -> Value {
        let base = self.base();
        json!({
            "self": format!("{base}/rest/api/{v}/attachment/{}", a.id), "id": a.id.to_string(), "filename": a.filename,
            "author": self.render_user(&a.author, v), "created": self.time(&a.created), "size": a.data.len(), "mimeType": a.mime,
            "content": format!("{base}/rest/api/{v}/attachment/content/{}", a.id),
        })
    }

    /// Attaches a file: the issue's `updated` moves and an issue-updated webhook goes out.
    fn attach(&mut self, i: usize, filename: &str, mime: &str, data: Vec<u8>, actor: &str) -> Attachment {
        let id = 10_000 + 1 + self.issues.iter().map(|x| x.attachments.len() as u64).sum::<u64>();
        let now = self.tick(self.issues[i].updated);
        let a = Attachment {
            id,
            filename: filename.to_string(),
            mime: if mime.is_empty() { "application/octet-stream".into() } else { mime.to_string() },
            data,
            author: actor.to_string(),
            created: now,
        };
        self.issues[i].attachments.push(a.clone());
        self.issues[i].updated = now;
        self.issue_event(i, "jira:issue_updated", "issue_updated", actor, &[], None);
        a
    }

    /// The summary of an issue that comment webhooks carry: no description, no `updated`.
    fn render_issue_summary(&self, issue: &Issue) -> Value {
        let full = self.render_issue(issue, 2, None);
        let mut f = Map::new();
        for k in ["summary", "issuetype", "project", "assignee", "priority", "status"] {
            if let Some(v) = full["fields"].get(k) {
                f.insert(k.into(), v.clone());
            }
        }
        json!({"id": full["id"], "self": full["self"], "key": full["key"], "fields": f})
    }

    fn render_request(&self, issue: &Issue) -> Value {
        let base = self.base();
        let tz = &self.config.time_zone;
        let status = self.status_def(&issue.status);
        let description = issue.description.as_ref().map(adf_to_wiki);
        let mut values = vec![json!({"fieldId": "summary", "label": "Summary", "value": issue.summary})];
        if let Some(d) = description {
            values.push(json!({"fieldId": "description", "label": "Description", "value": d, "renderedValue": {"html": format!("<p>{}</p>", html_escape(&d))}}));
        }
        json!({
            "_expands": ["participant", "status", "sla", "requestType", "serviceDesk", "attachment", "action", "comment"],
            "issueId": issue.id.to_string(),
            "issueKey": issue.key,
            "requestTypeId": issue.request_type.clone().unwrap_or_default(),
            "serviceDeskId": self.config.service_desk_id,
            "createdDate": jsm_date(&issue.created, tz),
            "reporter": self.jsm_user(&issue.reporter),
            "requestFieldValues": values,
            "currentStatus": {"status": status.map(|s| s.name.clone()), "statusCategory": status.map(|s| s.category.to_uppercase()), "statusDate": jsm_date(&issue.updated, tz)},
            "_links": {
                "jiraRest": format!("{base}/rest/api/2/issue/{}", issue.id),
                "web": format!("{base}/servicedesk/customer/portal/{}/{}", self.config.service_desk_id, issue.key),
                "self": format!("{base}/rest/servicedeskapi/request/{}", issue.id),
                "agent": format!("{base}/browse/{}", issue.key),
            },
        })
    }

    fn jsm_user(&self, id: &str) -> Value {
        let (name, email, _) = account(id);
        json!({"accountId": id, "emailAddress": email, "displayName": name, "active": true, "timeZone": self.config.time_zone.name(),
               "_links": {"jiraRest": format!("{}/rest/api/2/user?accountId={id}", self.base())}})
    }

    fn render_jsm_comment(&self, c: &Comment) -> Value {
        json!({"id": c.id.to_string(), "body": adf_to_wiki(&c.body), "public": c.public, "author": self.jsm_user(&c.author),
               "created": jsm_date(&c.created, &self.config.time_zone), "_links": {"self": format!("{}/rest/servicedeskapi/request/comment/{}", self.base(), c.id)}})
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

// ---- Write semantics -------------------------------------------------------------------------

fn cannot_set(name: &str) -> String {
    format!("Field '{name}' cannot be set. It is not on the appropriate screen, or unknown.")
}

/// `{"id"}` or `{"name"}` (or `{"value"}`) of a referenced item, or a bare string.
fn pick<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => keys.iter().find_map(|k| o.get(*k).and_then(Value::as_str)),
        _ => None,
    }
}

fn option_of(options: &[(&str, &str)], v: &Value) -> Option<(String, String)> {
    let wanted = pick(v, &["value", "id"])?;
    options.iter().find(|(id, value)| *id == wanted || *value == wanted).map(|(id, value)| (id.to_string(), value.to_string()))
}

fn change(field: &str, fieldtype: &'static str, field_id: &str, from: (Option<String>, Option<String>), to: (Option<String>, Option<String>)) -> Change {
    Change { field: field.into(), fieldtype, field_id: field_id.into(), from: from.0, from_string: from.1, to: to.0, to_string: to.1 }
}

impl State {
    /// Sets one field as an edit or create screen would; returns the changelog item, if the
    /// value changed. `v` is the REST version of the body (rich text as ADF on 3, wiki on 2).
    fn set_field(&self, issue: &mut Issue, name: &str, value: &Value, v: u8) -> Result<Option<Change>, String> {
        let base = self.base();
        match name {
            "summary" => {
                let s = value.as_str().ok_or("Operation value must be a string")?;
                if s.trim().is_empty() {
                    return Err("You must specify a summary of the issue.".into());
                }
                if s.contains(['\n', '\r']) {
                    return Err("The summary is invalid because it contains newline characters.".into());
                }
                if s.chars().count() > 255 {
                    return Err("Summary must be less than 255 characters.".into());
                }
                if s == issue.summary {
                    return Ok(None);
                }
                let c = change("summary", "jira", "summary", (None, Some(issue.summary.clone())), (None, Some(s.to_string())));
                issue.summary = s.to_string();
                Ok(Some(c))
            }
            "description" => {
                let new = match (value, v) {
                    (Value::Null, _) => None,
                    (Value::Object(o), 3) if o.get("type").and_then(Value::as_str) == Some("doc") => Some(value.clone()),
                    (_, 3) => return Err("Operation value must be an Atlassian Document (see the Atlassian Document Format)".into()),
                    (Value::String(s), _) if s.is_empty() => None,
                    (Value::String(s), _) => Some(text_to_adf(&wiki_to_text(s))),
                    _ => return Err("Operation value must be a string".into()),
                };
                if new == issue.description {
                    return Ok(None);
                }
                // Like Jira, the changelog has only the wiki renderings, no ids.
                let c = change("description", "jira", "description", (None, issue.description.as_ref().map(adf_to_wiki)), (None, new.as_ref().map(adf_to_wiki)));
                issue.description = new;
                Ok(Some(c))
            }
            "priority" => {
                let new = match value {
                    Value::Null => None,
                    _ => {
                        let wanted = pick(value, &["id", "name"]).ok_or("Could not find valid 'id' or 'name' in priority object.")?;
                        let found = PRIORITIES
                            .iter()
                            .find(|(id, n)| *id == wanted || n.eq_ignore_ascii_case(wanted))
                            .ok_or(format!("Specify a valid value for priority ('{wanted}' does not exist)"))?;
                        Some(found.0.to_string())
                    }
                };
                if new == issue.priority {
                    return Ok(None);
                }
                let label = |p: &Option<String>| p.as_deref().and_then(|p| PRIORITIES.iter().find(|(id, _)| *id == p)).map(|(_, n)| n.to_string());
                let c = change("priority", "jira", "priority", (issue.priority.clone(), label(&issue.priority)), (new.clone(), label(&new)));
                issue.priority = new;
                Ok(Some(c))
            }
            "labels" => {
                let labels: Vec<String> = value.as_array().ok_or("Operation value must be an array")?.iter().filter_map(Value::as_str).map(str::to_string).collect();
                if let Some(bad) = labels.iter().find(|l| l.contains(char::is_whitespace)) {
                    return Err(format!("The label '{bad}' contains spaces which is invalid."));
                }
                if labels == issue.labels {
                    return Ok(None);
                }
                let c = change("labels", "jira", "labels", (None, Some(issue.labels.join(" "))), (None, Some(labels.join(" "))));
                issue.labels = labels;
                Ok(Some(c))
            }
            "assignee" => {
                let new = match value {
                    Value::Null => None,
                    _ => Some(pick(value, &["accountId", "id"]).ok_or("Specify a valid accountId")?.to_string()),
                };
                if new == issue.assignee {
                    return Ok(None);
                }
                let name = |a: &Option<String>| a.as_deref().map(|a| account(a).0);
                let c = change("assignee", "jira", "assignee", (issue.assignee.clone(), name(&issue.assignee)), (new.clone(), name(&new)));
                issue.assignee = new;
                Ok(Some(c))
            }
            "resolution" => {
                // On this site the edit screen carries the resolution, but only a done issue
                // can hold one (the classic "open but resolved" mess is refused).
                if self.status_def(&issue.status).map(|s| s.category) != Some("done") {
                    return Err(cannot_set("resolution"));
                }
                let new = match value {
                    Value::Null => None,
                    _ => {
                        let wanted = pick(value, &["name", "id"]).ok_or("Specify a valid resolution")?;
                        Some(RESOLUTIONS.iter().find(|(id, n)| *id == wanted || *n == wanted).ok_or(format!("Resolution '{wanted}' does not exist."))?.1.to_string())
                    }
                };
                if new == issue.resolution {
                    return Ok(None);
                }
                let c = change("resolution", "jira", "resolution", (None, issue.resolution.clone()), (None, new.clone()));
                issue.resolution = new;
                Ok(Some(c))
            }
            REFERENCE_FIELD => {
                let new = match value {
                    Value::Null => None,
                    Value::String(s) if s.is_empty() => None,
                    Value::String(s) => Some(json!(s)),
                    _ => return Err("Operation value must be a string".into()),
                };
                if new.as_ref() == issue.custom.get(REFERENCE_FIELD) {
                    return Ok(None);
                }
                let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
                let c = change("Hub reference", "custom", REFERENCE_FIELD, (None, text(issue.custom.get(REFERENCE_FIELD))), (None, text(new.as_ref())));
                match new {
                    Some(n) => issue.custom.insert(REFERENCE_FIELD.into(), n),
                    None => issue.custom.remove(REFERENCE_FIELD),
                };
                Ok(Some(c))
            }
            CHANGE_TYPE_FIELD | CHANGE_RISK_FIELD | PLANNED_START_FIELD | PLANNED_END_FIELD if issue.issue_type != IssueType::Change => Err(cannot_set(name)),
            PLANNED_START_FIELD | PLANNED_END_FIELD => {
                let new = match value {
                    Value::Null => None,
                    Value::String(s) if s.trim().is_empty() => None,
                    Value::String(s) => Some(parse_date_time(s).ok_or(format!("Date value '{s}' is invalid. Expected format: yyyy-MM-dd'T'HH:mm:ss.SSSZ"))?),
                    _ => return Err("Operation value must be a string".into()),
                };
                let old = issue.custom.get(name).and_then(Value::as_str).and_then(parse_date_time);
                if new == old {
                    return Ok(None);
                }
                let label = if name == PLANNED_START_FIELD { "Planned start" } else { "Planned end" };
                let shown = |t: Option<DateTime<Utc>>| t.map(|t| self.time(&t));
                let c = change(label, "custom", name, (shown(old), shown(old)), (shown(new), shown(new)));
                match new {
                    Some(t) => issue.custom.insert(name.into(), json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))),
                    None => issue.custom.remove(name),
                };
                Ok(Some(c))
            }
            IMPACT_FIELD | URGENCY_FIELD | CHANGE_TYPE_FIELD | CHANGE_RISK_FIELD => {
                let (options, label) = match name {
                    IMPACT_FIELD => (IMPACT_OPTIONS, "Impact"),
                    URGENCY_FIELD => (URGENCY_OPTIONS, "Urgency"),
                    CHANGE_TYPE_FIELD => (CHANGE_TYPE_OPTIONS, "Change type"),
                    _ => (CHANGE_RISK_OPTIONS, "Change risk"),
                };
                let new = match value {
                    Value::Null => None,
                    _ => {
                        let (id, value_text) = option_of(options, value).ok_or(format!("Option value '{}' is not valid", pick(value, &["value", "id"]).unwrap_or("?")))?;
                        Some(json!({"self": format!("{base}/rest/api/3/customFieldOption/{id}"), "value": value_text, "id": id}))
                    }
                };
                if new.as_ref().map(|n| &n["id"]) == issue.custom.get(name).map(|o| &o["id"]) {
                    return Ok(None);
                }
                let parts = |o: Option<&Value>| (o.and_then(|o| o["id"].as_str()).map(str::to_string), o.and_then(|o| o["value"].as_str()).map(str::to_string));
                let c = change(label, "custom", name, parts(issue.custom.get(name)), parts(new.as_ref()));
                match new {
                    Some(n) => issue.custom.insert(name.into(), n),
                    None => issue.custom.remove(name),
                };
                Ok(Some(c))
            }
            _ => Err(cannot_set(name)),
        }
    }

    /// Creates an issue; `request_type` for one raised through the JSM request API.
    fn create(&mut self, fields: &Map<String, Value>, v: u8, actor: &str, request_type: Option<String>) -> Result<usize, SimError> {
        let mut errors = BTreeMap::new();
        let mut issue_type = IssueType::Incident;
        if request_type.is_none() {
            let project = fields.get("project").and_then(|p| pick(p, &["key", "id"]));
            if !project.is_some_and(|p| p == self.config.project_key || p == "10000") {
                errors.insert("project".into(), "Specify a valid project ID or key".into());
            }
            match fields.get("issuetype").and_then(|t| pick(t, &["name", "id"])).and_then(IssueType::named) {
                Some(t) => issue_type = t,
                None => {
                    errors.insert("issuetype".into(), "Specify an issue type".into());
                }
            }
        }
        if !fields.contains_key("summary") {
            errors.insert("summary".into(), "You must specify a summary of the issue.".into());
        }
        let now = self.now();
        let id = self.next_issue;
        let mut issue = Issue {
            id,
            key: format!("{}-{}", self.config.project_key, id - 10_000),
            issue_type,
            summary: String::new(),
            description: None,
            status: if issue_type == IssueType::Change { "10100".into() } else { "10010".into() },
            resolution: None,
            resolution_date: None,
            priority: Some("3".into()),
            assignee: None,
            reporter: actor.to_string(),
            labels: Vec::new(),
            custom: BTreeMap::new(),
            request_type,
            created: now,
            updated: now,
            comments: Vec::new(),
            attachments: Vec::new(),
        };
        for (k, val) in fields {
            if matches!(k.as_str(), "project" | "issuetype") {
                continue;
            }
            if k == "reporter" {
                if let Some(r) = pick(val, &["accountId", "id"]) {
                    issue.reporter = r.to_string();
                }
                continue;
            }
            if k == "resolution" || k == "status" {
                errors.insert(k.clone(), cannot_set(k));
                continue;
            }
            if let Err(e) = self.set_field(&mut issue, k, val, v) {
                errors.insert(k.clone(), e);
            }
        }
        if !errors.is_empty() {
            return Err(SimError::Invalid { messages: vec![], errors });
        }
        self.next_issue += 1;
        self.issues.push(issue);
        let i = self.issues.len() - 1;
        self.issue_event(i, "jira:issue_created", "issue_created", actor, &[], None);
        Ok(i)
    }

    /// An edit (`PUT /issue`): `fields` set values, `update` adds or removes labels.
    fn edit(&mut self, i: usize, fields: &Map<String, Value>, update: Option<&Map<String, Value>>, v: u8, actor: &str) -> Result<(), SimError> {
        let mut issue = self.issues[i].clone();
        let mut changes = Vec::new();
        let mut errors = BTreeMap::new();
        for (k, val) in fields {
            match self.set_field(&mut issue, k, val, v) {
                Ok(Some(c)) => changes.push(c),
                Ok(None) => {}
                Err(e) => {
                    errors.insert(k.clone(), e);
                }
            }
        }
        for (k, ops) in update.into_iter().flatten() {
            if k != "labels" {
                errors.insert(k.clone(), cannot_set(k));
                continue;
            }
            let mut labels = issue.labels.clone();
            for op in ops.as_array().into_iter().flatten() {
                if let Some(l) = op.get("add").and_then(Value::as_str) {
                    if !labels.iter().any(|x| x == l) {
                        labels.push(l.to_string());
                    }
                }
                if let Some(l) = op.get("remove").and_then(Value::as_str) {
                    labels.retain(|x| x != l);
                }
            }
            match self.set_field(&mut issue, "labels", &json!(labels), v) {
                Ok(Some(c)) => changes.push(c),
                Ok(None) => {}
                Err(e) => {
                    errors.insert(k.clone(), e);
                }
            }
        }
        if !errors.is_empty() {
            return Err(SimError::Invalid { messages: vec![], errors });
        }
        if changes.is_empty() {
            return Ok(());
        }
        issue.updated = self.tick(issue.updated);
        self.issues[i] = issue;
        let event = if changes.iter().all(|c| c.field == "assignee") { "issue_assigned" } else { "issue_updated" };
        self.issue_event(i, "jira:issue_updated", event, actor, &changes, None);
        Ok(())
    }

    /// The transitions available from the issue's current status.
    fn available(&self, issue: &Issue) -> Vec<&TransitionDef> {
        let workflow = if issue.issue_type == IssueType::Change { &self.change_transitions } else { &self.transitions };
        workflow.iter().filter(|t| if t.from.is_empty() { t.to != issue.status } else { t.from.contains(&issue.status) }).collect()
    }

    fn transition(&mut self, i: usize, tid: &str, fields: Option<&Map<String, Value>>, update: Option<&Map<String, Value>>, actor: &str) -> Result<(), SimError> {
        let mut issue = self.issues[i].clone();
        let t =
            self.available(&issue).into_iter().find(|t| t.id == tid).cloned().ok_or_else(|| SimError::message(format!("Transition id '{tid}' is not valid for this issue.")))?;
        let fields = fields.cloned().unwrap_or_default();
        if let Some(k) = fields.keys().find(|k| !t.has_screen || *k != "resolution") {
            return Err(SimError::field(k, cannot_set(k)));
        }
        let to_done = self.status_def(&t.to).map(|s| s.category) == Some("done");
        let mut changes = vec![change(
            "status",
            "jira",
            "status",
            (Some(issue.status.clone()), self.status_def(&issue.status).map(|s| s.name.clone())),
            (Some(t.to.clone()), self.status_def(&t.to).map(|s| s.name.clone())),
        )];
        let now = self.tick(issue.updated);
        if to_done {
            let wanted = match fields.get("resolution") {
                Some(r) => Some(
                    pick(r, &["name", "id"])
                        .and_then(|w| RESOLUTIONS.iter().find(|(id, n)| *id == w || *n == w))
                        .map(|(_, n)| n.to_string())
                        .ok_or_else(|| SimError::field("resolution", "Specify a valid resolution"))?,
                ),
                None => None,
            };
            if t.requires_resolution && wanted.is_none() {
                return Err(SimError::field("resolution", "Resolution is required."));
            }
            if let Some(r) = wanted.filter(|r| Some(r) != issue.resolution.as_ref()) {
                changes.push(change("resolution", "jira", "resolution", (None, issue.resolution.clone()), (None, Some(r.clone()))));
                issue.resolution = Some(r);
            }
            issue.resolution_date.get_or_insert(now);
        } else if issue.resolution.is_some() {
            // Leaving done clears the resolution (the workflow's post function).
            changes.push(change("resolution", "jira", "resolution", (None, issue.resolution.take()), (None, None)));
            issue.resolution_date = None;
        }
        issue.status = t.to.clone();
        issue.updated = now;
        self.issues[i] = issue;
        let comment = update
            .and_then(|u| u.get("comment"))
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find_map(|op| op.pointer("/add/body").cloned()))
            .map(|body| self.store_comment(i, body, true, actor));
        self.issue_event(i, "jira:issue_updated", t.event, actor, &changes, comment.as_ref());
        Ok(())
    }

    fn store_comment(&mut self, i: usize, body: Value, public: bool, actor: &str) -> Comment {
        let now = self.tick(self.issues[i].updated);
        let c = Comment { id: self.next_comment, author: actor.to_string(), body, public, created: now };
        self.next_comment += 1;
        let issue = &mut self.issues[i];
        issue.comments.push(c.clone());
        issue.updated = now;
        c
    }

    fn add_comment(&mut self, i: usize, body: Value, public: bool, actor: &str) -> Comment {
        let c = self.store_comment(i, body, public, actor);
        let body = json!({
            "timestamp": self.now().timestamp_millis(),
            "webhookEvent": "comment_created",
            "comment": self.render_comment(&self.issues[i], &c, 2),
            "issue": self.render_issue_summary(&self.issues[i]),
            "matchedWebhookIds": [1],
        });
        self.enqueue(body);
        c
    }

    fn issue_event(&mut self, i: usize, event: &str, type_name: &str, actor: &str, changes: &[Change], comment: Option<&Comment>) {
        if self.config.webhook.is_none() {
            return;
        }
        let issue = &self.issues[i];
        let mut body = json!({
            "timestamp": self.now().timestamp_millis(),
            "webhookEvent": event,
            "issue_event_type_name": type_name,
            "user": self.render_user(actor, 2),
            "issue": self.render_issue(issue, 2, None),
            "matchedWebhookIds": [1],
        });
        if !changes.is_empty() {
            let items: Vec<Value> = changes
                .iter()
                .map(|c| json!({"field": c.field, "fieldtype": c.fieldtype, "fieldId": c.field_id, "from": c.from, "fromString": c.from_string, "to": c.to, "toString": c.to_string}))
                .collect();
            body["changelog"] = json!({"id": self.next_changelog.to_string(), "items": items});
            self.next_changelog += 1;
        }
        if let Some(c) = comment {
            body["comment"] = self.render_comment(issue, c, 2);
        }
        self.enqueue(body);
    }

    fn enqueue(&mut self, body: Value) {
        let Some(target) = self.config.webhook.clone() else { return };
        let secret = target.secret;
        self.outbox.push(Notification {
            id: uuid::Uuid::new_v4().to_string(),
            url: target.url,
            body: body.to_string(),
            basic_auth: None,
            // A retry keeps its identifier and says which retry it is.
            headers: Arc::new(move |n: &Notification, attempt| {
                let mut h = vec![("X-Atlassian-Webhook-Identifier".to_string(), n.id.clone()), ("X-Atlassian-Webhook-Flow".into(), "Primary".into())];
                if attempt > 1 {
                    h.push(("X-Atlassian-Webhook-Retry".into(), (attempt - 1).to_string()));
                }
                if let Some(secret) = &secret {
                    h.push(("X-Hub-Signature".into(), sign_webhook(secret, &n.body)));
                }
                h
            }),
        });
    }
}

// ---- JQL (the subset integrations use) -------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Op(String),
    LParen,
    RParen,
    Comma,
}

fn lex(jql: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = jql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("Error in the JQL Query: The quoted string has not been completed.".into()),
                        Some('\\') => {
                            if let Some(n) = chars.get(i + 1) {
                                s.push(*n);
                            }
                            i += 2;
                        }
                        Some(q) if *q == quote => {
                            i += 1;
                            break;
                        }
                        Some(other) => {
                            s.push(*other);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            '=' | '!' | '<' | '>' | '~' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                if matches!(two.as_str(), "!=" | ">=" | "<=" | "!~") {
                    out.push(Tok::Op(two));
                    i += 2;
                } else {
                    out.push(Tok::Op(c.to_string()));
                    i += 1;
                }
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"()=,!<>~\"'".contains(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct Clause {
    field: String,
    op: String,
    values: Vec<String>,
}

/// ORDER BY fields, each with `true` for descending.
type Order = Vec<(String, bool)>;

#[derive(Debug, Clone)]
struct Jql {
    clauses: Vec<Clause>,
    order: Order,
}

const JQL_FIELDS: &[&str] = &["project", "labels", "updated", "created", "key", "issue", "id", "status", "issuetype", "type", "cf[10100]", REFERENCE_FIELD];

fn jql_field(word: &str) -> Result<String, String> {
    let w = word.to_ascii_lowercase();
    if JQL_FIELDS.contains(&w.as_str()) {
        Ok(match w.as_str() {
            REFERENCE_FIELD => "cf[10100]".into(),
            "type" => "issuetype".into(),
            _ => w,
        })
    } else {
        Err(format!("Field '{word}' does not exist or you do not have permission to view it."))
    }
}

impl Jql {
    fn parse(jql: &str) -> Result<Jql, String> {
        let toks = lex(jql)?;
        let mut q = Jql { clauses: Vec::new(), order: Vec::new() };
        let mut i = 0;
        let word = |t: Option<&Tok>| match t {
            Some(Tok::Word(w)) => Some(w.clone()),
            _ => None,
        };
        let value = |t: Option<&Tok>| match t {
            Some(Tok::Word(w)) | Some(Tok::Str(w)) => Some(w.clone()),
            _ => None,
        };
        while i < toks.len() {
            let w = word(toks.get(i)).ok_or("Error in the JQL Query: expecting a field name")?;
            if w.eq_ignore_ascii_case("order") {
                if !word(toks.get(i + 1)).is_some_and(|b| b.eq_ignore_ascii_case("by")) {
                    return Err("Error in the JQL Query: expecting 'by' after 'order'".into());
                }
                i += 2;
                while i < toks.len() {
                    let f = jql_field(&word(toks.get(i)).ok_or("Error in the JQL Query: expecting a field to order by")?)?;
                    i += 1;
                    let mut desc = false;
                    if let Some(d) = word(toks.get(i)) {
                        if d.eq_ignore_ascii_case("desc") || d.eq_ignore_ascii_case("asc") {
                            desc = d.eq_ignore_ascii_case("desc");
                            i += 1;
                        }
                    }
                    q.order.push((f, desc));
                    if toks.get(i) == Some(&Tok::Comma) {
                        i += 1;
                    }
                }
                break;
            }
            if w.eq_ignore_ascii_case("and") {
                i += 1;
                continue;
            }
            if w.eq_ignore_ascii_case("or") {
                return Err("OR is not supported by this simulator's JQL".into());
            }
            let field = jql_field(&w)?;
            i += 1;
            let op = match toks.get(i) {
                Some(Tok::Op(o)) => o.clone(),
                Some(Tok::Word(o)) if o.eq_ignore_ascii_case("in") => "in".into(),
                Some(Tok::Word(o)) if o.eq_ignore_ascii_case("is") => {
                    if word(toks.get(i + 1)).is_some_and(|n| n.eq_ignore_ascii_case("not")) {
                        i += 1;
                        "is not".into()
                    } else {
                        "is".into()
                    }
                }
                Some(Tok::Word(o)) if o.eq_ignore_ascii_case("not") && word(toks.get(i + 1)).is_some_and(|n| n.eq_ignore_ascii_case("in")) => {
                    i += 1;
                    "not in".into()
                }
                _ => return Err(format!("Error in the JQL Query: expecting an operator after '{w}'")),
            };
            i += 1;
            let mut values = Vec::new();
            if op.ends_with("in") {
                if toks.get(i) != Some(&Tok::LParen) {
                    return Err("Error in the JQL Query: expecting '(' after 'in'".into());
                }
                i += 1;
                while toks.get(i) != Some(&Tok::RParen) {
                    values.push(value(toks.get(i)).ok_or("Error in the JQL Query: expecting a value in the list")?);
                    i += 1;
                    if toks.get(i) == Some(&Tok::Comma) {
                        i += 1;
                    }
                    if i >= toks.len() {
                        return Err("Error in the JQL Query: the list is not closed".into());
                    }
                }
                i += 1;
            } else {
                values.push(value(toks.get(i)).ok_or(format!("Error in the JQL Query: expecting a value after '{op}'"))?);
                i += 1;
            }
            if field == "cf[10100]" && !matches!(op.as_str(), "~" | "!~" | "is" | "is not") {
                return Err(format!("The operator '{op}' is not supported by the 'Hub reference' field."));
            }
            q.clauses.push(Clause { field, op, values });
        }
        Ok(q)
    }
}

/// A JQL date, read in the user's time zone: `yyyy-MM-dd HH:mm`, `yyyy/MM/dd HH:mm` or a day.
fn jql_date(s: &str, tz: &chrono_tz::Tz, field: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    let naive = ["%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| ["%Y-%m-%d", "%Y/%m/%d"].iter().find_map(|f| NaiveDate::parse_from_str(s, f).ok()).and_then(|d| d.and_hms_opt(0, 0, 0)));
    naive.and_then(|n| tz.from_local_datetime(&n).earliest()).map(|t| t.with_timezone(&Utc)).ok_or_else(|| {
        format!("Date value '{s}' for field '{field}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.")
    })
}

impl State {
    fn clause_matches(&self, c: &Clause, issue: &Issue) -> Result<bool, String> {
        let tz = &self.config.time_zone;
        let any = |f: &dyn Fn(&str) -> bool| c.values.iter().any(|v| f(v));
        Ok(match c.field.as_str() {
            "project" => {
                let m = any(&|v| v.eq_ignore_ascii_case(&self.config.project_key) || v == "10000");
                if c.op.starts_with('!') || c.op.starts_with("not") {
                    !m
                } else {
                    m
                }
            }
            "labels" => match c.op.as_str() {
                "=" | "in" => any(&|v| issue.labels.iter().any(|l| l == v)),
                "!=" | "not in" => !any(&|v| issue.labels.iter().any(|l| l == v)),
                "is" => issue.labels.is_empty(),
                "is not" => !issue.labels.is_empty(),
                op => return Err(format!("The operator '{op}' is not supported by the 'labels' field.")),
            },
            "key" | "issue" | "id" => {
                let m = any(&|v| v.eq_ignore_ascii_case(&issue.key) || v == issue.id.to_string());
                if c.op.starts_with('!') || c.op.starts_with("not") {
                    !m
                } else {
                    m
                }
            }
            "issuetype" => {
                let m = any(&|v| IssueType::named(v) == Some(issue.issue_type));
                if c.op.starts_with('!') || c.op.starts_with("not") {
                    !m
                } else {
                    m
                }
            }
            "status" => {
                let name = self.status_def(&issue.status).map(|s| s.name.clone()).unwrap_or_default();
                let m = any(&|v| v == issue.status || v.eq_ignore_ascii_case(&name));
                if c.op.starts_with('!') || c.op.starts_with("not") {
                    !m
                } else {
                    m
                }
            }
            "cf[10100]" => {
                let text = issue.custom.get(REFERENCE_FIELD).and_then(Value::as_str).unwrap_or("").to_lowercase();
                match c.op.as_str() {
                    "~" => any(&|v| !v.is_empty() && text.contains(&v.to_lowercase())),
                    "!~" => !any(&|v| text.contains(&v.to_lowercase())),
                    "is" => text.is_empty(),
                    _ => !text.is_empty(),
                }
            }
            f @ ("updated" | "created") => {
                let t = if f == "updated" { issue.updated } else { issue.created };
                let when = jql_date(c.values.first().map(String::as_str).unwrap_or(""), tz, f)?;
                match c.op.as_str() {
                    ">=" => t >= when,
                    ">" => t > when,
                    "<=" => t <= when,
                    "<" => t < when,
                    "=" => t == when,
                    "!=" => t != when,
                    op => return Err(format!("The operator '{op}' is not supported by the '{f}' field.")),
                }
            }
            other => return Err(format!("Field '{other}' does not exist or you do not have permission to view it.")),
        })
    }

    /// The sort key of an issue under an ORDER BY (the id always last, to break ties).
    fn sort_key(order: &[(String, bool)], issue: &Issue) -> Vec<i64> {
        let mut key: Vec<i64> = order
            .iter()
            .map(|(f, _)| match f.as_str() {
                "updated" => issue.updated.timestamp_millis(),
                "created" => issue.created.timestamp_millis(),
                _ => issue.id as i64,
            })
            .collect();
        key.push(issue.id as i64);
        key
    }

    /// Runs a search: the issue indexes in order, from after the cursor's position, and the
    /// order used.
    fn search(&self, jql: &str, after: Option<&[i64]>) -> Result<(Vec<usize>, Order), String> {
        let q = Jql::parse(jql)?;
        let mut hits = Vec::new();
        for (i, issue) in self.issues.iter().enumerate() {
            let mut ok = true;
            for c in &q.clauses {
                if !self.clause_matches(c, issue)? {
                    ok = false;
                    break;
                }
            }
            if ok {
                hits.push(i);
            }
        }
        let mut order = q.order.clone();
        if order.is_empty() {
            order.push(("key".into(), true));
        }
        let cmp = |a: &[i64], b: &[i64]| {
            for (n, (x, y)) in a.iter().zip(b).enumerate() {
                let desc = order.get(n).is_some_and(|(_, d)| *d);
                let o = if desc { y.cmp(x) } else { x.cmp(y) };
                if o.is_ne() {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        };
        hits.sort_by(|a, b| cmp(&Self::sort_key(&order, &self.issues[*a]), &Self::sort_key(&order, &self.issues[*b])));
        // A keyset cursor: an issue updated while a client pages moves behind the cursor (to be
        // seen again later) instead of shifting the pages and hiding another issue.
        if let Some(after) = after {
            hits.retain(|i| cmp(&Self::sort_key(&order, &self.issues[*i]), after).is_gt());
        }
        Ok((hits, order))
    }
}

/// A date-time as Jira's pickers take it: `2030-05-20T22:00:00.000+0000`, with or without the
/// colon or the milliseconds, or `Z`.
fn parse_date_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"]
        .iter()
        .find_map(|f| DateTime::parse_from_str(s, f).ok())
        .or_else(|| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn encode_token(key: &[i64]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
}

fn decode_token(token: &str) -> Option<Vec<i64>> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(raw).ok()?.split(',').map(|n| n.parse().ok()).collect()
}

// ---- HTTP ------------------------------------------------------------------------------------

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json;charset=UTF-8").body(body.to_string())
}

fn rate_limited(retry_after_secs: u64, now: DateTime<Utc>) -> HttpResponse {
    let reset = now + chrono::Duration::seconds(retry_after_secs.min(86_400) as i64);
    HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
        .content_type("application/json;charset=UTF-8")
        .insert_header(("Retry-After", retry_after_secs.to_string()))
        .insert_header(("X-RateLimit-Limit", "350"))
        .insert_header(("X-RateLimit-Remaining", "0"))
        // An ISO 8601 instant, not epoch seconds.
        .insert_header(("X-RateLimit-Reset", reset.format("%Y-%m-%dT%H:%MZ").to_string()))
        .insert_header(("X-RateLimit-NearLimit", "true"))
        .insert_header(("RateLimit-Reason", "jira-quota-based"))
        .body(json!({"errorMessages": ["Rate limit exceeded."], "errors": {}}).to_string())
}

fn read_json(body: &[u8]) -> Result<Map<String, Value>, SimError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(SimError::message("No content to map due to end-of-input"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SimError::message("Can not deserialize instance of object out of this token")),
        Err(e) => Err(SimError::message(format!("Unexpected character: {e}"))),
    }
}

/// Entry point for `/rest/...`: faults and latency first, then the APIs.
async fn rest_api(req: HttpRequest, body: web::Bytes, sim: web::Data<JiraSim>) -> HttpResponse {
    let user = sim.authenticate(&req);
    let (fault, latency, now) = {
        let mut st = sim.lock();
        let fault = st.faults.pop_front().or_else(|| st.chance.draw());
        (fault, st.latency, st.now())
    };
    let arrived = Utc::now();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = match fault {
        Some(Fault::RateLimited { retry_after_secs }) => rate_limited(retry_after_secs, now),
        Some(Fault::ServerError) => jira_error(StatusCode::INTERNAL_SERVER_ERROR, &["Internal server error"], &BTreeMap::new()),
        Some(Fault::ServiceUnavailable { retry_after_secs }) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", retry_after_secs.to_string()))
            .content_type("text/html")
            .body("<html><body><h1>Service Unavailable</h1></body></html>"),
        Some(Fault::Timeout { delay }) => {
            let (sim, req, body, user) = (sim.clone(), req.clone(), body.clone(), user.clone());
            super::answer_late(delay, move || serve(&sim, &req, &body, user.as_deref())).await
        }
        Some(Fault::LoseResponseAfterCommit) => {
            // The write is committed; only the answer is lost at the edge.
            let _committed = serve(&sim, &req, &body, user.as_deref());
            HttpResponse::GatewayTimeout().content_type("text/html").body("<html><body><h1>504 Gateway Time-out</h1></body></html>")
        }
        None => serve(&sim, &req, &body, user.as_deref()),
    };
    let path = req.uri().path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| req.path().to_string());
    sim.lock().log.push(LoggedRequest { method: req.method().to_string(), path, status: resp.status().as_u16(), user, body: serde_json::from_slice(&body).ok(), at: arrived });
    resp
}

fn serve(sim: &JiraSim, req: &HttpRequest, body: &[u8], user: Option<&str>) -> HttpResponse {
    let Some(user) = user else {
        return HttpResponse::Unauthorized().content_type("text/plain;charset=UTF-8").body("Client must be authenticated to access this resource.");
    };
    let tail = req.match_info().get("tail").unwrap_or("").to_string();
    let segments: Vec<&str> = tail.split('/').filter(|s| !s.is_empty()).collect();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let mut st = sim.lock();
    let actor = st.hub_account(user);
    match segments.as_slice() {
        ["api", v @ ("2" | "3"), "issue", id, "attachments"] if req.method() == Method::POST => {
            let v: u8 = if *v == "3" { 3 } else { 2 };
            // Jira refuses multipart uploads without the XSRF opt-out header.
            if req.headers().get("x-atlassian-token").and_then(|h| h.to_str().ok()) != Some("no-check") {
                return jira_error(StatusCode::FORBIDDEN, &["XSRF check failed"], &BTreeMap::new());
            }
            let Some(i) = st.find(id) else { return SimError::NotFound.response() };
            if st.denied.contains("CREATE_ATTACHMENTS") {
                return jira_error(StatusCode::FORBIDDEN, &["You do not have permission to create attachments for this issue."], &BTreeMap::new());
            }
            let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|h| h.to_str().ok()).unwrap_or("");
            let files: Vec<_> = match super::multipart(content_type, body) {
                Ok(parts) => parts.into_iter().filter(|p| p.name == "file").collect(),
                Err(e) => return jira_error(StatusCode::BAD_REQUEST, &[&e], &BTreeMap::new()),
            };
            let files = match files {
                f if !f.is_empty() => f,
                _ => return jira_error(StatusCode::BAD_REQUEST, &["No file was sent in the 'file' part"], &BTreeMap::new()),
            };
            let added: Vec<Value> = files
                .into_iter()
                .map(|p| {
                    let a = st.attach(i, p.file_name.as_deref().unwrap_or("file"), &p.content_type, p.data, actor);
                    st.render_attachment(&a, v)
                })
                .collect();
            json_response(StatusCode::OK, &json!(added))
        }
        ["api", "2" | "3", "attachment", "content", id] if req.method() == Method::GET => {
            let found = st.issues.iter().flat_map(|x| x.attachments.iter()).find(|a| a.id.to_string() == *id).cloned();
            match found {
                Some(a) => HttpResponse::Ok().content_type(a.mime).body(a.data),
                None => SimError::NotFound.response(),
            }
        }
        ["api", v @ ("2" | "3"), rest @ ..] => {
            let v: u8 = if *v == "3" { 3 } else { 2 };
            platform(&mut st, req.method(), v, rest, &params, body, actor)
        }
        ["servicedeskapi", rest @ ..] => jsm(&mut st, req.method(), rest, &params, body, actor),
        _ => jira_error(StatusCode::NOT_FOUND, &[&format!("null for uri: {}", req.uri())], &BTreeMap::new()),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn fields_param(raw: Option<&str>) -> Option<Vec<String>> {
    raw.map(|f| f.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

fn platform(st: &mut State, method: &Method, v: u8, rest: &[&str], params: &[(String, String)], body: &[u8], actor: &str) -> HttpResponse {
    let found = |st: &State, id: &str| st.find(id).ok_or(SimError::NotFound);
    let result: Result<HttpResponse, SimError> = (|| {
        match (method, rest) {
        (&Method::GET, ["myself"]) => Ok(json_response(StatusCode::OK, &st.render_user(actor, v))),
        (&Method::GET, ["mypermissions"]) => {
            let wanted = param(params, "permissions").ok_or_else(|| SimError::message("The 'permissions' query parameter is required."))?;
            if let Some(key) = param(params, "projectKey").filter(|k| *k != st.config.project_key) {
                return Ok(jira_error(StatusCode::NOT_FOUND, &[&format!("No project could be found with key '{key}'.")], &BTreeMap::new()));
            }
            let mut out = Map::new();
            for key in wanted.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                let (id, name) = PERMISSIONS.iter().find(|(k, _, _)| *k == key).map(|(_, id, name)| (*id, *name)).ok_or_else(|| SimError::message(format!("Invalid permission key: {key}")))?;
                out.insert(
                    key.into(),
                    json!({"id": id, "key": key, "name": name, "type": "PROJECT", "description": format!("Ability to {}.", name.to_lowercase()), "havePermission": !st.denied.contains(key)}),
                );
            }
            Ok(json_response(StatusCode::OK, &json!({"permissions": out})))
        }
        (&Method::GET, ["project", key, "statuses"]) => {
            if *key != st.config.project_key {
                return Ok(jira_error(StatusCode::NOT_FOUND, &[&format!("No project could be found with key '{key}'.")], &BTreeMap::new()));
            }
            let change: Vec<&str> = st.change_transitions.iter().flat_map(|t| std::iter::once(t.to.as_str()).chain(t.from.iter().map(String::as_str))).collect();
            let types: Vec<Value> = [IssueType::Incident, IssueType::Change]
                .into_iter()
                .map(|t| {
                    let (id, name, _, _) = t.describe();
                    let statuses: Vec<Value> = st
                        .statuses
                        .iter()
                        .filter(|s| change.contains(&s.id.as_str()) == (t == IssueType::Change))
                        .map(|s| {
                            let mut r = st.render_status(&s.id, v);
                            r["untranslatedName"] = json!(s.name);
                            r
                        })
                        .collect();
                    json!({"self": format!("{}/rest/api/{v}/issuetype/{id}", st.base()), "id": id, "name": name, "subtask": false, "statuses": statuses})
                })
                .collect();
            Ok(json_response(StatusCode::OK, &json!(types)))
        }
        (&Method::GET, ["priority"]) => {
            let list: Vec<Value> = PRIORITIES
                .iter()
                .map(|(id, _)| {
                    let mut p = st.render_priority(id, v);
                    p["statusColor"] = json!("#ffab00");
                    p["description"] = json!("");
                    p
                })
                .collect();
            Ok(json_response(StatusCode::OK, &json!(list)))
        }
        (&Method::GET, ["resolution"]) => Ok(json_response(StatusCode::OK, &json!(RESOLUTIONS.iter().map(|(_, name)| st.render_resolution(name, v)).collect::<Vec<_>>()))),
        (&Method::GET, ["field"]) => Ok(json_response(StatusCode::OK, &json!(fields_list()))),
        (&Method::POST, ["issue"]) => {
            let b = read_json(body)?;
            let fields = b.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
            let i = st.create(&fields, v, actor, None)?;
            let issue = &st.issues[i];
            Ok(json_response(StatusCode::CREATED, &json!({"id": issue.id.to_string(), "key": issue.key, "self": format!("{}/rest/api/{v}/issue/{}", st.base(), issue.id)})))
        }
        (&Method::GET, ["issue", id]) => {
            let i = found(st, id)?;
            let only = fields_param(param(params, "fields"));
            Ok(json_response(StatusCode::OK, &st.render_issue(&st.issues[i], v, only.as_deref())))
        }
        (&Method::PUT, ["issue", id]) => {
            let i = found(st, id)?;
            let b = read_json(body)?;
            let fields = b.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
            let update = b.get("update").and_then(Value::as_object).cloned();
            st.edit(i, &fields, update.as_ref(), v, actor)?;
            Ok(HttpResponse::NoContent().finish())
        }
        (&Method::GET, ["issue", id, "transitions"]) => {
            let i = found(st, id)?;
            let list: Vec<Value> = st
                .available(&st.issues[i])
                .into_iter()
                .map(|t| json!({"id": t.id, "name": t.name, "to": st.render_status(&t.to, v), "hasScreen": t.has_screen, "isGlobal": t.from.is_empty(),
                               "isInitial": false, "isAvailable": true, "isConditional": false, "isLooped": false}))
                .collect();
            Ok(json_response(StatusCode::OK, &json!({"expand": "transitions", "transitions": list})))
        }
        (&Method::POST, ["issue", id, "transitions"]) => {
            let i = found(st, id)?;
            let b = read_json(body)?;
            let tid = b.get("transition").and_then(|t| t.get("id")).and_then(|t| t.as_str().map(str::to_string).or_else(|| t.as_i64().map(|n| n.to_string())));
            let tid = tid.ok_or_else(|| SimError::message("Missing 'transition' identifier"))?;
            let fields = b.get("fields").and_then(Value::as_object).cloned();
            let update = b.get("update").and_then(Value::as_object).cloned();
            st.transition(i, &tid, fields.as_ref(), update.as_ref(), actor)?;
            Ok(HttpResponse::NoContent().finish())
        }
        (&Method::GET, ["issue", id, "comment"]) => {
            let i = found(st, id)?;
            let issue = &st.issues[i];
            let start = param(params, "startAt").and_then(|s| s.parse().ok()).unwrap_or(0usize);
            let max = param(params, "maxResults").and_then(|s| s.parse().ok()).unwrap_or(MAX_PAGE).min(MAX_PAGE);
            let mut all: Vec<&Comment> = issue.comments.iter().collect();
            if param(params, "orderBy") == Some("-created") {
                all.reverse();
            }
            let page: Vec<Value> = all.iter().skip(start).take(max).map(|c| st.render_comment(issue, c, v)).collect();
            Ok(json_response(StatusCode::OK, &json!({"startAt": start, "maxResults": max, "total": issue.comments.len(), "comments": page})))
        }
        (&Method::POST, ["issue", id, "comment"]) => {
            let i = found(st, id)?;
            if st.denied.contains("ADD_COMMENTS") {
                return Ok(jira_error(StatusCode::FORBIDDEN, &["You do not have the permission to comment on this issue."], &BTreeMap::new()));
            }
            let b = read_json(body)?;
            let raw = b.get("body").ok_or_else(|| SimError::field("comment", "Comment body can not be empty!"))?;
            let adf = match (raw, v) {
                (Value::Object(o), 3) if o.get("type").and_then(Value::as_str) == Some("doc") => raw.clone(),
                (_, 3) => return Err(SimError::field("comment", "Comment body is not valid!")),
                (Value::String(s), _) if !s.trim().is_empty() => text_to_adf(&wiki_to_text(s)),
                _ => return Err(SimError::field("comment", "Comment body can not be empty!")),
            };
            // JSM: the `sd.public.comment` property makes a comment internal.
            let internal = b
                .get("properties")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|p| p.get("key").and_then(Value::as_str) == Some("sd.public.comment") && p.pointer("/value/internal").and_then(Value::as_bool) == Some(true));
            let c = st.add_comment(i, adf, !internal, actor);
            Ok(json_response(StatusCode::CREATED, &st.render_comment(&st.issues[i], &c, v)))
        }
        (_, ["search"]) => Ok(jira_error(
            StatusCode::GONE,
            &["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"],
            &BTreeMap::new(),
        )),
        (&Method::GET | &Method::POST, ["search", "jql"]) => {
            let b = if method == Method::POST { read_json(body)? } else { Map::new() };
            let get = |k: &str| b.get(k).and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string()))).or_else(|| param(params, k).map(str::to_string));
            let jql = get("jql").unwrap_or_default();
            let max = get("maxResults").and_then(|m| m.parse::<usize>().ok()).unwrap_or(50).clamp(1, MAX_PAGE);
            let fields: Option<Vec<String>> = match b.get("fields") {
                Some(Value::Array(a)) => Some(a.iter().filter_map(Value::as_str).map(str::to_string).collect()),
                _ => fields_param(param(params, "fields")),
            };
            let after = match get("nextPageToken") {
                Some(t) => Some(decode_token(&t).ok_or_else(|| SimError::message("The provided next page token is invalid or expired."))?),
                None => None,
            };
            let (hits, order) = st.search(&jql, after.as_deref()).map_err(SimError::message)?;
            let page: Vec<usize> = hits.iter().take(max).copied().collect();
            let issues: Vec<Value> = page
                .iter()
                .map(|i| match &fields {
                    // Without `fields` the new search returns ids only.
                    None => json!({"id": st.issues[*i].id.to_string()}),
                    Some(f) => st.render_issue(&st.issues[*i], v, Some(f)),
                })
                .collect();
            let mut answer = json!({"issues": issues, "isLast": hits.len() <= max});
            if hits.len() > max {
                if let Some(last) = page.last() {
                    answer["nextPageToken"] = json!(encode_token(&State::sort_key(&order, &st.issues[*last])));
                }
            }
            Ok(json_response(StatusCode::OK, &answer))
        }
        _ => Ok(jira_error(StatusCode::NOT_FOUND, &[&format!("null for uri: /rest/api/{v}/{}", rest.join("/"))], &BTreeMap::new())),
    }
    })();
    result.unwrap_or_else(|e| e.response())
}

fn jsm(st: &mut State, method: &Method, rest: &[&str], params: &[(String, String)], body: &[u8], actor: &str) -> HttpResponse {
    let result: Result<HttpResponse, SimError> = (|| match (method, rest) {
        (&Method::POST, ["request"]) => {
            let b = read_json(body)?;
            let desk = b.get("serviceDeskId").and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())));
            let rt = b.get("requestTypeId").and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())));
            if desk.as_deref() != Some(st.config.service_desk_id.as_str()) {
                return Err(SimError::NotFound);
            }
            if rt.as_deref() != Some(st.config.request_type_id.as_str()) {
                return Err(SimError::message("The request type you are trying to use does not exist."));
            }
            let values = b.get("requestFieldValues").and_then(Value::as_object).cloned().unwrap_or_default();
            let adf = b.get("isAdfRequest").and_then(Value::as_bool).unwrap_or(false);
            let on_behalf = b.get("raiseOnBehalfOf").and_then(Value::as_str).map(str::to_string);
            let i = st.create(&values, if adf { 3 } else { 2 }, on_behalf.as_deref().unwrap_or(actor), rt)?;
            Ok(json_response(StatusCode::CREATED, &st.render_request(&st.issues[i])))
        }
        (&Method::GET, ["request", id]) => {
            let i = st.find(id).ok_or(SimError::NotFound)?;
            Ok(json_response(StatusCode::OK, &st.render_request(&st.issues[i])))
        }
        (&Method::POST, ["request", id, "comment"]) => {
            let i = st.find(id).ok_or(SimError::NotFound)?;
            let b = read_json(body)?;
            let text = b.get("body").and_then(Value::as_str).filter(|s| !s.trim().is_empty()).ok_or_else(|| SimError::message("The comment body can not be empty."))?;
            let public = b.get("public").and_then(Value::as_bool).unwrap_or(true);
            // Internal comments are for agents (the service project's agent role and licence).
            if st.denied.contains("ADD_COMMENTS") || (!public && st.denied.contains("SERVICEDESK_AGENT")) {
                return Err(SimError::Forbidden("You do not have permission to add this comment.".into()));
            }
            let c = st.add_comment(i, text_to_adf(&wiki_to_text(text)), public, actor);
            Ok(json_response(StatusCode::CREATED, &st.render_jsm_comment(&c)))
        }
        (&Method::GET, ["request", id, "comment"]) => {
            let i = st.find(id).ok_or(SimError::NotFound)?;
            let start = param(params, "start").and_then(|s| s.parse().ok()).unwrap_or(0usize);
            let limit = param(params, "limit").and_then(|s| s.parse().ok()).unwrap_or(50usize).clamp(1, MAX_PAGE);
            let want_public = param(params, "public") != Some("false");
            let want_internal = param(params, "internal") != Some("false");
            let all: Vec<&Comment> = st.issues[i].comments.iter().filter(|c| if c.public { want_public } else { want_internal }).collect();
            let values: Vec<Value> = all.iter().skip(start).take(limit).map(|c| st.render_jsm_comment(c)).collect();
            let base = format!("{}/rest/servicedeskapi/request/{id}/comment", st.base());
            Ok(json_response(
                StatusCode::OK,
                &json!({"size": values.len(), "start": start, "limit": limit, "isLastPage": start + values.len() >= all.len(), "values": values,
                        "_links": {"base": st.base(), "context": "", "self": base}}),
            ))
        }
        _ => Err(SimError::NotFound),
    })();
    result.unwrap_or_else(|e| e.jsm_response())
}

// ---- HTTP: /sim control surface (no auth, no faults) -----------------------------------------

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Control {
    RateLimited {
        #[serde(default)]
        retry_after_secs: u64,
    },
    ServerError,
    ServiceUnavailable {
        #[serde(default)]
        retry_after_secs: u64,
    },
    Timeout {
        delay_ms: u64,
    },
    LoseResponseAfterCommit,
    Latency {
        ms: u64,
    },
    Chance(super::ChanceSpec),
    WebhookBehaviour(WebhookBehaviour),
}

#[derive(Deserialize)]
struct TransitionControl {
    transition: String,
    resolution: Option<String>,
}

#[derive(Deserialize)]
struct CommentControl {
    text: String,
    #[serde(default)]
    public: bool,
}

fn sim_result(r: Result<Value, SimError>) -> HttpResponse {
    match r {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.response(),
    }
}

async fn sim_issues(sim: web::Data<JiraSim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.issues())
}

async fn sim_changes(sim: web::Data<JiraSim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.changes())
}

#[derive(Deserialize)]
struct ChangeTransitionControl {
    to: String,
    resolution: Option<String>,
}

async fn sim_change_transition(sim: web::Data<JiraSim>, path: web::Path<String>, body: web::Json<ChangeTransitionControl>) -> HttpResponse {
    match &body.resolution {
        Some(r) => sim_result(sim.agent_resolve_change(&path, &body.to, Some(r))),
        None => sim_result(sim.agent_transition_change(&path, &body.to)),
    }
}

async fn sim_change_edit(sim: web::Data<JiraSim>, path: web::Path<String>, body: web::Json<Value>) -> HttpResponse {
    sim_result(sim.agent_edit_change(&path, body.into_inner()))
}

async fn sim_requests(sim: web::Data<JiraSim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.request_log())
}

async fn sim_transition(sim: web::Data<JiraSim>, path: web::Path<String>, body: web::Json<TransitionControl>) -> HttpResponse {
    sim_result(sim.agent_transition(&path, &body.transition, body.resolution.as_deref()))
}

async fn sim_comment(sim: web::Data<JiraSim>, path: web::Path<String>, body: web::Json<CommentControl>) -> HttpResponse {
    sim_result(sim.agent_comment(&path, &body.text, body.public))
}

async fn sim_edit(sim: web::Data<JiraSim>, path: web::Path<String>, body: web::Json<Value>) -> HttpResponse {
    sim_result(sim.agent_edit(&path, body.into_inner()))
}

async fn sim_faults(sim: web::Data<JiraSim>, body: web::Bytes) -> HttpResponse {
    let control = match serde_json::from_slice::<Control>(&body) {
        Ok(c) => c,
        Err(e) => return SimError::message(e.to_string()).response(),
    };
    let fault = match control {
        Control::RateLimited { retry_after_secs } => Fault::RateLimited { retry_after_secs },
        Control::ServerError => Fault::ServerError,
        Control::ServiceUnavailable { retry_after_secs } => Fault::ServiceUnavailable { retry_after_secs },
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
        Control::WebhookBehaviour(b) => {
            sim.set_webhook_behaviour(b);
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
    use reqwest::header::HeaderMap;
    use std::net::TcpListener;

    const SECRET: &str = "whsec-jira";

    struct Api {
        sim: JiraSim,
        base: String,
        http: reqwest::Client,
        email: String,
        token: String,
    }

    impl Api {
        fn start() -> Api {
            let config = SimConfig::default();
            let (email, token) = (config.email.clone(), config.api_token.clone());
            let sim = JiraSim::new(config);
            sim.start(TcpListener::bind("127.0.0.1:0").expect("bind")).expect("start");
            let base = sim.base_url().expect("base url");
            Api { sim, base, http: reqwest::Client::new(), email, token }
        }

        async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, HeaderMap, Value) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let mut req = self.http.request(method, format!("{}{path}", self.base)).basic_auth(&self.email, Some(&self.token));
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.expect("request");
            let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
            let text = resp.text().await.expect("body");
            (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }

        async fn create(&self, summary: &str, description: &str) -> String {
            let (status, _, body) = self
                .call(
                    "POST",
                    "/rest/api/3/issue",
                    Some(json!({"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Incident"}, "summary": summary,
                        "description": text_to_adf(description), "labels": ["siam-hub", "siam-INC-000001"], "priority": {"id": "2"},
                        REFERENCE_FIELD: "INC-000001", URGENCY_FIELD: {"value": "High"}}})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().expect("id").to_string()
        }
    }

    type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

    fn receiver() -> (String, Received) {
        let store: Received = Arc::default();
        let data = web::Data::new(store.clone());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).default_service(web::to(|req: HttpRequest, body: web::Bytes, store: web::Data<Received>| async move {
                let mut headers = HeaderMap::new();
                for (k, v) in req.headers() {
                    if let (Ok(k), Ok(v)) = (reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()), reqwest::header::HeaderValue::from_bytes(v.as_bytes())) {
                        headers.insert(k, v);
                    }
                }
                store.lock().expect("lock").push((headers, String::from_utf8_lossy(&body).into_owned()));
                HttpResponse::Ok().finish()
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        (format!("http://127.0.0.1:{port}/webhooks/jira"), store)
    }

    async fn wait_for(store: &Received, n: usize) -> Vec<(HeaderMap, Value)> {
        for _ in 0..100 {
            if store.lock().expect("lock").len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        store.lock().expect("lock").iter().map(|(h, b)| (h.clone(), serde_json::from_str(b).expect("json body"))).collect()
    }

    fn hdr<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
        h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[actix_web::test]
    async fn change_issues_have_their_own_workflow_fields_and_jql() {
        let api = Api::start();
        let incident = api.create("Mail is down", "Nobody gets mail").await;
        let change = json!({"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Change"}, "summary": "Patch the mail relay",
            "labels": ["siam-hub-change", "siam-CHG-000001"], REFERENCE_FIELD: "CHG-000001", CHANGE_TYPE_FIELD: {"value": "Normal"},
            CHANGE_RISK_FIELD: {"value": "High"}, PLANNED_START_FIELD: "2030-05-20T22:00:00.000+0000", PLANNED_END_FIELD: "2030-05-21T02:00:00Z"}});
        let (status, _, body) = api.call("POST", "/rest/api/3/issue", Some(change)).await;
        assert_eq!(status, 201, "{body}");
        let key = body["key"].as_str().expect("key").to_string();
        let (_, _, issue) = api.call("GET", &format!("/rest/api/3/issue/{key}"), None).await;
        let f = &issue["fields"];
        assert_eq!((f["issuetype"]["name"].as_str(), f["status"]["name"].as_str()), (Some("Change"), Some("Open")));
        assert_eq!(f[CHANGE_RISK_FIELD]["value"], "High");
        // Date-times are rendered in the user's zone (Los Angeles, -0700 in May).
        assert_eq!(f[PLANNED_START_FIELD], "2030-05-20T15:00:00.000-0700");
        assert_eq!(f[PLANNED_END_FIELD], "2030-05-20T19:00:00.000-0700");
        // Change fields are not on the incident screens.
        let (status, _, body) = api.call("PUT", &format!("/rest/api/3/issue/{incident}"), Some(json!({"fields": {CHANGE_RISK_FIELD: {"value": "Low"}}}))).await;
        assert_eq!(status, 400, "{body}");
        let (status, _, body) = api.call("PUT", &format!("/rest/api/3/issue/{key}"), Some(json!({"fields": {PLANNED_END_FIELD: "soon"}}))).await;
        assert_eq!(status, 400, "{body}");
        // The change workflow's transitions, by target status.
        let (_, _, listed) = api.call("GET", &format!("/rest/api/3/issue/{key}/transitions"), None).await;
        let targets: Vec<&str> = listed["transitions"].as_array().into_iter().flatten().filter_map(|t| t["to"]["name"].as_str()).collect();
        assert_eq!(targets, ["Planning", "Awaiting approval", "Awaiting implementation", "Canceled"]);
        let (_, _, found) =
            api.call("POST", "/rest/api/3/search/jql", Some(json!({"jql": "project = OPS AND issuetype = Change AND labels = \"siam-CHG-000001\"", "fields": ["status"]}))).await;
        let ids: Vec<&str> = found["issues"].as_array().into_iter().flatten().filter_map(|i| i["key"].as_str()).collect();
        assert_eq!(ids, [key.as_str()]);
        let (_, _, found) = api.call("GET", "/rest/api/3/search/jql?jql=type%20!%3D%20Change", None).await;
        assert_eq!(found["issues"].as_array().map(Vec::len), Some(1));
        // The change manager's own moves; a done status takes its resolution.
        api.sim.agent_transition_change(&key, "Awaiting implementation").expect("approved");
        api.sim.agent_transition_change(&key, "Implementing").expect("started");
        let done = api.sim.agent_transition_change(&key, "Completed").expect("completed");
        assert_eq!((done["fields"]["status"]["name"].as_str(), done["fields"]["resolution"]["name"].as_str()), (Some("Completed"), Some("Done")));
        assert!(api.sim.agent_transition_change(&incident, "Implementing").is_err(), "an incident is not a change");
        assert!(api.sim.agent_edit_change(&key, json!({CHANGE_TYPE_FIELD: {"value": "Sometimes"}})).is_err());
        assert_eq!((api.sim.changes().len(), api.sim.issues().len()), (1, 1));
        let listed: Value = reqwest::get(format!("{}/sim/changes", api.base)).await.expect("sim").json().await.expect("json");
        assert_eq!(listed[0]["key"], key.as_str());
    }

    #[actix_web::test]
    async fn authentication_is_basic_email_and_api_token() {
        let api = Api::start();
        let url = format!("{}/rest/api/3/myself", api.base);
        let anonymous = api.http.get(&url).send().await.expect("request");
        assert_eq!(anonymous.status(), 401);
        assert_eq!(anonymous.text().await.expect("text"), "Client must be authenticated to access this resource.");
        let wrong = api.http.get(&url).basic_auth(&api.email, Some("bad")).send().await.expect("request");
        assert_eq!(wrong.status(), 401);
        let (status, _, me) = api.call("GET", "/rest/api/3/myself", None).await;
        assert_eq!(status, 200);
        assert_eq!(me["accountId"], HUB_ACCOUNT);
        assert!(api.sim.request_log().iter().take(2).all(|r| r.user.is_none()));
    }

    #[actix_web::test]
    async fn issues_render_adf_on_v3_wiki_on_v2_and_local_offsets() {
        let api = Api::start();
        let id = api.create("VPN down", "Users on *floor 3*\n\nsee C:\\logs").await;
        let (_, _, v3) = api.call("GET", &format!("/rest/api/3/issue/{id}"), None).await;
        assert_eq!(v3["key"], "OPS-1");
        assert_eq!(v3["fields"]["description"]["type"], "doc");
        assert_eq!(v3["fields"]["status"]["id"], "10010");
        assert_eq!(v3["fields"]["status"]["statusCategory"]["key"], "new");
        assert_eq!(v3["fields"]["priority"]["name"], "High");
        assert_eq!(v3["fields"][URGENCY_FIELD]["value"], "High");
        assert_eq!(v3["fields"][REFERENCE_FIELD], "INC-000001");
        assert!(v3["fields"]["assignee"].is_null());
        assert!(v3["fields"]["reporter"].get("emailAddress").is_none(), "privacy hides the e-mail");
        let created = v3["fields"]["created"].as_str().expect("created");
        assert!(created.ends_with("-0800") || created.ends_with("-0700"), "{created}");
        let (_, _, v2) = api.call("GET", "/rest/api/2/issue/OPS-1?fields=description,summary", None).await;
        assert_eq!(v2["fields"]["description"], "Users on \\*floor 3\\*\n\nsee C:\\\\logs");
        assert_eq!(v2["fields"].as_object().expect("fields").len(), 2, "only the asked fields");
        assert_eq!(wiki_to_text(v2["fields"]["description"].as_str().unwrap()), "Users on *floor 3*\n\nsee C:\\logs");
    }

    #[actix_web::test]
    async fn writes_are_validated_like_jira() {
        let api = Api::start();
        let (status, _, body) = api
            .call("POST", "/rest/api/3/issue", Some(json!({"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Incident"}, "summary": "x", "description": "plain"}})))
            .await;
        assert_eq!(status, 400);
        assert_eq!(body["errorMessages"], json!([]));
        assert!(body["errors"]["description"].as_str().unwrap().contains("Atlassian Document"));
        let (status, _, body) = api.call("POST", "/rest/api/3/issue", Some(json!({"fields": {"project": {"key": "NOPE"}, "issuetype": {"name": "Incident"}}}))).await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"]["summary"], "You must specify a summary of the issue.");
        assert!(body["errors"]["project"].is_string());
        let id = api.create("x", "y").await;
        let (status, _, body) = api.call("PUT", &format!("/rest/api/3/issue/{id}"), Some(json!({"fields": {"status": {"id": "10015"}}}))).await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"]["status"], cannot_set("status"));
        let (status, _, body) = api.call("PUT", &format!("/rest/api/3/issue/{id}"), Some(json!({"fields": {"summary": "a\nb"}}))).await;
        assert_eq!(status, 400, "{body}");
        let (status, _, _) =
            api.call("PUT", &format!("/rest/api/3/issue/{id}"), Some(json!({"fields": {"summary": "better", IMPACT_FIELD: {"value": "Minor / Localized"}}}))).await;
        assert_eq!(status, 204);
        let (status, _, body) = api.call("GET", "/rest/api/3/issue/99999", None).await;
        assert_eq!(status, 404);
        assert_eq!(body, json!({"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}));
    }

    #[actix_web::test]
    async fn status_changes_only_through_transitions_with_their_screens() {
        let api = Api::start();
        let id = api.create("x", "y").await;
        let path = format!("/rest/api/3/issue/{id}/transitions");
        let (_, _, list) = api.call("GET", &path, None).await;
        let ts = list["transitions"].as_array().expect("transitions");
        let resolve = ts.iter().find(|t| t["to"]["id"] == "10015").expect("resolve");
        assert_eq!(resolve["id"], "51", "transition ids are not status ids");
        assert_eq!(resolve["hasScreen"], true);
        assert!(ts.iter().all(|t| t["to"]["id"] != "10016"), "no close before resolve");
        let (status, _, body) = api.call("POST", &path, Some(json!({"transition": {"id": "51"}}))).await;
        assert_eq!((status, body["errors"]["resolution"].clone()), (400, json!("Resolution is required.")));
        let (status, _, body) = api.call("POST", &path, Some(json!({"transition": {"id": "11"}, "fields": {"resolution": {"name": "Done"}}}))).await;
        assert_eq!(status, 400, "no screen, no fields: {body}");
        let (status, _, body) = api.call("POST", &path, Some(json!({"transition": {"id": "71"}}))).await;
        assert_eq!((status, body["errorMessages"][0].clone()), (400, json!("Transition id '71' is not valid for this issue.")));
        let (status, _, _) = api.call("POST", &path, Some(json!({"transition": {"id": "51"}, "fields": {"resolution": {"name": "Done"}}}))).await;
        assert_eq!(status, 204);
        let issue = api.sim.issue(&id).expect("issue");
        assert_eq!(issue["fields"]["status"]["id"], "10015");
        assert_eq!(issue["fields"]["resolution"]["name"], "Done");
        assert!(issue["fields"]["resolutiondate"].is_string());
        api.sim.agent_transition(&id, "Reopen", None).expect("reopen");
        let issue = api.sim.issue(&id).expect("issue");
        assert_eq!(issue["fields"]["status"]["id"], "10011");
        assert!(issue["fields"]["resolution"].is_null(), "leaving done clears the resolution");
    }

    #[actix_web::test]
    async fn comments_are_public_or_internal() {
        let api = Api::start();
        let id = api.create("x", "y").await;
        let (s, _, c) = api.call("POST", &format!("/rest/api/3/issue/{id}/comment"), Some(json!({"body": text_to_adf("to the customer")}))).await;
        assert_eq!((s, c["jsdPublic"].clone()), (201, json!(true)));
        let (s, _, c) = api
            .call(
                "POST",
                &format!("/rest/api/3/issue/{id}/comment"),
                Some(json!({"body": text_to_adf("prop"), "properties": [{"key": "sd.public.comment", "value": {"internal": true}}]})),
            )
            .await;
        assert_eq!((s, c["jsdPublic"].clone()), (201, json!(false)));
        let (s, _, c) = api.call("POST", &format!("/rest/servicedeskapi/request/{id}/comment"), Some(json!({"body": "agents \\*only\\*", "public": false}))).await;
        assert_eq!((s, c["public"].clone()), (201, json!(false)));
        assert!(c["created"]["epochMillis"].is_i64());
        let (_, _, list) = api.call("GET", &format!("/rest/api/3/issue/{id}/comment"), None).await;
        assert_eq!(list["total"], 3);
        assert_eq!(list["comments"][2]["jsdPublic"], false);
        assert_eq!(crate::adapters::jira::text::adf_to_text(&list["comments"][2]["body"]), "agents *only*");
        let (_, _, page) = api.call("GET", &format!("/rest/servicedeskapi/request/{id}/comment?public=false"), None).await;
        assert_eq!(page["size"], 2);
        assert_eq!(page["isLastPage"], true);
        let (s, _, _) = api.call("POST", &format!("/rest/api/3/issue/{id}/comment"), Some(json!({"body": "not ADF"}))).await;
        assert_eq!(s, 400);
    }

    #[actix_web::test]
    async fn search_is_jql_with_a_cursor_in_the_users_time_zone() {
        let api = Api::start();
        for n in 0..5 {
            api.create(&format!("issue {n}"), "d").await;
        }
        let (s, _, body) = api.call("GET", "/rest/api/3/search?jql=project=OPS", None).await;
        assert_eq!(s, 410, "{body}");
        let (_, _, ids) = api.call("POST", "/rest/api/3/search/jql", Some(json!({"jql": "project = OPS ORDER BY created ASC"}))).await;
        assert_eq!(ids["issues"][0], json!({"id": "10001"}), "only ids without `fields`");
        // An hour ago in the user's zone (LA), as JQL wants it.
        let since = (Utc::now() - chrono::Duration::hours(1)).with_timezone(&chrono_tz::America::Los_Angeles).format("%Y-%m-%d %H:%M").to_string();
        let jql = format!("labels = \"siam-hub\" AND project = \"OPS\" AND updated >= \"{since}\" ORDER BY updated ASC");
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"jql": jql, "maxResults": 2, "fields": ["summary", "updated"]});
            if let Some(t) = &token {
                body["nextPageToken"] = json!(t);
            }
            let (s, _, page) = api.call("POST", "/rest/api/3/search/jql", Some(body)).await;
            assert_eq!(s, 200, "{page}");
            for i in page["issues"].as_array().expect("issues") {
                seen.push(i["fields"]["summary"].as_str().expect("summary").to_string());
            }
            if page["isLast"] == true {
                assert!(page.get("nextPageToken").is_none());
                break;
            }
            token = page["nextPageToken"].as_str().map(str::to_string);
        }
        assert_eq!(seen, ["issue 0", "issue 1", "issue 2", "issue 3", "issue 4"]);
        let future = (Utc::now() + chrono::Duration::hours(1)).with_timezone(&chrono_tz::America::Los_Angeles).format("%Y-%m-%d %H:%M").to_string();
        let (_, _, none) = api.call("POST", "/rest/api/3/search/jql", Some(json!({"jql": format!("updated >= \"{future}\""), "fields": ["summary"]}))).await;
        assert_eq!(none["issues"], json!([]));
        let (s, _, err) = api.call("POST", "/rest/api/3/search/jql", Some(json!({"jql": "colour = red"}))).await;
        assert_eq!((s, err["errorMessages"][0].clone()), (400, json!("Field 'colour' does not exist or you do not have permission to view it.")));
        let (s, _, _) = api.call("POST", "/rest/api/3/search/jql", Some(json!({"jql": "cf[10100] = \"INC-000001\""}))).await;
        assert_eq!(s, 400, "a text field takes ~, not =");
        let (_, _, hit) = api.call("GET", "/rest/api/3/search/jql?jql=cf%5B10100%5D%20~%20%22INC-000001%22&fields=summary", None).await;
        assert_eq!(hit["issues"].as_array().map(Vec::len), Some(5));
    }

    #[actix_web::test]
    async fn faults_rate_limit_and_lost_responses() {
        let api = Api::start();
        api.sim.push_fault(Fault::RateLimited { retry_after_secs: 7 });
        let (s, h, body) = api.call("GET", "/rest/api/3/myself", None).await;
        assert_eq!(s, 429);
        assert_eq!(hdr(&h, "retry-after"), "7");
        assert_eq!(hdr(&h, "x-ratelimit-remaining"), "0");
        assert!(chrono::NaiveDateTime::parse_from_str(hdr(&h, "x-ratelimit-reset"), "%Y-%m-%dT%H:%MZ").is_ok(), "{}", hdr(&h, "x-ratelimit-reset"));
        assert_eq!(body["errorMessages"][0], "Rate limit exceeded.");
        api.sim.push_fault(Fault::ServiceUnavailable { retry_after_secs: 2 });
        let (s, h, _) = api.call("GET", "/rest/api/3/myself", None).await;
        assert_eq!((s, hdr(&h, "retry-after")), (503, "2"));
        api.sim.push_fault(Fault::LoseResponseAfterCommit);
        let (s, _, _) = api.call("POST", "/rest/api/3/issue", Some(json!({"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Incident"}, "summary": "lost"}}))).await;
        assert_eq!(s, 504);
        assert_eq!(api.sim.issues().len(), 1, "committed although the answer was lost");
        let log = api.sim.request_log();
        assert_eq!(log.iter().map(|l| l.status).collect::<Vec<_>>(), [429, 503, 504]);
        assert_eq!(log[2].body.as_ref().and_then(|b| b.pointer("/fields/summary")), Some(&json!("lost")));
    }

    #[actix_web::test]
    async fn jsm_requests_answer_customer_request_dtos() {
        let api = Api::start();
        let (s, _, r) = api
            .call(
                "POST",
                "/rest/servicedeskapi/request",
                Some(json!({"serviceDeskId": "10", "requestTypeId": "25", "isAdfRequest": false, "raiseOnBehalfOf": CUSTOMER_ACCOUNT,
                            "requestFieldValues": {"summary": "Request JSD help via REST", "description": "I need a new *mouse* for my Mac"}})),
            )
            .await;
        assert_eq!(s, 201, "{r}");
        assert_eq!(r["issueKey"], "OPS-1");
        assert_eq!(r["currentStatus"]["statusCategory"], "NEW");
        assert_eq!(r["requestFieldValues"][0], json!({"fieldId": "summary", "label": "Summary", "value": "Request JSD help via REST"}));
        assert!(r["createdDate"]["iso8601"].as_str().unwrap().len() == 24, "{}", r["createdDate"]);
        assert_eq!(r["reporter"]["emailAddress"], "j.smith@example.org");
        let issue = api.sim.issue("OPS-1").expect("issue");
        assert_eq!(crate::adapters::jira::text::adf_to_text(&issue["fields"]["description"]), "I need a new mouse for my Mac");
        assert_eq!(issue["fields"][REQUEST_TYPE_FIELD]["requestType"]["id"], "25");
        let (s, _, e) = api.call("POST", "/rest/servicedeskapi/request", Some(json!({"serviceDeskId": "99", "requestTypeId": "25"}))).await;
        assert_eq!(s, 404);
        assert!(e["errorMessage"].is_string() && e["i18nErrorMessage"]["i18nKey"].is_string(), "{e}");
    }

    #[actix_web::test]
    async fn webhooks_are_v2_signed_and_keep_their_identifier() {
        let api = Api::start();
        let (url, store) = receiver();
        api.sim.set_webhook(Some(WebhookTarget { url, secret: Some(SECRET.into()) }));
        api.sim.set_webhook_behaviour(WebhookBehaviour { duplicate: true, ..Default::default() });
        let id = api.create("VPN", "Down *everywhere*").await;
        let got = wait_for(&store, 2).await;
        assert_eq!(got.len(), 2);
        assert_eq!(hdr(&got[0].0, "x-atlassian-webhook-identifier"), hdr(&got[1].0, "x-atlassian-webhook-identifier"));
        let raw = store.lock().expect("lock")[0].1.clone();
        assert_eq!(hdr(&got[0].0, "x-hub-signature"), sign_webhook(SECRET, &raw));
        assert_eq!(got[0].1["webhookEvent"], "jira:issue_created");
        assert_eq!(got[0].1["issue"]["fields"]["description"], "Down \\*everywhere\\*", "webhooks carry wiki markup");
        assert!(got[0].1["timestamp"].is_i64());
        api.sim.set_webhook_behaviour(WebhookBehaviour::default());
        api.sim.agent_transition(&id, "Start work", None).expect("transition");
        api.sim.agent_comment(&id, "looking", false).expect("comment");
        let got = wait_for(&store, 4).await;
        let t = &got[2].1;
        assert_eq!((t["webhookEvent"].as_str(), t["issue_event_type_name"].as_str()), (Some("jira:issue_updated"), Some("issue_work_started")));
        assert_eq!(
            t["changelog"]["items"][0],
            json!({"field": "status", "fieldtype": "jira", "fieldId": "status", "from": "10010", "fromString": "Waiting for support", "to": "10011", "toString": "Work in progress"})
        );
        let c = &got[3].1;
        assert_eq!(c["webhookEvent"], "comment_created");
        assert_eq!(c["comment"]["jsdPublic"], false);
        assert_eq!(c["comment"]["body"], "looking");
        assert!(c["issue"]["fields"].get("updated").is_none(), "comment webhooks carry a summary of the issue");
    }

    #[actix_web::test]
    async fn webhooks_can_be_reordered_dropped_and_redelivered_under_new_identifiers() {
        let api = Api::start();
        let (url, store) = receiver();
        api.sim.set_webhook(Some(WebhookTarget { url, secret: None }));
        let id = api.create("x", "y").await;
        wait_for(&store, 1).await;
        api.sim.set_webhook_behaviour(WebhookBehaviour { reverse_order_of_next: 2, drop_next: 1, ..Default::default() });
        api.sim.agent_edit(&id, json!({"summary": "dropped"})).expect("edit");
        api.sim.agent_edit(&id, json!({"summary": "first"})).expect("edit");
        api.sim.agent_edit(&id, json!({"summary": "second"})).expect("edit");
        let got = wait_for(&store, 3).await;
        let summaries: Vec<&str> = got.iter().skip(1).map(|(_, b)| b["issue"]["fields"]["summary"].as_str().unwrap()).collect();
        assert_eq!(summaries, ["second", "first"]);
        assert!(got[0].0.get("x-hub-signature").is_none(), "no secret, no signature");
        api.sim.set_webhook_behaviour(WebhookBehaviour { duplicate_with_new_identifier: true, ..Default::default() });
        api.sim.agent_edit(&id, json!({"priority": {"name": "Highest"}, "assignee": {"accountId": AGENT_ACCOUNT}})).expect("edit");
        let got = wait_for(&store, 5).await;
        assert_ne!(hdr(&got[3].0, "x-atlassian-webhook-identifier"), hdr(&got[4].0, "x-atlassian-webhook-identifier"));
        assert_eq!(got[3].1, got[4].1);
        assert_eq!(got[3].1["issue"]["fields"]["assignee"]["displayName"], "Alana Grant");
    }
}
