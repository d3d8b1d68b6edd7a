//! TMF655 `changeRequest` (v4) <-> the canonical change.
//!
//! TMF655 defines the attributes but not their vocabularies: `status`, `requestType`,
//! `priority`, `impact` and `risk` are free strings agreed between partners. The common
//! spellings are read whatever their case and separators; any other value is kept unmapped.
//! What the standard has no attribute for travels the way the TMF621 adapter carries it: urgency
//! and the hold reason as `changeRequestCharacteristic`, the title as the first line of
//! `description`. A resource arrives bare, as a list answer of one, or inside a change event.

use super::{iso, kept, leg_of, loose, parse_iso, Affected, ChangeMapping, CodeMap, Reading, HOLD_REASON_MAX, TEXT_MAX, TITLE_MAX};
use crate::adapters::MapError;
use crate::domain::change::{Approval, Change, ChangeRef, ChangeStatus, ChangeType, Outcome, Risk};
use crate::domain::{Impact, Priority, Urgency};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The TMF655 change mapping.
pub struct Tmf655Change;

const SYSTEM: &str = "tmf655";

/// What one status spelling says: a stage, an approval state, a hold, or some of these.
#[derive(Debug, Clone, Copy, Deserialize)]
struct StatusReading {
    #[serde(default)]
    status: Option<ChangeStatus>,
    #[serde(default)]
    approval: Option<Approval>,
    #[serde(default)]
    on_hold: bool,
}

#[derive(Debug, Deserialize)]
struct StatusTable {
    to_canonical: HashMap<String, StatusReading>,
    from_canonical: HashMap<String, String>,
    on_hold: String,
}

impl StatusTable {
    fn read(&self, native: &str) -> Option<StatusReading> {
        self.to_canonical.get(&loose(native)).copied()
    }
}

/// A canonical value carried as a `changeRequestCharacteristic`.
#[derive(Debug, Deserialize)]
struct Characteristic<T> {
    characteristic: String,
    #[serde(flatten)]
    map: CodeMap<T>,
}

#[derive(Debug, Deserialize)]
struct HoldReason {
    characteristic: String,
}

#[derive(Debug, Deserialize)]
struct Entities {
    ci_types: Vec<String>,
    ci_type_prefixes: Vec<String>,
    service_write_type: String,
    ci_write_type: String,
}

/// The profile in `adapters/tmf655/profile.json`.
#[derive(Debug, Deserialize)]
struct Profile {
    status: StatusTable,
    request_type: CodeMap<ChangeType>,
    priority: CodeMap<Priority>,
    impact: CodeMap<Impact>,
    risk: CodeMap<Risk>,
    outcome: CodeMap<Outcome>,
    urgency: Characteristic<Urgency>,
    hold_reason: HoldReason,
    entities: Entities,
}

fn profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| serde_json::from_str(include_str!("../../../adapters/tmf655/profile.json")).expect("adapters/tmf655/profile.json is valid (checked by tests)"))
}

/// The changeRequest in `payload`.
fn resource(payload: &Value) -> Result<&Map<String, Value>, MapError> {
    let res = match payload {
        Value::Array(list) if list.len() == 1 => &list[0],
        Value::Array(list) => return Err(MapError(format!("the list answer holds {} change requests; map one at a time", list.len()))),
        other => other.get("event").and_then(|e| e.get("changeRequest")).unwrap_or(other),
    };
    let obj = res.as_object().ok_or_else(|| MapError("a TMF655 changeRequest must be a JSON object".into()))?;
    if !obj.contains_key("id") && obj.contains_key("code") && obj.contains_key("reason") {
        let s = |k: &str| obj.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default();
        return Err(MapError(format!("the TMF API answered error {}: {} {}", s("code"), s("reason"), s("message")).trim_end().to_string()));
    }
    Ok(obj)
}

/// A string attribute; a number is read as its text, anything else is kept unmapped.
fn string(r: &mut Reading, obj: &Map<String, Value>, name: &str) -> Option<String> {
    match obj.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        other => {
            r.unmapped(name, other.clone());
            None
        }
    }
}

/// The value of a named `changeRequestCharacteristic`, as text.
fn characteristic(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.get("changeRequestCharacteristic")?.as_array()?.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(name)).and_then(|c| match c.get("value")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Splits TMF's one text into title and description: the first line, then what follows the
/// blank line the hub writes after it.
fn split_description(text: &str) -> (&str, &str) {
    match text.split_once('\n') {
        Some((first, rest)) => (first.trim_end_matches('\r'), rest.trim_start_matches(['\r', '\n'])),
        None => (text, ""),
    }
}

impl ChangeMapping for Tmf655Change {
    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn read(&self, payload: &Value) -> Result<Change, MapError> {
        let p = profile();
        let obj = resource(payload)?;
        let id = match obj.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(MapError("the changeRequest has no id".into())),
        };
        let mut r = Reading::new(SYSTEM, id);

        if let Some(status) = string(&mut r, obj, "status").filter(|s| !s.trim().is_empty()) {
            r.leg.native_status = Some(status.clone());
            match p.status.read(&status) {
                Some(s) => {
                    r.change.status = s.status;
                    r.change.approval = s.approval;
                    r.change.on_hold = s.on_hold;
                }
                None => r.unmapped("status", status),
            }
        }
        if r.change.on_hold {
            if let Some(reason) = characteristic(obj, &p.hold_reason.characteristic).filter(|s| !s.trim().is_empty()) {
                r.change.hold_reason = Some(r.fit(&format!("changeRequestCharacteristic.{}", p.hold_reason.characteristic), &reason, HOLD_REASON_MAX));
            }
        }

        if let Some(t) = string(&mut r, obj, "requestType") {
            r.change.change_type = r.code("requestType", &t, &p.request_type);
        }
        if let Some(v) = string(&mut r, obj, "priority") {
            r.change.priority = r.code("priority", &v, &p.priority);
        }
        if let Some(v) = string(&mut r, obj, "impact") {
            r.change.impact = r.code("impact", &v, &p.impact);
        }
        if let Some(v) = string(&mut r, obj, "risk") {
            r.change.risk = r.code("risk", &v, &p.risk);
        }
        if let Some(v) = characteristic(obj, &p.urgency.characteristic) {
            r.change.urgency = r.code(&format!("changeRequestCharacteristic.{}", p.urgency.characteristic), &v, &p.urgency.map);
        }

        for (field, name) in [
            ("planned_start", "plannedStartTime"),
            ("planned_end", "plannedEndTime"),
            ("actual_start", "actualStartTime"),
            ("actual_end", "actualEndTime"),
            ("opened_at", "requestDate"),
            ("closed_at", "completionDate"),
        ] {
            let native = string(&mut r, obj, name);
            let t = r.instant(name, native.as_deref(), parse_iso);
            match field {
                "planned_start" => r.change.planned_start = t,
                "planned_end" => r.change.planned_end = t,
                "actual_start" => r.change.actual_start = t,
                "actual_end" => r.change.actual_end = t,
                "opened_at" => r.change.opened_at = t,
                _ => r.change.closed_at = t,
            }
        }
        // The attribute's name differs between implementations of v4.
        let updated_name = if obj.get("lastUpdate").is_some_and(|v| !v.is_null()) { "lastUpdate" } else { "lastUpdateDate" };
        let updated = string(&mut r, obj, updated_name);
        r.change.updated_at = r.instant(updated_name, updated.as_deref(), parse_iso);

        match obj.get("resolution") {
            None | Some(Value::Null) => {}
            Some(Value::Object(res)) => {
                if let Some(code) = res.get("code").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
                    if r.change.status.is_some_and(|s| s.takes_outcome()) {
                        r.change.outcome = r.code("resolution.code", code, &p.outcome);
                    } else {
                        r.unmapped("resolution.code", code);
                    }
                }
                if let Some(notes) = res.get("description").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
                    r.change.outcome_notes = Some(r.fit("resolution.description", notes, TEXT_MAX));
                }
            }
            Some(other) => r.unmapped("resolution", other.clone()),
        }

        for (array, untyped_is_ci) in [("impactEntity", false), ("targetEntity", true)] {
            let Some(list) = obj.get(array) else { continue };
            let Some(list) = list.as_array() else {
                r.unmapped(array, list.clone());
                continue;
            };
            for (i, entity) in list.iter().enumerate() {
                let id = entity.get("id").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
                let kind = entity.get("@referredType").and_then(Value::as_str).map(loose).unwrap_or_default();
                let is_service = kind.contains("service");
                let is_ci = p.entities.ci_types.contains(&kind) || p.entities.ci_type_prefixes.iter().any(|t| kind.starts_with(t.as_str())) || (kind.is_empty() && untyped_is_ci);
                let field = format!("{array}[{i}]");
                match id {
                    Some(id) if is_service => r.affected(Affected::Service, &field, id),
                    Some(id) if is_ci => r.affected(Affected::Ci, &field, id),
                    _ => r.unmapped(&field, entity.clone()),
                }
            }
        }

        if let Some(external) = string(&mut r, obj, "externalId") {
            match external.trim().parse::<ChangeRef>() {
                Ok(reference) => r.change.reference = Some(reference),
                Err(_) if external.trim().is_empty() => {}
                Err(_) => r.unmapped("externalId", external),
            }
        }

        let description = string(&mut r, obj, "description").unwrap_or_default();
        match string(&mut r, obj, "name").filter(|n| !n.trim().is_empty()) {
            Some(name) => {
                r.change.title = r.fit("name", &name, TITLE_MAX);
                r.change.description = r.fit("description", &description, TEXT_MAX);
            }
            None => {
                let (title, rest) = split_description(&description);
                if title.chars().count() > TITLE_MAX || rest.chars().count() > TEXT_MAX {
                    // Too long to split into the canonical fields: the whole text is kept.
                    r.unmapped("description", description.clone());
                }
                r.change.title = title.chars().take(TITLE_MAX).collect();
                r.change.description = rest.chars().take(TEXT_MAX).collect();
            }
        }
        Ok(r.finish())
    }

    /// The `POST /changeRequest` body.
    fn create_body(&self, c: &Change) -> Value {
        let p = profile();
        let leg = leg_of(c, SYSTEM);
        let mut b = Map::new();
        b.insert("@type".into(), json!("ChangeRequest"));
        if let Some(reference) = &c.reference {
            b.insert("externalId".into(), json!(reference.as_str()));
        }
        let text = if c.description.is_empty() { c.title.clone() } else { format!("{}\n\n{}", c.title, c.description) };
        if !text.is_empty() {
            b.insert("description".into(), json!(text));
        }
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                b.insert(k.to_string(), Value::String(v));
            }
        };
        put("requestType", c.change_type.and_then(|t| p.request_type.write(t, kept(leg, "requestType"))));
        // The partner's own spelling is kept while it still says the same (`held` for a hold,
        // `Pending Approval` for authorize).
        let native_status = leg.and_then(|l| l.native_status.as_deref()).and_then(|n| p.status.read(n).map(|r| (n, r)));
        let status = if c.on_hold {
            native_status.filter(|(_, r)| r.on_hold).map(|(n, _)| n.to_string()).or_else(|| Some(p.status.on_hold.clone()))
        } else {
            c.status.and_then(|s| {
                let same = native_status.filter(|(_, r)| r.status == Some(s) && !r.on_hold).map(|(n, _)| n.to_string());
                same.or_else(|| p.status.from_canonical.get(s.as_str()).cloned())
            })
        };
        put("status", status);
        put("priority", c.priority.and_then(|v| p.priority.write(v, kept(leg, "priority"))));
        put("impact", c.impact.and_then(|v| p.impact.write(v, kept(leg, "impact"))));
        put("risk", c.risk.and_then(|v| p.risk.write(v, kept(leg, "risk"))));
        put("plannedStartTime", c.planned_start.as_ref().map(iso));
        put("plannedEndTime", c.planned_end.as_ref().map(iso));
        put("actualStartTime", c.actual_start.as_ref().map(iso));
        put("actualEndTime", c.actual_end.as_ref().map(iso));
        put("requestDate", c.opened_at.as_ref().map(iso));
        put("completionDate", c.closed_at.as_ref().map(iso));

        let mut resolution = Map::new();
        if let Some(code) = c.outcome.and_then(|o| p.outcome.write(o, kept(leg, "resolution.code"))) {
            resolution.insert("code".into(), json!(code));
        }
        if let Some(notes) = c.outcome_notes.as_ref().filter(|n| !n.is_empty()) {
            resolution.insert("description".into(), json!(notes));
        }
        if !resolution.is_empty() {
            b.insert("resolution".into(), Value::Object(resolution));
        }

        let entity = |id: &String, kind: &str| json!({ "id": id, "@referredType": kind });
        if !c.services.is_empty() {
            b.insert("impactEntity".into(), c.services.iter().map(|s| entity(s, &p.entities.service_write_type)).collect());
        }
        if !c.cis.is_empty() {
            b.insert("targetEntity".into(), c.cis.iter().map(|s| entity(s, &p.entities.ci_write_type)).collect());
        }

        let mut characteristics = Vec::new();
        let urgency_field = format!("changeRequestCharacteristic.{}", p.urgency.characteristic);
        if let Some(u) = c.urgency.and_then(|u| p.urgency.map.write(u, kept(leg, &urgency_field))) {
            characteristics.push(json!({ "name": p.urgency.characteristic, "value": u, "valueType": "string" }));
        }
        if let Some(reason) = c.hold_reason.as_ref().filter(|_| c.on_hold) {
            characteristics.push(json!({ "name": p.hold_reason.characteristic, "value": reason, "valueType": "string" }));
        }
        if !characteristics.is_empty() {
            b.insert("changeRequestCharacteristic".into(), Value::Array(characteristics));
        }
        Value::Object(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(fields: Value) -> Change {
        let mut res = json!({ "id": "7d1f3c2a", "href": "/tmf-api/changeManagement/v4/changeRequest/7d1f3c2a" });
        if let (Some(r), Some(f)) = (res.as_object_mut(), fields.as_object()) {
            r.extend(f.clone());
        }
        Tmf655Change.read(&res).expect("maps")
    }

    #[test]
    fn profile_loads_in_loose_spelling_and_maps_every_value_out() {
        let p = profile();
        for key in p.status.to_canonical.keys().chain(p.request_type.to_canonical.keys()).chain(p.priority.to_canonical.keys()).chain(p.risk.to_canonical.keys()) {
            assert_eq!(*key, loose(key), "profile keys are written loosely");
        }
        for s in ChangeStatus::ALL {
            let native = p.status.from_canonical.get(s.as_str()).unwrap_or_else(|| panic!("{s} maps out"));
            assert_eq!(p.status.read(native).and_then(|r| r.status), Some(*s));
        }
        assert!(p.status.read(&p.status.on_hold).is_some_and(|r| r.on_hold));
        for v in 1..=5 {
            let risk = Risk::new(v).unwrap();
            assert_eq!(p.risk.read(&p.risk.write(risk, None).unwrap()), Some(risk));
        }
    }

    #[test]
    fn free_string_statuses_read_case_insensitively_and_unknown_ones_stay_unmapped() {
        for spelling in ["inProgress", "In Progress", "IN_PROGRESS", "in-progress"] {
            assert_eq!(read(json!({"status": spelling})).status, Some(ChangeStatus::Implement), "{spelling}");
        }
        let c = read(json!({"status": "PendingApproval"}));
        assert_eq!((c.status, c.approval), (Some(ChangeStatus::Authorize), Some(Approval::Requested)));
        let c = read(json!({"status": "awaitingCustomerSignOff"}));
        assert_eq!(c.status, None);
        assert_eq!(c.legs[0].unmapped.get("status"), Some(&json!("awaitingCustomerSignOff")));
        assert_eq!(c.legs[0].native_status.as_deref(), Some("awaitingCustomerSignOff"));
    }

    #[test]
    fn the_title_travels_as_the_first_line_of_the_description() {
        let c = read(json!({"description": "Replace PSU in rack B4\r\n\r\nBoth supplies fail their self-test.\nVendor ticket 88121."}));
        assert_eq!(c.title, "Replace PSU in rack B4");
        assert_eq!(c.description, "Both supplies fail their self-test.\nVendor ticket 88121.");
        let body = Tmf655Change.create_body(&c);
        assert_eq!(body["description"], "Replace PSU in rack B4\n\nBoth supplies fail their self-test.\nVendor ticket 88121.");
        let c = read(json!({"name": "Replace PSU", "description": "Line one\nLine two"}));
        assert_eq!((c.title.as_str(), c.description.as_str()), ("Replace PSU", "Line one\nLine two"));
    }

    #[test]
    fn entities_are_sorted_by_type_and_odd_ones_kept() {
        let c = read(json!({
            "impactEntity": [{"id": "svc-email", "@referredType": "CustomerFacingService"}, {"id": "prod-9", "@referredType": "Product"}, {"id": "x"}],
            "targetEntity": [{"id": "mx-01", "@referredType": "LogicalResource"}, {"id": "mx-02"}, {"@referredType": "Resource"}]
        }));
        assert_eq!(c.services, vec!["svc-email"]);
        assert_eq!(c.cis, vec!["mx-01", "mx-02"]);
        let u = &c.legs[0].unmapped;
        assert!(u.contains_key("impactEntity[1]") && u.contains_key("impactEntity[2]") && u.contains_key("targetEntity[2]"), "{u:?}");
    }

    #[test]
    fn instants_without_a_zone_and_error_bodies() {
        let c = read(json!({"plannedStartTime": "2024-06-01 22:00:00", "plannedEndTime": "2024-06-02T01:00:00+02:00"}));
        assert_eq!(c.planned_start, None);
        assert_eq!(c.legs[0].unmapped.get("plannedStartTime"), Some(&json!("2024-06-01 22:00:00")));
        assert_eq!(c.planned_end.map(|t| iso(&t)).as_deref(), Some("2024-06-01T23:00:00.000Z"));
        let e = Tmf655Change.read(&json!({"code": "60", "reason": "Resource not found", "message": "ChangeRequest 42 not found", "status": "404"})).unwrap_err();
        assert_eq!(e.0, "the TMF API answered error 60: Resource not found ChangeRequest 42 not found");
        assert!(Tmf655Change.read(&json!({"description": "no id"})).is_err());
        assert!(Tmf655Change.read(&json!([])).is_err());
        assert!(Tmf655Change.read(&json!(7)).is_err());
    }
}
