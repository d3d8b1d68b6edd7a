//! Operations for administrators: the dead-letter list (explained and replayable), an
//! on-demand reconciliation sweep, and first contact with and health of each supplier: a check
//! of what the hub can do with it, the discovery of its own vocabulary, and the health figures.

use super::auth::{Principal, Role};
use super::error::ApiError;
use super::AppState;
use crate::adapters::setup::{self, CheckReport};
use crate::store::deadletters;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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

/// The configured external supplier `id`, or the problem to answer: 404 for one the hub does
/// not know, 422 for the hub's own queue, which has no system to call.
fn external_supplier<'a>(state: &'a AppState, id: &str) -> Result<&'a crate::config::SupplierSettings, ApiError> {
    let unprocessable = || {
        ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "nothing-to-check",
            "The supplier has no system to check",
            format!("supplier {id} is the hub's own queue: there is no supplier system to call"),
        )
    };
    match state.settings.supplier(id) {
        Some(s) if s.is_external() => Ok(s),
        Some(_) => Err(unprocessable()),
        None if *id == state.settings.routing.default_queue => Err(unprocessable()),
        None => Err(ApiError::not_found(format!("supplier {id} is not configured"))),
    }
}

/// The check of a configured supplier: every step, or a failed `configuration` step when the
/// hub cannot even build its client.
pub(crate) async fn run_check(settings: &crate::config::SupplierSettings, egress: &crate::config::EgressSettings) -> CheckReport {
    match setup::for_configured(settings, egress) {
        Ok((system, http)) => setup::check(&http, &settings.base_url, system.as_ref()).await,
        Err(e) => CheckReport::of(vec![setup::Step::failed(
            "configuration",
            e,
            "correct the supplier's [[suppliers]] entry or set its secret's environment variable, then restart the hub",
        )]),
    }
}

/// `GET /api/v1/admin/suppliers/{id}/check`: `{"ok", "steps"}`; a failed check is an answer
/// too (200).
pub async fn check(p: Principal, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::Admin])?;
    let supplier = external_supplier(&state, &path)?;
    Ok(HttpResponse::Ok().json(run_check(supplier, &state.settings.egress).await))
}

/// `GET /api/v1/admin/suppliers/{id}/discovery`: the instance's vocabulary with a proposal for
/// each value, and the TOML to paste; 502 naming why when the supplier cannot be read.
pub async fn discovery(p: Principal, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::Admin])?;
    let supplier = external_supplier(&state, &path)?;
    let (system, http) = setup::for_configured(supplier, &state.settings.egress)
        .map_err(|e| ApiError::new(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, "supplier-misconfigured", "The supplier's configuration is incomplete", e))?;
    match system.discover().await {
        Ok(found) => Ok(HttpResponse::Ok().json(found)),
        Err(e) => Err(ApiError::new(
            actix_web::http::StatusCode::BAD_GATEWAY,
            "supplier-unavailable",
            "The supplier's vocabulary could not be read",
            discovery_failed(supplier, &http, &e).await,
        )),
    }
}

/// Why a discovery failed, in one text: the supplier being unreachable says why and what to
/// change; otherwise the supplier's own refusal or error.
pub(crate) async fn discovery_failed(supplier: &crate::config::SupplierSettings, http: &crate::adapters::http::SupplierHttp, e: &crate::adapters::SupplierError) -> String {
    let reach = setup::reachability(http, &supplier.base_url).await;
    match (reach.ok, reach.fix) {
        (false, Some(fix)) => format!("supplier {} cannot be reached: {}; {fix}", supplier.id, reach.detail),
        _ => format!("supplier {}: {e}", supplier.id),
    }
}

/// One supplier's health, as the admin API and the dashboard show it.
#[derive(Debug, Clone, Serialize)]
pub struct SupplierHealth {
    pub id: String,
    pub name: String,
    pub system: String,
    pub base_url: Option<String>,
    pub health: Health,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// The last call to it that succeeded (this process), or the last time one of its tickets
    /// was brought in step, whichever is later.
    pub last_successful_call: Option<DateTime<Utc>>,
    /// The last webhook delivery from it that the hub applied.
    pub last_webhook: Option<DateTime<Utc>>,
    pub last_sweep: SweepHealth,
    /// Messages waiting in its dispatch queue; null when the broker could not be asked.
    pub dispatch_queue_depth: Option<u32>,
    /// Calls to it retried in the last hour (this process).
    pub retries_last_hour: usize,
    pub dead_letters_last_hour: i64,
    /// Legs in play holding native values no mapping knows (see the mapping events).
    pub unmapped_values_waiting: i64,
    /// The hub has no circuit breaker: each call is retried with backoff and then given up on.
    /// This says whether its latest calls are failing.
    pub calls: CallsHealth,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepHealth {
    /// When the last sweep ended (this process), and why it failed if it did.
    pub at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Everything changed at the supplier before this was read.
    pub watermark: Option<DateTime<Utc>>,
    pub watermark_moved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallsHealth {
    /// `ok` (the latest call succeeded), `failing` (the latest calls failed), `idle` (none yet).
    pub state: &'static str,
    pub failures_in_row: u32,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
    /// Tickets of it in play whose last attempt failed.
    pub failing_legs: i64,
}

/// Every configured supplier's health.
pub(crate) async fn supplier_health(state: &AppState) -> Result<Vec<SupplierHealth>, ApiError> {
    let configured: Vec<crate::config::SupplierSettings> = state.settings.suppliers.clone();
    let now = Utc::now();
    let since = now - chrono::Duration::hours(1);
    let ids: Vec<String> = configured.iter().map(|s| s.id.clone()).collect();
    let recorded = state.store.read(move |c| ids.iter().map(|id| crate::store::suppliers::recorded(c, id, since)).collect::<Result<Vec<_>, _>>()).await?;
    let external: Vec<String> = configured.iter().filter(|s| s.is_external()).map(|s| s.id.clone()).collect();
    let depths = match state.bus.dispatch_depths(&external).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "dispatch queue depths unavailable");
            vec![None; external.len()]
        }
    };
    Ok(configured
        .into_iter()
        .zip(recorded)
        .map(|(s, r)| {
            let activity = state.engine.activity.get(&s.id);
            let calls = activity.map(|a| a.calls.snapshot()).unwrap_or_default();
            let sweep = activity.and_then(|a| a.last_sweep());
            let depth = external.iter().position(|id| *id == s.id).and_then(|i| depths.get(i).copied().flatten());
            let state = match (calls.failures_in_row, calls.last_ok) {
                (0, None) if calls.last_failure.is_none() => "idle",
                (0, _) => "ok",
                _ => "failing",
            };
            SupplierHealth {
                base_url: s.is_external().then(|| s.base_url.clone()),
                health: Health {
                    last_successful_call: calls.last_ok.max(r.last_synced_at),
                    last_webhook: r.last_webhook_at,
                    last_sweep: SweepHealth {
                        at: sweep.as_ref().map(|w| w.at),
                        error: sweep.and_then(|w| w.error),
                        watermark: r.watermark,
                        watermark_moved_at: r.watermark_moved_at,
                    },
                    dispatch_queue_depth: depth,
                    retries_last_hour: calls.retries.len(),
                    dead_letters_last_hour: r.dead_letters,
                    unmapped_values_waiting: r.unmapped_waiting,
                    calls: CallsHealth {
                        state,
                        failures_in_row: calls.failures_in_row,
                        last_failure_at: calls.last_failure.as_ref().map(|(at, _)| *at),
                        last_failure: calls.last_failure.map(|(_, e)| e),
                        failing_legs: r.failing_legs,
                    },
                },
                id: s.id,
                name: s.name,
                system: s.system,
            }
        })
        .collect())
}

/// `GET /api/v1/admin/suppliers`: every configured supplier with its health.
pub async fn suppliers(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(&[Role::Admin])?;
    let items = supplier_health(&state).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}
