//! TMF621 TroubleTicket resources and event notifications <-> canonical model.
//!
//! One reader takes every shape listed in `reference/suppliers/tmf621.md`, whatever the
//! instance is configured as: v4 (`externalId`, `statusChange`, flat `relatedParty`) and v5
//! (`externalIdentifier[]`, `statusChangeHistory` with either member spelling, nested
//! `partyOrPartyRole` / `entity`), ServiceNow's dialect (non-ISO dates, `New`/`Open`, `"2 - High"`,
//! roles in `@referredType`, `note[].@type`), and event envelopes (`event.troubleTicket`, v4
//! `timeOcurred` and v5 `timeOccurred`, `...StateChangeEvent` and `...AttributeChangeEvent`
//! aliases). What the hub *writes* follows the instance's version and flavour.
//!
//! Native field values are normalised on reading to the spelling the hub writes (ServiceNow's
//! read-only `"2 - High"` becomes the `"2"` it accepts, `Open` becomes `inProgress`), so the
//! leg's baseline compares like with like and a flavour's rendering is never taken for a change.
//! The raw status stays on the leg. A value with no mapping is kept as `unmapped`, never guessed,
//! except ServiceNow's incident state labels (`On Hold`, `Canceled`...), whose meaning is evident:
//! where the instance does not map them they are read by the profile's `status.inferred` table and
//! kept on the leg as inferred, so the record keeps following the supplier.
//!
//! Decisions where TMF leaves a choice (each documented in `adapters/tmf621/profile.json`):
//! - `severity` is the canonical impact (Critical/Major/Minor); `priority` carries the hub's
//!   priority label and is hub-owned (TMF has no urgency to derive a priority change from).
//!   Impact and urgency also travel in `troubleTicketCharacteristic` where the instance has it.
//! - `pending` / `held` are `on_hold`; the hold reason travels as the `statusChangeReason` label.
//! - `rejected` is the supplier refusing the ticket: no canonical status, the leg is closed with
//!   the reason (see [`Canonical::handed_back`]).
//! - TMF notes have no visibility: a note is public unless its `@type` is the instance's
//!   private-note type (ServiceNow `work_notes`); internal hub notes are only ever written as
//!   that type, and never sent where the instance declares none.

use crate::adapters::{Canonical, MapError, NativeAttachment, NativeNote, NativeRecord};
use crate::config::{Tmf621Settings, TmfFlavour, TmfNotePatch, TmfVersion};
use crate::domain::*;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// Native field names (TMF attribute names where there is one).
pub const F_STATUS: &str = "status";
pub const F_REASON: &str = "statusChangeReason";
pub const F_NAME: &str = "name";
pub const F_DESCRIPTION: &str = "description";
pub const F_SEVERITY: &str = "severity";
pub const F_PRIORITY: &str = "priority";
/// The affected CI, held in `relatedEntity[]`.
pub const F_CI: &str = "ci";
/// Prefix of fields held in `troubleTicketCharacteristic[]` (`characteristic.<name>`).
pub const F_CHAR: &str = "characteristic.";

#[derive(Debug, Deserialize)]
pub struct StatusTable {
    pub to_canonical: HashMap<String, String>,
    pub from_canonical: HashMap<String, String>,
    #[serde(rename = "enum")]
    pub values: Vec<String>,
    /// Labels outside the enum read by their evident meaning when nothing maps them (ServiceNow's
    /// incident state labels), marked as inferred on the leg.
    #[serde(default)]
    pub inferred: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct HoldTable {
    pub held_for: Vec<String>,
    pub default: HashMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct SeverityTable {
    pub labels: Vec<String>,
    pub aliases: BTreeMap<String, u8>,
}

#[derive(Debug, Deserialize)]
pub struct PriorityTable {
    pub labels: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct CharacteristicNames {
    pub impact: String,
    pub urgency: String,
    pub category: String,
    pub resolution_code: String,
}

#[derive(Debug, Deserialize)]
pub struct Roles {
    pub caller: Vec<String>,
    pub assignee: Vec<String>,
    pub ci: Vec<String>,
    pub service: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct FlavourProfile {
    pub base_path: String,
    pub status_labels: BTreeMap<String, String>,
    pub severity_is_priority: bool,
    pub severity_labels: Vec<String>,
    pub private_note_type: String,
    pub public_note_type: String,
    pub note_patch: TmfNotePatch,
    pub ticket_type: String,
}

#[derive(Debug, Deserialize)]
pub struct Flavours {
    pub servicenow: FlavourProfile,
}

/// The mapping profile in `adapters/tmf621/profile.json`.
#[derive(Debug, Deserialize)]
pub struct Profile {
    pub status: StatusTable,
    pub hold: HoldTable,
    pub severity: SeverityTable,
    pub priority: PriorityTable,
    pub characteristics: CharacteristicNames,
    pub resolution_codes: Vec<String>,
    pub roles: Roles,
    pub flavours: Flavours,
}

pub fn profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| serde_json::from_str(include_str!("../../../adapters/tmf621/profile.json")).expect("adapters/tmf621/profile.json is valid (checked by tests)"))
}

/// A supplier instance's view of the profile: its version, flavour and vocabularies.
#[derive(Debug, Clone)]
pub struct Instance {
    pub version: TmfVersion,
    pub flavour: TmfFlavour,
    pub base_path: String,
    /// `severity` labels, indexed by impact - 1 (or by priority - 1 when `severity_is_priority`).
    pub severity_labels: Vec<String>,
    /// ServiceNow: `severity` is the ServiceNow priority, written as `1`..`5`.
    pub severity_is_priority: bool,
    severity_aliases: Vec<(String, u8)>,
    pub priority_labels: Vec<String>,
    /// Whether the hub writes `priority` at all (ServiceNow computes it).
    pub writes_priority: bool,
    status_map: Vec<(String, String)>,
    status_labels: Vec<(String, String)>,
    pub characteristics: bool,
    pub private_note_type: Option<String>,
    pub public_note_type: Option<String>,
    pub note_patch: TmfNotePatch,
    pub ticket_type: String,
}

impl Default for Instance {
    fn default() -> Self {
        Instance::new(&Tmf621Settings::default())
    }
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

impl Instance {
    pub fn new(s: &Tmf621Settings) -> Instance {
        let p = profile();
        let sn = (s.flavour == TmfFlavour::Servicenow).then_some(&p.flavours.servicenow);
        let base_path = s.base_path.clone().unwrap_or_else(|| match (sn, s.version) {
            (Some(f), _) => f.base_path.clone(),
            (None, TmfVersion::V4) => "/tmf-api/troubleTicket/v4".into(),
            (None, TmfVersion::V5) => "/tmf-api/troubleTicket/v5".into(),
        });
        let severity_labels = match (&s.severity, sn) {
            (Some(l), _) if !l.is_empty() => l.clone(),
            (_, Some(f)) => f.severity_labels.clone(),
            _ => p.severity.labels.clone(),
        };
        let mut severity_aliases: Vec<(String, u8)> = p.severity.aliases.iter().map(|(k, v)| (squash(k), *v)).collect();
        severity_aliases.extend(s.severity_aliases.iter().map(|(k, v)| (squash(k), *v)));
        Instance {
            version: s.version,
            flavour: s.flavour,
            base_path: base_path.trim_end_matches('/').to_string(),
            severity_labels,
            severity_is_priority: sn.is_some_and(|f| f.severity_is_priority),
            severity_aliases,
            priority_labels: s.priority.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| p.priority.labels.clone()),
            writes_priority: sn.is_none(),
            status_map: s.status_map.iter().map(|(k, v)| (squash(k), v.clone())).collect(),
            status_labels: sn.map(|f| f.status_labels.iter().map(|(k, v)| (squash(k), v.clone())).collect()).unwrap_or_default(),
            characteristics: s.characteristics.unwrap_or(s.version == TmfVersion::V5),
            private_note_type: s.private_note_type.clone().or_else(|| sn.map(|f| f.private_note_type.clone())),
            public_note_type: s.public_note_type.clone().or_else(|| sn.map(|f| f.public_note_type.clone())),
            note_patch: s.note_patch.or(sn.map(|f| f.note_patch)).unwrap_or(TmfNotePatch::Full),
            ticket_type: s.ticket_type.clone().or_else(|| sn.map(|f| f.ticket_type.clone())).unwrap_or_else(|| "incident".into()),
        }
    }

    pub fn is_servicenow(&self) -> bool {
        self.flavour == TmfFlavour::Servicenow
    }

    /// A status as the hub writes it: the flavour's read spellings and case variants of the
    /// TMF enum become the enum value; anything else stays as sent.
    pub fn normalise_status(&self, raw: &str) -> String {
        let key = squash(raw);
        if let Some((_, v)) = self.status_labels.iter().find(|(k, _)| *k == key) {
            return v.clone();
        }
        profile().status.values.iter().find(|v| squash(v) == key).cloned().unwrap_or_else(|| raw.trim().to_string())
    }

    /// The canonical status (or `refused`) a normalised native status maps to.
    pub fn status_target(&self, status: &str) -> Option<String> {
        let key = squash(status);
        if let Some((_, v)) = self.status_map.iter().find(|(k, _)| *k == key) {
            return Some(v.clone());
        }
        profile().status.to_canonical.get(status).cloned()
    }

    /// The canonical status a label outside the configuration is read as (ServiceNow's flavour
    /// labels `On Hold`, `Canceled`...), when the instance's `status_map` and the TMF enum say
    /// nothing about it.
    pub fn inferred_status(&self, status: &str) -> Option<Status> {
        if self.status_target(status).is_some() {
            return None;
        }
        let key = squash(status);
        profile().status.inferred.iter().find(|(k, _)| squash(k) == key).and_then(|(_, v)| v.parse::<Status>().ok())
    }

    /// Level (1-based) of a label in `labels`: by label (any case), then `N` or `N - Label`.
    pub fn level_of(labels: &[String], raw: &str) -> Option<u8> {
        let key = squash(raw);
        if key.is_empty() {
            return None;
        }
        if let Some(i) = labels.iter().position(|l| squash(l) == key) {
            return u8::try_from(i + 1).ok();
        }
        let digits: String = raw.trim().chars().take_while(char::is_ascii_digit).collect();
        let rest = raw.trim()[digits.len()..].trim_start();
        let n: u8 = digits.parse().ok()?;
        // `2` or `2 - High`; not `2023-01-19`.
        (rest.is_empty() || rest.starts_with('-') && !rest[1..].starts_with(|c: char| c.is_ascii_digit())).then_some(n).filter(|n| (1..=labels.len()).contains(&usize::from(*n)))
    }

    /// `severity` as the hub writes it, or the raw value when it is not in the vocabulary.
    pub fn normalise_severity(&self, raw: &str) -> String {
        match self.severity_level(raw) {
            Some(n) if self.severity_is_priority => n.to_string(),
            Some(n) => self.severity_labels.get(usize::from(n) - 1).cloned().unwrap_or_else(|| raw.to_string()),
            None => raw.trim().to_string(),
        }
    }

    /// The impact (or, for ServiceNow, the priority) a `severity` value stands for.
    pub fn severity_level(&self, raw: &str) -> Option<u8> {
        Self::level_of(&self.severity_labels, raw).or_else(|| {
            if self.severity_is_priority {
                return None;
            }
            let key = squash(raw);
            self.severity_aliases.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).filter(|v| (1..=3).contains(v))
        })
    }

    pub fn normalise_priority(&self, raw: &str) -> String {
        match Self::level_of(&self.priority_labels, raw) {
            Some(n) => self.priority_labels.get(usize::from(n) - 1).cloned().unwrap_or_else(|| raw.to_string()),
            None => raw.trim().to_string(),
        }
    }

    /// The supplier's priority as a canonical level, for display (`siam-hub map`).
    pub fn priority_level(&self, fields: &BTreeMap<String, String>) -> Option<u8> {
        let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
        if self.severity_is_priority {
            Self::level_of(&self.severity_labels, get(F_SEVERITY))
        } else {
            Self::level_of(&self.priority_labels, get(F_PRIORITY))
        }
    }

    /// Whether a note of this `@type` is private at this supplier.
    pub fn is_private_type(&self, kind: &str) -> bool {
        let k = squash(kind);
        !k.is_empty() && (self.private_note_type.as_deref().is_some_and(|p| squash(p) == k) || k == "worknotes")
    }
}

// ---- Reading payloads ---------------------------------------------------------------------------

/// A notification envelope around a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInfo {
    /// The TMF621 event type, aliases resolved (`TroubleTicketStatusChangeEvent`...).
    pub kind: String,
    /// The type as sent.
    pub native_kind: String,
    pub id: Option<String>,
    /// `timeOccurred`, or v4's `timeOcurred`, or `eventTime`.
    pub time: Option<DateTime<Utc>>,
    /// AttributeValueChange events name the changed attributes.
    pub field_path: Option<String>,
}

/// Resolves the event-type spellings seen in the wild to the TMF621 names.
pub fn canonical_event_type(raw: &str) -> String {
    let t = raw.trim();
    let t = t.strip_prefix("TroubleTicket").map(|_| t.to_string()).unwrap_or_else(|| {
        // Listener paths use lowerCamel (`troubleTicketStatusChangeEvent`).
        let mut c = t.chars();
        c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
    });
    match t.as_str() {
        "TroubleTicketStateChangeEvent" => "TroubleTicketStatusChangeEvent".into(),
        "TroubleTicketAttributeChangeEvent" => "TroubleTicketAttributeValueChangeEvent".into(),
        "TroubleTicketCreateEventForCase" => "TroubleTicketCreateEvent".into(),
        _ => t,
    }
}

/// Finds the ticket in any payload shape: an event envelope, `{"troubleTicket": ...}`,
/// `{"result": ...}`, or the resource itself.
fn locate(payload: &Value) -> Result<(Option<EventInfo>, &Map<String, Value>), MapError> {
    let obj = payload.as_object().ok_or_else(|| MapError("a TMF621 payload must be a JSON object".into()))?;
    if let Some(event) = obj.get("event").and_then(Value::as_object) {
        let ticket = event.get("troubleTicket").and_then(Value::as_object).ok_or_else(|| MapError("the event carries no event.troubleTicket".into()))?;
        let native_kind = text(obj.get("eventType")).or_else(|| text(obj.get("@type"))).unwrap_or_default();
        let time = ["timeOccurred", "timeOcurred", "eventTime"].iter().find_map(|k| text(obj.get(*k)).and_then(|s| parse_time(&s)).map(|(t, _)| t));
        let info = EventInfo {
            kind: canonical_event_type(&native_kind),
            native_kind,
            id: text(obj.get("eventId")).or_else(|| text(obj.get("id"))),
            time,
            field_path: text(obj.get("fieldPath")),
        };
        return Ok((Some(info), ticket));
    }
    for key in ["troubleTicket", "result"] {
        if let Some(t) = obj.get(key).and_then(Value::as_object) {
            return Ok((None, t));
        }
    }
    Ok((None, obj))
}

/// A scalar as text; `null`, objects and arrays are not text.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Parses a TMF date: ISO 8601 with a zone (`Z`, `+01:00`, `+0100`), or a zone-less date (ISO or
/// ServiceNow's `2023-01-19 22:39:28`), read as UTC. The flag says whether a zone was given.
pub fn parse_time(s: &str) -> Option<(DateTime<Utc>, bool)> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some((t.with_timezone(&Utc), true));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some((t.with_timezone(&Utc), true));
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some((t.and_utc(), false));
        }
    }
    None
}

fn time_of(rec: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    match rec.get(key)? {
        // Some gateways send epoch milliseconds.
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        v => text(Some(v)).and_then(|s| parse_time(&s)).map(|(t, _)| t),
    }
}

/// A party or entity reference, flat (v4, ServiceNow) or nested (v5).
#[derive(Debug, Clone, Default, PartialEq)]
struct Reference {
    id: String,
    name: String,
    /// `role`, lower-cased without punctuation; ServiceNow's `@referredType` when no role.
    role: String,
    referred: String,
}

impl Reference {
    /// The name where there is one: the hub writes its values as both id and name, and a
    /// supplier's id may be an internal key (a ServiceNow sys_id) the hub never wrote.
    fn value(&self) -> Option<String> {
        non_empty(Some(self.name.clone())).or_else(|| non_empty(Some(self.id.clone())))
    }
    fn is(&self, roles: &[String]) -> bool {
        roles.iter().any(|r| squash(r) == self.role) || (self.role.is_empty() && roles.iter().any(|r| squash(r) == self.referred))
    }
}

fn references(rec: &Map<String, Value>, key: &str, inner: &str) -> Vec<Reference> {
    rec.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .map(|o| {
                    let target = o.get(inner).and_then(Value::as_object).unwrap_or(o);
                    let referred = text(target.get("@referredType")).or_else(|| text(o.get("@referredType"))).unwrap_or_default();
                    let role = non_empty(text(o.get("role"))).map(|r| squash(&r)).unwrap_or_else(|| squash(&referred));
                    Reference { id: text(target.get("id")).unwrap_or_default(), name: text(target.get("name")).unwrap_or_default(), role, referred: squash(&referred) }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The value of the first reference with a value, trying the roles in the profile's order
/// (ServiceNow lists empty slots with `"id":""`).
fn first_by_role(refs: &[Reference], roles: &[String]) -> Option<String> {
    roles.iter().find_map(|role| refs.iter().filter(|r| r.is(std::slice::from_ref(role))).find_map(Reference::value))
}

fn characteristics(rec: &Map<String, Value>) -> Vec<(String, String)> {
    rec.get("troubleTicketCharacteristic")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|c| {
                    let o = c.as_object()?;
                    let value = match o.get("value") {
                        Some(Value::Object(v)) => text(v.get("value")).or_else(|| text(v.get("id"))),
                        v => text(v),
                    };
                    Some((text(o.get("name"))?, value.unwrap_or_default()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The hub reference a ticket carries: v4 `externalId` or a v5 `externalIdentifier[].id` (either
/// accepted in both versions). Only a hub reference counts, so a customer's own id is ignored.
fn correlation(rec: &Map<String, Value>) -> Option<String> {
    let hub_ref = |s: String| s.trim().parse::<TicketRef>().ok().map(|r| r.to_string());
    if let Some(r) = text(rec.get("externalId")).and_then(hub_ref) {
        return Some(r);
    }
    rec.get("externalIdentifier").and_then(Value::as_array).into_iter().flatten().filter_map(|e| text(e.get("id"))).find_map(hub_ref)
}

/// The last entry of the status history: v4 `statusChange[]` or v5 `statusChangeHistory[]`,
/// whose members are spelt `changeDate`/`changeReason` or `statusChangeDate`/`statusChangeReason`.
fn last_change(rec: &Map<String, Value>) -> Option<(Option<DateTime<Utc>>, Option<String>)> {
    let last = rec.get("statusChangeHistory").or_else(|| rec.get("statusChange")).and_then(Value::as_array)?.last()?.as_object()?;
    let date = ["changeDate", "statusChangeDate"].iter().find_map(|k| time_of(last, k));
    let reason = ["changeReason", "statusChangeReason"].iter().find_map(|k| text(last.get(*k)));
    Some((date, reason))
}

/// A trouble ticket reduced to what the hub needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TmfTicket {
    pub id: String,
    pub href: Option<String>,
    pub correlation: Option<String>,
    pub status_raw: Option<String>,
    /// Synced fields, normalised (see the module docs); `""` when empty.
    pub fields: BTreeMap<String, String>,
    /// Carries `status` and `lastUpdate`: a full resource, not an event's partial ticket.
    pub complete: bool,
    pub caller: Option<String>,
    pub assigned: bool,
    pub created: Option<DateTime<Utc>>,
    pub last_update: Option<DateTime<Utc>>,
    pub resolution_date: Option<DateTime<Utc>>,
    pub status_change_date: Option<DateTime<Utc>>,
    pub event: Option<EventInfo>,
}

/// Reads one trouble ticket from any payload shape.
pub fn parse_ticket(inst: &Instance, payload: &Value) -> Result<TmfTicket, MapError> {
    let (event, rec) = locate(payload)?;
    let id = non_empty(text(rec.get("id"))).ok_or_else(|| MapError("the trouble ticket has no id".into()))?;
    let p = profile();
    let status_raw = non_empty(text(rec.get("status")));
    let mut fields = BTreeMap::new();
    let s = |k: &str| text(rec.get(k)).unwrap_or_default();
    fields.insert(F_STATUS.to_string(), status_raw.as_deref().map(|s| inst.normalise_status(s)).unwrap_or_default());
    // A server that leaves the top-level reason out still has it in its history.
    let reason = if rec.contains_key(F_REASON) { s(F_REASON) } else { last_change(rec).and_then(|(_, r)| r).unwrap_or_default() };
    fields.insert(F_REASON.to_string(), reason);
    fields.insert(F_NAME.to_string(), s(F_NAME));
    fields.insert(F_DESCRIPTION.to_string(), s(F_DESCRIPTION));
    fields.insert(F_SEVERITY.to_string(), inst.normalise_severity(&s(F_SEVERITY)));
    fields.insert(F_PRIORITY.to_string(), inst.normalise_priority(&s(F_PRIORITY)));
    let entities = references(rec, "relatedEntity", "entity");
    let ci = first_by_role(&entities, &p.roles.ci).unwrap_or_default();
    fields.insert(F_CI.to_string(), ci);
    // Only characteristics the ticket has: a v4 ticket without them reads the same every time.
    let c = &p.characteristics;
    for (name, value) in characteristics(rec) {
        if [&c.impact, &c.urgency, &c.category, &c.resolution_code].iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            let known = [&c.impact, &c.urgency, &c.category, &c.resolution_code].into_iter().find(|n| n.eq_ignore_ascii_case(&name)).cloned().unwrap_or(name);
            fields.insert(format!("{F_CHAR}{known}"), value.trim().to_string());
        }
    }
    let parties = references(rec, "relatedParty", "partyOrPartyRole");
    let caller = first_by_role(&parties, &p.roles.caller);
    let assigned = parties.iter().any(|r| r.is(&p.roles.assignee) && r.value().is_some());
    let last_update = time_of(rec, "lastUpdate");
    Ok(TmfTicket {
        href: non_empty(text(rec.get("href"))),
        correlation: correlation(rec),
        complete: status_raw.is_some() && last_update.is_some(),
        status_raw,
        fields,
        caller,
        assigned,
        created: time_of(rec, "creationDate"),
        last_update,
        resolution_date: time_of(rec, "resolutionDate"),
        status_change_date: time_of(rec, "statusChangeDate").or_else(|| last_change(rec).and_then(|(d, _)| d)),
        event,
        id,
    })
}

impl From<TmfTicket> for NativeRecord {
    fn from(t: TmfTicket) -> Self {
        NativeRecord {
            native_id: t.id,
            native_number: None,
            correlation: t.correlation,
            // A partial ticket (an event carrying only what changed) has no usable version: the
            // hub reads the full ticket before applying it.
            revision: if t.complete { t.last_update.map(|d| d.timestamp_millis()) } else { None },
            updated_at: t.last_update,
            fields: t.fields,
            assigned: t.assigned,
            native_status: t.status_raw,
        }
    }
}

/// The ticket's notes. TMF notes have no visibility: public, unless the `@type` is the
/// instance's private-note type. A note without an id gets one from its content.
pub fn parse_notes(inst: &Instance, payload: &Value) -> Vec<NativeNote> {
    let Ok((_, rec)) = locate(payload) else { return vec![] };
    let ticket_id = text(rec.get("id")).unwrap_or_default();
    rec.get("note")
        .and_then(Value::as_array)
        .map(|notes| {
            notes
                .iter()
                .filter_map(|n| {
                    let o = n.as_object()?;
                    let body = text(o.get("text")).filter(|t| !t.trim().is_empty())?;
                    let author = non_empty(text(o.get("author"))).unwrap_or_else(|| "tmf621".into());
                    let date_raw = text(o.get("date")).unwrap_or_default();
                    let native_id = non_empty(text(o.get("id"))).unwrap_or_else(|| {
                        let h = crate::store::record::content_hash(&[&date_raw, &author, body.trim()]);
                        format!("h:{}", &h[..20])
                    });
                    let kind = text(o.get("@type")).unwrap_or_default();
                    Some(NativeNote {
                        native_id,
                        ticket_id: ticket_id.clone(),
                        visibility: if inst.is_private_type(&kind) { Visibility::Internal } else { Visibility::Public },
                        author,
                        text: body,
                        // A zone-less note date is not ingested: ServiceNow renders it in another
                        // time zone than the ticket's own dates.
                        created_at: parse_time(&date_raw).filter(|(_, zoned)| *zoned).map(|(t, _)| t),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---- Attachments -------------------------------------------------------------------------------

/// The files a ticket (or an event's ticket) lists in `attachment[]`: v4 `AttachmentRefOrValue`
/// or v5 `AttachmentOrDocumentRef`, flat or wrapped in `attachment`. The content is at `url`, or
/// inline as base64 `content` (kept as a `data:` URL); entries without an id are skipped.
pub fn attachments(payload: &Value) -> Vec<NativeAttachment> {
    let Ok((_, rec)) = locate(payload) else { return vec![] };
    let Some(items) = rec.get("attachment").and_then(Value::as_array) else { return vec![] };
    items
        .iter()
        .filter_map(|a| {
            let a = a.get("attachment").filter(|x| x.is_object()).unwrap_or(a).as_object()?;
            let native_id = non_empty(text(a.get("id")))?;
            let content_type = non_empty(text(a.get("mimeType"))).unwrap_or_default();
            let location = match non_empty(text(a.get("content"))) {
                Some(c) => Some(format!("data:{};base64,{c}", if content_type.is_empty() { "application/octet-stream" } else { &content_type })),
                None => non_empty(text(a.get("url"))),
            };
            Some(NativeAttachment {
                file_name: non_empty(text(a.get("name"))).unwrap_or_else(|| native_id.clone()),
                native_id,
                content_type,
                size: size_bytes(a.get("size")),
                sha256: None,
                location,
            })
        })
        .collect()
}

/// `size` as bytes: a number, or a TMF `Quantity` `{amount, units}` in bytes, kB or MB.
fn size_bytes(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let amount = v.get("amount").and_then(|a| a.as_f64().or_else(|| a.as_str()?.trim().parse().ok()))?;
    let units = v.get("units").and_then(Value::as_str).unwrap_or("bytes").trim().to_ascii_lowercase();
    let factor = match units.as_str() {
        "" | "b" | "byte" | "bytes" | "octets" => 1.0,
        "kb" | "kib" | "kilobytes" => 1024.0,
        "mb" | "mib" | "megabytes" => 1024.0 * 1024.0,
        _ => return None,
    };
    Some((amount * factor).round() as i64)
}

/// A new `attachment[]` entry carrying its content inline (an `Attachment` value).
pub fn attachment_value(file_name: &str, content_type: &str, size: i64, content_base64: &str) -> Value {
    json!({ "@type": "Attachment", "name": file_name, "mimeType": content_type, "size": {"amount": size, "units": "bytes"}, "content": content_base64 })
}

// ---- Canonical <-> native ---------------------------------------------------------------------

fn level3(v: &str) -> Option<u8> {
    v.trim().parse::<u8>().ok().filter(|l| (1..=3).contains(l))
}

/// Maps normalised native values to canonical ones. `assigned` turns `acknowledged` (new) into
/// `assigned`.
pub fn to_canonical(inst: &Instance, fields: &BTreeMap<String, String>, assigned: bool) -> Canonical {
    let p = profile();
    let c_names = &p.characteristics;
    let mut c = Canonical::default();
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let status = get(F_STATUS);
    let reason = get(F_REASON).trim();
    match inst.status_target(status) {
        Some(t) if t == "refused" => c.handed_back = Some(if reason.is_empty() { format!("the supplier set its ticket to {status}") } else { reason.to_string() }),
        Some(t) => match t.parse::<Status>() {
            Ok(Status::New) if assigned => c.status = Some(Status::Assigned),
            Ok(s) => c.status = Some(s),
            Err(_) => {
                c.unmapped.insert(F_STATUS.into(), status.into());
            }
        },
        None if status.is_empty() => {}
        None => match inst.inferred_status(status) {
            Some(s) => {
                c.status = Some(if s == Status::New && assigned { Status::Assigned } else { s });
                c.unmapped.insert(F_STATUS.into(), inferred_note(status, s));
            }
            None => {
                c.unmapped.insert(F_STATUS.into(), status.into());
            }
        },
    }
    if c.status == Some(Status::OnHold) {
        let by_label = p.hold.labels.iter().find(|(_, l)| squash(l) == squash(reason)).and_then(|(k, _)| k.parse::<HoldReason>().ok());
        // An inferred hold says nothing of whom it waits for.
        let default = if inst.inferred_status(status).is_some() {
            Some(HoldReason::Other)
        } else {
            p.hold.default.get(if status == "held" { "held" } else { "pending" }).and_then(|d| d.parse::<HoldReason>().ok())
        };
        c.hold_reason = by_label.or(default).or(Some(HoldReason::Other));
    }
    let char_field = |name: &str| fields.get(&format!("{F_CHAR}{name}")).map(String::as_str);
    let mut scale = |name: &str, unmapped_key: String| -> Option<u8> {
        let v = char_field(name)?;
        let l = level3(v);
        if l.is_none() && !v.trim().is_empty() {
            c.unmapped.insert(unmapped_key, v.into());
        }
        l
    };
    let impact_char = scale(&c_names.impact, format!("{F_CHAR}{}", c_names.impact));
    let urgency_char = scale(&c_names.urgency, format!("{F_CHAR}{}", c_names.urgency));
    let severity = get(F_SEVERITY);
    let impact_sev = if inst.severity_is_priority {
        None
    } else {
        let l = inst.severity_level(severity);
        if l.is_none() && !severity.trim().is_empty() {
            c.unmapped.insert(F_SEVERITY.into(), severity.into());
        }
        l
    };
    if inst.severity_is_priority && !severity.trim().is_empty() && Instance::level_of(&inst.severity_labels, severity).is_none() {
        c.unmapped.insert(F_SEVERITY.into(), severity.into());
    }
    c.impact = impact_char.or(impact_sev).and_then(Impact::new);
    c.urgency = urgency_char.and_then(Urgency::new);
    c.title = Some(get(F_NAME).to_string());
    c.description = Some(get(F_DESCRIPTION).to_string());
    c.category = char_field(&c_names.category).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    c.ci = Some(get(F_CI).trim()).filter(|v| !v.is_empty()).map(str::to_string);
    if matches!(c.status, Some(Status::Resolved) | Some(Status::Closed)) {
        let code = match char_field(&c_names.resolution_code).map(str::trim).filter(|v| !v.is_empty()) {
            Some(code) if p.resolution_codes.iter().any(|k| k == code) => code.to_string(),
            Some(code) => {
                c.unmapped.insert(format!("{F_CHAR}{}", c_names.resolution_code), code.into());
                "other".into()
            }
            None => "other".into(),
        };
        c.resolution = Some(Resolution { code, notes: reason.to_string() });
    }
    c
}

/// How the leg shows a status label read by its evident meaning.
pub fn inferred_note(label: &str, status: Status) -> String {
    format!("{label} (inferred as {status} from the label; map it in tmf621.status_map to confirm)")
}

/// The native values the hub wants, keeping an inferred status label (and its reason) while it
/// means what the hub wants: the hub does not rewrite `On Hold` to `pending` for the same meaning.
pub fn desired(inst: &Instance, incident: &Incident, baseline: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut m = from_canonical(inst, incident);
    let status = baseline.get(F_STATUS).map(String::as_str).unwrap_or("");
    if inst.inferred_status(status).is_some() {
        let theirs = to_canonical(inst, baseline, incident.status == Status::Assigned);
        if theirs.status == Some(incident.status) && (incident.status != Status::OnHold || theirs.hold_reason == incident.hold_reason) {
            m.insert(F_STATUS.into(), status.to_string());
            if incident.status == Status::OnHold {
                if let Some(r) = baseline.get(F_REASON) {
                    m.insert(F_REASON.into(), r.clone());
                }
            }
        }
    }
    m
}

/// The TMF status the hub writes for a canonical status (on hold: `pending` or `held` by reason).
pub fn tmf_status(incident_status: Status, hold: Option<HoldReason>) -> String {
    let p = profile();
    if incident_status == Status::OnHold {
        let h = hold.unwrap_or(HoldReason::Other);
        return if p.hold.held_for.iter().any(|r| r == h.as_str()) { "held".into() } else { "pending".into() };
    }
    p.status.from_canonical.get(incident_status.as_str()).cloned().unwrap_or_else(|| "acknowledged".into())
}

/// The `statusChangeReason` label of a hold reason.
pub fn hold_label(h: HoldReason) -> String {
    profile().hold.labels.get(h.as_str()).cloned().unwrap_or_else(|| h.as_str().to_string())
}

/// The native values the hub wants the supplier ticket to hold. Fields absent from the result
/// are left as the supplier has them.
pub fn from_canonical(inst: &Instance, incident: &Incident) -> BTreeMap<String, String> {
    let p = profile();
    let mut m = BTreeMap::new();
    m.insert(F_STATUS.into(), tmf_status(incident.status, incident.hold_reason));
    match incident.status {
        Status::OnHold => {
            m.insert(F_REASON.into(), hold_label(incident.hold_reason.unwrap_or(HoldReason::Other)));
        }
        Status::Resolved | Status::Closed => {
            let notes = incident.resolution.as_ref().map(|r| r.notes.clone()).filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "Resolved".into());
            m.insert(F_REASON.into(), notes);
        }
        _ => {}
    }
    m.insert(F_NAME.into(), incident.title.clone());
    // TMF621 requires a description; an incident raised without one is described by its title.
    let description = if incident.description.trim().is_empty() { incident.title.clone() } else { incident.description.clone() };
    m.insert(F_DESCRIPTION.into(), description);
    if inst.severity_is_priority {
        m.insert(F_SEVERITY.into(), incident.priority.to_string());
    } else if let Some(l) = inst.severity_labels.get(usize::from(incident.impact.get()) - 1) {
        m.insert(F_SEVERITY.into(), l.clone());
    }
    if inst.writes_priority {
        if let Some(l) = inst.priority_labels.get(usize::from(incident.priority.get()) - 1) {
            m.insert(F_PRIORITY.into(), l.clone());
        }
    }
    m.insert(F_CI.into(), incident.ci.clone().unwrap_or_default());
    if inst.characteristics {
        let c = &p.characteristics;
        m.insert(format!("{F_CHAR}{}", c.impact), incident.impact.to_string());
        m.insert(format!("{F_CHAR}{}", c.urgency), incident.urgency.to_string());
        m.insert(format!("{F_CHAR}{}", c.category), incident.category.clone().unwrap_or_default());
        if matches!(incident.status, Status::Resolved | Status::Closed) {
            if let Some(r) = &incident.resolution {
                m.insert(format!("{F_CHAR}{}", c.resolution_code), r.code.clone());
            }
        }
    }
    m
}

// ---- Writing TMF shapes -----------------------------------------------------------------------

/// A `relatedParty` entry in the instance's shape.
pub fn party(inst: &Instance, id: &str, name: &str, role: &str, referred: &str) -> Value {
    match (inst.is_servicenow(), inst.version) {
        // ServiceNow carries the role in `@referredType`.
        (true, _) => json!({ "id": id, "name": name, "@referredType": role }),
        (false, TmfVersion::V4) => json!({ "id": id, "name": name, "role": role, "@referredType": referred, "@type": "RelatedParty" }),
        (false, TmfVersion::V5) => json!({
            "role": role,
            "partyOrPartyRole": { "id": id, "name": name, "@type": "PartyRef", "@referredType": referred },
            "@type": "RelatedPartyRefOrPartyRoleRef",
        }),
    }
}

/// A `relatedEntity` entry for the affected CI (`ci` true) or service.
pub fn entity(inst: &Instance, value: &str, ci: bool) -> Value {
    let (role, referred, sn_referred) = if ci { ("affectedCI", "Resource", "cmdb_ci") } else { ("affectedService", "Service", "cmdb_ci_service") };
    match (inst.is_servicenow(), inst.version) {
        (true, _) => json!({ "id": value, "name": value, "href": "", "@referredType": sn_referred, "@type": "relatedEntity" }),
        (false, TmfVersion::V4) => json!({ "id": value, "name": value, "role": role, "@referredType": referred, "@type": "RelatedEntity" }),
        (false, TmfVersion::V5) => json!({
            "role": role,
            "entity": { "id": value, "name": value, "@referredType": referred, "@type": "EntityRef" },
            "@type": "RelatedEntity",
        }),
    }
}

pub fn characteristic(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value, "valueType": "string", "@type": "StringCharacteristic" })
}

/// The hub reference in the instance's attribute.
fn external_reference(inst: &Instance, reference: &str) -> (String, Value) {
    match inst.version {
        TmfVersion::V4 => ("externalId".into(), json!(reference)),
        TmfVersion::V5 => ("externalIdentifier".into(), json!([{ "id": reference, "owner": "SIAM Hub", "externalIdentifierType": "hubReference", "@type": "ExternalIdentifier" }])),
    }
}

/// The body that creates the supplier ticket for `incident` (the server sets the status).
pub fn create_body(inst: &Instance, incident: &Incident) -> Value {
    let fields = from_canonical(inst, incident);
    let mut body = Map::new();
    body.insert("@type".into(), json!("TroubleTicket"));
    for k in [F_NAME, F_DESCRIPTION, F_SEVERITY, F_PRIORITY] {
        if let Some(v) = fields.get(k) {
            body.insert(k.into(), json!(v));
        }
    }
    body.insert("ticketType".into(), json!(inst.ticket_type));
    let (k, v) = external_reference(inst, incident.reference.as_str());
    body.insert(k, v);
    body.insert("channel".into(), json!({ "name": "SIAM Hub" }));
    let caller_role = if inst.is_servicenow() { "customer_contact" } else { "originator" };
    body.insert("relatedParty".into(), json!([party(inst, &incident.caller, &incident.caller, caller_role, "Individual")]));
    let mut entities = vec![];
    if let Some(ci) = incident.ci.as_deref().filter(|c| !c.is_empty()) {
        entities.push(entity(inst, ci, true));
    }
    if let Some(s) = incident.service.as_deref().filter(|c| !c.is_empty()) {
        entities.push(entity(inst, s, false));
    }
    if !entities.is_empty() {
        body.insert("relatedEntity".into(), Value::Array(entities));
    }
    let chars: Vec<Value> = fields.iter().filter_map(|(k, v)| k.strip_prefix(F_CHAR).filter(|_| !v.is_empty()).map(|name| characteristic(name, v))).collect();
    if !chars.is_empty() {
        body.insert("troubleTicketCharacteristic".into(), Value::Array(chars));
    }
    Value::Object(body)
}

/// The merge-patch for changed native fields. Array-held fields (`ci`, characteristics) need the
/// ticket as it stands, because a merge-patch replaces a whole array.
pub fn patch_body(inst: &Instance, changes: &BTreeMap<String, String>, current: Option<&Value>) -> Value {
    let current = current.and_then(|c| locate(c).ok()).map(|(_, rec)| rec);
    let mut body = Map::new();
    let mut chars: Vec<(String, String)> = vec![];
    for (k, v) in changes {
        if k == F_CI {
            let roles = &profile().roles.ci;
            let mut kept: Vec<Value> = current
                .and_then(|r| r.get("relatedEntity"))
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter(|item| {
                            let one = Value::Array(vec![(*item).clone()]);
                            let mut m = Map::new();
                            m.insert("relatedEntity".into(), one);
                            !references(&m, "relatedEntity", "entity").iter().any(|r| r.is(roles))
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if !v.is_empty() {
                kept.push(entity(inst, v, true));
            }
            body.insert("relatedEntity".into(), Value::Array(kept));
        } else if let Some(name) = k.strip_prefix(F_CHAR) {
            chars.push((name.to_string(), v.clone()));
        } else {
            body.insert(k.clone(), json!(v));
        }
    }
    if !chars.is_empty() {
        let mut merged: Vec<Value> = current
            .and_then(|r| r.get("troubleTicketCharacteristic"))
            .and_then(Value::as_array)
            .map(|items| items.iter().filter(|c| !c.get("name").and_then(Value::as_str).is_some_and(|n| chars.iter().any(|(k, _)| k.eq_ignore_ascii_case(n)))).cloned().collect())
            .unwrap_or_default();
        merged.extend(chars.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| characteristic(k, v)));
        body.insert("troubleTicketCharacteristic".into(), Value::Array(merged));
    }
    Value::Object(body)
}

/// A new `note[]` entry, or `None` when the note must not reach this supplier: an internal note
/// goes only where the instance declares a private-note type.
pub fn note_entry(inst: &Instance, visibility: Visibility, text: &str) -> Option<Value> {
    let kind = match visibility {
        Visibility::Internal => inst.private_note_type.clone()?,
        Visibility::Public => inst.public_note_type.clone().unwrap_or_else(|| "Note".into()),
    };
    Some(json!({ "author": "SIAM Hub", "date": time::rfc3339(&Utc::now()), "text": text, "@type": kind }))
}

// ---- `siam-hub map` ---------------------------------------------------------------------------

/// The canonical document `siam-hub map` prints for a trouble ticket or event notification.
pub fn canonical_document(inst: &Instance, payload: &Value) -> Result<Value, MapError> {
    let t = parse_ticket(inst, payload)?;
    let c = to_canonical(inst, &t.fields, t.assigned);
    let notes = parse_notes(inst, payload);
    let ts = |d: &Option<DateTime<Utc>>| d.as_ref().map(time::rfc3339);
    let terminal = matches!(c.status, Some(Status::Closed) | Some(Status::Cancelled)) || c.handed_back.is_some();
    let resolved_at = t.resolution_date.or(if c.status == Some(Status::Resolved) { t.status_change_date } else { None });
    let closed_at = if terminal { t.status_change_date } else { None };
    let mut leg = json!({
        "system": "tmf621",
        "native_id": t.id,
        "native_number": Value::Null,
        "native_status": t.status_raw,
        "state": if terminal { "closed" } else { "open" },
        "revision": if t.complete { t.last_update.map(|d| d.timestamp_millis()) } else { None },
        "unmapped": c.unmapped,
    });
    if let Some(r) = &c.handed_back {
        leg["refused"] = json!(r);
    }
    if !t.complete {
        // An event's partial ticket: the hub reads the whole ticket before applying anything.
        leg["partial"] = json!(true);
    }
    let mut doc = json!({
        "title": c.title,
        "description": c.description,
        "status": c.status,
        "hold_reason": c.hold_reason,
        "impact": c.impact,
        "urgency": c.urgency,
        "priority": inst.priority_level(&t.fields),
        "priority_source": "supplied",
        "category": c.category,
        "ci": c.ci,
        "caller": t.caller,
        "resolution": c.resolution,
        "opened_at": ts(&t.created),
        "updated_at": ts(&t.last_update),
        "resolved_at": ts(&resolved_at),
        "closed_at": ts(&closed_at),
        "correlation_ref": t.correlation,
        "notes": notes.iter().map(|n| json!({
            "native_id": n.native_id, "visibility": n.visibility, "author": n.author, "text": n.text,
            "created_at": ts(&n.created_at),
        })).collect::<Vec<_>>(),
        "legs": [leg],
    });
    if let Some(e) = &t.event {
        doc["event"] = json!({ "type": e.kind, "native_type": e.native_kind, "id": e.id, "time": ts(&e.time), "field_path": e.field_path });
    }
    Ok(doc)
}

/// The native create body `siam-hub map --reverse` prints for a canonical incident, with the
/// status the hub would then patch in.
pub fn native_document(inst: &Instance, canonical: &Value) -> Result<Value, MapError> {
    let incident: Incident = serde_json::from_value(canonical.clone()).map_err(|e| MapError(format!("not a canonical incident document: {e}")))?;
    let mut body = create_body(inst, &incident);
    let fields = from_canonical(inst, &incident);
    for k in [F_STATUS, F_REASON] {
        if let Some(v) = fields.get(k) {
            body[k] = json!(v);
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(flavour: TmfFlavour, version: TmfVersion) -> Instance {
        Instance::new(&Tmf621Settings { flavour, version, ..Default::default() })
    }

    #[test]
    fn odd_payloads_are_errors_or_empty_never_panics() {
        let i = Instance::default();
        for v in [
            json!(null),
            json!(7),
            json!("x"),
            json!([]),
            json!({"event": 3}),
            json!({"event": {"troubleTicket": []}}),
            json!({"id": "1", "note": 5, "attachment": {"id": 1}}),
            json!({"id": "1", "note": [1, null, {"text": 3}], "attachment": [1, null, {"id": {}}, {"id": "a", "size": {"amount": "x", "units": 3}}, {"id": "b", "size": -4}]}),
            json!({"id": {"x": 1}, "status": ["resolved"], "lastUpdate": 12, "relatedParty": "me"}),
        ] {
            let _ = parse_ticket(&i, &v);
            let _ = parse_notes(&i, &v);
            let _ = attachments(&v);
            let _ = canonical_document(&i, &v);
        }
    }

    #[test]
    fn attachments_read_urls_inline_values_quantities_and_wrapped_refs() {
        let ticket = json!({"id": "7", "attachment": [
            {"id": "a1", "name": "trace.log", "mimeType": "text/plain", "size": {"amount": 2, "units": "kB"}, "url": "https://files.example/a1", "@type": "Attachment"},
            {"id": 2, "name": "shot.png", "mimeType": "image/png", "size": 5, "content": "aGVsbG8=", "@type": "Attachment"},
            {"attachment": {"id": "a3", "url": "/docs/a3"}, "@type": "AttachmentOrDocumentRef"},
            {"name": "no id, not addressable"},
        ]});
        let event = json!({"eventType": "TroubleTicketAttributeValueChangeEvent", "event": {"troubleTicket": ticket}});
        for payload in [&ticket, &event] {
            let files = attachments(payload);
            assert_eq!(files.len(), 3);
            assert_eq!((files[0].native_id.as_str(), files[0].size, files[0].location.as_deref()), ("a1", Some(2048), Some("https://files.example/a1")));
            assert_eq!((files[1].native_id.as_str(), files[1].location.as_deref()), ("2", Some("data:image/png;base64,aGVsbG8=")));
            assert_eq!((files[2].file_name.as_str(), files[2].size), ("a3", None));
        }
        assert!(attachments(&json!({"id": "8"})).is_empty());
        assert!(attachments(&json!([1])).is_empty());
    }

    #[test]
    fn profile_loads_and_every_canonical_status_maps_out_and_back() {
        let i = Instance::default();
        for s in Status::ALL {
            let native = tmf_status(*s, Some(HoldReason::AwaitingCaller));
            let mut f = BTreeMap::new();
            f.insert(F_STATUS.to_string(), native.clone());
            f.insert(F_REASON.to_string(), hold_label(HoldReason::AwaitingCaller));
            let back = to_canonical(&i, &f, false).status.expect("maps back");
            let expected = if *s == Status::Assigned { Status::New } else { *s };
            assert_eq!(back, expected, "{s} -> {native}");
        }
        for h in HoldReason::ALL {
            let mut f = BTreeMap::new();
            f.insert(F_STATUS.to_string(), tmf_status(Status::OnHold, Some(*h)));
            f.insert(F_REASON.to_string(), hold_label(*h));
            assert_eq!(to_canonical(&i, &f, false).hold_reason, Some(*h));
        }
    }

    #[test]
    fn event_type_aliases_resolve() {
        assert_eq!(canonical_event_type("TroubleTicketStateChangeEvent"), "TroubleTicketStatusChangeEvent");
        assert_eq!(canonical_event_type("TroubleTicketAttributeChangeEvent"), "TroubleTicketAttributeValueChangeEvent");
        assert_eq!(canonical_event_type("troubleTicketCreateEvent"), "TroubleTicketCreateEvent");
        assert_eq!(canonical_event_type(""), "");
    }

    #[test]
    fn times_parse_in_every_seen_form() {
        assert_eq!(parse_time("2024-05-14T06:52:10.118Z").map(|(t, z)| (t.timestamp_millis() % 1000, z)), Some((118, true)));
        assert!(parse_time("2024-05-14T07:52:10+0100").is_some_and(|(t, _)| t == parse_time("2024-05-14T06:52:10Z").unwrap().0));
        assert_eq!(parse_time("2023-01-19 22:39:28").map(|(_, z)| z), Some(false));
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("").is_none());
    }

    #[test]
    fn severity_and_priority_vocabularies() {
        let std = Instance::default();
        assert_eq!(std.normalise_severity("major"), "Major");
        assert_eq!(std.normalise_severity("High"), "Critical", "an alias becomes the label the hub writes");
        assert_eq!(std.normalise_severity("2"), "Major");
        assert_eq!(std.normalise_severity("Catastrophic"), "Catastrophic");
        assert_eq!(std.normalise_priority("low"), "Low");
        let sn = inst(TmfFlavour::Servicenow, TmfVersion::V4);
        assert_eq!(sn.normalise_severity("2 - High"), "2");
        assert_eq!(sn.normalise_severity("5"), "5");
        assert_eq!(sn.normalise_severity("9 - Cosmic"), "9 - Cosmic");
        assert_eq!(Instance::level_of(&std.priority_labels, "2023-01-19"), None);
    }

    #[test]
    fn servicenow_statuses_are_known_only_to_the_servicenow_flavour() {
        let sn = inst(TmfFlavour::Servicenow, TmfVersion::V4);
        assert_eq!(sn.normalise_status("Open"), "inProgress");
        assert_eq!(sn.normalise_status("New"), "acknowledged");
        let std = Instance::default();
        assert_eq!(std.normalise_status("Open"), "Open");
        assert_eq!(std.normalise_status("InProgress"), "inProgress");
        let mut f = BTreeMap::new();
        f.insert(F_STATUS.to_string(), "Open".to_string());
        let c = to_canonical(&std, &f, false);
        assert_eq!((c.status, c.unmapped.get(F_STATUS).map(String::as_str)), (None, Some("Open")));
    }

    #[test]
    fn servicenow_state_labels_are_inferred_and_marked_unless_configured() {
        let sn = inst(TmfFlavour::Servicenow, TmfVersion::V4);
        let read = |i: &Instance, raw: &str| {
            let mut f = BTreeMap::new();
            f.insert(F_STATUS.to_string(), i.normalise_status(raw));
            to_canonical(i, &f, false)
        };
        for (label, status) in [("On Hold", Status::OnHold), ("Canceled", Status::Cancelled)] {
            let c = read(&sn, label);
            assert_eq!(c.status, Some(status), "{label}");
            let note = c.unmapped.get(F_STATUS).cloned().unwrap_or_default();
            assert!(note.starts_with(label) && note.contains("inferred"), "{note}");
        }
        assert_eq!(read(&sn, "On Hold").hold_reason, Some(HoldReason::Other));
        // Spelling variants of the enum are the enum itself: read, not inferred.
        for (label, status) in [("In Progress", Status::InProgress), ("Resolved", Status::Resolved), ("Closed", Status::Closed)] {
            let c = read(&sn, label);
            assert_eq!((c.status, c.unmapped.get(F_STATUS)), (Some(status), None), "{label}");
        }
        // A label the instance maps is read as configured, not inferred.
        let mut s = Tmf621Settings { flavour: TmfFlavour::Servicenow, ..Tmf621Settings::default() };
        s.status_map.insert("On Hold".into(), "in_progress".into());
        let c = read(&Instance::new(&s), "On Hold");
        assert_eq!((c.status, c.unmapped.get(F_STATUS)), (Some(Status::InProgress), None));
        // No safe fallback: unmapped as before.
        let c = read(&sn, "Awaiting Vendor");
        assert_eq!((c.status, c.unmapped.get(F_STATUS).map(String::as_str)), (None, Some("Awaiting Vendor")));
    }

    #[test]
    fn an_inferred_label_meaning_what_the_hub_wants_is_kept() {
        let sn = inst(TmfFlavour::Servicenow, TmfVersion::V4);
        let incident: Incident = serde_json::from_value(json!({
            "ref": "INC-000001", "title": "t", "description": "d", "status": "on_hold", "hold_reason": "other",
            "impact": 2, "urgency": 2, "priority": 3, "priority_source": "derived", "category": null,
            "service": null, "ci": null, "caller": "c", "assigned_supplier": null, "resolution": null, "notes": [],
            "opened_at": "2024-05-15T07:45:00.000Z", "updated_at": "2024-05-15T07:45:00.000Z", "resolved_at": null,
            "closed_at": null, "version": 1, "legs": []
        }))
        .unwrap();
        let mut baseline = BTreeMap::new();
        baseline.insert(F_STATUS.to_string(), "On Hold".to_string());
        baseline.insert(F_REASON.to_string(), "Vendor".to_string());
        let d = desired(&sn, &incident, &baseline);
        assert_eq!((d[F_STATUS].as_str(), d[F_REASON].as_str()), ("On Hold", "Vendor"));
        baseline.insert(F_STATUS.to_string(), "Canceled".to_string());
        assert_eq!(desired(&sn, &incident, &baseline)[F_STATUS], "held", "another meaning: the hub's own status");
    }

    #[test]
    fn instance_status_map_overrides_the_profile() {
        let mut s = Tmf621Settings::default();
        s.status_map.insert("Awaiting Info".into(), "on_hold".into());
        s.status_map.insert("Bounced".into(), "refused".into());
        let i = Instance::new(&s);
        let mut f = BTreeMap::new();
        f.insert(F_STATUS.to_string(), i.normalise_status("awaiting info"));
        let c = to_canonical(&i, &f, false);
        assert_eq!((c.status, c.hold_reason), (Some(Status::OnHold), Some(HoldReason::AwaitingCaller)));
        f.insert(F_STATUS.to_string(), "Bounced".into());
        f.insert(F_REASON.to_string(), "Not our network".into());
        assert_eq!(to_canonical(&i, &f, false).handed_back.as_deref(), Some("Not our network"));
    }

    #[test]
    fn rejected_is_a_refusal_not_a_status() {
        let i = Instance::default();
        let t = json!({"id": "1", "status": "rejected", "lastUpdate": "2024-05-14T06:52:10Z", "statusChangeReason": "Wrong supplier"});
        let rec = parse_ticket(&i, &t).unwrap();
        let c = to_canonical(&i, &rec.fields, false);
        assert_eq!(c.status, None);
        assert_eq!(c.handed_back.as_deref(), Some("Wrong supplier"));
        assert!(c.unmapped.is_empty());
    }

    #[test]
    fn the_status_history_stands_in_for_missing_top_level_attributes() {
        let i = Instance::default();
        let v5 = json!({"id": "1", "status": "pending", "lastUpdate": "2024-05-14T06:52:10Z",
            "statusChangeHistory": [{"status": "acknowledged", "statusChangeDate": "2024-05-14T06:00:00Z"},
                                    {"status": "pending", "statusChangeDate": "2024-05-14T06:52:10Z", "statusChangeReason": "Awaiting evidence"}]});
        let t = parse_ticket(&i, &v5).unwrap();
        assert_eq!(to_canonical(&i, &t.fields, false).hold_reason, Some(HoldReason::AwaitingEvidence));
        assert_eq!(t.status_change_date, parse_time("2024-05-14T06:52:10Z").map(|(d, _)| d));
        let v4 = json!({"id": "1", "status": "held", "statusChangeReason": null, "statusChange": [{"status": "held", "changeDate": "2024-05-14T06:52:10Z", "changeReason": "Awaiting change"}]});
        let t = parse_ticket(&i, &v4).unwrap();
        assert_eq!(t.fields[F_REASON], "", "an explicit null is the server's word");
        assert!(t.status_change_date.is_some());
    }

    #[test]
    fn an_incident_without_description_is_described_by_its_title() {
        let doc = json!({"ref": "INC-000001", "title": "Printer offline", "description": "", "status": "new", "hold_reason": null,
            "impact": 3, "urgency": 3, "priority": 5, "priority_source": "derived", "category": null, "service": null, "ci": "prn-1",
            "caller": "c", "assigned_supplier": null, "resolution": null, "notes": [], "opened_at": "2024-05-14T06:52:10.000Z",
            "updated_at": "2024-05-14T06:52:10.000Z", "resolved_at": null, "closed_at": null, "version": 1, "legs": []});
        let body = native_document(&Instance::default(), &doc).unwrap();
        assert_eq!(body["description"], "Printer offline");
        assert_eq!((body["severity"].as_str(), body["status"].as_str()), (Some("Minor"), Some("acknowledged")));
    }

    #[test]
    fn partial_event_tickets_have_no_revision() {
        let i = Instance::default();
        let ev = json!({"eventType": "TroubleTicketAttributeValueChangeEvent", "event": {"troubleTicket": {"id": "42", "severity": "Minor"}}});
        let rec: NativeRecord = parse_ticket(&i, &ev).unwrap().into();
        assert_eq!(rec.revision, None);
        assert!(parse_ticket(&i, &json!({"event": {}})).is_err());
        assert!(parse_ticket(&i, &json!([1, 2])).is_err());
        assert!(parse_ticket(&i, &json!({"id": ""})).is_err());
    }

    #[test]
    fn internal_notes_go_only_where_a_private_type_is_declared() {
        assert!(note_entry(&Instance::default(), Visibility::Internal, "secret").is_none());
        let sn = inst(TmfFlavour::Servicenow, TmfVersion::V4);
        assert_eq!(note_entry(&sn, Visibility::Internal, "secret").unwrap()["@type"], "work_notes");
        assert_eq!(note_entry(&sn, Visibility::Public, "hello").unwrap()["@type"], "comments");
        let notes = parse_notes(&sn, &json!({"id": "1", "note": [{"text": "a", "@type": "work_notes"}, {"text": "b", "@type": "comments"}, {"text": ""}]}));
        assert_eq!(notes.iter().map(|n| n.visibility).collect::<Vec<_>>(), [Visibility::Internal, Visibility::Public]);
        assert!(notes[0].native_id.starts_with("h:"));
    }

    #[test]
    fn patch_of_array_fields_keeps_the_other_entries() {
        let i = inst(TmfFlavour::Standard, TmfVersion::V5);
        let current = json!({"id": "1",
            "relatedEntity": [{"role": "affectedService", "entity": {"id": "network"}}, {"role": "affectedCI", "entity": {"id": "old-ci"}}],
            "troubleTicketCharacteristic": [{"name": "impact", "value": "2"}, {"name": "vendorField", "value": "x"}]});
        let mut ch = BTreeMap::new();
        ch.insert(F_CI.to_string(), "new-ci".to_string());
        ch.insert(format!("{F_CHAR}impact"), "1".to_string());
        ch.insert(format!("{F_CHAR}category"), String::new());
        let body = patch_body(&i, &ch, Some(&current));
        let ents = body["relatedEntity"].as_array().unwrap();
        assert_eq!(ents.len(), 2);
        assert_eq!(ents[0]["entity"]["id"], "network");
        assert_eq!(ents[1]["entity"]["id"], "new-ci");
        let chars = body["troubleTicketCharacteristic"].as_array().unwrap();
        let names: Vec<&str> = chars.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["vendorField", "impact"]);
    }
}
