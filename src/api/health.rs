//! Liveness and readiness.

use super::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The process is up (no dependencies checked, no authentication).
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready to take work: the database answers and the broker session is up.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.store.ping().await;
    let broker = *state.broker_connected.borrow();
    let body = json!({
        "status": if database && broker { "ready" } else { "not_ready" },
        "checks": { "database": database, "broker": broker },
    });
    if database && broker {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
