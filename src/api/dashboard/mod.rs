//! The managers' dashboard at `/dashboard`: server-rendered HTML with inline SVG, no script and
//! nothing fetched from elsewhere (the machines are offline), and the browser sign-in for it.
//!
//! A browser signs in with an API key (manager or admin; a supplier key sees only its own
//! supplier), through the form at `/dashboard/login` or once as `?key=` on any dashboard URL
//! (for scripts; the hub answers with a redirect that strips it). The browser then holds a
//! server-side session (see [`crate::store::auth`]): its cookie carries a random session id,
//! never the key, HttpOnly, SameSite=Strict, scoped to `/dashboard`. The hub checks the session
//! on every request: it ends at its expiry, on sign-out, or when its key is revoked.

mod charts;
mod pages;

use super::auth::Role;
use super::AppState;
use crate::domain::TicketRef;
use crate::sla::dashboard;
use crate::sla::report::Period;
use crate::sla::ticket;
use crate::store::auth;
use crate::store::sla::Scope;
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
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
    fn scope(&self) -> Scope {
        match &self.supplier {
            Some(s) => Scope::Supplier(s.clone()),
            None => Scope::All,
        }
    }
}

/// Who a key stands for on the dashboard: manager, admin, or a supplier key scoped to its
/// supplier.
fn viewer_of(record: auth::KeyRecord) -> Result<Viewer, (StatusCode, &'static str)> {
    match (Role::parse(&record.role), record.supplier_id) {
        (Some(role @ (Role::Manager | Role::Admin)), _) => Ok(Viewer { role, supplier: None }),
        (Some(Role::Supplier), Some(s)) => Ok(Viewer { role: Role::Supplier, supplier: Some(s) }),
        _ => Err((StatusCode::FORBIDDEN, "That key cannot open the dashboard: it needs a manager, admin or supplier key.")),
    }
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
            Ok((_, session)) => redirect(&location).cookie(session_cookie(req, state, session)).finish(),
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
        Ok((_, session)) => redirect(&next).cookie(session_cookie(&req, &state, session)).finish(),
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
        Err(e) => {
            tracing::error!(error = %e, "dashboard unavailable");
            html(StatusCode::SERVICE_UNAVAILABLE, pages::message("Dashboard unavailable", "The service record could not be read; try again shortly."))
        }
    }
}

/// `GET /dashboard/incidents/{ref}`: one ticket's timeline.
async fn timeline(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let (viewer, _) = match authenticate(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let not_found = || html(StatusCode::NOT_FOUND, pages::message("Not found", &format!("There is no incident {}.", path.as_str())));
    let Ok(r) = path.parse::<TicketRef>() else { return not_found() };
    let contracts = state.contracts.clone();
    let now = Utc::now();
    let t = match state.store.run(move |c| ticket::load(c, &contracts, r.as_str(), now)).await {
        Ok(t) => t,
        Err(crate::store::StoreError::NotFound(_)) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "timeline unavailable");
            return html(StatusCode::SERVICE_UNAVAILABLE, pages::message("Timeline unavailable", "The service record could not be read; try again shortly."));
        }
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
