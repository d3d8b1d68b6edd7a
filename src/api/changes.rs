//! `/api/v1/changes`: raise a change once, move it through its gates, decide on it as an
//! integrated CAB, follow each supplier's leg, and read the forward schedule (JSON or
//! iCalendar).
//!
//! The service desk and the change manager raise and edit changes; the change manager (or an
//! administrator) authorises, schedules, implements and closes them; a supplier sees only the
//! changes it holds a leg of and reports its leg's progress and its approval.

use super::auth::{Principal, Role};
use super::error::ApiError;
use super::incidents::{check_services, decode_cursor, encode_cursor, idempotency_header, idempotency_key, if_match};
use super::{correlation_id, parse_json, read_body, AppState};
use crate::domain::change::lifecycle::Approver;
use crate::domain::change::request::{Acknowledgement, ApprovalRequest, ChangePatch, DecisionWord, Draft, LegUpdate, NewChange};
use crate::domain::change::{ChangeRef, ChangeStatus, ChangeType, Risk};
use crate::domain::time::rfc3339;
use crate::domain::{Impact, Urgency, Visibility};
use crate::store::change::{self, ListFilter, Rules};
use crate::store::record::Context;
use crate::validation::{self, Doc};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

/// The roles that raise and edit changes.
const RAISE: &[Role] = &[Role::ServiceDesk, Role::ChangeManager];

pub(super) use crate::store::change::rules_of;

/// Runs `f` on the record with the change rules of the configuration.
async fn with_rules<T: Send + 'static>(
    state: &web::Data<AppState>,
    f: impl FnOnce(&mut diesel::PgConnection, &Rules<'_>) -> crate::store::StoreResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    let settings = state.settings.clone();
    Ok(state.store.run(move |c| f(c, &rules_of(&settings.changes))).await?)
}

fn ctx(p: &Principal, req: &HttpRequest) -> Context {
    Context { source: p.source(), supplier: p.supplier.clone().filter(|_| p.role == Role::Supplier), correlation_id: correlation_id(req) }
}

fn parse_ref(raw: &str) -> Result<ChangeRef, ApiError> {
    raw.parse::<ChangeRef>().map_err(ApiError::not_found)
}

fn etag(version: i32) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable("schema-violation", "Invalid change request", e.to_string())
}

/// Reads a JSON body into a typed request; unknown fields and wrong values answer 422 naming them.
async fn body_of<T: DeserializeOwned>(state: &AppState, body: web::Payload) -> Result<T, ApiError> {
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    serde_json::from_value(parse_json(&bytes)?).map_err(invalid)
}

fn ok(doc: change::ChangeDoc) -> HttpResponse {
    let (h, v) = etag(doc.change.version);
    HttpResponse::Ok().insert_header((h, v)).json(doc)
}

/// Completes a request from its template: a standard change is raised from one, and takes the
/// template's values for whatever the request leaves out.
fn draft(state: &AppState, new: NewChange) -> Result<Draft, ApiError> {
    let template = match &new.template {
        None => None,
        Some(name) => Some(state.settings.changes.templates.iter().find(|t| &t.name == name).ok_or_else(|| {
            let known: Vec<&str> = state.settings.changes.templates.iter().map(|t| t.name.as_str()).collect();
            ApiError::unprocessable("unknown-template", "Unknown change template", format!("template `{name}` is not configured; templates: {}", known.join(", ")))
        })?),
    };
    let change_type = new.change_type.unwrap_or(if template.is_some() { ChangeType::Standard } else { ChangeType::Normal });
    if change_type == ChangeType::Standard && template.is_none() {
        return Err(invalid("a standard change is raised from a pre-approved template: name one in `template`"));
    }
    if template.is_some() && change_type != ChangeType::Standard {
        return Err(invalid("a change raised from a template is a standard change"));
    }
    let title = new.title.or_else(|| template.map(|t| t.title.clone())).filter(|t| !t.trim().is_empty()).ok_or_else(|| invalid("title is required"))?;
    let risk = match (new.risk, template.and_then(|t| t.risk)) {
        (Some(r), _) => r,
        (None, Some(r)) => Risk::new(r).ok_or_else(|| invalid("the template's risk is out of range"))?,
        (None, None) => Risk::new(3).ok_or_else(|| invalid("risk"))?,
    };
    let pick = |v: Option<String>, t: fn(&crate::config::ChangeTemplate) -> &String| v.or_else(|| template.map(|x| t(x).clone())).unwrap_or_default();
    let d = Draft {
        title,
        description: pick(new.description, |t| &t.description),
        change_type,
        risk,
        impact: new.impact.unwrap_or(Impact::new(3).ok_or_else(|| invalid("impact"))?),
        urgency: new.urgency.unwrap_or(Urgency::new(3).ok_or_else(|| invalid("urgency"))?),
        services: new.services.or_else(|| template.map(|t| t.services.clone())).unwrap_or_default(),
        cis: new.cis.or_else(|| template.map(|t| t.cis.clone())).unwrap_or_default(),
        planned_start: new.planned_start,
        planned_end: new.planned_end,
        implementation_plan: pick(new.implementation_plan, |t| &t.implementation_plan),
        backout_plan: pick(new.backout_plan, |t| &t.backout_plan),
        test_plan: pick(new.test_plan, |t| &t.test_plan),
        template: new.template,
    };
    if let (Some(s), Some(e)) = (d.planned_start, d.planned_end) {
        if e <= s {
            return Err(invalid("planned_end must be after planned_start"));
        }
    }
    check_services(state, &d.services)?;
    Ok(d)
}

/// `POST /api/v1/changes`: a new change, in `draft`.
pub async fn create(req: HttpRequest, p: Principal, state: web::Data<AppState>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    p.require(RAISE)?;
    let new: NewChange = body_of(&state, body).await?;
    let d = draft(&state, new)?;
    let idem = idempotency_key(idempotency_header(&req), &p, change::request_hash(&d))?;
    let c = ctx(&p, &req);
    let (doc, replayed) = with_rules(&state, move |conn, rules| change::create(conn, &c, rules, idem.as_ref(), &d)).await?;
    let (h, v) = etag(doc.change.version);
    let mut resp = HttpResponse::Created();
    resp.insert_header((h, v)).insert_header((header::LOCATION, format!("/api/v1/changes/{}", doc.change.reference)));
    if replayed {
        resp.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(resp.json(doc))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    service: Option<String>,
    supplier: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    format: Option<String>,
}

fn bad_query(d: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query parameter", d)
}

fn instant(name: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.as_deref()
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc()))
                .map_err(|_| bad_query(format!("{name} must be an RFC 3339 instant or a date (2026-12-01), got `{s}`")))
        })
        .transpose()
}

fn filter_of(p: &Principal, q: &ListQuery) -> Result<ListFilter, ApiError> {
    let filter = ListFilter {
        status: q.status.as_deref().map(str::parse::<ChangeStatus>).transpose().map_err(|e| bad_query(e.to_string()))?,
        service: q.service.clone(),
        supplier: q.supplier.clone(),
        from: instant("from", &q.from)?,
        to: instant("to", &q.to)?,
        visible_to_supplier: p.scoped_supplier()?.map(str::to_string),
    };
    if let (Some(f), Some(t)) = (filter.from, filter.to) {
        if t <= f {
            return Err(bad_query("to must be after from"));
        }
    }
    Ok(filter)
}

/// `GET /api/v1/changes?status=&service=&supplier=&from=&to=&limit=&cursor=`
pub async fn list(p: Principal, state: web::Data<AppState>, q: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let filter = filter_of(&p, &q)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad_query(format!("limit must be 1..200, got {limit}")));
    }
    let after = decode_cursor(q.cursor.as_deref(), "change")?;
    let (items, next) = with_rules(&state, move |c, rules| change::list(c, rules, &filter, after, limit)).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next_cursor": next.map(|id| encode_cursor("change", id)) })))
}

/// Loads a change as the caller may see it (a supplier: only one it holds a leg of).
async fn load(state: &web::Data<AppState>, p: &Principal, r: &ChangeRef) -> Result<change::ChangeDoc, ApiError> {
    let viewer = p.scoped_supplier()?.map(str::to_string);
    let r = r.clone();
    with_rules(state, move |c, rules| change::load(c, rules, r.as_str(), viewer.as_deref())).await
}

/// `GET /api/v1/changes/{ref}`
pub async fn get(p: Principal, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(ok(load(&state, &p, &parse_ref(&path)?).await?))
}

/// The moves only the change manager (or an administrator) may make: the CAB's and the
/// implementation's decisions. The desk submits a draft, withdraws a change and edits it.
fn may_move(p: &Principal, from: &str, to: ChangeStatus) -> Result<(), ApiError> {
    if from == ChangeStatus::Draft.as_str() || to == ChangeStatus::Cancelled {
        return Ok(());
    }
    p.require(&[Role::ChangeManager]).map_err(|_| ApiError::forbidden(format!("moving a change from {from} to {to} needs a change_manager key")))
}

/// `PATCH /api/v1/changes/{ref}` (JSON merge patch, `If-Match` required); a `status` moves the
/// change through its gates, and a refused move answers 409 with everything missing.
pub async fn patch(req: HttpRequest, p: Principal, state: web::Data<AppState>, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    p.require(RAISE)?;
    let r = parse_ref(&path)?;
    let version = if_match(&req)?;
    let patch: ChangePatch = body_of(&state, body).await?;
    if let Some(to) = patch.status {
        may_move(&p, &load(&state, &p, &r).await?.change.status, to)?;
    }
    if let Some(s) = &patch.services {
        check_services(&state, s)?;
    }
    let c = ctx(&p, &req);
    let router = state.router.clone();
    let doc = with_rules(&state, move |conn, rules| {
        let legs_for = |services: &[String], cis: &[String]| router.for_change(services, cis);
        let ed = change::Editor { ctx: &c, legs_for: &legs_for, now: Utc::now() };
        change::update(conn, &ed, rules, r.as_str(), version, &patch)
    })
    .await?;
    Ok(ok(doc))
}

/// `PATCH /api/v1/changes/{ref}/legs/{supplier}`: a supplier reports its leg's progress and
/// window; the change manager may also order the legs (`depends_on`).
pub async fn update_leg(req: HttpRequest, p: Principal, state: web::Data<AppState>, path: web::Path<(String, String)>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let (raw, supplier) = path.into_inner();
    let r = parse_ref(&raw)?;
    match p.scoped_supplier()? {
        Some(own) if own != supplier => return Err(ApiError::not_found(format!("supplier {supplier}'s leg of {r} does not exist"))),
        Some(_) => {}
        None => p.require(&[Role::ChangeManager])?,
    }
    let u: LegUpdate = body_of(&state, body).await?;
    if u.depends_on.is_some() && p.role == Role::Supplier {
        return Err(ApiError::forbidden("the order of the legs is the change manager's to set"));
    }
    load(&state, &p, &r).await?;
    let c = ctx(&p, &req);
    let doc = with_rules(&state, move |conn, rules| change::update_leg(conn, &c, rules, r.as_str(), &supplier, &u)).await?;
    Ok(ok(doc))
}

/// `POST /api/v1/changes/{ref}/approvals`: `{"decision": "approve" | "reject", "comment"}`, by a
/// change manager (for the integrator) or a supplier (for its own leg).
pub async fn approve(req: HttpRequest, p: Principal, state: web::Data<AppState>, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let r = parse_ref(&path)?;
    let by = match p.scoped_supplier()? {
        Some(s) => Approver::Supplier(s.to_string()),
        None => {
            p.require(&[Role::ChangeManager])?;
            Approver::Integrator(p.source())
        }
    };
    load(&state, &p, &r).await?;
    let a: ApprovalRequest = body_of(&state, body).await?;
    if a.decision == DecisionWord::Reject && a.comment.trim().is_empty() {
        return Err(invalid("a rejection needs a comment saying why"));
    }
    let c = ctx(&p, &req);
    let doc = with_rules(&state, move |conn, rules| change::decide(conn, &c, rules, r.as_str(), &by, a.decision == DecisionWord::Approve, &a.comment)).await?;
    Ok(HttpResponse::Created().insert_header(etag(doc.change.version)).json(doc))
}

/// `GET /api/v1/changes/{ref}/conflicts`
pub async fn conflicts(p: Principal, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let doc = load(&state, &p, &parse_ref(&path)?).await?;
    Ok(HttpResponse::Ok().json(json!({ "ref": doc.change.reference, "conflicts": doc.conflicts })))
}

/// `POST /api/v1/changes/{ref}/conflicts/acknowledge`: `{"key", "reason"}`, by a change manager.
pub async fn acknowledge(req: HttpRequest, p: Principal, state: web::Data<AppState>, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::ChangeManager])?;
    let r = parse_ref(&path)?;
    let a: Acknowledgement = body_of(&state, body).await?;
    if a.reason.trim().is_empty() {
        return Err(invalid("an acknowledgement needs a reason"));
    }
    let c = ctx(&p, &req);
    let doc = with_rules(&state, move |conn, rules| change::acknowledge(conn, &c, rules, r.as_str(), &a.key, &a.reason)).await?;
    Ok(ok(doc))
}

#[derive(Debug, Deserialize)]
struct NoteBody {
    text: String,
    visibility: Visibility,
}

/// `POST /api/v1/changes/{ref}/notes`: public or internal; a supplier writes public notes only.
pub async fn add_note(req: HttpRequest, p: Principal, state: web::Data<AppState>, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::ServiceDesk, Role::ChangeManager, Role::Supplier])?;
    let r = parse_ref(&path)?;
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    let doc = parse_json(&bytes)?;
    validation::validate(Doc::NoteCreate, &doc).map_err(ApiError::schema)?;
    let note: NoteBody = serde_json::from_value(doc).map_err(invalid)?;
    load(&state, &p, &r).await?;
    if p.role == Role::Supplier && note.visibility == Visibility::Internal {
        return Err(ApiError::forbidden("internal notes are the integrator's; a supplier writes public notes"));
    }
    let c = ctx(&p, &req);
    let author = p.source();
    let doc = with_rules(&state, move |conn, rules| change::add_note(conn, &c, rules, r.as_str(), note.visibility, &author, &note.text)).await?;
    Ok(HttpResponse::Created().insert_header(etag(doc.change.version)).json(doc))
}

/// `POST /api/v1/changes/{ref}/attachments?file_name=...` with the file as the body: the plans,
/// the vendor's release notes, the test evidence. The same content again is the one file (200).
pub async fn upload_attachment(
    req: HttpRequest,
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<super::attachments::UploadQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    use super::attachments::{clean_name, content_type_of, receive, Received};
    p.require(&[Role::ServiceDesk, Role::ChangeManager, Role::Supplier])?;
    let r = parse_ref(&path)?;
    let file_name = clean_name(q.file_name.as_deref())?;
    let content_type = content_type_of(&req);
    load(&state, &p, &r).await?;
    let Received { upload_id, sha256, size } = receive(&state, &mut payload).await?;
    let (c, author, max) = (ctx(&p, &req), p.source(), state.settings.max_attachments_per_incident);
    let filed = state
        .store
        .run(move |conn| {
            let f = change::files::NewFile { upload_id, sha256: &sha256, size: size as i64, file_name: &file_name, content_type: &content_type, author: &author, max };
            change::files::attach(conn, &c, r.as_str(), &f).map(|(file, created)| (file.json(r.as_str()), created))
        })
        .await;
    let (file, created) = match filed {
        Ok(filed) => filed,
        Err(e) => {
            let _ = state.store.run(move |c| crate::store::attachments::discard_upload(c, upload_id)).await;
            return Err(e.into());
        }
    };
    state.engine.notify();
    Ok(if created { HttpResponse::Created() } else { HttpResponse::Ok() }.json(file))
}

/// `GET /api/v1/changes/{ref}/attachments/{id}`: the content, streamed.
pub async fn download_attachment(p: Principal, state: web::Data<AppState>, path: web::Path<(String, i64)>) -> Result<HttpResponse, ApiError> {
    let (raw, id) = path.into_inner();
    let r = parse_ref(&raw)?;
    load(&state, &p, &r).await?;
    let file = state.store.run(move |c| change::files::find(c, r.as_str(), id)).await?;
    Ok(super::attachments::stream_content(&state, &file.sha256, &file.file_name, &file.content_type))
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/changes/{ref}/history?limit=&cursor=`: the change's event log, oldest first.
pub async fn history(p: Principal, state: web::Data<AppState>, path: web::Path<String>, q: web::Query<HistoryQuery>) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(bad_query(format!("limit must be 1..1000, got {limit}")));
    }
    let after = decode_cursor(q.cursor.as_deref(), "event")?;
    let r = parse_ref(&path)?;
    load(&state, &p, &r).await?;
    let viewer = p.scoped_supplier()?.map(str::to_string);
    let (events, next) = state.store.read(move |c| change::history_page(c, r.as_str(), viewer.as_deref(), after, limit)).await?;
    let items: Vec<_> = events
        .into_iter()
        .map(|e| json!({ "id": e.event_id, "type": e.kind, "source": e.source, "time": rfc3339(&e.occurred_at), "correlation_id": e.correlation_id, "data": e.data }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "ref": path.as_str(), "events": items, "next_cursor": next.map(|id| encode_cursor("event", id)) })))
}

/// `GET /api/v1/changes/calendar?from=&to=[&service=&supplier=][&format=ics]`: the forward
/// schedule of change, with the freezes in the period; as iCalendar a CAB can subscribe to it.
pub async fn calendar(p: Principal, state: web::Data<AppState>, q: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let mut filter = filter_of(&p, &q)?;
    let from = filter.from.unwrap_or_else(|| Utc::now() - chrono::Duration::days(7));
    let to = filter.to.unwrap_or(from + chrono::Duration::days(90));
    if to - from > chrono::Duration::days(400) {
        return Err(bad_query("the calendar covers at most 400 days at a time"));
    }
    (filter.from, filter.to) = (Some(from), Some(to));
    let rows = state.store.read(move |c| change::calendar(c, &filter)).await?;
    let freezes: Vec<_> = state.settings.changes.freezes.iter().filter(|f| f.start < to && f.end > from).collect();
    match q.format.as_deref().unwrap_or("json") {
        "json" => {
            let items: Vec<_> = rows
                .iter()
                .map(|(r, legs, open)| {
                    json!({
                        "ref": r.reference, "title": r.title, "type": r.change_type, "status": r.status,
                        "start": r.planned_start.as_ref().map(rfc3339), "end": r.planned_end.as_ref().map(rfc3339),
                        "services": r.services, "cis": r.cis, "open_conflicts": open.len(),
                        "legs": legs.iter().map(|l| json!({ "supplier": l.supplier_id, "state": l.state,
                            "start": l.planned_start.as_ref().map(rfc3339), "end": l.planned_end.as_ref().map(rfc3339) })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let freezes: Vec<_> =
                freezes.iter().map(|f| json!({ "name": f.name, "services": f.services, "start": rfc3339(&f.start), "end": rfc3339(&f.end), "hard": f.hard })).collect();
            Ok(HttpResponse::Ok().json(json!({ "from": rfc3339(&from), "to": rfc3339(&to), "changes": items, "freezes": freezes })))
        }
        "ics" => {
            use icalendar::{Calendar, Component, Event, EventLike};
            let mut cal = Calendar::new();
            cal.name("SIAM Hub forward schedule of change");
            let host =
                state.settings.public_url.as_deref().and_then(|u| url::Url::parse(u).ok()).and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| "siam-hub".into());
            for (r, legs, open) in &rows {
                let (Some(start), Some(end)) = (r.planned_start, r.planned_end) else { continue };
                let suppliers: Vec<&str> = legs.iter().map(|l| l.supplier_id.as_str()).collect();
                let description = format!(
                    "{} change, {}. Services: {}. CIs: {}. Suppliers: {}. Open conflicts: {}.\n\n{}",
                    r.change_type,
                    r.status,
                    r.services.join(", "),
                    r.cis.join(", "),
                    suppliers.join(", "),
                    open.len(),
                    r.description
                );
                let mut event = Event::new();
                event.uid(&format!("{}@{host}", r.reference)).summary(&format!("{} {}", r.reference, r.title)).description(&description).starts(start).ends(end);
                if r.status == ChangeStatus::Cancelled.as_str() {
                    event.add_property("STATUS", "CANCELLED");
                }
                cal.push(event.done());
            }
            for f in freezes {
                let mut event = Event::new();
                event.uid(&format!("freeze-{}@{host}", f.name)).summary(&format!("{} freeze: {}", if f.hard { "Hard" } else { "Soft" }, f.name)).starts(f.start).ends(f.end);
                event.description(&format!("Services: {}", if f.services.is_empty() { "all".to_string() } else { f.services.join(", ") }));
                cal.push(event.done());
            }
            Ok(HttpResponse::Ok().content_type("text/calendar; charset=utf-8").body(cal.done().to_string()))
        }
        other => Err(bad_query(format!("format must be json or ics, got `{other}`"))),
    }
}
