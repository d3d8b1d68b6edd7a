//! Settings: a TOML file (`SIAM_CONFIG`, or `--config`) overlaid with `SIAM_*` environment
//! variables. Secrets are referenced by environment variable name and held as `SecretString`
//! so they never reach a log line or a debug print.

use crate::domain::PriorityMatrix;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: supplier `{supplier}` refers to environment variable {var}, which is not set")]
    MissingSecret { supplier: String, var: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    #[serde(default = "defaults::listen")]
    pub listen: String,
    /// Base URL suppliers and links use to reach this hub.
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default = "defaults::database_url")]
    pub database_url: String,
    #[serde(default = "defaults::amqp_url")]
    pub amqp_url: String,
    #[serde(default)]
    pub broker: BrokerSettings,
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest attachment the hub accepts.
    #[serde(default = "defaults::max_attachment_bytes")]
    pub max_attachment_bytes: usize,
    /// Most files one incident holds; a further upload is refused (and a further supplier file
    /// is recorded as refused).
    #[serde(default = "defaults::max_attachments_per_incident")]
    pub max_attachments_per_incident: i64,
    /// Pruning of what would otherwise grow without bound.
    #[serde(default)]
    pub housekeeping: HousekeepingSettings,
    #[serde(default)]
    pub priority_matrix: PriorityMatrix,
    /// The service catalogue: an incident naming a service outside it is refused.
    #[serde(default)]
    pub services: Vec<ServiceEntry>,
    #[serde(default)]
    pub suppliers: Vec<SupplierSettings>,
    #[serde(default)]
    pub routing: RoutingSettings,
    /// SLA calendars and contracts (per supplier and end to end).
    #[serde(default)]
    pub sla: SlaSettings,
    /// How supplier and hub changes are reconciled.
    #[serde(default)]
    pub sync: SyncSettings,
    /// The SLA monitor: keeps the stored clocks current and announces warnings and breaches.
    #[serde(default)]
    pub sla_monitor: SlaMonitorSettings,
    /// How SLA reports and the dashboard present the figures.
    #[serde(default)]
    pub reporting: ReportingSettings,
    /// Where the hub's requests to addresses it did not configure may go.
    #[serde(default)]
    pub egress: EgressSettings,
    /// Event subscriptions to the hub's own TMF621 API (`/hub`).
    #[serde(default)]
    pub tmf621_hub: Tmf621HubSettings,
    /// How changes are authorised and scheduled.
    #[serde(default)]
    pub changes: ChangeSettings,
}

/// The integrated CAB and the forward schedule: whose approval a change needs, when changes
/// may not happen (freezes) or should (maintenance windows), and pre-approved templates.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChangeSettings {
    /// CAB rules, the first that covers a change applies; one integrator approval when none does.
    #[serde(default)]
    pub cab: Vec<crate::domain::change::lifecycle::CabRule>,
    #[serde(default)]
    pub freezes: Vec<crate::domain::change::schedule::Freeze>,
    /// Services' weekly maintenance windows; a change on a service that has some must fit one.
    #[serde(default)]
    pub maintenance: Vec<crate::domain::change::schedule::MaintenanceWindow>,
    /// Standard changes raised from a template are pre-approved.
    #[serde(default)]
    pub templates: Vec<ChangeTemplate>,
    /// What a failed leg asks of the legs that did their part.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
}

/// A pre-approved standard change: `POST /api/v1/changes` with `"template"` takes these values
/// for whatever the request leaves out.
#[derive(Debug, Clone, Deserialize)]
pub struct ChangeTemplate {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub cis: Vec<String>,
    #[serde(default)]
    pub risk: Option<u8>,
    #[serde(default)]
    pub implementation_plan: String,
    #[serde(default)]
    pub backout_plan: String,
    #[serde(default)]
    pub test_plan: String,
}

/// After a failed leg: ask every leg that did (or is doing) its part to back out, or leave it
/// to the change manager.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    #[default]
    BackOut,
    None,
}

/// The hub reaches a URL it was given rather than configured (a file a supplier lists on an
/// origin in its `attachment_origins`, a subscriber's callback) only on public addresses: not
/// on loopback, link-local, private, unspecified, multicast or cloud-metadata ones, unless
/// listed here.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EgressSettings {
    /// Networks (CIDR, e.g. `"10.20.0.0/16"`, or single addresses) the hub may reach all the
    /// same. Empty by default.
    #[serde(default)]
    pub allow_networks: Vec<String>,
}

/// Limits of the event subscriptions to the hub's TMF621 API.
#[derive(Debug, Clone, Deserialize)]
pub struct Tmf621HubSettings {
    /// Subscriptions one API key may hold.
    #[serde(default = "defaults::subscriptions_per_key")]
    pub max_subscriptions_per_key: usize,
    /// Notifications waiting for one subscriber; beyond this its waiting notifications go to
    /// the dead-letter list.
    #[serde(default = "defaults::pending_deliveries")]
    pub max_pending_deliveries: i64,
    /// How long a subscriber's notification is retried (with backoff) before it and every
    /// notification waiting behind it go to the dead-letter list.
    #[serde(default = "defaults::retry_budget")]
    pub retry_budget_secs: u64,
    /// Seconds a subscriber has to answer one notification.
    #[serde(default = "defaults::delivery_timeout")]
    pub delivery_timeout_secs: u64,
}

impl Default for Tmf621HubSettings {
    fn default() -> Self {
        Tmf621HubSettings {
            max_subscriptions_per_key: defaults::subscriptions_per_key(),
            max_pending_deliveries: defaults::pending_deliveries(),
            retry_budget_secs: defaults::retry_budget(),
            delivery_timeout_secs: defaults::delivery_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct HousekeepingSettings {
    /// Seconds between pruning rounds.
    #[serde(default = "defaults::housekeeping_interval")]
    pub interval_secs: u64,
    /// Published outbox messages are kept this long (for inspection), then deleted.
    #[serde(default = "defaults::retention")]
    pub outbox_retention_secs: i64,
    /// Ids of handled messages are kept this long, then deleted. At least a day: a message that
    /// waited in its queue longer than this (consumers down) would be handled a second time.
    #[serde(default = "defaults::retention")]
    pub inbox_retention_secs: i64,
    /// Content of an upload that stopped this long ago without being finished is deleted.
    #[serde(default = "defaults::stale_upload")]
    pub stale_upload_secs: i64,
}

impl Default for HousekeepingSettings {
    fn default() -> Self {
        HousekeepingSettings {
            interval_secs: defaults::housekeeping_interval(),
            outbox_retention_secs: defaults::retention(),
            inbox_retention_secs: defaults::retention(),
            stale_upload_secs: defaults::stale_upload(),
        }
    }
}

/// The shortest inbox retention [`HousekeepingSettings`] accepts.
pub const MIN_INBOX_RETENTION_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, Deserialize)]
pub struct SlaMonitorSettings {
    /// Seconds between rounds (a round also starts early when a clock is due to cross a threshold).
    #[serde(default = "defaults::monitor_interval")]
    pub interval_secs: u64,
    /// Tickets computed per transaction.
    #[serde(default = "defaults::monitor_batch")]
    pub batch: i64,
    /// A breach first seen longer than this after it happened (history recorded before the SLA
    /// contracts existed, or every hub stopped for that long) is stored but not announced.
    #[serde(default = "defaults::announce_within")]
    pub announce_within_secs: i64,
}

impl Default for SlaMonitorSettings {
    fn default() -> Self {
        SlaMonitorSettings { interval_secs: defaults::monitor_interval(), batch: defaults::monitor_batch(), announce_within_secs: defaults::announce_within() }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReportingSettings {
    /// IANA time zone in which report months and days begin and end.
    #[serde(default = "defaults::time_zone")]
    pub time_zone: String,
    /// Percentage of clocks that must be met: the target line on the dashboard's bars.
    #[serde(default = "defaults::compliance_target")]
    pub compliance_target: f64,
    /// Per-contract overrides of `compliance_target`, by contract id.
    #[serde(default)]
    pub compliance_targets: std::collections::BTreeMap<String, f64>,
    /// An open ticket is "at risk" once a running clock has used this share of its target.
    #[serde(default = "defaults::at_risk_percent")]
    pub at_risk_percent: f64,
}

impl Default for ReportingSettings {
    fn default() -> Self {
        ReportingSettings {
            time_zone: defaults::time_zone(),
            compliance_target: defaults::compliance_target(),
            compliance_targets: Default::default(),
            at_risk_percent: defaults::at_risk_percent(),
        }
    }
}

impl ReportingSettings {
    /// The compliance target of one contract, in percent.
    pub fn target_for(&self, contract: &str) -> f64 {
        self.compliance_targets.get(contract).copied().unwrap_or(self.compliance_target)
    }
}

/// Who wins when the hub and a supplier both changed a field before they were back in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The hub's value stays and is pushed to the supplier again.
    HubWins,
    /// The supplier's value replaces the hub's.
    SupplierWins,
    /// The later change wins, by the two sides' update times.
    #[default]
    LatestWins,
}

/// What happens when a supplier hands a ticket back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HandbackRule {
    /// The next routing rule that matches, skipping suppliers that already handed it back;
    /// the integrator queue when none is left.
    #[default]
    NextRule,
    /// The integrator queue, for the service desk to choose.
    ServiceDesk,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConflictSettings {
    #[serde(default)]
    pub default: ConflictPolicy,
    /// Per canonical field: title, description, status, hold_reason, impact, urgency,
    /// category, ci, resolution.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, ConflictPolicy>,
}

impl ConflictSettings {
    pub fn policy(&self, field: &str) -> ConflictPolicy {
        self.fields.get(field).copied().unwrap_or(self.default)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SyncSettings {
    #[serde(default)]
    pub conflicts: ConflictSettings,
    #[serde(default)]
    pub on_handback: HandbackRule,
}

/// The canonical fields both sides may edit.
pub const SYNCED_FIELDS: &[&str] = &["title", "description", "status", "hold_reason", "impact", "urgency", "category", "ci", "resolution"];

#[derive(Debug, Clone, Deserialize)]
pub struct ServiceEntry {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BrokerSettings {
    /// Prefix of every exchange and queue name, so several hubs (or tests) share one broker.
    #[serde(default = "defaults::prefix")]
    pub prefix: String,
    /// Deliveries of one message before the broker dead-letters it.
    #[serde(default = "defaults::delivery_limit")]
    pub delivery_limit: i64,
    /// Publisher confirms kept in flight by the outbox relay.
    #[serde(default = "defaults::confirm_window")]
    pub confirm_window: i64,
    /// Optional `x-expires` on queues, for short-lived deployments such as test runs.
    #[serde(default)]
    pub queue_expires_ms: Option<i64>,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings { prefix: defaults::prefix(), delivery_limit: defaults::delivery_limit(), confirm_window: defaults::confirm_window(), queue_expires_ms: None }
    }
}

/// Where a secret comes from: `{ env = "VAR" }` in the file, or a value set in code (the demo).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SecretRef {
    Env {
        env: String,
    },
    #[serde(skip)]
    Value(SecretString),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebhookAuth {
    /// HMAC-SHA256 of `<timestamp>.<raw body>`, in `X-Siam-Signature`, with `X-Siam-Timestamp`.
    #[default]
    Hmac,
    /// HTTP basic auth, for suppliers that can do no better.
    Basic,
    /// `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>` (Jira Cloud admin webhooks).
    HubSignature,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SupplierSettings {
    pub id: String,
    pub name: String,
    /// `servicenow`, `jira`, `remedy`, `tmf621`, or `queue` for a hub-internal queue (the integrator's) with no
    /// external system.
    pub system: String,
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub username: String,
    pub password: Option<SecretRef>,
    pub webhook_secret: Option<SecretRef>,
    #[serde(default)]
    pub webhook_auth: WebhookAuth,
    /// Seconds a webhook timestamp may differ from the hub's clock.
    #[serde(default = "defaults::webhook_tolerance")]
    pub webhook_tolerance_secs: i64,
    #[serde(default = "defaults::poll_interval")]
    pub poll_interval_secs: u64,
    /// The poller re-reads this far behind its watermark so supplier clock skew loses nothing.
    #[serde(default = "defaults::poll_overlap")]
    pub poll_overlap_secs: i64,
    #[serde(default = "defaults::timeout")]
    pub timeout_secs: u64,
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "defaults::rate_per_sec")]
    pub rate_per_sec: u32,
    /// Largest file sent to (or taken from) this supplier; larger ones are refused, and the leg
    /// says so.
    #[serde(default = "defaults::supplier_attachment_bytes")]
    pub max_attachment_bytes: i64,
    /// Origins besides `base_url`'s (e.g. `["https://files.example.com"]`) from which the hub
    /// fetches the files this supplier lists, without its credentials and only on addresses
    /// `[egress]` allows. A file anywhere else is refused, and the leg says so.
    #[serde(default)]
    pub attachment_origins: Vec<String>,
    /// Largest API answer read from this supplier (files excepted); a larger one is an error.
    #[serde(default = "defaults::max_response_bytes")]
    pub max_response_bytes: usize,
    /// This instance's own values on top of its system's mapping profile.
    #[serde(default)]
    pub overrides: ProfileOverrides,
    /// Whether the hub keeps this supplier's part of each change as a change record in the
    /// supplier's own system (where the system takes changes: ServiceNow, Remedy, TMF655), or
    /// the supplier works its change legs through the hub's API only.
    #[serde(default = "defaults::yes")]
    pub change_records: bool,
    /// TMF621 instances only (`system = "tmf621"`): API version, flavour, auth and vocabularies.
    /// Every member has a default, so a plain TMF621 v4 supplier needs no `[suppliers.tmf621]`.
    #[serde(default)]
    pub tmf621: Tmf621Settings,
    /// Jira Cloud / JSM specifics (`[suppliers.jira]`), read only for `system = "jira"`.
    #[serde(default)]
    pub jira: JiraSettings,
    /// BMC Helix / Remedy specifics (`[suppliers.remedy]`); ignored by other systems.
    #[serde(default)]
    pub remedy: RemedySettings,
}

/// An instance's customisations of its system's profile: native value -> canonical value.
/// A customised ServiceNow instance with a state `11` "Awaiting vendor fix", say, declares
/// `states = { "11" = "on_hold" }` and `hold_reasons`, and the hub reads it like a built-in.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProfileOverrides {
    #[serde(default)]
    pub states: std::collections::BTreeMap<String, crate::domain::Status>,
    #[serde(default)]
    pub hold_reasons: std::collections::BTreeMap<String, crate::domain::HoldReason>,
    /// Native resolution / close codes -> canonical resolution codes.
    #[serde(default)]
    pub resolutions: std::collections::BTreeMap<String, String>,
    /// The instance's own priority matrix (rows impact 1..3, columns urgency 1..3), where it is
    /// not the hub's: the hub then writes the impact and urgency, nearest to the record's, that
    /// make the supplier's ticket carry the record's priority, so both sides work to one
    /// priority.
    #[serde(default)]
    pub priority_matrix: Option<PriorityMatrix>,
}

/// Which TMF621 release a supplier speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TmfVersion {
    /// R19 "4.0.0": `externalId`, `statusChange[]`, flat `relatedParty`, `timeOcurred` (sic).
    #[default]
    V4,
    /// 5.0.0: `externalIdentifier[]`, `statusChangeHistory`, nested `partyOrPartyRole`, `@type`
    /// mandatory, `troubleTicketCharacteristic`.
    V5,
}

/// Known real-world dialects of TMF621.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TmfFlavour {
    /// The specification as written.
    #[default]
    Standard,
    /// ServiceNow's "Trouble Ticket Open API": statuses `New`/`Open` outside the enum, non-ISO
    /// dates, `severity` = ServiceNow priority (`"2 - High"`, written `1`..`5`), roles in
    /// `@referredType`, `note[].@type` `comments`/`work_notes`.
    Servicenow,
}

/// How the hub authenticates to a TMF621 supplier (the specification leaves it open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TmfAuth {
    /// `username` / `password`.
    #[default]
    Basic,
    /// A static bearer token, held in `password`.
    Bearer,
    /// OAuth2 client credentials at `token_url`: `username` = client id, `password` = secret.
    Oauth2,
}

/// How an entry is added to an array attribute (`note[]`, `attachment[]`) with a merge-patch
/// (whose arrays replace, by RFC 7386).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TmfNotePatch {
    /// Send the whole array with the new entry appended (spec-conformant merge-patch).
    Full,
    /// Send only the new entry; the server appends it (ServiceNow).
    Append,
}

/// Settings of a TMF621 supplier instance. `None` means "the flavour's default".
#[derive(Debug, Clone, Deserialize)]
pub struct Tmf621Settings {
    #[serde(default)]
    pub version: TmfVersion,
    #[serde(default)]
    pub flavour: TmfFlavour,
    /// API root before `/troubleTicket` and `/hub`; default `/tmf-api/troubleTicket/v4` (or
    /// `/v5`), or `/api/sn_ind_tsm_sdwan/ticket` for the ServiceNow flavour.
    #[serde(default)]
    pub base_path: Option<String>,
    #[serde(default)]
    pub auth: TmfAuth,
    /// OAuth2 token endpoint (absolute URL, or a path on `base_url`), for `auth = "oauth2"`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// `severity` labels for canonical impact 1, 2, 3 (default Critical, Major, Minor).
    #[serde(default)]
    pub severity: Option<Vec<String>>,
    /// Further `severity` values the supplier may send, with the impact (1..3) each means.
    #[serde(default)]
    pub severity_aliases: std::collections::BTreeMap<String, u8>,
    /// `priority` labels for canonical priority 1..5 (default Critical, High, Medium, Low,
    /// Planning).
    #[serde(default)]
    pub priority: Option<Vec<String>>,
    /// Native status -> canonical status (or `refused`), over the profile's table; matched
    /// without regard to case. For instance-specific states such as `"Awaiting Info"`.
    #[serde(default)]
    pub status_map: std::collections::BTreeMap<String, String>,
    /// Carry impact, urgency, category and resolution code in `troubleTicketCharacteristic`
    /// (default: on for v5, off for v4, whose resource has no such attribute).
    #[serde(default)]
    pub characteristics: Option<bool>,
    /// The `note[].@type` this instance treats as private (ServiceNow: `work_notes`). Without
    /// one, internal hub notes are never sent to the supplier.
    #[serde(default)]
    pub private_note_type: Option<String>,
    /// The `note[].@type` written for public notes (ServiceNow: `comments`).
    #[serde(default)]
    pub public_note_type: Option<String>,
    #[serde(default)]
    pub note_patch: Option<TmfNotePatch>,
    /// `ticketType` of created tickets (default `incident`; ServiceNow `Incident`).
    #[serde(default)]
    pub ticket_type: Option<String>,
    /// Register at the supplier's `/hub` for event notifications on start (callback
    /// `<public_url>/webhooks/<id>`); the reconciliation sweep runs either way.
    #[serde(default = "defaults::yes")]
    pub subscribe: bool,
    /// API root of the supplier's TMF655 Change Management, before `/changeRequest`: the hub
    /// keeps its change legs at this supplier there.
    #[serde(default = "Tmf621Settings::default_change_base_path")]
    pub change_base_path: String,
}

impl Tmf621Settings {
    /// TMF655 v4 at its standard path.
    pub fn default_change_base_path() -> String {
        "/tmf-api/changeManagement/v4".into()
    }

    /// Vocabularies must cover every canonical level, and mapped statuses must be canonical.
    fn check(&self) -> Result<(), String> {
        // ServiceNow's severity is its priority (5 levels); otherwise it is the impact (3).
        let levels = if self.flavour == TmfFlavour::Servicenow { 5 } else { 3 };
        if let Some(l) = &self.severity {
            if l.len() != levels {
                return Err(format!("tmf621.severity needs {levels} labels, one per level from 1, got {}", l.len()));
            }
        }
        if let Some(l) = &self.priority {
            if l.len() != 5 {
                return Err(format!("tmf621.priority needs 5 labels (priority 1..5), got {}", l.len()));
            }
        }
        if let Some((k, v)) = self.severity_aliases.iter().find(|(_, v)| !(1..=3).contains(*v)) {
            return Err(format!("tmf621.severity_aliases.{k} = {v} is not an impact 1..3"));
        }
        for (native, target) in &self.status_map {
            if target != "refused" && target.parse::<crate::domain::Status>().is_err() {
                return Err(format!("tmf621.status_map maps `{native}` to `{target}`, which is neither a canonical status nor `refused`"));
            }
        }
        if let Some(u) = &self.token_url {
            if !(u.starts_with('/') || url::Url::parse(u).is_ok()) {
                return Err(format!("tmf621.token_url `{u}` is neither a URL nor a path"));
            }
        }
        Ok(())
    }
}

impl Default for Tmf621Settings {
    fn default() -> Self {
        Tmf621Settings {
            version: TmfVersion::default(),
            flavour: TmfFlavour::default(),
            base_path: None,
            auth: TmfAuth::default(),
            token_url: None,
            severity: None,
            severity_aliases: Default::default(),
            priority: None,
            status_map: Default::default(),
            characteristics: None,
            private_note_type: None,
            public_note_type: None,
            note_patch: None,
            ticket_type: None,
            subscribe: true,
            change_base_path: Tmf621Settings::default_change_base_path(),
        }
    }
}

/// How the hub raises a Jira ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum JiraCreate {
    /// `POST /rest/api/3/issue` in `project_key` with `issue_type`: the hub reference travels in
    /// the create body (label and reference field), so a retried create finds the first one.
    #[default]
    Issue,
    /// `POST /rest/servicedeskapi/request` with `service_desk_id` and `request_type_id`: every
    /// field the hub writes (summary, description, priority, labels, the reference, impact and
    /// urgency fields) must be on the request type's form, the labels above all, since a
    /// retried create finds the first one by its label.
    Request,
}

/// Jira Cloud / Jira Service Management settings of one supplier instance. Every id here is per
/// site (custom field ids, status ids, request types): the defaults are those of the reference
/// site described in `adapters/jira/profile.json` (and played by the simulator).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JiraSettings {
    /// Project the hub raises issues in (its key, e.g. `OPS`).
    pub project_key: String,
    /// Issue type name used by `create_via = "issue"`.
    pub issue_type: String,
    pub create_via: JiraCreate,
    pub service_desk_id: Option<String>,
    pub request_type_id: Option<String>,
    /// Custom field ids (`customfield_NNNNN`) overriding the profile's; `""` means the site has
    /// no such field. `reference_field` is a text field shown to agents holding the hub reference
    /// (lookups use the `siam-INC-…` label, matched exactly by JQL); `impact_field` and
    /// `urgency_field` are the JSM Impact and Urgency select lists.
    pub reference_field: Option<String>,
    pub impact_field: Option<String>,
    pub urgency_field: Option<String>,
    /// Time zone of the integration user (IANA name): JQL dates are read in it, to the minute.
    pub time_zone: String,
    /// Status rules by status id, added to (or replacing) the profile's: what this site's
    /// statuses mean.
    pub statuses: std::collections::BTreeMap<String, JiraStatusRule>,
    /// Target status id per canonical status (`on_hold` per hold reason as `on_hold:<reason>`),
    /// overriding the profile's.
    pub status_targets: std::collections::BTreeMap<String, String>,
    /// Resolution names (this site's) to canonical resolution codes, added to the profile's.
    pub resolutions: std::collections::BTreeMap<String, String>,
    /// This site's priority scheme, replacing the profile's (Highest..Lowest): each priority's
    /// id and name, the hub priority (1..5) it stands for and the urgency (1..3) it implies.
    /// Every hub priority needs one.
    pub priorities: Vec<crate::adapters::jira::mapping::PriorityLevel>,
}

impl Default for JiraSettings {
    fn default() -> Self {
        JiraSettings {
            project_key: String::new(),
            issue_type: "Incident".into(),
            create_via: JiraCreate::Issue,
            service_desk_id: None,
            request_type_id: None,
            reference_field: None,
            impact_field: None,
            urgency_field: None,
            time_zone: "UTC".into(),
            statuses: Default::default(),
            status_targets: Default::default(),
            resolutions: Default::default(),
            priorities: Vec::new(),
        }
    }
}

/// What one Jira status id means. `canonical = None` declares a status the hub must not map
/// (it is kept on the leg, unmapped).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct JiraStatusRule {
    /// `new`, `indeterminate` or `done`: a record whose status carries another category than
    /// the rule says is a different status (ids are per site) and stays unmapped.
    pub category: String,
    #[serde(default)]
    pub canonical: Option<String>,
    #[serde(default)]
    pub hold_reason: Option<String>,
    /// The status name on the reference site; documentation only, never used to map.
    #[serde(default)]
    pub name: Option<String>,
}

/// What a Remedy instance needs beyond URL and credentials. Every field is optional: the
/// defaults suit an instance whose assignment rules route the hub's incidents and whose
/// integration user is also a person (CTM:People) the incidents can be raised for.
#[derive(Debug, Clone, Deserialize)]
pub struct RemedySettings {
    /// `authString` sent at login, for servers that need an authentication string.
    #[serde(default)]
    pub auth_string: Option<String>,
    /// The customer the incidents are raised for (`Login_ID` on the create form, which must
    /// resolve to one CTM:People record). Defaults to the integration user's login.
    #[serde(default)]
    pub customer_login_id: Option<String>,
    /// The customer by name (`First_Name`/`Last_Name`), used when `customer_login_id` is not set
    /// and both are given.
    #[serde(default)]
    pub customer_first_name: Option<String>,
    #[serde(default)]
    pub customer_last_name: Option<String>,
    /// The customer company (`Company`).
    #[serde(default)]
    pub company: Option<String>,
    /// The support group the hub's incidents are assigned to (`Assigned Support Company`,
    /// `Assigned Support Organization`, `Assigned Group`, exactly as in the foundation data).
    /// Without them the instance's assignment rules decide.
    #[serde(default)]
    pub support_company: Option<String>,
    #[serde(default)]
    pub support_organization: Option<String>,
    #[serde(default)]
    pub support_group: Option<String>,
    /// `Service_Type` of created incidents.
    #[serde(default = "defaults::remedy_service_type")]
    pub service_type: String,
    /// `Reported Source` of created incidents.
    #[serde(default = "defaults::remedy_reported_source")]
    pub reported_source: String,
    /// `Vendor Name` written beside the hub reference (`Vendor Ticket Number`).
    #[serde(default = "defaults::remedy_vendor_name")]
    pub vendor_name: String,
    /// Per-instance changes to `adapters/remedy/profile.json`, merged over it key by key: custom
    /// statuses (`status.to_canonical`), status reasons, impact and urgency labels... Checked
    /// when the hub starts.
    #[serde(default)]
    pub profile: Option<serde_json::Value>,
}

impl Default for RemedySettings {
    fn default() -> Self {
        RemedySettings {
            auth_string: None,
            customer_login_id: None,
            customer_first_name: None,
            customer_last_name: None,
            company: None,
            support_company: None,
            support_organization: None,
            support_group: None,
            service_type: defaults::remedy_service_type(),
            reported_source: defaults::remedy_reported_source(),
            vendor_name: defaults::remedy_vendor_name(),
            profile: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RoutingRule {
    pub service: Option<String>,
    pub ci: Option<String>,
    pub category: Option<String>,
    pub supplier: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RoutingSettings {
    /// Rules in order; the first whose every given field matches wins.
    #[serde(default)]
    pub rules: Vec<RoutingRule>,
    /// Where a ticket goes when no rule matches: the service integrator's own queue.
    #[serde(default = "defaults::default_queue")]
    pub default_queue: String,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings { rules: vec![], default_queue: defaults::default_queue() }
    }
}

/// SLA configuration as written in the file; `crate::sla` turns it into calendars and clocks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlaSettings {
    #[serde(default)]
    pub calendars: Vec<CalendarDef>,
    #[serde(default)]
    pub contracts: Vec<ContractDef>,
}

/// A business-hours calendar.
#[derive(Debug, Clone, Deserialize)]
pub struct CalendarDef {
    pub id: String,
    /// IANA time zone, e.g. `Europe/London`.
    #[serde(default = "defaults::time_zone")]
    pub time_zone: String,
    /// Round the clock, every day (holidays ignored): the usual P1 calendar.
    #[serde(default)]
    pub always: bool,
    /// Working hours per weekday (`mon`..`sun`) as `["08:00", "18:00"]`; a missing day is closed.
    #[serde(default)]
    pub hours: std::collections::BTreeMap<String, Vec<String>>,
    /// Public holidays (`YYYY-MM-DD`), closed all day.
    #[serde(default)]
    pub holidays: Vec<chrono::NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractKind {
    /// An OLA / underpinning contract with one supplier: its clocks run only while that supplier
    /// holds the ticket.
    Supplier,
    /// The customer SLA: from the moment the ticket is raised until it is resolved.
    EndToEnd,
}

/// What a reopened ticket does to the resolution clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReopenRule {
    /// The clock carries on from the time already used.
    #[default]
    Resume,
    /// A fresh clock starts at the reopen; the first resolution keeps its own verdict.
    Restart,
}

/// What a priority change mid-flight does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PriorityChangeRule {
    /// The new priority's target applies, measured from the original start.
    #[default]
    Retarget,
    /// The target of the priority the ticket was opened with stays.
    KeepOriginal,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TargetDef {
    pub response_mins: i64,
    pub resolution_mins: i64,
    /// Overrides the contract calendar for this priority (e.g. 24x7 for P1).
    pub calendar: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContractDef {
    pub id: String,
    pub kind: ContractKind,
    /// The supplier, for `kind = "supplier"`.
    pub supplier: Option<String>,
    pub calendar: String,
    /// Targets by priority (`"1"`..`"5"`).
    pub targets: std::collections::BTreeMap<String, TargetDef>,
    /// Hold reasons that pause this contract's clocks (e.g. `awaiting_caller`).
    #[serde(default)]
    pub pause_on: Vec<crate::domain::HoldReason>,
    /// Percentages of the target at which a warning is raised.
    #[serde(default = "defaults::warn_at")]
    pub warn_at: Vec<u8>,
    #[serde(default)]
    pub reopen: ReopenRule,
    #[serde(default)]
    pub priority_change: PriorityChangeRule,
}

mod defaults {
    pub fn yes() -> bool {
        true
    }
    pub fn time_zone() -> String {
        "Europe/London".into()
    }
    pub fn monitor_interval() -> u64 {
        30
    }
    pub fn monitor_batch() -> i64 {
        500
    }
    pub fn announce_within() -> i64 {
        24 * 3600
    }
    pub fn compliance_target() -> f64 {
        95.0
    }
    pub fn at_risk_percent() -> f64 {
        75.0
    }
    pub fn warn_at() -> Vec<u8> {
        vec![75, 90]
    }
    pub fn listen() -> String {
        "127.0.0.1:8080".into()
    }
    pub fn database_url() -> String {
        "postgres://postgres@127.0.0.1:5432/siam_hub".into()
    }
    pub fn amqp_url() -> String {
        "amqp://guest:guest@127.0.0.1:5672/%2f".into()
    }
    pub fn prefix() -> String {
        "siam".into()
    }
    pub fn delivery_limit() -> i64 {
        5
    }
    pub fn confirm_window() -> i64 {
        256
    }
    pub fn max_body_bytes() -> usize {
        256 * 1024
    }
    pub fn webhook_tolerance() -> i64 {
        300
    }
    pub fn poll_interval() -> u64 {
        60
    }
    pub fn poll_overlap() -> i64 {
        120
    }
    pub fn timeout() -> u64 {
        10
    }
    pub fn max_attempts() -> u32 {
        5
    }
    pub fn rate_per_sec() -> u32 {
        20
    }
    pub fn max_attachments_per_incident() -> i64 {
        100
    }
    pub fn housekeeping_interval() -> u64 {
        3600
    }
    pub fn retention() -> i64 {
        7 * 24 * 3600
    }
    pub fn stale_upload() -> i64 {
        3600
    }
    pub fn max_attachment_bytes() -> usize {
        50 * 1024 * 1024
    }
    pub fn supplier_attachment_bytes() -> i64 {
        25 * 1024 * 1024
    }
    pub fn max_response_bytes() -> usize {
        16 * 1024 * 1024
    }
    pub fn subscriptions_per_key() -> usize {
        10
    }
    pub fn pending_deliveries() -> i64 {
        1000
    }
    pub fn retry_budget() -> u64 {
        600
    }
    pub fn delivery_timeout() -> u64 {
        5
    }
    pub fn default_queue() -> String {
        "integrator".into()
    }
    pub fn remedy_service_type() -> String {
        "User Service Restoration".into()
    }
    pub fn remedy_reported_source() -> String {
        "External Escalation".into()
    }
    pub fn remedy_vendor_name() -> String {
        "SIAM Hub".into()
    }
}

/// The built-in integrator queue every deployment has, even with no suppliers configured.
pub const QUEUE_SYSTEM: &str = "queue";

impl Settings {
    /// Loads the file (if any) and the `SIAM_*` overrides.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!("file {} does not exist", path.display())));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        for (var, key) in [("SIAM_DATABASE_URL", "database_url"), ("SIAM_AMQP_URL", "amqp_url"), ("SIAM_LISTEN", "listen"), ("SIAM_PUBLIC_URL", "public_url")] {
            if let Ok(v) = std::env::var(var) {
                builder = builder.set_override(key, v)?;
            }
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parses settings from TOML text (used by the demo and tests), with the same checks.
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let settings: Settings = config::Config::builder().add_source(config::File::from_str(text, config::FileFormat::Toml)).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn check_changes(&self) -> Result<(), String> {
        let c = &self.changes;
        for f in &c.freezes {
            if f.end <= f.start {
                return Err(format!("changes.freezes `{}` ends before it starts", f.name));
            }
        }
        for m in &c.maintenance {
            if let Some(tz) = &m.time_zone {
                tz.parse::<chrono_tz::Tz>().map_err(|_| format!("changes.maintenance of `{}`: `{tz}` is not an IANA time zone such as Europe/London", m.service))?;
            }
            if m.hours == 0 || m.hours > 24 * 7 {
                return Err(format!("changes.maintenance of `{}`: hours must be 1..168", m.service));
            }
        }
        for t in &c.templates {
            if t.risk.is_some_and(|r| !(1..=5).contains(&r)) {
                return Err(format!("changes.templates `{}`: risk is 1 (very high) .. 5 (very low)", t.name));
            }
            if c.templates.iter().filter(|o| o.name == t.name).count() > 1 {
                return Err(format!("changes.templates: `{}` is named twice", t.name));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let known = |id: &str| id == self.routing.default_queue || self.suppliers.iter().any(|s| s.id == id);
        for s in &self.suppliers {
            if s.system != QUEUE_SYSTEM && !crate::adapters::SYSTEMS.contains(&s.system.as_str()) {
                return Err(ConfigError::Invalid(format!("supplier `{}` has system `{}`; supported: {}, queue", s.id, s.system, crate::adapters::SYSTEMS.join(", "))));
            }
            if s.system != QUEUE_SYSTEM && url::Url::parse(&s.base_url).is_err() {
                return Err(ConfigError::Invalid(format!("supplier `{}` needs a base_url such as https://example.service-now.com", s.id)));
            }
            let o = &s.overrides;
            let overridden = !(o.states.is_empty() && o.hold_reasons.is_empty() && o.resolutions.is_empty() && o.priority_matrix.is_none());
            if overridden && s.system != "servicenow" {
                return Err(ConfigError::Invalid(format!(
                    "supplier `{}` ({}): [suppliers.overrides] is for ServiceNow instances; Jira, Remedy and TMF621 instances declare their own values in [suppliers.jira], [suppliers.remedy] or [suppliers.tmf621]",
                    s.id, s.system
                )));
            }
            if s.is_external() {
                let token_url = if s.system == "tmf621" { s.tmf621.token_url.as_deref() } else { None };
                crate::adapters::egress::SupplierOrigins::new(&s.base_url, token_url, &s.attachment_origins)
                    .map_err(|e| ConfigError::Invalid(format!("supplier `{}`: {e}", s.id)))?;
            }
            if s.system == "tmf621" {
                s.tmf621.check().map_err(|e| ConfigError::Invalid(format!("supplier `{}`: {e}", s.id)))?;
            }
            if s.system == "jira" {
                s.jira.validate().map_err(|e| ConfigError::Invalid(format!("supplier `{}`: {e}", s.id)))?;
            }
            if !s.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(ConfigError::Invalid(format!("supplier id `{}` may only use letters, digits, - and _", s.id)));
            }
        }
        for f in self.sync.conflicts.fields.keys() {
            if !SYNCED_FIELDS.contains(&f.as_str()) {
                return Err(ConfigError::Invalid(format!("sync.conflicts names `{f}`; fields are {}", SYNCED_FIELDS.join(", "))));
            }
        }
        if self.reporting.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConfigError::Invalid(format!("reporting.time_zone `{}` is not an IANA time zone such as Europe/London", self.reporting.time_zone)));
        }
        let percent = |v: f64| (0.0..=100.0).contains(&v);
        if !percent(self.reporting.compliance_target) || !percent(self.reporting.at_risk_percent) || !self.reporting.compliance_targets.values().all(|v| percent(*v)) {
            return Err(ConfigError::Invalid("reporting: compliance targets and at_risk_percent are percentages (0 to 100)".into()));
        }
        crate::adapters::egress::AddressPolicy::new(&self.egress).map_err(ConfigError::Invalid)?;
        self.check_changes().map_err(ConfigError::Invalid)?;
        let hub = &self.tmf621_hub;
        if hub.max_pending_deliveries < 1 || hub.delivery_timeout_secs == 0 {
            return Err(ConfigError::Invalid("tmf621_hub: max_pending_deliveries and delivery_timeout_secs must be at least 1".into()));
        }
        let h = &self.housekeeping;
        if h.interval_secs == 0 || h.outbox_retention_secs < 0 || h.stale_upload_secs < 0 || self.max_attachments_per_incident < 1 {
            return Err(ConfigError::Invalid("housekeeping: interval_secs must be at least 1 and retentions not negative; max_attachments_per_incident must be at least 1".into()));
        }
        if h.inbox_retention_secs < MIN_INBOX_RETENTION_SECS {
            return Err(ConfigError::Invalid(format!(
                "housekeeping.inbox_retention_secs must be at least {MIN_INBOX_RETENTION_SECS}: a message that waited in its queue longer would be handled twice"
            )));
        }
        if self.sla_monitor.interval_secs == 0 || self.sla_monitor.batch < 1 {
            return Err(ConfigError::Invalid("sla_monitor: interval_secs and batch must be at least 1".into()));
        }
        for r in &self.routing.rules {
            if !known(&r.supplier) {
                return Err(ConfigError::Invalid(format!("routing rule names unknown supplier `{}`", r.supplier)));
            }
            if r.service.is_none() && r.ci.is_none() && r.category.is_none() {
                return Err(ConfigError::Invalid(format!("a routing rule for `{}` needs at least one of service, ci, category", r.supplier)));
            }
        }
        Ok(())
    }

    pub fn supplier(&self, id: &str) -> Option<&SupplierSettings> {
        self.suppliers.iter().find(|s| s.id == id)
    }
}

impl JiraSettings {
    /// Checks what can be checked without the site: a create route, a time zone, canonical
    /// values in the status rules and targets.
    pub fn validate(&self) -> Result<(), String> {
        match self.create_via {
            JiraCreate::Issue if self.project_key.trim().is_empty() => return Err("[suppliers.jira] needs project_key (the project the hub raises issues in)".into()),
            JiraCreate::Request if self.service_desk_id.is_none() || self.request_type_id.is_none() => {
                return Err("[suppliers.jira] create_via = \"request\" needs service_desk_id and request_type_id".into())
            }
            _ => {}
        }
        self.time_zone.parse::<chrono_tz::Tz>().map_err(|_| format!("[suppliers.jira] time_zone `{}` is not an IANA time zone such as Europe/London", self.time_zone))?;
        if let Some(missing) = (1..=5u8).find(|l| !self.priorities.is_empty() && !self.priorities.iter().any(|p| p.priority == *l)) {
            return Err(format!("[suppliers.jira] priorities: no priority stands for hub priority {missing} (one is needed for each of 1..5)"));
        }
        for (id, rule) in &self.statuses {
            if !matches!(rule.category.as_str(), "new" | "indeterminate" | "done" | "undefined") {
                return Err(format!("status {id}: category `{}` is not new, indeterminate, done or undefined", rule.category));
            }
            if let Some(c) = &rule.canonical {
                c.parse::<crate::domain::Status>().map_err(|e| format!("status {id}: {e}"))?;
            }
            if let Some(h) = &rule.hold_reason {
                h.parse::<crate::domain::HoldReason>().map_err(|e| format!("status {id}: {e}"))?;
            }
        }
        for key in self.status_targets.keys() {
            let ok = match key.split_once(':') {
                Some(("on_hold", reason)) => reason.parse::<crate::domain::HoldReason>().is_ok(),
                Some(_) => false,
                None => key.parse::<crate::domain::Status>().is_ok(),
            };
            if !ok {
                return Err(format!("status_targets key `{key}` is not a canonical status or on_hold:<hold reason>"));
            }
        }
        for code in self.resolutions.values() {
            if !crate::domain::ResolutionCode::is_canonical(code) {
                return Err(format!("resolution code `{code}` is not a canonical resolution code"));
            }
        }
        Ok(())
    }
}

impl SupplierSettings {
    /// Resolves a secret reference now, so a missing variable fails at start, not mid-delivery.
    pub fn resolve(&self, secret: &Option<SecretRef>) -> Result<Option<SecretString>, ConfigError> {
        match secret {
            None => Ok(None),
            Some(SecretRef::Value(v)) => Ok(Some(v.clone())),
            Some(SecretRef::Env { env }) => {
                std::env::var(env).map(|v| Some(SecretString::from(v))).map_err(|_| ConfigError::MissingSecret { supplier: self.id.clone(), var: env.clone() })
            }
        }
    }

    /// The password (or token, or client secret) the hub calls the supplier with, resolved as
    /// the hub does at start: none configured is an empty one.
    pub fn password_secret(&self) -> Result<SecretString, ConfigError> {
        Ok(self.resolve(&self.password)?.unwrap_or_else(|| SecretString::from(String::new())))
    }

    /// The webhook secret, resolved and checked: an empty or short one would let anyone sign
    /// deliveries (or guess the basic-auth password), so the hub refuses to start with it.
    pub fn webhook_secret(&self) -> Result<Option<SecretString>, ConfigError> {
        let secret = self.resolve(&self.webhook_secret)?;
        if let Some(s) = &secret {
            let len = secrecy::ExposeSecret::expose_secret(s).trim().len();
            if len < MIN_WEBHOOK_SECRET {
                return Err(ConfigError::Invalid(format!(
                    "supplier `{}`: the webhook secret is {len} characters long; it needs at least {MIN_WEBHOOK_SECRET} (for instance `openssl rand -hex 32`)",
                    self.id
                )));
            }
        }
        Ok(secret)
    }

    pub fn is_external(&self) -> bool {
        self.system != QUEUE_SYSTEM
    }
}

/// The shortest webhook secret the hub accepts.
pub const MIN_WEBHOOK_SECRET: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's `[changes]` example reads as written: a maintenance window opening at
    /// 01:00 London time on Sundays admits a change inside it and not one past it.
    #[test]
    fn the_readme_change_settings_read_as_written() {
        let readme = include_str!("../README.md");
        let start = readme.find("[changes]\n").expect("the README shows [changes]");
        let toml = &readme[start..start + readme[start..].find("```").expect("the example ends")];
        let s = Settings::from_toml(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let m = &s.changes.maintenance[0];
        assert_eq!(m.start, chrono::NaiveTime::from_hms_opt(1, 0, 0).unwrap());
        // Sunday 2026-12-13, 01:00 London is 01:00 UTC (winter time).
        let at = |h: u32, mi: u32| chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 12, 13, h, mi, 0).unwrap();
        let w = |a, b| crate::domain::change::schedule::Window::new(a, b).unwrap();
        assert!(m.admits(&w(at(1, 0), at(5, 0))));
        assert!(!m.admits(&w(at(4, 30), at(5, 30))));
        assert_eq!(s.changes.templates[0].name, "cert-renewal");
    }

    #[test]
    fn an_empty_or_short_webhook_secret_is_refused_at_start() {
        let supplier = |secret: &str| {
            let mut s = Settings::from_toml("[[suppliers]]\nid = \"sn\"\nname = \"SN\"\nsystem = \"servicenow\"\nbase_url = \"https://sn.example\"\n").unwrap().suppliers.remove(0);
            s.webhook_secret = Some(SecretRef::Value(SecretString::from(secret.to_string())));
            s
        };
        for bad in ["", "   ", "short-secret"] {
            let err = supplier(bad).webhook_secret().unwrap_err().to_string();
            assert!(err.contains("supplier `sn`") && err.contains("at least 16"), "{err}");
        }
        assert!(supplier("a-long-enough-webhook-secret").webhook_secret().unwrap().is_some());
    }

    #[test]
    fn rejects_routing_to_unknown_supplier() {
        let err = Settings::from_toml(
            r#"
            [[routing.rules]]
            service = "email"
            supplier = "nobody"
            "#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown supplier `nobody`"), "{err}");
    }

    #[test]
    fn tmf621_settings_default_and_are_checked() {
        let base = "[[suppliers]]\nid = \"t\"\nname = \"T\"\nsystem = \"tmf621\"\nbase_url = \"http://127.0.0.1:1\"\n";
        let s = Settings::from_toml(base).unwrap();
        let t = &s.suppliers[0].tmf621;
        assert_eq!((t.version, t.flavour, t.auth, t.subscribe), (TmfVersion::V4, TmfFlavour::Standard, TmfAuth::Basic, true));
        let s = Settings::from_toml(&format!(
            "{base}[suppliers.tmf621]\nversion = \"v5\"\nflavour = \"servicenow\"\nauth = \"oauth2\"\nstatus_map = {{ \"Awaiting Info\" = \"on_hold\" }}\n"
        ))
        .unwrap();
        let t = &s.suppliers[0].tmf621;
        assert_eq!((t.version, t.flavour, t.auth), (TmfVersion::V5, TmfFlavour::Servicenow, TmfAuth::Oauth2));
        assert_eq!(t.status_map.get("Awaiting Info").map(String::as_str), Some("on_hold"), "keys keep their case");
        let err = Settings::from_toml(&format!("{base}[suppliers.tmf621]\nseverity = [\"Bad\", \"Worse\"]\n")).unwrap_err();
        assert!(err.to_string().contains("needs 3 labels"), "{err}");
        let err = Settings::from_toml(&format!("{base}[suppliers.tmf621]\nstatus_map = {{ Open = \"busy\" }}\n")).unwrap_err();
        assert!(err.to_string().contains("neither a canonical status"), "{err}");
    }

    #[test]
    fn egress_settings_default_to_deny_and_are_checked() {
        let base = "[[suppliers]]\nid = \"t\"\nname = \"T\"\nsystem = \"tmf621\"\nbase_url = \"https://tt.example\"\n";
        let s = Settings::from_toml(base).unwrap();
        assert!(s.egress.allow_networks.is_empty() && s.suppliers[0].attachment_origins.is_empty());
        assert_eq!((s.suppliers[0].max_response_bytes, s.tmf621_hub.max_subscriptions_per_key, s.tmf621_hub.max_pending_deliveries), (16 * 1024 * 1024, 10, 1000));
        let s = Settings::from_toml(&format!("[egress]\nallow_networks = [\"10.20.0.0/16\", \"fd00::/8\"]\n{base}attachment_origins = [\"https://files.example\"]\n")).unwrap();
        assert_eq!(s.suppliers[0].attachment_origins, ["https://files.example"]);
        let err = Settings::from_toml(&format!("[egress]\nallow_networks = [\"intranet\"]\n{base}")).unwrap_err();
        assert!(err.to_string().contains("`intranet` is not a network"), "{err}");
        let err = Settings::from_toml(&format!("{base}attachment_origins = [\"files.example\"]\n")).unwrap_err();
        assert!(err.to_string().contains("supplier `t`: attachment_origins"), "{err}");
        let err = Settings::from_toml(&format!("[tmf621_hub]\ndelivery_timeout_secs = 0\n{base}")).unwrap_err();
        assert!(err.to_string().contains("tmf621_hub"), "{err}");
    }

    #[test]
    fn instance_priority_matrices_are_read_and_overrides_belong_to_servicenow() {
        let base = "[[suppliers]]\nid = \"s1\"\nname = \"S\"\nbase_url = \"https://x.example\"\n";
        let s = Settings::from_toml(&format!("{base}system = \"servicenow\"\n[suppliers.overrides]\npriority_matrix = [[1, 1, 2], [1, 2, 3], [2, 3, 4]]\n")).unwrap();
        let m = s.suppliers[0].overrides.priority_matrix.clone().expect("read");
        assert_eq!(Vec::<Vec<u8>>::from(m), vec![vec![1, 1, 2], vec![1, 2, 3], vec![2, 3, 4]]);
        let bad = Settings::from_toml(&format!("{base}system = \"servicenow\"\n[suppliers.overrides]\npriority_matrix = [[1, 2]]\n"));
        assert!(bad.is_err());
        let misplaced = Settings::from_toml(&format!("{base}system = \"jira\"\n[suppliers.jira]\nproject_key = \"OPS\"\n[suppliers.overrides]\nstates = {{ \"x\" = \"new\" }}\n"));
        assert!(misplaced.unwrap_err().to_string().contains("[suppliers.overrides] is for ServiceNow"));
    }

    #[test]
    fn remedy_settings_default_and_read_overrides_with_their_case() {
        let s = Settings::from_toml(
            r#"
            [[suppliers]]
            id = "plain"
            name = "Plain"
            system = "remedy"
            base_url = "https://calbro-restapi.onbmc.com"

            [[suppliers]]
            id = "custom"
            name = "Custom"
            system = "remedy"
            base_url = "https://calbro-restapi.onbmc.com"

            [suppliers.remedy]
            support_group = "Application Support"
            service_type = "Infrastructure Restoration"

            [suppliers.remedy.profile.status.to_canonical]
            "Waiting Approval" = "on_hold"
            "#,
        )
        .unwrap();
        let plain = &s.suppliers[0].remedy;
        assert_eq!((plain.service_type.as_str(), plain.reported_source.as_str(), plain.vendor_name.as_str()), ("User Service Restoration", "External Escalation", "SIAM Hub"));
        assert!(plain.support_group.is_none() && plain.profile.is_none());
        let custom = &s.suppliers[1].remedy;
        assert_eq!(custom.support_group.as_deref(), Some("Application Support"));
        assert_eq!(custom.service_type, "Infrastructure Restoration");
        let over = custom.profile.as_ref().unwrap();
        assert_eq!(over["status"]["to_canonical"]["Waiting Approval"], "on_hold", "{over}");
        let mapping = crate::adapters::remedy::Remedy::for_instance(custom).unwrap();
        assert_eq!(mapping.profile.status.to_canonical["Waiting Approval"], "on_hold");
    }

    #[test]
    fn secrets_resolve_from_environment_and_name_the_missing_variable() {
        let s = Settings::from_toml(
            r#"
            [[suppliers]]
            id = "sn"
            name = "SN"
            system = "servicenow"
            base_url = "http://127.0.0.1:1"
            password = { env = "SIAM_TEST_SURELY_UNSET_VAR" }
            "#,
        )
        .unwrap();
        let err = s.suppliers[0].resolve(&s.suppliers[0].password).unwrap_err();
        assert!(err.to_string().contains("SIAM_TEST_SURELY_UNSET_VAR"));
    }

    #[test]
    fn jira_suppliers_take_a_jira_sub_table_checked_at_load() {
        let base = "[[suppliers]]\nid = \"j\"\nname = \"J\"\nsystem = \"jira\"\nbase_url = \"https://acme.atlassian.net\"\n";
        let s = Settings::from_toml(&format!(
            "{base}[suppliers.jira]\nproject_key = \"APPS\"\ntime_zone = \"Europe/London\"\nurgency_field = \"\"\n[suppliers.jira.statuses]\n\"10402\" = {{ category = \"indeterminate\", canonical = \"on_hold\", hold_reason = \"awaiting_supplier\" }}\n\"10403\" = {{ category = \"indeterminate\" }}\n[suppliers.jira.status_targets]\n\"on_hold:awaiting_supplier\" = \"10402\"\n"
        ))
        .unwrap();
        let j = &s.suppliers[0].jira;
        assert_eq!(j.project_key, "APPS");
        assert_eq!(j.issue_type, "Incident");
        assert_eq!(j.urgency_field.as_deref(), Some(""));
        assert_eq!(j.statuses["10403"].canonical, None);
        for (extra, wanted) in [
            ("", "project_key"),
            ("[suppliers.jira]\nproject_key = \"A\"\ntime_zone = \"Mars/Olympus\"\n", "time_zone"),
            ("[suppliers.jira]\nproject_key = \"A\"\ncreate_via = \"request\"\n", "request_type_id"),
            ("[suppliers.jira]\nproject_key = \"A\"\n[suppliers.jira.statuses]\n\"1\" = { category = \"done\", canonical = \"finished\" }\n", "finished"),
            ("[suppliers.jira]\nproject_key = \"A\"\n[suppliers.jira.status_targets]\n\"on_hold:napping\" = \"1\"\n", "on_hold:napping"),
        ] {
            let err = Settings::from_toml(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(err.contains(wanted), "{wanted}: {err}");
        }
    }
}
