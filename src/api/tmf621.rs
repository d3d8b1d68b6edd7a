//! The hub itself as a TMF621 Trouble Ticket API (v4), so any customer or supplier that speaks
//! the standard integrates without a bespoke adapter.
//!
//! - `POST /tmf-api/troubleTicket/v4/troubleTicket`: raises a hub incident, routed like any
//!   other (service_desk role). The customer's `externalId` is kept and shown back, and makes a
//!   retried create return the first ticket (as does an `Idempotency-Key` header).
//! - `GET .../troubleTicket` (offset, limit, `X-Total-Count`/`X-Result-Count`, filters `status`,
//!   `externalId`, `id`, `lastUpdate.gt`, `fields`) and `GET .../troubleTicket/{id}`: the
//!   unified record as a TroubleTicket (`id` = hub reference), public notes only.
//! - `PATCH .../troubleTicket/{id}`: merge-patch of status, name, description, severity,
//!   priority, characteristics, CI, and `note[]` entries to append (public notes); a supplier
//!   key may only add notes, to its own tickets.
//! - `POST/GET/DELETE .../hub[/{id}]`: event subscriptions (service desk, supplier and admin
//!   keys; callbacks checked against the egress policy, a limit per key); see [`notify`].
//!
//! Every call needs one of the hub's API keys; errors are TMF630 bodies
//! `{code, reason, message, status}`.

pub mod notify;
pub mod render;

use super::auth::{Need, Principal, Role};
use super::error::ApiError;
use super::{correlation_id, read_body, AppState};
use crate::domain::*;
use crate::store::record::{self, Context, IdempotencyKey, NewNote};
use crate::store::{tmf621 as tmf_store, StoreError};
use crate::validation::{self, Doc};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use render::BASE_PATH;
use serde_json::{json, Value};

/// A TMF630 error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct TmfError {
    pub status: StatusCode,
    pub code: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl TmfError {
    fn new(status: StatusCode, code: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        TmfError { status, code, reason, message: message.into() }
    }
    pub(super) fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "60", "Resource not found", what)
    }
    fn bad_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "28", "Invalid query-string parameter value", message)
    }
}

impl ResponseError for TmfError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "status": self.status.as_u16().to_string(),
            "@type": "Error",
        }))
    }
}

/// The hub's problem documents, re-expressed with TMF630 codes.
impl From<ApiError> for TmfError {
    fn from(e: ApiError) -> Self {
        let ApiError::Problem { status, detail, kind, .. } = e;
        let (code, reason) = match (status.as_u16(), kind) {
            (401, _) => ("41", "Invalid credentials"),
            (403, _) => ("50", "Access denied"),
            (404, _) => ("60", "Resource not found"),
            (405, _) => ("61", "Method not allowed"),
            (413, _) => ("22", "Invalid body"),
            (400, "invalid-json") => ("22", "Invalid body"),
            (400, _) => ("22", "Invalid body"),
            (409 | 412 | 422, _) => ("24", "Invalid body field"),
            (429, _) => ("53", "Too many requests"),
            (503, _) => ("5", "Service unavailable"),
            _ => ("1", "Internal error"),
        };
        TmfError { status, code, reason, message: detail }
    }
}

impl From<StoreError> for TmfError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<render::BodyError> for TmfError {
    fn from(e: render::BodyError) -> Self {
        TmfError::new(StatusCode::BAD_REQUEST, e.code, e.reason, e.message)
    }
}

type Auth = Result<Principal, ApiError>;

/// The TMF621 API's endpoints, under [`BASE_PATH`].
pub(super) fn endpoints() -> Vec<super::routes::Endpoint> {
    use super::routes::endpoint;
    use actix_web::http::Method;
    vec![
        endpoint(Method::POST, format!("{BASE_PATH}/troubleTicket"), create),
        endpoint(Method::GET, format!("{BASE_PATH}/troubleTicket"), list),
        endpoint(Method::GET, format!("{BASE_PATH}/troubleTicket/{{id}}"), get),
        endpoint(Method::PATCH, format!("{BASE_PATH}/troubleTicket/{{id}}"), patch),
        endpoint(Method::POST, format!("{BASE_PATH}/hub"), subscribe),
        endpoint(Method::GET, format!("{BASE_PATH}/hub/{{id}}"), subscription),
        endpoint(Method::DELETE, format!("{BASE_PATH}/hub/{{id}}"), unsubscribe),
    ]
}

/// Base of `href`s: the configured public URL, else what the caller reached.
fn base_url(req: &HttpRequest, state: &AppState) -> String {
    match &state.settings.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

fn ctx(p: &Principal, req: &HttpRequest) -> Context {
    Context { source: p.source(), supplier: None, correlation_id: correlation_id(req) }
}

/// The ticket as the caller may see it, by the same rule as `/api/v1` (a supplier sees the
/// tickets it works, and reads the ones it worked to the end).
fn visible(p: &Principal, incident: Incident, need: Need) -> Result<Incident, TmfError> {
    let reference = incident.reference.clone();
    p.incident(incident, need).map_err(|e| match e.status_code() {
        StatusCode::NOT_FOUND => TmfError::not_found(format!("TroubleTicket {reference} not found")),
        _ => e.into(),
    })
}

/// The same schema checks as `/api/v1` (lengths, ranges, vocabularies), with TMF630's code for an
/// invalid body field; `doc` has absent members, not nulls.
fn check(kind: Doc, doc: &Value) -> Result<(), TmfError> {
    validation::validate(kind, doc).map_err(|v| {
        let detail = v.iter().map(|x| format!("{}: {}", if x.pointer.is_empty() { "/" } else { &x.pointer }, x.message)).collect::<Vec<_>>().join("; ");
        TmfError::new(StatusCode::BAD_REQUEST, "24", "Invalid body field", detail)
    })
}

/// Notes given with a ticket become public notes written by the caller's key, checked as
/// `POST .../notes` checks them.
fn check_notes(texts: &[String]) -> Result<(), TmfError> {
    texts.iter().try_for_each(|text| check(Doc::NoteCreate, &json!({ "text": text, "visibility": "public" })))
}

fn parse_body(bytes: &[u8]) -> Result<Value, TmfError> {
    super::parse_json(bytes).map_err(TmfError::from)
}

async fn load(state: &AppState, reference: String) -> Result<(i64, Incident, Option<String>, Vec<tmf_store::StatusEntry>), TmfError> {
    if reference.parse::<TicketRef>().is_err() {
        return Err(TmfError::not_found(format!("TroubleTicket {reference} not found")));
    }
    state
        .store
        .read(move |c| {
            let (id, inc) = tmf_store::find(c, &reference)?;
            let ext = tmf_store::external_ids(c, &[id])?.remove(&id);
            let history = tmf_store::status_history(c, &[id])?.remove(&id).unwrap_or_default();
            Ok((id, inc, ext, history))
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound(what) => TmfError::not_found(format!("{what} not found")),
            other => other.into(),
        })
}

/// `POST /tmf-api/troubleTicket/v4/troubleTicket`
pub async fn create(req: HttpRequest, p: Auth, state: web::Data<AppState>, body: web::Payload) -> Result<HttpResponse, TmfError> {
    let p = p?;
    p.require(&[Role::ServiceDesk])?;
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    let doc = parse_body(&bytes)?;
    let request = render::read_create(&doc, &p.source())?;
    let new = request.new;
    let mut as_create = serde_json::to_value(&new).unwrap_or(Value::Null);
    if let Some(o) = as_create.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    check(Doc::Create, &as_create)?;
    check_notes(&request.notes)?;
    let notes = request.notes;
    if let Some(service) = &new.service {
        let catalogue = &state.settings.services;
        if !catalogue.is_empty() && !catalogue.iter().any(|s| s.name.eq_ignore_ascii_case(service)) {
            return Err(TmfError::new(StatusCode::BAD_REQUEST, "24", "Invalid body field", format!("relatedEntity: service `{service}` is not in the service catalogue")));
        }
    }
    // The customer's externalId (or an Idempotency-Key) makes a retried create safe.
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .or_else(|| request.external_id.as_ref().map(|e| format!("tmf621:externalId:{e}")));
    let idem = key.map(|key| {
        let canonical = serde_json::to_string(&new).unwrap_or_default();
        IdempotencyKey { principal: p.source(), key, request_hash: record::content_hash(&[&canonical]) }
    });
    let priority = state.settings.priority_matrix.derive(new.impact, new.urgency);
    let route = state.router.route(&new);
    let c = ctx(&p, &req);
    let (principal, external_id) = (p.source(), request.external_id.clone());
    let reference = state
        .store
        .run(move |conn| {
            let (incident, replayed) = record::create_incident(conn, &c, idem.as_ref(), &new, priority, &route)?;
            let row = record::find_row(conn, incident.reference.as_str())?;
            if let Some(e) = &external_id {
                tmf_store::set_external_id(conn, row.id, &principal, e)?;
            }
            if !replayed {
                for text in &notes {
                    let note = NewNote {
                        visibility: Visibility::Public,
                        author: principal.clone(),
                        text: text.clone(),
                        origin: "hub".into(),
                        native_id: None,
                        created_at: chrono::Utc::now(),
                    };
                    record::add_hub_note(conn, &c, incident.reference.as_str(), &note)?;
                }
            }
            Ok(incident.reference.to_string())
        })
        .await?;
    state.engine.notify();
    let (_, incident, ext, history) = load(&state, reference).await?;
    let base = base_url(&req, &state);
    let ticket = render::trouble_ticket(&base, &incident, ext.as_deref(), &history);
    Ok(HttpResponse::Created().insert_header((header::LOCATION, format!("{base}{BASE_PATH}/troubleTicket/{}", incident.reference))).json(ticket))
}

/// `GET /tmf-api/troubleTicket/v4/troubleTicket/{id}`
pub async fn get(req: HttpRequest, p: Auth, state: web::Data<AppState>, path: web::Path<String>, q: web::Query<Vec<(String, String)>>) -> Result<HttpResponse, TmfError> {
    let p = p?;
    let (_, incident, ext, history) = load(&state, path.into_inner()).await?;
    let incident = visible(&p, incident, Need::Read)?;
    let fields = q.iter().find(|(k, _)| k == "fields").map(|(_, v)| v.as_str());
    Ok(HttpResponse::Ok().json(render::project(render::trouble_ticket(&base_url(&req, &state), &incident, ext.as_deref(), &history), fields)))
}

/// `GET /tmf-api/troubleTicket/v4/troubleTicket?offset=&limit=&status=&externalId=&lastUpdate.gt=&fields=`
pub async fn list(req: HttpRequest, p: Auth, state: web::Data<AppState>, q: web::Query<Vec<(String, String)>>) -> Result<HttpResponse, TmfError> {
    let p = p?;
    let mut filter = tmf_store::Filter::default();
    let mut offset = 0i64;
    let mut limit = 50i64;
    let mut fields = None;
    let profile = crate::adapters::tmf621::mapping::profile();
    for (k, v) in q.iter() {
        match k.as_str() {
            "offset" => offset = v.parse().ok().filter(|o: &i64| *o >= 0).ok_or_else(|| TmfError::bad_query(format!("offset={v}")))?,
            "limit" => limit = v.parse().ok().filter(|l: &i64| (1..=500).contains(l)).ok_or_else(|| TmfError::bad_query(format!("limit={v} (1..500)")))?,
            "fields" => fields = Some(v.clone()),
            "externalId" => filter.external_id = Some(v.clone()),
            "id" => filter.reference = Some(v.clone()),
            "lastUpdate.gt" => {
                let t = crate::adapters::tmf621::mapping::parse_time(v).ok_or_else(|| TmfError::bad_query(format!("lastUpdate.gt={v} is not a date")))?;
                filter.updated_after = Some(t.0);
            }
            "status" => {
                let (mut plain, mut holds) = (vec![], vec![]);
                for s in v.split(',') {
                    let s = s.trim();
                    match s {
                        "pending" | "held" => {
                            let held = s == "held";
                            holds.extend(HoldReason::ALL.iter().filter(|h| profile.hold.held_for.iter().any(|x| x == h.as_str()) == held).map(|h| h.as_str().to_string()));
                        }
                        "acknowledged" => plain.extend(["new".to_string(), "assigned".to_string()]),
                        "rejected" => {}
                        other => match profile.status.to_canonical.get(other) {
                            Some(c) => plain.push(c.clone()),
                            None => return Err(TmfError::bad_query(format!("status={other} is not a TroubleTicketStatusType"))),
                        },
                    }
                }
                filter.statuses = Some(plain);
                filter.on_hold_reasons = Some(holds);
            }
            "sort" => {}
            other => return Err(TmfError::bad_query(format!("{other} is not a filter this API supports (status, externalId, id, lastUpdate.gt, fields, offset, limit)"))),
        }
    }
    filter.visible_to_supplier = p.scoped_supplier()?.map(str::to_string);
    let (items, total) = state
        .store
        .read(move |c| {
            let (items, total) = tmf_store::list(c, &filter, offset, limit)?;
            let ids: Vec<i64> = items.iter().map(|(id, _)| *id).collect();
            let ext = tmf_store::external_ids(c, &ids)?;
            let mut history = tmf_store::status_history(c, &ids)?;
            let items: Vec<(Incident, Option<String>, Vec<tmf_store::StatusEntry>)> =
                items.into_iter().map(|(id, inc)| (inc, ext.get(&id).cloned(), history.remove(&id).unwrap_or_default())).collect();
            Ok((items, total))
        })
        .await?;
    let base = base_url(&req, &state);
    let page: Vec<Value> = items.iter().map(|(inc, ext, h)| render::project(render::trouble_ticket(&base, inc, ext.as_deref(), h), fields.as_deref())).collect();
    let status = if (page.len() as i64) < total { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    Ok(HttpResponse::build(status).insert_header(("X-Total-Count", total.to_string())).insert_header(("X-Result-Count", page.len().to_string())).json(page))
}

/// `PATCH /tmf-api/troubleTicket/v4/troubleTicket/{id}` (JSON merge-patch).
pub async fn patch(req: HttpRequest, p: Auth, state: web::Data<AppState>, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, TmfError> {
    let p = p?;
    let reference = path.into_inner();
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    let doc = parse_body(&bytes)?;
    let (_, current, _, _) = load(&state, reference.clone()).await?;
    let current = visible(&p, current, Need::Work)?;
    let request = render::read_patch(&doc, &current)?;
    if !request.changes.is_empty() {
        p.require(&[Role::ServiceDesk])?;
        check(Doc::Patch, &serde_json::to_value(&request.changes).unwrap_or(Value::Null))?;
    } else {
        p.require(&[Role::ServiceDesk, Role::Supplier])?;
    }
    check_notes(&request.notes)?;
    let notes = request.notes;
    let c = ctx(&p, &req);
    let matrix = state.settings.priority_matrix.clone();
    let (changes, author) = (request.changes, p.source());
    let r = reference.clone();
    state
        .store
        .run(move |conn| {
            if !changes.is_empty() {
                // TMF has no optimistic concurrency: apply to the version as it is now.
                let mut attempts = 0;
                loop {
                    let version = record::find_row(conn, &r)?.version;
                    match record::update(conn, &c, &r, version, &changes, &matrix) {
                        Err(StoreError::VersionConflict { .. }) if attempts < 3 => attempts += 1,
                        other => {
                            other?;
                            break;
                        }
                    }
                }
            }
            for text in &notes {
                let note =
                    NewNote { visibility: Visibility::Public, author: author.clone(), text: text.clone(), origin: "hub".into(), native_id: None, created_at: chrono::Utc::now() };
                record::add_hub_note(conn, &c, &r, &note)?;
            }
            Ok(())
        })
        .await?;
    state.engine.notify();
    let (_, incident, ext, history) = load(&state, reference).await?;
    Ok(HttpResponse::Ok().json(render::trouble_ticket(&base_url(&req, &state), &incident, ext.as_deref(), &history)))
}

fn subscription_doc(s: &tmf_store::Subscription) -> Value {
    json!({ "id": s.id.to_string(), "callback": s.callback, "query": s.query, "@type": "Hub" })
}

/// `POST /tmf-api/troubleTicket/v4/hub` `{"callback", "query"}`. For the service desk, suppliers
/// (hearing of their own tickets) and admins. The callback must be an http(s) URL without
/// credentials in it, on an address the egress policy lets the hub reach; a key holds at most
/// `[tmf621_hub] max_subscriptions_per_key` subscriptions.
pub async fn subscribe(req: HttpRequest, p: Auth, state: web::Data<AppState>, body: web::Payload) -> Result<HttpResponse, TmfError> {
    let p = p?;
    p.require(&[Role::ServiceDesk, Role::Supplier])?;
    if p.role == Role::Supplier && p.supplier.is_none() {
        return Err(ApiError::forbidden("this supplier key is not scoped to a supplier").into());
    }
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    let doc = parse_body(&bytes)?;
    let text = doc
        .get("callback")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| TmfError::new(StatusCode::BAD_REQUEST, "23", "Missing body field", "callback must be an http(s) URL"))?;
    let invalid = |m: String| TmfError::new(StatusCode::BAD_REQUEST, "24", "Invalid body field", m);
    let callback =
        url::Url::parse(text).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()).ok_or_else(|| invalid("callback must be an http(s) URL".into()))?;
    if !callback.username().is_empty() || callback.password().is_some() {
        return Err(invalid("callback must not carry user-info (a user name or password in the URL): the hub posts notifications without credentials".into()));
    }
    let addresses = crate::adapters::egress::AddressPolicy::new(&state.settings.egress).map_err(|e| TmfError::new(StatusCode::INTERNAL_SERVER_ERROR, "1", "Internal error", e))?;
    addresses.check_host(&callback).await.map_err(|e| invalid(format!("callback refused: {e}")))?;
    let query = doc.get("query").and_then(Value::as_str).unwrap_or("").to_string();
    let (principal, supplier) = (p.source(), if p.role == Role::Supplier { p.supplier.clone() } else { None });
    let limit = state.settings.tmf621_hub.max_subscriptions_per_key;
    let callback = text.to_string();
    let sub = state.store.run(move |c| tmf_store::add_subscription(c, &callback, &query, &principal, supplier.as_deref(), limit)).await?.map_err(|held| {
        TmfError::new(
            StatusCode::CONFLICT,
            "24",
            "Subscription limit reached",
            format!("this API key holds {held} subscriptions, the limit (max_subscriptions_per_key = {limit}); delete one first"),
        )
    })?;
    Ok(HttpResponse::Created().insert_header((header::LOCATION, format!("{}{BASE_PATH}/hub/{}", base_url(&req, &state), sub.id))).json(subscription_doc(&sub)))
}

async fn own_subscription(p: &Principal, state: &AppState, id: &str) -> Result<tmf_store::Subscription, TmfError> {
    let nf = || TmfError::not_found(format!("Hub {id} not found"));
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| nf())?;
    let sub = state.store.run(move |c| tmf_store::subscription(c, uuid)).await?.ok_or_else(nf)?;
    // Another key's subscription is none of this caller's business.
    if p.role != Role::Admin && sub.principal != p.source() {
        return Err(nf());
    }
    Ok(sub)
}

/// `GET /tmf-api/troubleTicket/v4/hub/{id}`
pub async fn subscription(p: Auth, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, TmfError> {
    let p = p?;
    let sub = own_subscription(&p, &state, &path).await?;
    Ok(HttpResponse::Ok().json(subscription_doc(&sub)))
}

/// `DELETE /tmf-api/troubleTicket/v4/hub/{id}`
pub async fn unsubscribe(p: Auth, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, TmfError> {
    let p = p?;
    let sub = own_subscription(&p, &state, &path).await?;
    state.store.run(move |c| tmf_store::delete_subscription(c, sub.id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
