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
    /// The SLA monitor: keeps the stored clocks current and announces warnings and breaches.
    #[serde(default)]
    pub sla_monitor: SlaMonitorSettings,
    /// How SLA reports and the dashboard present the figures.
    #[serde(default)]
    pub reporting: ReportingSettings,
}

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
        SlaMonitorSettings {
            interval_secs: defaults::monitor_interval(),
            batch: defaults::monitor_batch(),
            announce_within_secs: defaults::announce_within(),
        }
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
        BrokerSettings {
            prefix: defaults::prefix(),
            delivery_limit: defaults::delivery_limit(),
            confirm_window: defaults::confirm_window(),
            queue_expires_ms: None,
        }
    }
}

/// Where a secret comes from: `{ env = "VAR" }` in the file, or a value set in code (the demo).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SecretRef {
    Env { env: String },
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
}

#[derive(Debug, Clone, Deserialize)]
pub struct SupplierSettings {
    pub id: String,
    pub name: String,
    /// `servicenow`, or `queue` for a hub-internal queue (the integrator's) with no external system.
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
    pub fn default_queue() -> String {
        "integrator".into()
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
        for (var, key) in [
            ("SIAM_DATABASE_URL", "database_url"),
            ("SIAM_AMQP_URL", "amqp_url"),
            ("SIAM_LISTEN", "listen"),
            ("SIAM_PUBLIC_URL", "public_url"),
        ] {
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
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let known = |id: &str| id == self.routing.default_queue || self.suppliers.iter().any(|s| s.id == id);
        for s in &self.suppliers {
            if !matches!(s.system.as_str(), "servicenow" | QUEUE_SYSTEM) {
                return Err(ConfigError::Invalid(format!(
                    "supplier `{}` has system `{}`; supported: servicenow, queue",
                    s.id, s.system
                )));
            }
            if s.system != QUEUE_SYSTEM && url::Url::parse(&s.base_url).is_err() {
                return Err(ConfigError::Invalid(format!("supplier `{}` needs a base_url such as https://example.service-now.com", s.id)));
            }
            if !s.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(ConfigError::Invalid(format!("supplier id `{}` may only use letters, digits, - and _", s.id)));
            }
        }
        if self.reporting.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConfigError::Invalid(format!("reporting.time_zone `{}` is not an IANA time zone such as Europe/London", self.reporting.time_zone)));
        }
        let percent = |v: f64| (0.0..=100.0).contains(&v);
        if !percent(self.reporting.compliance_target) || !percent(self.reporting.at_risk_percent) || !self.reporting.compliance_targets.values().all(|v| percent(*v)) {
            return Err(ConfigError::Invalid("reporting: compliance targets and at_risk_percent are percentages (0 to 100)".into()));
        }
        if self.sla_monitor.interval_secs == 0 || self.sla_monitor.batch < 1 {
            return Err(ConfigError::Invalid("sla_monitor: interval_secs and batch must be at least 1".into()));
        }
        for r in &self.routing.rules {
            if !known(&r.supplier) {
                return Err(ConfigError::Invalid(format!("routing rule names unknown supplier `{}`", r.supplier)));
            }
            if r.service.is_none() && r.ci.is_none() && r.category.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "a routing rule for `{}` needs at least one of service, ci, category",
                    r.supplier
                )));
            }
        }
        Ok(())
    }

    pub fn supplier(&self, id: &str) -> Option<&SupplierSettings> {
        self.suppliers.iter().find(|s| s.id == id)
    }
}

impl SupplierSettings {
    /// Resolves a secret reference now, so a missing variable fails at start, not mid-delivery.
    pub fn resolve(&self, secret: &Option<SecretRef>) -> Result<Option<SecretString>, ConfigError> {
        match secret {
            None => Ok(None),
            Some(SecretRef::Value(v)) => Ok(Some(v.clone())),
            Some(SecretRef::Env { env }) => std::env::var(env)
                .map(|v| Some(SecretString::from(v)))
                .map_err(|_| ConfigError::MissingSecret { supplier: self.id.clone(), var: env.clone() }),
        }
    }

    pub fn is_external(&self) -> bool {
        self.system != QUEUE_SYSTEM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
