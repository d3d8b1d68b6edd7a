//! Jira issues <-> canonical model.
//!
//! An issue arrives as REST v3 (ADF rich text), REST v2 or inside a webhook (wiki-markup
//! strings, an epoch-ms `timestamp`), or as a JSM `CustomerRequest` (the answer to a request
//! create: labelled field values, dates as `{iso8601, jira, friendly, epochMillis}`, an
//! UPPERCASE status category and no status id). Parsing reduces them all to one set of synced
//! values (see [`SYNCED`]).
//!
//! Mapping decisions (the reference leaves these to the adapter):
//! - **Lifecycle**: read from `status.id`, checked against `statusCategory.key` (ids are per
//!   site, so a rule whose category disagrees with the record's is not this site's status and
//!   the value stays unmapped). An id with no rule falls back to the category only where the
//!   profile says the category is unambiguous (`new` -> new). Any other status the
//!   configuration does not know is read through its category (indeterminate -> in progress,
//!   done -> resolved, or cancelled with a cancelling resolution) and kept on the leg as
//!   inferred (see [`JiraConfig::infer_status`]), so the record keeps following the supplier
//!   until an administrator adds a rule; a status declared unmapped stays unmapped. A `done` status whose resolution
//!   is a cancelling one (`Won't Do`, `Declined`...) is `cancelled`. Hold reasons live in the
//!   status (`Waiting for customer` = awaiting the caller, `Pending` = other). Names are never
//!   read.
//! - **Representative values**: a synced value is stored as the value the hub would write for
//!   its canonical meaning (`High` urgency is stored as `Critical` when both mean urgency 1; a
//!   second in-progress status as the target in-progress status). So the baseline and the hub's
//!   wanted values compare equal whenever they mean the same thing, and the hub never
//!   "corrects" a supplier value that already says what the hub says. The raw status id stays
//!   on the leg (`native_status`), and an unmapped value is kept raw.
//! - **Impact, urgency, priority**: with JSM Impact / Urgency select fields configured they
//!   carry impact and urgency both ways. Without an urgency field, a Jira priority is read as
//!   urgency (Highest/High = 1, Medium = 2, Low/Lowest = 3). The hub always writes the Jira
//!   priority as the label of its own priority (1 Highest .. 5 Lowest): the hub's priority
//!   derives from impact x urgency, so a priority edit at the supplier moves urgency (or
//!   nothing, with an urgency field) and the label follows the hub.
//! - **Resolution**: names map to codes; Jira has no resolution notes, so notes read as empty
//!   and a hub's notes stay at the hub. Codes Jira cannot hold (`workaround`,
//!   `resolved_by_caller`) are written as `Done`.
//! - **Comments**: `jsdPublic: false` (or JSM `public: false`, or a `visibility` restriction)
//!   is internal; a comment with no JSM flag at all (a project outside JSM) is read as internal
//!   too, so it can never reach a caller by default.
//! - **Revision**: `fields.updated` in epoch ms (Jira has no modification counter). A comment
//!   webhook carries only a summary of the issue (no `updated`, no description): it cannot be
//!   ordered against what the hub holds, so its record part is given the lowest revision (it
//!   changes no field) and only its comment is read.

use super::text::{adf_to_text, text_to_adf, wiki_to_text};
use crate::adapters::{Canonical, MapError, NativeNote};
use crate::config::{JiraSettings, JiraStatusRule};
use crate::domain::*;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// Synced values, by the names the hub gives them (the client turns them into Jira fields).
pub mod field {
    pub const STATUS: &str = "status";
    /// Not written: read with `status` so the id is checked against its category.
    pub const STATUS_CATEGORY: &str = "status_category";
    pub const RESOLUTION: &str = "resolution";
    pub const PRIORITY: &str = "priority";
    pub const IMPACT: &str = "impact";
    pub const URGENCY: &str = "urgency";
    pub const SUMMARY: &str = "summary";
    pub const DESCRIPTION: &str = "description";
}

pub const SYNCED: &[&str] = &[field::STATUS, field::STATUS_CATEGORY, field::RESOLUTION, field::PRIORITY, field::IMPACT, field::URGENCY, field::SUMMARY, field::DESCRIPTION];

// ---- The profile -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct ProfileFields {
    pub reference: String,
    pub impact: String,
    pub urgency: String,
}

#[derive(Debug, Deserialize)]
pub struct ProfileStatus {
    pub by_id: BTreeMap<String, JiraStatusRule>,
    pub by_category: BTreeMap<String, String>,
    pub targets: BTreeMap<String, String>,
    pub cancel_resolutions: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct ProfileResolution {
    pub to_canonical: BTreeMap<String, String>,
    pub from_canonical: BTreeMap<String, String>,
    pub cancelled: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityLevel {
    pub id: String,
    pub name: String,
    pub priority: u8,
    pub urgency: u8,
}

#[derive(Debug, Deserialize)]
pub struct ScaleMap {
    pub to_canonical: BTreeMap<String, u8>,
    pub from_canonical: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct ProfileLabels {
    pub marker: String,
    pub reference_prefix: String,
}

/// `adapters/jira/profile.json`.
#[derive(Debug, Deserialize)]
pub struct Profile {
    pub fields: ProfileFields,
    pub status: ProfileStatus,
    pub resolution: ProfileResolution,
    pub priority: Vec<PriorityLevel>,
    pub impact: ScaleMap,
    pub urgency: ScaleMap,
    pub labels: ProfileLabels,
}

pub fn profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| serde_json::from_str(include_str!("../../../adapters/jira/profile.json")).expect("adapters/jira/profile.json is valid (checked by tests)"))
}

/// What one status id means on this site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRule {
    pub category: String,
    pub canonical: Option<Status>,
    pub hold_reason: Option<HoldReason>,
}

/// The profile merged with one supplier instance's overrides: everything the mapping and the
/// client need to know about the site.
#[derive(Debug, Clone)]
pub struct JiraConfig {
    pub statuses: BTreeMap<String, StatusRule>,
    pub by_category: BTreeMap<String, Status>,
    /// `new`, `in_progress`, `on_hold:<reason>`... -> status id.
    pub targets: BTreeMap<String, String>,
    pub cancel_resolutions: Vec<String>,
    pub resolution_to: BTreeMap<String, String>,
    pub resolution_from: BTreeMap<String, String>,
    pub resolution_cancelled: String,
    pub priorities: Vec<PriorityLevel>,
    pub impact_to: BTreeMap<String, u8>,
    pub impact_from: BTreeMap<String, String>,
    pub urgency_to: BTreeMap<String, u8>,
    pub urgency_from: BTreeMap<String, String>,
    pub reference_field: Option<String>,
    pub impact_field: Option<String>,
    pub urgency_field: Option<String>,
    pub marker_label: String,
    pub reference_prefix: String,
    /// Project key of created issues (empty for the stand-alone mapping of `siam-hub map`).
    pub project_key: String,
}

fn rule(r: &JiraStatusRule) -> Result<StatusRule, String> {
    Ok(StatusRule {
        category: r.category.clone(),
        canonical: r.canonical.as_deref().map(str::parse::<Status>).transpose().map_err(|e| e.to_string())?,
        hold_reason: r.hold_reason.as_deref().map(str::parse::<HoldReason>).transpose().map_err(|e| e.to_string())?,
    })
}

fn field_id(profile_default: &str, setting: &Option<String>) -> Option<String> {
    let id = setting.as_deref().unwrap_or(profile_default).trim();
    (!id.is_empty()).then(|| id.to_string())
}

impl Default for JiraConfig {
    fn default() -> Self {
        JiraConfig::from_settings(&JiraSettings::default()).expect("the built-in profile is consistent (checked by tests)")
    }
}

impl JiraConfig {
    /// Merges the profile with an instance's `[suppliers.jira]` settings and checks that every
    /// target status has a rule that reads back as the status it targets.
    pub fn from_settings(s: &JiraSettings) -> Result<JiraConfig, String> {
        let p = profile();
        let mut statuses = BTreeMap::new();
        for (id, r) in p.status.by_id.iter().chain(s.statuses.iter()) {
            statuses.insert(id.clone(), rule(r).map_err(|e| format!("status {id}: {e}"))?);
        }
        let mut by_category = BTreeMap::new();
        for (cat, c) in &p.status.by_category {
            by_category.insert(cat.clone(), c.parse::<Status>().map_err(|e| e.to_string())?);
        }
        let mut targets = p.status.targets.clone();
        targets.extend(s.status_targets.clone());
        let mut resolution_to = p.resolution.to_canonical.clone();
        resolution_to.extend(s.resolutions.clone());
        let cfg = JiraConfig {
            statuses,
            by_category,
            targets,
            cancel_resolutions: p.status.cancel_resolutions.clone(),
            resolution_to,
            resolution_from: p.resolution.from_canonical.clone(),
            resolution_cancelled: p.resolution.cancelled.clone(),
            priorities: if s.priorities.is_empty() { p.priority.clone() } else { s.priorities.clone() },
            impact_to: p.impact.to_canonical.clone(),
            impact_from: p.impact.from_canonical.clone(),
            urgency_to: p.urgency.to_canonical.clone(),
            urgency_from: p.urgency.from_canonical.clone(),
            reference_field: field_id(&p.fields.reference, &s.reference_field),
            impact_field: field_id(&p.fields.impact, &s.impact_field),
            urgency_field: field_id(&p.fields.urgency, &s.urgency_field),
            marker_label: p.labels.marker.clone(),
            reference_prefix: p.labels.reference_prefix.clone(),
            project_key: s.project_key.clone(),
        };
        for level in 1..=5u8 {
            if cfg.priority_for(level).is_none() {
                return Err(format!("no priority stands for hub priority {level} (priorities need one for each of 1..5)"));
            }
        }
        if let Some(p) = cfg.priorities.iter().find(|p| !(1..=5).contains(&p.priority) || !(1..=3).contains(&p.urgency)) {
            return Err(format!("priority `{}`: priority must be 1..5 and urgency 1..3", p.name));
        }
        for status in Status::ALL {
            let keys: Vec<String> = if *status == Status::OnHold { HoldReason::ALL.iter().map(|h| format!("on_hold:{h}")).collect() } else { vec![status.to_string()] };
            for key in keys {
                let id = cfg.targets.get(&key).ok_or_else(|| format!("no target status for `{key}`"))?;
                let r = cfg.statuses.get(id).ok_or_else(|| format!("target status {id} of `{key}` has no status rule"))?;
                let resolution = if *status == Status::Cancelled { cfg.resolution_cancelled.clone() } else { String::new() };
                // A hold reason may collapse (several reasons, one Jira status); the status may not.
                let reads = cfg.read_status(id, &r.category, &resolution).map(|(s, _)| s);
                let expected = if *status == Status::Assigned { Status::New } else { *status };
                if reads != Some(expected) {
                    return Err(format!("target status {id} of `{key}` reads back as {reads:?}"));
                }
            }
        }
        Ok(cfg)
    }

    /// The key of `targets` for a canonical status (and hold reason).
    pub fn target_key(status: Status, hold: Option<HoldReason>) -> String {
        match status {
            Status::OnHold => format!("on_hold:{}", hold.unwrap_or(HoldReason::Other)),
            s => s.to_string(),
        }
    }

    /// What a status (id and category, with the resolution it carries) means, or `None` when
    /// this site's profile does not say. `id` may be a status name when the payload gives no id
    /// (a JSM request): names are never in the rules, so only the category can map it.
    pub fn read_status(&self, id: &str, category: &str, resolution: &str) -> Option<(Status, Option<HoldReason>)> {
        let category = category.to_ascii_lowercase();
        let mapped = match self.statuses.get(id) {
            Some(r) if category.is_empty() || r.category == category => r.canonical.map(|c| (c, r.hold_reason)),
            Some(_) => None,
            None => self.by_category.get(&category).map(|c| (*c, None)),
        }?;
        let category = if category.is_empty() { self.statuses.get(id).map(|r| r.category.clone()).unwrap_or_default() } else { category };
        if category == "done" && self.cancel_resolutions.iter().any(|r| r == resolution) {
            return Some((Status::Cancelled, None));
        }
        Some(match mapped {
            (Status::OnHold, hold) => (Status::OnHold, Some(hold.unwrap_or(HoldReason::Other))),
            (s, _) => (s, None),
        })
    }

    /// What a status this site's configuration does not know means by its category alone: `new`
    /// is new, `indeterminate` in progress, `done` resolved (cancelled with a cancelling
    /// resolution). Used only where [`JiraConfig::read_status`] says nothing, so the record keeps
    /// following the supplier while an administrator confirms the status (the leg shows it as
    /// inferred). A status the configuration declares unmapped (a rule without a canonical
    /// status, in the record's category) is not inferred.
    pub fn infer_status(&self, id: &str, category: &str, resolution: &str) -> Option<Status> {
        let category = category.to_ascii_lowercase();
        if self.statuses.get(id).is_some_and(|r| r.category == category && r.canonical.is_none()) {
            return None;
        }
        match category.as_str() {
            "new" => Some(Status::New),
            "indeterminate" => Some(Status::InProgress),
            "done" if self.cancel_resolutions.iter().any(|r| r == resolution) => Some(Status::Cancelled),
            "done" => Some(Status::Resolved),
            _ => None,
        }
    }

    /// The status id the hub moves a ticket to for a canonical status.
    pub fn target(&self, status: Status, hold: Option<HoldReason>) -> Option<&String> {
        self.targets.get(&Self::target_key(status, hold))
    }

    pub fn priority_by_id(&self, id: &str) -> Option<&PriorityLevel> {
        self.priorities.iter().find(|p| p.id == id)
    }

    fn priority_by_name(&self, name: &str) -> Option<&PriorityLevel> {
        self.priorities.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    pub fn priority_for(&self, level: u8) -> Option<&PriorityLevel> {
        self.priorities.iter().find(|p| p.priority == level)
    }

    /// The resolution name the hub stores for a Jira resolution name: the representative of its
    /// canonical code (a cancelling name stays a cancelling name); unknown names stay raw.
    fn representative_resolution(&self, name: &str) -> String {
        if name.is_empty() {
            return String::new();
        }
        if self.cancel_resolutions.iter().any(|r| r == name) {
            return self.resolution_cancelled.clone();
        }
        match self.resolution_to.get(name).and_then(|code| self.resolution_from.get(code)) {
            Some(rep) => rep.clone(),
            None => name.to_string(),
        }
    }

    /// The hub reference a label carries (`siam-INC-000042` -> `INC-000042`).
    pub fn reference_label(&self, reference: &str) -> String {
        format!("{}{reference}", self.reference_prefix)
    }
}

// ---- Parsing ---------------------------------------------------------------------------------

/// How the issue was rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// REST v3: ADF rich text.
    V3,
    /// REST v2: wiki-markup strings.
    V2,
    /// A webhook body (its issue in REST v2 representation).
    Webhook,
    /// A JSM `CustomerRequest`.
    Request,
}

/// What a webhook body says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookInfo {
    pub event: String,
    pub issue_event: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
    /// Changelog items as (field, from, to): ids where Jira gives them, labels otherwise.
    pub changelog: Vec<(String, Option<String>, Option<String>)>,
}

/// A Jira issue reduced to what the hub needs, whatever shape it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct JiraRecord {
    pub id: String,
    pub key: Option<String>,
    pub correlation: Option<String>,
    pub shape: Shape,
    /// Synced values (representative native values, `""` when empty). Values the payload does
    /// not carry are absent, not empty.
    pub fields: BTreeMap<String, String>,
    /// The payload carries the issue's state (not a comment webhook's summary of it).
    pub has_state: bool,
    pub assigned: bool,
    /// The raw status id (a JSM request gives no id: its status name stands in).
    pub status_id: Option<String>,
    pub priority_level: Option<u8>,
    pub reporter: Option<String>,
    /// `fields.updated` in epoch ms.
    pub revision: Option<i64>,
    pub updated: Option<DateTime<Utc>>,
    pub created: Option<DateTime<Utc>>,
    pub resolved: Option<DateTime<Utc>>,
    pub webhook: Option<WebhookInfo>,
}

/// Parses a Jira timestamp: `2019-02-15T19:01:52.971-0800` (offset without colon, in the
/// requesting user's zone), RFC 3339, or epoch milliseconds; always to UTC.
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        Value::String(s) => {
            let s = s.trim();
            for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"] {
                if let Ok(t) = DateTime::parse_from_str(s, fmt) {
                    return Some(t.with_timezone(&Utc));
                }
            }
            // A bare date-time has no zone: it cannot be placed in time, so it is not read.
            DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
        }
        // JSM dates: {iso8601, jira, friendly, epochMillis}; the epoch is unambiguous.
        Value::Object(o) => o.get("epochMillis").and_then(parse_time).or_else(|| o.get("iso8601").and_then(parse_time)).or_else(|| o.get("jira").and_then(parse_time)),
        _ => None,
    }
}

/// Renders an instant as Jira does in the given offset: `2024-05-14T06:52:10.123-0800`.
pub fn jira_time<Tz: chrono::TimeZone>(t: &DateTime<Utc>, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.with_timezone(tz).format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Rich text of any shape: ADF object, wiki string (v2, webhooks, JSM), or null.
fn rich_text(v: &Value) -> String {
    match v {
        Value::String(s) => wiki_to_text(s),
        Value::Object(_) => adf_to_text(v),
        _ => String::new(),
    }
}

/// A select option (`{value, id}`), a plain string, or null.
fn option_value(v: &Value) -> String {
    match v {
        Value::Object(o) => o.get("value").or_else(|| o.get("name")).and_then(Value::as_str).unwrap_or("").to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

fn user_name(v: &Value) -> Option<String> {
    let o = v.as_object()?;
    ["emailAddress", "displayName", "accountId"].iter().find_map(|k| o.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string))
}

fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

/// Reads one issue in any shape: the issue itself (v2 or v3), a webhook body, or a JSM
/// `CustomerRequest`.
pub fn parse_record(cfg: &JiraConfig, payload: &Value) -> Result<JiraRecord, MapError> {
    let obj = payload.as_object().ok_or_else(|| MapError("a Jira issue must be a JSON object".into()))?;
    if obj.contains_key("issueId") {
        return parse_request(cfg, obj);
    }
    let (issue, webhook) = match obj.get("webhookEvent").and_then(Value::as_str) {
        Some(event) => {
            if event == "jira:issue_deleted" {
                return Err(MapError("an issue_deleted event carries no issue state to apply".into()));
            }
            let issue = obj.get("issue").ok_or_else(|| MapError(format!("the `{event}` webhook carries no issue")))?;
            let changelog = obj
                .get("changelog")
                .and_then(|c| c.get("items"))
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|i| {
                            let get = |k: &str, label: &str| i.get(k).and_then(string_of).or_else(|| i.get(label).and_then(string_of));
                            (i.get("field").and_then(string_of).unwrap_or_default(), get("from", "fromString"), get("to", "toString"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let info = WebhookInfo {
                event: event.to_string(),
                issue_event: obj.get("issue_event_type_name").and_then(string_of),
                timestamp: obj.get("timestamp").and_then(parse_time),
                changelog,
            };
            (issue, Some(info))
        }
        None => (payload, None),
    };
    let issue = issue.as_object().ok_or_else(|| MapError("the issue must be a JSON object".into()))?;
    let id = issue.get("id").and_then(string_of).and_then(non_empty).ok_or_else(|| MapError("the issue has no id".into()))?;
    let fields =
        issue.get("fields").and_then(Value::as_object).ok_or_else(|| MapError(format!("issue {id} has no fields (a create answer holds only id and key: read the issue)")))?;
    let shape = if webhook.is_some() {
        Shape::Webhook
    } else if matches!(fields.get("description"), Some(Value::String(_))) || issue.get("self").and_then(Value::as_str).is_some_and(|s| s.contains("/rest/api/2/")) {
        Shape::V2
    } else {
        Shape::V3
    };
    let get = |k: &str| fields.get(k);
    let updated = get("updated").and_then(parse_time);
    // A comment webhook's issue is a summary without `updated`: not a state the hub can order.
    let has_state = updated.is_some();
    let mut synced = BTreeMap::new();
    let status = get("status");
    let status_id = status.and_then(|s| s.get("id")).and_then(string_of);
    let category = status.and_then(|s| s.pointer("/statusCategory/key")).and_then(Value::as_str).unwrap_or("").to_string();
    let resolution_name = get("resolution").map(|r| r.get("name").and_then(Value::as_str).unwrap_or("").to_string());
    let priority_level = get("priority").and_then(|p| {
        let by_id = p.get("id").and_then(string_of).and_then(|id| cfg.priority_by_id(&id));
        by_id.or_else(|| p.get("name").and_then(Value::as_str).and_then(|n| cfg.priority_by_name(n))).map(|l| l.priority)
    });
    if has_state {
        if let Some(id) = &status_id {
            let (s, c) = representative_status(cfg, id, &category, resolution_name.as_deref().unwrap_or(""));
            synced.insert(field::STATUS.to_string(), s);
            synced.insert(field::STATUS_CATEGORY.to_string(), c);
        }
        if let Some(r) = &resolution_name {
            synced.insert(field::RESOLUTION.to_string(), cfg.representative_resolution(r));
        }
        if let Some(p) = get("priority") {
            let v = match p {
                Value::Null => String::new(),
                _ => {
                    let by_id = p.get("id").and_then(string_of);
                    match by_id.as_deref().and_then(|id| cfg.priority_by_id(id)).or_else(|| p.get("name").and_then(Value::as_str).and_then(|n| cfg.priority_by_name(n))) {
                        Some(l) => l.id.clone(),
                        None => by_id.or_else(|| p.get("name").and_then(string_of)).unwrap_or_default(),
                    }
                }
            };
            synced.insert(field::PRIORITY.to_string(), v);
        }
        if let Some(f) = &cfg.impact_field {
            if let Some(v) = get(f) {
                synced.insert(field::IMPACT.to_string(), representative_scale(&option_value(v), &cfg.impact_to, &cfg.impact_from));
            }
        }
        if let Some(f) = &cfg.urgency_field {
            if let Some(v) = get(f) {
                synced.insert(field::URGENCY.to_string(), representative_scale(&option_value(v), &cfg.urgency_to, &cfg.urgency_from));
            }
        }
        if let Some(v) = get("summary") {
            synced.insert(field::SUMMARY.to_string(), string_of(v).unwrap_or_default());
        }
        if let Some(v) = get("description") {
            synced.insert(field::DESCRIPTION.to_string(), rich_text(v));
        }
    }
    let labels: Vec<String> = get("labels").and_then(Value::as_array).map(|a| a.iter().filter_map(string_of).collect()).unwrap_or_default();
    let correlation = cfg
        .reference_field
        .as_ref()
        .and_then(|f| get(f))
        .and_then(|v| string_of(v).or_else(|| (v.is_object()).then(|| rich_text(v))))
        .map(|s| s.trim().to_string())
        .filter(|s| s.parse::<TicketRef>().is_ok())
        .or_else(|| labels.iter().find_map(|l| l.strip_prefix(&cfg.reference_prefix).filter(|r| r.parse::<TicketRef>().is_ok()).map(str::to_string)));
    Ok(JiraRecord {
        key: issue.get("key").and_then(string_of),
        correlation,
        shape,
        fields: synced,
        has_state,
        assigned: get("assignee").is_some_and(|a| a.is_object()),
        // A summary's status and priority are not the issue's state: not read.
        status_id: status_id.filter(|_| has_state),
        priority_level: priority_level.filter(|_| has_state),
        reporter: get("reporter").and_then(user_name),
        revision: updated.map(|t| t.timestamp_millis()),
        updated,
        created: get("created").and_then(parse_time),
        resolved: get("resolutiondate").and_then(parse_time),
        webhook,
        id,
    })
}

/// The status stored for a (status id, category, resolution): the target of its canonical
/// meaning when mapped, the raw id and category otherwise.
fn representative_status(cfg: &JiraConfig, id: &str, category: &str, resolution: &str) -> (String, String) {
    let raw = (id.to_string(), category.to_ascii_lowercase());
    let Some((status, hold)) = cfg.read_status(id, category, resolution) else { return raw };
    match cfg.target(status, hold).and_then(|t| cfg.statuses.get(t).map(|r| (t.clone(), r.category.clone()))) {
        Some(rep) => rep,
        None => raw,
    }
}

fn representative_scale(value: &str, to: &BTreeMap<String, u8>, from: &BTreeMap<String, String>) -> String {
    match to.get(value).and_then(|l| from.get(&l.to_string())) {
        Some(rep) => rep.clone(),
        None => value.to_string(),
    }
}

/// A JSM `CustomerRequest` (the answer to `POST /rest/servicedeskapi/request`).
fn parse_request(cfg: &JiraConfig, o: &Map<String, Value>) -> Result<JiraRecord, MapError> {
    let id = o.get("issueId").and_then(string_of).and_then(non_empty).ok_or_else(|| MapError("the request has no issueId".into()))?;
    // requestFieldValues is an array of labelled values here (a map only in the create body).
    let values: HashMap<String, &Value> = o
        .get("requestFieldValues")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| Some((f.get("fieldId")?.as_str()?.to_string(), f.get("value").unwrap_or(&Value::Null)))).collect())
        .unwrap_or_default();
    let created = o.get("createdDate").and_then(parse_time);
    let status = o.get("currentStatus");
    let name = status.and_then(|s| s.get("status")).and_then(Value::as_str).unwrap_or("").to_string();
    let category = status.and_then(|s| s.get("statusCategory")).and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
    let mut synced = BTreeMap::new();
    if status.is_some() {
        // No status id in a request: the name stands in for it and only the category can map.
        let (s, c) = representative_status(cfg, &name, &category, "");

        synced.insert(field::STATUS.to_string(), s);
        synced.insert(field::STATUS_CATEGORY.to_string(), c);
    }
    if let Some(v) = values.get("summary") {
        synced.insert(field::SUMMARY.to_string(), string_of(v).unwrap_or_default());
    }
    if let Some(v) = values.get("description") {
        synced.insert(field::DESCRIPTION.to_string(), rich_text(v));
    }
    let correlation = cfg.reference_field.as_ref().and_then(|f| values.get(f.as_str())).and_then(|v| string_of(v)).filter(|s| s.parse::<TicketRef>().is_ok());
    let revision = status.and_then(|s| s.get("statusDate")).and_then(parse_time).max(created).map(|t| t.timestamp_millis());
    Ok(JiraRecord {
        key: o.get("issueKey").and_then(string_of),
        correlation,
        shape: Shape::Request,
        fields: synced,
        has_state: true,
        assigned: false,
        status_id: non_empty(name),
        priority_level: None,
        reporter: o.get("reporter").and_then(user_name),
        revision,
        updated: revision.and_then(DateTime::from_timestamp_millis),
        created,
        resolved: None,
        webhook: None,
        id,
    })
}

// ---- Comments --------------------------------------------------------------------------------

/// Reads every comment a payload carries: a webhook's `comment` (not on `comment_deleted`), an
/// issue's `fields.comment.comments`, a comment list (`comments`) or a JSM page (`values`).
pub fn parse_comments(payload: &Value) -> Vec<NativeNote> {
    let event = payload.get("webhookEvent").and_then(Value::as_str).unwrap_or("");
    let issue = payload.get("issue").unwrap_or(payload);
    let issue_id = issue.get("id").and_then(string_of).unwrap_or_default();
    let mut found: Vec<&Value> = Vec::new();
    if event != "comment_deleted" {
        found.extend(payload.get("comment"));
    }
    for list in [issue.pointer("/fields/comment/comments"), payload.get("comments"), payload.get("values")] {
        found.extend(list.and_then(Value::as_array).into_iter().flatten());
    }
    let mut seen = std::collections::HashSet::new();
    found.into_iter().filter_map(|c| comment(c, &issue_id)).filter(|n| seen.insert(n.native_id.clone())).collect()
}

fn comment(c: &Value, issue_id: &str) -> Option<NativeNote> {
    let o = c.as_object()?;
    let native_id = o.get("id").and_then(string_of).and_then(non_empty)?;
    let restricted = o.get("visibility").is_some_and(|v| v.is_object());
    let public = o.get("jsdPublic").or_else(|| o.get("public")).and_then(Value::as_bool);
    let visibility = match public {
        Some(true) if !restricted => Visibility::Public,
        _ => Visibility::Internal,
    };
    // The issue id is in the comment's own URL: …/issue/10042/comment/10001.
    let from_self = o.get("self").and_then(Value::as_str).and_then(|s| s.split("/issue/").nth(1)).and_then(|s| s.split('/').next()).map(str::to_string);
    let ticket_id = from_self.filter(|s| !s.is_empty()).unwrap_or_else(|| issue_id.to_string());
    Some(NativeNote {
        native_id,
        ticket_id,
        visibility,
        author: o.get("author").and_then(|a| a.get("displayName").or_else(|| a.get("accountId"))).and_then(Value::as_str).unwrap_or("jira").to_string(),
        text: rich_text(o.get("body").unwrap_or(&Value::Null)),
        created_at: o.get("created").and_then(parse_time),
    })
}

// ---- Canonical <-> native values -------------------------------------------------------------

fn level_of(value: &str, to: &BTreeMap<String, u8>) -> Option<u8> {
    to.get(value).copied()
}

/// Maps synced Jira values to canonical ones. `assigned` turns a `new` ticket into `assigned`.
/// A value the payload did not carry leaves its canonical field unread (`None`).
pub fn to_canonical(cfg: &JiraConfig, fields: &BTreeMap<String, String>, assigned: bool) -> Canonical {
    let mut c = Canonical::default();
    let get = |k: &str| fields.get(k).map(String::as_str);
    let resolution = get(field::RESOLUTION).unwrap_or("");
    if let Some(id) = get(field::STATUS).filter(|s| !s.is_empty()) {
        match cfg.read_status(id, get(field::STATUS_CATEGORY).unwrap_or(""), resolution) {
            Some((Status::New, _)) if assigned => c.status = Some(Status::Assigned),
            Some((s, hold)) => {
                c.status = Some(s);
                c.hold_reason = hold;
            }
            None => {
                let category = get(field::STATUS_CATEGORY).unwrap_or("");
                match cfg.infer_status(id, category, resolution) {
                    Some(s) => {
                        c.status = Some(if s == Status::New && assigned { Status::Assigned } else { s });
                        c.unmapped.insert(field::STATUS.into(), inferred_note(id, s, category));
                    }
                    None => {
                        c.unmapped.insert(field::STATUS.into(), id.into());
                    }
                }
            }
        }
    }
    if !resolution.is_empty() && matches!(c.status, Some(Status::Resolved) | Some(Status::Closed)) {
        let code = match cfg.resolution_to.get(resolution) {
            Some(code) => code.clone(),
            None => {
                c.unmapped.insert(field::RESOLUTION.into(), resolution.into());
                "other".into()
            }
        };
        c.resolution = Some(Resolution { code, notes: String::new() });
    }
    let mut scale = |name: &str, to: &BTreeMap<String, u8>| -> Option<u8> {
        let v = get(name).filter(|v| !v.is_empty())?;
        let l = level_of(v, to);
        if l.is_none() {
            c.unmapped.insert(name.into(), v.into());
        }
        l
    };
    if cfg.impact_field.is_some() {
        c.impact = scale(field::IMPACT, &cfg.impact_to).and_then(Impact::new);
    }
    if cfg.urgency_field.is_some() {
        c.urgency = scale(field::URGENCY, &cfg.urgency_to).and_then(Urgency::new);
    } else if let Some(p) = get(field::PRIORITY).filter(|p| !p.is_empty()) {
        match cfg.priority_by_id(p) {
            Some(level) => c.urgency = Urgency::new(level.urgency),
            None => {
                c.unmapped.insert(field::PRIORITY.into(), p.into());
            }
        }
    }
    c.title = get(field::SUMMARY).map(str::to_string);
    c.description = get(field::DESCRIPTION).map(str::to_string);
    c
}

/// How the leg shows a status read through its category: the native id, and what it was read as.
pub fn inferred_note(id: &str, status: Status, category: &str) -> String {
    format!("{id} (inferred as {status} from its status category `{category}`; add a status rule to confirm)")
}

/// The synced values the hub wants, keeping a status read through its category when it already
/// means what the hub wants: the hub does not move the ticket out of a site's own status into
/// its target for the same meaning.
pub fn desired(cfg: &JiraConfig, incident: &Incident, baseline: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut m = from_canonical(cfg, incident);
    let get = |k: &str| baseline.get(k).map(String::as_str).unwrap_or("");
    let id = get(field::STATUS);
    if !id.is_empty() && cfg.read_status(id, get(field::STATUS_CATEGORY), get(field::RESOLUTION)).is_none() {
        let wanted = if incident.status == Status::Assigned { Status::New } else { incident.status };
        if cfg.infer_status(id, get(field::STATUS_CATEGORY), get(field::RESOLUTION)) == Some(wanted) {
            m.insert(field::STATUS.into(), id.to_string());
        }
    }
    m
}

/// A summary is one line in Jira (it refuses newlines); the hub writes its title flattened.
pub fn summary_of(title: &str) -> String {
    title.split(['\r', '\n']).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The synced values the hub wants the Jira issue to hold. Absent values are left as Jira has
/// them (the resolution outside a done status: Jira clears it itself on reopen).
pub fn from_canonical(cfg: &JiraConfig, incident: &Incident) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(t) = cfg.target(incident.status, incident.hold_reason) {
        m.insert(field::STATUS.into(), t.clone());
    }
    match (incident.status, &incident.resolution) {
        (Status::Cancelled, _) => {
            m.insert(field::RESOLUTION.into(), cfg.resolution_cancelled.clone());
        }
        (Status::Resolved | Status::Closed, Some(r)) => {
            let name = cfg.resolution_from.get(&r.code).or_else(|| cfg.resolution_from.get("other")).cloned().unwrap_or_else(|| "Done".into());
            m.insert(field::RESOLUTION.into(), name);
        }
        _ => {}
    }
    if let Some(p) = cfg.priority_for(incident.priority.get()) {
        m.insert(field::PRIORITY.into(), p.id.clone());
    }
    if cfg.impact_field.is_some() {
        if let Some(v) = cfg.impact_from.get(&incident.impact.to_string()) {
            m.insert(field::IMPACT.into(), v.clone());
        }
    }
    if cfg.urgency_field.is_some() {
        if let Some(v) = cfg.urgency_from.get(&incident.urgency.to_string()) {
            m.insert(field::URGENCY.into(), v.clone());
        }
    }
    m.insert(field::SUMMARY.into(), summary_of(&incident.title));
    m.insert(field::DESCRIPTION.into(), incident.description.clone());
    m
}

/// The Jira `fields` object writing synced values (create and edit bodies): ADF description,
/// priority by id, select options by value. Status and resolution are not fields one edits.
pub fn write_fields(cfg: &JiraConfig, values: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut f = Map::new();
    for (k, v) in values {
        match k.as_str() {
            field::SUMMARY => {
                f.insert("summary".into(), json!(v));
            }
            field::DESCRIPTION => {
                f.insert("description".into(), if v.is_empty() { Value::Null } else { text_to_adf(v) });
            }
            field::PRIORITY if !v.is_empty() => {
                f.insert("priority".into(), json!({ "id": v }));
            }
            field::IMPACT => {
                if let Some(id) = &cfg.impact_field {
                    f.insert(id.clone(), if v.is_empty() { Value::Null } else { json!({ "value": v }) });
                }
            }
            field::URGENCY => {
                if let Some(id) = &cfg.urgency_field {
                    f.insert(id.clone(), if v.is_empty() { Value::Null } else { json!({ "value": v }) });
                }
            }
            _ => {}
        }
    }
    f
}

/// The `fields` of `POST /rest/api/3/issue` for an incident: synced values plus the hub
/// reference (label, and the reference field when the site has one) so a retried create finds
/// the ticket instead of making a second one.
pub fn create_fields(cfg: &JiraConfig, incident: &Incident, issue_type: &str) -> Map<String, Value> {
    let mut f = write_fields(cfg, &from_canonical(cfg, incident));
    if !cfg.project_key.is_empty() {
        f.insert("project".into(), json!({ "key": cfg.project_key }));
    }
    if !issue_type.is_empty() {
        f.insert("issuetype".into(), json!({ "name": issue_type }));
    }
    if incident.description.is_empty() {
        f.remove("description");
    }
    f.insert("labels".into(), json!([cfg.marker_label, cfg.reference_label(incident.reference.as_str())]));
    if let Some(id) = &cfg.reference_field {
        f.insert(id.clone(), json!(incident.reference.as_str()));
    }
    f
}

// ---- Documents for `siam-hub map` ------------------------------------------------------------

/// The canonical document `siam-hub map --system jira` prints for a native payload.
pub fn canonical_document(cfg: &JiraConfig, payload: &Value) -> Result<Value, MapError> {
    let rec = parse_record(cfg, payload)?;
    let c = to_canonical(cfg, &rec.fields, rec.assigned);
    let notes = parse_comments(payload);
    let closed = matches!(c.status, Some(Status::Closed) | Some(Status::Cancelled));
    let ts = |t: &Option<DateTime<Utc>>| t.as_ref().map(time::rfc3339);
    let webhook = rec.webhook.as_ref().map(|w| {
        json!({
            "event": w.event,
            "issue_event_type_name": w.issue_event,
            "timestamp": ts(&w.timestamp),
            "changelog": w.changelog.iter().map(|(f, from, to)| json!({"field": f, "from": from, "to": to})).collect::<Vec<_>>(),
        })
    });
    Ok(json!({
        "title": c.title,
        "description": c.description,
        "status": c.status,
        "hold_reason": c.hold_reason,
        "impact": c.impact,
        "urgency": c.urgency,
        "priority": rec.priority_level,
        "priority_source": "supplied",
        "category": null,
        "ci": null,
        "caller": rec.reporter,
        "resolution": c.resolution,
        "opened_at": ts(&rec.created),
        "updated_at": ts(&rec.updated),
        "resolved_at": ts(&rec.resolved),
        "closed_at": null,
        "correlation_ref": rec.correlation,
        "notes": notes.iter().map(|n| json!({
            "native_id": n.native_id, "visibility": n.visibility, "author": n.author, "text": n.text,
            "created_at": ts(&n.created_at),
        })).collect::<Vec<_>>(),
        "webhook": webhook,
        "legs": [{
            "system": "jira",
            "shape": rec.shape,
            "native_id": rec.id,
            "native_number": rec.key,
            "native_status": rec.status_id,
            "state": if closed { "closed" } else { "open" },
            "revision": rec.revision,
            "unmapped": c.unmapped,
        }],
    }))
}

/// What `siam-hub map --system jira --reverse` prints for a canonical incident: the create
/// body, and the transition the hub would then make when the incident is past `new`.
pub fn native_document(cfg: &JiraConfig, canonical: &Value) -> Result<Value, MapError> {
    let incident: Incident = serde_json::from_value(canonical.clone()).map_err(|e| MapError(format!("not a canonical incident document: {e}")))?;
    let wanted = from_canonical(cfg, &incident);
    let mut doc = json!({ "fields": create_fields(cfg, &incident, "") });
    let status = wanted.get(field::STATUS).cloned().unwrap_or_default();
    let initial = cfg.target(Status::New, None).cloned().unwrap_or_default();
    if status != initial {
        let mut transition = json!({ "to": { "id": status, "statusCategory": cfg.statuses.get(&status).map(|r| r.category.clone()) } });
        if let Some(r) = wanted.get(field::RESOLUTION) {
            transition["fields"] = json!({ "resolution": { "name": r } });
        }
        doc["transition"] = transition;
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> JiraConfig {
        JiraConfig::default()
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_profile_is_consistent() {
        let c = cfg();
        for s in Status::ALL {
            let hold = (*s == Status::OnHold).then_some(HoldReason::AwaitingCaller);
            assert!(c.target(*s, hold).is_some(), "{s}");
        }
        assert_eq!(c.priorities.len(), 5);
        for p in 1..=5 {
            assert!(c.priority_for(p).is_some());
        }
        for code in crate::domain::ResolutionCode::ALL.iter().map(|c| c.as_str()) {
            assert!(c.resolution_from.contains_key(code), "{code}");
        }
    }

    #[test]
    fn timestamps_with_colonless_offsets_and_epoch_ms_are_utc() {
        let t = parse_time(&json!("2019-02-15T19:01:52.971-0800")).unwrap();
        assert_eq!(time::rfc3339(&t), "2019-02-16T03:01:52.971Z");
        let t = parse_time(&json!("2015-10-08T14:42:00+0700")).unwrap();
        assert_eq!(time::rfc3339(&t), "2015-10-08T07:42:00.000Z");
        let t = parse_time(&json!("2024-05-14T06:52:10.000+05:30")).unwrap();
        assert_eq!(time::rfc3339(&t), "2024-05-14T01:22:10.000Z");
        let t = parse_time(&json!(1444290120000_i64)).unwrap();
        assert_eq!(time::rfc3339(&t), "2015-10-08T07:42:00.000Z");
        assert_eq!(parse_time(&json!("2024-05-14T06:52:10")), None, "no zone, no instant");
        assert_eq!(parse_time(&json!("yesterday")), None);
        let la: chrono_tz::Tz = "America/Los_Angeles".parse().unwrap();
        let t = parse_time(&json!("2024-01-10T12:00:00.000Z")).unwrap();
        assert_eq!(jira_time(&t, &la), "2024-01-10T04:00:00.000-0800");
    }

    #[test]
    fn status_is_read_from_id_and_category_never_from_names() {
        let c = cfg();
        assert_eq!(c.read_status("10012", "indeterminate", ""), Some((Status::OnHold, Some(HoldReason::AwaitingCaller))));
        // The same id with another category is another site's status: not guessed.
        assert_eq!(c.read_status("10012", "done", ""), None);
        // An unknown id falls back on its category only where the profile says it is safe.
        assert_eq!(c.read_status("20001", "new", ""), Some((Status::New, None)));
        assert_eq!(c.read_status("20001", "indeterminate", ""), None);
        assert_eq!(c.read_status("Work in progress", "indeterminate", ""), None);
        // Done with a cancelling resolution is cancelled, whatever the status.
        assert_eq!(c.read_status("10001", "done", "Won't Do"), Some((Status::Cancelled, None)));
        assert_eq!(c.read_status("10001", "done", "Done"), Some((Status::Resolved, None)));
    }

    #[test]
    fn unknown_values_are_kept_unmapped() {
        let c = cfg();
        let can = to_canonical(&c, &fields(&[("status", "10099"), ("status_category", "undefined"), ("impact", "Galactic"), ("urgency", "Low")]), false);
        assert_eq!(can.status, None, "no category, no safe fallback");
        assert_eq!(can.unmapped.get("status").map(String::as_str), Some("10099"));
        assert_eq!(can.unmapped.get("impact").map(String::as_str), Some("Galactic"));
        assert_eq!(can.urgency, Urgency::new(3));
        let can = to_canonical(&c, &fields(&[("status", "10015"), ("status_category", "done"), ("resolution", "Fixed by magic")]), false);
        assert_eq!(can.resolution, Some(Resolution { code: "other".into(), notes: String::new() }));
        assert_eq!(can.unmapped.get("resolution").map(String::as_str), Some("Fixed by magic"));
    }

    #[test]
    fn unknown_statuses_are_inferred_from_their_category_and_marked() {
        let c = cfg();
        let read = |id: &str, cat: &str, res: &str, assigned: bool| to_canonical(&c, &fields(&[("status", id), ("status_category", cat), ("resolution", res)]), assigned);
        let can = read("10018", "indeterminate", "", false);
        assert_eq!(can.status, Some(Status::InProgress));
        let note = can.unmapped.get("status").cloned().unwrap_or_default();
        assert!(note.starts_with("10018 ") && note.contains("inferred") && note.contains("indeterminate"), "{note}");
        let can = read("10019", "done", "Done", false);
        assert_eq!((can.status, can.resolution.map(|r| r.code)), (Some(Status::Resolved), Some("fixed".to_string())));
        assert!(can.unmapped["status"].contains("inferred"));
        assert_eq!(read("10019", "done", "Declined", false).status, Some(Status::Cancelled), "a cancelling resolution cancels");
        // `new` is the profile's own safe fallback: read, not marked.
        let can = read("10020", "new", "", true);
        assert_eq!(can.status, Some(Status::Assigned));
        assert!(can.unmapped.is_empty());
        // A profile id seen in another category is another site's status: read by its category.
        assert_eq!(read("10012", "done", "", false).status, Some(Status::Resolved));
        // A status the configuration declares unmapped stays unmapped.
        let mut s = JiraSettings::default();
        s.statuses.insert("10050".into(), JiraStatusRule { category: "indeterminate".into(), canonical: None, hold_reason: None, name: None });
        let declared = JiraConfig::from_settings(&s).unwrap();
        let can = to_canonical(&declared, &fields(&[("status", "10050"), ("status_category", "indeterminate")]), false);
        assert_eq!((can.status, can.unmapped.get("status").map(String::as_str)), (None, Some("10050")));
    }

    #[test]
    fn an_inferred_status_meaning_what_the_hub_wants_is_not_rewritten() {
        let c = cfg();
        let baseline = fields(&[("status", "10018"), ("status_category", "indeterminate"), ("resolution", "")]);
        let mut incident: Incident = serde_json::from_value(json!({
            "ref": "INC-000001", "title": "t", "description": "d", "status": "in_progress", "hold_reason": null,
            "impact": 2, "urgency": 2, "priority": 3, "priority_source": "derived", "category": null,
            "service": null, "ci": null, "caller": "c", "assigned_supplier": null, "resolution": null, "notes": [],
            "opened_at": "2024-05-15T07:45:00.000Z", "updated_at": "2024-05-15T07:45:00.000Z", "resolved_at": null,
            "closed_at": null, "version": 1, "legs": []
        }))
        .unwrap();
        assert_eq!(desired(&c, &incident, &baseline)["status"], "10018");
        incident.status = Status::Resolved;
        incident.resolution = Some(Resolution { code: "fixed".into(), notes: String::new() });
        assert_eq!(desired(&c, &incident, &baseline)["status"], "10015", "another meaning: the hub's target");
    }

    #[test]
    fn a_site_priority_scheme_replaces_the_profiles() {
        let level = |id: &str, name: &str, priority: u8, urgency: u8| PriorityLevel { id: id.into(), name: name.into(), priority, urgency };
        let scheme = vec![
            level("10001", "P1 - Critical", 1, 1),
            level("10002", "P2 - High", 2, 1),
            level("10003", "P3 - Moderate", 3, 2),
            level("10004", "P4 - Low", 4, 3),
            level("10004", "P4 - Low", 5, 3),
        ];
        let s = JiraSettings { project_key: "OPS".into(), priorities: scheme, ..JiraSettings::default() };
        let c = JiraConfig::from_settings(&s).unwrap();
        assert_eq!(c.priority_for(1).map(|p| p.id.as_str()), Some("10001"));
        assert_eq!(c.priority_by_id("10003").map(|p| p.priority), Some(3));
        assert!(c.priority_by_id("1").is_none(), "the profile's ids are not this site's");
        let short = JiraSettings { project_key: "OPS".into(), priorities: vec![level("1", "Only", 1, 1)], ..JiraSettings::default() };
        assert!(JiraConfig::from_settings(&short).unwrap_err().contains("hub priority 2"));
        let toml = "[[suppliers]]\nid = \"j\"\nname = \"J\"\nsystem = \"jira\"\nbase_url = \"https://x.atlassian.net\"\n[suppliers.jira]\nproject_key = \"OPS\"\npriorities = [{ id = \"7\", name = \"Urgent\", priority = 1, urgency = 1 }]\n";
        assert!(crate::config::Settings::from_toml(toml).is_err(), "an incomplete scheme is refused at start");
    }

    #[test]
    fn priority_drives_urgency_only_without_an_urgency_field() {
        let mut c = cfg();
        let f = fields(&[("priority", "1"), ("urgency", "Low")]);
        assert_eq!(to_canonical(&c, &f, false).urgency, Urgency::new(3), "the urgency field wins");
        c.urgency_field = None;
        c.impact_field = None;
        let can = to_canonical(&c, &f, false);
        assert_eq!(can.urgency, Urgency::new(1));
        assert_eq!(can.impact, None, "Jira holds no impact of its own");
    }

    #[test]
    fn missing_fields_are_unread_and_null_fields_are_empty() {
        let c = cfg();
        let can = to_canonical(&c, &fields(&[("summary", "x")]), false);
        assert_eq!(can.description, None);
        assert_eq!(can.status, None);
        let can = to_canonical(&c, &fields(&[("summary", "x"), ("description", "")]), false);
        assert_eq!(can.description.as_deref(), Some(""));
    }

    #[test]
    fn equivalent_values_are_stored_as_the_hubs_own() {
        let c = cfg();
        let issue = json!({"id": "1", "fields": {
            "updated": "2024-05-14T06:52:10.000+0000",
            "status": {"id": "10014", "statusCategory": {"key": "indeterminate"}},
            "customfield_10005": {"value": "High"},
            "customfield_10004": {"value": "Moderate / Limited"},
            "resolution": null
        }});
        let r = parse_record(&c, &issue).unwrap();
        assert_eq!(r.fields["status"], "10011", "escalated is in progress: stored as the in-progress target");
        assert_eq!(r.fields["urgency"], "Critical");
        assert_eq!(r.fields["impact"], "Significant / Large");
        assert_eq!(r.fields["resolution"], "");
        assert_eq!(r.status_id.as_deref(), Some("10014"), "the raw id stays for the leg");
    }

    #[test]
    fn bad_payloads_are_map_errors_not_panics() {
        let c = cfg();
        for p in [
            json!(null),
            json!([]),
            json!({}),
            json!({"id": "1"}),
            json!({"webhookEvent": "jira:issue_updated"}),
            json!({"webhookEvent": "jira:issue_deleted", "issue": {"id": "1", "fields": {}}}),
            json!({"issueId": ""}),
            json!({"id": {"x": 1}, "fields": {}}),
            json!({"id": " ", "fields": {"updated": 1}}),
            json!({"issueId": "\t", "currentStatus": {"status": "Open"}}),
        ] {
            assert!(parse_record(&c, &p).is_err(), "{p}");
        }
        for p in [json!(null), json!({"comments": [1, null, {"id": null}, {"id": " ", "body": "no id"}]}), json!({"values": "x"})] {
            assert!(parse_comments(&p).is_empty());
        }
        let weird = json!({"id": 5, "fields": {"updated": 17, "status": "x", "priority": [], "summary": 3, "description": 4, "labels": "x", "comment": {"comments": [{"id": 9, "body": {"type": "doc"}}]}}});
        let r = parse_record(&c, &weird).unwrap();
        assert_eq!(r.id, "5");
        assert_eq!(parse_comments(&weird)[0].visibility, Visibility::Internal);
    }

    #[test]
    fn comment_visibility_fails_closed() {
        let p = json!({"comments": [
            {"id": "1", "body": "a", "jsdPublic": true},
            {"id": "2", "body": "b", "jsdPublic": false},
            {"id": "3", "body": "c"},
            {"id": "4", "body": "d", "jsdPublic": true, "visibility": {"type": "role", "value": "Administrators"}},
            {"id": "5", "body": "e", "public": true}
        ]});
        let v: Vec<Visibility> = parse_comments(&p).iter().map(|n| n.visibility).collect();
        assert_eq!(v, [Visibility::Public, Visibility::Internal, Visibility::Internal, Visibility::Internal, Visibility::Public]);
    }
}
