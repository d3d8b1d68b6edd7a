//! Stateful simulator of the ServiceNow Table API, used by integration tests and by demo mode.
//!
//! The simulator owns in-memory `incident` and `change_request` tables, the `sys_journal_field`
//! rows that hold work notes and comments, and synthetic `sys_user` / `sys_user_group` /
//! `cmdb_ci` / `cmdb_ci_service` rows so that every reference `link` it hands out resolves. It reproduces the traps of the real API
//! (see `reference/suppliers/servicenow.md`): every scalar is a string, three display modes,
//! journal fields that read back as `""`, data-policy 403s, silently ignored unknown fields and
//! query terms, `Link`/`X-Total-Count` paging, and injectable failures (429, 500, slow answers,
//! lost responses after commit, a hibernating instance answering HTML with 200).
//!
//! It also serves what a first-contact check and discovery read: `sys_choice` (the base choice
//! lists of incident and change_request plus a site's own, [`SiteChoice`]) and
//! `sys_user_has_role` (the integration user's roles, dot-walked `role.name` and
//! `user.user_name` on request). The roles drive the incident ACLs as on an instance: without
//! `itil` (or `admin`) the user sees only incidents it opened, its creates, updates and
//! attachments get 403, and its work notes are dropped without an error.
//!
//! ServiceNow has no standard webhook. The product models the supplier's push as an outbound
//! business rule: after every committed insert or update of an incident (including the hub's
//! own writes, which the hub must recognise as echoes) the simulator POSTs
//! `{"event","record","journal"}` to the configured URL, signed with HMAC-SHA256 over
//! `"<timestamp>.<body>"`. Deliveries leave through one ordered background queue so tests are
//! deterministic; misordering, duplicates and losses happen only when asked for through
//! [`WebhookBehaviour`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::outbox::{Notification, Outbox};

/// A stored row: ServiceNow transports every scalar as a string, so the store does too.
type Row = BTreeMap<String, String>;

const SN_JSON: &str = "application/json;charset=UTF-8";
const DATE_FMT: &str = "%Y-%m-%d %H:%M:%S";
const DEFAULT_AGENT: &str = "agent.smith";
const DEFAULT_LIMIT: usize = 10_000;
/// Display-mode dates are rendered for a calling user in a fixed US/Pacific-like zone, so
/// adapters that forget to ask for raw values see shifted times, as on a real instance.
const DISPLAY_TZ_OFFSET_SECS: i64 = -8 * 3600;
const WEBHOOK_ATTEMPTS: u32 = 4;
const CHANGE_TABLE: &str = "change_request";

/// Incident fields with their insert defaults; audit fields, number and sys_id are filled at
/// insert time.
#[rustfmt::skip]
const INCIDENT_FIELDS: &[(&str, &str)] = &[
    ("active", "true"), ("assigned_to", ""), ("assignment_group", ""), ("caller_id", ""),
    ("category", ""), ("close_code", ""), ("close_notes", ""), ("closed_at", ""),
    ("closed_by", ""), ("cmdb_ci", ""), ("comments", ""), ("contact_type", ""),
    ("correlation_display", ""), ("correlation_id", ""), ("description", ""),
    ("escalation", "0"), ("hold_reason", ""), ("impact", "3"), ("incident_state", "1"),
    ("notify", "1"), ("number", ""), ("opened_at", ""), ("opened_by", ""), ("priority", "5"),
    ("reassignment_count", "0"), ("reopen_count", "0"), ("resolved_at", ""),
    ("resolved_by", ""), ("severity", "3"), ("short_description", ""), ("sla_due", ""),
    ("state", "1"), ("subcategory", ""), ("sys_class_name", "incident"),
    ("sys_created_by", ""), ("sys_created_on", ""), ("sys_id", ""), ("sys_mod_count", "0"),
    ("sys_updated_by", ""), ("sys_updated_on", ""), ("task_effective_number", ""),
    ("urgency", "3"), ("work_notes", ""),
];

/// Everything else in a write body is ignored, as ServiceNow does for unknown and read-only
/// fields (priority included: it is computed by the data lookup).
#[rustfmt::skip]
const WRITABLE_FIELDS: &[&str] = &[
    "assigned_to", "assignment_group", "caller_id", "category", "close_code", "close_notes",
    "cmdb_ci", "contact_type", "correlation_display", "correlation_id", "description",
    "escalation", "hold_reason", "impact", "notify", "severity", "short_description", "state",
    "subcategory", "urgency",
];

#[rustfmt::skip]
const JOURNAL_FIELDS: &[&str] = &[
    "element", "element_id", "name", "sys_created_by", "sys_created_on", "sys_id", "sys_tags",
    "value",
];

/// Choice labels of the base system (field, value, label). Unknown values display as themselves.
#[rustfmt::skip]
const CHOICES: &[(&str, &str, &str)] = &[
    ("state", "1", "New"), ("state", "2", "In Progress"), ("state", "3", "On Hold"),
    ("state", "6", "Resolved"), ("state", "7", "Closed"), ("state", "8", "Canceled"),
    ("impact", "1", "1 - High"), ("impact", "2", "2 - Medium"), ("impact", "3", "3 - Low"),
    ("priority", "1", "1 - Critical"), ("priority", "2", "2 - High"),
    ("priority", "3", "3 - Moderate"), ("priority", "4", "4 - Low"),
    ("priority", "5", "5 - Planning"),
    ("hold_reason", "1", "Awaiting Caller"), ("hold_reason", "3", "Awaiting Problem"),
    ("hold_reason", "4", "Awaiting Vendor"), ("hold_reason", "5", "Awaiting Change"),
    ("escalation", "0", "Normal"), ("escalation", "1", "Moderate"), ("escalation", "2", "High"),
    ("escalation", "3", "Overdue"), ("notify", "1", "Do Not Notify"), ("notify", "2", "Send Email"),
    ("category", "inquiry", "Inquiry / Help"), ("category", "software", "Software"),
    ("category", "hardware", "Hardware"), ("category", "network", "Network"),
    ("category", "database", "Database"),
];

/// Change request fields with their insert defaults (base system: a new normal change, not yet
/// submitted for approval); audit fields, number and sys_id are filled at insert time.
#[rustfmt::skip]
const CHANGE_FIELDS: &[(&str, &str)] = &[
    ("active", "true"), ("approval", "not requested"), ("assigned_to", ""),
    ("assignment_group", ""), ("backout_plan", ""), ("business_service", ""),
    ("category", "Other"), ("close_code", ""), ("close_notes", ""), ("closed_at", ""),
    ("closed_by", ""), ("cmdb_ci", ""), ("comments", ""), ("correlation_display", ""),
    ("correlation_id", ""), ("description", ""), ("end_date", ""), ("impact", "3"),
    ("implementation_plan", ""), ("justification", ""), ("number", ""), ("on_hold", "false"),
    ("on_hold_reason", ""), ("opened_at", ""), ("opened_by", ""), ("priority", "4"),
    ("requested_by", ""), ("risk", "3"), ("short_description", ""), ("start_date", ""),
    ("state", "-5"), ("sys_class_name", "change_request"), ("sys_created_by", ""),
    ("sys_created_on", ""), ("sys_id", ""), ("sys_mod_count", "0"), ("sys_updated_by", ""),
    ("sys_updated_on", ""), ("task_effective_number", ""), ("test_plan", ""),
    ("type", "normal"), ("urgency", "3"), ("work_end", ""), ("work_notes", ""),
    ("work_start", ""),
];

/// The change request fields a Table API write sets; everything else is ignored.
#[rustfmt::skip]
const WRITABLE_CHANGE_FIELDS: &[&str] = &[
    "approval", "assigned_to", "assignment_group", "backout_plan", "business_service",
    "category", "close_code", "close_notes", "cmdb_ci", "correlation_display", "correlation_id",
    "description", "end_date", "impact", "implementation_plan", "justification", "on_hold",
    "on_hold_reason", "priority", "requested_by", "risk", "short_description", "start_date",
    "state", "test_plan", "type", "urgency", "work_end", "work_start",
];

/// Change request date fields a caller sets (glide_date_time, UTC in raw mode).
const CHANGE_DATE_FIELDS: &[&str] = &["start_date", "end_date", "work_start", "work_end"];

/// Change request choice labels of the base system (field, value, label).
#[rustfmt::skip]
const CHANGE_CHOICES: &[(&str, &str, &str)] = &[
    ("state", "-5", "New"), ("state", "-4", "Assess"), ("state", "-3", "Authorize"),
    ("state", "-2", "Scheduled"), ("state", "-1", "Implement"), ("state", "0", "Review"),
    ("state", "3", "Closed"), ("state", "4", "Canceled"),
    ("approval", "not requested", "Not Yet Requested"), ("approval", "requested", "Requested"),
    ("approval", "approved", "Approved"), ("approval", "rejected", "Rejected"),
    ("type", "standard", "Standard"), ("type", "normal", "Normal"),
    ("type", "emergency", "Emergency"),
    ("risk", "1", "Very High"), ("risk", "2", "High"), ("risk", "3", "Moderate"),
    ("risk", "4", "Low"),
    ("impact", "1", "1 - High"), ("impact", "2", "2 - Medium"), ("impact", "3", "3 - Low"),
    ("urgency", "1", "1 - High"), ("urgency", "2", "2 - Medium"), ("urgency", "3", "3 - Low"),
    ("priority", "1", "1 - Critical"), ("priority", "2", "2 - High"),
    ("priority", "3", "3 - Moderate"), ("priority", "4", "4 - Low"),
    ("priority", "5", "5 - Planning"),
    ("close_code", "successful", "Successful"),
    ("close_code", "successful_issues", "Successful with issues"),
    ("close_code", "unsuccessful", "Unsuccessful"),
];

/// Incident close codes of the base system (value == label).
#[rustfmt::skip]
const CLOSE_CODES: &[&str] = &[
    "Solved (Work Around)", "Solved (Permanently)", "Solved Remotely (Work Around)",
    "Solved Remotely (Permanently)", "Not Solved (Not Reproducible)", "Not Solved (Too Costly)",
    "Closed/Resolved by Caller",
];

/// `sys_choice` columns (the dictionary's choice lists, one row per table, element, value and
/// language).
#[rustfmt::skip]
const CHOICE_FIELDS: &[&str] = &[
    "dependent_value", "element", "inactive", "label", "language", "name", "sequence", "sys_id",
    "value",
];

/// `sys_user_has_role` columns, with the dot-walked ones a caller may name in `sysparm_query`
/// and `sysparm_fields`.
#[rustfmt::skip]
const USER_ROLE_FIELDS: &[&str] = &[
    "inherited", "role", "role.name", "state", "sys_id", "user", "user.user_name",
];

/// Roles whose holders read every incident (the base `incident` read ACLs).
const INCIDENT_READ_ROLES: &[&str] = &["admin", "itil", "sn_incident_read", "sn_incident_write"];
/// Roles whose holders create and update incidents and attach files to them.
const INCIDENT_WRITE_ROLES: &[&str] = &["admin", "itil", "sn_incident_write"];
/// Roles whose holders write `work_notes` (and read the journal); for anyone else the field
/// write ACL drops the value without an error, as on an instance.
const WORK_NOTES_ROLES: &[&str] = &["admin", "itil"];

/// Tables that exist only so reference links resolve; their rows are derived on the fly.
const REFERENCE_TABLES: &[&str] = &["sys_user", "sys_user_group", "cmdb_ci", "cmdb_ci_service"];
const REFERENCE_FIELDS: &[&str] = &["active", "name", "sys_id", "user_name"];

// ---- Public API ------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Basic-auth user the hub uses, e.g. "hub.integration".
    pub user: String,
    pub password: String,
    /// Used in link URLs until the server is started (then the real address is used).
    pub instance_name: String,
    pub webhook: Option<WebhookTarget>,
    /// Added to the simulator's own "now" (simulates a supplier clock that is off).
    pub clock_skew_secs: i64,
    /// The instance's priority lookup (`[impact-1][urgency-1]`), when customised; the base
    /// `dl_u_priority` table otherwise.
    pub priority_lookup: Option<Vec<Vec<u8>>>,
    /// The integration user's roles (`sys_user_has_role`). Without `itil` (or `admin`) it reads
    /// only the incidents it opened, cannot create or update them (403), and its work notes
    /// are dropped without an error.
    pub roles: Vec<String>,
    /// The site's own choices on top of the base system's (custom states, close codes, hold
    /// reasons), served by `sys_choice` and shown in display mode.
    pub extra_choices: Vec<SiteChoice>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            user: "hub.integration".into(),
            password: "hub-password".into(),
            instance_name: "dev-sim".into(),
            webhook: None,
            clock_skew_secs: 0,
            priority_lookup: None,
            roles: vec!["itil".into(), "snc_platform_rest_api_access".into()],
            extra_choices: Vec::new(),
        }
    }
}

/// A choice a site added to one of its choice lists (`sys_choice`).
#[derive(Clone, Debug)]
pub struct SiteChoice {
    /// `incident` or `change_request`.
    pub table: String,
    /// The field, e.g. `state`, `close_code`, `hold_reason`.
    pub element: String,
    pub value: String,
    pub label: String,
}

impl SiteChoice {
    pub fn new(table: &str, element: &str, value: &str, label: &str) -> SiteChoice {
        SiteChoice { table: table.into(), element: element.into(), value: value.into(), label: label.into() }
    }
}

#[derive(Clone, Debug)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: String,
    pub display_value: DisplayMode,
}

/// `sysparm_display_value` = false | true | all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisplayMode {
    Raw,
    Display,
    All,
}

#[derive(Clone, Debug)]
pub enum Fault {
    RateLimited { retry_after_secs: u64 },
    ServerError,
    Timeout { delay: Duration },
    LoseResponseAfterCommit,
    Hibernating,
}

super::chance_faults!(Fault);

/// What happens to the next webhook deliveries.
pub type WebhookBehaviour = super::outbox::Behaviour;

pub use super::LoggedRequest;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("No Record found")]
    NotFound,
    #[error("Data Policy Exception: {0}")]
    DataPolicy(String),
    #[error("Exception while reading request: {0}")]
    BadRequest(String),
    #[error("Operation Failed: {0}")]
    InsertFailed(String),
}

impl SimError {
    fn response(&self) -> HttpResponse {
        match self {
            SimError::NotFound => not_found(),
            SimError::DataPolicy(detail) => sn_error(StatusCode::FORBIDDEN, "Operation Failed", json!(format!("Data Policy Exception: {detail}"))),
            SimError::InsertFailed(detail) => sn_error(StatusCode::FORBIDDEN, "Operation Failed", json!(detail)),
            SimError::BadRequest(detail) => sn_error(StatusCode::BAD_REQUEST, "Exception while reading request", json!(detail)),
        }
    }
}

#[derive(Clone)]
pub struct ServiceNowSim {
    inner: Arc<Mutex<State>>,
}

impl ServiceNowSim {
    pub fn new(config: SimConfig) -> Self {
        let state = State {
            config,
            base_url: None,
            incidents: Vec::new(),
            changes: Vec::new(),
            journal: Vec::new(),
            attachments: Vec::new(),
            next_number: 10_001,
            next_change_number: 30_001,
            faults: VecDeque::new(),
            chance: super::Chance::default(),
            latency: Duration::ZERO,
            write_answer_delay: Duration::ZERO,
            log: Vec::new(),
            outbox: Outbox::new("servicenow", WEBHOOK_ATTEMPTS),
        };
        ServiceNowSim { inner: Arc::new(Mutex::new(state)) }
    }

    /// Starts the HTTP server on `listener` and spawns it on the current tokio runtime.
    pub fn start(&self, listener: std::net::TcpListener) -> std::io::Result<ServerHandle> {
        let sim = self.clone();
        let running = super::serve("ServiceNowSim", listener, move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::new(sim.clone()))
                // The instance default (com.glide.attachment.max_size) is far above any test file.
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route("/sim/incidents", web::get().to(sim_incidents))
                .route("/sim/incidents/{sys_id}/agent", web::post().to(sim_agent))
                .route("/sim/changes", web::get().to(sim_changes))
                .route("/sim/changes/{sys_id}/agent", web::post().to(sim_change_agent))
                .route("/sim/faults", web::post().to(sim_faults))
                .route("/sim/requests", web::get().to(sim_requests))
                .route("/api/now/{rest:.*}", web::route().to(table_api));
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

    /// Sets the instance's clock `secs` ahead of real time (behind when negative), as a server
    /// whose clock was set wrong stamps what it writes.
    pub fn set_clock_skew(&self, secs: i64) {
        self.lock().config.clock_skew_secs = secs;
    }

    /// Gives the integration user these roles (and only these).
    pub fn set_roles(&self, roles: &[&str]) {
        self.lock().config.roles = roles.iter().map(|r| r.to_string()).collect();
    }

    /// Adds a site's own choice to a choice list.
    pub fn add_choice(&self, choice: SiteChoice) {
        self.lock().config.extra_choices.push(choice);
    }

    /// Customises the instance's priority lookup (`[impact-1][urgency-1]`).
    pub fn set_priority_lookup(&self, rows: Option<Vec<Vec<u8>>>) {
        self.lock().config.priority_lookup = rows;
    }

    /// All incidents in raw mode, in creation order.
    pub fn incidents(&self) -> Vec<Value> {
        let st = self.lock();
        let opts = st.inspection_opts();
        st.incidents.iter().map(|r| st.render("incident", r, &opts)).collect()
    }

    pub fn incident_by_correlation(&self, correlation_id: &str) -> Vec<Value> {
        let st = self.lock();
        let opts = st.inspection_opts();
        st.incidents.iter().filter(|r| field(r, "correlation_id") == correlation_id).map(|r| st.render("incident", r, &opts)).collect()
    }

    /// `sys_journal_field` rows of one incident, oldest first.
    pub fn journal(&self, sys_id: &str) -> Vec<Value> {
        let st = self.lock();
        st.journal.iter().filter(|r| field(r, "element_id") == sys_id).map(row_to_value).collect()
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Changes the record as a human agent ("agent.smith") would in the ServiceNow UI.
    pub fn agent_update(&self, sys_id: &str, fields: Value) -> Result<Value, SimError> {
        self.agent_update_as(sys_id, DEFAULT_AGENT, fields)
    }

    pub fn agent_update_as(&self, sys_id: &str, user: &str, fields: Value) -> Result<Value, SimError> {
        self.agent_save("incident", sys_id, user, fields)
    }

    /// An agent's form save on a record of `table`, answered in raw mode.
    fn agent_save(&self, table: &str, sys_id: &str, user: &str, fields: Value) -> Result<Value, SimError> {
        let Value::Object(fields) = fields else {
            return Err(SimError::BadRequest("expected a JSON object of fields".into()));
        };
        let mut st = self.lock();
        let record = st.write(table, Some(sys_id), &fields, user)?;
        let opts = st.inspection_opts();
        Ok(st.render(table, &record, &opts))
    }

    /// All change requests in raw mode, in creation order.
    pub fn changes(&self) -> Vec<Value> {
        let st = self.lock();
        let opts = st.inspection_opts();
        st.changes.iter().map(|r| st.render(CHANGE_TABLE, r, &opts)).collect()
    }

    /// Changes the change request as the supplier's own change manager ("agent.smith") would
    /// in the ServiceNow UI.
    pub fn agent_update_change(&self, sys_id: &str, fields: Value) -> Result<Value, SimError> {
        self.agent_update_change_as(sys_id, DEFAULT_AGENT, fields)
    }

    pub fn agent_update_change_as(&self, sys_id: &str, user: &str, fields: Value) -> Result<Value, SimError> {
        self.agent_save(CHANGE_TABLE, sys_id, user, fields)
    }

    /// Attachments of one incident: (file name, content type, bytes), oldest first.
    pub fn attachments(&self, sys_id: &str) -> Vec<(String, String, Vec<u8>)> {
        self.lock()
            .attachments
            .iter()
            .filter(|(row, _)| field(row, "table_sys_id") == sys_id)
            .map(|(row, data)| (field(row, "file_name").to_string(), field(row, "content_type").to_string(), data.clone()))
            .collect()
    }

    /// An agent attaches a file in the ServiceNow UI. The instance's business rule touches the
    /// parent incident (so `sys_updated_on` moves and the webhook fires), as integrations that
    /// sync attachments usually configure.
    pub fn agent_attach(&self, sys_id: &str, file_name: &str, content_type: &str, data: Vec<u8>) -> Result<Value, SimError> {
        let mut st = self.lock();
        let row = st.insert_attachment(sys_id, file_name, content_type, data, DEFAULT_AGENT)?;
        let i = st.position_in("incident", sys_id).ok_or(SimError::NotFound)?;
        let now = st.now().format(DATE_FMT).to_string();
        let mut rec = st.incidents[i].clone();
        stamp_update(&mut rec, DEFAULT_AGENT, &now);
        st.incidents[i] = rec.clone();
        st.enqueue_webhook("incident", "incident.updated", &rec, &[]);
        Ok(row_to_value(&row))
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// Answers every write `d` after committing it (its notification goes out at once).
    pub fn set_write_answer_delay(&self, d: Duration) {
        self.lock().write_answer_delay = d;
    }

    /// Answers a share of the API calls with faults, by seeded chance (after queued faults).
    pub fn set_chance(&self, spec: super::ChanceSpec) {
        self.lock().chance = super::Chance::new(spec);
    }

    pub fn set_webhook_behaviour(&self, b: WebhookBehaviour) {
        self.lock().outbox.behaviour = b;
    }

    /// A poisoned lock only means a panic elsewhere; the data is still usable for a simulator.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn authenticate(&self, req: &HttpRequest) -> Option<String> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let st = self.lock();
        (user == st.config.user && password == st.config.password).then(|| user.to_string())
    }
}

/// `X-Siam-Signature` value without the `sha256=` prefix: hex HMAC-SHA256 of `"<ts>.<body>"`.
pub fn sign_webhook(secret: &str, timestamp: &str, body: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC accepts keys of any length, so this arm is unreachable in practice.
        Err(_) => String::new(),
    }
}

// ---- State and write semantics ---------------------------------------------------------------

struct State {
    config: SimConfig,
    base_url: Option<String>,
    incidents: Vec<Row>,
    /// The `change_request` table, in creation order.
    changes: Vec<Row>,
    journal: Vec<Row>,
    /// `sys_attachment` metadata rows and their content, by attachment sys_id.
    attachments: Vec<(Row, Vec<u8>)>,
    next_number: u64,
    next_change_number: u64,
    faults: VecDeque<Fault>,
    chance: super::Chance,
    latency: Duration,
    /// How long a write's answer takes after the write is committed (and its notification
    /// sent): a busy instance whose notification overtakes its answer.
    write_answer_delay: Duration,
    log: Vec<LoggedRequest>,
    outbox: Outbox,
}

/// How to render rows for one response.
struct ReadOpts {
    mode: DisplayMode,
    exclude_links: bool,
    fields: Option<Vec<String>>,
    /// `<base>/api/now[/v1|/v2]`, so links repeat the version prefix the caller used.
    api_base: String,
}

impl State {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        chrono::Duration::try_seconds(self.config.clock_skew_secs).and_then(|skew| now.checked_add_signed(skew)).unwrap_or(now)
    }

    fn base(&self) -> String {
        self.base_url.clone().unwrap_or_else(|| format!("https://{}.service-now.com", self.config.instance_name))
    }

    /// Whether the integration user holds one of `roles`.
    fn user_has(&self, roles: &[&str]) -> bool {
        self.config.roles.iter().any(|r| roles.contains(&r.as_str()))
    }

    /// Whether the integration user sees `row` of `incident`: every row with a read role, only
    /// those it opened or is the caller of without one.
    fn visible(&self, row: &Row, user: &str) -> bool {
        self.user_has(INCIDENT_READ_ROLES) || field(row, "opened_by") == user || field(row, "caller_id") == user
    }

    /// `sys_choice`: the base choice lists and the site's own, in English.
    fn choice_rows(&self) -> Vec<Row> {
        let base = CHOICES
            .iter()
            .filter(|(f, _, _)| !matches!(*f, "escalation" | "notify"))
            .map(|(f, v, l)| ("incident", *f, *v, *l))
            .chain(CHOICES.iter().filter(|(f, _, _)| *f == "impact").map(|(_, v, l)| ("incident", "urgency", *v, *l)))
            .chain(CLOSE_CODES.iter().map(|c| ("incident", "close_code", *c, *c)))
            .chain(CHANGE_CHOICES.iter().map(|(f, v, l)| (CHANGE_TABLE, *f, *v, *l)))
            .map(|(t, f, v, l)| (t.to_string(), f.to_string(), v.to_string(), l.to_string()));
        let site = self.config.extra_choices.iter().map(|c| (c.table.clone(), c.element.clone(), c.value.clone(), c.label.clone()));
        base.chain(site)
            .enumerate()
            .map(|(i, (table, element, value, label))| {
                let mut row = Row::new();
                row.insert("sys_id".into(), format!("{:032x}", 0x5c00_0000_u64 + i as u64));
                row.insert("name".into(), table);
                row.insert("element".into(), element);
                row.insert("value".into(), value);
                row.insert("label".into(), label);
                row.insert("sequence".into(), (i * 10).to_string());
                row.insert("inactive".into(), "false".into());
                row.insert("language".into(), "en".into());
                row.insert("dependent_value".into(), String::new());
                row
            })
            .collect()
    }

    /// `sys_user_has_role`: the integration user's roles.
    fn user_role_rows(&self) -> Vec<Row> {
        self.config
            .roles
            .iter()
            .enumerate()
            .map(|(i, role)| {
                let mut row = Row::new();
                row.insert("sys_id".into(), format!("{:032x}", 0x7a00_0000_u64 + i as u64));
                row.insert("user".into(), self.config.user.clone());
                row.insert("user.user_name".into(), self.config.user.clone());
                row.insert("role".into(), role.clone());
                row.insert("role.name".into(), role.clone());
                row.insert("inherited".into(), "false".into());
                row.insert("state".into(), "active".into());
                row
            })
            .collect()
    }

    /// A site's own label for a choice, if it declared one.
    fn site_label(&self, table: &str, element: &str, raw: &str) -> Option<String> {
        self.config.extra_choices.iter().find(|c| c.table == table && c.element == element && c.value == raw).map(|c| c.label.clone())
    }

    fn inspection_opts(&self) -> ReadOpts {
        ReadOpts { mode: DisplayMode::Raw, exclude_links: false, fields: None, api_base: format!("{}/api/now", self.base()) }
    }

    fn blank_incident(&mut self, user: &str, now: &str) -> Row {
        let number = format!("INC{:07}", self.next_number);
        self.next_number += 1;
        blank_task(INCIDENT_FIELDS, number, &["opened_by", "sys_created_by", "sys_updated_by"], user, now)
    }

    /// Insert (`sys_id` = None) or update an incident the way a form save does on the instance:
    /// apply writable fields, run the "business rules" (state side effects, priority lookup),
    /// enforce data policies, append journal rows, audit, and fire the outbound webhook.
    fn write_incident(&mut self, sys_id: Option<&str>, body: &Map<String, Value>, user: &str) -> Result<Row, SimError> {
        let now = self.now().format(DATE_FMT).to_string();
        let (before, index) = self.open_form("incident", sys_id, body, user, &now)?;
        let mut rec = before.clone();
        let notes = apply_form(body, &mut rec, |rec, f, text| {
            if WRITABLE_FIELDS.contains(&f) {
                rec.insert(f.to_string(), text);
            }
        });
        let lookup = self.config.priority_lookup.clone();
        apply_business_rules(&before, &mut rec, index.is_none(), user, &now, lookup.as_deref());
        check_data_policy(&rec)?;

        let Some(new_rows) = self.commit_form("incident", &before, &mut rec, index, notes, user, &now) else {
            return Ok(rec);
        };
        let event = if index.is_some() { "incident.updated" } else { "incident.created" };
        self.enqueue_webhook("incident", event, &rec, &new_rows);
        Ok(rec)
    }

    fn blank_change(&mut self, user: &str, now: &str) -> Row {
        let number = format!("CHG{:07}", self.next_change_number);
        self.next_change_number += 1;
        blank_task(CHANGE_FIELDS, number, &["opened_by", "requested_by", "sys_created_by", "sys_updated_by"], user, now)
    }

    /// Insert (`sys_id` = None) or update a change request as a form save does: apply the
    /// writable fields (a date the instance cannot read is not stored), run the task rules
    /// (closing or cancelling closes the record, reopening clears that), append journal rows
    /// and audit; the instance's outbound rule on `change_request` then pushes the record as it
    /// does an incident.
    fn write_change(&mut self, sys_id: Option<&str>, body: &Map<String, Value>, user: &str) -> Result<Row, SimError> {
        let now = self.now().format(DATE_FMT).to_string();
        let (before, index) = self.open_form(CHANGE_TABLE, sys_id, body, user, &now)?;
        let mut rec = before.clone();
        let notes = apply_form(body, &mut rec, set_change_field);
        apply_change_rules(&before, &mut rec, index.is_none(), user, &now);
        if let Some(new_rows) = self.commit_form(CHANGE_TABLE, &before, &mut rec, index, notes, user, &now) {
            let event = if index.is_some() { "change_request.updated" } else { "change_request.created" };
            self.enqueue_webhook(CHANGE_TABLE, event, &rec, &new_rows);
        }
        Ok(rec)
    }

    /// A form save on `incident` or `change_request`.
    fn write(&mut self, table: &str, sys_id: Option<&str>, body: &Map<String, Value>, user: &str) -> Result<Row, SimError> {
        if table == CHANGE_TABLE {
            self.write_change(sys_id, body, user)
        } else {
            self.write_incident(sys_id, body, user)
        }
    }

    /// The records of a task table (`incident` or `change_request`), in creation order.
    fn records(&self, table: &str) -> &[Row] {
        if table == CHANGE_TABLE {
            &self.changes
        } else {
            &self.incidents
        }
    }

    fn position_in(&self, table: &str, sys_id: &str) -> Option<usize> {
        self.records(table).iter().position(|r| field(r, "sys_id") == sys_id)
    }

    fn records_mut(&mut self, table: &str) -> &mut Vec<Row> {
        if table == CHANGE_TABLE {
            &mut self.changes
        } else {
            &mut self.incidents
        }
    }

    /// The record a form save starts from, with its index: the stored record for an update, a
    /// new blank one (with the caller's chosen sys_id, if any) for an insert.
    fn open_form(&mut self, table: &str, sys_id: Option<&str>, body: &Map<String, Value>, user: &str, now: &str) -> Result<(Row, Option<usize>), SimError> {
        match sys_id {
            Some(id) => {
                let i = self.position_in(table, id).ok_or(SimError::NotFound)?;
                Ok((self.records(table)[i].clone(), Some(i)))
            }
            None => {
                let mut blank = if table == CHANGE_TABLE { self.blank_change(user, now) } else { self.blank_incident(user, now) };
                take_chosen_sys_id(body, &mut blank, table, |id| self.position_in(table, id).is_some())?;
                Ok((blank, None))
            }
        }
    }

    /// Stores a form save: bumps the update audit of an updated record, appends the journal
    /// rows and keeps the record. Returns the new journal rows, or None when an update changes
    /// nothing, which is not a save on the instance (no audit, no business rules).
    fn commit_form(&mut self, table: &str, before: &Row, rec: &mut Row, index: Option<usize>, notes: Vec<(&str, String)>, user: &str, now: &str) -> Option<Vec<Row>> {
        if index.is_some() && rec == before && notes.is_empty() {
            return None;
        }
        if index.is_some() {
            stamp_update(rec, user, now);
        }
        let new_rows = journal_rows(table, field(rec, "sys_id"), notes, user, now);
        self.journal.extend(new_rows.iter().cloned());
        let records = self.records_mut(table);
        match index {
            Some(i) => records[i] = rec.clone(),
            None => records.push(rec.clone()),
        }
        Some(new_rows)
    }

    /// Stores an attachment on an incident (`POST /api/now/attachment/file`).
    fn insert_attachment(&mut self, table_sys_id: &str, file_name: &str, content_type: &str, data: Vec<u8>, user: &str) -> Result<Row, SimError> {
        if self.position_in("incident", table_sys_id).is_none() {
            return Err(SimError::NotFound);
        }
        if file_name.trim().is_empty() {
            return Err(SimError::BadRequest("file_name is required".into()));
        }
        let now = self.now().format(DATE_FMT).to_string();
        let sys_id = new_sys_id();
        let hash = {
            use sha2::Digest;
            hex::encode(Sha256::digest(&data))
        };
        let row: Row = [
            ("sys_id", sys_id.clone()),
            ("table_name", "incident".to_string()),
            ("table_sys_id", table_sys_id.to_string()),
            ("file_name", file_name.to_string()),
            ("content_type", if content_type.is_empty() { "application/octet-stream".to_string() } else { content_type.to_string() }),
            ("size_bytes", data.len().to_string()),
            ("hash", hash),
            ("download_link", format!("{}/api/now/attachment/{sys_id}/file", self.base())),
            ("sys_created_by", user.to_string()),
            ("sys_created_on", now),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.attachments.push((row.clone(), data));
        Ok(row)
    }

    /// Rows of the tables that exist only so that reference links resolve.
    fn reference_rows(&self, table: &str) -> Vec<Row> {
        let mut ids = BTreeSet::new();
        if table == "sys_user" {
            ids.insert(self.config.user.clone());
            ids.insert(DEFAULT_AGENT.to_string());
        }
        let records = self.incidents.iter().map(|r| ("incident", r)).chain(self.changes.iter().map(|r| (CHANGE_TABLE, r)));
        for (record_table, rec) in records {
            for (k, v) in rec {
                let user_audit = table == "sys_user" && (k == "sys_created_by" || k == "sys_updated_by");
                let targets_table = matches!(field_kind(record_table, k), Kind::Reference(t) if t == table);
                if !v.is_empty() && (user_audit || targets_table) {
                    ids.insert(v.clone());
                }
            }
        }
        ids.into_iter()
            .map(|id| {
                let mut row = Row::new();
                row.insert("name".into(), display_name(&id));
                if table == "sys_user" {
                    row.insert("user_name".into(), id.clone());
                    row.insert("active".into(), "true".into());
                }
                row.insert("sys_id".into(), id);
                row
            })
            .collect()
    }

    fn enqueue_webhook(&mut self, table: &str, event: &str, record: &Row, journal: &[Row]) {
        let Some(target) = self.config.webhook.clone() else {
            return;
        };
        let opts = ReadOpts { mode: target.display_value, ..self.inspection_opts() };
        let body = json!({
            "event": event,
            "record": self.render(table, record, &opts),
            "journal": journal.iter().map(row_to_value).collect::<Vec<_>>(),
        });
        let (secret, skew) = (target.secret, self.config.clock_skew_secs);
        self.outbox.push(Notification {
            id: uuid::Uuid::new_v4().to_string(),
            url: target.url,
            body: body.to_string(),
            basic_auth: None,
            // Signed over a fresh timestamp at every attempt, as the outbound rule does.
            headers: Arc::new(move |n: &Notification, _| {
                let timestamp = Utc::now().timestamp().saturating_add(skew).to_string();
                let signature = format!("sha256={}", sign_webhook(&secret, &timestamp, &n.body));
                vec![("X-Siam-Delivery".into(), n.id.clone()), ("X-Siam-Timestamp".into(), timestamp), ("X-Siam-Signature".into(), signature)]
            }),
        });
    }

    fn render(&self, table: &str, row: &Row, opts: &ReadOpts) -> Value {
        let mut out = Map::new();
        for (name, raw) in row {
            match &opts.fields {
                Some(wanted) if !wanted.iter().any(|w| w == name) => continue,
                // Dot-walked columns come only when named.
                None if name.contains('.') => continue,
                _ => {}
            }
            out.insert(name.clone(), self.render_field(table, row, name, raw, opts));
        }
        Value::Object(out)
    }

    fn render_field(&self, table: &str, row: &Row, name: &str, raw: &str, opts: &ReadOpts) -> Value {
        let display = match field_kind(table, name) {
            Kind::Reference(target) => return render_reference(target, raw, opts),
            Kind::Plain => raw.to_string(),
            Kind::Choice => self.site_label(table, name, raw).unwrap_or_else(|| choice_label(table, name, raw)),
            Kind::DateTime => to_display_tz(raw),
            Kind::Integer => thousands(raw),
            Kind::ClassName => match raw {
                "incident" => "Incident".to_string(),
                CHANGE_TABLE => "Change Request".to_string(),
                _ => raw.to_string(),
            },
            Kind::Due if raw.is_empty() => "UNKNOWN".to_string(),
            Kind::Due => to_display_tz(raw),
            Kind::Journal => self.journal_text(field(row, "sys_id"), name),
        };
        match opts.mode {
            DisplayMode::Raw => json!(raw),
            DisplayMode::Display => json!(display),
            DisplayMode::All => json!({"display_value": display, "value": raw}),
        }
    }

    /// The display value of a journal field: all entries concatenated, newest first.
    fn journal_text(&self, sys_id: &str, element: &str) -> String {
        let label = if element == "work_notes" { "Work notes" } else { "Additional comments" };
        self.journal
            .iter()
            .rev()
            .filter(|j| field(j, "element_id") == sys_id && field(j, "element") == element)
            .map(|j| format!("{} - {} ({label})\n{}\n\n", to_display_tz(field(j, "sys_created_on")), display_name(field(j, "sys_created_by")), field(j, "value")))
            .collect()
    }
}

/// A new task record: the table's defaults, a fresh sys_id, its number, and the opening audit
/// (`opened_at` and the creation stamps now, `user_fields` the saving user).
fn blank_task(defaults: &[(&str, &str)], number: String, user_fields: &[&str], user: &str, now: &str) -> Row {
    let mut row: Row = defaults.iter().map(|(f, default)| (f.to_string(), default.to_string())).collect();
    row.insert("sys_id".into(), new_sys_id());
    row.insert("number".into(), number.clone());
    row.insert("task_effective_number".into(), number);
    for f in ["opened_at", "sys_created_on", "sys_updated_on"] {
        row.insert(f.into(), now.into());
    }
    for f in user_fields {
        row.insert(f.to_string(), user.into());
    }
    row
}

/// The update audit of a save on an existing record: one more modification, by `user`, now.
fn stamp_update(rec: &mut Row, user: &str, now: &str) {
    let count = field(rec, "sys_mod_count").parse::<u64>().unwrap_or(0) + 1;
    rec.insert("sys_mod_count".into(), count.to_string());
    rec.insert("sys_updated_on".into(), now.to_string());
    rec.insert("sys_updated_by".into(), user.to_string());
}

/// Applies the scalar fields of a form body to `rec` through `set`, and returns the journal
/// entries the body carries (`work_notes` and `comments` that are not blank).
fn apply_form<'a>(body: &'a Map<String, Value>, rec: &mut Row, mut set: impl FnMut(&mut Row, &str, String)) -> Vec<(&'a str, String)> {
    let mut notes = Vec::new();
    for (key, value) in body {
        let Some(text) = scalar(value) else { continue };
        match key.as_str() {
            "work_notes" | "comments" if !text.trim().is_empty() => notes.push((key.as_str(), text)),
            f => set(rec, f, text),
        }
    }
    notes
}

/// One writable field of a change request form: a date the instance cannot read is not
/// stored, `on_hold` is a boolean, anything not writable is ignored.
fn set_change_field(rec: &mut Row, f: &str, text: String) {
    if CHANGE_DATE_FIELDS.contains(&f) {
        let t = text.trim();
        if t.is_empty() || NaiveDateTime::parse_from_str(t, DATE_FMT).is_ok() {
            rec.insert(f.to_string(), t.to_string());
        }
    } else if f == "on_hold" {
        let on = matches!(text.trim().to_ascii_lowercase().as_str(), "true" | "1");
        rec.insert("on_hold".into(), on.to_string());
    } else if WRITABLE_CHANGE_FIELDS.contains(&f) {
        rec.insert(f.to_string(), text);
    }
}

/// `sys_journal_field` rows for the journal entries of one save.
fn journal_rows(table: &str, record_id: &str, notes: Vec<(&str, String)>, user: &str, now: &str) -> Vec<Row> {
    notes
        .into_iter()
        .map(|(element, value)| {
            [
                ("element", element.to_string()),
                ("element_id", record_id.to_string()),
                ("name", table.to_string()),
                ("sys_created_by", user.to_string()),
                ("sys_created_on", now.to_string()),
                ("sys_id", new_sys_id()),
                ("sys_tags", String::new()),
                ("value", value),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        })
        .collect()
}

/// The task rules on a change request: an empty state is New; Closed and Canceled make the
/// record inactive and stamp who closed it and when; leaving them reopens the record.
fn apply_change_rules(before: &Row, rec: &mut Row, is_insert: bool, user: &str, now: &str) {
    if field(rec, "state").trim().is_empty() {
        rec.insert("state".into(), "-5".into());
    }
    let state = field(rec, "state").to_string();
    let old_state = if is_insert { "" } else { field(before, "state") };
    if state == old_state {
        return;
    }
    let mut set = |k: &str, v: &str| {
        rec.insert(k.to_string(), v.to_string());
    };
    match state.as_str() {
        "3" | "4" => {
            set("closed_at", now);
            set("closed_by", user);
            set("active", "false");
        }
        _ if matches!(old_state, "3" | "4") => {
            set("closed_at", "");
            set("closed_by", "");
            set("active", "true");
        }
        _ => {}
    }
}

fn apply_business_rules(before: &Row, rec: &mut Row, is_insert: bool, user: &str, now: &str, lookup: Option<&[Vec<u8>]>) {
    if field(rec, "state").is_empty() {
        rec.insert("state".into(), "1".into());
    }
    let state = field(rec, "state").to_string();
    rec.insert("incident_state".into(), state.clone());
    if let Some(p) = priority_for(field(rec, "impact"), field(rec, "urgency"), lookup) {
        rec.insert("priority".into(), p.to_string());
    }
    let old_state = if is_insert { "" } else { field(before, "state") };
    if state != old_state {
        let mut set = |k: &str, v: &str| {
            rec.insert(k.to_string(), v.to_string());
        };
        match state.as_str() {
            "6" => {
                set("resolved_at", now);
                set("resolved_by", user);
            }
            "7" => {
                if field(before, "resolved_at").is_empty() {
                    set("resolved_at", now);
                    set("resolved_by", user);
                }
                set("closed_at", now);
                set("closed_by", user);
                set("active", "false");
            }
            "8" => set("active", "false"),
            _ if matches!(old_state, "6" | "7" | "8") => {
                let reopens = field(before, "reopen_count").parse::<u64>().unwrap_or(0) + 1;
                set("reopen_count", &reopens.to_string());
                for k in ["resolved_at", "resolved_by", "closed_at", "closed_by"] {
                    set(k, "");
                }
                set("active", "true");
            }
            _ => {}
        }
    }
    if !is_insert && field(rec, "assignment_group") != field(before, "assignment_group") {
        let n = field(before, "reassignment_count").parse::<u64>().unwrap_or(0) + 1;
        rec.insert("reassignment_count".into(), n.to_string());
    }
}

/// The base instance's data policies on incident (mandatory fields per state).
fn check_data_policy(rec: &Row) -> Result<(), SimError> {
    let mut missing = Vec::new();
    match field(rec, "state") {
        "3" if field(rec, "hold_reason").is_empty() => missing.push("On hold reason"),
        "6" | "7" => {
            if field(rec, "close_code").is_empty() {
                missing.push("Resolution code");
            }
            if field(rec, "close_notes").is_empty() {
                missing.push("Resolution notes");
            }
        }
        _ => {}
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SimError::DataPolicy(format!("The following fields are mandatory: {}", missing.join(", "))))
    }
}

/// The instance's priority lookup (the base `dl_u_priority` table unless customised); no
/// match leaves priority as it was (like the real lookup).
fn priority_for(impact: &str, urgency: &str, lookup: Option<&[Vec<u8>]>) -> Option<u8> {
    let i: u8 = impact.parse().ok().filter(|v| (1..=3).contains(v))?;
    let u: u8 = urgency.parse().ok().filter(|v| (1..=3).contains(v))?;
    match lookup {
        Some(rows) => rows.get(usize::from(i - 1))?.get(usize::from(u - 1)).copied(),
        None => Some(i + u - 1),
    }
}

/// Converts a written JSON value to the stored string. Objects are accepted when they carry a
/// `value` (clients often echo back what they read); anything else non-scalar is ignored.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Object(o) => o.get("value").and_then(scalar),
        Value::Array(_) => None,
    }
}

// ---- Field rendering -------------------------------------------------------------------------

enum Kind {
    Plain,
    Choice,
    Reference(&'static str),
    DateTime,
    Integer,
    Journal,
    ClassName,
    Due,
}

fn field_kind(table: &str, name: &str) -> Kind {
    match name {
        "sys_created_on" | "sys_updated_on" | "opened_at" | "resolved_at" | "closed_at" => Kind::DateTime,
        "sys_mod_count" | "reopen_count" | "reassignment_count" => Kind::Integer,
        _ if table == CHANGE_TABLE => change_field_kind(name),
        "user" if table == "sys_user_has_role" => Kind::Reference("sys_user"),
        "role" if table == "sys_user_has_role" => Kind::Reference("sys_user_role"),
        _ if table != "incident" => Kind::Plain,
        "state" | "incident_state" | "impact" | "urgency" | "severity" | "priority" | "hold_reason" | "escalation" | "notify" | "category" => Kind::Choice,
        "caller_id" | "opened_by" | "assigned_to" | "resolved_by" | "closed_by" => Kind::Reference("sys_user"),
        "assignment_group" => Kind::Reference("sys_user_group"),
        "cmdb_ci" => Kind::Reference("cmdb_ci"),
        "work_notes" | "comments" => Kind::Journal,
        "sys_class_name" => Kind::ClassName,
        "sla_due" => Kind::Due,
        _ => Kind::Plain,
    }
}

fn change_field_kind(name: &str) -> Kind {
    match name {
        "start_date" | "end_date" | "work_start" | "work_end" => Kind::DateTime,
        "state" | "approval" | "type" | "risk" | "impact" | "urgency" | "priority" | "close_code" => Kind::Choice,
        "requested_by" | "opened_by" | "assigned_to" | "closed_by" => Kind::Reference("sys_user"),
        "assignment_group" => Kind::Reference("sys_user_group"),
        "cmdb_ci" => Kind::Reference("cmdb_ci"),
        "business_service" => Kind::Reference("cmdb_ci_service"),
        "work_notes" | "comments" => Kind::Journal,
        "sys_class_name" => Kind::ClassName,
        _ => Kind::Plain,
    }
}

fn choice_label(table: &str, name: &str, raw: &str) -> String {
    if table == CHANGE_TABLE {
        return CHANGE_CHOICES.iter().find(|(f, v, _)| *f == name && *v == raw).map_or_else(|| raw.to_string(), |(_, _, label)| label.to_string());
    }
    let list = match name {
        "incident_state" => "state",
        "urgency" | "severity" => "impact",
        other => other,
    };
    CHOICES.iter().find(|(f, v, _)| *f == list && *v == raw).map_or_else(|| raw.to_string(), |(_, _, label)| label.to_string())
}

fn render_reference(target: &str, id: &str, opts: &ReadOpts) -> Value {
    if id.is_empty() {
        return match opts.mode {
            DisplayMode::All => json!({"display_value": "", "value": ""}),
            _ => json!(""),
        };
    }
    let link = format!("{}/table/{target}/{}", opts.api_base, encode_path_segment(id));
    let name = display_name(id);
    match (opts.mode, opts.exclude_links) {
        (DisplayMode::Raw, false) => json!({"link": link, "value": id}),
        (DisplayMode::Raw, true) => json!(id),
        (DisplayMode::Display, false) => json!({"display_value": name, "link": link}),
        (DisplayMode::Display, true) => json!(name),
        (DisplayMode::All, false) => json!({"display_value": name, "link": link, "value": id}),
        (DisplayMode::All, true) => json!({"display_value": name, "value": id}),
    }
}

/// The sim has no real user table; an id like "david.loo" displays as "David Loo".
fn display_name(id: &str) -> String {
    if id.contains(' ') || !(id.contains('.') || id.contains('_')) {
        return id.to_string();
    }
    id.split(['.', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn to_display_tz(raw: &str) -> String {
    NaiveDateTime::parse_from_str(raw, DATE_FMT)
        .ok()
        .and_then(|t| t.checked_add_signed(chrono::Duration::seconds(DISPLAY_TZ_OFFSET_SECS)))
        .map(|t| t.format(DATE_FMT).to_string())
        .unwrap_or_else(|| raw.to_string())
}

fn thousands(raw: &str) -> String {
    let Ok(n) = raw.parse::<u64>() else {
        return raw.to_string();
    };
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn encode_path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn field<'a>(row: &'a Row, name: &str) -> &'a str {
    row.get(name).map(String::as_str).unwrap_or("")
}

fn row_to_value(row: &Row) -> Value {
    Value::Object(row.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn new_sys_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

// ---- Encoded queries -------------------------------------------------------------------------

/// Longest spellings first so that e.g. `>=` is not read as `>` followed by `=value`.
#[rustfmt::skip]
const OPERATORS: &[&str] = &[
    "ISNOTEMPTY", "ISEMPTY", "STARTSWITH", "ENDSWITH", "NOT LIKE", "LIKE", "NOT IN", "IN",
    "!=", ">=", "<=", "=", ">", "<",
];

struct Cond {
    field: String,
    op: &'static str,
    value: String,
}

/// `^NQ`-separated alternatives, each a conjunction of `^OR` disjunctions.
struct Query {
    alternatives: Vec<Vec<Vec<Cond>>>,
    order: Vec<(String, bool)>,
}

impl Query {
    /// Unknown fields and unparseable terms are dropped, which widens the result exactly as
    /// ServiceNow does without `glide.invalid_query.returns_no_rows`.
    fn parse(text: &str, fields: &[&str]) -> Query {
        let mut query = Query { alternatives: Vec::new(), order: Vec::new() };
        for alternative in text.split("^NQ") {
            let mut terms: Vec<Vec<Cond>> = Vec::new();
            for part in alternative.split('^') {
                if let Some(f) = part.strip_prefix("ORDERBYDESC") {
                    if fields.contains(&f) {
                        query.order.push((f.to_string(), true));
                    }
                } else if let Some(f) = part.strip_prefix("ORDERBY") {
                    if fields.contains(&f) {
                        query.order.push((f.to_string(), false));
                    }
                } else if let Some(rest) = part.strip_prefix("OR").filter(|r| r.starts_with(|c: char| c.is_ascii_lowercase())) {
                    match (parse_cond(rest, fields), terms.last_mut()) {
                        (Some(c), Some(last)) => last.push(c),
                        (Some(c), None) => terms.push(vec![c]),
                        _ => {}
                    }
                } else if let Some(c) = parse_cond(part, fields) {
                    terms.push(vec![c]);
                }
            }
            query.alternatives.push(terms);
        }
        query
    }

    fn matches(&self, row: &Row) -> bool {
        self.alternatives.is_empty() || self.alternatives.iter().any(|terms| terms.iter().all(|any| any.iter().any(|c| c.matches(row))))
    }

    fn sort(&self, rows: &mut [&Row]) {
        rows.sort_by(|a, b| {
            self.order
                .iter()
                .map(|(f, desc)| {
                    let o = compare(field(a, f), field(b, f));
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
}

fn parse_cond(term: &str, fields: &[&str]) -> Option<Cond> {
    let split = term.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')).unwrap_or(term.len());
    let (name, rest) = term.split_at(split);
    if !fields.contains(&name) {
        return None;
    }
    let op = *OPERATORS.iter().find(|op| rest.starts_with(**op))?;
    let value = &rest[op.len()..];
    if op.starts_with("IS") && !value.is_empty() {
        return None;
    }
    // The usual script value in polling queries; other scripts cannot be evaluated here.
    let value = match value.strip_prefix("javascript:") {
        Some(script) => date_generate(script)?,
        None => value.to_string(),
    };
    Some(Cond { field: name.to_string(), op, value })
}

/// `gs.dateGenerate('2024-05-01','00:00:00')` -> `2024-05-01 00:00:00`.
fn date_generate(script: &str) -> Option<String> {
    let args = script.trim().strip_prefix("gs.dateGenerate(")?.strip_suffix(')')?;
    let (date, time) = args.split_once(',')?;
    let unquote = |s: &str| s.trim().trim_matches(|c| c == '\'' || c == '"').to_string();
    Some(format!("{} {}", unquote(date), unquote(time)))
}

/// Numbers compare as numbers (states, counts); everything else, dates included, as strings.
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

impl Cond {
    fn matches(&self, row: &Row) -> bool {
        let v = field(row, &self.field);
        let x = self.value.as_str();
        let (lv, lx) = (v.to_lowercase(), x.to_lowercase());
        let in_list = || x.split(',').any(|item| item.trim() == v);
        match self.op {
            "=" => v == x,
            "!=" => v != x,
            // Comparisons never match an empty value, as in SQL.
            ">" => !v.is_empty() && compare(v, x).is_gt(),
            ">=" => !v.is_empty() && compare(v, x).is_ge(),
            "<" => !v.is_empty() && compare(v, x).is_lt(),
            "<=" => !v.is_empty() && compare(v, x).is_le(),
            "STARTSWITH" => lv.starts_with(&lx),
            "ENDSWITH" => lv.ends_with(&lx),
            "LIKE" => lv.contains(&lx),
            "NOT LIKE" => !lv.contains(&lx),
            "IN" => in_list(),
            "NOT IN" => !in_list(),
            "ISEMPTY" => v.is_empty(),
            _ => !v.is_empty(), // ISNOTEMPTY
        }
    }
}

// ---- HTTP: responses -------------------------------------------------------------------------

fn sn_builder(status: StatusCode) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder.insert_header((header::CONTENT_TYPE, SN_JSON)).insert_header((header::SERVER, "ServiceNow"));
    builder
}

fn sn_json(status: StatusCode, body: &Value) -> HttpResponse {
    sn_builder(status).body(body.to_string())
}

fn sn_error(status: StatusCode, message: &str, detail: Value) -> HttpResponse {
    sn_json(status, &json!({"error": {"message": message, "detail": detail}, "status": "failure"}))
}

fn not_found() -> HttpResponse {
    sn_error(StatusCode::NOT_FOUND, "No Record found", json!("Record doesn't exist or ACL restricts the record retrieval"))
}

fn acl_denied(operation: &str) -> HttpResponse {
    sn_error(StatusCode::FORBIDDEN, "Operation Failed", json!(format!("ACL Exception {operation} Failed due to security constraints")))
}

fn method_not_supported() -> HttpResponse {
    sn_error(StatusCode::METHOD_NOT_ALLOWED, "Method not Supported", json!("The requested method is not supported for this resource"))
}

fn rate_limited(retry_after_secs: u64, now: DateTime<Utc>) -> HttpResponse {
    let reset = now.timestamp().saturating_add_unsigned(retry_after_secs);
    let detail = "The maximum number of requests per hour allowed by rate limit rule \
                  'hub integration' has been exceeded";
    sn_builder(StatusCode::TOO_MANY_REQUESTS)
        .insert_header(("Retry-After", retry_after_secs.to_string()))
        .insert_header(("X-RateLimit-Limit", "1000"))
        .insert_header(("X-RateLimit-Reset", reset.to_string()))
        .insert_header(("X-RateLimit-Rule", "8c6e5b6f1b3a3010a8e3ed7cbc4bcb1e"))
        .body(
            json!({"error": {"message": "Too Many Requests - Rate limit exceeded", "detail": detail},
                   "status": "failure"})
            .to_string(),
        )
}

fn hibernating() -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CONTENT_TYPE, "text/html;charset=UTF-8")).body(
        "<!DOCTYPE html><html><head><title>Instance Hibernating page</title></head>\
             <body><h1>Your instance is hibernating</h1>\
             <p>Sign in to the developer portal to wake it up.</p></body></html>",
    )
}

fn read_body(body: &[u8]) -> Result<Map<String, Value>, SimError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(SimError::BadRequest("Empty request body".into()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(SimError::BadRequest("Expected a JSON object".into())),
        Err(e) => Err(SimError::BadRequest(e.to_string())),
    }
}

// ---- HTTP: Table API -------------------------------------------------------------------------

/// Entry point for `/api/now/...`: faults and latency first, then the Table API proper.
async fn table_api(req: HttpRequest, body: web::Bytes, sim: web::Data<ServiceNowSim>) -> HttpResponse {
    let user = sim.authenticate(&req);
    let (fault, latency, now) = {
        let mut st = sim.lock();
        let fault = st.faults.pop_front().or_else(|| st.chance.draw());
        (fault, st.latency, st.now())
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = match fault {
        Some(Fault::RateLimited { retry_after_secs }) => rate_limited(retry_after_secs, now),
        Some(Fault::ServerError) => sn_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", json!("An unexpected error occurred while processing the request")),
        Some(Fault::Hibernating) => hibernating(),
        Some(Fault::Timeout { delay }) => {
            let (sim, req, body, user) = (sim.clone(), req.clone(), body.clone(), user.clone());
            super::answer_late(delay, move || serve(&sim, &req, &body, user.as_deref())).await
        }
        Some(Fault::LoseResponseAfterCommit) => {
            // The write is committed; only the answer is lost on the way back.
            let _committed = serve(&sim, &req, &body, user.as_deref());
            sn_error(StatusCode::INTERNAL_SERVER_ERROR, "Transaction cancelled: maximum execution time exceeded", json!("Transaction cancelled after the database commit"))
        }
        None => serve(&sim, &req, &body, user.as_deref()),
    };
    let answer_delay = sim.lock().write_answer_delay;
    if !answer_delay.is_zero() && req.method() != actix_web::http::Method::GET {
        tokio::time::sleep(answer_delay).await;
    }
    let path = req.uri().path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| req.path().to_string());
    sim.lock().log.push(LoggedRequest { method: req.method().to_string(), path, status: resp.status().as_u16(), user });
    resp
}

fn serve(sim: &ServiceNowSim, req: &HttpRequest, body: &[u8], user: Option<&str>) -> HttpResponse {
    let Some(user) = user else {
        return sn_error(StatusCode::UNAUTHORIZED, "User Not Authenticated", json!("Required to provide Auth information"));
    };
    let rest = req.match_info().get("rest").unwrap_or("");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (version, segments) = match segments.split_first() {
        Some((v, tail)) if *v == "v1" || *v == "v2" => (format!("/{v}"), tail),
        _ => (String::new(), &segments[..]),
    };
    let (table, id) = match segments {
        ["table", table] => (*table, None),
        ["table", table, id] => (*table, Some(*id)),
        ["attachment", ..] => return attachment_api(sim, req, segments, body, user),
        _ => return sn_error(StatusCode::BAD_REQUEST, "Requested URI does not represent any resource", Value::Null),
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let param = |name: &str| param(&params, name);
    let mut st = sim.lock();
    let opts = ReadOpts {
        mode: match param("sysparm_display_value") {
            Some("true") => DisplayMode::Display,
            Some("all") => DisplayMode::All,
            _ => DisplayMode::Raw,
        },
        exclude_links: param("sysparm_exclude_reference_link") == Some("true"),
        fields: param("sysparm_fields").map(|f| f.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()),
        api_base: format!("{}/api/now{version}", st.base()),
    };
    let method = req.method();

    if table == "incident" || table == CHANGE_TABLE {
        // The incident ACLs follow the integration user's roles; change requests are left open.
        let incident = table == "incident";
        let may_write = !incident || st.user_has(INCIDENT_WRITE_ROLES);
        let body: std::borrow::Cow<'_, [u8]> = if incident && !st.user_has(WORK_NOTES_ROLES) { without_work_notes(body) } else { body.into() };
        return match (method, id) {
            (&Method::GET, None) => {
                let defaults = if table == CHANGE_TABLE { CHANGE_FIELDS } else { INCIDENT_FIELDS };
                let fields: Vec<&str> = defaults.iter().map(|(f, _)| *f).collect();
                let rows: Vec<Row> = st.records(table).iter().filter(|r| !incident || st.visible(r, user)).cloned().collect();
                list(&st, table, &rows, &fields, &params, &opts)
            }
            (&Method::GET, Some(id)) => match st.position_in(table, id).filter(|i| !incident || st.visible(&st.records(table)[*i], user)) {
                Some(i) => sn_json(StatusCode::OK, &json!({"result": st.render(table, &st.records(table)[i], &opts)})),
                None => not_found(),
            },
            (&Method::POST, None) if !may_write => acl_denied("Insert"),
            (&Method::PATCH | &Method::PUT, Some(_)) if !may_write => acl_denied("Update"),
            (&Method::POST, None) => write_response(&mut st, table, None, &body, user, &opts, StatusCode::CREATED),
            (&Method::PATCH | &Method::PUT, Some(id)) => write_response(&mut st, table, Some(id), &body, user, &opts, StatusCode::OK),
            (&Method::DELETE, Some(id)) => match st.position_in(table, id) {
                Some(i) => {
                    st.records_mut(table).remove(i);
                    HttpResponse::NoContent().insert_header((header::SERVER, "ServiceNow")).finish()
                }
                None => not_found(),
            },
            _ => method_not_supported(),
        };
    }

    let rows = if table == "sys_journal_field" {
        // Journal rows are readable with the incident's work-notes role only.
        if st.user_has(WORK_NOTES_ROLES) {
            st.journal.clone()
        } else {
            Vec::new()
        }
    } else if table == "sys_choice" {
        st.choice_rows()
    } else if table == "sys_user_has_role" {
        st.user_role_rows()
    } else if REFERENCE_TABLES.contains(&table) {
        st.reference_rows(table)
    } else {
        return sn_error(StatusCode::BAD_REQUEST, &format!("Invalid table {table}"), Value::Null);
    };
    match (method, id) {
        (&Method::GET, None) => {
            let fields = match table {
                "sys_journal_field" => JOURNAL_FIELDS,
                "sys_choice" => CHOICE_FIELDS,
                "sys_user_has_role" => USER_ROLE_FIELDS,
                _ => REFERENCE_FIELDS,
            };
            list(&st, table, &rows, fields, &params, &opts)
        }
        (&Method::GET, Some(id)) => match rows.iter().find(|r| field(r, "sys_id") == id) {
            Some(row) => sn_json(StatusCode::OK, &json!({"result": st.render(table, row, &opts)})),
            None => not_found(),
        },
        // These tables are read-only for the integration user, as ACLs make them on an instance.
        (&Method::POST, _) => acl_denied("Insert"),
        (&Method::PATCH | &Method::PUT, _) => acl_denied("Update"),
        (&Method::DELETE, _) => acl_denied("Delete"),
        _ => method_not_supported(),
    }
}

const ATTACHMENT_FIELDS: &[&str] =
    &["sys_id", "table_name", "table_sys_id", "file_name", "content_type", "size_bytes", "hash", "download_link", "sys_created_by", "sys_created_on"];

/// The Attachment API: `POST /attachment/file?table_name=&table_sys_id=&file_name=` with the raw
/// bytes, `GET /attachment?sysparm_query=table_sys_id=...` (metadata), `GET /attachment/{id}/file`.
fn attachment_api(sim: &ServiceNowSim, req: &HttpRequest, segments: &[&str], body: &[u8], user: &str) -> HttpResponse {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let mut st = sim.lock();
    match (req.method(), segments) {
        (&Method::POST, ["attachment", "file"]) if !st.user_has(INCIDENT_WRITE_ROLES) => acl_denied("Insert"),
        (&Method::POST, ["attachment", "file"]) => {
            let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let table_sys_id = param(&params, "table_sys_id").unwrap_or("");
            let file_name = param(&params, "file_name").unwrap_or("");
            match st.insert_attachment(table_sys_id, file_name, content_type, body.to_vec(), user) {
                Ok(row) => sn_json(StatusCode::CREATED, &json!({ "result": row_to_value(&row) })),
                Err(e) => e.response(),
            }
        }
        (&Method::GET, ["attachment"]) => {
            let rows: Vec<Row> = st.attachments.iter().map(|(r, _)| r.clone()).collect();
            let opts = st.inspection_opts();
            list(&st, "sys_attachment", &rows, ATTACHMENT_FIELDS, &params, &opts)
        }
        (&Method::GET, ["attachment", id, "file"]) => match st.attachments.iter().find(|(r, _)| field(r, "sys_id") == *id) {
            Some((row, data)) => HttpResponse::Ok().content_type(field(row, "content_type").to_string()).insert_header((header::SERVER, "ServiceNow")).body(data.clone()),
            None => not_found(),
        },
        _ => method_not_supported(),
    }
}

/// The Table API honours a caller-chosen sys_id on insert (an idempotent create); a second
/// insert with the same sys_id fails in the database.
fn take_chosen_sys_id(body: &Map<String, Value>, blank: &mut Row, table: &str, exists: impl Fn(&str) -> bool) -> Result<(), SimError> {
    let wanted = body.get("sys_id").and_then(Value::as_str).filter(|w| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit()));
    if let Some(wanted) = wanted.map(str::to_ascii_lowercase) {
        if exists(&wanted) {
            let number = field(blank, "number");
            return Err(SimError::InsertFailed(format!("Error during insert of {table} ({number})")));
        }
        blank.insert("sys_id".into(), wanted);
    }
    Ok(())
}

/// The write body without `work_notes`, as the field's write ACL leaves it for a user without
/// the role (the rest of the save goes through, and no error says so).
fn without_work_notes(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut map)) if map.contains_key("work_notes") => {
            map.remove("work_notes");
            Value::Object(map).to_string().into_bytes().into()
        }
        _ => body.into(),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A write to `incident` or `change_request` (the only tables the integration user writes).
fn write_response(st: &mut State, table: &str, id: Option<&str>, body: &[u8], user: &str, opts: &ReadOpts, ok: StatusCode) -> HttpResponse {
    let fields = match read_body(body) {
        Ok(fields) => fields,
        Err(e) => return e.response(),
    };
    match st.write(table, id, &fields, user) {
        Ok(record) => sn_json(ok, &json!({"result": st.render(table, &record, opts)})),
        Err(e) => e.response(),
    }
}

fn list(st: &State, table: &str, rows: &[Row], fields: &[&str], params: &[(String, String)], opts: &ReadOpts) -> HttpResponse {
    let param = |name: &str| param(params, name);
    let query = Query::parse(param("sysparm_query").unwrap_or(""), fields);
    let mut matched: Vec<&Row> = rows.iter().filter(|r| query.matches(r)).collect();
    query.sort(&mut matched);
    let total = matched.len();
    let limit = param("sysparm_limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0).unwrap_or(DEFAULT_LIMIT);
    let offset = param("sysparm_offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
    let page: Vec<Value> = matched.iter().skip(offset).take(limit).map(|r| st.render(table, r, opts)).collect();

    let mut builder = sn_builder(StatusCode::OK);
    builder.insert_header(("X-Total-Count", total.to_string()));
    // Like the instance, the Link header appears only when there is more than one page.
    if offset > 0 || offset.saturating_add(limit) < total {
        let link = |rel: &str, off: usize| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in params.iter().filter(|(k, _)| k != "sysparm_offset" && k != "sysparm_limit") {
                q.append_pair(k, v);
            }
            q.append_pair("sysparm_offset", &off.to_string());
            q.append_pair("sysparm_limit", &limit.to_string());
            format!("<{}/table/{table}?{}>;rel=\"{rel}\"", opts.api_base, q.finish())
        };
        let mut rels = vec![link("first", 0)];
        if offset > 0 {
            rels.push(link("prev", offset.saturating_sub(limit)));
        }
        if offset.saturating_add(limit) < total {
            rels.push(link("next", offset + limit));
        }
        rels.push(link("last", total.saturating_sub(1) / limit * limit));
        builder.insert_header((header::LINK, rels.join(",")));
    }
    builder.body(json!({ "result": page }).to_string())
}

// ---- HTTP: /sim control surface (no auth, no faults) -----------------------------------------

/// Body of `POST /sim/faults`: the queued faults plus the two standing knobs.
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
    Hibernating,
    Latency {
        ms: u64,
    },
    Chance(super::ChanceSpec),
    WebhookBehaviour(WebhookBehaviour),
}

#[derive(Deserialize)]
struct AgentQuery {
    user: Option<String>,
}

async fn sim_incidents(sim: web::Data<ServiceNowSim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.incidents())
}

async fn sim_changes(sim: web::Data<ServiceNowSim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.changes())
}

async fn sim_change_agent(sim: web::Data<ServiceNowSim>, path: web::Path<String>, query: web::Query<AgentQuery>, body: web::Bytes) -> HttpResponse {
    agent_response(&sim, CHANGE_TABLE, &path, &query, &body)
}

async fn sim_requests(sim: web::Data<ServiceNowSim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.request_log())
}

async fn sim_agent(sim: web::Data<ServiceNowSim>, path: web::Path<String>, query: web::Query<AgentQuery>, body: web::Bytes) -> HttpResponse {
    agent_response(&sim, "incident", &path, &query, &body)
}

/// An agent's save through the control API: as `?user=` (default "agent.smith"), answered as
/// the Table API answers.
fn agent_response(sim: &ServiceNowSim, table: &str, sys_id: &str, query: &AgentQuery, body: &[u8]) -> HttpResponse {
    let user = query.user.as_deref().unwrap_or(DEFAULT_AGENT);
    let result = read_body(body).and_then(|fields| sim.agent_save(table, sys_id, user, Value::Object(fields)));
    match result {
        Ok(record) => sn_json(StatusCode::OK, &json!({ "result": record })),
        Err(e) => e.response(),
    }
}

async fn sim_faults(sim: web::Data<ServiceNowSim>, body: web::Bytes) -> HttpResponse {
    let control = match serde_json::from_slice::<Control>(&body) {
        Ok(control) => control,
        Err(e) => return SimError::BadRequest(e.to_string()).response(),
    };
    let fault = match control {
        Control::RateLimited { retry_after_secs } => Fault::RateLimited { retry_after_secs },
        Control::ServerError => Fault::ServerError,
        Control::Timeout { delay_ms } => Fault::Timeout { delay: Duration::from_millis(delay_ms) },
        Control::LoseResponseAfterCommit => Fault::LoseResponseAfterCommit,
        Control::Hibernating => Fault::Hibernating,
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

    const USER: &str = "hub.integration";
    const PASSWORD: &str = "s3cret";
    const SECRET: &str = "whsec-test";

    fn config() -> SimConfig {
        SimConfig { user: USER.into(), password: PASSWORD.into(), ..SimConfig::default() }
    }

    /// A started simulator plus an authenticated client; responses come back parsed.
    struct Api {
        sim: ServiceNowSim,
        base: String,
        http: reqwest::Client,
    }

    impl Api {
        fn start(config: SimConfig) -> Api {
            let sim = ServiceNowSim::new(config);
            sim.start(TcpListener::bind("127.0.0.1:0").expect("bind")).expect("start");
            let base = sim.base_url().expect("base url");
            Api { sim, base, http: reqwest::Client::new() }
        }

        async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, HeaderMap, Value) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let mut req = self.http.request(method, format!("{}{path}", self.base)).basic_auth(USER, Some(PASSWORD));
            if let Some(body) = body {
                req = req.json(&body);
            }
            let resp = req.send().await.expect("request");
            let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
            let text = resp.text().await.expect("body");
            (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }

        async fn get(&self, path: &str) -> (HeaderMap, Value) {
            let (status, headers, body) = self.call("GET", path, None).await;
            assert_eq!(status, 200, "{body}");
            (headers, body)
        }

        async fn create(&self, body: Value) -> Value {
            let (status, _, body) = self.call("POST", "/api/now/table/incident", Some(body)).await;
            assert_eq!(status, 201, "{body}");
            body["result"].clone()
        }
    }

    fn hdr<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
        h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn query_path(table: &str, pairs: &[(&str, &str)]) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(pairs);
        format!("/api/now/table/{table}?{}", q.finish())
    }

    type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

    /// A tiny webhook receiver that records the headers and raw body of every POST.
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
                let body = String::from_utf8_lossy(&body).into_owned();
                store.lock().expect("lock").push((headers, body));
                HttpResponse::Ok().finish()
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        (format!("http://127.0.0.1:{port}/webhooks/sn-network"), store)
    }

    async fn wait_for(store: &Received, n: usize) -> Vec<(HeaderMap, String)> {
        for _ in 0..100 {
            if store.lock().expect("lock").len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.lock().expect("lock").clone()
    }

    #[actix_web::test]
    async fn rejects_missing_or_wrong_credentials() {
        let api = Api::start(config());
        let url = format!("{}/api/now/table/incident", api.base);
        let anonymous = api.http.get(&url).send().await.expect("request");
        assert_eq!(anonymous.status(), 401);
        let body: Value = anonymous.json().await.expect("json");
        let expected = json!({"error": {"message": "User Not Authenticated",
            "detail": "Required to provide Auth information"}, "status": "failure"});
        assert_eq!(body, expected);
        let wrong = api.http.get(&url).basic_auth(USER, Some("nope")).send().await.expect("request");
        assert_eq!(wrong.status(), 401);
        let log = api.sim.request_log();
        assert_eq!(log.len(), 2);
        assert!(log.iter().all(|r| r.status == 401 && r.user.is_none()));
    }

    #[actix_web::test]
    async fn create_generates_fields_and_derives_priority() {
        let api = Api::start(config());
        let rec = api
            .create(json!({"short_description": "VPN down", "impact": 1, "urgency": "2",
                "priority": "5", "correlation_id": "HUB-1", "assigned_to": "david.loo", "u_x": "1"}))
            .await;
        let sys_id = rec["sys_id"].as_str().expect("sys_id");
        assert_eq!(sys_id.len(), 32);
        assert!(sys_id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        assert_eq!(rec["number"], "INC0010001");
        assert_eq!(rec["priority"], "2", "priority is derived, the written value is ignored");
        for (field, value) in
            [("impact", "1"), ("state", "1"), ("incident_state", "1"), ("active", "true"), ("sys_mod_count", "0"), ("sys_created_by", USER), ("caller_id", ""), ("work_notes", "")]
        {
            assert_eq!(rec[field], value, "{field}");
        }
        assert!(rec.get("u_x").is_none());
        assert!(NaiveDateTime::parse_from_str(rec["opened_at"].as_str().unwrap_or(""), DATE_FMT).is_ok());
        let link = format!("{}/api/now/table/sys_user/david.loo", api.base);
        assert_eq!(rec["assigned_to"], json!({"link": link, "value": "david.loo"}));
        let (_, user) = api.get("/api/now/table/sys_user/david.loo").await;
        assert_eq!(user["result"]["name"], "David Loo");
        let second = api.create(json!({"short_description": "second"})).await;
        assert_eq!((second["number"].as_str(), second["priority"].as_str()), (Some("INC0010002"), Some("5")));
        assert_eq!(api.sim.incident_by_correlation("HUB-1").len(), 1);
    }

    #[actix_web::test]
    async fn work_notes_go_to_the_journal_not_the_record() {
        let api = Api::start(config());
        let id = api.create(json!({"short_description": "disk full"})).await["sys_id"].clone();
        let id = id.as_str().expect("sys_id");
        let patch = json!({"work_notes": "checked the logs", "state": "2"});
        let (status, _, updated) = api.call("PATCH", &format!("/api/now/v2/table/incident/{id}"), Some(patch)).await;
        assert_eq!(status, 200);
        assert_eq!(updated["result"]["work_notes"], "");
        assert_eq!(updated["result"]["state"], "2");
        assert_eq!(updated["result"]["sys_mod_count"], "1");
        let journal = api.sim.journal(id);
        assert_eq!(journal.len(), 1);
        assert_eq!((journal[0]["element"].as_str(), journal[0]["value"].as_str()), (Some("work_notes"), Some("checked the logs")));
        assert_eq!(journal[0]["sys_created_by"], USER);
        let query = format!("element_id={id}^elementINwork_notes,comments^ORDERBYsys_created_on");
        let (_, rows) = api.get(&query_path("sys_journal_field", &[("sysparm_query", &query)])).await;
        assert_eq!(rows["result"].as_array().map(Vec::len), Some(1));
        assert_eq!(rows["result"][0]["name"], "incident");
        // A save that changes nothing is not a save: no audit bump.
        let (_, _, same) = api.call("PATCH", &format!("/api/now/table/incident/{id}"), Some(json!({"state": 2}))).await;
        assert_eq!(same["result"]["sys_mod_count"], "1");
    }

    #[actix_web::test]
    async fn display_modes_shape_choices_references_and_dates() {
        let api = Api::start(config());
        let rec = api.create(json!({"short_description": "x", "assigned_to": "david.loo"})).await;
        let id = rec["sys_id"].as_str().expect("sys_id");
        api.call("PATCH", &format!("/api/now/table/incident/{id}"), Some(json!({"state": "2"}))).await;
        let raw_created = rec["sys_created_on"].as_str().expect("date");
        let local = NaiveDateTime::parse_from_str(raw_created, DATE_FMT).expect("date") - chrono::Duration::hours(8);
        let local = local.format(DATE_FMT).to_string();
        let link = format!("{}/api/now/v1/table/sys_user/david.loo", api.base);

        let (_, shown) = api.get(&format!("/api/now/v1/table/incident/{id}?sysparm_display_value=true")).await;
        let r = &shown["result"];
        assert_eq!((r["state"].as_str(), r["priority"].as_str()), (Some("In Progress"), Some("5 - Planning")));
        assert_eq!(r["assigned_to"], json!({"display_value": "David Loo", "link": link}));
        assert_eq!(r["sys_created_on"], local.as_str());

        let (_, all) = api.get(&format!("/api/now/v1/table/incident/{id}?sysparm_display_value=all")).await;
        let r = &all["result"];
        assert_eq!(r["state"], json!({"display_value": "In Progress", "value": "2"}));
        assert_eq!(r["assigned_to"], json!({"display_value": "David Loo", "link": link, "value": "david.loo"}));
        assert_eq!(r["sys_created_on"], json!({"display_value": local, "value": raw_created}));
        assert_eq!(r["caller_id"], json!({"display_value": "", "value": ""}));

        let path = format!("/api/now/table/incident/{id}?sysparm_exclude_reference_link=true&sysparm_fields=assigned_to,state");
        let (_, collapsed) = api.get(&path).await;
        assert_eq!(collapsed["result"], json!({"assigned_to": "david.loo", "state": "2"}));
        assert_eq!(thousands("1234567"), "1,234,567");
    }

    #[actix_web::test]
    async fn query_orders_and_pages_with_link_and_total_headers() {
        let api = Api::start(config());
        let mut first_updated = String::new();
        for i in 0..5 {
            let rec = api.create(json!({"short_description": format!("item {i}"), "category": "network"})).await;
            if i == 0 {
                first_updated = rec["sys_updated_on"].as_str().unwrap_or("").to_string();
            }
        }
        let query = format!("sys_updated_on>={first_updated}^category=network^bogus=1^ORDERBYDESCnumber");
        let page = |offset: &'static str| query_path("incident", &[("sysparm_query", &query), ("sysparm_limit", "2"), ("sysparm_offset", offset)]);
        let (headers, body) = api.get(&page("2")).await;
        assert_eq!(hdr(&headers, "x-total-count"), "5");
        let numbers: Vec<&str> = body["result"].as_array().expect("array").iter().filter_map(|r| r["number"].as_str()).collect();
        assert_eq!(numbers, ["INC0010003", "INC0010002"]);
        let link = hdr(&headers, "link");
        for (rel, offset) in [("first", 0), ("prev", 0), ("next", 4), ("last", 4)] {
            let part = link.split(',').find(|p| p.ends_with(&format!("rel=\"{rel}\""))).expect(rel);
            assert!(part.contains(&format!("sysparm_offset={offset}&sysparm_limit=2")), "{part}");
        }
        let script = "sys_updated_on<javascript:gs.dateGenerate('2999-01-01','00:00:00')^ORDERBYnumber";
        let (headers, _) = api.get(&query_path("incident", &[("sysparm_query", script)])).await;
        assert_eq!(hdr(&headers, "x-total-count"), "5");
        let (headers, _) = api.get(&page("0")).await;
        assert!(!hdr(&headers, "link").contains("rel=\"prev\""));

        let future = query_path("incident", &[("sysparm_query", "sys_updated_on>=2999-01-01 00:00:00")]);
        let (headers, empty) = api.get(&future).await;
        assert_eq!(empty, json!({"result": []}));
        assert_eq!(hdr(&headers, "x-total-count"), "0");
        assert!(headers.get("link").is_none());
        assert_eq!(hdr(&headers, "content-type"), SN_JSON);
    }

    #[actix_web::test]
    async fn data_policy_rejects_and_leaves_record_unchanged() {
        let api = Api::start(config());
        let id = api.create(json!({"short_description": "x"})).await["sys_id"].clone();
        let (id, path) = (id.as_str().expect("sys_id"), format!("/api/now/table/incident/{}", id.as_str().unwrap_or("")));
        for body in [json!({"state": "6", "close_notes": "done", "work_notes": "fixed"}), json!({"state": 3})] {
            let (status, _, err) = api.call("PATCH", &path, Some(body)).await;
            assert_eq!(status, 403);
            assert_eq!(err["error"]["message"], "Operation Failed");
            assert!(err["error"]["detail"].as_str().unwrap_or("").starts_with("Data Policy Exception:"));
        }
        let (_, now) = api.get(&path).await;
        assert_eq!((now["result"]["state"].as_str(), now["result"]["sys_mod_count"].as_str()), (Some("1"), Some("0")));
        assert!(api.sim.journal(id).is_empty());
        let fix = json!({"state": "6", "close_code": "Solved (Permanently)", "close_notes": "done"});
        let resolved = api.sim.agent_update(id, fix).expect("resolve");
        assert_eq!(resolved["resolved_by"]["value"], DEFAULT_AGENT);
        assert!(!resolved["resolved_at"].as_str().unwrap_or("").is_empty());
        assert!(matches!(api.sim.agent_update("nope", json!({})), Err(SimError::NotFound)));
    }

    #[actix_web::test]
    async fn faults_rate_limit_lost_response_and_hibernation() {
        let api = Api::start(config());
        api.sim.push_fault(Fault::RateLimited { retry_after_secs: 7 });
        let (status, headers, body) = api.call("GET", "/api/now/table/incident", None).await;
        assert_eq!(status, 429);
        assert_eq!(hdr(&headers, "retry-after"), "7");
        assert!(headers.contains_key("x-ratelimit-reset"));
        assert_eq!(body["status"], "failure");
        let (_, ok) = api.get("/api/now/table/incident").await;
        assert_eq!(ok, json!({"result": []}));

        api.sim.push_fault(Fault::LoseResponseAfterCommit);
        let create = json!({"short_description": "x", "correlation_id": "HUB-LOST"});
        let (status, _, _) = api.call("POST", "/api/now/table/incident", Some(create)).await;
        assert_eq!(status, 500);
        assert_eq!(api.sim.incident_by_correlation("HUB-LOST").len(), 1, "the create was committed");
        // A create with a caller-chosen sys_id can be retried safely: the retry fails instead
        // of duplicating.
        let chosen = json!({"sys_id": "0123456789abcdef0123456789abcdef", "correlation_id": "HUB-ID"});
        api.sim.push_fault(Fault::LoseResponseAfterCommit);
        let (status, _, _) = api.call("POST", "/api/now/table/incident", Some(chosen.clone())).await;
        assert_eq!(status, 500);
        let (status, _, body) = api.call("POST", "/api/now/table/incident", Some(chosen)).await;
        assert_eq!((status, body["error"]["message"].as_str()), (403, Some("Operation Failed")));
        assert_eq!(api.sim.incident_by_correlation("HUB-ID").len(), 1);

        // Queued through the HTTP control surface this time.
        let queued = api.http.post(format!("{}/sim/faults", api.base)).json(&json!({"kind": "hibernating"})).send().await;
        assert_eq!(queued.expect("request").status(), 200);
        let (status, headers, _) = api.call("GET", "/api/now/table/incident", None).await;
        assert_eq!(status, 200);
        assert!(hdr(&headers, "content-type").starts_with("text/html"));
        let statuses: Vec<u16> = api.sim.request_log().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 200, 500, 500, 403, 200]);
    }

    #[actix_web::test]
    async fn errors_use_servicenow_bodies() {
        let api = Api::start(config());
        let bad = api
            .http
            .post(format!("{}/api/now/table/incident", api.base))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("request");
        assert_eq!(bad.status(), 400);
        let body: Value = bad.json().await.expect("json");
        assert_eq!(body["error"]["message"], "Exception while reading request");
        let (status, _, body) = api.call("GET", "/api/now/table/incidentx", None).await;
        assert_eq!(status, 400);
        assert_eq!(body, json!({"error": {"message": "Invalid table incidentx", "detail": null}, "status": "failure"}));
        let (status, _, body) = api.call("DELETE", "/api/now/table/incident/0123", None).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["detail"], "Record doesn't exist or ACL restricts the record retrieval");
    }

    #[actix_web::test]
    async fn webhook_is_signed_and_duplicates_keep_the_delivery_id() {
        let (url, store) = receiver();
        let target = WebhookTarget { url, secret: SECRET.into(), display_value: DisplayMode::All };
        let api = Api::start(SimConfig { webhook: Some(target), ..config() });
        let id = api.create(json!({"short_description": "x"})).await["sys_id"].clone();
        let got = wait_for(&store, 1).await;
        assert_eq!(got.len(), 1);
        let (headers, body) = &got[0];
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac");
        mac.update(format!("{}.{body}", hdr(headers, "x-siam-timestamp")).as_bytes());
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(hdr(headers, "x-siam-signature"), expected);
        assert_eq!(hdr(headers, "content-type"), "application/json");
        assert!(uuid::Uuid::parse_str(hdr(headers, "x-siam-delivery")).is_ok());
        let payload: Value = serde_json::from_str(body).expect("json");
        assert_eq!(payload["event"], "incident.created");
        assert_eq!(payload["record"]["sys_id"], json!({"display_value": id, "value": id}));
        assert_eq!(payload["journal"], json!([]));

        api.sim.set_webhook_behaviour(WebhookBehaviour { duplicate: true, ..WebhookBehaviour::default() });
        let path = format!("/api/now/table/incident/{}", id.as_str().unwrap_or(""));
        let (status, _, _) = api.call("PATCH", &path, Some(json!({"comments": "hello"}))).await;
        assert_eq!(status, 200);
        let got = wait_for(&store, 3).await;
        assert_eq!(got.len(), 3);
        let delivery = |i: usize| hdr(&got[i].0, "x-siam-delivery").to_string();
        assert_eq!(delivery(1), delivery(2));
        assert_ne!(delivery(0), delivery(1));
        let payload: Value = serde_json::from_str(&got[1].1).expect("json");
        assert_eq!(payload["event"], "incident.updated");
        assert_eq!(payload["journal"][0]["element"], "comments");
        assert_eq!(payload["journal"][0]["value"], "hello");
    }

    #[actix_web::test]
    async fn webhook_can_be_reordered_and_dropped() {
        let (url, store) = receiver();
        let api = Api::start(config());
        let id = api.create(json!({"short_description": "start"})).await["sys_id"].clone();
        let id = id.as_str().expect("sys_id");
        api.sim.set_webhook(Some(WebhookTarget { url, secret: SECRET.into(), display_value: DisplayMode::Raw }));
        api.sim.set_webhook_behaviour(WebhookBehaviour { reverse_order_of_next: 2, drop_next: 1, ..WebhookBehaviour::default() });
        for text in ["dropped", "first", "second"] {
            api.sim.agent_update(id, json!({"short_description": text})).expect("update");
        }
        let got = wait_for(&store, 2).await;
        let titles: Vec<String> =
            got.iter().filter_map(|(_, b)| serde_json::from_str::<Value>(b).ok()).map(|p| p["record"]["short_description"].as_str().unwrap_or("").to_string()).collect();
        assert_eq!(titles, ["second", "first"]);
        let stored = &api.sim.incidents()[0];
        assert_eq!((stored["sys_updated_by"].as_str(), stored["sys_mod_count"].as_str()), (Some(DEFAULT_AGENT), Some("3")));
    }

    #[actix_web::test]
    async fn change_requests_are_a_table_of_their_own() {
        let api = Api::start(config());
        let create = |body: Value| async { api.call("POST", "/api/now/table/change_request", Some(body)).await };
        let (status, _, first) = create(json!({"short_description": "Patch DB", "correlation_id": "CHG-000001", "start_date": "2030-01-01 22:00:00",
            "end_date": "next tuesday", "u_x": "1", "number": "CHG9"}))
        .await;
        assert_eq!(status, 201, "{first}");
        let r = &first["result"];
        assert_eq!(
            (r["number"].as_str(), r["state"].as_str(), r["approval"].as_str(), r["type"].as_str(), r["sys_mod_count"].as_str()),
            (Some("CHG0030001"), Some("-5"), Some("not requested"), Some("normal"), Some("0"))
        );
        assert_eq!((r["start_date"].as_str(), r["end_date"].as_str()), (Some("2030-01-01 22:00:00"), Some("")), "an unreadable date is not stored");
        assert_eq!((r["sys_created_by"].as_str(), r["sys_updated_by"].as_str()), (Some(USER), Some(USER)));
        assert!(r.get("u_x").is_none());
        let (_, _, second) = create(json!({"short_description": "Patch DB again", "correlation_id": "CHG-000001", "state": "-2"})).await;
        assert_eq!(second["result"]["number"], "CHG0030002");
        create(json!({"short_description": "other", "correlation_id": "CHG-000002"})).await;
        assert!(api.sim.incidents().is_empty());

        let query = "correlation_id=CHG-000001^ORDERBYDESCnumber^ORDERBYsys_id";
        let (headers, listed) = api.get(&query_path("change_request", &[("sysparm_query", query), ("sysparm_fields", "number,state")])).await;
        assert_eq!(hdr(&headers, "x-total-count"), "2");
        assert_eq!(listed["result"], json!([{"number": "CHG0030002", "state": "-2"}, {"number": "CHG0030001", "state": "-5"}]));

        let id = r["sys_id"].as_str().expect("sys_id");
        let path = format!("/api/now/table/change_request/{id}");
        let (status, _, patched) = api.call("PATCH", &path, Some(json!({"state": "4", "work_notes": "withdrawn by the supplier", "correlation_id": "CHG-000001"}))).await;
        assert_eq!(status, 200, "{patched}");
        let p = &patched["result"];
        assert_eq!((p["state"].as_str(), p["active"].as_str(), p["sys_mod_count"].as_str()), (Some("4"), Some("false"), Some("1")));
        assert!(!p["closed_at"].as_str().unwrap_or("").is_empty());
        let journal = api.sim.journal(id);
        assert_eq!(journal.len(), 1);
        assert_eq!(
            (journal[0]["name"].as_str(), journal[0]["element"].as_str(), journal[0]["value"].as_str()),
            (Some("change_request"), Some("work_notes"), Some("withdrawn by the supplier"))
        );

        let (_, shown) = api.get(&format!("{path}?sysparm_display_value=true")).await;
        let d = &shown["result"];
        assert_eq!((d["state"].as_str(), d["approval"].as_str(), d["sys_class_name"].as_str()), (Some("Canceled"), Some("Not Yet Requested"), Some("Change Request")));
        assert!(d["work_notes"].as_str().unwrap_or("").contains("(Work notes)\nwithdrawn by the supplier"));
        let (_, all) = api.get(&format!("{path}?sysparm_display_value=all&sysparm_fields=type,start_date")).await;
        assert_eq!(all["result"]["type"], json!({"display_value": "Normal", "value": "normal"}));
        assert_eq!(all["result"]["start_date"], json!({"display_value": "2030-01-01 14:00:00", "value": "2030-01-01 22:00:00"}));

        // The supplier's own change manager, through the Rust helper and the control surface.
        let edited = api.sim.agent_update_change(id, json!({"state": "-1", "on_hold": "yes please"})).expect("agent edit");
        assert_eq!((edited["state"].as_str(), edited["active"].as_str(), edited["on_hold"].as_str()), (Some("-1"), Some("true"), Some("false")));
        assert_eq!((edited["sys_updated_by"].as_str(), edited["sys_mod_count"].as_str()), (Some(DEFAULT_AGENT), Some("2")));
        let agent = api.http.post(format!("{}/sim/changes/{id}/agent?user=jane.doe", api.base)).json(&json!({"risk": "2"})).send().await.expect("request");
        assert_eq!(agent.status(), 200);
        let listed: Value = api.http.get(format!("{}/sim/changes", api.base)).send().await.expect("request").json().await.expect("json");
        assert_eq!((listed[0]["risk"].as_str(), listed[0]["sys_updated_by"].as_str()), (Some("2"), Some("jane.doe")));
        assert_eq!(listed.as_array().map(Vec::len), Some(3));
        assert!(matches!(api.sim.agent_update_change("nope", json!({})), Err(SimError::NotFound)));
        let (status, _, _) = api.call("PATCH", "/api/now/table/change_request/nope", Some(json!({"state": "-1"}))).await;
        assert_eq!(status, 404);
    }

    #[actix_web::test]
    async fn faults_apply_to_change_requests() {
        let api = Api::start(config());
        api.sim.push_fault(Fault::LoseResponseAfterCommit);
        let (status, _, _) = api.call("POST", "/api/now/table/change_request", Some(json!({"correlation_id": "CHG-000009"}))).await;
        assert_eq!(status, 500);
        assert_eq!(api.sim.changes().len(), 1, "the create was committed");
        api.sim.push_fault(Fault::RateLimited { retry_after_secs: 3 });
        let (status, headers, _) = api.call("GET", "/api/now/table/change_request", None).await;
        assert_eq!((status, hdr(&headers, "retry-after")), (429, "3"));
        api.sim.push_fault(Fault::Timeout { delay: Duration::from_secs(3) });
        let url = format!("{}/api/now/table/change_request", api.base);
        let impatient = api.http.get(&url).basic_auth(USER, Some(PASSWORD)).timeout(Duration::from_millis(300)).send().await;
        assert!(impatient.is_err_and(|e| e.is_timeout()));
        let (_, listed) = api.get("/api/now/table/change_request").await;
        assert_eq!(listed["result"].as_array().map(Vec::len), Some(1));
    }

    #[actix_web::test]
    async fn control_surface_and_timeout_fault() {
        let api = Api::start(config());
        let id = api.create(json!({"short_description": "x"})).await["sys_id"].clone();
        let id = id.as_str().expect("sys_id");
        let agent = api
            .http
            .post(format!("{}/sim/incidents/{id}/agent?user=jane.doe", api.base))
            .json(&json!({"state": "3", "hold_reason": "1", "comments": "waiting for you"}))
            .send()
            .await
            .expect("request");
        assert_eq!(agent.status(), 200);
        let (_, shown) = api.get(&format!("/api/now/table/incident/{id}?sysparm_display_value=true")).await;
        assert_eq!(shown["result"]["hold_reason"], "Awaiting Caller");
        assert_eq!(shown["result"]["sys_updated_by"], "jane.doe");
        let comments = shown["result"]["comments"].as_str().unwrap_or("");
        assert!(comments.contains(" - Jane Doe (Additional comments)\nwaiting for you\n\n"));
        let listed: Value = api.http.get(format!("{}/sim/incidents", api.base)).send().await.expect("request").json().await.expect("json");
        assert_eq!(listed[0]["state"], "3");

        let spec = json!({"kind": "timeout", "delay_ms": 3000});
        let queued = api.http.post(format!("{}/sim/faults", api.base)).json(&spec).send().await;
        assert_eq!(queued.expect("request").status(), 200);
        let impatient = api.http.get(format!("{}/api/now/table/incident", api.base)).basic_auth(USER, Some(PASSWORD)).timeout(Duration::from_millis(300)).send().await;
        assert!(impatient.is_err_and(|e| e.is_timeout()));
        let (_, listed) = api.get("/api/now/table/incident").await;
        assert_eq!(listed["result"].as_array().map(Vec::len), Some(1));
        let log: Value = api.http.get(format!("{}/sim/requests", api.base)).send().await.expect("request").json().await.expect("json");
        assert!(log.as_array().is_some_and(|l| l.iter().all(|r| r["path"].as_str().unwrap_or("").starts_with("/api/now/"))));
    }
}
