//! Jira Service Management change requests <-> the canonical change.
//!
//! A JSM change is an issue of the service project's change issue type (`Change`). It is read
//! in REST v3 (ADF rich text), REST v2 or inside a webhook (wiki markup), by its stable issue id;
//! the key is its number. The stage is the workflow status, read by name through the profile
//! (spelling loosely: JSM names are per site and shown in any case), and by status category
//! where a name is unknown and the category unambiguous. Approvals are workflow steps, so
//! approval is read from the status (`Awaiting implementation` = approved, `Declined` =
//! rejected). The outcome is the resolution set on the way into `Peer review` / `Completed`.
//! Change type, risk, impact and urgency are select custom fields; the planned window is two
//! date-time custom fields. The hub reference travels in the reference text field the incident
//! adapter uses and in a `siam-CHG-…` label that lookups match exactly.
//!
//! Jira sets no status on create or edit: the body [`JiraChange::create_body`] makes holds the
//! issue's `fields` and, beside them, the `transition` the client performs (the status name to
//! reach and the resolution its screen takes).

use super::{kept, leg_of, loose, parse_iso, ChangeMapping, CodeMap, Reading, TEXT_MAX, TITLE_MAX};
use crate::adapters::jira::text::{adf_to_text, text_to_adf, wiki_to_text};
use crate::adapters::MapError;
use crate::domain::change::{Approval, Change, ChangeRef, ChangeStatus, ChangeType, Outcome, Risk};
use crate::domain::{Impact, Priority, Urgency};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The Jira Service Management change mapping.
pub struct JiraChange;

const SYSTEM: &str = "jira";

/// The key of the create / update body holding the status to reach and its resolution.
pub const TRANSITION: &str = "transition";

/// Custom field ids of the site.
#[derive(Debug, Deserialize)]
struct Fields {
    reference: String,
    change_type: String,
    risk: String,
    impact: String,
    urgency: String,
    planned_start: String,
    planned_end: String,
}

#[derive(Debug, Deserialize)]
struct Labels {
    marker: String,
    reference_prefix: String,
}

#[derive(Debug, Deserialize)]
struct Resolution {
    #[serde(flatten)]
    outcome: CodeMap<Outcome>,
    /// Resolutions a cancelled or declined change carries that say nothing beyond its status.
    closing: Vec<String>,
    cancelled: String,
    rejected: String,
}

/// The profile in `adapters/jira/change_profile.json`.
#[derive(Debug, Deserialize)]
struct Profile {
    issue_type: String,
    fields: Fields,
    labels: Labels,
    status: CodeMap<ChangeStatus>,
    by_category: HashMap<String, Value>,
    approval_by_status: HashMap<String, Value>,
    resolution: Resolution,
    change_type: CodeMap<ChangeType>,
    risk: CodeMap<Risk>,
    impact: CodeMap<Impact>,
    urgency: CodeMap<Urgency>,
    priority: CodeMap<Priority>,
}

fn profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| serde_json::from_str(include_str!("../../../adapters/jira/change_profile.json")).expect("adapters/jira/change_profile.json is valid (checked by tests)"))
}

impl Profile {
    /// The stage a status category stands for, where the profile says it is unambiguous.
    fn by_category(&self, category: &str) -> Option<ChangeStatus> {
        self.by_category.get(&category.to_ascii_lowercase()).and_then(Value::as_str).and_then(|s| s.parse().ok())
    }

    /// Where a change in the status (by name) stands with its approvers.
    fn approval(&self, status: &str) -> Option<Approval> {
        self.approval_by_status.get(&loose(status)).and_then(Value::as_str).and_then(|s| s.parse().ok())
    }
}

/// The change issue type's name (`Change` unless the profile says otherwise).
pub fn issue_type() -> &'static str {
    &profile().issue_type
}

/// The label marking every change issue the hub made.
pub fn marker_label() -> &'static str {
    &profile().labels.marker
}

/// The label carrying a hub reference (`siam-CHG-000045`).
pub fn reference_label(reference: &str) -> String {
    format!("{}{reference}", profile().labels.reference_prefix)
}

/// The custom field holding the hub reference.
pub fn reference_field() -> &'static str {
    &profile().fields.reference
}

/// The issue fields this mapping reads: what a client asks Jira for.
pub fn read_fields() -> Vec<String> {
    let f = &profile().fields;
    let mut out: Vec<String> = ["summary", "description", "status", "resolution", "resolutiondate", "priority", "created", "updated", "labels", "issuetype", "project"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    out.extend([&f.reference, &f.change_type, &f.risk, &f.impact, &f.urgency, &f.planned_start, &f.planned_end].into_iter().cloned());
    out
}

/// Fields only a create sets: the issue keeps pointing at the change it was made for.
pub fn create_only_fields() -> Vec<String> {
    vec!["project".into(), "issuetype".into(), "labels".into(), profile().fields.reference.clone()]
}

/// The issue itself, from a bare issue or a webhook body.
fn issue(payload: &Value) -> Result<&Map<String, Value>, MapError> {
    let obj = payload.as_object().ok_or_else(|| MapError("a Jira change issue must be a JSON object".into()))?;
    if let Some(event) = obj.get("webhookEvent").and_then(Value::as_str) {
        if event == "jira:issue_deleted" {
            return Err(MapError("an issue_deleted event carries no change state to apply".into()));
        }
        return obj.get("issue").and_then(Value::as_object).ok_or_else(|| MapError(format!("the `{event}` webhook carries no issue")));
    }
    Ok(obj)
}

fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

/// A named item (`{name}`: status, resolution, priority, issue type) or a bare string; `Err` with
/// the raw value when it is neither.
fn name_of(v: Option<&Value>) -> Result<String, Value> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Object(o)) => match o.get("name") {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Ok(String::new()),
            Some(other) => Err(other.clone()),
        },
        Some(other) => Err(other.clone()),
    }
}

/// A select option (`{value}`) or a bare string; `Err` with the raw value when it is neither.
fn option_of(v: Option<&Value>) -> Result<String, Value> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Object(o)) => match o.get("value") {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) if o.is_empty() => Ok(String::new()),
            _ => Err(Value::Object(o.clone())),
        },
        Some(other) => Err(other.clone()),
    }
}

/// Jira's date-times: `2024-05-20T15:00:00.000-0700` (offset without colon) or RFC 3339.
fn parse_jira(s: &str) -> Option<DateTime<Utc>> {
    ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"].iter().find_map(|f| DateTime::parse_from_str(s.trim(), f).ok()).map(|t| t.with_timezone(&Utc)).or_else(|| parse_iso(s))
}

/// How the hub writes a date-time field: UTC, with the offset Jira's pickers take.
fn jira_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// A date-time field: a string the hub can place in time, else kept unmapped.
fn instant(r: &mut Reading, field: &str, v: Option<&Value>) -> Option<DateTime<Utc>> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => r.instant(field, Some(s), parse_jira),
        Some(other) => {
            r.unmapped(field, other.clone());
            None
        }
    }
}

/// Rich text of any shape: ADF (v3), wiki markup (v2, webhooks) or null.
fn rich_text(r: &mut Reading, field: &str, v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => wiki_to_text(s),
        Some(doc @ Value::Object(_)) => adf_to_text(doc),
        Some(other) => {
            r.unmapped(field, other.clone());
            String::new()
        }
    }
}

/// A one-line summary: Jira refuses line breaks there.
fn summary_of(title: &str) -> String {
    title.split(['\r', '\n']).filter(|s| !s.trim().is_empty()).collect::<Vec<_>>().join(" ")
}

impl JiraChange {
    /// A coded select or named field: empty is not set, an unknown value is kept unmapped.
    fn coded<T: Copy + PartialEq + std::fmt::Display>(r: &mut Reading, field: &str, native: Result<String, Value>, map: &CodeMap<T>) -> Option<T> {
        match native {
            Ok(s) => r.code(field, &s, map),
            Err(raw) => {
                r.unmapped(field, raw);
                None
            }
        }
    }
}

impl ChangeMapping for JiraChange {
    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn read(&self, payload: &Value) -> Result<Change, MapError> {
        let p = profile();
        let issue = issue(payload)?;
        let id = issue.get("id").and_then(string_of).and_then(non_empty).ok_or_else(|| MapError("the Jira issue has no id".into()))?;
        let fields = issue
            .get("fields")
            .and_then(Value::as_object)
            .ok_or_else(|| MapError(format!("Jira issue {id} has no fields (a create answer holds only id and key: read the issue)")))?;
        if let Ok(kind) = name_of(fields.get("issuetype")) {
            if !kind.trim().is_empty() && loose(&kind) != loose(&p.issue_type) {
                return Err(MapError(format!("Jira issue {id} is of issue type `{kind}`, not a `{}` change", p.issue_type)));
            }
        }
        let get = |k: &str| fields.get(k);
        let mut r = Reading::new(SYSTEM, id);
        r.leg.native_number = issue.get("key").and_then(string_of).and_then(non_empty);

        match name_of(get("status")) {
            Ok(name) if !name.trim().is_empty() => {
                r.leg.native_status = Some(name.clone());
                let category = get("status").and_then(|s| s.pointer("/statusCategory/key")).and_then(Value::as_str).unwrap_or("");
                match p.status.read(&name) {
                    Some(s) => {
                        if p.status.write(s, None).as_deref() != Some(name.as_str()) {
                            r.keep_native("status", name.clone());
                        }
                        r.change.status = Some(s);
                        r.change.approval = p.approval(&name);
                    }
                    None => match p.by_category(category) {
                        // Read by its category: the name is kept so a write back keeps it.
                        Some(s) => {
                            r.keep_native("status", name.clone());
                            r.change.status = Some(s);
                        }
                        None => r.unmapped("status", name),
                    },
                }
            }
            Ok(_) => {}
            Err(raw) => r.unmapped("status", raw),
        }

        match name_of(get("resolution")) {
            Ok(name) if !name.trim().is_empty() => {
                let status = r.change.status;
                if status.is_some_and(|s| s.takes_outcome()) {
                    r.change.outcome = r.code("resolution", &name, &p.resolution.outcome);
                } else if matches!(status, Some(ChangeStatus::Cancelled | ChangeStatus::Rejected)) && p.resolution.closing.iter().any(|c| c == &name) {
                    r.keep_native("resolution", name);
                } else {
                    r.unmapped("resolution", name);
                }
            }
            Ok(_) => {}
            Err(raw) => r.unmapped("resolution", raw),
        }

        let f = &p.fields;
        r.change.change_type = Self::coded(&mut r, &f.change_type, option_of(get(&f.change_type)), &p.change_type);
        r.change.risk = Self::coded(&mut r, &f.risk, option_of(get(&f.risk)), &p.risk);
        r.change.impact = Self::coded(&mut r, &f.impact, option_of(get(&f.impact)), &p.impact);
        r.change.urgency = Self::coded(&mut r, &f.urgency, option_of(get(&f.urgency)), &p.urgency);
        r.change.priority = Self::coded(&mut r, "priority", name_of(get("priority")), &p.priority);

        r.change.planned_start = instant(&mut r, &f.planned_start, get(&f.planned_start));
        r.change.planned_end = instant(&mut r, &f.planned_end, get(&f.planned_end));
        r.change.opened_at = instant(&mut r, "created", get("created"));
        r.change.updated_at = instant(&mut r, "updated", get("updated"));
        r.change.closed_at = instant(&mut r, "resolutiondate", get("resolutiondate"));

        let labels: Vec<String> = get("labels").and_then(Value::as_array).map(|a| a.iter().filter_map(string_of).collect()).unwrap_or_default();
        let from_label = || labels.iter().find_map(|l| l.strip_prefix(&p.labels.reference_prefix).and_then(|s| s.parse::<ChangeRef>().ok()));
        match get(&f.reference) {
            None | Some(Value::Null) => r.change.reference = from_label(),
            Some(Value::String(s)) if s.trim().is_empty() => r.change.reference = from_label(),
            Some(Value::String(s)) => match s.trim().parse::<ChangeRef>() {
                Ok(reference) => r.change.reference = Some(reference),
                // Another system's id in the reference field: not the hub's, but not dropped.
                Err(_) => {
                    r.unmapped(&f.reference, s.clone());
                    r.change.reference = from_label();
                }
            },
            Some(other) => {
                r.unmapped(&f.reference, other.clone());
                r.change.reference = from_label();
            }
        }

        match get("summary") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => r.change.title = r.fit("summary", s, TITLE_MAX),
            Some(other) => r.unmapped("summary", other.clone()),
        }
        let description = rich_text(&mut r, "description", get("description"));
        r.change.description = r.fit("description", &description, TEXT_MAX);
        Ok(r.finish())
    }

    /// `{"fields": {...}, "transition": {"to": <status name>, "resolution": <name>}}`: the fields
    /// of `POST /rest/api/3/issue` (the client adds the project), and the status the issue is
    /// moved to afterwards, Jira setting no status on create or edit.
    fn create_body(&self, c: &Change) -> Value {
        let p = profile();
        let f = &p.fields;
        let leg = leg_of(c, SYSTEM);
        let mut fields = Map::new();
        fields.insert("issuetype".into(), json!({ "name": p.issue_type }));
        fields.insert("summary".into(), json!(summary_of(&c.title)));
        if !c.description.trim().is_empty() {
            fields.insert("description".into(), text_to_adf(&c.description));
        }
        if let Some(reference) = &c.reference {
            fields.insert("labels".into(), json!([p.labels.marker, reference_label(reference.as_str())]));
            fields.insert(f.reference.clone(), json!(reference.as_str()));
        }
        let mut option = |field: &str, value: Option<String>| {
            if let Some(v) = value {
                fields.insert(field.to_string(), json!({ "value": v }));
            }
        };
        option(&f.change_type, c.change_type.and_then(|t| p.change_type.write(t, kept(leg, &f.change_type))));
        option(&f.risk, c.risk.and_then(|v| p.risk.write(v, kept(leg, &f.risk))));
        option(&f.impact, c.impact.and_then(|v| p.impact.write(v, kept(leg, &f.impact))));
        option(&f.urgency, c.urgency.and_then(|v| p.urgency.write(v, kept(leg, &f.urgency))));
        if let Some(name) = c.priority.and_then(|v| p.priority.write(v, kept(leg, "priority"))) {
            fields.insert("priority".into(), json!({ "name": name }));
        }
        if let Some(t) = &c.planned_start {
            fields.insert(f.planned_start.clone(), json!(jira_time(t)));
        }
        if let Some(t) = &c.planned_end {
            fields.insert(f.planned_end.clone(), json!(jira_time(t)));
        }
        let mut body = json!({ "fields": fields });
        let kept_status = kept(leg, "status").or_else(|| leg.and_then(|l| l.native_status.as_deref()));
        if let Some(to) = c.status.and_then(|s| p.status.write(s, kept_status)) {
            let kept_closing = kept(leg, "resolution").filter(|r| p.resolution.closing.iter().any(|c| c == r)).map(str::to_string);
            let resolution = match c.status {
                Some(ChangeStatus::Cancelled) => Some(kept_closing.unwrap_or_else(|| p.resolution.cancelled.clone())),
                Some(ChangeStatus::Rejected) => Some(p.resolution.rejected.clone()),
                Some(s) if s.takes_outcome() => c.outcome.and_then(|o| p.resolution.outcome.write(o, kept(leg, "resolution"))),
                _ => None,
            };
            body[TRANSITION] = json!({ "to": to, "resolution": resolution });
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v3 change issue with an id and `fields`.
    fn issue(fields: Value) -> Value {
        let mut f = json!({ "issuetype": { "id": "10021", "name": "Change" } });
        if let (Some(a), Some(b)) = (f.as_object_mut(), fields.as_object()) {
            a.extend(b.clone());
        }
        json!({ "id": "10042", "key": "OPS-42", "fields": f })
    }

    fn read(fields: Value) -> Change {
        JiraChange.read(&issue(fields)).expect("maps")
    }

    fn status(name: &str, category: &str) -> Value {
        json!({ "id": "10031", "name": name, "statusCategory": { "key": category } })
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("instant").with_timezone(&Utc)
    }

    #[test]
    fn profile_loads_and_every_canonical_value_maps_out() {
        let p = profile();
        for s in ChangeStatus::ALL {
            let name = p.status.write(*s, None).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(p.status.read(&name), Some(*s), "{s} -> {name}");
        }
        for t in ChangeType::ALL {
            assert!(p.change_type.write(*t, None).is_some(), "{t}");
        }
        for o in Outcome::ALL {
            let name = p.resolution.outcome.write(*o, None).unwrap_or_else(|| panic!("{o}"));
            assert_eq!(p.resolution.outcome.read(&name), Some(*o));
        }
        for v in 1..=5 {
            assert!(p.risk.write(Risk::new(v).unwrap(), None).is_some(), "risk {v}");
            assert!(p.priority.write(Priority::new(v).unwrap(), None).is_some(), "priority {v}");
        }
        for v in 1..=3 {
            assert!(p.impact.write(Impact::new(v).unwrap(), None).is_some(), "impact {v}");
            assert!(p.urgency.write(Urgency::new(v).unwrap(), None).is_some(), "urgency {v}");
        }
        for (name, approval) in p.approval_by_status.iter().filter(|(k, _)| *k != "note") {
            assert!(approval.as_str().and_then(|a| a.parse::<Approval>().ok()).is_some(), "{name}");
            assert!(p.status.read(name).is_some(), "{name} is a status the profile reads");
        }
        assert!(p.by_category("new").is_some());
        assert_eq!(read_fields().iter().filter(|f| f.starts_with("customfield_")).count(), 7);
    }

    #[test]
    fn statuses_read_by_name_with_approval_and_by_category_as_a_fallback() {
        let c = read(json!({ "status": status("Awaiting implementation", "new") }));
        assert_eq!((c.status, c.approval), (Some(ChangeStatus::Scheduled), Some(Approval::Approved)));
        assert_eq!(c.legs[0].native_status.as_deref(), Some("Awaiting implementation"));
        assert!(c.legs[0].native.is_empty() && c.legs[0].unmapped.is_empty());
        let c = read(json!({ "status": status("AWAITING APPROVAL", "indeterminate") }));
        assert_eq!((c.status, c.approval), (Some(ChangeStatus::Authorize), Some(Approval::Requested)));
        assert_eq!(c.legs[0].native.get("status"), Some(&json!("AWAITING APPROVAL")));
        let c = read(json!({ "status": status("Declined", "done"), "resolution": { "name": "Declined" } }));
        assert_eq!((c.status, c.approval, c.outcome), (Some(ChangeStatus::Rejected), Some(Approval::Rejected), None));
        assert!(c.legs[0].unmapped.is_empty());
        // An unknown name in an unambiguous category reads by its category, the name kept.
        let c = read(json!({ "status": status("Drafting", "new") }));
        assert_eq!((c.status, c.approval), (Some(ChangeStatus::Draft), None));
        assert_eq!(c.legs[0].native.get("status"), Some(&json!("Drafting")));
        // In an ambiguous one it stays unmapped: never guessed.
        let c = read(json!({ "status": status("Failed", "done") }));
        assert_eq!(c.status, None);
        assert_eq!(c.legs[0].unmapped.get("status"), Some(&json!("Failed")));
    }

    #[test]
    fn the_outcome_is_the_resolution_once_implemented() {
        let c = read(json!({ "status": status("Completed", "done"), "resolution": { "name": "Completed with issues" }, "resolutiondate": "2030-05-21T03:00:00.000+0000" }));
        assert_eq!((c.status, c.outcome), (Some(ChangeStatus::Closed), Some(Outcome::SuccessfulWithIssues)));
        assert_eq!(c.closed_at, Some(at("2030-05-21T03:00:00Z")));
        let c = read(json!({ "status": status("Completed", "done"), "resolution": { "name": "Because" } }));
        assert_eq!(c.outcome, None);
        assert_eq!(c.legs[0].unmapped.get("resolution"), Some(&json!("Because")));
        let c = read(json!({ "status": status("Implementing", "indeterminate"), "resolution": { "name": "Done" } }));
        assert_eq!(c.outcome, None);
        assert_eq!(c.legs[0].unmapped.get("resolution"), Some(&json!("Done")));
        let c = read(json!({ "status": status("Canceled", "done"), "resolution": { "name": "Duplicate" } }));
        assert_eq!(c.status, Some(ChangeStatus::Cancelled));
        assert!(c.legs[0].unmapped.is_empty());
        assert_eq!(JiraChange.create_body(&c)[TRANSITION], json!({ "to": "Canceled", "resolution": "Duplicate" }));
    }

    #[test]
    fn custom_fields_window_and_reference_read_and_unknown_values_stay_unmapped() {
        let c = read(json!({
            "summary": "Replace the core switch",
            "description": { "type": "doc", "version": 1, "content": [{ "type": "paragraph", "content": [{ "type": "text", "text": "Swap the line card." }] }] },
            "customfield_10035": { "value": "Emergency", "id": "10050" },
            "customfield_10036": { "value": "Severe" },
            "customfield_10004": { "value": "Moderate / Limited" },
            "customfield_10005": { "value": "Critical" },
            "priority": { "name": "High", "id": "2" },
            "customfield_10037": "2030-05-20T15:00:00.000-0700",
            "customfield_10038": "next tuesday",
            "customfield_10100": "CHG-000045",
            "labels": ["siam-hub-change", "siam-CHG-000045"],
        }));
        assert_eq!(c.title, "Replace the core switch");
        assert_eq!(c.description, "Swap the line card.");
        assert_eq!(c.change_type, Some(ChangeType::Emergency));
        assert_eq!(c.risk, None);
        assert_eq!(c.legs[0].unmapped.get("customfield_10036"), Some(&json!("Severe")));
        assert_eq!(c.impact, Impact::new(2));
        assert_eq!(c.legs[0].native.get("customfield_10004"), Some(&json!("Moderate / Limited")));
        assert_eq!(c.urgency, Urgency::new(1));
        assert_eq!(c.priority, Priority::new(2));
        assert_eq!(c.planned_start, Some(at("2030-05-20T22:00:00Z")));
        assert_eq!(c.planned_end, None);
        assert_eq!(c.legs[0].unmapped.get("customfield_10038"), Some(&json!("next tuesday")));
        assert_eq!(c.reference.as_ref().map(|r| r.as_str()), Some("CHG-000045"));
        // The many-to-one impact is written back as the supplier holds it.
        let body = JiraChange.create_body(&c);
        assert_eq!(body["fields"]["customfield_10004"], json!({ "value": "Moderate / Limited" }));
        // Another system's id in the reference field is kept; the label still names the change.
        let c = read(json!({ "customfield_10100": "SR-991", "labels": ["siam-CHG-000046"] }));
        assert_eq!(c.reference.as_ref().map(|r| r.as_str()), Some("CHG-000046"));
        assert_eq!(c.legs[0].unmapped.get("customfield_10100"), Some(&json!("SR-991")));
    }

    #[test]
    fn create_body_holds_fields_and_the_transition_to_make() {
        let mut c = Change::blank();
        c.reference = Some("CHG-000045".parse().expect("reference"));
        c.title = "Replace the core switch\nin DC2".into();
        c.description = "Swap the failing line card.".into();
        c.change_type = Some(ChangeType::Normal);
        c.status = Some(ChangeStatus::Scheduled);
        c.risk = Risk::new(5);
        c.planned_start = Some(at("2030-05-20T22:00:00Z"));
        c.planned_end = Some(at("2030-05-21T02:00:00Z"));
        let body = JiraChange.create_body(&c);
        let f = &body["fields"];
        assert_eq!(f["issuetype"], json!({ "name": "Change" }));
        assert_eq!(f["summary"], "Replace the core switch in DC2");
        assert_eq!(f["description"]["type"], "doc");
        assert_eq!(f["labels"], json!(["siam-hub-change", "siam-CHG-000045"]));
        assert_eq!(f["customfield_10100"], "CHG-000045");
        assert_eq!(f["customfield_10035"], json!({ "value": "Normal" }));
        assert_eq!(f["customfield_10036"], json!({ "value": "Low" }));
        assert_eq!(f["customfield_10037"], "2030-05-20T22:00:00.000+0000");
        assert_eq!(f["customfield_10038"], "2030-05-21T02:00:00.000+0000");
        assert_eq!(body[TRANSITION], json!({ "to": "Awaiting implementation", "resolution": null }));
        c.status = Some(ChangeStatus::Closed);
        c.outcome = Some(Outcome::Unsuccessful);
        assert_eq!(JiraChange.create_body(&c)[TRANSITION], json!({ "to": "Completed", "resolution": "Failed" }));
        c.status = Some(ChangeStatus::Rejected);
        c.outcome = None;
        assert_eq!(JiraChange.create_body(&c)[TRANSITION], json!({ "to": "Declined", "resolution": "Declined" }));
        c.status = None;
        assert!(JiraChange.create_body(&c).get(TRANSITION).is_none());
        // What the hub reads back it writes the same.
        let read = JiraChange.read(&json!({ "id": "1", "fields": body["fields"] })).expect("reads");
        assert_eq!((read.title.as_str(), read.change_type, read.risk, read.planned_end), ("Replace the core switch in DC2", Some(ChangeType::Normal), Risk::new(4), c.planned_end));
    }

    #[test]
    fn payloads_that_are_not_jira_changes_are_errors_not_panics() {
        assert!(JiraChange.read(&json!("text")).is_err());
        assert!(JiraChange.read(&json!({ "fields": {} })).is_err());
        assert!(JiraChange.read(&json!({ "id": "1" })).is_err());
        assert!(JiraChange.read(&json!({ "id": "", "fields": {} })).is_err());
        let e = JiraChange.read(&json!({ "id": "1", "fields": { "issuetype": { "name": "Incident" } } })).unwrap_err();
        assert!(e.0.contains("Incident"), "{e}");
        assert!(JiraChange.read(&json!({ "webhookEvent": "jira:issue_deleted", "issue": issue(json!({})) })).is_err());
        let hook = json!({ "webhookEvent": "jira:issue_updated", "issue": issue(json!({ "description": "Swap *now*", "status": status("Planning", "indeterminate") })) });
        let c = JiraChange.read(&hook).expect("a webhook's issue");
        assert_eq!((c.status, c.description.as_str()), (Some(ChangeStatus::Assess), "Swap now"));
    }

    /// Every field the mapping reads, set to every odd value in turn: a valid canonical change
    /// (what cannot be read is kept unmapped), never an invalid one or a panic.
    #[test]
    fn odd_values_in_any_field_still_give_a_valid_change() {
        let odd = crate::adapters::change::odd_values();
        let mut fields = read_fields();
        fields.retain(|f| f != "issuetype");
        for field in &fields {
            for value in &odd {
                let mut payload = issue(json!({ "status": status("Completed", "done") }));
                payload["fields"][field.as_str()] = value.clone();
                let doc = serde_json::to_value(JiraChange.read(&payload).expect("reads")).expect("renders");
                let broken = crate::validation::validate(crate::validation::Doc::Change, &doc).err().unwrap_or_default();
                assert!(broken.is_empty(), "jira `{field}` = {}: {broken:?}", value.to_string().chars().take(60).collect::<String>());
            }
        }
    }
}
