//! The HTTP API (actix-web): incidents for the service desk, webhooks for suppliers, SLA
//! reports and the managers' dashboard, admin and health endpoints, and the hub as a TMF621
//! Trouble Ticket API. Bodies are read with a size limit, parsed, checked against the schema and
//! turned into domain types before anything else sees them.

pub mod admin;
pub mod attachments;
pub mod auth;
mod browser;
pub mod changes;
pub mod console;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod incidents;
pub mod openapi;
#[cfg(test)]
mod proptests;
pub mod routes;
pub mod sla;
pub mod tmf621;
pub mod webhooks;

use crate::config::Settings;
use crate::routing::Router;
use crate::store::Store;
use crate::sync::Engine;
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest};
use error::ApiError;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::watch;

/// What every handler can reach.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub engine: Arc<Engine>,
    pub router: Router,
    pub broker_connected: watch::Receiver<bool>,
    /// The broker, for what the API reads of it directly (the dispatch queues' depths).
    pub bus: crate::bus::Bus,
    /// The SLA calendars and contracts, checked at start.
    pub contracts: Arc<crate::sla::clock::Contracts>,
}

/// The correlation id of a request: the caller's `X-Correlation-Id`, or a new one.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

pub fn correlation_id(req: &HttpRequest) -> String {
    req.extensions().get::<CorrelationId>().map(|c| c.0.clone()).unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Reads the whole body, refusing more than `limit` bytes with a problem document.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "unreadable-body", "The request body could not be read", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", "The request body is too large", format!("the body exceeds the limit of {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a JSON body with a message that says where it is broken.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_json("the request body is empty; send a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_json(format!("{e} (line {}, column {})", e.line(), e.column())))
}

/// Registers every endpoint ([`routes`]) and the answer for unknown paths: problem+json, or
/// TMF630's error body under the TMF621 API's base path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
    // A query string or a path segment the handler's types cannot read (`?limit=abc`) is
    // answered like every other refusal of the API it was sent to.
    cfg.app_data(
        web::QueryConfig::default().error_handler(|e, req| refusal(req, ApiError::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query parameter", e.to_string()))),
    );
    cfg.app_data(web::PathConfig::default().error_handler(|e, req| refusal(req, ApiError::not_found(format!("{}: {e}", req.path())))));
    cfg.default_service(web::to(|req: HttpRequest| async move {
        let what = format!("no endpoint {} {}", req.method(), req.path());
        if req.path().starts_with(tmf621::render::BASE_PATH) {
            return Err::<actix_web::HttpResponse, actix_web::Error>(tmf621::TmfError::not_found(what).into());
        }
        Err(ApiError::not_found(what).into())
    }));
}

/// `e` as the API `req` was sent to answers it: TMF630's error body under the TMF621 API's base
/// path, problem+json everywhere else.
fn refusal(req: &HttpRequest, e: ApiError) -> actix_web::Error {
    if req.path().starts_with(tmf621::render::BASE_PATH) {
        tmf621::TmfError::from(e).into()
    } else {
        e.into()
    }
}

/// The hub's own API, webhooks and health endpoints.
fn endpoints() -> Vec<routes::Endpoint> {
    use actix_web::http::Method;
    use routes::endpoint;
    const V1: &str = "/api/v1";
    vec![
        endpoint(Method::GET, "/healthz", health::healthz),
        endpoint(Method::GET, "/readyz", health::readyz),
        endpoint(Method::GET, "/openapi.json", openapi::serve),
        endpoint(Method::POST, format!("{V1}/incidents"), incidents::create),
        endpoint(Method::GET, format!("{V1}/incidents"), incidents::list),
        endpoint(Method::GET, format!("{V1}/incidents/{{ref}}"), incidents::get),
        endpoint(Method::PATCH, format!("{V1}/incidents/{{ref}}"), incidents::patch),
        endpoint(Method::POST, format!("{V1}/incidents/{{ref}}/notes"), incidents::add_note),
        endpoint(Method::GET, format!("{V1}/incidents/{{ref}}/history"), incidents::history),
        endpoint(Method::POST, format!("{V1}/incidents/{{ref}}/attachments"), attachments::upload),
        endpoint(Method::GET, format!("{V1}/incidents/{{ref}}/attachments/{{id}}"), attachments::download),
        endpoint(Method::POST, format!("{V1}/incidents/{{ref}}/route"), incidents::route),
        endpoint(Method::POST, format!("{V1}/incidents/{{ref}}/handback"), incidents::handback),
        endpoint(Method::GET, format!("{V1}/incidents/{{ref}}/sla"), sla::incident_clocks),
        endpoint(Method::GET, format!("{V1}/reports/sla"), sla::report),
        // The calendar before `{ref}`, which would otherwise take `calendar` for a reference.
        endpoint(Method::GET, format!("{V1}/changes/calendar"), changes::calendar),
        endpoint(Method::POST, format!("{V1}/changes"), changes::create),
        endpoint(Method::GET, format!("{V1}/changes"), changes::list),
        endpoint(Method::GET, format!("{V1}/changes/{{ref}}"), changes::get),
        endpoint(Method::PATCH, format!("{V1}/changes/{{ref}}"), changes::patch),
        endpoint(Method::PATCH, format!("{V1}/changes/{{ref}}/legs/{{supplier}}"), changes::update_leg),
        endpoint(Method::POST, format!("{V1}/changes/{{ref}}/approvals"), changes::approve),
        endpoint(Method::POST, format!("{V1}/changes/{{ref}}/attachments"), changes::upload_attachment),
        endpoint(Method::GET, format!("{V1}/changes/{{ref}}/attachments/{{id}}"), changes::download_attachment),
        endpoint(Method::GET, format!("{V1}/changes/{{ref}}/conflicts"), changes::conflicts),
        endpoint(Method::POST, format!("{V1}/changes/{{ref}}/conflicts/acknowledge"), changes::acknowledge),
        endpoint(Method::POST, format!("{V1}/changes/{{ref}}/notes"), changes::add_note),
        endpoint(Method::GET, format!("{V1}/changes/{{ref}}/history"), changes::history),
        endpoint(Method::GET, format!("{V1}/admin/dead-letters"), admin::dead_letters),
        endpoint(Method::GET, format!("{V1}/admin/mapping-events"), admin::mapping_events),
        endpoint(Method::POST, format!("{V1}/admin/dead-letters/{{id}}/replay"), admin::replay),
        endpoint(Method::POST, format!("{V1}/admin/suppliers/{{id}}/reconcile"), admin::reconcile),
        endpoint(Method::GET, format!("{V1}/admin/suppliers"), admin::suppliers),
        endpoint(Method::GET, format!("{V1}/admin/suppliers/{{id}}/check"), admin::check),
        endpoint(Method::GET, format!("{V1}/admin/suppliers/{{id}}/discovery"), admin::discovery),
        endpoint(Method::POST, "/webhooks/{supplier}", webhooks::receive),
        endpoint(Method::POST, "/webhooks/{supplier}/listener/{event}", webhooks::listener),
    ]
}
