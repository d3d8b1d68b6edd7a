//! Remedy (BMC Helix ITSM) change requests <-> the canonical change.
//!
//! Changes are created on `CHG:ChangeInterface_Create` and read on `CHG:ChangeInterface`, whose
//! field names differ (`Status` vs `Change Request Status`, `Infrastructure Change Id` vs `ID`).
//! A payload in either set of names is read, in any envelope the AR REST API answers with (an
//! entry, a query answer of one entry, bare values); an AR error array is reported as the error
//! it is. Remedy's selection fields are labels; its approvals are phases, so approval is read
//! from the status; `Pending` is the hold flag. Readings that are many-to-one (`Expedited` timing,
//! `2-Significant/Large` impact) keep the native value on the leg.

use super::{kept, leg_of, parse_iso, Affected, ChangeMapping, CodeMap, Reading, HOLD_REASON_MAX, TEXT_MAX, TITLE_MAX};
use crate::adapters::MapError;
use crate::domain::change::{Approval, Change, ChangeRef, ChangeStatus, ChangeType, Outcome, Risk};
use crate::domain::{Impact, Priority, Urgency};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// The Remedy change mapping.
pub struct RemedyChange;

const SYSTEM: &str = "remedy";

/// Where each canonical field is read: native names in order of preference (read, then create).
#[derive(Debug, Deserialize)]
struct Fields {
    title: Vec<String>,
    description: Vec<String>,
    status: Vec<String>,
    status_reason: Vec<String>,
    timing: Vec<String>,
    change_type: Vec<String>,
    risk: Vec<String>,
    impact: Vec<String>,
    urgency: Vec<String>,
    priority: Vec<String>,
    planned_start: Vec<String>,
    planned_end: Vec<String>,
    actual_start: Vec<String>,
    actual_end: Vec<String>,
    service: Vec<String>,
    number: Vec<String>,
    entry_id: Vec<String>,
    opened_at: Vec<String>,
    updated_at: Vec<String>,
    correlation: Vec<String>,
    history: Vec<String>,
}

impl Fields {
    /// The names of every field the mapping reads, field by field.
    fn all(&self) -> [&[String]; 21] {
        [
            &self.title,
            &self.description,
            &self.status,
            &self.status_reason,
            &self.timing,
            &self.change_type,
            &self.risk,
            &self.impact,
            &self.urgency,
            &self.priority,
            &self.planned_start,
            &self.planned_end,
            &self.actual_start,
            &self.actual_end,
            &self.service,
            &self.number,
            &self.entry_id,
            &self.opened_at,
            &self.updated_at,
            &self.correlation,
            &self.history,
        ]
    }
}

impl RemedyChange {
    /// The read name (as `CHG:ChangeInterface` knows it) of every field the mapping reads: what
    /// a read of a change asks for.
    pub fn read_names() -> Vec<&'static str> {
        profile().fields.all().into_iter().filter_map(|names| names.first()).map(String::as_str).collect()
    }
}

/// The create form's field names and defaults.
#[derive(Debug, Deserialize)]
struct Create {
    title: String,
    title_max_chars: usize,
    description: String,
    status: String,
    status_reason: String,
    timing: String,
    change_type: String,
    risk: String,
    impact: String,
    urgency: String,
    priority: String,
    planned_start: String,
    planned_end: String,
    actual_start: String,
    actual_end: String,
    service: String,
    correlation: String,
    defaults: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct StatusTable {
    #[serde(flatten)]
    map: CodeMap<ChangeStatus>,
    pending: String,
}

#[derive(Debug, Deserialize)]
struct ApprovalByStatus {
    to_canonical: HashMap<String, Approval>,
}

/// The profile in `adapters/remedy/change_profile.json`.
#[derive(Debug, Deserialize)]
struct Profile {
    fields: Fields,
    create: Create,
    status: StatusTable,
    approval_by_status: ApprovalByStatus,
    timing: CodeMap<ChangeType>,
    risk: CodeMap<Risk>,
    impact: CodeMap<Impact>,
    urgency: CodeMap<Urgency>,
    priority: CodeMap<Priority>,
    outcome: CodeMap<Outcome>,
}

/// How Remedy writes instants (`2022-06-21T11:08:05.000+0000`), the form it answers in.
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f+0000";

fn profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| {
        serde_json::from_str(include_str!("../../../adapters/remedy/change_profile.json")).expect("adapters/remedy/change_profile.json is valid (checked by tests)")
    })
}

/// An AR error array (`[{messageType, messageText, messageAppendedText, messageNumber}]`) as one line.
fn ar_error(list: &[Value]) -> Option<String> {
    let first = list.first()?.as_object()?;
    first.get("messageType")?;
    let s = |k: &str| first.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default();
    let appended = s("messageAppendedText");
    let detail = if appended.is_empty() { String::new() } else { format!(" ({appended})") };
    Some(format!("Remedy answered {} {}: {}{detail}", s("messageType"), s("messageNumber"), s("messageText")))
}

/// The field values of the one change in `payload`.
fn values(payload: &Value) -> Result<&Map<String, Value>, MapError> {
    let obj = match payload {
        Value::Array(list) => {
            return Err(MapError(ar_error(list).unwrap_or_else(|| "a Remedy change payload must be a JSON object (an entry, a query answer or its values)".into())));
        }
        Value::Object(o) => o,
        _ => return Err(MapError("a Remedy change payload must be a JSON object (an entry, a query answer or its values)".into())),
    };
    let entry = match obj.get("entries") {
        Some(Value::Array(list)) if list.len() == 1 => &list[0],
        Some(Value::Array(list)) => return Err(MapError(format!("the query answer holds {} entries; map one change at a time", list.len()))),
        Some(_) => return Err(MapError("`entries` must be a list of entries".into())),
        // A notification carries the entry under `entry`.
        None => obj.get("entry").unwrap_or(payload),
    };
    match entry.get("values") {
        Some(Value::Object(v)) => Ok(v),
        Some(_) => Err(MapError("`values` must be an object of field values".into())),
        None => entry.as_object().ok_or_else(|| MapError("a query answer entry must be a JSON object".into())),
    }
}

struct Values<'a>(&'a Map<String, Value>);

impl<'a> Values<'a> {
    /// The first of `names` that holds a value (null is no value), with the name it was under.
    fn first<'n>(&self, names: &'n [String]) -> Option<(&'n str, &'a Value)> {
        names.iter().find_map(|n| self.0.get(n).filter(|v| !v.is_null()).map(|v| (n.as_str(), v)))
    }

    /// A scalar as text (Remedy numbers are JSON numbers); an object or list where a scalar
    /// belongs is kept unmapped.
    fn text<'n>(&self, r: &mut Reading, names: &'n [String]) -> Option<(&'n str, String)> {
        let (name, v) = self.first(names)?;
        match v {
            Value::String(s) => Some((name, s.clone())),
            Value::Number(n) => Some((name, n.to_string())),
            Value::Bool(b) => Some((name, b.to_string())),
            other => {
                r.unmapped(name, other.clone());
                None
            }
        }
    }

    fn code<T: Copy + PartialEq + std::fmt::Display>(&self, r: &mut Reading, names: &[String], map: &CodeMap<T>) -> Option<T> {
        let (name, v) = self.text(r, names)?;
        r.code(name, &v, map)
    }

    fn instant(&self, r: &mut Reading, names: &[String]) -> Option<DateTime<Utc>> {
        let (name, v) = self.text(r, names)?;
        r.instant(name, Some(&v), parse_iso)
    }
}

impl ChangeMapping for RemedyChange {
    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn read(&self, payload: &Value) -> Result<Change, MapError> {
        let p = profile();
        let f = &p.fields;
        let v = Values(values(payload)?);
        // Ids are read before the reading exists: unreadable ids are an error, not a value.
        let id = |names: &[String]| v.first(names).and_then(|(_, v)| v.as_str()).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let number = id(&f.number);
        let native_id = id(&f.entry_id).or_else(|| number.clone()).ok_or_else(|| MapError("the change has no Request ID, Change_Entry_ID or Infrastructure Change ID".into()))?;
        let mut r = Reading::new(SYSTEM, native_id);
        r.leg.native_number = number;

        if let Some((name, status)) = v.text(&mut r, &f.status) {
            r.leg.native_status = Some(status.clone());
            if status == p.status.pending {
                r.change.on_hold = true;
            } else if !status.trim().is_empty() {
                // Several statuses read as one stage; the leg's native_status keeps which.
                r.change.status = p.status.map.read(&status);
                if r.change.status.is_none() {
                    r.unmapped(name, status.clone());
                }
            }
            r.change.approval = p.approval_by_status.to_canonical.get(&status).copied();
        }

        if let Some((name, reason)) = v.text(&mut r, &f.status_reason).filter(|(_, s)| !s.trim().is_empty()) {
            if r.change.on_hold {
                r.change.hold_reason = Some(r.fit(name, &reason, HOLD_REASON_MAX));
            } else if r.change.status.is_some_and(|s| s.takes_outcome()) {
                r.change.outcome = r.code(name, &reason, &p.outcome);
            } else {
                // A reason for another status (a cancellation's, a rejection's) has no canonical
                // field; it is kept.
                r.unmapped(name, reason);
            }
        }

        r.change.change_type = v.code(&mut r, &f.timing, &p.timing);
        if let Some((name, class)) = v.text(&mut r, &f.change_type) {
            // Remedy's request class (Change, Release...) is not the ITIL type; kept for write-back.
            r.keep_native(name, class);
        }
        r.change.risk = v.code(&mut r, &f.risk, &p.risk);
        r.change.impact = v.code(&mut r, &f.impact, &p.impact);
        r.change.urgency = v.code(&mut r, &f.urgency, &p.urgency);
        r.change.priority = v.code(&mut r, &f.priority, &p.priority);

        r.change.planned_start = v.instant(&mut r, &f.planned_start);
        r.change.planned_end = v.instant(&mut r, &f.planned_end);
        r.change.actual_start = v.instant(&mut r, &f.actual_start);
        r.change.actual_end = v.instant(&mut r, &f.actual_end);
        r.change.opened_at = v.instant(&mut r, &f.opened_at);
        r.change.updated_at = v.instant(&mut r, &f.updated_at);
        if r.change.status == Some(ChangeStatus::Closed) {
            // Status-History holds the last time each status was entered.
            let closed = v.first(&f.history).and_then(|(_, h)| h.get("Closed")).and_then(|c| c.get("timestamp")).and_then(Value::as_str);
            r.change.closed_at = r.instant("Status-History.Closed", closed, parse_iso);
        }

        if let Some((name, service)) = v.text(&mut r, &f.service) {
            r.affected(Affected::Service, name, &service);
        }
        if let Some((name, correlation)) = v.text(&mut r, &f.correlation) {
            match correlation.trim().parse::<ChangeRef>() {
                Ok(reference) => r.change.reference = Some(reference),
                Err(_) if correlation.trim().is_empty() => {}
                Err(_) => r.unmapped(name, correlation),
            }
        }

        if let Some((name, title)) = v.text(&mut r, &f.title) {
            r.change.title = r.fit(name, &title, TITLE_MAX);
        }
        if let Some((name, description)) = v.text(&mut r, &f.description) {
            r.change.description = r.fit(name, &description, TEXT_MAX);
        }
        Ok(r.finish())
    }

    /// The `CHG:ChangeInterface_Create` body, in create names.
    fn create_body(&self, c: &Change) -> Value {
        let p = profile();
        let cr = &p.create;
        let leg = leg_of(c, SYSTEM);
        let time = |t: &Option<DateTime<Utc>>| t.as_ref().map(|t| t.format(TIME_FORMAT).to_string());
        let mut values = Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                values.insert(k.to_string(), Value::String(v));
            }
        };
        // The create form's summary holds 100 characters; the rest cannot travel.
        put(&cr.title, Some(c.title.chars().take(cr.title_max_chars).collect()));
        put(&cr.description, Some(c.description.clone()));
        let status = if c.on_hold { Some(p.status.pending.clone()) } else { c.status.and_then(|s| p.status.map.write(s, leg.and_then(|l| l.native_status.as_deref()))) };
        put(&cr.status, status);
        let reason = if c.on_hold {
            c.hold_reason.clone()
        } else {
            c.outcome.filter(|_| c.status.is_some_and(|s| s.takes_outcome())).and_then(|o| p.outcome.write(o, kept(leg, &cr.status_reason)))
        };
        put(&cr.status_reason, reason);
        put(&cr.timing, c.change_type.and_then(|t| p.timing.write(t, kept(leg, &cr.timing))));
        put(&cr.change_type, kept(leg, &cr.change_type).map(str::to_string).or_else(|| cr.defaults.get(&cr.change_type).cloned()));
        put(&cr.risk, c.risk.and_then(|v| p.risk.write(v, kept(leg, &cr.risk))));
        put(&cr.impact, c.impact.and_then(|v| p.impact.write(v, kept(leg, &cr.impact))));
        put(&cr.urgency, c.urgency.and_then(|v| p.urgency.write(v, kept(leg, &cr.urgency))));
        put(&cr.priority, c.priority.and_then(|v| p.priority.write(v, kept(leg, &cr.priority))));
        put(&cr.planned_start, time(&c.planned_start));
        put(&cr.planned_end, time(&c.planned_end));
        put(&cr.actual_start, time(&c.actual_start));
        put(&cr.actual_end, time(&c.actual_end));
        put(&cr.service, c.services.first().cloned());
        put(&cr.correlation, c.reference.as_ref().map(ChangeRef::to_string));
        for (k, v) in &cr.defaults {
            if !values.contains_key(k) {
                values.insert(k.clone(), json!(v));
            }
        }
        json!({ "values": values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(fields: Value) -> Change {
        let mut values = json!({ "Request ID": "CRQ000000000201", "Infrastructure Change ID": "CRQ000000000201" });
        if let (Some(v), Some(f)) = (values.as_object_mut(), fields.as_object()) {
            v.extend(f.clone());
        }
        RemedyChange.read(&json!({ "values": values })).expect("maps")
    }

    #[test]
    fn profile_loads_and_every_canonical_value_maps_out() {
        let p = profile();
        for s in ChangeStatus::ALL {
            let native = p.status.map.write(*s, None).unwrap_or_else(|| panic!("{s} maps out"));
            assert_eq!(p.status.map.read(&native), Some(*s));
        }
        for t in ChangeType::ALL {
            assert!(p.timing.write(*t, None).is_some(), "{t}");
        }
        for o in Outcome::ALL {
            assert!(p.outcome.write(*o, None).is_some(), "{o}");
        }
        for n in 1..=5 {
            let level = format!("Risk Level {n}");
            assert_eq!(p.risk.read(&level).map(|r| r.get()), Some(6 - n), "{level}");
            assert!(p.priority.write(Priority::new(n).unwrap(), None).is_some());
        }
        for status in p.approval_by_status.to_canonical.keys() {
            assert!(p.status.map.read(status).is_some(), "{status} is a known status");
        }
    }

    #[test]
    fn risk_level_one_is_the_lowest() {
        assert_eq!(read(json!({"Risk Level": "Risk Level 1"})).risk, Risk::new(5));
        assert_eq!(read(json!({"Risk Level": "Risk Level 5"})).risk, Risk::new(1));
        let c = read(json!({"Risk Level": "Risk Level 9"}));
        assert_eq!(c.risk, None);
        assert_eq!(c.legs[0].unmapped.get("Risk Level"), Some(&json!("Risk Level 9")));
    }

    #[test]
    fn timing_classes_without_a_canonical_type_of_their_own_are_kept() {
        for (class, t) in [("Expedited", ChangeType::Normal), ("Latent", ChangeType::Emergency), ("No Impact", ChangeType::Standard)] {
            let c = read(json!({"Change Timing": class}));
            assert_eq!(c.change_type, Some(t), "{class}");
            assert_eq!(c.legs[0].native.get("Change Timing"), Some(&json!(class)));
            assert_eq!(RemedyChange.create_body(&c)["values"]["Change Timing"], class, "{class} is written back");
        }
        let c = read(json!({"Change Timing": "Normal"}));
        assert!(!c.legs[0].native.contains_key("Change Timing"));
        // A kept value that no longer means the canonical type is not written back.
        let mut c = read(json!({"Change Timing": "Expedited"}));
        c.change_type = Some(ChangeType::Emergency);
        assert_eq!(RemedyChange.create_body(&c)["values"]["Change Timing"], "Emergency");
    }

    #[test]
    fn pending_is_the_hold_flag_with_its_reason() {
        let c = read(json!({"Change Request Status": "Pending", "Status Reason": "Vendor Purchase"}));
        assert!(c.on_hold);
        assert_eq!(c.status, None);
        assert_eq!(c.hold_reason.as_deref(), Some("Vendor Purchase"));
        assert!(c.legs[0].unmapped.is_empty());
        let body = RemedyChange.create_body(&c);
        assert_eq!(body["values"]["Status"], "Pending");
        assert_eq!(body["values"]["Status Reason"], "Vendor Purchase");
    }

    #[test]
    fn create_and_read_names_read_alike() {
        let read_names = read(json!({"Change Request Status": "Scheduled", "Infrastructure Change ID": "CRQ000000000201"}));
        let create_names =
            RemedyChange.read(&json!({"values": {"Status": "Scheduled", "Change_Entry_ID": "CRQ000000000201", "Infrastructure Change Id": "CRQ000000000201"}})).unwrap();
        assert_eq!(read_names.status, create_names.status);
        assert_eq!(read_names.legs[0].native_number, create_names.legs[0].native_number);
        assert_eq!(create_names.approval, Some(Approval::Approved));
    }

    #[test]
    fn error_arrays_and_odd_payloads_are_clear_errors() {
        let e = RemedyChange
            .read(&json!([{"messageType": "ERROR", "messageText": "Entry does not exist in database", "messageAppendedText": "CHG:ChangeInterface : CRQ000000000999", "messageNumber": 302}]))
            .unwrap_err();
        assert_eq!(e.0, "Remedy answered ERROR 302: Entry does not exist in database (CHG:ChangeInterface : CRQ000000000999)");
        assert!(RemedyChange.read(&json!({"values": {"Description": "no id"}})).is_err());
        assert!(RemedyChange.read(&json!({"entries": []})).is_err());
        assert!(RemedyChange.read(&json!({"values": 3})).is_err());
        assert!(RemedyChange.read(&json!(null)).is_err());
        let c = read(json!({"Impact": {"odd": true}, "Scheduled Start Date": 1716242400, "Priority": 7}));
        assert_eq!(c.impact, None);
        assert_eq!(c.legs[0].unmapped.get("Impact"), Some(&json!({"odd": true})));
        assert_eq!(c.legs[0].unmapped.get("Scheduled Start Date"), Some(&json!("1716242400")));
        assert_eq!(c.legs[0].unmapped.get("Priority"), Some(&json!("7")));
    }
}
