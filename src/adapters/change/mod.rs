//! Changes: each supplier system's change record <-> the canonical change of
//! `schemas/change.v1.json`.
//!
//! One module per system (ServiceNow `change_request`, Remedy `CHG:` forms, TMF655
//! `changeRequest`), each driven by a declarative profile under `adapters/<system>/`. The rules
//! every mapping follows:
//! * a native value the profile cannot read is kept in the leg's `unmapped`, by native field name,
//!   and the canonical field stays null: never guessed, never dropped;
//! * a native value read many-to-one (Remedy's `Expedited` timing read as `normal`) is kept in the
//!   leg's `native`, and a write back to the same system keeps it while it still means what the
//!   canonical change says;
//! * a payload that is not a change of the system at all is a [`MapError`], never a panic.
//!
//! Coordinating one change across several suppliers is not done here: this is translation only.

pub mod client;
pub mod jira;
pub mod remedy;
pub mod servicenow;
pub mod tmf655;

pub use client::ChangeClient;

use super::MapError;
use crate::domain::change::{Change, ChangeLeg};
use crate::domain::time;
use crate::validation::{self, Doc};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Display;

/// Translation between one system's change records and the canonical change. Pure: no I/O.
pub trait ChangeMapping: Send + Sync {
    fn system(&self) -> &'static str;
    /// Reads a change from any payload shape the system produces.
    fn read(&self, payload: &Value) -> Result<Change, MapError>;
    /// The body that creates the change at the supplier (its create form or endpoint).
    fn create_body(&self, change: &Change) -> Value;
}

/// The systems whose changes the hub maps.
pub const SYSTEMS: &[&str] = &["servicenow", "remedy", "tmf655", "jira"];

/// The change mapping of a system, if the hub has one.
pub fn mapping_for(system: &str) -> Option<&'static dyn ChangeMapping> {
    match system {
        "servicenow" => Some(&servicenow::ServiceNowChange),
        "remedy" => Some(&remedy::RemedyChange),
        "tmf655" => Some(&tmf655::Tmf655Change),
        "jira" => Some(&jira::JiraChange),
        _ => None,
    }
}

fn mapping(system: &str) -> Result<&'static dyn ChangeMapping, MapError> {
    mapping_for(system).ok_or_else(|| MapError(format!("system `{system}` has no change mapping; change mappings exist for {}", SYSTEMS.join(", "))))
}

fn violations(v: &[validation::Violation]) -> String {
    let shown: Vec<String> = v.iter().take(5).map(|v| format!("{} {}", if v.pointer.is_empty() { "/" } else { &v.pointer }, v.message)).collect();
    let more = if v.len() > 5 { format!(" (and {} more)", v.len() - 5) } else { String::new() };
    format!("{}{more}", shown.join("; "))
}

/// What `siam-hub map --kind change` prints for a native payload: the canonical change, checked
/// against its schema so nothing invalid ever leaves the hub.
pub fn canonical_document(system: &str, payload: &Value) -> Result<Value, MapError> {
    let change = mapping(system)?.read(payload)?;
    let doc = serde_json::to_value(&change).map_err(|e| MapError(format!("cannot render the canonical change: {e}")))?;
    validation::validate(Doc::Change, &doc).map_err(|v| MapError(format!("the mapped change breaks schemas/change.v1.json: {}", violations(&v))))?;
    Ok(doc)
}

/// What `siam-hub map --kind change --reverse` prints for a canonical change document.
pub fn native_document(system: &str, canonical: &Value) -> Result<Value, MapError> {
    let mapping = mapping(system)?;
    validation::validate(Doc::Change, canonical).map_err(|v| MapError(format!("not a canonical change: {}", violations(&v))))?;
    let change: Change = serde_json::from_value(canonical.clone()).map_err(|e| MapError(format!("not a canonical change: {e}")))?;
    change.check().map_err(|e| MapError(format!("not a coherent change: {e}")))?;
    Ok(mapping.create_body(&change))
}

/// A code table of a profile: native value -> canonical value, canonical -> the native value the
/// hub writes, and (ServiceNow display mode) the labels a stored value may arrive as.
#[derive(Debug, Deserialize)]
pub(crate) struct CodeMap<T> {
    pub to_canonical: HashMap<String, T>,
    pub from_canonical: HashMap<String, String>,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    /// Free-string vocabularies (TMF) are read in their [`loose`] spelling; the keys of
    /// `to_canonical` are written in that form.
    #[serde(default)]
    pub loose: bool,
}

impl<T> CodeMap<T> {
    /// A display label turned back into its stored value; an unknown label stays as it is (and
    /// will be reported unmapped).
    pub fn stored<'a>(&'a self, label: &'a str) -> &'a str {
        self.labels.get(label).map(String::as_str).unwrap_or(label)
    }
}

impl<T: Copy + PartialEq + Display> CodeMap<T> {
    pub fn read(&self, native: &str) -> Option<T> {
        if self.loose {
            self.to_canonical.get(&loose(native)).copied()
        } else {
            self.to_canonical.get(native).copied()
        }
    }

    /// The native value to write for `canonical`: the value the supplier already holds (`kept`)
    /// when it reads as the same canonical value, else the profile's own.
    pub fn write(&self, canonical: T, kept: Option<&str>) -> Option<String> {
        if let Some(k) = kept.filter(|k| self.read(k) == Some(canonical)) {
            return Some(k.to_string());
        }
        self.from_canonical.get(&canonical.to_string()).cloned()
    }
}

/// Compares free-string values the way TMF partners spell them: case, spaces, `_` and `-`
/// do not matter (`In Progress`, `inProgress` and `in_progress` are one value).
pub(crate) fn loose(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, ' ' | '_' | '-')).flat_map(char::to_lowercase).collect()
}

/// A change being read from one native payload, with its single leg.
pub(crate) struct Reading {
    pub change: Change,
    pub leg: ChangeLeg,
}

pub(crate) const TITLE_MAX: usize = 160;
pub(crate) const TEXT_MAX: usize = 32000;
pub(crate) const HOLD_REASON_MAX: usize = 4000;
pub(crate) const REF_MAX: usize = 200;

/// Which list of affected things an id goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Affected {
    Service,
    Ci,
}

impl Reading {
    pub fn new(system: &str, native_id: String) -> Self {
        Reading {
            change: Change::blank(),
            leg: ChangeLeg {
                supplier: None,
                system: system.to_string(),
                native_id,
                native_number: None,
                native_status: None,
                native: Default::default(),
                unmapped: Default::default(),
            },
        }
    }

    pub fn unmapped(&mut self, field: &str, value: impl Into<Value>) {
        self.leg.unmapped.insert(field.to_string(), value.into());
    }

    pub fn keep_native(&mut self, field: &str, value: impl Into<Value>) {
        self.leg.native.insert(field.to_string(), value.into());
    }

    /// Reads a coded value. Empty means "not set" (no value, nothing unmapped); a value the
    /// table does not know is kept unmapped; a value read many-to-one is kept on the leg.
    pub fn code<T: Copy + PartialEq + Display>(&mut self, field: &str, native: &str, map: &CodeMap<T>) -> Option<T> {
        if native.trim().is_empty() {
            return None;
        }
        match map.read(native) {
            Some(v) => {
                if map.write(v, None).as_deref() != Some(native) {
                    self.keep_native(field, native);
                }
                Some(v)
            }
            None => {
                self.unmapped(field, native);
                None
            }
        }
    }

    /// Text cut to what the canonical field holds; the whole text is kept unmapped when cut.
    pub fn fit(&mut self, field: &str, text: &str, max: usize) -> String {
        if text.chars().count() <= max {
            return text.to_string();
        }
        self.unmapped(field, text);
        text.chars().take(max).collect()
    }

    /// An instant the supplier gave in a form the hub can read; anything else is kept unmapped.
    pub fn instant(&mut self, field: &str, native: Option<&str>, parse: fn(&str) -> Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let s = native.map(str::trim).filter(|s| !s.is_empty())?;
        let t = parse(s);
        if t.is_none() {
            self.unmapped(field, s);
        }
        t
    }

    /// Adds an affected service (or CI) once, in the order the supplier lists them. An id longer
    /// than the canonical model holds is kept unmapped rather than cut: a cut id names nothing.
    pub fn affected(&mut self, kind: Affected, field: &str, id: &str) {
        let id = id.trim();
        if id.chars().count() > REF_MAX {
            self.unmapped(field, id);
            return;
        }
        let list = match kind {
            Affected::Service => &mut self.change.services,
            Affected::Ci => &mut self.change.cis,
        };
        if !id.is_empty() && !list.iter().any(|x| x == id) {
            list.push(id.to_string());
        }
    }

    pub fn finish(mut self) -> Change {
        self.change.legs = vec![self.leg];
        self.change
    }
}

/// An ISO 8601 instant with an offset, with or without the colon (`+00:00`, `+0000`, `Z`).
/// Without any zone it is not read: the hub never guesses a time zone.
pub(crate) fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").ok().map(|t| t.with_timezone(&Utc))
}

/// The canonical rendering, for systems that take ISO 8601 UTC.
pub(crate) fn iso(t: &DateTime<Utc>) -> String {
    time::rfc3339(t)
}

/// The leg of `system` in a canonical change, whose native values a write back keeps.
pub(crate) fn leg_of<'a>(change: &'a Change, system: &str) -> Option<&'a ChangeLeg> {
    change.legs.iter().find(|l| l.system == system)
}

/// A native value kept on a leg, as text.
pub(crate) fn kept<'a>(leg: Option<&'a ChangeLeg>, field: &str) -> Option<&'a str> {
    leg.and_then(|l| l.native.get(field)).and_then(Value::as_str)
}

/// Values no supplier should send in any field, and every mapping must still read: the result
/// is a valid canonical change with what it cannot read kept unmapped.
#[cfg(test)]
pub(crate) fn odd_values() -> Vec<Value> {
    use serde_json::json;
    vec![
        json!(null),
        json!(""),
        json!(" "),
        json!(5),
        json!(-1.5),
        json!(true),
        json!([]),
        json!([1, {"a": 2}]),
        json!({}),
        json!({"value": 3}),
        json!({"name": 3}),
        json!("x".repeat(40_000)),
        json!("Ω\u{0}\n\r"),
    ]
}

/// A scheduled, approved normal change with a window, as the change clients' tests send it.
#[cfg(test)]
pub(crate) fn scheduled_change(reference: &str) -> Change {
    use crate::domain::change::{Approval, ChangeStatus, ChangeType};
    let at = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).ok();
    let mut c = Change::blank();
    c.reference = reference.parse().ok();
    c.title = "Replace the core switch in DC2".into();
    c.description = "Swap the failing line card; traffic moves to DC1 meanwhile.".into();
    c.change_type = Some(ChangeType::Normal);
    c.status = Some(ChangeStatus::Scheduled);
    c.approval = Some(Approval::Approved);
    c.planned_start = at("2030-05-20T22:00:00Z");
    c.planned_end = at("2030-05-21T02:00:00Z");
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iso_instants_need_a_zone() {
        assert_eq!(parse_iso("2024-05-20T22:00:00.000+0000").map(|t| iso(&t)).as_deref(), Some("2024-05-20T22:00:00.000Z"));
        assert_eq!(parse_iso("2024-05-20T23:30:00+01:30").map(|t| iso(&t)).as_deref(), Some("2024-05-20T22:00:00.000Z"));
        assert_eq!(parse_iso("2024-05-20T22:00:00.123Z").map(|t| iso(&t)).as_deref(), Some("2024-05-20T22:00:00.123Z"));
        assert_eq!(parse_iso("2024-05-20T22:00:00"), None);
        assert_eq!(parse_iso("2024-05-20 22:00:00"), None);
        assert_eq!(parse_iso("soon"), None);
    }

    #[test]
    fn loose_spelling_ignores_case_and_separators() {
        assert_eq!(loose("In Progress"), "inprogress");
        assert_eq!(loose("in_progress"), loose("inProgress"));
        assert_eq!(loose("on-hold"), "onhold");
    }

    #[test]
    fn every_system_has_a_mapping_and_unknown_ones_a_clear_error() {
        for s in SYSTEMS {
            assert_eq!(mapping_for(s).map(|m| m.system()), Some(*s));
        }
        let e = canonical_document("zendesk", &json!({})).unwrap_err();
        assert!(e.0.contains("no change mapping"), "{e}");
    }

    /// Every field the mappings read, set to every odd value in turn: the result is a valid
    /// canonical change (what cannot be read is kept unmapped), never an invalid one or a panic.
    #[test]
    fn odd_values_in_any_field_still_give_a_valid_change() {
        let long = "x".repeat(40_000);
        let odd = odd_values();
        let systems: [(&str, Value, &[&str]); 3] = [
            (
                "servicenow",
                json!({"sys_id": "0123456789abcdef0123456789abcdef"}),
                &[
                    "number",
                    "state",
                    "approval",
                    "type",
                    "on_hold",
                    "on_hold_reason",
                    "risk",
                    "impact",
                    "urgency",
                    "priority",
                    "start_date",
                    "end_date",
                    "work_start",
                    "work_end",
                    "opened_at",
                    "sys_updated_on",
                    "closed_at",
                    "close_code",
                    "close_notes",
                    "business_service",
                    "cmdb_ci",
                    "correlation_id",
                    "short_description",
                    "description",
                    "sys_class_name",
                ],
            ),
            (
                "remedy",
                json!({"Request ID": "CRQ000000000001"}),
                &[
                    "Infrastructure Change ID",
                    "Change Request Status",
                    "Status",
                    "Status Reason",
                    "Change Timing",
                    "Change Type",
                    "Risk Level",
                    "Impact",
                    "Urgency",
                    "Priority",
                    "Scheduled Start Date",
                    "Scheduled End Date",
                    "Actual Start Date",
                    "Actual End Date",
                    "ServiceCI",
                    "Submit Date",
                    "Last Modified Date",
                    "Vendor Ticket Number",
                    "Status-History",
                    "Description",
                    "Detailed Description",
                ],
            ),
            (
                "tmf655",
                json!({"id": "cr-1"}),
                &[
                    "status",
                    "requestType",
                    "priority",
                    "impact",
                    "risk",
                    "plannedStartTime",
                    "plannedEndTime",
                    "actualStartTime",
                    "actualEndTime",
                    "requestDate",
                    "completionDate",
                    "lastUpdate",
                    "lastUpdateDate",
                    "resolution",
                    "impactEntity",
                    "targetEntity",
                    "changeRequestCharacteristic",
                    "externalId",
                    "name",
                    "description",
                ],
            ),
        ];
        for (system, base, fields) in systems {
            for field in fields {
                for value in &odd {
                    let mut payload = base.clone();
                    payload[*field] = value.clone();
                    if let Err(e) = canonical_document(system, &payload) {
                        panic!("{system} `{field}` = {}: {e}", value.to_string().chars().take(60).collect::<String>());
                    }
                }
            }
        }
        // Related fields together: a hold with an oversized reason, an outcome at the wrong stage.
        let sn = json!({"sys_id": "0123456789abcdef0123456789abcdef", "on_hold": "true", "on_hold_reason": long, "state": "-1", "close_code": "successful"});
        assert!(canonical_document("servicenow", &sn).is_ok());
        let tmf = json!({"id": "cr-1", "status": "held", "changeRequestCharacteristic": [{"name": "holdReason", "value": long}], "impactEntity": [{"id": long, "@referredType": "Service"}]});
        assert!(canonical_document("tmf655", &tmf).is_ok());
    }

    #[test]
    fn reverse_refuses_documents_that_are_not_canonical_changes() {
        let e = native_document("servicenow", &json!({"title": "x"})).unwrap_err();
        assert!(e.0.starts_with("not a canonical change:"), "{e}");
        let e = native_document("servicenow", &json!([1, 2])).unwrap_err();
        assert!(e.0.starts_with("not a canonical change:"), "{e}");
    }
}
