//! The unified record as a TMF621 v4 TroubleTicket, and TMF621 request bodies read as canonical
//! requests. Pure: no I/O.
//!
//! The vocabularies are the TMF621 adapter's (`adapters/tmf621/profile.json`), so the hub speaks
//! TMF621 the way it reads it from suppliers: `severity` is the impact (Critical, Major, Minor),
//! `priority` the hub's priority label, `pending`/`held` the hold, the hold reason the
//! `statusChangeReason` label. Impact, urgency, category and resolution code also travel in
//! `troubleTicketCharacteristic`, which TMF621 v4 clients may ignore. Internal notes are never
//! rendered: the TMF621 API serves customers and suppliers. The record's files are listed in
//! `attachment[]` by reference, with a `url` to their content on the hub's own API.

use crate::adapters::tmf621::mapping::{self as tmf, Instance};
use crate::domain::*;
use crate::store::tmf621::StatusEntry;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

pub const BASE_PATH: &str = "/tmf-api/troubleTicket/v4";

fn vocabulary() -> &'static Instance {
    static V: OnceLock<Instance> = OnceLock::new();
    V.get_or_init(Instance::default)
}

/// A refused request body, as a TMF630 error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    pub code: &'static str,
    pub reason: &'static str,
    pub message: String,
}

fn missing(field: &str) -> BodyError {
    BodyError { code: "23", reason: "Missing body field", message: format!("{field} is mandatory") }
}

fn invalid(field: &str, detail: impl Into<String>) -> BodyError {
    BodyError { code: "24", reason: "Invalid body field", message: format!("{field}: {}", detail.into()) }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The TroubleTicket the hub shows for `inc`; `base_url` prefixes `href` (may be empty).
pub fn trouble_ticket(base_url: &str, inc: &Incident, external_id: Option<&str>, history: &[StatusEntry]) -> Value {
    let v = vocabulary();
    let ts = |t: &chrono::DateTime<chrono::Utc>| time::rfc3339(t);
    let reason = |status: Status, hold: Option<HoldReason>| -> Value {
        match status {
            Status::OnHold => json!(tmf::hold_label(hold.unwrap_or(HoldReason::Other))),
            _ => Value::Null,
        }
    };
    let mut changes = vec![json!({ "status": "acknowledged", "changeDate": ts(&inc.opened_at), "changeReason": Value::Null, "@type": "StatusChange" })];
    let mut last = ("acknowledged".to_string(), inc.opened_at);
    for e in history {
        let Ok(status) = e.status.parse::<Status>() else { continue };
        let hold = e.hold_reason.as_deref().and_then(|h| h.parse::<HoldReason>().ok());
        let s = tmf::tmf_status(status, hold);
        // `new` -> `assigned` is no TMF status change: both are `acknowledged`.
        if s == last.0 && status != Status::OnHold {
            continue;
        }
        changes.push(json!({ "status": s, "changeDate": ts(&e.at), "changeReason": reason(status, hold), "@type": "StatusChange" }));
        last = (s, e.at);
    }
    let status_reason = match inc.status {
        Status::Resolved | Status::Closed => inc.resolution.as_ref().map(|r| json!(r.notes)).unwrap_or(Value::Null),
        s => reason(s, inc.hold_reason),
    };
    let notes: Vec<Value> = inc
        .notes
        .iter()
        .filter(|n| n.visibility == Visibility::Public)
        .map(|n| json!({ "id": n.id.to_string(), "author": n.author, "date": ts(&n.created_at), "text": n.text, "@type": "Note" }))
        .collect();
    let mut parties = vec![json!({ "id": inc.caller, "name": inc.caller, "role": "originator", "@referredType": "Individual", "@type": "RelatedParty" })];
    if let Some(s) = &inc.assigned_supplier {
        parties.push(json!({ "id": s, "name": s, "role": "assignee", "@referredType": "Organization", "@type": "RelatedParty" }));
    }
    let mut entities = vec![];
    if let Some(s) = &inc.service {
        entities.push(json!({ "id": s, "name": s, "role": "affectedService", "@referredType": "Service", "@type": "RelatedEntity" }));
    }
    if let Some(c) = &inc.ci {
        entities.push(json!({ "id": c, "name": c, "role": "affectedCI", "@referredType": "Resource", "@type": "RelatedEntity" }));
    }
    let ch = &tmf::profile().characteristics;
    let mut chars = vec![tmf::characteristic(&ch.impact, &inc.impact.to_string()), tmf::characteristic(&ch.urgency, &inc.urgency.to_string())];
    if let Some(c) = &inc.category {
        chars.push(tmf::characteristic(&ch.category, c));
    }
    if let Some(r) = &inc.resolution {
        chars.push(tmf::characteristic(&ch.resolution_code, &r.code));
    }
    let label = |labels: &[String], level: u8| labels.get(usize::from(level) - 1).cloned().unwrap_or_else(|| level.to_string());
    let files: Vec<Value> = inc
        .attachments
        .iter()
        .map(|a| {
            json!({
                "id": a.id.to_string(),
                "name": a.file_name,
                "mimeType": a.content_type,
                "size": { "amount": a.size, "units": "bytes" },
                "url": format!("{base_url}/api/v1/incidents/{}/attachments/{}", inc.reference, a.id),
                "creationDate": ts(&a.created_at),
                "@type": "Attachment",
            })
        })
        .collect();
    let mut ticket = json!({
        "id": inc.reference.as_str(),
        "href": format!("{base_url}{BASE_PATH}/troubleTicket/{}", inc.reference),
        "name": inc.title,
        "description": inc.description,
        "severity": label(&v.severity_labels, inc.impact.get()),
        "priority": label(&v.priority_labels, inc.priority.get()),
        "ticketType": "incident",
        "status": tmf::tmf_status(inc.status, inc.hold_reason),
        "statusChangeDate": ts(&last.1),
        "statusChangeReason": status_reason,
        "statusChange": changes,
        "creationDate": ts(&inc.opened_at),
        "lastUpdate": ts(&inc.updated_at),
        "resolutionDate": inc.resolved_at.as_ref().map(ts),
        "externalId": external_id,
        "note": notes,
        "relatedParty": parties,
        "relatedEntity": entities,
        "troubleTicketCharacteristic": chars,
        "@type": "TroubleTicket",
    });
    if !files.is_empty() {
        ticket["attachment"] = Value::Array(files);
    }
    ticket
}

/// Keeps `id`, `href`, `@type` and the attributes named in a TMF `fields` parameter.
pub fn project(v: Value, fields: Option<&str>) -> Value {
    let Some(fields) = fields.filter(|f| !f.trim().is_empty()) else { return v };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    match v {
        Value::Object(o) => Value::Object(o.into_iter().filter(|(k, _)| matches!(k.as_str(), "id" | "href" | "@type") || wanted.contains(&k.as_str())).collect()),
        other => other,
    }
}

fn characteristics(o: &Map<String, Value>) -> BTreeMap<String, String> {
    o.get("troubleTicketCharacteristic")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((text(c.get("name"))?.to_ascii_lowercase(), text(c.get("value")).unwrap_or_default())))
        .collect()
}

fn level3(field: &str, v: &str) -> Result<u8, BodyError> {
    v.trim().parse::<u8>().ok().filter(|l| (1..=3).contains(l)).ok_or_else(|| invalid(field, format!("`{v}` is not 1, 2 or 3")))
}

fn impact_of(severity: &str) -> Result<u8, BodyError> {
    let v = vocabulary();
    v.severity_level(severity).ok_or_else(|| invalid("severity", format!("`{severity}` is not one of {}", v.severity_labels.join(", "))))
}

/// TMF `priority` read as urgency: Critical/High = 1, Medium = 2, Low/Planning = 3.
fn urgency_of(priority: &str) -> Result<u8, BodyError> {
    let v = vocabulary();
    let p = Instance::level_of(&v.priority_labels, priority).ok_or_else(|| invalid("priority", format!("`{priority}` is not one of {}", v.priority_labels.join(", "))))?;
    Ok(match p {
        1 | 2 => 1,
        3 => 2,
        _ => 3,
    })
}

/// `relatedEntity` / `relatedParty` entries with the given roles, flat or v5-nested.
fn referenced(o: &Map<String, Value>, key: &str, inner: &str, roles: &[String]) -> Option<String> {
    let squash = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
    o.get(key).and_then(Value::as_array).into_iter().flatten().find_map(|e| {
        let target = e.get(inner).filter(|t| t.is_object()).unwrap_or(e);
        let role = text(e.get("role")).or_else(|| text(target.get("@referredType"))).unwrap_or_default();
        roles.iter().any(|r| squash(r) == squash(&role)).then(|| text(target.get("name")).filter(|n| !n.is_empty()).or_else(|| text(target.get("id"))))?
    })
}

/// The texts of the new notes in a body. A note's `author` is not read: notes are written by the
/// caller's key, whoever the body names.
fn notes_of(o: &Map<String, Value>, known: &[String]) -> Result<Vec<String>, BodyError> {
    let Some(items) = o.get("note") else { return Ok(vec![]) };
    let items = items.as_array().ok_or_else(|| invalid("note", "expected an array"))?;
    let mut out = vec![];
    for n in items {
        if text(n.get("id")).is_some_and(|id| known.contains(&id)) {
            continue; // a note the ticket already has (a client re-sending the whole array)
        }
        let body = text(n.get("text")).filter(|t| !t.trim().is_empty()).ok_or_else(|| missing("note.text"))?;
        out.push(body);
    }
    Ok(out)
}

/// Files are not taken inline in a ticket body (bodies are kept small): an `attachment` entry
/// that is not a file the ticket already holds is refused, saying where files go, rather than
/// dropped.
fn check_attachments(o: &Map<String, Value>, held: &[String]) -> Result<(), BodyError> {
    let Some(items) = o.get("attachment") else { return Ok(()) };
    let items = items.as_array().ok_or_else(|| invalid("attachment", "expected an array"))?;
    if items.iter().any(|a| !text(a.get("id")).is_some_and(|id| held.contains(&id))) {
        return Err(invalid("attachment", "new files are not taken in a TroubleTicket body; POST each file to /api/v1/incidents/{id}/attachments?file_name=<name>"));
    }
    Ok(())
}

/// A `POST /troubleTicket` body read as a hub incident.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    pub new: NewIncident,
    pub external_id: Option<String>,
    /// Texts of notes given with the ticket; they become public notes.
    pub notes: Vec<String>,
}

/// Reads a `TroubleTicket_Create`. Impact comes from `severity` (or an `impact`
/// characteristic); urgency from an `urgency` characteristic, else from `priority`, else it
/// equals the impact. The caller is the originator party, else `fallback_caller`.
pub fn read_create(body: &Value, fallback_caller: &str) -> Result<CreateRequest, BodyError> {
    let o = body.as_object().ok_or_else(|| BodyError { code: "22", reason: "Invalid body", message: "expected a TroubleTicket object".into() })?;
    let description = text(o.get("description")).filter(|d| !d.trim().is_empty()).ok_or_else(|| missing("description"))?;
    let severity = text(o.get("severity")).filter(|d| !d.trim().is_empty()).ok_or_else(|| missing("severity"))?;
    text(o.get("ticketType")).filter(|d| !d.trim().is_empty()).ok_or_else(|| missing("ticketType"))?;
    check_attachments(o, &[])?;
    let chars = characteristics(o);
    let impact = match chars.get("impact") {
        Some(i) => level3("troubleTicketCharacteristic impact", i)?,
        None => impact_of(&severity)?,
    };
    let urgency = match (chars.get("urgency"), text(o.get("priority"))) {
        (Some(u), _) => level3("troubleTicketCharacteristic urgency", u)?,
        (None, Some(p)) if !p.trim().is_empty() => urgency_of(&p)?,
        _ => impact,
    };
    let title = text(o.get("name")).filter(|n| !n.trim().is_empty()).unwrap_or_else(|| description.lines().next().unwrap_or("").chars().take(160).collect());
    let roles = &tmf::profile().roles;
    let service = referenced(o, "relatedEntity", "entity", &roles.service).or_else(|| chars.get("service").cloned());
    let ci = referenced(o, "relatedEntity", "entity", &roles.ci).or_else(|| chars.get("ci").cloned());
    if service.is_none() && ci.is_none() {
        return Err(missing("relatedEntity (an affectedService or affectedCI)"));
    }
    let caller = referenced(o, "relatedParty", "partyOrPartyRole", &roles.caller).filter(|c| !c.trim().is_empty()).unwrap_or_else(|| fallback_caller.to_string());
    let external_id = text(o.get("externalId"))
        .or_else(|| o.get("externalIdentifier").and_then(Value::as_array).and_then(|a| a.first()).and_then(|e| text(e.get("id"))))
        .filter(|e| !e.trim().is_empty());
    let new = NewIncident {
        title,
        description,
        service,
        ci,
        impact: Impact::new(impact).ok_or_else(|| invalid("severity", "out of range"))?,
        urgency: Urgency::new(urgency).ok_or_else(|| invalid("priority", "out of range"))?,
        caller,
        category: chars.get("category").filter(|c| !c.is_empty()).cloned(),
    };
    Ok(CreateRequest { new, external_id, notes: notes_of(o, &[])? })
}

/// A `PATCH /troubleTicket/{id}` body read as changes and new notes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatchRequest {
    pub changes: IncidentChanges,
    pub notes: Vec<String>,
}

/// Reads a merge-patch against the incident as it stands (for hold and resolution defaults).
pub fn read_patch(body: &Value, current: &Incident) -> Result<PatchRequest, BodyError> {
    let o = body.as_object().ok_or_else(|| BodyError { code: "22", reason: "Invalid body", message: "expected a JSON merge-patch object".into() })?;
    check_attachments(o, &current.attachments.iter().map(|a| a.id.to_string()).collect::<Vec<_>>())?;
    let p = tmf::profile();
    let chars = characteristics(o);
    let mut ch = IncidentChanges::default();
    let reason = text(o.get("statusChangeReason")).unwrap_or_default();
    let hold_by_label = p.hold.labels.iter().find(|(_, l)| l.eq_ignore_ascii_case(reason.trim())).and_then(|(k, _)| k.parse::<HoldReason>().ok());
    if let Some(raw) = o.get("status") {
        let raw = text(Some(raw)).ok_or_else(|| invalid("status", "expected a string"))?;
        let status = vocabulary().normalise_status(&raw);
        match status.as_str() {
            "acknowledged" if matches!(current.status, Status::New | Status::Assigned) => {}
            "acknowledged" => return Err(invalid("status", "a ticket in work cannot go back to acknowledged")),
            "inProgress" => ch.status = Some(Status::InProgress),
            "pending" | "held" => {
                ch.status = Some(Status::OnHold);
                let default = p.hold.default.get(status.as_str()).and_then(|d| d.parse::<HoldReason>().ok());
                ch.hold_reason = Some(hold_by_label.or(default).or(Some(HoldReason::Other)));
            }
            "resolved" => {
                ch.status = Some(Status::Resolved);
                let code = match chars.get(&p.characteristics.resolution_code.to_ascii_lowercase()) {
                    Some(c) if p.resolution_codes.iter().any(|k| k == c) => c.clone(),
                    Some(c) => return Err(invalid("troubleTicketCharacteristic resolutionCode", format!("`{c}` is not one of {}", p.resolution_codes.join(", ")))),
                    None => current.resolution.as_ref().map(|r| r.code.clone()).unwrap_or_else(|| "other".into()),
                };
                ch.resolution = Some(Some(Resolution { code, notes: reason.clone() }));
            }
            "closed" => ch.status = Some(Status::Closed),
            "cancelled" => ch.status = Some(Status::Cancelled),
            "rejected" => return Err(invalid("status", "rejected is a supplier's answer; cancel the ticket instead")),
            other => return Err(invalid("status", format!("`{other}` is not a TroubleTicketStatusType ({})", p.status.values.join(", ")))),
        }
    } else if current.status == Status::OnHold && hold_by_label.is_some() {
        ch.hold_reason = Some(hold_by_label);
    }
    if let Some(n) = o.get("name") {
        ch.title = Some(text(Some(n)).filter(|t| !t.trim().is_empty()).ok_or_else(|| invalid("name", "must be a non-empty string"))?);
    }
    if let Some(d) = o.get("description") {
        ch.description = Some(text(Some(d)).ok_or_else(|| invalid("description", "expected a string"))?);
    }
    if let Some(i) = chars.get("impact") {
        ch.impact = Impact::new(level3("troubleTicketCharacteristic impact", i)?);
    } else if let Some(s) = o.get("severity") {
        ch.impact = Impact::new(impact_of(&text(Some(s)).unwrap_or_default())?);
    }
    if let Some(u) = chars.get("urgency") {
        ch.urgency = Urgency::new(level3("troubleTicketCharacteristic urgency", u)?);
    } else if let Some(pr) = o.get("priority") {
        ch.urgency = Urgency::new(urgency_of(&text(Some(pr)).unwrap_or_default())?);
    }
    if let Some(c) = chars.get("category") {
        ch.category = Some(Some(c.clone()).filter(|c| !c.is_empty()));
    }
    if o.contains_key("relatedEntity") {
        ch.ci = Some(referenced(o, "relatedEntity", "entity", &p.roles.ci));
    }
    let known: Vec<String> = current.notes.iter().map(|n| n.id.to_string()).collect();
    Ok(PatchRequest { changes: ch, notes: notes_of(o, &known)? })
}

/// The TMF621 event a hub event becomes, with the changed attributes of an attribute-value
/// change; `None` for events a TMF621 subscriber does not hear of (internal notes included).
pub fn event_for(cloud_event_type: &str, data: &Value) -> Option<(&'static str, Option<String>)> {
    match cloud_event_type {
        "incident.created" => Some(("TroubleTicketCreateEvent", None)),
        "incident.status_changed" => Some(("TroubleTicketStatusChangeEvent", None)),
        "incident.note_added" if data.get("visibility").and_then(Value::as_str) == Some("public") => Some(("TroubleTicketAttributeValueChangeEvent", Some("note".into()))),
        "incident.updated" => {
            let mut paths: Vec<&str> = data
                .get("changes")
                .and_then(Value::as_object)
                .map(|c| {
                    c.keys()
                        .map(|k| match k.as_str() {
                            "title" => "name",
                            "impact" => "severity",
                            "urgency" | "priority" => "priority",
                            "hold_reason" | "resolution" => "statusChangeReason",
                            "ci" => "relatedEntity",
                            "description" => "description",
                            _ => "troubleTicketCharacteristic",
                        })
                        .collect()
                })
                .unwrap_or_default();
            paths.sort_unstable();
            paths.dedup();
            Some(("TroubleTicketAttributeValueChangeEvent", Some(paths.join(","))))
        }
        _ => None,
    }
}

/// Whether a subscription `query` (`eventType=A,B` or repeated `eventType=`) wants `kind`.
pub fn query_wants(query: &str, kind: &str) -> bool {
    let wanted: Vec<String> = url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
        .filter(|(k, _)| k == "eventType")
        .flat_map(|(_, v)| v.split(',').map(tmf::canonical_event_type).collect::<Vec<_>>())
        .collect();
    wanted.is_empty() || wanted.iter().any(|w| w == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn incident() -> Incident {
        let doc = json!({
            "ref": "INC-000042", "title": "Core switch down", "description": "No network", "status": "on_hold",
            "hold_reason": "awaiting_change", "impact": 1, "urgency": 2, "priority": 2, "priority_source": "derived",
            "category": "network", "service": "network", "ci": "sw-02", "caller": "j.smith", "assigned_supplier": "sn-network",
            "resolution": null, "notes": [
                {"id": 1, "visibility": "internal", "author": "sd", "text": "VIP caller", "origin": "hub", "created_at": "2024-05-14T06:52:10.000Z"},
                {"id": 2, "visibility": "public", "author": "sd", "text": "On it", "origin": "hub", "created_at": "2024-05-14T06:53:10.000Z"}
            ],
            "opened_at": "2024-05-14T06:50:00.000Z", "updated_at": "2024-05-14T07:00:00.000Z", "resolved_at": null, "closed_at": null,
            "version": 5, "legs": []
        });
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn renders_the_record_without_internal_notes() {
        let inc = incident();
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let history = vec![
            StatusEntry { status: "assigned".into(), hold_reason: None, at: at("2024-05-14T06:51:00Z") },
            StatusEntry { status: "on_hold".into(), hold_reason: Some("awaiting_change".into()), at: at("2024-05-14T06:59:00Z") },
        ];
        let t = trouble_ticket("https://hub", &inc, Some("CUST-9"), &history);
        assert_eq!(t["id"], "INC-000042");
        assert_eq!(t["href"], "https://hub/tmf-api/troubleTicket/v4/troubleTicket/INC-000042");
        assert_eq!(t["status"], "held", "awaiting_change is a deliberate pause");
        assert_eq!(t["statusChangeReason"], "Awaiting change");
        assert_eq!(t["severity"], "Critical");
        assert_eq!(t["priority"], "High");
        assert_eq!(t["externalId"], "CUST-9");
        assert_eq!(t["statusChange"].as_array().unwrap().len(), 2, "{}", t["statusChange"]);
        assert_eq!(t["statusChangeDate"], "2024-05-14T06:59:00.000Z");
        let notes = t["note"].as_array().unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0]["text"], "On it");
        assert_eq!(project(t, Some("status")).as_object().unwrap().len(), 4);
    }

    #[test]
    fn reads_a_create_body_with_every_fallback() {
        let body = json!({"description": "Printer jams\nSince Monday", "severity": "Minor", "ticketType": "incident",
            "relatedEntity": [{"role": "affectedService", "entity": {"id": "printing"}}],
            "relatedParty": [{"role": "originator", "name": "m.jones"}], "externalId": "CUST-1", "note": [{"text": "hello"}]});
        let r = read_create(&body, "api:abc").unwrap();
        assert_eq!(r.new.title, "Printer jams");
        assert_eq!((r.new.impact.get(), r.new.urgency.get()), (3, 3));
        assert_eq!(r.new.service.as_deref(), Some("printing"));
        assert_eq!(r.new.caller, "m.jones");
        assert_eq!(r.external_id.as_deref(), Some("CUST-1"));
        assert_eq!(r.notes.len(), 1);
        let mut b2 = body.clone();
        b2["priority"] = json!("High");
        assert_eq!(read_create(&b2, "x").unwrap().new.urgency.get(), 1);
        b2["severity"] = json!("Apocalyptic");
        assert_eq!(read_create(&b2, "x").unwrap_err().code, "24");
        let none = json!({"description": "d", "severity": "Major", "ticketType": "incident"});
        assert_eq!(read_create(&none, "x").unwrap_err().code, "23");
        assert!(read_create(&json!([]), "x").is_err());
    }

    #[test]
    fn reads_a_patch_against_the_current_record() {
        let inc = incident();
        let p = read_patch(&json!({"status": "pending", "statusChangeReason": "Awaiting evidence"}), &inc).unwrap();
        assert_eq!((p.changes.status, p.changes.hold_reason), (Some(Status::OnHold), Some(Some(HoldReason::AwaitingEvidence))));
        let p = read_patch(&json!({"status": "resolved", "statusChangeReason": "Replaced the PSU"}), &inc).unwrap();
        assert_eq!(p.changes.resolution, Some(Some(Resolution { code: "other".into(), notes: "Replaced the PSU".into() })));
        let p = read_patch(&json!({"note": [{"id": "2", "text": "On it"}, {"text": "new"}]}), &inc).unwrap();
        assert_eq!(p.notes, vec!["new".to_string()]);
        assert!(read_patch(&json!({"status": "rejected"}), &inc).is_err());
        assert!(read_patch(&json!({"status": "sleeping"}), &inc).is_err());
    }

    #[test]
    fn hub_events_become_tmf_events_and_internal_notes_none() {
        assert_eq!(event_for("incident.status_changed", &json!({})).unwrap().0, "TroubleTicketStatusChangeEvent");
        assert!(event_for("incident.note_added", &json!({"visibility": "internal"})).is_none());
        assert_eq!(event_for("incident.updated", &json!({"changes": {"title": "x", "urgency": 1, "priority": 1}})).unwrap().1.as_deref(), Some("name,priority"));
        assert!(query_wants("eventType=TroubleTicketStateChangeEvent", "TroubleTicketStatusChangeEvent"));
        assert!(query_wants("", "TroubleTicketCreateEvent"));
        assert!(!query_wants("eventType=TroubleTicketCreateEvent", "TroubleTicketStatusChangeEvent"));
    }
}
