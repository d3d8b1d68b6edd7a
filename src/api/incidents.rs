//! `/api/v1/incidents`: raise, read, list, change, annotate and trace incidents.

use super::auth::{Need, Principal, Role};
use super::error::ApiError;
use super::{correlation_id, parse_json, read_body, AppState};
use crate::domain::*;
use crate::store::record::{self, Context, IdempotencyKey, ListFilter, NewNote};
use crate::validation::{self, Doc};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

fn ctx(p: &Principal, correlation: String) -> Context {
    Context { source: p.source(), supplier: None, correlation_id: correlation }
}

fn etag(version: i32) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

pub(crate) fn parse_ref(raw: &str) -> Result<TicketRef, ApiError> {
    raw.parse::<TicketRef>().map_err(ApiError::not_found)
}

/// Loads an incident as the caller may see it, if it may `need` it.
pub(crate) async fn load_for(state: &AppState, p: &Principal, r: &TicketRef, need: Need) -> Result<Incident, ApiError> {
    let r = r.clone();
    let incident = state.store.read(move |c| record::load(c, r.as_str())).await?;
    p.incident(incident, need)
}

/// Refuses a service outside the service catalogue (when one is configured), naming the known ones.
pub(crate) fn check_services(state: &AppState, services: &[String]) -> Result<(), ApiError> {
    let catalogue = &state.settings.services;
    for service in services {
        if !catalogue.is_empty() && !catalogue.iter().any(|s| s.name.eq_ignore_ascii_case(service)) {
            let known: Vec<&str> = catalogue.iter().map(|s| s.name.as_str()).collect();
            return Err(ApiError::unprocessable(
                "unknown-service",
                "Unknown service",
                format!("service `{service}` is not in the service catalogue; known services: {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

/// The request's `Idempotency-Key` header, if it has one.
pub(crate) fn idempotency_header(req: &HttpRequest) -> Option<&str> {
    req.headers().get("idempotency-key").map(|v| v.to_str().unwrap_or("\u{0}"))
}

/// An idempotency key given by the caller, for a request whose body hashes to `hash`: a retry
/// with the same key and body answers what the first did.
pub(crate) fn idempotency_key(given: Option<&str>, p: &Principal, hash: String) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(v) = given else { return Ok(None) };
    let key = Some(v.trim()).filter(|k| !k.is_empty() && k.len() <= 200 && !k.contains(char::is_control)).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid-idempotency-key", "Invalid Idempotency-Key", "the Idempotency-Key header must be 1-200 visible characters")
    })?;
    Ok(Some(IdempotencyKey { principal: p.source(), key: key.to_string(), request_hash: hash }))
}

/// Raises an incident from its create document (`$defs/create`), once per idempotency key:
/// answers the incident and whether it was raised before under that key.
pub(crate) async fn raise(state: &AppState, p: &Principal, correlation: String, doc: serde_json::Value, idem: Option<&str>) -> Result<(Incident, bool), ApiError> {
    p.require(&[Role::ServiceDesk])?;
    validation::validate(Doc::Create, &doc).map_err(ApiError::schema)?;
    let new: NewIncident = serde_json::from_value(doc).map_err(|e| ApiError::unprocessable("schema-violation", "Invalid incident", e.to_string()))?;
    check_services(state, new.service.as_slice())?;
    let idem = idempotency_key(idem, p, record::content_hash(&[&serde_json::to_string(&new).unwrap_or_default()]))?;
    let priority = state.settings.priority_matrix.derive(new.impact, new.urgency);
    let route = state.router.route(&new);
    let c = ctx(p, correlation);
    let (incident, replayed) = state.store.run(move |conn| record::create_incident(conn, &c, idem.as_ref(), &new, priority, &route)).await?;
    state.engine.notify();
    Ok((incident, replayed))
}

/// `POST /api/v1/incidents`
pub async fn create(req: HttpRequest, p: Principal, state: web::Data<AppState>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::ServiceDesk])?;
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    let doc = parse_json(&bytes)?;
    let (incident, replayed) = raise(&state, &p, correlation_id(&req), doc, idempotency_header(&req)).await?;
    let (h, v) = etag(incident.version);
    let mut resp = HttpResponse::Created();
    resp.insert_header((h, v)).insert_header((header::LOCATION, format!("/api/v1/incidents/{}", incident.reference)));
    if replayed {
        resp.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(resp.json(incident))
}

/// `GET /api/v1/incidents/{ref}`
pub async fn get(p: Principal, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let incident = load_for(&state, &p, &parse_ref(&path)?, Need::Read).await?;
    let (h, v) = etag(incident.version);
    Ok(HttpResponse::Ok().insert_header((h, v)).json(incident))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    supplier: Option<String>,
    priority: Option<u8>,
    service: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/incidents?status=&supplier=&priority=&service=&q=&limit=&cursor=`: `q` searches
/// titles, references and supplier ticket numbers.
pub async fn list(p: Principal, state: web::Data<AppState>, q: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let bad = |d: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query parameter", d);
    let mut filter = ListFilter {
        status: q.status.as_deref().map(str::parse).transpose().map_err(|e: UnknownValue| bad(e.to_string()))?,
        supplier: q.supplier.clone(),
        priority: q.priority.map(|v| Priority::new(v).ok_or_else(|| bad(format!("priority must be 1..5, got {v}")))).transpose()?,
        service: q.service.clone(),
        visible_to_supplier: None,
        search: q.q.clone(),
    };
    let viewer = p.scoped_supplier()?.map(str::to_string);
    filter.visible_to_supplier = viewer.clone();
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad(format!("limit must be 1..200, got {limit}")));
    }
    let after = decode_cursor(q.cursor.as_deref(), "id")?;
    let (items, next) = state.store.read(move |c| record::list(c, &filter, after, limit)).await?;
    let items: Vec<Incident> = match &viewer {
        Some(s) => items.into_iter().map(|i| i.seen_by_supplier(s)).collect(),
        None => items,
    };
    let next_cursor = next.map(|id| encode_cursor("id", id));
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next_cursor": next_cursor })))
}

/// A paging cursor: the id a page ended on, under the name of what is paged.
pub(crate) fn encode_cursor(kind: &str, id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{id}"))
}

pub(crate) fn decode_cursor(cursor: Option<&str>, kind: &str) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix(kind).and_then(|rest| rest.strip_prefix(':')).and_then(|n| n.parse::<i64>().ok()))
                .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query parameter", "cursor is not one this API issued"))
        })
        .transpose()
}

pub(crate) fn if_match(req: &HttpRequest) -> Result<i32, ApiError> {
    let raw = req.headers().get(header::IF_MATCH).ok_or_else(|| {
        ApiError::new(StatusCode::PRECONDITION_REQUIRED, "if-match-required", "If-Match required", "send the version you read as `If-Match: \"<version>\"` (the ETag of GET)")
    })?;
    raw.to_str()
        .ok()
        .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|s| s.parse::<i32>().ok())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid-if-match", "Invalid If-Match", "If-Match must be a version number such as \"3\""))
}

/// Changes an incident read at `version` by a merge patch (`$defs/patch`).
pub(crate) async fn amend(state: &AppState, p: &Principal, correlation: String, r: TicketRef, version: i32, doc: serde_json::Value) -> Result<Incident, ApiError> {
    p.require(&[Role::ServiceDesk])?;
    validation::validate(Doc::Patch, &doc).map_err(ApiError::schema)?;
    let changes: IncidentChanges = serde_json::from_value(doc).map_err(|e| ApiError::unprocessable("schema-violation", "Invalid change", e.to_string()))?;
    let c = ctx(p, correlation);
    let matrix = state.settings.priority_matrix.clone();
    let incident = state.store.run(move |conn| record::update(conn, &c, r.as_str(), version, &changes, &matrix)).await?;
    state.engine.notify();
    Ok(incident)
}

/// `PATCH /api/v1/incidents/{ref}` (JSON merge patch, `If-Match` required)
pub async fn patch(req: HttpRequest, p: Principal, state: web::Data<AppState>, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::ServiceDesk])?;
    let r = parse_ref(&path)?;
    let version = if_match(&req)?;
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    let doc = parse_json(&bytes)?;
    let incident = amend(&state, &p, correlation_id(&req), r, version, doc).await?;
    let (h, v) = etag(incident.version);
    Ok(HttpResponse::Ok().insert_header((h, v)).json(incident))
}

#[derive(Debug, Deserialize)]
struct NoteBody {
    text: String,
    visibility: Visibility,
}

/// Adds a note (`$defs/note_create`) to an incident the caller may work.
pub(crate) async fn annotate(state: &AppState, p: &Principal, correlation: String, r: TicketRef, doc: serde_json::Value) -> Result<(Note, Incident), ApiError> {
    p.require(&[Role::ServiceDesk, Role::Supplier])?;
    validation::validate(Doc::NoteCreate, &doc).map_err(ApiError::schema)?;
    let body: NoteBody = serde_json::from_value(doc).map_err(|e| ApiError::unprocessable("schema-violation", "Invalid note", e.to_string()))?;
    load_for(state, p, &r, Need::Work).await?;
    let note = NewNote { visibility: body.visibility, author: p.source(), text: body.text, origin: "hub".into(), native_id: None, created_at: chrono::Utc::now() };
    let c = ctx(p, correlation);
    let (note, incident) = state.store.run(move |conn| record::add_hub_note(conn, &c, r.as_str(), &note)).await?;
    state.engine.notify();
    Ok((note, incident))
}

/// `POST /api/v1/incidents/{ref}/notes`
pub async fn add_note(req: HttpRequest, p: Principal, state: web::Data<AppState>, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::ServiceDesk, Role::Supplier])?;
    let r = parse_ref(&path)?;
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    let doc = parse_json(&bytes)?;
    let (note, incident) = annotate(&state, &p, correlation_id(&req), r, doc).await?;
    let (h, v) = etag(incident.version);
    Ok(HttpResponse::Created().insert_header((h, v)).json(note))
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/incidents/{ref}/history?limit=&cursor=`: the append-only event log, oldest
/// first, a page at a time (`next_cursor` continues it), with who held the ticket when.
pub async fn history(p: Principal, state: web::Data<AppState>, path: web::Path<String>, q: web::Query<HistoryQuery>) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query parameter", format!("limit must be 1..1000, got {limit}")));
    }
    let after = decode_cursor(q.cursor.as_deref(), "event")?;
    let r = parse_ref(&path)?;
    let incident = load_for(&state, &p, &r, Need::Read).await?;
    let (events, routings, next) = state
        .store
        .read(move |c| {
            let (page, next) = record::history_page(c, r.as_str(), after, limit)?;
            Ok((page, record::routings(c, r.as_str())?, next))
        })
        .await?;
    let held = holders(&routings);
    let viewer = p.scoped_supplier()?;
    let items: Vec<_> = events
        .into_iter()
        .map(|e| {
            let data = match viewer {
                Some(s) => crate::domain::access::event_data_seen_by_supplier(&e.kind, &e.data, s),
                None => e.data,
            };
            json!({
                "id": e.event_id, "type": e.kind, "source": e.source, "time": time::rfc3339(&e.occurred_at),
                "correlation_id": e.correlation_id, "data": data,
            })
        })
        .collect();
    let next_cursor = next.map(|id| encode_cursor("event", id));
    Ok(HttpResponse::Ok().json(json!({ "ref": incident.reference, "holders": held, "events": items, "next_cursor": next_cursor })))
}

#[derive(Debug, Deserialize)]
struct RouteBody {
    supplier: Option<String>,
    reason: String,
    #[serde(default)]
    mode: Option<String>,
}

/// `POST /api/v1/incidents/{ref}/route`: re-route (to a named supplier, or the next by rule), or
/// with `"mode": "add"` put a further supplier on it (a major incident).
pub async fn route(req: HttpRequest, p: Principal, state: web::Data<AppState>, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::ServiceDesk])?;
    let r = parse_ref(&path)?;
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    let doc = parse_json(&bytes)?;
    let incident = reroute(&state, &p, correlation_id(&req), r, doc).await?;
    let (h, v) = etag(incident.version);
    Ok(HttpResponse::Ok().insert_header((h, v)).json(incident))
}

/// Re-routes an incident, or puts a further supplier on it (`$defs/route`).
pub(crate) async fn reroute(state: &AppState, p: &Principal, correlation: String, r: TicketRef, doc: serde_json::Value) -> Result<Incident, ApiError> {
    p.require(&[Role::ServiceDesk])?;
    validation::validate(Doc::Route, &doc).map_err(ApiError::schema)?;
    let body: RouteBody = serde_json::from_value(doc).map_err(|e| ApiError::unprocessable("schema-violation", "Invalid route", e.to_string()))?;
    if let Some(s) = &body.supplier {
        if !state.router.is_known(s) {
            return Err(ApiError::unprocessable("unknown-supplier", "Unknown supplier", format!("`{s}` is neither a configured supplier nor the default queue")));
        }
    }
    let add = body.mode.as_deref() == Some("add");
    state.engine.reroute(ctx(p, correlation), r.as_str(), body.supplier, &body.reason, add).await.map_err(ApiError::from)
}

#[derive(Debug, Deserialize)]
struct HandbackBody {
    reason: String,
}

/// `POST /api/v1/incidents/{ref}/handback`: a supplier gives a ticket back (not theirs).
pub async fn handback(req: HttpRequest, p: Principal, state: web::Data<AppState>, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let r = parse_ref(&path)?;
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    let doc = parse_json(&bytes)?;
    let incident = give_back(&state, &p, correlation_id(&req), r, doc).await?;
    let (h, v) = etag(incident.version);
    Ok(HttpResponse::Ok().insert_header((h, v)).json(incident))
}

/// A supplier gives a ticket back (`$defs/handback`): answers the last view it has of it.
pub(crate) async fn give_back(state: &AppState, p: &Principal, correlation: String, r: TicketRef, doc: serde_json::Value) -> Result<Incident, ApiError> {
    if p.role != Role::Supplier {
        return Err(ApiError::forbidden("only a supplier key can hand a ticket back; the service desk re-routes with POST .../route"));
    }
    let supplier = p.supplier.clone().ok_or_else(|| ApiError::forbidden("this supplier key is not scoped to a supplier"))?;
    validation::validate(Doc::Handback, &doc).map_err(ApiError::schema)?;
    let body: HandbackBody = serde_json::from_value(doc).map_err(|e| ApiError::unprocessable("schema-violation", "Invalid hand-back", e.to_string()))?;
    load_for(state, p, &r, Need::Work).await?;
    let incident = state.engine.hand_back(&supplier, r.as_str(), &body.reason, correlation).await?;
    Ok(incident.seen_by_supplier(&supplier))
}

/// Who held the ticket when, from the routing events of its log.
fn holders(events: &[crate::store::models::EventRow]) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = vec![];
    for e in events.iter().filter(|e| e.kind == EventType::Routed.as_str()) {
        let at = time::rfc3339(&e.occurred_at);
        if let Some(last) = out.last_mut() {
            last["to"] = json!(at);
        }
        out.push(json!({ "supplier": e.data.get("supplier"), "from": at, "to": null, "rule": e.data.get("rule"), "reason": e.data.get("reason") }));
    }
    out
}
