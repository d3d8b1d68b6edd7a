//! The service desk console at `/console`: raise an incident once, find it in the queue, and
//! work it from its record page (notes, files, routing, resolution, the change that caused it),
//! and follow changes. Server-rendered HTML that works without script.
//!
//! It signs in like the dashboard ([`crate::api::browser`]), with any key: a service desk or
//! admin key acts, a manager's or change manager's key reads, a supplier key sees only the
//! tickets its supplier holds and may add notes and files to them and hand them back. Every
//! action goes through the same operation as the API's endpoint for it (`api::incidents`,
//! `api::attachments`), so the console can do exactly what the key could do through the API,
//! with the same checks and the same record. Its forms are posted only from the hub's own pages:
//! the session cookie is SameSite=Strict and a post from another origin is refused.

mod changes;
mod pages;

use super::attachments;
use super::auth::{Need, Principal, Role};
use super::browser::{redirect, same_origin, scripted_page, Area};
use super::error::ApiError;
use super::incidents::{self, parse_ref};
use super::{correlation_id, AppState};
use crate::domain::{Incident, SupplierAccess, TicketRef};
use crate::sla::dashboard::standing;
use crate::sla::ticket::{self, TicketSla};
use crate::store::auth;
use crate::store::record::{self, ListFilter};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The console's sign-in: every role, a supplier key only with its supplier.
pub(crate) static AREA: Area = Area {
    root: "/console",
    cookie: "siam_console",
    admits: |record| principal_of(record).map(|_| ()),
    landing: |_, next| next.to_string(),
    login_page: pages::login,
    message_page: pages::message,
    page: scripted_page,
};

fn principal_of(record: &auth::KeyRecord) -> Result<Principal, super::browser::Refusal> {
    match Principal::of(record.clone()) {
        Ok(p) if p.role == Role::Supplier && p.supplier.is_none() => Err((StatusCode::FORBIDDEN, "That supplier key is not scoped to a supplier.")),
        Ok(p) => Ok(p),
        Err(_) => Err((StatusCode::FORBIDDEN, "That key has a role the console does not know.")),
    }
}

/// The console's pages and its sign-in.
pub(super) fn endpoints() -> Vec<super::routes::Endpoint> {
    use super::routes::endpoint;
    use actix_web::http::Method;
    let mut all = vec![endpoint(Method::GET, "/console", home)];
    all.extend(AREA.endpoints());
    all.extend([
        endpoint(Method::GET, "/console/assets/console.js", script),
        endpoint(Method::GET, "/console/incidents", queue),
        endpoint(Method::POST, "/console/incidents", raise),
        // `new` before `{ref}`, which would otherwise take it for a reference.
        endpoint(Method::GET, "/console/incidents/new", raise_form),
        endpoint(Method::GET, "/console/incidents/{ref}", record_page),
        endpoint(Method::GET, "/console/incidents/{ref}/fingerprint", fingerprint),
        endpoint(Method::POST, "/console/incidents/{ref}/notes", add_note),
        endpoint(Method::POST, "/console/incidents/{ref}/attachments", upload),
        endpoint(Method::GET, "/console/incidents/{ref}/attachments/{id}", download),
        endpoint(Method::POST, "/console/incidents/{ref}/route", route),
        endpoint(Method::POST, "/console/incidents/{ref}/status", set_status),
        endpoint(Method::POST, "/console/incidents/{ref}/link", link_change),
        endpoint(Method::POST, "/console/incidents/{ref}/handback", hand_back),
        endpoint(Method::GET, "/console/changes", changes::list),
        endpoint(Method::GET, "/console/changes/calendar", changes::calendar),
        endpoint(Method::GET, "/console/changes/{ref}", changes::record),
    ]);
    all
}

/// A form that did not go through: which form, what was wrong with it as a whole and with
/// each field, and what the user had typed (so nothing is lost).
#[derive(Debug, Clone, Default)]
pub struct FormError {
    pub form: &'static str,
    pub general: Option<String>,
    pub fields: BTreeMap<String, String>,
    pub values: BTreeMap<String, String>,
}

impl FormError {
    /// The API's refusal of what `form` sent, placed beside the fields it concerns: a schema
    /// violation at `/title` belongs to the field `title` (`/resolution/code` to
    /// `resolution_code`), an unknown service to `service`, anything else to the form.
    fn of(form: &'static str, e: &ApiError, values: BTreeMap<String, String>) -> (StatusCode, FormError) {
        let ApiError::Problem { status, kind, detail, extra, .. } = e;
        let mut out = FormError { form, values, ..FormError::default() };
        let violations = extra.as_ref().and_then(|x| x.get("errors")).and_then(Value::as_array).cloned().unwrap_or_default();
        for v in &violations {
            let pointer = v["pointer"].as_str().unwrap_or("");
            let message = v["message"].as_str().unwrap_or("is not valid");
            let (field, text) = match pointer.trim_start_matches('/') {
                "" => match message.split('"').nth(1).filter(|_| message.contains("required property")) {
                    Some(name) => (name.to_string(), "Enter a value.".to_string()),
                    None => (String::new(), message.to_string()),
                },
                p => (p.replace('/', "_"), friendly(message)),
            };
            if field.is_empty() || !out.values.contains_key(&field) {
                out.general = Some(format!("{}{}", out.general.map(|g| format!("{g}; ")).unwrap_or_default(), if field.is_empty() { text } else { format!("{field}: {text}") }));
            } else {
                out.fields.entry(field).or_insert(text);
            }
        }
        if violations.is_empty() {
            match *kind {
                "unknown-service" if out.values.contains_key("service") => {
                    out.fields.insert("service".into(), detail.clone());
                }
                "unknown-supplier" if out.values.contains_key("supplier") => {
                    out.fields.insert("supplier".into(), detail.clone());
                }
                "version-conflict" => out.general = Some("Someone changed this ticket since you opened it: look at it again and retry.".into()),
                _ => out.general = Some(detail.clone()),
            }
        }
        (*status, out)
    }
}

/// A schema message as a person reads it.
fn friendly(message: &str) -> String {
    if message.contains("shorter than 1 character") {
        "Enter a value.".into()
    } else if message.contains("is longer than") {
        format!("Too long: {}", message.rsplit("longer than").next().map(|s| format!("at most{s}.")).unwrap_or_default())
    } else if message.contains("does not match") {
        "Not in the expected form.".into()
    } else {
        message.to_string()
    }
}

/// A form body's fields (the last value of a repeated one), whatever was sent.
fn form_fields(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// The signed-in caller, or the answer to send instead (the sign-in form; a refusal of a post
/// from elsewhere).
async fn signed_in(req: &HttpRequest, state: &AppState) -> Result<(Principal, Vec<(String, String)>), HttpResponse> {
    if req.method() == actix_web::http::Method::POST && !same_origin(req) {
        return Err(html(StatusCode::FORBIDDEN, pages::message("Not from this site", "The console takes forms only from its own pages.")));
    }
    let (record, pairs) = AREA.authenticate(req, state).await?;
    match principal_of(&record) {
        Ok(p) => Ok((p, pairs)),
        Err((status, msg)) => Err(html(status, pages::message("Not for this key", msg))),
    }
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    scripted_page(status, body)
}

/// The page for an API refusal that belongs to no form.
fn refused(e: &ApiError) -> HttpResponse {
    let ApiError::Problem { status, title, detail, .. } = e;
    if *status == StatusCode::SERVICE_UNAVAILABLE || status.is_server_error() {
        tracing::error!(error = %detail, "console page unavailable");
    }
    html(*status, pages::message(title, detail))
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

async fn home() -> HttpResponse {
    redirect("/console/incidents").finish()
}

/// The console's one script: conveniences only, the pages work without it.
async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(include_str!("console.js"))
}

/// How many incidents a queue page shows.
const PAGE: i64 = 25;

/// `GET /console/incidents?q=&status=&supplier=&priority=&service=&cursor=`
async fn queue(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (p, pairs) = match signed_in(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let mut filters = pages::Filters::new();
    for k in ["q", "status", "supplier", "priority", "service"] {
        if let Some(v) = param(&pairs, k) {
            filters.insert(k, v.to_string());
        }
    }
    let bad = |msg: String| html(StatusCode::BAD_REQUEST, pages::message("Invalid filter", &msg));
    let status = match filters.get("status").map(|s| s.parse()).transpose() {
        Ok(s) => s,
        Err(e) => return bad(format!("{e}")),
    };
    let priority =
        match filters.get("priority").map(|v| v.parse::<u8>().ok().and_then(crate::domain::Priority::new).ok_or_else(|| format!("priority must be 1..5, not `{v}`"))).transpose() {
            Ok(p) => p,
            Err(e) => return bad(e),
        };
    let after = match incidents::decode_cursor(param(&pairs, "cursor"), "id") {
        Ok(a) => a,
        Err(e) => return refused(&e),
    };
    let filter = ListFilter {
        status,
        supplier: if p.supplier.is_some() { None } else { filters.get("supplier").cloned() },
        priority,
        service: filters.get("service").cloned(),
        visible_to_supplier: p.supplier.clone(),
        search: filters.get("q").cloned(),
    };
    let (contracts, reporting, now) = (state.contracts.clone(), state.settings.reporting.clone(), chrono::Utc::now());
    let listed = state
        .store
        .read(move |c| {
            let (items, next) = record::list(c, &filter, after, PAGE)?;
            let refs: Vec<String> = items.iter().map(|i| i.reference.to_string()).collect();
            let clocks = crate::store::sla::clocks_of_many(c, &refs)?;
            Ok((items, clocks, next))
        })
        .await;
    let (items, clocks, next) = match listed {
        Ok(v) => v,
        Err(e) => return refused(&e.into()),
    };
    let rows: Vec<pages::QueueRow> = items
        .into_iter()
        .map(|i| {
            let mine: Vec<_> = clocks.iter().filter(|c| c.reference == i.reference.as_str()).filter(|c| p.supplier.is_none() || c.supplier == p.supplier).cloned().collect();
            let incident = match &p.supplier {
                Some(s) => i.seen_by_supplier(s),
                None => i,
            };
            pages::QueueRow { incident, standing: standing(&mine, &contracts, &reporting, now) }
        })
        .collect();
    let next = next.map(|id| incidents::encode_cursor("id", id));
    let suppliers: Vec<String> = state.settings.suppliers.iter().map(|s| s.id.clone()).collect();
    let services: Vec<String> = state.settings.services.iter().map(|s| s.name.clone()).collect();
    html(StatusCode::OK, pages::queue(&p, &rows, &filters, &suppliers, &services, next.as_deref(), &state.settings.reporting.time_zone))
}

fn services_of(state: &AppState) -> Vec<String> {
    state.settings.services.iter().map(|s| s.name.clone()).collect()
}

/// `GET /console/incidents/new`
async fn raise_form(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (p, _) = match signed_in(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if let Err(e) = p.require(&[Role::ServiceDesk]) {
        return refused(&e);
    }
    let key = uuid::Uuid::new_v4().to_string();
    html(StatusCode::OK, pages::raise(&p, &services_of(&state), &state.settings.priority_matrix, None, &key))
}

/// The create document the raise form describes: the API's fields, empty optional ones left
/// out, the scales as numbers when they are numbers (otherwise as typed, for the schema to
/// refuse by name).
fn create_doc(f: &BTreeMap<String, String>) -> Value {
    let mut doc = serde_json::Map::new();
    for field in ["title", "caller"] {
        doc.insert(field.into(), json!(f.get(field).map(|v| v.trim()).unwrap_or("")));
    }
    for field in ["description", "service", "ci", "category"] {
        if let Some(v) = f.get(field).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            doc.insert(field.into(), json!(v));
        }
    }
    for field in ["impact", "urgency"] {
        let raw = f.get(field).map(|v| v.trim()).unwrap_or("");
        doc.insert(field.into(), raw.parse::<u8>().map(|n| json!(n)).unwrap_or_else(|_| json!(raw)));
    }
    Value::Object(doc)
}

/// `POST /console/incidents` (the raise form). A second submit of the same form (its
/// idempotency key) lands on the incident the first one raised.
async fn raise(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let (p, _) = match signed_in(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let f = form_fields(&body);
    let key = f.get("idempotency_key").cloned().filter(|k| !k.trim().is_empty());
    match incidents::raise(&state, &p, correlation_id(&req), create_doc(&f), key.as_deref()).await {
        Ok((incident, _)) => redirect(&format!("/console/incidents/{}?done=raised", incident.reference)).finish(),
        Err(e) if e_status(&e) == StatusCode::FORBIDDEN => refused(&e),
        Err(e) => {
            let (status, error) = FormError::of("raise", &e, f);
            let fresh = uuid::Uuid::new_v4().to_string();
            html(status, pages::raise(&p, &services_of(&state), &state.settings.priority_matrix, Some(&error), &fresh))
        }
    }
}

fn e_status(e: &ApiError) -> StatusCode {
    let ApiError::Problem { status, .. } = e;
    *status
}

/// The record as the caller may see it, with its clocks and history.
async fn load_ticket(state: &AppState, p: &Principal, r: &TicketRef) -> Result<TicketSla, ApiError> {
    let (contracts, reference, now) = (state.contracts.clone(), r.clone(), chrono::Utc::now());
    let t = state.store.run(move |c| ticket::load(c, &contracts, reference.as_str(), now)).await?;
    match p.scoped_supplier()? {
        Some(s) => t.seen_by_supplier(s).ok_or_else(|| ApiError::not_found(format!("incident {r} does not exist"))),
        None => Ok(t),
    }
}

/// A short digest of the record as the caller sees it: it changes whenever anything shown
/// changes (a supplier's update, a note, a leg linked).
fn digest(incident: &Incident) -> String {
    let bytes = serde_json::to_vec(incident).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..12])
}

/// What a record page says was done, from the `done` a form's redirect carries.
fn done_text(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "raised" => "Incident raised and routed.",
        "note" => "Note added.",
        "file" => "File added.",
        "route" => "Routing changed.",
        "status" => "Status changed.",
        "link" => "Change linked.",
        _ => return None,
    })
}

/// Renders the record page, with `error` beside the form it concerns.
async fn render_record(state: &AppState, p: &Principal, r: &TicketRef, status: StatusCode, error: Option<&FormError>, done: Option<&str>) -> HttpResponse {
    let t = match load_ticket(state, p, r).await {
        Ok(t) => t,
        Err(e) => return refused(&e),
    };
    let desk = matches!(p.role, Role::ServiceDesk | Role::Admin);
    let access = p.supplier.as_deref().map(|s| t.incident.supplier_access(s));
    let offers = pages::Offers {
        work: (desk && !t.incident.status.is_terminal()) || access == Some(SupplierAccess::Work),
        manage: desk,
        hand_back: access == Some(SupplierAccess::Work),
        suppliers: state.settings.suppliers.iter().map(|s| s.id.clone()).collect(),
    };
    html(status, pages::record(p, &t, &digest(&t.incident), &offers, error, done_text(done), &state.settings.reporting.time_zone))
}

/// `GET /console/incidents/{ref}`
async fn record_page(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let (p, pairs) = match signed_in(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let r = match parse_ref(&path) {
        Ok(r) => r,
        Err(e) => return refused(&e),
    };
    render_record(&state, &p, &r, StatusCode::OK, None, param(&pairs, "done")).await
}

/// `GET /console/incidents/{ref}/fingerprint`: the record page's digest now, for the page's
/// script to notice a change.
async fn fingerprint(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let (p, _) = match signed_in(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let seen = match parse_ref(&path) {
        Ok(r) => incidents::load_for(&state, &p, &r, Need::Read).await,
        Err(e) => Err(e),
    };
    match seen {
        Ok(i) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").insert_header((header::CACHE_CONTROL, "no-store")).body(digest(&i)),
        Err(e) => HttpResponse::build(e_status(&e)).content_type("text/plain; charset=utf-8").body(e.to_string()),
    }
}

/// What a record page's form posted: the caller, the ticket and the fields, or the answer.
async fn posted(req: &HttpRequest, state: &AppState, path: &str) -> Result<(Principal, TicketRef), HttpResponse> {
    let (p, _) = signed_in(req, state).await?;
    let r = parse_ref(path).map_err(|e| refused(&e))?;
    Ok((p, r))
}

/// The answer to a record page's form: back to the record, or the record again with the error
/// beside the form.
async fn after(state: &AppState, p: &Principal, r: &TicketRef, form: &'static str, outcome: Result<(), ApiError>, values: BTreeMap<String, String>) -> HttpResponse {
    match outcome {
        Ok(()) => redirect(&format!("/console/incidents/{r}?done={form}")).finish(),
        Err(e) if matches!(e_status(&e), StatusCode::NOT_FOUND | StatusCode::FORBIDDEN) => refused(&e),
        Err(e) => {
            let (status, error) = FormError::of(form, &e, values);
            render_record(state, p, r, status, Some(&error), None).await
        }
    }
}

/// `POST /console/incidents/{ref}/notes` (form: `text`, `visibility`)
async fn add_note(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let (p, r) = match posted(&req, &state, &path).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let f = form_fields(&body);
    let doc = json!({ "text": f.get("text").map(|t| t.trim()).unwrap_or(""), "visibility": f.get("visibility").map(String::as_str).unwrap_or("internal") });
    let outcome = incidents::annotate(&state, &p, correlation_id(&req), r.clone(), doc).await.map(|_| ());
    after(&state, &p, &r, "note", outcome, f).await
}

/// `POST /console/incidents/{ref}/attachments` (a multipart form with the file as `file`)
async fn upload(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>, mut form: actix_multipart::Multipart) -> HttpResponse {
    let (p, r) = match posted(&req, &state, &path).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let values = BTreeMap::from([("file".to_string(), String::new())]);
    let mut outcome = Err(ApiError::unprocessable("no-file", "No file", "Choose a file to upload."));
    while let Some(field) = form.next().await {
        let mut field = match field {
            Ok(f) => f,
            Err(e) => {
                outcome = Err(ApiError::new(StatusCode::BAD_REQUEST, "unreadable-body", "The upload could not be read", e.to_string()));
                break;
            }
        };
        if field.name() != Some("file") {
            continue;
        }
        let name = field.content_disposition().and_then(|d| d.get_filename()).map(str::to_string).filter(|n| !n.is_empty());
        let Some(name) = name else { break };
        let content_type = field.content_type().map(|m| m.to_string()).unwrap_or_else(|| "application/octet-stream".into());
        outcome = attachments::file(&state, &p, correlation_id(&req), r.clone(), Some(&name), content_type, &mut field).await.map(|_| ());
        break;
    }
    let outcome = outcome.map_err(|e| match e {
        ApiError::Problem { kind: "empty-attachment", .. } => ApiError::unprocessable("empty-attachment", "The file is empty", "The file is empty: choose a file with content."),
        other => other,
    });
    // Every refusal of the file is the file field's.
    let outcome = outcome.map_err(|e| on_field(e, "file"));
    after(&state, &p, &r, "file", outcome, values).await
}

/// `GET /console/incidents/{ref}/attachments/{id}`
async fn download(req: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, i64)>) -> HttpResponse {
    let (p, _) = match signed_in(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let (raw, id) = path.into_inner();
    match attachments::fetch(&state, &p, &raw, id).await {
        Ok(resp) => resp,
        Err(e) => refused(&e),
    }
}

/// `POST /console/incidents/{ref}/route` (form: `supplier` (empty: the next by rule), `mode`
/// (`move` or `add`), `reason`)
async fn route(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let (p, r) = match posted(&req, &state, &path).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let f = form_fields(&body);
    let mut doc = json!({ "reason": f.get("reason").map(|t| t.trim()).unwrap_or("") });
    if let Some(s) = f.get("supplier").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        doc["supplier"] = json!(s);
    }
    if f.get("mode").map(String::as_str) == Some("add") {
        doc["mode"] = json!("add");
    }
    let outcome = incidents::reroute(&state, &p, correlation_id(&req), r.clone(), doc).await.map(|_| ());
    after(&state, &p, &r, "route", outcome, f).await
}

/// A refusal of what one field holds, as a violation at that field (so the form shows it
/// beside the field); a refusal of who asks, or of a stale form, stays the form's.
fn on_field(e: ApiError, field: &str) -> ApiError {
    let ApiError::Problem { status, kind, title, detail, extra } = e;
    if matches!(status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE) && extra.is_none() {
        let extra = Some(json!({"errors": [{"pointer": format!("/{field}"), "message": detail}]}));
        ApiError::Problem { status, kind, title, detail, extra }
    } else {
        ApiError::Problem { status, kind, title, detail, extra }
    }
}

/// Applies `doc` to the ticket as the form's page read it (its `version`): a ticket changed
/// since is refused, not overwritten.
async fn amend_at_version(state: &AppState, p: &Principal, req: &HttpRequest, r: &TicketRef, f: &BTreeMap<String, String>, doc: Value) -> Result<(), ApiError> {
    let version = f
        .get("version")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid-form", "Invalid form", "the form lost the version it was read at; reload the page"))?;
    incidents::amend(state, p, correlation_id(req), r.clone(), version, doc).await.map(|_| ())
}

/// `POST /console/incidents/{ref}/status` (form: `version`, `status`, `resolution_code`,
/// `resolution_notes`): resolve, close, cancel or reopen.
async fn set_status(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let (p, r) = match posted(&req, &state, &path).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let f = form_fields(&body);
    let mut doc = json!({ "status": f.get("status").map(|s| s.trim()).unwrap_or("") });
    if let Some(code) = f.get("resolution_code").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        doc["resolution"] = json!({ "code": code, "notes": f.get("resolution_notes").map(|s| s.trim()).unwrap_or("") });
    }
    let outcome = amend_at_version(&state, &p, &req, &r, &f, doc).await;
    after(&state, &p, &r, "status", outcome, f).await
}

/// `POST /console/incidents/{ref}/link` (form: `version`, `caused_by_change`)
async fn link_change(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let (p, r) = match posted(&req, &state, &path).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let f = form_fields(&body);
    let change = f.get("caused_by_change").map(|s| s.trim().to_uppercase()).unwrap_or_default();
    let outcome = amend_at_version(&state, &p, &req, &r, &f, json!({ "caused_by_change": change })).await.map_err(|e| on_field(e, "caused_by_change"));
    after(&state, &p, &r, "link", outcome, f).await
}

/// `POST /console/incidents/{ref}/handback` (form: `reason`): the supplier lets the ticket go,
/// and with it the record page; it lands on its queue.
async fn hand_back(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let (p, r) = match posted(&req, &state, &path).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let f = form_fields(&body);
    match incidents::give_back(&state, &p, correlation_id(&req), r.clone(), json!({ "reason": f.get("reason").map(|t| t.trim()).unwrap_or("") })).await {
        Ok(_) => redirect("/console/incidents").finish(),
        Err(e) => after(&state, &p, &r, "handback", Err(e), f).await,
    }
}
