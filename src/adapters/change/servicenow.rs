//! ServiceNow `change_request` records <-> the canonical change.
//!
//! A record arrives raw (`sysparm_display_value=false`: `state` as a negative number in a string,
//! `{link, value}` references, UTC dates), in display mode (`true`: labels, `{display_value, link}`
//! references, dates in the caller's time zone) or both (`all`). Choices are read by their stored
//! value, labels turned back through the profile; references by their sys_id (parsed from the
//! link when display mode gives no value), so one change reads the same in every shape. Display-
//! mode dates have no known time zone: they are kept unmapped, never read.
//!
//! The field-reading helpers are the incident mapping's, so both read every shape alike.

use super::{kept, leg_of, Affected, ChangeMapping, CodeMap, Reading, HOLD_REASON_MAX, TEXT_MAX, TITLE_MAX};
use crate::adapters::servicenow::mapping::{field, non_empty, parse_sn_time, sn_time, text, Shape};
use crate::adapters::MapError;
use crate::domain::change::{Approval, Change, ChangeRef, ChangeStatus, ChangeType, Outcome, Risk};
use crate::domain::{Impact, Priority, Urgency};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// The ServiceNow change mapping.
pub struct ServiceNowChange;

const SYSTEM: &str = "servicenow";

#[derive(Debug, Deserialize)]
struct Rejected {
    state: String,
    approval: String,
}

#[derive(Debug, Deserialize)]
struct AffectedFields {
    service: String,
    ci: String,
}

/// The profile in `adapters/servicenow/change_profile.json`.
#[derive(Debug, Deserialize)]
struct Profile {
    state: CodeMap<ChangeStatus>,
    rejected: Rejected,
    #[serde(rename = "type")]
    change_type: CodeMap<ChangeType>,
    approval: CodeMap<Approval>,
    risk: CodeMap<Risk>,
    impact: CodeMap<Impact>,
    urgency: CodeMap<Urgency>,
    priority: CodeMap<Priority>,
    close_code: CodeMap<Outcome>,
    on_hold: CodeMap<bool>,
    correlation_display: String,
    affected: AffectedFields,
}

fn profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| {
        serde_json::from_str(include_str!("../../../adapters/servicenow/change_profile.json")).expect("adapters/servicenow/change_profile.json is valid (checked by tests)")
    })
}

/// The record itself, from a bare record, a Table API answer (`{"result": {...}}`, or a list of
/// exactly one) or a push body (`{"record": {...}}`).
fn record(payload: &Value) -> Result<&Map<String, Value>, MapError> {
    let inner = payload.get("record").or_else(|| payload.get("result"));
    let rec = match inner {
        Some(Value::Array(list)) if list.len() == 1 => &list[0],
        Some(Value::Array(list)) => {
            return Err(MapError(format!("the answer holds {} change_request records; map one record at a time", list.len())));
        }
        Some(r) => r,
        None => payload,
    };
    rec.as_object().ok_or_else(|| MapError("a ServiceNow change_request record must be a JSON object".into()))
}

fn detect_shape(rec: &Map<String, Value>) -> Shape {
    let objects: Vec<&Map<String, Value>> = rec.values().filter_map(Value::as_object).collect();
    if objects.iter().any(|o| o.contains_key("display_value") && o.contains_key("value")) {
        return Shape::All;
    }
    if objects.iter().any(|o| o.contains_key("display_value")) {
        return Shape::Display;
    }
    // With no reference set, the state still gives display mode away: stored states are
    // integers ("-2"), labels are words ("Scheduled").
    let state = rec.get("state").and_then(Value::as_str).map(str::trim).unwrap_or("");
    if !state.is_empty() && state.parse::<i64>().is_err() {
        return Shape::Display;
    }
    if rec.get("sys_class_name").and_then(Value::as_str) == Some("Change Request") {
        return Shape::Display;
    }
    Shape::Raw
}

struct Record<'a> {
    rec: &'a Map<String, Value>,
    shape: Shape,
}

impl Record<'_> {
    /// A choice's stored value; in display mode its label turned back through `map`.
    fn choice<T>(&self, name: &str, map: &CodeMap<T>) -> String {
        let f = field(self.rec.get(name));
        match self.shape {
            Shape::Raw | Shape::All => f.value.or(f.display).unwrap_or_default(),
            Shape::Display => {
                let label = f.display.or(f.value).unwrap_or_default();
                map.stored(&label).to_string()
            }
        }
    }

    /// Free text as the person wrote it (identical in every shape but for references).
    fn text(&self, name: &str) -> String {
        let f = field(self.rec.get(name));
        match self.shape {
            Shape::Display => f.display.or(f.value).unwrap_or_default(),
            _ => f.value.or(f.display).unwrap_or_default(),
        }
    }

    /// A reference's sys_id, or a plain string field's value.
    fn reference(&self, name: &str) -> String {
        text(&field(self.rec.get(name)))
    }

    /// A glide_date_time: read in UTC where the shape gives the stored value; in display mode
    /// kept unmapped, because its time zone is the caller's and unknown.
    fn date(&self, r: &mut Reading, name: &str) -> Option<DateTime<Utc>> {
        let f = field(self.rec.get(name));
        match self.shape {
            Shape::Raw | Shape::All => r.instant(name, f.value.as_deref(), parse_sn_time),
            Shape::Display => {
                if let Some(shown) = f.display.or(f.value).filter(|s| !s.trim().is_empty()) {
                    r.unmapped(name, shown);
                }
                None
            }
        }
    }
}

impl ChangeMapping for ServiceNowChange {
    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn read(&self, payload: &Value) -> Result<Change, MapError> {
        let p = profile();
        let rec = record(payload)?;
        let n = Record { rec, shape: detect_shape(rec) };
        let sys_id = non_empty(n.reference("sys_id")).ok_or_else(|| MapError("the change_request record has no sys_id".into()))?;
        let mut r = Reading::new(SYSTEM, sys_id);
        r.leg.native_number = non_empty(n.reference("number"));

        let state = n.choice("state", &p.state);
        r.leg.native_status = non_empty(state.clone());
        let approval = n.choice("approval", &p.approval);
        r.change.approval = r.code("approval", &approval, &p.approval);
        let status = r.code("state", &state, &p.state);
        r.change.status = if state == p.rejected.state && approval == p.rejected.approval { Some(ChangeStatus::Rejected) } else { status };
        r.change.change_type = r.code("type", &n.choice("type", &p.change_type), &p.change_type);

        r.change.on_hold = r.code("on_hold", &n.choice("on_hold", &p.on_hold).to_ascii_lowercase(), &p.on_hold).unwrap_or(false);
        if r.change.on_hold {
            // Outside a hold the reason is a leftover ServiceNow does not clear; it means nothing.
            let reason = n.text("on_hold_reason");
            r.change.hold_reason = non_empty(r.fit("on_hold_reason", &reason, HOLD_REASON_MAX));
        }

        r.change.risk = r.code("risk", &n.choice("risk", &p.risk), &p.risk);
        r.change.impact = r.code("impact", &n.choice("impact", &p.impact), &p.impact);
        r.change.urgency = r.code("urgency", &n.choice("urgency", &p.urgency), &p.urgency);
        r.change.priority = r.code("priority", &n.choice("priority", &p.priority), &p.priority);

        r.change.planned_start = n.date(&mut r, "start_date");
        r.change.planned_end = n.date(&mut r, "end_date");
        r.change.actual_start = n.date(&mut r, "work_start");
        r.change.actual_end = n.date(&mut r, "work_end");
        r.change.opened_at = n.date(&mut r, "opened_at");
        r.change.updated_at = n.date(&mut r, "sys_updated_on");
        r.change.closed_at = n.date(&mut r, "closed_at");

        let close_code = n.choice("close_code", &p.close_code);
        if !close_code.trim().is_empty() {
            if r.change.status.is_some_and(|s| s.takes_outcome()) {
                r.change.outcome = r.code("close_code", &close_code, &p.close_code);
            } else {
                r.unmapped("close_code", close_code);
            }
        }
        let notes = n.text("close_notes");
        r.change.outcome_notes = non_empty(r.fit("close_notes", &notes, TEXT_MAX));

        r.affected(Affected::Service, &p.affected.service, &n.reference(&p.affected.service));
        r.affected(Affected::Ci, &p.affected.ci, &n.reference(&p.affected.ci));

        let correlation = n.text("correlation_id");
        match correlation.trim().parse::<ChangeRef>() {
            Ok(reference) => r.change.reference = Some(reference),
            Err(_) if correlation.trim().is_empty() => {}
            // Another system's id in the correlation field: not the hub's, but not dropped.
            Err(_) => r.unmapped("correlation_id", correlation),
        }

        let title = n.text("short_description");
        r.change.title = r.fit("short_description", &title, TITLE_MAX);
        let description = n.text("description");
        r.change.description = r.fit("description", &description, TEXT_MAX);
        Ok(r.finish())
    }

    /// The Table API body (raw values) that creates the change_request.
    fn create_body(&self, c: &Change) -> Value {
        let p = profile();
        let leg = leg_of(c, SYSTEM);
        let mut b = Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                b.insert(k.to_string(), Value::String(v));
            }
        };
        put("short_description", Some(c.title.clone()));
        put("description", Some(c.description.clone()));
        put("type", c.change_type.and_then(|t| p.change_type.write(t, kept(leg, "type"))));
        let status = c.status.and_then(|s| p.state.write(s, leg.and_then(|l| l.native_status.as_deref())));
        put("state", status);
        let approval =
            if c.status == Some(ChangeStatus::Rejected) { Some(p.rejected.approval.clone()) } else { c.approval.and_then(|a| p.approval.write(a, kept(leg, "approval"))) };
        put("approval", approval);
        put("on_hold", p.on_hold.write(c.on_hold, None));
        put("on_hold_reason", c.hold_reason.clone().filter(|_| c.on_hold));
        put("risk", c.risk.and_then(|v| p.risk.write(v, kept(leg, "risk"))));
        put("impact", c.impact.and_then(|v| p.impact.write(v, kept(leg, "impact"))));
        put("urgency", c.urgency.and_then(|v| p.urgency.write(v, kept(leg, "urgency"))));
        put("priority", c.priority.and_then(|v| p.priority.write(v, kept(leg, "priority"))));
        put("start_date", c.planned_start.as_ref().map(sn_time));
        put("end_date", c.planned_end.as_ref().map(sn_time));
        put("work_start", c.actual_start.as_ref().map(sn_time));
        put("work_end", c.actual_end.as_ref().map(sn_time));
        put("close_code", c.outcome.and_then(|o| p.close_code.write(o, kept(leg, "close_code"))));
        put("close_notes", c.outcome_notes.clone());
        put(&p.affected.service, c.services.first().cloned());
        put(&p.affected.ci, c.cis.first().cloned());
        if let Some(reference) = &c.reference {
            put("correlation_id", Some(reference.to_string()));
            put("correlation_display", Some(p.correlation_display.clone()));
        }
        Value::Object(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A raw record with a sys_id and `fields`.
    fn raw(fields: Value) -> Value {
        let mut rec = json!({ "sys_id": "c83c5e5347c12200e0ef563dbb9a7190" });
        if let (Some(r), Some(f)) = (rec.as_object_mut(), fields.as_object()) {
            r.extend(f.clone());
        }
        rec
    }

    fn read(fields: Value) -> Change {
        ServiceNowChange.read(&raw(fields)).expect("maps")
    }

    #[test]
    fn profile_loads_and_every_canonical_value_maps_out() {
        let p = profile();
        for s in ChangeStatus::ALL {
            assert!(p.state.write(*s, None).is_some(), "{s}");
        }
        for t in ChangeType::ALL {
            assert!(p.change_type.write(*t, None).is_some(), "{t}");
        }
        for a in Approval::ALL {
            assert!(p.approval.write(*a, None).is_some(), "{a}");
        }
        for o in Outcome::ALL {
            assert!(p.close_code.write(*o, None).is_some(), "{o}");
        }
        for v in 1..=5 {
            assert!(p.risk.write(Risk::new(v).unwrap(), None).is_some(), "risk {v}");
            assert!(p.priority.write(Priority::new(v).unwrap(), None).is_some(), "priority {v}");
        }
        for (label, stored) in &p.state.labels {
            assert!(p.state.read(stored).is_some(), "label {label} -> {stored}");
        }
    }

    #[test]
    fn negative_string_states_map_and_unknown_ones_stay_unmapped() {
        assert_eq!(read(json!({"state": "-2"})).status, Some(ChangeStatus::Scheduled));
        assert_eq!(read(json!({"state": "0"})).status, Some(ChangeStatus::Review));
        let c = read(json!({"state": "-7"}));
        assert_eq!(c.status, None);
        assert_eq!(c.legs[0].unmapped.get("state"), Some(&json!("-7")));
        let c = read(json!({"state": ""}));
        assert_eq!(c.status, None);
        assert!(c.legs[0].unmapped.is_empty());
    }

    #[test]
    fn a_rejected_change_is_new_with_approval_rejected() {
        let c = read(json!({"state": "-5", "approval": "rejected"}));
        assert_eq!(c.status, Some(ChangeStatus::Rejected));
        assert_eq!(c.approval, Some(Approval::Rejected));
        let body = ServiceNowChange.create_body(&c);
        assert_eq!(body["state"], "-5");
        assert_eq!(body["approval"], "rejected");
    }

    #[test]
    fn hold_is_a_flag_and_a_stale_reason_is_ignored() {
        let c = read(json!({"state": "-1", "on_hold": "true", "on_hold_reason": "Waiting for the vendor's firmware"}));
        assert_eq!(c.status, Some(ChangeStatus::Implement));
        assert!(c.on_hold);
        assert_eq!(c.hold_reason.as_deref(), Some("Waiting for the vendor's firmware"));
        let c = read(json!({"state": "-1", "on_hold": "false", "on_hold_reason": "old"}));
        assert!(!c.on_hold);
        assert_eq!(c.hold_reason, None);
        let c = read(json!({"on_hold": "maybe"}));
        assert!(!c.on_hold);
        assert_eq!(c.legs[0].unmapped.get("on_hold"), Some(&json!("maybe")));
    }

    #[test]
    fn a_close_code_before_review_is_kept_unmapped() {
        let c = read(json!({"state": "-1", "close_code": "successful"}));
        assert_eq!(c.outcome, None);
        assert_eq!(c.legs[0].unmapped.get("close_code"), Some(&json!("successful")));
        let c = read(json!({"state": "3", "close_code": "successful_issues"}));
        assert_eq!(c.outcome, Some(Outcome::SuccessfulWithIssues));
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        assert!(ServiceNowChange.read(&json!("text")).is_err());
        assert!(ServiceNowChange.read(&json!({"state": "-2"})).is_err());
        assert!(ServiceNowChange.read(&json!({"result": []})).is_err());
        assert!(ServiceNowChange.read(&json!({"result": [raw(json!({})), raw(json!({}))]})).is_err());
        assert!(ServiceNowChange.read(&json!({"result": [raw(json!({}))]})).is_ok());
        // Odd value types are read as text or ignored, never a crash.
        let c = read(json!({"state": -2, "risk": 3, "on_hold": true, "start_date": ["x"], "impact": {"foo": 1}}));
        assert_eq!(c.status, Some(ChangeStatus::Scheduled));
        assert_eq!(c.risk, Risk::new(3));
        assert!(c.on_hold);
    }

    #[test]
    fn long_titles_are_cut_and_kept_whole_unmapped() {
        let long = "x".repeat(200);
        let c = read(json!({"short_description": long}));
        assert_eq!(c.title.chars().count(), TITLE_MAX);
        assert_eq!(c.legs[0].unmapped.get("short_description"), Some(&json!(long)));
    }
}
