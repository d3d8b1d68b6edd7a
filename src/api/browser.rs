//! Signing a browser in to the hub's web pages: the managers' dashboard (`/dashboard`) and the
//! service desk console (`/console`). Each is an [`Area`] with its own cookie and its own rule of
//! which keys it admits; the sign-in is the same for both.
//!
//! A browser signs in with an API key through the area's form (`{root}/login`) or once as `?key=`
//! on any of its URLs (for scripts; the hub answers with a redirect that strips it). The browser
//! then holds a server-side session (see [`crate::store::auth`]): its cookie carries a random
//! session id, never the key, HttpOnly, SameSite=Strict, scoped to the area's path. The hub checks
//! the session on every request: it ends at its expiry, on sign-out, or when its key is revoked.

use super::AppState;
use crate::store::auth::{self, KeyRecord};
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

/// How long a browser session lasts.
const SESSION_HOURS: i64 = 8;

/// Why a sign-in or a session was refused, as shown on the sign-in form.
pub(crate) type Refusal = (StatusCode, &'static str);

const UNAVAILABLE: Refusal = (StatusCode::SERVICE_UNAVAILABLE, "The service record is unavailable; try again shortly.");

/// One part of the hub's web pages with a sign-in of its own.
pub(crate) struct Area {
    /// The path every page of the area is under (`/dashboard`), and its home page.
    pub root: &'static str,
    /// The session cookie's name.
    pub cookie: &'static str,
    /// Whether a key may open the area at all.
    pub admits: fn(&KeyRecord) -> Result<(), Refusal>,
    /// Where a signed-in key goes when it asked for `next`.
    pub landing: fn(&KeyRecord, &str) -> String,
    /// The sign-in page, with an error and where to go once signed in.
    pub login_page: fn(Option<&str>, &str) -> String,
    /// A page saying what went wrong (title, text).
    pub message_page: fn(&str, &str) -> String,
    /// The response carrying one of its pages.
    pub page: fn(StatusCode, String) -> HttpResponse,
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    key: String,
    next: Option<String>,
}

impl Area {
    /// The area's sign-in form, sign-in and sign-out: `GET` and `POST {root}/login`, `POST
    /// {root}/logout`.
    pub fn endpoints(&'static self) -> Vec<super::routes::Endpoint> {
        use super::routes::endpoint;
        use actix_web::http::Method;
        vec![
            endpoint(Method::GET, format!("{}/login", self.root), move |req: HttpRequest| async move { self.login_form(&req) }),
            endpoint(Method::POST, format!("{}/login", self.root), move |req: HttpRequest, state: web::Data<AppState>, form: Option<web::Form<LoginForm>>| async move {
                self.login(&req, &state, form).await
            }),
            endpoint(Method::POST, format!("{}/logout", self.root), move |req: HttpRequest, state: web::Data<AppState>| async move { self.logout(&req, &state).await }),
        ]
    }

    /// Signs a key in: opens a session for it, kept only if the area admits the key. Answers
    /// the key's record and the session id the cookie will carry (never the key).
    async fn sign_in(&self, state: &AppState, key: String) -> Result<(KeyRecord, String), Refusal> {
        let lifetime = chrono::Duration::hours(SESSION_HOURS);
        let (session, record) =
            state.store.run(move |c| auth::open_session(c, &key, lifetime)).await.map_err(|_| UNAVAILABLE)?.ok_or((StatusCode::UNAUTHORIZED, "That key is unknown or revoked."))?;
        match (self.admits)(&record) {
            Ok(()) => Ok((record, session)),
            Err(refused) => {
                state.store.run(move |c| auth::end_session(c, &session)).await.map_err(|_| UNAVAILABLE)?;
                Err(refused)
            }
        }
    }

    /// The key behind a live session.
    async fn check_session(&self, state: &AppState, session: String) -> Result<KeyRecord, Refusal> {
        let record = state
            .store
            .run(move |c| auth::session(c, &session))
            .await
            .map_err(|_| UNAVAILABLE)?
            .ok_or((StatusCode::UNAUTHORIZED, "Your session has ended (signed out, expired, or its key was revoked); sign in again."))?;
        (self.admits)(&record)?;
        Ok(record)
    }

    /// The session cookie: HttpOnly, SameSite=Strict, scoped to the area, `Secure` whenever the
    /// request came over TLS (directly or through a proxy saying so) or the hub's public URL is
    /// https. Its lifetime matches the session's, which the hub enforces on its side too.
    fn session_cookie(&self, req: &HttpRequest, state: &AppState, session: String) -> Cookie<'static> {
        let secure = req.connection_info().scheme() == "https" || state.settings.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
        Cookie::build(self.cookie, session).path(self.root).http_only(true).same_site(SameSite::Strict).secure(secure).max_age(CookieDuration::hours(SESSION_HOURS)).finish()
    }

    fn cleared_cookie(&self) -> Cookie<'static> {
        let mut c = Cookie::build(self.cookie, "").path(self.root).http_only(true).same_site(SameSite::Strict).finish();
        c.make_removal();
        c
    }

    /// Where to go after signing in: a path of this area only, never another site.
    pub fn safe_next(&self, next: Option<&str>) -> String {
        match next {
            Some(n) if n.starts_with(self.root) && !n.contains("//") && !n.contains('\\') => n.to_string(),
            _ => self.root.to_string(),
        }
    }

    /// The signed-in key of a request and its query pairs, or the response to send instead (a
    /// sign-in form, or the redirect that turns a `?key=` into the session cookie).
    pub async fn authenticate(&self, req: &HttpRequest, state: &AppState) -> Result<(KeyRecord, Vec<(String, String)>), HttpResponse> {
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
            return Err(match self.sign_in(state, key.trim().to_string()).await {
                Ok((record, session)) => redirect(&(self.landing)(&record, &location)).cookie(self.session_cookie(req, state, session)).finish(),
                Err((status, msg)) => (self.page)(status, (self.login_page)(Some(msg), &location)),
            });
        }
        let next = match req.query_string() {
            "" => req.path().to_string(),
            q => format!("{}?{q}", req.path()),
        };
        let Some(cookie) = req.cookie(self.cookie).filter(|c| !c.value().is_empty()) else {
            return Err((self.page)(StatusCode::UNAUTHORIZED, (self.login_page)(None, &next)));
        };
        match self.check_session(state, cookie.value().to_string()).await {
            Ok(record) => Ok((record, pairs)),
            Err((status, msg)) => {
                let mut resp = (self.page)(status, (self.login_page)(Some(msg), &next));
                let _ = resp.add_cookie(&self.cleared_cookie());
                Err(resp)
            }
        }
    }

    /// `GET {root}/login`
    fn login_form(&self, req: &HttpRequest) -> HttpResponse {
        let next = url::form_urlencoded::parse(req.query_string().as_bytes()).find(|(k, _)| k == "next").map(|(_, v)| v.to_string());
        (self.page)(StatusCode::OK, (self.login_page)(None, &self.safe_next(next.as_deref())))
    }

    /// `POST {root}/login` (form: `key`, `next`)
    async fn login(&self, req: &HttpRequest, state: &AppState, form: Option<web::Form<LoginForm>>) -> HttpResponse {
        let Some(form) = form else {
            return (self.page)(StatusCode::BAD_REQUEST, (self.login_page)(Some("Enter an API key."), self.root));
        };
        let next = self.safe_next(form.next.as_deref());
        let key = form.key.trim().to_string();
        if key.is_empty() || key.len() > 200 {
            return (self.page)(StatusCode::BAD_REQUEST, (self.login_page)(Some("Enter an API key."), &next));
        }
        match self.sign_in(state, key).await {
            Ok((record, session)) => redirect(&(self.landing)(&record, &next)).cookie(self.session_cookie(req, state, session)).finish(),
            Err((status, msg)) => (self.page)(status, (self.login_page)(Some(msg), &next)),
        }
    }

    /// `POST {root}/logout`: ends the session on the hub's side too, so a copied cookie is
    /// worth nothing afterwards.
    async fn logout(&self, req: &HttpRequest, state: &AppState) -> HttpResponse {
        if let Some(session) = req.cookie(self.cookie).map(|c| c.value().to_string()).filter(|v| !v.is_empty()) {
            if let Err(e) = state.store.run(move |c| auth::end_session(c, &session)).await {
                tracing::error!(error = %e, "could not end a browser session");
                return (self.page)(StatusCode::SERVICE_UNAVAILABLE, (self.message_page)("Sign-out failed", "The service record could not be reached; try again shortly."));
            }
        }
        redirect(&format!("{}/login", self.root)).cookie(self.cleared_cookie()).finish()
    }
}

/// A web page, with headers that keep it self-contained and uncached: no script, no style or
/// image from elsewhere.
pub(crate) fn page(status: StatusCode, body: String) -> HttpResponse {
    page_with(status, body, "", "no-referrer")
}

/// A web page without script whose forms say where they come from: the browser sends their
/// origin, which the hub checks (under `no-referrer` it would send `Origin: null`).
pub(crate) fn form_page(status: StatusCode, body: String) -> HttpResponse {
    page_with(status, body, "", "same-origin")
}

/// A web page that may run the hub's own scripts and let them call the hub, and whose forms
/// say where they come from (the browser sends their origin, which the hub checks; it sends no
/// referrer to any other site, such as a supplier's tool a page links to).
pub(crate) fn scripted_page(status: StatusCode, body: String) -> HttpResponse {
    page_with(status, body, " script-src 'self'; connect-src 'self';", "same-origin")
}

fn page_with(status: StatusCode, body: String, scripts: &str, referrer: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", referrer))
        .insert_header((
            "Content-Security-Policy",
            format!("default-src 'none';{scripts} style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        ))
        .body(body)
}

/// Whether a post came from the hub's own pages: a browser says where a post comes from, and
/// one from another site is refused (the cookie's SameSite=Strict already keeps it out of
/// cross-site posts in current browsers).
pub(crate) fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = req.connection_info().host().to_string();
    url::Url::parse(origin).ok().and_then(|u| {
        u.host_str().map(|h| match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        })
    }) == Some(host)
}

/// A `303 See Other` to `location`, uncached.
pub(crate) fn redirect(location: &str) -> actix_web::HttpResponseBuilder {
    let mut r = HttpResponse::SeeOther();
    r.insert_header((header::LOCATION, location.to_string())).insert_header((header::CACHE_CONTROL, "no-store"));
    r
}
