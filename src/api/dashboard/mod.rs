//! The managers' dashboard at `/dashboard`: server-rendered HTML with inline SVG, no script and
//! nothing fetched from elsewhere (the machines are offline), and the browser sign-in for it.
//!
//! A browser signs in with an API key (manager or admin; a supplier key sees only its own
//! supplier; a change manager's key opens the change pages only), through the form at
//! `/dashboard/login` or once as `?key=` on any dashboard URL (for scripts; the hub answers with
//! a redirect that strips it). The browser then holds a
//! server-side session (see [`crate::store::auth`]): its cookie carries a random session id,
//! never the key, HttpOnly, SameSite=Strict, scoped to `/dashboard`. The hub checks the session
//! on every request: it ends at its expiry, on sign-out, or when its key is revoked.
//!
//! The change pages (`/dashboard/changes`, the forward schedule of change, and
//! `/dashboard/changes/{ref}`, one change) follow the change API's visibility: a supplier key
//! sees only the changes it holds a leg of (any other is not found, as through the API), with
//! every leg of those changes by supplier, state and window only, as the API shows them. It sees
//! the configured freezes, as the calendar shows them to everyone; an open conflict with a
//! change it cannot see names that change without linking to it.

mod change_charts;
mod change_pages;
mod charts;
mod pages;

use super::auth::Role;
use super::AppState;
use crate::domain::change::ChangeRef;
use crate::domain::TicketRef;
use crate::sla::dashboard;
use crate::sla::report::Period;
use crate::sla::ticket;
use crate::store::auth;
use crate::store::change::{self, ListFilter};
use crate::store::sla::Scope;
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

const COOKIE: &str = "siam_dashboard";
/// How long a browser session lasts.
const SESSION_HOURS: i64 = 8;

/// The dashboard's pages and its sign-in.
pub(super) fn endpoints() -> Vec<super::routes::Endpoint> {
    use super::routes::endpoint;
    use actix_web::http::Method;
    vec![
        endpoint(Method::GET, "/dashboard", overview),
        endpoint(Method::GET, "/dashboard/login", login_form),
        endpoint(Method::POST, "/dashboard/login", login),
        endpoint(Method::POST, "/dashboard/logout", logout),
        endpoint(Method::GET, "/dashboard/incidents/{ref}", timeline),
        endpoint(Method::GET, "/dashboard/changes", change_schedule),
        endpoint(Method::GET, "/dashboard/changes/{ref}", change_page),
    ]
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
fn viewer_of(record: auth::KeyRecord) -> Result<Viewer, (StatusCode, &'static str)> {
    match (Role::parse(&record.role), record.supplier_id) {
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

const UNAVAILABLE: (StatusCode, &str) = (StatusCode::SERVICE_UNAVAILABLE, "The service record is unavailable; try again shortly.");

/// Signs a key in: opens a session for it, kept only if the key may open the dashboard.
/// Answers the viewer and the session id the cookie will carry (never the key).
async fn sign_in(state: &AppState, key: String) -> Result<(Viewer, String), (StatusCode, &'static str)> {
    let lifetime = chrono::Duration::hours(SESSION_HOURS);
    let (session, record) =
        state.store.run(move |c| auth::open_session(c, &key, lifetime)).await.map_err(|_| UNAVAILABLE)?.ok_or((StatusCode::UNAUTHORIZED, "That key is unknown or revoked."))?;
    match viewer_of(record) {
        Ok(viewer) => Ok((viewer, session)),
        Err(refused) => {
            state.store.run(move |c| auth::end_session(c, &session)).await.map_err(|_| UNAVAILABLE)?;
            Err(refused)
        }
    }
}

/// The viewer of a live session.
async fn check_session(state: &AppState, session: String) -> Result<Viewer, (StatusCode, &'static str)> {
    let record = state
        .store
        .run(move |c| auth::session(c, &session))
        .await
        .map_err(|_| UNAVAILABLE)?
        .ok_or((StatusCode::UNAUTHORIZED, "Your session has ended (signed out, expired, or its key was revoked); sign in again."))?;
    viewer_of(record)
}

/// The session cookie: HttpOnly, SameSite=Strict, scoped to `/dashboard`, `Secure` whenever the
/// request came over TLS (directly or through a proxy saying so) or the hub's public URL is
/// https. Its lifetime matches the session's, which the hub enforces on its side too.
fn session_cookie(req: &HttpRequest, state: &AppState, session: String) -> Cookie<'static> {
    let secure = req.connection_info().scheme() == "https" || state.settings.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    Cookie::build(COOKIE, session).path("/dashboard").http_only(true).same_site(SameSite::Strict).secure(secure).max_age(CookieDuration::hours(SESSION_HOURS)).finish()
}

fn cleared_cookie() -> Cookie<'static> {
    let mut c = Cookie::build(COOKIE, "").path("/dashboard").http_only(true).same_site(SameSite::Strict).finish();
    c.make_removal();
    c
}

/// A dashboard page, with headers that keep it self-contained and uncached.
pub(crate) fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .body(body)
}

/// Where to go after signing in: a dashboard path only, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/dashboard") && !n.contains("//") && !n.contains('\\') => n.to_string(),
        _ => "/dashboard".to_string(),
    }
}

fn redirect(location: &str) -> actix_web::HttpResponseBuilder {
    let mut r = HttpResponse::SeeOther();
    r.insert_header((header::LOCATION, location.to_string())).insert_header((header::CACHE_CONTROL, "no-store"));
    r
}

/// The viewer of a dashboard request, or the response to send instead (a sign-in form, or the
/// redirect that turns a `?key=` into the session cookie).
async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<(Viewer, Vec<(String, String)>), HttpResponse> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    if let Some((_, key)) = pairs.iter().find(|(k, _)| k == "key") {
        let rest: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "key").collect();
        let mut location = req.path().to_string();
        if !rest.is_empty() {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in rest {
                ser.append_pair(k, v);
            }
            location = format!("{location}?{}", ser.finish());
        }
        return Err(match sign_in(state, key.trim().to_string()).await {
            Ok((viewer, session)) => redirect(&landing(&viewer, &location)).cookie(session_cookie(req, state, session)).finish(),
            Err((status, msg)) => html(status, pages::login(Some(msg), &location)),
        });
    }
    let next = match req.query_string() {
        "" => req.path().to_string(),
        q => format!("{}?{q}", req.path()),
    };
    let Some(cookie) = req.cookie(COOKIE).filter(|c| !c.value().is_empty()) else {
        return Err(html(StatusCode::UNAUTHORIZED, pages::login(None, &next)));
    };
    match check_session(state, cookie.value().to_string()).await {
        Ok(v) => Ok((v, pairs)),
        Err((status, msg)) => {
            let mut resp = html(status, pages::login(Some(msg), &next));
            let _ = resp.add_cookie(&cleared_cookie());
            Err(resp)
        }
    }
}

/// `GET /dashboard/login`
async fn login_form(req: HttpRequest) -> HttpResponse {
    let next = url::form_urlencoded::parse(req.query_string().as_bytes()).find(|(k, _)| k == "next").map(|(_, v)| v.to_string());
    html(StatusCode::OK, pages::login(None, &safe_next(next.as_deref())))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    key: String,
    next: Option<String>,
}

/// `POST /dashboard/login` (form: `key`, `next`)
async fn login(req: HttpRequest, state: web::Data<AppState>, form: Option<web::Form<LoginForm>>) -> HttpResponse {
    let Some(form) = form else {
        return html(StatusCode::BAD_REQUEST, pages::login(Some("Enter an API key."), "/dashboard"));
    };
    let next = safe_next(form.next.as_deref());
    let key = form.key.trim().to_string();
    if key.is_empty() || key.len() > 200 {
        return html(StatusCode::BAD_REQUEST, pages::login(Some("Enter an API key."), &next));
    }
    match sign_in(&state, key).await {
        Ok((viewer, session)) => redirect(&landing(&viewer, &next)).cookie(session_cookie(&req, &state, session)).finish(),
        Err((status, msg)) => html(status, pages::login(Some(msg), &next)),
    }
}

/// `POST /dashboard/logout`: ends the session on the hub's side too, so a copied cookie is
/// worth nothing afterwards.
async fn logout(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(session) = req.cookie(COOKIE).map(|c| c.value().to_string()).filter(|v| !v.is_empty()) {
        if let Err(e) = state.store.run(move |c| auth::end_session(c, &session)).await {
            tracing::error!(error = %e, "could not end a dashboard session");
            return html(StatusCode::SERVICE_UNAVAILABLE, pages::message("Sign-out failed", "The service record could not be reached; try again shortly."));
        }
    }
    redirect("/dashboard/login").cookie(cleared_cookie()).finish()
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
    let t = match &viewer.supplier {
        // A supplier sees the tickets it may see through the API, only its own clocks, and no
        // other supplier's leg details.
        Some(s) if t.incident.supplier_access(s) == crate::domain::SupplierAccess::None => return not_found(),
        Some(s) => {
            let mut t = t.only_supplier(s);
            t.incident = t.incident.seen_by_supplier(s);
            for e in &mut t.events {
                e.data = crate::domain::access::event_data_seen_by_supplier(&e.kind, &e.data, s);
            }
            t
        }
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
    let tz = state.settings.reporting.time_zone.clone();
    let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::Tz::UTC);
    let now = Utc::now();
    let (from_day, to_day) = match schedule_days(param(&pairs, "from"), param(&pairs, "to"), now.with_timezone(&zone).date_naive()) {
        Ok(d) => d,
        Err(e) => return html(StatusCode::BAD_REQUEST, pages::message("Invalid period", &e)),
    };
    let (from, to): (DateTime<Utc>, DateTime<Utc>) = (crate::sla::report::day_start(zone, from_day), crate::sla::report::day_start(zone, to_day + chrono::Duration::days(1)));
    let (service, supplier) = (param(&pairs, "service").map(str::to_string), param(&pairs, "supplier").map(str::to_string));
    let filter = ListFilter { status: None, service: service.clone(), supplier: supplier.clone(), from: Some(from), to: Some(to), visible_to_supplier: viewer.supplier.clone() };
    let changes = match state.store.read(move |c| change::calendar(c, &filter)).await {
        Ok(rows) => rows,
        Err(e) => return unavailable("Change schedule", &e),
    };
    let settings = &state.settings;
    let schedule = change_pages::Schedule {
        from_day,
        to_day,
        from,
        to,
        service,
        supplier,
        catalogue: settings.services.iter().map(|s| s.name.clone()).collect(),
        suppliers: if viewer.supplier.is_some() { vec![] } else { settings.suppliers.iter().map(|s| s.id.clone()).collect() },
        changes,
        freezes: settings.changes.freezes.iter().filter(|f| f.start < to && f.end > from).cloned().collect(),
        generated_at: now,
    };
    html(StatusCode::OK, change_pages::schedule(&schedule, &viewer, &tz))
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
