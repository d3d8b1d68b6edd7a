//! Remedy incident entries and work logs <-> canonical model.
//!
//! Remedy names a field differently on the create form (`HPD:IncidentInterface_Create`:
//! `Detailed_Decription`, `Service_Type`, `First_Name`...) and on the forms it is read and
//! updated through (`HPD:IncidentInterface`, `HPD:Help Desk`: `Detailed Decription`,
//! `Service Type`, `First Name`...). The profile's `fields` table is the one place that pairs
//! them: everything here works in read names, and [`create_body`] renames on the way out while
//! [`parse_record`] accepts either spelling on the way in.
//!
//! Selection fields travel as labels, empty fields as JSON `null`, numbers as numbers; all are
//! reduced to strings (`""` for null) so the leg's baseline compares like for like. Remedy's
//! scales are wider than the canonical ones (four impact and urgency levels, many status
//! reasons per hold reason), so reading is many-to-one: [`desired`] therefore keeps a native
//! value that already means what the hub wants instead of rewriting it, and the native value
//! stays on the leg. A value the profile cannot map is kept as `unmapped`, never guessed.

use crate::adapters::{Canonical, MapError};
use crate::config::RemedySettings;
use crate::domain::*;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

/// Read names of the fields kept in sync in both directions.
pub const STATUS: &str = "Status";
pub const STATUS_REASON: &str = "Status_Reason";
pub const IMPACT: &str = "Impact";
pub const URGENCY: &str = "Urgency";
/// The summary (the canonical title); at most 100 characters on the form.
pub const SUMMARY: &str = "Description";
/// The notes (the canonical description), with the form's own misspelling.
pub const DETAILS: &str = "Detailed Decription";
pub const RESOLUTION: &str = "Resolution";
pub const CATEGORY: &str = "Categorization Tier 1";
pub const CI: &str = "HPD_CI";
/// Where the hub reference travels.
pub const VENDOR_TICKET: &str = "Vendor Ticket Number";

/// The synced fields, in the order the tests and the documentation list them.
pub const SYNCED_FIELDS: &[&str] = &[STATUS, STATUS_REASON, IMPACT, URGENCY, SUMMARY, DETAILS, RESOLUTION, CATEGORY, CI];

/// The profile as shipped (`adapters/remedy/profile.json`).
pub const PROFILE_JSON: &str = include_str!("../../../adapters/remedy/profile.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Forms {
    pub create: String,
    pub incident: String,
    pub base: String,
    pub worklog: String,
}

/// One field's name on the read/update forms and on the create form.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldNames {
    pub read: String,
    pub create: String,
    #[serde(default)]
    pub synced: bool,
    #[serde(default)]
    pub max_chars: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CodeMap {
    pub to_canonical: HashMap<String, String>,
    pub from_canonical: HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LevelMap {
    pub to_canonical: HashMap<String, u8>,
    pub from_canonical: HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorklogProfile {
    pub internal: String,
    pub public: String,
    #[serde(rename = "type")]
    pub log_type: String,
    pub summary_max_chars: usize,
}

/// The mapping profile, possibly with a supplier instance's overrides merged in.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    pub forms: Forms,
    pub fields: Vec<FieldNames>,
    pub status: CodeMap,
    pub hold_reason: CodeMap,
    pub impact: LevelMap,
    pub urgency: LevelMap,
    pub priority_labels: HashMap<String, u8>,
    pub resolution: CodeMap,
    /// `Status_Reason` written with a cancellation (none by default: the reason lists vary).
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// The priority this instance gives canonical impact x urgency (as the profile writes them),
    /// on the hub's scale, where its weights differ from the hub's matrix: the hub then writes
    /// the impact and urgency that give the record's priority there.
    #[serde(default)]
    pub priority_matrix: Option<PriorityMatrix>,
    pub worklog: WorklogProfile,
}

impl Profile {
    /// The shipped profile with `overrides` merged over it (objects key by key, anything else
    /// replaced), checked for coherence.
    pub fn with_overrides(overrides: Option<&Value>) -> Result<Profile, String> {
        let mut doc: Value = serde_json::from_str(PROFILE_JSON).map_err(|e| format!("adapters/remedy/profile.json: {e}"))?;
        if let Some(o) = overrides {
            merge(&mut doc, o);
        }
        let p: Profile = serde_json::from_value(doc).map_err(|e| format!("Remedy profile: {e}"))?;
        p.check()?;
        Ok(p)
    }

    /// Every canonical value maps out, and what maps out reads back as itself: otherwise the hub
    /// would push a value and then take its own echo for a supplier change.
    pub fn check(&self) -> Result<(), String> {
        for (native, c) in &self.status.to_canonical {
            c.parse::<Status>().map_err(|e| format!("Remedy profile: status `{native}`: {e}"))?;
        }
        for s in Status::ALL {
            let native = self.status.from_canonical.get(s.as_str()).ok_or_else(|| format!("Remedy profile: status `{s}` has no Remedy status"))?;
            if self.status.to_canonical.get(native).map(String::as_str) != Some(s.as_str()) {
                return Err(format!("Remedy profile: status `{s}` is written as `{native}`, which does not read back as `{s}`"));
            }
        }
        for (native, c) in &self.hold_reason.to_canonical {
            c.parse::<HoldReason>().map_err(|e| format!("Remedy profile: status reason `{native}`: {e}"))?;
        }
        for h in HoldReason::ALL {
            let native = self.hold_reason.from_canonical.get(h.as_str()).ok_or_else(|| format!("Remedy profile: hold reason `{h}` has no status reason"))?;
            if self.hold_reason.to_canonical.get(native).map(String::as_str) != Some(h.as_str()) {
                return Err(format!("Remedy profile: hold reason `{h}` is written as `{native}`, which does not read back as `{h}`"));
            }
        }
        for (name, scale) in [("impact", &self.impact), ("urgency", &self.urgency)] {
            for (label, level) in &scale.to_canonical {
                if !(1..=3).contains(level) {
                    return Err(format!("Remedy profile: {name} `{label}` maps to {level}, outside 1..3"));
                }
            }
            for level in 1..=3u8 {
                let label = scale.from_canonical.get(&level.to_string()).ok_or_else(|| format!("Remedy profile: {name} {level} has no Remedy label"))?;
                if scale.to_canonical.get(label) != Some(&level) {
                    return Err(format!("Remedy profile: {name} {level} is written as `{label}`, which does not read back as {level}"));
                }
            }
        }
        for (native, code) in &self.resolution.to_canonical {
            if !ResolutionCode::is_canonical(code) {
                return Err(format!("Remedy profile: resolution reason `{native}` maps to unknown code `{code}`"));
            }
        }
        for code in ResolutionCode::ALL.iter().map(|c| c.as_str()) {
            let native = self.resolution.from_canonical.get(code).ok_or_else(|| format!("Remedy profile: resolution `{code}` has no status reason"))?;
            if !self.resolution.to_canonical.contains_key(native) {
                return Err(format!("Remedy profile: resolution `{code}` is written as `{native}`, which the profile cannot read"));
            }
        }
        for f in SYNCED_FIELDS {
            if !self.fields.iter().any(|n| n.read == *f && n.synced) {
                return Err(format!("Remedy profile: the synced field `{f}` is missing from `fields`"));
            }
        }
        Ok(())
    }

    /// The create-form name of a read name (the same name when the forms agree).
    pub fn create_name<'a>(&'a self, read: &'a str) -> &'a str {
        self.fields.iter().find(|f| f.read == read).map(|f| f.create.as_str()).unwrap_or(read)
    }

    /// The read name of a field named either way.
    pub fn read_name<'a>(&'a self, any: &'a str) -> &'a str {
        self.fields.iter().find(|f| f.create == any || f.read == any).map(|f| f.read.as_str()).unwrap_or(any)
    }

    fn max_chars(&self, read: &str) -> Option<usize> {
        self.fields.iter().find(|f| f.read == read).and_then(|f| f.max_chars)
    }
}

/// The shipped profile, for `siam-hub map` and as the default of every instance.
pub fn default_profile() -> Arc<Profile> {
    static PROFILE: OnceLock<Arc<Profile>> = OnceLock::new();
    PROFILE.get_or_init(|| Arc::new(Profile::with_overrides(None).expect("adapters/remedy/profile.json is valid (checked by tests)"))).clone()
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

// ---- Reading ---------------------------------------------------------------------------------

/// Which form's names a payload used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `HPD:IncidentInterface` / `HPD:Help Desk`: spaced names, with ids and audit dates.
    Read,
    /// A `HPD:IncidentInterface_Create` body: underscore names, no ids yet.
    Create,
}

/// An incident entry reduced to what the hub needs, whichever form it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct RemedyRecord {
    /// The `HPD:Help Desk` entry id (`Entry ID`, also the halves of the interface's `Request ID`).
    pub entry_id: Option<String>,
    pub request_id: Option<String>,
    pub incident_number: Option<String>,
    pub vendor_ticket: Option<String>,
    pub shape: Shape,
    /// Synced fields by read name, `""` when null.
    pub fields: BTreeMap<String, String>,
    pub assigned: bool,
    pub priority: Option<String>,
    pub priority_weight: Option<Value>,
    pub service_type: Option<String>,
    pub instance_id: Option<String>,
    pub caller: Option<String>,
    pub submitted: Option<DateTime<Utc>>,
    pub last_modified: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl RemedyRecord {
    /// The `Last Modified Date` in ms: Remedy keeps no modification counter, and the date has
    /// whole seconds, so two changes in one second share a revision (the sync treats an equal
    /// revision as "maybe newer", never as stale).
    pub fn revision(&self) -> Option<i64> {
        self.last_modified.map(|t| t.timestamp_millis())
    }
}

/// A work log (`HPD:WorkLog`) as a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkLog {
    pub id: String,
    pub incident_number: String,
    /// `Incident Entry ID` when the entry carries it.
    pub incident_entry_id: String,
    pub visibility: Visibility,
    pub view_access: String,
    pub author: String,
    pub text: String,
    pub created_at: Option<DateTime<Utc>>,
    /// The files in the work log's attachment fields.
    pub files: Vec<WorkLogFile>,
    /// The work log only carries files (no body, a summary naming a file at most), as Remedy
    /// makes one to hold an upload: its files are the record's attachments, not a note.
    pub files_only: bool,
}

/// The attachment fields of a work log.
pub const WORKLOG_FILE_FIELDS: &[&str] = &["z2AF Work Log01", "z2AF Work Log02", "z2AF Work Log03"];

/// A file in one attachment field of a work log (`{"name", "sizeBytes", "href"}` over REST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkLogFile {
    pub field: String,
    pub name: String,
    pub size: Option<i64>,
}

impl WorkLog {
    /// The work log's files as the sync lists them; a file's id is `<Work Log ID>/<field>`,
    /// which is also how its content is addressed (`.../HPD:WorkLog/{id}/attach/{field}`).
    pub fn attachments(&self) -> Vec<crate::adapters::NativeAttachment> {
        self.files
            .iter()
            .map(|f| crate::adapters::NativeAttachment {
                native_id: format!("{}/{}", self.id, f.field),
                file_name: f.name.clone(),
                content_type: mime_guess::from_path(&f.name).first_raw().unwrap_or("application/octet-stream").to_string(),
                size: f.size,
                sha256: None,
                location: None,
            })
            .collect()
    }
}

/// The files in the attachment fields of the work logs a payload carries.
pub fn worklog_attachments(p: &Profile, payload: &Value) -> Vec<crate::adapters::NativeAttachment> {
    parse_worklogs(p, payload).iter().flat_map(WorkLog::attachments).collect()
}

/// `2022-06-21T11:08:05.000+0000` (AR's colon-less offset), or any RFC 3339 instant.
pub fn parse_ar_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").or_else(|_| DateTime::parse_from_rfc3339(s)).ok().map(|t| t.with_timezone(&Utc))
}

/// Renders an instant as AR does (UTC, whole seconds shown with `.000`).
pub fn ar_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string()
}

/// A field value as a string: labels and text as they are, numbers in decimal, `null` as `""`.
/// Attachments (objects) and lists hold nothing the hub syncs.
pub fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

/// Is this an AR error answer (`[{messageType, messageText, messageNumber...}]`)?
pub fn is_error_array(payload: &Value) -> bool {
    payload.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(|m| m.get("messageNumber").is_some() || m.get("messageType").is_some()))
}

/// One entry of an AR status list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArMessage {
    pub kind: String,
    pub number: Option<i64>,
    pub text: String,
    pub appended: String,
}

impl ArMessage {
    /// What the hub makes of the number (the reference's common codes).
    pub fn meaning(&self) -> &'static str {
        match self.number {
            Some(302) => "not_found",
            Some(303) => "form_not_found",
            Some(623) => "authentication_failed",
            Some(326) => "required_field_missing",
            Some(306) => "value_out_of_range",
            Some(n) if n >= 10000 => "workflow_rejected",
            _ => "other",
        }
    }
}

/// Reads an AR error body; empty when the body is not one.
pub fn parse_errors(payload: &Value) -> Vec<ArMessage> {
    if !is_error_array(payload) {
        return Vec::new();
    }
    payload
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| ArMessage {
                    kind: text_of(m.get("messageType")),
                    number: m.get("messageNumber").and_then(|n| n.as_i64().or_else(|| n.as_str().and_then(|s| s.trim().parse().ok()))),
                    text: text_of(m.get("messageText")),
                    appended: text_of(m.get("messageAppendedText")),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `values` of the one incident entry a payload carries: an entry (`{"values", "_links"}`),
/// a query answer holding exactly one entry, a webhook body (`{"entry": ...}`), or bare values.
fn incident_values(payload: &Value) -> Result<(&Map<String, Value>, Option<&Value>), MapError> {
    if is_error_array(payload) {
        let msgs = parse_errors(payload);
        let first = msgs.first().map(|m| format!("ERROR {}: {} {}", m.number.unwrap_or_default(), m.text, m.appended)).unwrap_or_default();
        return Err(MapError(format!("an AR System error answer, not an incident entry ({})", first.trim())));
    }
    let obj = payload.as_object().ok_or_else(|| MapError("a Remedy entry must be a JSON object".into()))?;
    if let Some(entry) = obj.get("entry") {
        return incident_values(entry);
    }
    if let Some(entries) = obj.get("entries") {
        let list = entries.as_array().ok_or_else(|| MapError("`entries` must be a list".into()))?;
        return match list.as_slice() {
            [one] => incident_values(one),
            [] => Err(MapError("the query answer holds no entry".into())),
            many => Err(MapError(format!("the query answer holds {} entries; map one entry at a time", many.len()))),
        };
    }
    match obj.get("values") {
        Some(Value::Object(v)) => Ok((v, obj.get("_links"))),
        Some(_) => Err(MapError("`values` must be an object".into())),
        None => Ok((obj, None)),
    }
}

/// The entry id a self link names, when it is an incident entry (the create form's own ids are
/// not incident ids).
fn id_from_link(links: Option<&Value>, p: &Profile) -> Option<String> {
    let href = links?.get("self")?.as_array()?.first()?.get("href")?.as_str()?;
    let path = href.split('?').next().unwrap_or(href);
    let (form_path, id) = path.rsplit_once('/')?;
    let form = percent_decode(form_path.rsplit('/').next()?);
    let decoded = percent_decode(id);
    if form == p.forms.incident || form == p.forms.base {
        non_empty(decoded.split('|').next().unwrap_or("").to_string())
    } else {
        None
    }
}

/// What stays as it is in one URL path segment: the unreserved characters and `:`, which AR
/// form names carry (`HPD:Help Desk`).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b':');

/// Decodes `%XX` escapes of a URL path segment (invalid escapes are kept as they are).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Encodes a value for use as one URL path segment.
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, PATH_SEGMENT).to_string()
}

/// Reads one incident entry in read or create names. `require_id`: the sync needs the entry id;
/// `siam-hub map` also reads create bodies, which have none yet.
pub fn parse_entry(p: &Profile, payload: &Value, require_id: bool) -> Result<RemedyRecord, MapError> {
    let (raw, links) = incident_values(payload)?;
    // Normalise to read names; where both spellings are present the read name wins.
    let mut values: BTreeMap<&str, &Value> = BTreeMap::new();
    let mut shape = Shape::Read;
    for (k, v) in raw {
        let read = p.read_name(k);
        if read != k.as_str() {
            shape = Shape::Create;
            values.entry(read).or_insert(v);
        } else {
            values.insert(read, v);
        }
    }
    if raw.contains_key("z1D_Action") {
        shape = Shape::Create;
    }
    let get = |k: &str| text_of(values.get(k).copied());
    let request_id = non_empty(get("Request ID"));
    let entry_id = non_empty(get("Entry ID"))
        .or_else(|| request_id.as_ref().and_then(|r| non_empty(r.split('|').next().unwrap_or("").to_string())))
        .or_else(|| non_empty(get("Incident_Entry_ID")))
        .or_else(|| id_from_link(links, p));
    if require_id && entry_id.is_none() {
        return Err(MapError("the entry has no Entry ID or Request ID (not an HPD:IncidentInterface or HPD:Help Desk entry)".into()));
    }
    let known = ["Incident Number", STATUS, SUMMARY, "Entry ID", "Request ID", VENDOR_TICKET, "z1D_Action", IMPACT, URGENCY];
    if !known.iter().any(|k| values.contains_key(k)) {
        return Err(MapError("not a Remedy incident entry: none of Incident Number, Status, Description, Entry ID, Request ID is present".into()));
    }
    let fields: BTreeMap<String, String> = SYNCED_FIELDS.iter().map(|f| (f.to_string(), get(f))).collect();
    let assigned = !get("Assignee").trim().is_empty() || !get("Assigned Group").trim().is_empty();
    let caller = non_empty(get("Customer Login ID")).or_else(|| {
        let name = format!("{} {}", get("First Name").trim(), get("Last Name").trim());
        non_empty(name.trim().to_string())
    });
    let time = |k: &str| parse_ar_time(&get(k));
    Ok(RemedyRecord {
        entry_id,
        request_id,
        incident_number: non_empty(get("Incident Number")),
        vendor_ticket: non_empty(get(VENDOR_TICKET)),
        shape,
        fields,
        assigned,
        priority: non_empty(get("Priority")),
        priority_weight: values.get("Priority Weight").copied().filter(|v| !v.is_null()).cloned(),
        service_type: non_empty(get("Service Type")),
        instance_id: non_empty(get("InstanceId")),
        caller,
        submitted: time("Submit Date").or_else(|| time("Reported Date")),
        last_modified: time("Last Modified Date"),
        resolved_at: time("Last Resolved Date"),
        closed_at: time("Closed Date"),
    })
}

/// The values of each work log a payload carries: a `HPD:WorkLog` query answer
/// (`{"entries": [...]}`), a webhook body's `worklogs`, a list, or one entry.
fn worklog_rows(payload: &Value) -> Vec<&Map<String, Value>> {
    let rows: Vec<&Value> = if let Some(w) = payload.get("worklogs").and_then(Value::as_array) {
        w.iter().collect()
    } else if let Some(e) = payload.get("entries").and_then(Value::as_array) {
        e.iter().collect()
    } else if let Some(a) = payload.as_array() {
        a.iter().collect()
    } else {
        vec![payload]
    };
    rows.into_iter().filter_map(|r| r.get("values").unwrap_or(r).as_object()).filter(|v| v.get("Work Log ID").is_some_and(|id| !text_of(Some(id)).trim().is_empty())).collect()
}

/// Reads work logs. Only `View Access` = `Public` is public: anything else (Internal, missing,
/// a label this build does not know) is internal, so a note is never shown wider than meant.
pub fn parse_worklogs(p: &Profile, payload: &Value) -> Vec<WorkLog> {
    worklog_rows(payload)
        .into_iter()
        .map(|v| {
            let get = |k: &str| text_of(v.get(k));
            let view_access = get("View Access");
            let visibility = if view_access.trim().eq_ignore_ascii_case(&p.worklog.public) { Visibility::Public } else { Visibility::Internal };
            let summary = get("Description");
            let details = get("Detailed Description");
            let files: Vec<WorkLogFile> = WORKLOG_FILE_FIELDS
                .iter()
                .filter_map(|f| {
                    let a = v.get(*f)?.as_object()?;
                    let name = text_of(a.get("name"));
                    let size = a.get("sizeBytes").and_then(|n| n.as_i64().or_else(|| n.as_str()?.trim().parse().ok()));
                    (!name.trim().is_empty()).then(|| WorkLogFile { field: f.to_string(), name, size })
                })
                .collect();
            let files_only = !files.is_empty() && details.trim().is_empty() && (summary.trim().is_empty() || files.iter().any(|f| f.name.trim() == summary.trim()));
            // The summary line is often the start of the details (the hub writes it so), or a
            // placeholder such as "." where the form wants one; when it says something of its
            // own, both are kept.
            let summary = if summary.chars().any(char::is_alphanumeric) { summary } else { String::new() };
            let text = match (summary.trim(), details.trim()) {
                ("", _) => details.clone(),
                (s, "") => s.to_string(),
                (s, d) if d.starts_with(s) => details.clone(),
                (s, _) => format!("{s}\n{details}"),
            };
            WorkLog {
                id: get("Work Log ID"),
                incident_number: get("Incident Number"),
                incident_entry_id: get("Incident Entry ID"),
                visibility,
                view_access,
                author: non_empty(get("Work Log Submitter")).or_else(|| non_empty(get("Submitter"))).unwrap_or_else(|| "remedy".into()),
                text,
                created_at: parse_ar_time(&get("Work Log Submit Date")).or_else(|| parse_ar_time(&get("Submit Date"))).or_else(|| parse_ar_time(&get("Work Log Date"))),
                files,
                files_only,
            }
        })
        .collect()
}

// ---- Canonical reading -----------------------------------------------------------------------

fn level(p: &LevelMap, label: &str) -> Option<u8> {
    p.to_canonical.get(label.trim()).copied()
}

/// Maps native values (read names) to canonical ones. `assigned` turns `New` into `assigned`.
pub fn to_canonical(p: &Profile, fields: &BTreeMap<String, String>, assigned: bool) -> Canonical {
    let mut c = Canonical::default();
    let get = |k: &str| fields.get(k).map(|s| s.trim()).unwrap_or("");
    let status = get(STATUS);
    match p.status.to_canonical.get(status).and_then(|s| s.parse::<Status>().ok()) {
        Some(Status::New) if assigned => c.status = Some(Status::Assigned),
        Some(s) => c.status = Some(s),
        None if status.is_empty() => {}
        None => {
            c.unmapped.insert(STATUS.into(), status.into());
        }
    }
    let reason = get(STATUS_REASON);
    if c.status == Some(Status::OnHold) {
        c.hold_reason = Some(match p.hold_reason.to_canonical.get(reason).and_then(|h| h.parse::<HoldReason>().ok()) {
            Some(h) => h,
            None if reason.is_empty() => HoldReason::Other,
            None => {
                c.unmapped.insert(STATUS_REASON.into(), reason.into());
                HoldReason::Other
            }
        });
    }
    for (name, scale) in [(IMPACT, &p.impact), (URGENCY, &p.urgency)] {
        let label = get(name);
        let l = level(scale, label);
        if l.is_none() && !label.is_empty() {
            c.unmapped.insert(name.into(), label.into());
        }
        if name == IMPACT {
            c.impact = l.and_then(Impact::new);
        } else {
            c.urgency = l.and_then(Urgency::new);
        }
    }
    c.title = Some(fields.get(SUMMARY).cloned().unwrap_or_default());
    c.description = Some(fields.get(DETAILS).cloned().unwrap_or_default());
    c.category = non_empty(get(CATEGORY).to_string());
    c.ci = non_empty(get(CI).to_string());
    if matches!(c.status, Some(Status::Resolved) | Some(Status::Closed)) {
        let code = match p.resolution.to_canonical.get(reason) {
            Some(code) => code.clone(),
            None if reason.is_empty() => "other".into(),
            None => {
                c.unmapped.insert(STATUS_REASON.into(), reason.into());
                "other".into()
            }
        };
        c.resolution = Some(Resolution { code, notes: fields.get(RESOLUTION).cloned().unwrap_or_default() });
    }
    c
}

/// Cuts `s` to at most `max` characters (not bytes).
pub fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The native values (read names) the hub wants the Remedy incident to hold. `Resolution` is
/// absent unless the incident is resolved or closed (a reopened incident keeps its text).
pub fn from_canonical(p: &Profile, incident: &Incident) -> BTreeMap<String, String> {
    let incident = &*crate::adapters::aligned_priority(p.priority_matrix.as_ref(), incident);
    let mut m = BTreeMap::new();
    if let Some(s) = p.status.from_canonical.get(incident.status.as_str()) {
        m.insert(STATUS.to_string(), s.clone());
    }
    let reason = match incident.status {
        Status::OnHold => p.hold_reason.from_canonical.get(incident.hold_reason.unwrap_or(HoldReason::Other).as_str()).cloned().unwrap_or_default(),
        Status::Resolved | Status::Closed => match &incident.resolution {
            Some(r) => {
                m.insert(RESOLUTION.into(), r.notes.clone());
                p.resolution.from_canonical.get(&r.code).or_else(|| p.resolution.from_canonical.get("other")).cloned().unwrap_or_default()
            }
            None => String::new(),
        },
        Status::Cancelled => p.cancel_reason.clone().unwrap_or_default(),
        _ => String::new(),
    };
    m.insert(STATUS_REASON.into(), reason);
    if let Some(l) = p.impact.from_canonical.get(&incident.impact.to_string()) {
        m.insert(IMPACT.into(), l.clone());
    }
    if let Some(l) = p.urgency.from_canonical.get(&incident.urgency.to_string()) {
        m.insert(URGENCY.into(), l.clone());
    }
    let title = match p.max_chars(SUMMARY) {
        Some(max) => truncate_chars(&incident.title, max),
        None => incident.title.clone(),
    };
    m.insert(SUMMARY.into(), title);
    m.insert(DETAILS.into(), incident.description.clone());
    m.insert(CATEGORY.into(), incident.category.clone().unwrap_or_default());
    m.insert(CI.into(), incident.ci.clone().unwrap_or_default());
    m
}

/// What the hub pushes, given what the supplier holds: [`from_canonical`], except that a group
/// of native values that already reads as the wanted canonical values is left as it is. So an
/// agent's `4-Minor/Localized` (canonical 3) or `Client Hold` (awaiting the caller) is never
/// rewritten to the profile's own spelling of the same thing.
///
/// A status the profile cannot read (an instance's own) is not fought over either: the hub does
/// not know what it means, so it is left in place (and reported on the leg) unless the hub has
/// to tell the supplier the incident is resolved, closed or cancelled.
pub fn desired(p: &Profile, incident: &Incident, held: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut want = from_canonical(p, incident);
    if held.is_empty() {
        return want;
    }
    // A ticket with an open leg is routed to the supplier, hence at least assigned.
    let reading = |m: &BTreeMap<String, String>| to_canonical(p, m, true);
    let target = reading(&want);
    let held_reading = reading(held);
    if held_reading.unmapped.contains_key(STATUS) && !matches!(incident.status, Status::Resolved | Status::Closed | Status::Cancelled) {
        for f in [STATUS, STATUS_REASON] {
            match held.get(f) {
                Some(v) => want.insert(f.to_string(), v.clone()),
                None => want.remove(f),
            };
        }
    }
    for group in [&[STATUS, STATUS_REASON][..], &[IMPACT], &[URGENCY]] {
        let mut trial = want.clone();
        for f in group {
            match held.get(*f) {
                Some(v) => trial.insert(f.to_string(), v.clone()),
                None => trial.remove(*f),
            };
        }
        let r = reading(&trial);
        let same = r.status == target.status
            && r.hold_reason == target.hold_reason
            && r.impact == target.impact
            && r.urgency == target.urgency
            && r.resolution.as_ref().map(|x| &x.code) == target.resolution.as_ref().map(|x| &x.code)
            && r.unmapped.is_empty();
        if same {
            want = trial;
        }
    }
    want
}

/// The `HPD:IncidentInterface_Create` body for `incident`, in create-form names. A ticket the
/// hub routes to a supplier is assigned to it, so a `new` incident is created `Assigned`.
pub fn create_body(p: &Profile, settings: &RemedySettings, customer_login: Option<&str>, incident: &Incident) -> Value {
    let mut values = Map::new();
    values.insert("z1D_Action".into(), json!("CREATE"));
    for (read, v) in from_canonical(p, incident) {
        if !v.is_empty() {
            values.insert(p.create_name(&read).to_string(), json!(v));
        }
    }
    if matches!(incident.status, Status::New | Status::Assigned) {
        if let Some(s) = p.status.from_canonical.get(Status::Assigned.as_str()) {
            values.insert(p.create_name(STATUS).to_string(), json!(s));
        }
    }
    values.insert(p.create_name("Service Type").to_string(), json!(settings.service_type));
    values.insert(p.create_name("Reported Source").to_string(), json!(settings.reported_source));
    let login = settings.customer_login_id.as_deref().or(customer_login).filter(|l| !l.trim().is_empty());
    match (login, &settings.customer_first_name, &settings.customer_last_name) {
        (Some(l), _, _) => {
            values.insert(p.create_name("Customer Login ID").to_string(), json!(l));
        }
        (None, Some(first), Some(last)) => {
            values.insert(p.create_name("First Name").to_string(), json!(first));
            values.insert(p.create_name("Last Name").to_string(), json!(last));
        }
        _ => {}
    }
    for (read, v) in [
        ("Company", &settings.company),
        ("Assigned Support Company", &settings.support_company),
        ("Assigned Support Organization", &settings.support_organization),
        ("Assigned Group", &settings.support_group),
    ] {
        if let Some(v) = v.as_ref().filter(|v| !v.trim().is_empty()) {
            values.insert(p.create_name(read).to_string(), json!(v));
        }
    }
    values.insert(p.create_name(VENDOR_TICKET).to_string(), json!(incident.reference.as_str()));
    values.insert(p.create_name("Vendor Name").to_string(), json!(settings.vendor_name));
    json!({ "values": values })
}

/// The `PUT` body for changed synced fields: `""` clears a field, which AR spells `null`.
pub fn update_body(changes: &BTreeMap<String, String>) -> Value {
    let values: Map<String, Value> = changes.iter().map(|(k, v)| (k.clone(), if v.is_empty() { Value::Null } else { json!(v) })).collect();
    json!({ "values": values })
}

/// The `HPD:WorkLog` body of a hub note: the body in `Detailed Description`, its first line as
/// the summary, and the view access written out every time (the form's default is Public, so
/// leaving it out would publish an internal note).
pub fn worklog_body(p: &Profile, incident_number: &str, visibility: Visibility, text: &str) -> Value {
    let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let access = match visibility {
        Visibility::Internal => &p.worklog.internal,
        Visibility::Public => &p.worklog.public,
    };
    json!({ "values": {
        "Incident Number": incident_number,
        "Work Log Type": p.worklog.log_type,
        "Description": truncate_chars(first_line, p.worklog.summary_max_chars),
        "Detailed Description": text,
        "View Access": access,
        "Secure Work Log": "No",
    }})
}

// ---- `siam-hub map` ----------------------------------------------------------------------------

/// The canonical document `siam-hub map` prints: an incident (with its work logs) for an entry,
/// the notes alone for a work log list, or the hub's reading of an AR error answer.
pub fn canonical_document(p: &Profile, payload: &Value) -> Result<Value, MapError> {
    if is_error_array(payload) {
        let messages: Vec<Value> =
            parse_errors(payload).iter().map(|m| json!({"type": m.kind, "number": m.number, "text": m.text, "appended": m.appended, "meaning": m.meaning()})).collect();
        return Ok(json!({ "supplier_error": { "system": "remedy", "messages": messages } }));
    }
    let logs = parse_worklogs(p, payload);
    let only_logs = !logs.is_empty() && payload.get("entry").is_none() && incident_values(payload).map(|(v, _)| v.contains_key("Work Log ID")).unwrap_or(true);
    let ts = |t: &Option<DateTime<Utc>>| t.as_ref().map(time::rfc3339);
    let note = |w: &WorkLog| json!({"native_id": w.id, "visibility": w.visibility, "author": w.author, "text": w.text, "created_at": ts(&w.created_at)});
    let files = |logs: &[&WorkLog]| -> Vec<Value> {
        logs.iter().flat_map(|w| w.attachments()).map(|a| json!({"native_id": a.native_id, "file_name": a.file_name, "content_type": a.content_type, "size": a.size})).collect()
    };
    if only_logs {
        let all: Vec<&WorkLog> = logs.iter().collect();
        let files = files(&all);
        // A work log that only holds files is how Remedy carries an upload: a file, not a note.
        let logs: Vec<&WorkLog> = logs.iter().filter(|w| !w.files_only).collect();
        let mut doc = json!({ "notes": logs.iter().map(|w| note(w)).collect::<Vec<_>>() });
        if !files.is_empty() {
            doc["attachments"] = json!(files);
        }
        return Ok(doc);
    }
    let rec = parse_entry(p, payload, false)?;
    // Work logs filed under another incident number are not this incident's notes.
    let own: Vec<&WorkLog> = logs.iter().filter(|w| rec.incident_number.as_deref().is_none_or(|n| w.incident_number.is_empty() || w.incident_number == n)).collect();
    let attachments = files(&own);
    let notes: Vec<Value> = own.iter().filter(|w| !w.files_only).map(|w| note(w)).collect();
    let c = to_canonical(p, &rec.fields, rec.assigned);
    let closed = matches!(c.status, Some(Status::Closed) | Some(Status::Cancelled));
    let mut native = Map::new();
    for (k, v) in [
        ("Request ID", rec.request_id.clone().map(Value::from)),
        ("InstanceId", rec.instance_id.clone().map(Value::from)),
        (STATUS_REASON, non_empty(rec.fields.get(STATUS_REASON).cloned().unwrap_or_default()).map(Value::from)),
        (IMPACT, non_empty(rec.fields.get(IMPACT).cloned().unwrap_or_default()).map(Value::from)),
        (URGENCY, non_empty(rec.fields.get(URGENCY).cloned().unwrap_or_default()).map(Value::from)),
        ("Priority", rec.priority.clone().map(Value::from)),
        ("Priority Weight", rec.priority_weight.clone()),
        ("Service Type", rec.service_type.clone().map(Value::from)),
    ] {
        native.insert(k.to_string(), v.unwrap_or(Value::Null));
    }
    let mut doc = json!({
        "title": c.title,
        "description": c.description,
        "status": c.status,
        "hold_reason": c.hold_reason,
        "impact": c.impact,
        "urgency": c.urgency,
        "priority": rec.priority.as_deref().and_then(|l| p.priority_labels.get(l.trim()).copied()),
        "priority_source": "supplied",
        "category": c.category,
        "ci": c.ci,
        "caller": rec.caller,
        "resolution": c.resolution,
        "opened_at": ts(&rec.submitted),
        "updated_at": ts(&rec.last_modified),
        "resolved_at": ts(&rec.resolved_at),
        "closed_at": ts(&rec.closed_at),
        "correlation_ref": rec.vendor_ticket,
        "notes": notes,
        "legs": [{
            "system": "remedy",
            "native_id": rec.entry_id,
            "native_number": rec.incident_number,
            "native_status": non_empty(rec.fields.get(STATUS).cloned().unwrap_or_default()),
            "state": if closed { "closed" } else { "open" },
            "revision": rec.revision(),
            "form": match rec.shape { Shape::Read => "read", Shape::Create => "create" },
            "native": native,
            "unmapped": c.unmapped,
        }],
    });
    if !attachments.is_empty() {
        doc["attachments"] = json!(attachments);
    }
    Ok(doc)
}

/// The create body `siam-hub map --reverse` prints for a canonical incident document, with the
/// instance-independent defaults (no customer, company or support group).
pub fn native_document(p: &Profile, canonical: &Value) -> Result<Value, MapError> {
    let incident: Incident = serde_json::from_value(canonical.clone()).map_err(|e| MapError(format!("not a canonical incident document: {e}")))?;
    Ok(create_body(p, &RemedySettings::default(), None, &incident))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Arc<Profile> {
        default_profile()
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn profile_loads_and_every_canonical_value_reads_back() {
        let p = p();
        p.check().unwrap();
        for s in Status::ALL {
            let native = &p.status.from_canonical[s.as_str()];
            let assigned = *s != Status::New;
            let c = to_canonical(&p, &fields(&[(STATUS, native), (STATUS_REASON, "Client Hold")]), assigned);
            assert_eq!(c.status, Some(*s));
        }
        assert_eq!(p.create_name(DETAILS), "Detailed_Decription");
        assert_eq!(p.read_name("Service_Type"), "Service Type");
        assert_eq!(p.read_name("Detailed Decription"), DETAILS);
    }

    #[test]
    fn four_levels_fold_into_three_and_the_native_value_is_kept_when_it_means_the_same() {
        let p = p();
        let read = |i: &str, u: &str| {
            let c = to_canonical(&p, &fields(&[(IMPACT, i), (URGENCY, u)]), false);
            (c.impact.map(|x| x.get()), c.urgency.map(|x| x.get()))
        };
        assert_eq!(read("1-Extensive/Widespread", "1-Critical"), (Some(1), Some(1)));
        assert_eq!(read("2-Significant/Large", "2-High"), (Some(1), Some(1)));
        assert_eq!(read("3-Moderate/Limited", "3-Medium"), (Some(2), Some(2)));
        assert_eq!(read("4-Minor/Localized", "4-Low"), (Some(3), Some(3)));
        let c = to_canonical(&p, &fields(&[(IMPACT, "5-Galactic")]), false);
        assert_eq!(c.unmapped.get(IMPACT).map(String::as_str), Some("5-Galactic"));
        assert_eq!(c.impact, None);
    }

    fn incident(status: Status, hold: Option<HoldReason>, impact: u8, urgency: u8) -> Incident {
        serde_json::from_value(json!({
            "ref": "INC-000001", "title": "t", "description": "d", "status": status, "hold_reason": hold,
            "impact": impact, "urgency": urgency, "priority": 3, "priority_source": "derived", "category": null,
            "service": null, "ci": null, "caller": "c", "assigned_supplier": null, "resolution": null, "notes": [],
            "opened_at": "2024-05-15T07:45:00.000Z", "updated_at": "2024-05-15T07:45:00.000Z", "resolved_at": null,
            "closed_at": null, "version": 1, "legs": []
        }))
        .unwrap()
    }

    #[test]
    fn an_instance_priority_matrix_moves_the_labels_the_hub_writes() {
        // The incident is priority 3 (impact 2 x urgency 2); this instance would make that 2.
        let over = json!({"priority_matrix": [[1, 1, 2], [1, 2, 3], [2, 3, 4]]});
        let custom = Profile::with_overrides(Some(&over)).unwrap();
        let inc = incident(Status::Assigned, None, 2, 2);
        let plain = from_canonical(&p(), &inc);
        assert_eq!((plain[IMPACT].as_str(), plain[URGENCY].as_str()), ("3-Moderate/Limited", "3-Medium"));
        let aligned = from_canonical(&custom, &inc);
        assert_eq!((aligned[IMPACT].as_str(), aligned[URGENCY].as_str()), ("3-Moderate/Limited", "4-Low"), "the impact is kept");
        let body = create_body(&custom, &RemedySettings::default(), None, &inc);
        assert_eq!(body["values"]["Urgency"], "4-Low");
        assert!(Profile::with_overrides(Some(&json!({"priority_matrix": [[1, 2]]}))).is_err());
    }

    #[test]
    fn desired_keeps_native_values_that_mean_what_the_hub_wants() {
        let p = p();
        let inc = incident(Status::OnHold, Some(HoldReason::AwaitingCaller), 3, 1);
        let held = fields(&[(STATUS, "Pending"), (STATUS_REASON, "Client Hold"), (IMPACT, "4-Minor/Localized"), (URGENCY, "2-High"), (SUMMARY, "old")]);
        let want = desired(&p, &inc, &held);
        assert_eq!(want[STATUS_REASON], "Client Hold", "a reason meaning awaiting_caller stays");
        assert_eq!(want[URGENCY], "2-High", "2-High already reads as urgency 1");
        assert_eq!(want[IMPACT], "4-Minor/Localized");
        assert_eq!(want[SUMMARY], "t", "other fields still follow the hub");
        // A value meaning something else is replaced by the profile's spelling.
        let inc = incident(Status::OnHold, Some(HoldReason::AwaitingSupplier), 1, 2);
        let want = desired(&p, &inc, &held);
        assert_eq!((want[STATUS_REASON].as_str(), want[IMPACT].as_str(), want[URGENCY].as_str()), ("Third Party Vendor Action Reqd", "1-Extensive/Widespread", "3-Medium"));
        // Leaving hold clears the reason.
        let want = desired(&p, &incident(Status::InProgress, None, 1, 2), &held);
        assert_eq!((want[STATUS].as_str(), want[STATUS_REASON].as_str()), ("In Progress", ""));
        // New with a group already reads as assigned: the hub does not push Assigned over it.
        let want = desired(&p, &incident(Status::Assigned, None, 1, 2), &fields(&[(STATUS, "New")]));
        assert_eq!(want[STATUS], "New");
        // An instance's own status stays until the hub has a resolution to tell.
        let custom = fields(&[(STATUS, "Waiting Approval"), (STATUS_REASON, "Board")]);
        let want = desired(&p, &incident(Status::InProgress, None, 1, 2), &custom);
        assert_eq!((want[STATUS].as_str(), want[STATUS_REASON].as_str()), ("Waiting Approval", "Board"));
        let want = desired(&p, &incident(Status::Cancelled, None, 1, 2), &custom);
        assert_eq!(want[STATUS], "Cancelled");
    }

    #[test]
    fn unknown_status_is_kept_unmapped_not_guessed() {
        let c = to_canonical(&p(), &fields(&[(STATUS, "Waiting Approval")]), true);
        assert_eq!(c.status, None);
        assert_eq!(c.unmapped.get(STATUS).map(String::as_str), Some("Waiting Approval"));
    }

    #[test]
    fn pending_reason_and_resolution_reason_read_canonically() {
        let p = p();
        let c = to_canonical(&p, &fields(&[(STATUS, "Pending"), (STATUS_REASON, "Client Hold")]), true);
        assert_eq!((c.status, c.hold_reason), (Some(Status::OnHold), Some(HoldReason::AwaitingCaller)));
        let c = to_canonical(&p, &fields(&[(STATUS, "Pending"), (STATUS_REASON, "Gone Fishing")]), true);
        assert_eq!(c.hold_reason, Some(HoldReason::Other));
        assert_eq!(c.unmapped.get(STATUS_REASON).map(String::as_str), Some("Gone Fishing"));
        let c = to_canonical(&p, &fields(&[(STATUS, "Resolved"), (STATUS_REASON, "Temporary Corrective Action"), (RESOLUTION, "Rebooted")]), true);
        assert_eq!(c.resolution, Some(Resolution { code: "workaround".into(), notes: "Rebooted".into() }));
        // A reason left over from Pending means nothing once the incident is in progress.
        let c = to_canonical(&p, &fields(&[(STATUS, "In Progress"), (STATUS_REASON, "Client Hold")]), true);
        assert_eq!((c.hold_reason, c.unmapped.len()), (None, 0));
    }

    #[test]
    fn overrides_extend_the_profile_and_bad_ones_are_refused() {
        let over = json!({"status": {"to_canonical": {"Waiting Approval": "on_hold"}}, "impact": {"from_canonical": {"1": "2-Significant/Large"}}});
        let p = Profile::with_overrides(Some(&over)).unwrap();
        assert_eq!(p.status.to_canonical["Waiting Approval"], "on_hold");
        assert_eq!(p.status.to_canonical["Pending"], "on_hold", "the rest of the profile stays");
        assert_eq!(p.impact.from_canonical["1"], "2-Significant/Large");
        let bad = json!({"status": {"from_canonical": {"on_hold": "Waiting Approval"}}});
        assert!(Profile::with_overrides(Some(&bad)).unwrap_err().contains("does not read back"));
        let bad = json!({"urgency": {"to_canonical": {"0-Apocalyptic": 0}}});
        assert!(Profile::with_overrides(Some(&bad)).is_err());
    }

    #[test]
    fn times_parse_in_ar_and_rfc3339_forms() {
        let t = parse_ar_time("2022-06-21T11:08:05.000+0000").unwrap();
        assert_eq!(time::rfc3339(&t), "2022-06-21T11:08:05.000Z");
        assert_eq!(parse_ar_time("2022-06-21T12:08:05.000+0100"), Some(t));
        assert_eq!(parse_ar_time("2022-06-21T11:08:05Z"), Some(t));
        assert_eq!(ar_time(&t), "2022-06-21T11:08:05.000+0000");
        assert_eq!(parse_ar_time("yesterday"), None);
    }

    #[test]
    fn worklogs_fail_closed_on_view_access() {
        let rows = json!({"entries": [
            {"values": {"Work Log ID": "WLG1", "View Access": "Public", "Detailed Description": "hello", "Description": "hello"}},
            {"values": {"Work Log ID": "WLG2", "View Access": null, "Detailed Description": "secret"}},
            {"values": {"Work Log ID": "WLG3", "View Access": "Internal", "Description": "Called the customer", "Detailed Description": "Left a voicemail"}},
            {"values": {"Incident Number": "INC1"}},
        ]});
        let logs = parse_worklogs(&p(), &rows);
        assert_eq!(logs.len(), 3);
        assert_eq!(logs[0].visibility, Visibility::Public);
        assert_eq!(logs[1].visibility, Visibility::Internal);
        assert_eq!(logs[2].text, "Called the customer\nLeft a voicemail");
    }

    #[test]
    fn work_logs_that_only_carry_files_are_attachments_not_notes() {
        let file = |name: &str| json!({"name": name, "sizeBytes": 12, "href": "http://x/api/arsys/v1/entry/HPD:WorkLog/WLG7/attach/z2AF%20Work%20Log01"});
        let rows = json!({"entries": [
            {"values": {"Work Log ID": "WLG7", "Incident Number": "INC1", "View Access": "Internal", "Description": "trace.log", "Detailed Description": null, "z2AF Work Log01": file("trace.log"), "z2AF Work Log02": null}},
            {"values": {"Work Log ID": "WLG8", "Incident Number": "INC1", "View Access": "Public", "Description": "Screenshot", "Detailed Description": "See the error attached", "z2AF Work Log01": file("screen.png"), "z2AF Work Log03": file("more.png")}},
        ]});
        let logs = parse_worklogs(&p(), &rows);
        assert!(logs[0].files_only);
        assert!(!logs[1].files_only, "a work log with a body is a note with files");
        let files: Vec<_> = logs.iter().flat_map(|w| w.attachments()).collect();
        let ids: Vec<&str> = files.iter().map(|f| f.native_id.as_str()).collect();
        assert_eq!(ids, ["WLG7/z2AF Work Log01", "WLG8/z2AF Work Log01", "WLG8/z2AF Work Log03"]);
        assert_eq!((files[1].content_type.as_str(), files[1].size), ("image/png", Some(12)));
        let doc = canonical_document(&p(), &rows).unwrap();
        assert_eq!(doc["notes"].as_array().unwrap().len(), 1, "{doc}");
        assert_eq!(doc["attachments"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn nothing_panics_on_odd_payloads() {
        let p = p();
        for v in [
            json!(null),
            json!(7),
            json!("x"),
            json!([]),
            json!([1, 2]),
            json!({"entries": 3}),
            json!({"values": []}),
            json!({"entry": {"entries": []}}),
            json!({"values": {"Status": {"a": 1}, "Request ID": 5}}),
        ] {
            let _ = parse_entry(&p, &v, true);
            let _ = canonical_document(&p, &v);
            let _ = parse_worklogs(&p, &v);
            let _ = parse_errors(&v);
        }
    }
}
