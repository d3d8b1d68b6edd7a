//! The managers' dashboard at `/dashboard`: server-rendered HTML with inline SVG, no script and
//! nothing fetched from elsewhere (the machines are offline), and the browser sign-in for it.
//!
//! A browser signs in as [`crate::api::browser`] describes, with a manager or admin key (a
//! supplier key sees only its own supplier; a change manager's key opens the change pages only).
//!
//! The change pages (`/dashboard/changes`, the forward schedule of change, and
//! `/dashboard/changes/{ref}`, one change) follow the change API's visibility: a supplier key
//! sees only the changes it holds a leg of (any other is not found, as through the API), with
//! every leg of those changes by supplier, state and window only, as the API shows them. It sees
//! the configured freezes, as the calendar shows them to everyone; an open conflict with a
//! change it cannot see names that change without linking to it.

mod change_charts;
pub(crate) mod change_pages;
mod charts;
pub(crate) mod pages;
mod supplier_pages;

use super::auth::Role;
use super::browser::{form_page, page as html, same_origin, Area, Refusal};
use super::AppState;
use crate::domain::change::ChangeRef;
use crate::domain::TicketRef;
use crate::sla::dashboard;
use crate::sla::report::Period;
use crate::sla::ticket;
use crate::store::auth;
use crate::store::change::{self, ListFilter};
use crate::store::sla::Scope;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};

/// The dashboard's sign-in: manager, admin, change manager and supplier keys.
pub(crate) static AREA: Area = Area {
    root: "/dashboard",
    cookie: "siam_dashboard",
    admits: |record| viewer_of(record).map(|_| ()),
    landing: |record, next| match viewer_of(record) {
        Ok(viewer) => landing(&viewer, next),
        Err(_) => next.to_string(),
    },
    login_page: pages::login,
    message_page: pages::message,
    page: html,
};

/// The dashboard's pages and its sign-in.
pub(super) fn endpoints() -> Vec<super::routes::Endpoint> {
    use super::routes::endpoint;
    use actix_web::http::Method;
    let mut all = vec![endpoint(Method::GET, "/dashboard", overview)];
    all.extend(AREA.endpoints());
    all.extend([
        endpoint(Method::GET, "/dashboard/incidents/{ref}", timeline),
        endpoint(Method::GET, "/dashboard/changes", change_schedule),
        endpoint(Method::GET, "/dashboard/changes/{ref}", change_page),
        endpoint(Method::GET, "/dashboard/suppliers", suppliers_page),
        endpoint(Method::POST, "/dashboard/suppliers/{id}/check", check_supplier),
    ]);
    all
}

/// Who is looking at the dashboard.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub role: Role,
    /// A supplier key's supplier: it sees only that supplier's contracts.
    pub supplier: Option<String>,
}

impl Viewer {
    /// Whether the SLA pages are the viewer's: a change manager's key opens the change pages only.
    fn sees_sla(&self) -> bool {
        self.role != Role::ChangeManager
    }

    fn scope(&self) -> Scope {
        match &self.supplier {
            Some(s) => Scope::Supplier(s.clone()),
            None => Scope::All,
        }
    }
}

/// Who a key stands for on the dashboard: manager, admin, change manager (the change pages
/// only), or a supplier key scoped to its supplier.
fn viewer_of(record: &auth::KeyRecord) -> Result<Viewer, Refusal> {
    match (Role::parse(&record.role), record.supplier_id.clone()) {
        (Some(role @ (Role::Manager | Role::Admin | Role::ChangeManager)), _) => Ok(Viewer { role, supplier: None }),
        (Some(Role::Supplier), Some(s)) => Ok(Viewer { role: Role::Supplier, supplier: Some(s) }),
        _ => Err((StatusCode::FORBIDDEN, "That key cannot open the dashboard: it needs a manager, admin or supplier key (or a change_manager key, for the change schedule).")),
    }
}

/// Where a signed-in viewer goes: `next`, unless that is an SLA page a change manager may not
/// open, when the change schedule instead.
fn landing(viewer: &Viewer, next: &str) -> String {
    if viewer.sees_sla() || next.starts_with("/dashboard/changes") {
        next.to_string()
    } else {
        "/dashboard/changes".to_string()
    }
}

/// The answer to a change manager on an SLA page.
fn sla_refused() -> HttpResponse {
    html(
        StatusCode::FORBIDDEN,
        pages::message("Not for this key", "The SLA dashboard needs a manager, admin or supplier key; a change manager's key opens the change schedule at /dashboard/changes."),
    )
}

/// The answer when the record cannot be read.
fn unavailable(what: &str, e: &crate::store::StoreError) -> HttpResponse {
    tracing::error!(error = %e, "{what} unavailable");
    html(StatusCode::SERVICE_UNAVAILABLE, pages::message(&format!("{what} unavailable"), "The service record could not be read; try again shortly."))
}

/// The viewer of a dashboard request, or the response to send instead.
async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<(Viewer, Vec<(String, String)>), HttpResponse> {
    let (record, pairs) = AREA.authenticate(req, state).await?;
    match viewer_of(&record) {
        Ok(viewer) => Ok((viewer, pairs)),
        Err((status, msg)) => Err(html(status, pages::message("Not for this key", msg))),
    }
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// `GET /dashboard?month=YYYY-MM`
async fn overview(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (viewer, pairs) = match authenticate(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if !viewer.sees_sla() {
        return sla_refused();
    }
    let now = Utc::now();
    let tz = state.settings.reporting.time_zone.clone();
    let period = match param(&pairs, "month").map(|m| Period::month(m, &tz)).unwrap_or_else(|| Period::current_month(now, &tz)) {
        Ok(p) => p,
        Err(e) => return html(StatusCode::BAD_REQUEST, pages::message("Invalid month", &e)),
    };
    let (contracts, reporting, scope) = (state.contracts.clone(), state.settings.reporting.clone(), viewer.scope());
    let p2 = period.clone();
    match state.store.run(move |c| dashboard::overview(c, &contracts, &reporting, &p2, &scope, now)).await {
        Ok(o) => html(StatusCode::OK, pages::overview(&o, &viewer, &tz, &state.settings.reporting)),
        Err(e) => unavailable("Dashboard", &e),
    }
}

/// `GET /dashboard/incidents/{ref}`: one ticket's timeline.
async fn timeline(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let (viewer, _) = match authenticate(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if !viewer.sees_sla() {
        return sla_refused();
    }
    let not_found = || html(StatusCode::NOT_FOUND, pages::message("Not found", &format!("There is no incident {}.", path.as_str())));
    let Ok(r) = path.parse::<TicketRef>() else { return not_found() };
    let contracts = state.contracts.clone();
    let now = Utc::now();
    let t = match state.store.run(move |c| ticket::load(c, &contracts, r.as_str(), now)).await {
        Ok(t) => t,
        Err(crate::store::StoreError::NotFound(_)) => return not_found(),
        Err(e) => return unavailable("Timeline", &e),
    };
    // A supplier sees the tickets it may see through the API, only its own clocks, and no
    // other supplier's leg details.
    let t = match &viewer.supplier {
        Some(s) => match t.seen_by_supplier(s) {
            Some(t) => t,
            None => return not_found(),
        },
        None => t,
    };
    html(StatusCode::OK, pages::timeline(&t, &viewer, &state.settings.reporting.time_zone))
}

/// How many days the change schedule shows unless asked, and the most it shows at once.
const SCHEDULE_DAYS: i64 = 28;
const SCHEDULE_MAX_DAYS: i64 = 92;

/// The days the change schedule covers: `from` and `to` are dates (`2026-12-01`), both shown;
/// from `today` for [`SCHEDULE_DAYS`] days by default, and one end alone keeps that length.
fn schedule_days(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), String> {
    let date = |name: &str, v: &str| NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").map_err(|_| format!("{name} must be a date such as 2026-12-01, not `{v}`."));
    let span = chrono::Duration::days(SCHEDULE_DAYS - 1);
    let (from, to) = match (from.map(|v| date("from", v)).transpose()?, to.map(|v| date("to", v)).transpose()?) {
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, f + span),
        (None, Some(t)) => (t - span, t),
        (None, None) => (today, today + span),
    };
    if to < from {
        return Err(format!("The period ends ({to}) before it begins ({from})."));
    }
    let days = (to - from).num_days() + 1;
    if days > SCHEDULE_MAX_DAYS {
        return Err(format!("The schedule shows at most {SCHEDULE_MAX_DAYS} days at a time; {from} to {to} is {days} days."));
    }
    Ok((from, to))
}

/// `GET /dashboard/changes?from=&to=[&service=&supplier=]`: the forward schedule of change.
async fn change_schedule(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (viewer, pairs) = match authenticate(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match schedule_of(&state, &pairs, viewer.supplier.clone(), change_pages::DASHBOARD).await {
        Ok(schedule) => html(StatusCode::OK, change_pages::schedule(&schedule, &viewer, &state.settings.reporting.time_zone)),
        Err(ScheduleError::Period(e)) => html(StatusCode::BAD_REQUEST, pages::message("Invalid period", &e)),
        Err(ScheduleError::Store(e)) => unavailable("Change schedule", &e),
    }
}

/// Why a schedule cannot be shown.
pub enum ScheduleError {
    /// The period asked for is not one the schedule shows.
    Period(String),
    Store(crate::store::StoreError),
}

/// The forward schedule of change that a page's query asks for (`from`, `to`, `service`,
/// `supplier`), as `visible_to_supplier` may see it, with links under `paths`.
pub async fn schedule_of(
    state: &AppState,
    pairs: &[(String, String)],
    visible_to_supplier: Option<String>,
    paths: change_pages::Paths,
) -> Result<change_pages::Schedule, ScheduleError> {
    let tz = state.settings.reporting.time_zone.clone();
    let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::Tz::UTC);
    let now = Utc::now();
    let (from_day, to_day) = schedule_days(param(pairs, "from"), param(pairs, "to"), now.with_timezone(&zone).date_naive()).map_err(ScheduleError::Period)?;
    let (from, to): (DateTime<Utc>, DateTime<Utc>) = (crate::sla::report::day_start(zone, from_day), crate::sla::report::day_start(zone, to_day + chrono::Duration::days(1)));
    let (service, supplier) = (param(pairs, "service").map(str::to_string), param(pairs, "supplier").map(str::to_string));
    let scoped = visible_to_supplier.is_some();
    let filter = ListFilter { status: None, service: service.clone(), supplier: supplier.clone(), from: Some(from), to: Some(to), visible_to_supplier };
    let changes = state.store.read(move |c| change::calendar(c, &filter)).await.map_err(ScheduleError::Store)?;
    let settings = &state.settings;
    Ok(change_pages::Schedule {
        from_day,
        to_day,
        from,
        to,
        service,
        supplier,
        catalogue: settings.services.iter().map(|s| s.name.clone()).collect(),
        suppliers: if scoped { vec![] } else { settings.suppliers.iter().map(|s| s.id.clone()).collect() },
        changes,
        freezes: settings.changes.freezes.iter().filter(|f| f.start < to && f.end > from).cloned().collect(),
        generated_at: now,
        paths,
    })
}

/// `GET /dashboard/changes/{ref}`: one change, its legs, approvals, conflicts and history.
async fn change_page(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let (viewer, _) = match authenticate(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    // A change a supplier key may not see is not found, exactly as one that does not exist.
    let not_found = || html(StatusCode::NOT_FOUND, pages::message("Not found", &format!("There is no change {}.", path.as_str())));
    let Ok(r) = path.parse::<ChangeRef>() else { return not_found() };
    let (settings, supplier) = (state.settings.clone(), viewer.supplier.clone());
    match state.store.read(move |c| change::file(c, &super::changes::rules_of(&settings.changes), r.as_str(), supplier.as_deref())).await {
        Ok(f) => html(StatusCode::OK, change_pages::change(&f, &viewer, &state.settings.reporting.time_zone)),
        Err(crate::store::StoreError::NotFound(_)) => not_found(),
        Err(e) => unavailable("Change", &e),
    }
}

/// The viewer of an administrators' page, or the response to send instead: other keys the
/// dashboard admits get its 403 page.
async fn administrator(req: &HttpRequest, state: &AppState) -> Result<Viewer, HttpResponse> {
    let (viewer, _) = authenticate(req, state).await?;
    if viewer.role != Role::Admin {
        return Err(html(StatusCode::FORBIDDEN, pages::message("Not for this key", "The suppliers page needs an admin key.")));
    }
    Ok(viewer)
}

/// The suppliers page, with the steps of a check just run.
async fn suppliers_answer(state: &AppState, viewer: &Viewer, check: Option<supplier_pages::CheckShown<'_>>) -> HttpResponse {
    match super::admin::supplier_health(state).await {
        // Its "Check now" forms must say where they come from.
        Ok(items) => form_page(StatusCode::OK, supplier_pages::suppliers(&items, check, viewer, &state.settings.reporting.time_zone)),
        Err(e) => {
            tracing::error!(error = ?e, "supplier health unavailable");
            html(StatusCode::SERVICE_UNAVAILABLE, pages::message("Suppliers unavailable", "The service record could not be read; try again shortly."))
        }
    }
}

/// `GET /dashboard/suppliers`: every configured supplier's health (admin).
async fn suppliers_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match administrator(&req, &state).await {
        Ok(viewer) => suppliers_answer(&state, &viewer, None).await,
        Err(resp) => resp,
    }
}

/// `POST /dashboard/suppliers/{id}/check`: runs the check of one supplier and shows its steps
/// on the suppliers page (admin; only from the hub's own pages).
async fn check_supplier(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    if !same_origin(&req) {
        return html(StatusCode::FORBIDDEN, pages::message("Not from this site", "The dashboard takes forms only from its own pages."));
    }
    let viewer = match administrator(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let id = path.into_inner();
    let Some(supplier) = state.settings.supplier(&id) else {
        return html(StatusCode::NOT_FOUND, pages::message("Not found", &format!("There is no supplier {id}.")));
    };
    if !supplier.is_external() {
        return html(StatusCode::UNPROCESSABLE_ENTITY, pages::message("Nothing to check", &format!("{id} is the hub's own queue: there is no supplier system to check.")));
    }
    let report = super::admin::run_check(supplier, &state.settings.egress).await;
    suppliers_answer(&state, &viewer, Some(supplier_pages::CheckShown { id: &supplier.id, name: &supplier.name, report: &report })).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_covers_whole_days_within_bounds() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(schedule_days(None, None, today), Ok((today, d("2027-01-01"))));
        assert_eq!(schedule_days(Some("2026-12-01"), None, today), Ok((d("2026-12-01"), d("2026-12-28"))));
        assert_eq!(schedule_days(None, Some("2026-12-28"), today), Ok((d("2026-12-01"), d("2026-12-28"))));
        assert_eq!(schedule_days(Some("2026-12-01"), Some("2026-12-01"), today), Ok((d("2026-12-01"), d("2026-12-01"))));
        assert!(schedule_days(Some("2026-12-01"), Some("2027-03-02"), today).is_ok(), "92 days");
        assert!(schedule_days(Some("2026-12-01"), Some("2027-03-03"), today).unwrap_err().contains("at most 92 days"));
        assert!(schedule_days(Some("2026-12-02"), Some("2026-12-01"), today).unwrap_err().contains("before it begins"));
        assert!(schedule_days(Some("2026-13-01"), None, today).unwrap_err().contains("from must be a date"));
        assert!(schedule_days(None, Some("next week"), today).unwrap_err().contains("to must be a date"));
    }
}
