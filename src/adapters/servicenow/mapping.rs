//! ServiceNow records <-> canonical model.
//!
//! A record can arrive raw (`sysparm_display_value=false`: choice values, `{link, value}`
//! references, UTC dates), in display mode (`true`: labels, `{display_value, link}` references,
//! dates in the caller's time zone) or both (`all`: `{display_value, value}` everywhere). Parsing
//! reduces all three to stored values; display-mode dates are never ingested because their time
//! zone is unknown. A value the profile cannot map is kept as `unmapped`, never guessed.

use crate::adapters::{Canonical, MapError};
use crate::domain::*;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// The fields kept in sync in both directions, by their ServiceNow names.
pub const SYNCED_FIELDS: &[&str] = &["state", "hold_reason", "impact", "urgency", "short_description", "description", "category", "cmdb_ci", "close_code", "close_notes"];

#[derive(Debug, Deserialize)]
pub struct CodeMap {
    pub to_canonical: HashMap<String, String>,
    pub from_canonical: HashMap<String, String>,
    #[serde(default)]
    pub labels: HashMap<String, String>,
}

/// The mapping profile in `adapters/servicenow/profile.json`.
#[derive(Debug, Deserialize)]
pub struct Profile {
    pub status: CodeMap,
    pub hold_reason: CodeMap,
    pub impact_labels: HashMap<String, String>,
    pub urgency_labels: HashMap<String, String>,
    pub priority_labels: HashMap<String, String>,
    pub resolution: CodeMap,
}

pub fn profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| serde_json::from_str(include_str!("../../../adapters/servicenow/profile.json")).expect("adapters/servicenow/profile.json is valid (checked by tests)"))
}

/// How a record was rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Raw,
    Display,
    All,
}

/// One field as read: its stored value and its label, where the shape gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Field {
    pub(crate) value: Option<String>,
    pub(crate) display: Option<String>,
}

/// A ServiceNow incident reduced to what the hub needs, whatever shape it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct SnRecord {
    pub sys_id: String,
    pub number: Option<String>,
    pub correlation_id: Option<String>,
    pub shape: Shape,
    /// Synced fields in stored (raw) values, `""` when empty. A choice whose label could not be
    /// turned back into a value keeps the label here and is reported unmapped.
    pub fields: BTreeMap<String, String>,
    pub caller: Option<String>,
    pub assigned: bool,
    pub priority: Option<String>,
    /// `sys_mod_count`: grows with every update, so a stale or repeated delivery is recognised.
    pub mod_count: Option<i64>,
    pub updated_on: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub link: Option<String>,
}

/// A `sys_journal_field` row: one work note or comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub sys_id: String,
    pub element_id: String,
    pub visibility: Visibility,
    pub author: String,
    pub text: String,
    pub created_on: Option<DateTime<Utc>>,
}

pub(crate) fn field(v: Option<&Value>) -> Field {
    match v {
        None | Some(Value::Null) => Field::default(),
        Some(Value::String(s)) => Field { value: Some(s.clone()), display: None },
        Some(Value::Number(n)) => Field { value: Some(n.to_string()), display: None },
        Some(Value::Bool(b)) => Field { value: Some(b.to_string()), display: None },
        Some(Value::Object(o)) => {
            let s = |k: &str| o.get(k).and_then(|v| v.as_str()).map(str::to_string);
            // display_value=true references carry no value: the sys_id is the link's last segment.
            let value = s("value").or_else(|| s("link").and_then(|l| l.rsplit('/').next().map(str::to_string)));
            Field { value, display: s("display_value") }
        }
        Some(Value::Array(_)) => Field::default(),
    }
}

fn detect_shape(rec: &Map<String, Value>) -> Shape {
    let objects: Vec<&Map<String, Value>> = rec.values().filter_map(|v| v.as_object()).collect();
    if objects.iter().any(|o| o.contains_key("display_value") && o.contains_key("value")) {
        return Shape::All;
    }
    if objects.iter().any(|o| o.contains_key("display_value")) {
        return Shape::Display;
    }
    // With no references set, labels in choice fields still give display mode away.
    let p = profile();
    let label = |k: &str, labels: &HashMap<String, String>| rec.get(k).and_then(|v| v.as_str()).is_some_and(|s| labels.contains_key(s));
    if label("state", &p.status.labels) || label("impact", &p.impact_labels) || label("urgency", &p.urgency_labels) {
        return Shape::Display;
    }
    if rec.get("sys_class_name").and_then(|v| v.as_str()) == Some("Incident") {
        return Shape::Display;
    }
    Shape::Raw
}

/// Resolves a choice to its stored value: the value where the shape gives it, else the label
/// looked up in the profile, else the label itself (to be reported unmapped).
fn choice(f: &Field, shape: Shape, labels: &HashMap<String, String>) -> String {
    match shape {
        Shape::Raw | Shape::All => f.value.clone().or_else(|| f.display.clone()).unwrap_or_default(),
        Shape::Display => {
            let text = f.display.clone().or_else(|| f.value.clone()).unwrap_or_default();
            labels.get(&text).cloned().unwrap_or(text)
        }
    }
}

/// A reference field: its stored value (the sys_id, parsed from the link when the shape gives
/// no value), so the same ticket reads the same in every shape; the label only when there is
/// nothing else.
pub(crate) fn text(f: &Field) -> String {
    f.value.clone().or_else(|| f.display.clone()).unwrap_or_default()
}

pub fn parse_sn_time(s: &str) -> Option<DateTime<Utc>> {
    // A year outside 1..9999 is no real date and has no RFC 3339 spelling.
    NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok().filter(|n| (1..=9999).contains(&chrono::Datelike::year(n))).map(|n| n.and_utc())
}

/// Renders an instant as a ServiceNow glide_date_time (UTC).
pub fn sn_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn time(f: &Field, shape: Shape) -> Option<DateTime<Utc>> {
    match shape {
        // In display mode the only rendering is in an unknown user time zone: not ingested.
        Shape::Display => None,
        Shape::All | Shape::Raw => f.value.as_deref().and_then(parse_sn_time),
    }
}

pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

/// Reads one incident record in any of the three shapes. Accepts the record itself, a Table
/// API envelope `{"result": {...}}`, or a webhook body `{"record": {...}}`. A record without
/// its `sys_id` is refused: the hub could not tell which ticket it is.
pub fn parse_record(payload: &Value) -> Result<SnRecord, MapError> {
    let rec = read_record(payload)?;
    if rec.sys_id.is_empty() {
        return Err(MapError("the record has no sys_id, so the hub cannot tell which ticket it is (read records with sys_id among the sysparm_fields)".into()));
    }
    Ok(rec)
}

/// [`parse_record`] for a record that may lack its `sys_id` (then empty): `siam-hub map`
/// translates what it is given.
pub(crate) fn read_record(payload: &Value) -> Result<SnRecord, MapError> {
    let rec = payload
        .get("record")
        .or_else(|| payload.get("result").filter(|r| r.is_object()))
        .unwrap_or(payload)
        .as_object()
        .ok_or_else(|| MapError("a ServiceNow record must be a JSON object".into()))?;
    let shape = detect_shape(rec);
    let p = profile();
    let get = |k: &str| field(rec.get(k));
    let sys_id = non_empty(get("sys_id").value.unwrap_or_default()).unwrap_or_default();
    let mut fields = BTreeMap::new();
    for name in SYNCED_FIELDS {
        let f = get(name);
        let v = match *name {
            "state" => choice(&f, shape, &p.status.labels),
            "hold_reason" => choice(&f, shape, &p.hold_reason.labels),
            "impact" => choice(&f, shape, &p.impact_labels),
            "urgency" => choice(&f, shape, &p.urgency_labels),
            "cmdb_ci" => text(&f),
            _ => match shape {
                Shape::Display => f.display.or(f.value).unwrap_or_default(),
                _ => f.value.or(f.display).unwrap_or_default(),
            },
        };
        fields.insert(name.to_string(), v);
    }
    let mod_count = {
        let f = get("sys_mod_count");
        f.value.or(f.display).and_then(|s| s.replace([',', ' ', '.'], "").parse::<i64>().ok())
    };
    let assigned = !text(&get("assigned_to")).is_empty() || !text(&get("assignment_group")).is_empty();
    Ok(SnRecord {
        sys_id,
        number: non_empty(text(&get("number"))),
        correlation_id: non_empty(get("correlation_id").value.unwrap_or_default()),
        shape,
        fields,
        caller: non_empty(text(&get("caller_id"))),
        assigned,
        priority: non_empty(choice(&get("priority"), shape, &p.priority_labels)),
        mod_count,
        updated_on: time(&get("sys_updated_on"), shape),
        opened_at: time(&get("opened_at"), shape),
        resolved_at: time(&get("resolved_at"), shape),
        closed_at: time(&get("closed_at"), shape),
        link: None,
    })
}

/// Reads `sys_journal_field` rows (any shape); rows for other fields are skipped.
pub fn parse_journal(rows: &[Value]) -> Vec<JournalEntry> {
    rows.iter()
        .filter_map(|row| {
            let o = row.as_object()?;
            let get = |k: &str| field(o.get(k));
            let element = get("element").value?;
            let visibility = match element.as_str() {
                "work_notes" => Visibility::Internal,
                "comments" => Visibility::Public,
                _ => return None,
            };
            let raw = get("value").value.unwrap_or_default();
            Some(JournalEntry {
                sys_id: get("sys_id").value.and_then(non_empty)?,
                element_id: get("element_id").value.unwrap_or_default(),
                visibility,
                author: non_empty(text(&get("sys_created_by"))).unwrap_or_else(|| "servicenow".into()),
                text: strip_code_wrapper(&raw),
                created_on: get("sys_created_on").value.as_deref().and_then(parse_sn_time),
            })
        })
        .collect()
}

/// Rich journal text comes as `[code]<html>[/code]`; the canonical note is plain text. Tags are
/// dropped, but a `<br>` or the end of a block (`</p>`, `</div>`, `</li>`...) becomes a line break
/// so words of adjacent paragraphs do not run together; newlines in the HTML source are just
/// whitespace. Entities are decoded once, `&amp;` last, so a literal `&lt;` the user typed (sent
/// as `&amp;lt;`) stays `&lt;`.
fn strip_code_wrapper(s: &str) -> String {
    let t = s.trim();
    match t.strip_prefix("[code]").and_then(|r| r.strip_suffix("[/code]")) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut tag: Option<String> = None;
            for c in inner.chars() {
                match (&mut tag, c) {
                    (None, '<') => tag = Some(String::new()),
                    (Some(body), '>') => {
                        let body = body.trim().trim_end_matches('/').to_ascii_lowercase();
                        let name = body.split_whitespace().next().unwrap_or("");
                        if matches!(name, "br" | "/p" | "/div" | "/li" | "/tr" | "/pre" | "/blockquote" | "/h1" | "/h2" | "/h3" | "/h4" | "/h5" | "/h6") {
                            out.push('\n');
                        }
                        tag = None;
                    }
                    (Some(body), c) => body.push(c),
                    (None, '\r' | '\n') => out.push(' '),
                    (None, c) => out.push(c),
                }
            }
            let text =
                out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&apos;", "'").replace("&nbsp;", " ").replace("&amp;", "&");
            text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
        }
        None => s.to_string(),
    }
}

fn level(s: &str) -> Option<u8> {
    s.trim().parse::<u8>().ok()
}

/// Maps stored ServiceNow values to canonical ones. `assigned` turns state 1 into `assigned`.
pub fn to_canonical(fields: &BTreeMap<String, String>, assigned: bool) -> Canonical {
    let p = profile();
    let mut c = Canonical::default();
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let state = get("state");
    match p.status.to_canonical.get(state).and_then(|s| s.parse::<Status>().ok()) {
        Some(Status::New) if assigned => c.status = Some(Status::Assigned),
        Some(s) => c.status = Some(s),
        None if state.is_empty() => {}
        None => {
            c.unmapped.insert("state".into(), state.into());
        }
    }
    let hold = get("hold_reason");
    if c.status == Some(Status::OnHold) || !hold.is_empty() {
        match p.hold_reason.to_canonical.get(hold).and_then(|s| s.parse::<HoldReason>().ok()) {
            Some(h) => c.hold_reason = Some(h),
            None if hold.is_empty() => c.hold_reason = Some(HoldReason::Other),
            None => {
                c.unmapped.insert("hold_reason".into(), hold.into());
                c.hold_reason = Some(HoldReason::Other);
            }
        }
        if c.status != Some(Status::OnHold) {
            // ServiceNow leaves hold_reason set after a ticket leaves hold; it means nothing then.
            c.hold_reason = None;
        }
    }
    let mut scale = |name: &str| -> Option<u8> {
        let v = get(name);
        let l = level(v).filter(|l| (1..=3).contains(l));
        if l.is_none() && !v.is_empty() {
            c.unmapped.insert(name.into(), v.into());
        }
        l
    };
    let (impact, urgency) = (scale("impact").and_then(Impact::new), scale("urgency").and_then(Urgency::new));
    c.impact = impact;
    c.urgency = urgency;
    c.title = Some(get("short_description").to_string());
    c.description = Some(get("description").to_string());
    c.category = non_empty(get("category").to_string());
    c.ci = non_empty(get("cmdb_ci").to_string());
    let code = get("close_code");
    if !code.is_empty() && matches!(c.status, Some(Status::Resolved) | Some(Status::Closed)) {
        let canonical = match p.resolution.to_canonical.get(code) {
            Some(k) => k.clone(),
            None => {
                c.unmapped.insert("close_code".into(), code.into());
                "other".into()
            }
        };
        c.resolution = Some(Resolution { code: canonical, notes: get("close_notes").to_string() });
    }
    c
}

/// The native values the hub wants the supplier ticket to hold, for the synced fields that
/// `incident` determines. Fields absent from the result are left as the supplier has them.
pub fn from_canonical(incident: &Incident) -> BTreeMap<String, String> {
    let p = profile();
    let mut m = BTreeMap::new();
    if let Some(s) = p.status.from_canonical.get(incident.status.as_str()) {
        m.insert("state".into(), s.clone());
    }
    if incident.status == Status::OnHold {
        let h = incident.hold_reason.unwrap_or(HoldReason::Other);
        if let Some(v) = p.hold_reason.from_canonical.get(h.as_str()) {
            m.insert("hold_reason".into(), v.clone());
        }
    }
    m.insert("impact".into(), incident.impact.to_string());
    m.insert("urgency".into(), incident.urgency.to_string());
    m.insert("short_description".into(), incident.title.clone());
    m.insert("description".into(), incident.description.clone());
    m.insert("category".into(), incident.category.clone().unwrap_or_default());
    m.insert("cmdb_ci".into(), incident.ci.clone().unwrap_or_default());
    if matches!(incident.status, Status::Resolved | Status::Closed) {
        if let Some(r) = &incident.resolution {
            let code = p.resolution.from_canonical.get(&r.code).cloned().unwrap_or_else(|| r.code.clone());
            m.insert("close_code".into(), code);
            m.insert("close_notes".into(), if r.notes.is_empty() { "Resolved".into() } else { r.notes.clone() });
        }
    }
    m
}

/// The Table API body that creates the supplier ticket for `incident`.
pub fn create_body(incident: &Incident) -> Value {
    let mut body: Map<String, Value> = from_canonical(incident).into_iter().filter(|(k, v)| !v.is_empty() && k != "state").map(|(k, v)| (k, Value::String(v))).collect();
    body.insert("caller_id".into(), json!(incident.caller));
    body.insert("correlation_id".into(), json!(incident.reference.as_str()));
    body.insert("correlation_display".into(), json!("SIAM Hub"));
    body.insert("contact_type".into(), json!("integration"));
    Value::Object(body)
}

/// The canonical document `siam-hub map` prints for a native record (and journal rows).
pub fn canonical_document(payload: &Value) -> Result<Value, MapError> {
    let rec = read_record(payload)?;
    let c = to_canonical(&rec.fields, rec.assigned);
    let journal = payload.get("journal").and_then(|j| j.as_array()).map(|a| parse_journal(a)).unwrap_or_default();
    let closed = matches!(c.status, Some(Status::Closed) | Some(Status::Cancelled));
    let ts = |t: &Option<DateTime<Utc>>| t.as_ref().map(time::rfc3339);
    Ok(json!({
        "title": c.title,
        "description": c.description,
        "status": c.status,
        "hold_reason": c.hold_reason,
        "impact": c.impact,
        "urgency": c.urgency,
        "priority": rec.priority.as_deref().and_then(level),
        "priority_source": "supplied",
        "category": c.category,
        "ci": c.ci,
        "caller": rec.caller,
        "resolution": c.resolution,
        "opened_at": ts(&rec.opened_at),
        "updated_at": ts(&rec.updated_on),
        "resolved_at": ts(&rec.resolved_at),
        "closed_at": ts(&rec.closed_at),
        "correlation_ref": rec.correlation_id,
        "notes": journal.iter().map(|j| json!({
            "native_id": j.sys_id, "visibility": j.visibility, "author": j.author, "text": j.text,
            "created_at": ts(&j.created_on),
        })).collect::<Vec<_>>(),
        "legs": [{
            "system": "servicenow",
            "native_id": non_empty(rec.sys_id.clone()),
            "native_number": rec.number,
            "native_status": rec.fields.get("state"),
            "state": if closed { "closed" } else { "open" },
            "revision": rec.mod_count,
            "unmapped": c.unmapped,
        }],
    }))
}

/// The native create body `siam-hub map --reverse` prints for a canonical incident document.
pub fn native_document(canonical: &Value) -> Result<Value, MapError> {
    let incident: Incident = serde_json::from_value(canonical.clone()).map_err(|e| MapError(format!("not a canonical incident document: {e}")))?;
    Ok(native_body(&incident))
}

/// The create body with the state the incident is in.
pub fn native_body(incident: &Incident) -> Value {
    let mut body = create_body(incident);
    if let Some(state) = from_canonical(incident).get("state") {
        body["state"] = json!(state);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record read with `sysparm_fields` that left `sys_id` out: `map` translates it with no
    /// native id, the sync refuses it by name.
    #[test]
    fn a_record_without_sys_id_maps_with_no_native_id_but_is_refused_for_sync() {
        let rec = serde_json::json!({"result": {"number": "INC0010001", "state": "2", "short_description": "Printer on fire", "correlation_id": "INC-000001"}});
        let doc = canonical_document(&rec).unwrap();
        assert_eq!(doc["legs"][0]["native_id"], Value::Null, "{doc}");
        assert_eq!(doc["legs"][0]["native_number"], "INC0010001");
        assert_eq!(doc["title"], "Printer on fire");
        let err = parse_record(&rec).unwrap_err();
        assert!(err.0.contains("no sys_id") && err.0.contains("sysparm_fields"), "{err}");
        let configured = crate::adapters::servicenow::ServiceNow::with_overrides(crate::config::ProfileOverrides {
            states: [("11".to_string(), "in_progress".parse().unwrap())].into_iter().collect(),
            ..Default::default()
        });
        use crate::adapters::Mapping;
        assert_eq!(configured.canonical_document(&rec).unwrap()["legs"][0]["native_id"], Value::Null);
        assert!(configured.parse_record(&rec).unwrap_err().0.contains("no sys_id"), "the sync reads records through parse_record");
    }

    #[test]
    fn profile_loads_and_round_trips_every_status() {
        let p = profile();
        for s in Status::ALL {
            let native = p.status.from_canonical.get(s.as_str()).expect("every status maps out");
            let back: Status = p.status.to_canonical[native].parse().unwrap();
            // `assigned` has no ServiceNow state of its own; it is New with an assignee.
            if *s == Status::Assigned {
                assert_eq!(back, Status::New);
            } else {
                assert_eq!(back, *s);
            }
        }
        for h in HoldReason::ALL {
            assert!(p.hold_reason.from_canonical.contains_key(h.as_str()), "{h}");
        }
    }

    #[test]
    fn unknown_state_is_kept_unmapped_not_guessed() {
        let mut f = BTreeMap::new();
        f.insert("state".to_string(), "11".to_string());
        let c = to_canonical(&f, false);
        assert_eq!(c.status, None);
        assert_eq!(c.unmapped.get("state").map(String::as_str), Some("11"));
    }

    #[test]
    fn journal_rows_keep_visibility() {
        let rows = vec![
            json!({"element":"work_notes","element_id":"a","sys_id":"1","value":"internal","sys_created_by":"bob","sys_created_on":"2024-05-14 06:52:10"}),
            json!({"element":"comments","element_id":"a","sys_id":"2","value":"[code]<p>hello &amp; bye</p>[/code]"}),
            json!({"element":"close_notes","sys_id":"3","value":"x"}),
            // A row without a sys_id cannot be told from the next one: not a note the hub can keep.
            json!({"element":"comments","element_id":"a","sys_id":"","value":"no id"}),
            json!({"element":"comments","element_id":"a","sys_id":" ","value":"no id"}),
        ];
        let j = parse_journal(&rows);
        assert_eq!(j.len(), 2);
        assert_eq!(j[0].visibility, Visibility::Internal);
        assert_eq!(j[1].visibility, Visibility::Public);
        assert_eq!(j[1].text, "hello & bye");
    }
}
