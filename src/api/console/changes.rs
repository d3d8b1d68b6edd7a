//! The console's change pages: the list of changes, one change with its legs, approvals and
//! conflicts, and the calendar (the forward schedule of change), as the change API shows them
//! to the signed-in key. The change record and the calendar are the dashboard's, linked within
//! the console.

use super::pages::{shell, Area};
use super::{html, param, refused, signed_in};
use crate::api::dashboard::change_pages::{self, CONSOLE};
use crate::api::dashboard::pages::{esc, opt_time};
use crate::api::dashboard::{schedule_of, ScheduleError};
use crate::api::error::ApiError;
use crate::api::incidents::{decode_cursor, encode_cursor};
use crate::api::AppState;
use crate::domain::change::{ChangeRef, ChangeStatus};
use crate::store::change::{self, ListFilter};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use std::fmt::Write;

/// How many changes a list page shows.
const PAGE: i64 = 25;

/// `GET /console/changes?status=&service=&cursor=`
pub(super) async fn list(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (p, pairs) = match signed_in(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let status = match param(&pairs, "status").map(str::parse::<ChangeStatus>).transpose() {
        Ok(s) => s,
        Err(e) => return html(StatusCode::BAD_REQUEST, super::pages::message("Invalid filter", &e.to_string())),
    };
    let after = match decode_cursor(param(&pairs, "cursor"), "change") {
        Ok(a) => a,
        Err(e) => return refused(&e),
    };
    let service = param(&pairs, "service").map(str::to_string);
    let filter = ListFilter { status, service: service.clone(), supplier: None, from: None, to: None, visible_to_supplier: p.supplier.clone() };
    let settings = state.settings.clone();
    let listed = state.store.read(move |c| change::list(c, &change::rules_of(&settings.changes), &filter, after, PAGE)).await;
    let (items, next) = match listed {
        Ok(v) => v,
        Err(e) => return refused(&ApiError::from(e)),
    };
    let tz = &state.settings.reporting.time_zone;
    let mut status_opts = String::from(r#"<option value="">Any status</option>"#);
    for s in ChangeStatus::ALL {
        let _ = write!(status_opts, r#"<option value="{v}"{}>{v}</option>"#, if Some(*s) == status { " selected" } else { "" }, v = s.as_str());
    }
    let mut service_opts = String::from(r#"<option value="">Any service</option>"#);
    for s in &state.settings.services {
        let _ = write!(service_opts, r#"<option value="{v}"{}>{v}</option>"#, if service.as_deref() == Some(s.name.as_str()) { " selected" } else { "" }, v = esc(&s.name));
    }
    let mut body = format!(
        r#"<main><section id="filters"><h2>Find changes</h2><form class="filters" method="get" action="/console/changes"><label for="f-status">Status<select id="f-status" name="status">{status_opts}</select></label><label for="f-service">Service<select id="f-service" name="service">{service_opts}</select></label><button type="submit">Show</button></form></section><section id="changes"><h2>Changes</h2>"#
    );
    if items.is_empty() {
        body.push_str(r#"<p class="muted" id="changes-empty">No change matches.</p>"#);
    } else {
        body.push_str(r#"<table id="change-table"><thead><tr><th scope="col">Reference</th><th scope="col">Title</th><th scope="col">Status</th><th scope="col">Planned window</th><th scope="col">Services</th><th scope="col">Suppliers</th><th scope="col">Open conflicts</th></tr></thead><tbody>"#);
        for d in &items {
            let c = &d.change;
            let suppliers: Vec<String> =
                d.legs.iter().filter_map(|l| Some(format!("{} ({})", l.get("supplier")?.as_str()?, l.get("state").and_then(|s| s.as_str()).unwrap_or("?")))).collect();
            let open = d.conflicts.iter().filter(|k| k.get("acknowledged_at").is_none_or(|a| a.is_null())).count();
            let _ = write!(
                body,
                r#"<tr data-ref="{r}"><td><a href="/console/changes/{r}">{r}</a></td><td>{}</td><td>{}</td><td>{} – {}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&c.title),
                esc(&c.status),
                opt_time(c.planned_start, tz),
                opt_time(c.planned_end, tz),
                esc(&c.services.join(", ")),
                esc(&suppliers.join(", ")),
                if open == 0 { "none".to_string() } else { format!(r#"<span class="badge breached">{open}</span>"#) },
                r = esc(&c.reference),
            );
        }
        body.push_str("</tbody></table>");
    }
    if let Some(next) = next {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("status", status.map(|s| s.as_str().to_string())), ("service", service.clone())] {
            if let Some(v) = v {
                q.append_pair(k, &v);
            }
        }
        q.append_pair("cursor", &encode_cursor("change", next));
        let _ = write!(
            body,
            r#"<nav class="pager" aria-label="Pages"><a href="/console/changes">First page</a><a href="/console/changes?{}" rel="next" id="next-page">Next page</a></nav>"#,
            esc(&q.finish())
        );
    }
    body.push_str("</section></main>");
    html(StatusCode::OK, shell("Changes · SIAM Hub console", Some(&p), Area::Changes, &body))
}

/// `GET /console/changes/calendar?from=&to=&service=&supplier=`
pub(super) async fn calendar(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (p, pairs) = match signed_in(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match schedule_of(&state, &pairs, p.supplier.clone(), CONSOLE).await {
        Ok(s) => {
            let (title, nav, body) = change_pages::schedule_parts(&s, p.supplier.is_some(), &state.settings.reporting.time_zone);
            let body = format!(r#"<nav class="months" aria-label="Period" style="padding:12px 24px 0">{nav}</nav>{body}"#);
            html(StatusCode::OK, shell(&title, Some(&p), Area::Calendar, &body))
        }
        Err(ScheduleError::Period(e)) => html(StatusCode::BAD_REQUEST, super::pages::message("Invalid period", &e)),
        Err(ScheduleError::Store(e)) => refused(&ApiError::from(e)),
    }
}

/// `GET /console/changes/{ref}`
pub(super) async fn record(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let (p, _) = match signed_in(&req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    // A change a supplier key may not see is not found, exactly as one that does not exist.
    let not_found = || html(StatusCode::NOT_FOUND, super::pages::message("Not found", &format!("There is no change {}.", path.as_str())));
    let Ok(r) = path.parse::<ChangeRef>() else { return not_found() };
    let (settings, supplier) = (state.settings.clone(), p.supplier.clone());
    match state.store.read(move |c| change::file(c, &change::rules_of(&settings.changes), r.as_str(), supplier.as_deref())).await {
        Ok(f) => {
            let body = change_pages::change_body(&f, p.supplier.is_some(), &state.settings.reporting.time_zone, CONSOLE);
            html(StatusCode::OK, shell(&format!("{} · change · SIAM Hub console", f.change.reference), Some(&p), Area::Changes, &body))
        }
        Err(crate::store::StoreError::NotFound(_)) => not_found(),
        Err(e) => refused(&ApiError::from(e)),
    }
}
