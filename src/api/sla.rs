//! SLA endpoints: `GET /api/v1/reports/sla` (managers; a supplier key gets its own supplier's
//! report only), as JSON or CSV, and `GET /api/v1/incidents/{ref}/sla`, one ticket's clocks
//! (a supplier key sees only its own supplier's clocks).

use super::auth::{Need, Principal, Role};
use super::error::ApiError;
use super::incidents::parse_ref;
use super::AppState;
use crate::domain::time;
use crate::sla::report::{self, Period, ReportQuery};
use crate::sla::ticket;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::json;

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query parameter", detail)
}

/// The query string as pairs; a parameter given twice is refused rather than guessed.
pub fn query_pairs(req: &HttpRequest, known: &[&str]) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let mut out = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if !known.contains(&k.as_ref()) {
            return Err(bad(format!("unknown parameter `{k}`; known: {}", known.join(", "))));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(bad(format!("parameter `{k}` is given more than once")));
        }
    }
    Ok(out)
}

/// The supplier whose report a caller may read: managers and admins any (or, with none named,
/// the end-to-end report); a supplier key its own only.
pub fn report_supplier(p: &Principal, state: &AppState, asked: Option<&str>) -> Result<Option<String>, ApiError> {
    let asked = asked.map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = asked {
        if state.settings.supplier(s).is_none() && s != state.settings.routing.default_queue {
            return Err(ApiError::not_found(format!("supplier `{s}` is not configured")));
        }
    }
    match p.role {
        Role::Manager | Role::Admin => Ok(asked.map(str::to_string)),
        Role::Supplier => {
            let own = p.supplier.clone().ok_or_else(|| ApiError::forbidden("this supplier key is not scoped to a supplier"))?;
            match asked {
                Some(s) if s != own => Err(ApiError::forbidden(format!("a key of supplier `{own}` may read only its own report, not `{s}`'s"))),
                _ => Ok(Some(own)),
            }
        }
        Role::ServiceDesk | Role::ChangeManager => Err(ApiError::forbidden("SLA reports need a manager, admin or supplier key")),
    }
}

/// `GET /api/v1/reports/sla?supplier=&month=|from=&to=&priority=&format=json|csv&table=summary|breaches&breaches=N`
pub async fn report(req: HttpRequest, p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q = query_pairs(&req, &["supplier", "month", "from", "to", "priority", "format", "table", "breaches"])?;
    let supplier = report_supplier(&p, &state, q.get("supplier").map(String::as_str))?;
    let now = Utc::now();
    let period = Period::parse(q.get("month").map(String::as_str), q.get("from").map(String::as_str), q.get("to").map(String::as_str), &state.settings.reporting.time_zone, now)
        .map_err(bad)?;
    let priority = q.get("priority").map(|v| v.parse::<u8>().ok().filter(|p| (1..=5).contains(p)).ok_or_else(|| bad(format!("priority must be 1..5, got `{v}`")))).transpose()?;
    let breach_limit = q
        .get("breaches")
        .map(|v| v.parse::<i64>().ok().filter(|n| (0..=5000).contains(n)).ok_or_else(|| bad(format!("breaches must be 0..5000, got `{v}`"))))
        .transpose()?
        .unwrap_or(100);
    let format = q.get("format").map(String::as_str).unwrap_or("json");
    if !matches!(format, "json" | "csv") {
        return Err(bad(format!("format must be json or csv, got `{format}`")));
    }
    let table = q.get("table").map(String::as_str).unwrap_or("summary");
    if !matches!(table, "summary" | "breaches") {
        return Err(bad(format!("table must be summary or breaches, got `{table}`")));
    }
    let query = ReportQuery { supplier, period, priority, breach_limit };
    let (contracts, reporting) = (state.contracts.clone(), state.settings.reporting.clone());
    let q2 = query.clone();
    let r = state.store.run(move |c| report::build(c, &contracts, &reporting, &q2, now)).await?;
    if format == "json" {
        return Ok(HttpResponse::Ok().json(r));
    }
    let (body, name) = match table {
        "breaches" => (report::breaches_csv(&r), "breaches"),
        _ => (report::to_csv(&r), "sla"),
    };
    let who = query.supplier.as_deref().unwrap_or("end-to-end");
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}-{who}-{}.csv\"", query.period.label.replace("..", "_"))))
        .body(body))
}

/// `GET /api/v1/incidents/{ref}/sla`: the ticket's clocks, computed from its log as of now.
pub async fn incident_clocks(p: Principal, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let r = parse_ref(&path)?;
    let contracts = state.contracts.clone();
    let now = Utc::now();
    let mut t = state.store.run(move |c| ticket::load(c, &contracts, r.as_str(), now)).await?;
    t.incident = p.incident(t.incident, Need::Read)?;
    if let Some(s) = p.scoped_supplier()? {
        t = t.only_supplier(s);
    }
    Ok(HttpResponse::Ok().json(json!({ "ref": t.incident.reference, "computed_at": time::rfc3339(&t.now), "clocks": t.views() })))
}
