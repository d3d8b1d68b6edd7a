//! The HTTP API (actix-web): incidents for the service desk, webhooks for suppliers, SLA
//! reports and the managers' dashboard, admin and health endpoints, and the hub as a TMF621
//! Trouble Ticket API. Bodies are read with a size limit, parsed, checked against the schema and
//! turned into domain types before anything else sees them.

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod incidents;
pub mod openapi;
#[cfg(test)]
mod proptests;
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

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .service(web::resource("/openapi.json").route(web::get().to(openapi::serve)))
        .service(
            web::scope("/api/v1")
                .service(web::resource("/incidents").route(web::post().to(incidents::create)).route(web::get().to(incidents::list)))
                .service(web::resource("/incidents/{ref}").route(web::get().to(incidents::get)).route(web::patch().to(incidents::patch)))
                .service(web::resource("/incidents/{ref}/notes").route(web::post().to(incidents::add_note)))
                .service(web::resource("/incidents/{ref}/history").route(web::get().to(incidents::history)))
                .service(web::resource("/incidents/{ref}/attachments").route(web::post().to(attachments::upload)))
                .service(web::resource("/incidents/{ref}/attachments/{id}").route(web::get().to(attachments::download)))
                .service(web::resource("/incidents/{ref}/route").route(web::post().to(incidents::route)))
                .service(web::resource("/incidents/{ref}/handback").route(web::post().to(incidents::handback)))
                .service(web::resource("/incidents/{ref}/sla").route(web::get().to(sla::incident_clocks)))
                .service(web::resource("/reports/sla").route(web::get().to(sla::report)))
                .service(web::resource("/admin/dead-letters").route(web::get().to(admin::dead_letters)))
                .service(web::resource("/admin/mapping-events").route(web::get().to(admin::mapping_events)))
                .service(web::resource("/admin/dead-letters/{id}/replay").route(web::post().to(admin::replay)))
                .service(web::resource("/admin/suppliers/{id}/reconcile").route(web::post().to(admin::reconcile))),
        )
        .service(web::resource("/webhooks/{supplier}").route(web::post().to(webhooks::receive)))
        .service(web::resource("/webhooks/{supplier}/listener/{event}").route(web::post().to(webhooks::listener)))
        .configure(tmf621::configure)
        .configure(dashboard::configure)
        .default_service(web::to(|req: HttpRequest| async move { Err::<actix_web::HttpResponse, _>(ApiError::not_found(format!("no endpoint {} {}", req.method(), req.path()))) }));
}
