//! Operations for administrators: the dead-letter list (explained and replayable) and an
//! on-demand reconciliation sweep.

use super::auth::{Principal, Role};
use super::error::ApiError;
use super::AppState;
use crate::store::deadletters;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
pub struct DeadQuery {
    #[serde(default)]
    include_replayed: bool,
}

/// `GET /api/v1/admin/dead-letters`
pub async fn dead_letters(p: Principal, state: web::Data<AppState>, q: web::Query<DeadQuery>) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::Admin])?;
    let include = q.include_replayed;
    let items = state.store.run(move |c| deadletters::list(c, include)).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// `POST /api/v1/admin/dead-letters/{id}/replay`
pub async fn replay(p: Principal, state: web::Data<AppState>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::Admin])?;
    let id = path.into_inner();
    let d = state.store.run(move |c| deadletters::replay(c, id)).await?;
    state.engine.notify();
    Ok(HttpResponse::Accepted().json(d))
}

/// `POST /api/v1/admin/suppliers/{id}/reconcile`: one sweep now, its report in the answer.
pub async fn reconcile(p: Principal, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::Admin])?;
    let supplier = path.into_inner();
    if state.engine.supplier(&supplier).is_err() {
        return Err(ApiError::not_found(format!("supplier {supplier} is not configured")));
    }
    let report = state
        .engine
        .sweep(&supplier)
        .await
        .map_err(|e| ApiError::new(actix_web::http::StatusCode::BAD_GATEWAY, "supplier-unavailable", "The supplier could not be read", e.to_string()))?;
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /api/v1/admin/mapping-events`: native values a supplier sent that its mapping profile
/// does not know, newest first. The values are kept on the legs; this is the list to act on
/// (extend the profile or the instance's overrides).
pub async fn mapping_events(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::Admin])?;
    let rows = state.store.run(|c| crate::store::record::recent_events(c, crate::domain::EventType::UnmappedValue.as_str(), 500)).await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|(reference, e)| {
            json!({
                "ref": reference,
                "time": crate::domain::time::rfc3339(&e.occurred_at),
                "supplier": e.data.get("supplier"),
                "system": e.data.get("system"),
                "field": e.data.get("field"),
                "value": e.data.get("value"),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}
