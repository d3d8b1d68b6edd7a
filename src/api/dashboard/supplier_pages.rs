//! The suppliers page (`/dashboard/suppliers`, administrators): each configured supplier's
//! health, and a "Check now" form per supplier whose answer shows the check's steps on the
//! same page. Every value is escaped; there is no script.

use super::pages::{bar, esc, opt_time, page};
use super::Viewer;
use crate::adapters::setup::CheckReport;
use crate::api::admin::SupplierHealth;
use std::fmt::Write;

/// A check just run, to show under the table.
pub struct CheckShown<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub report: &'a CheckReport,
}

fn header(viewer: &Viewer) -> String {
    bar(
        "Suppliers",
        "/dashboard/suppliers",
        Some(viewer),
        r#"<nav aria-label="Dashboard"><a href="/dashboard">SLA dashboard</a> · <a href="/dashboard/changes">Change schedule</a></nav>"#,
    )
}

/// The page: the health table, and the steps of `check` when one was just run.
pub fn suppliers(items: &[SupplierHealth], check: Option<CheckShown<'_>>, viewer: &Viewer, tz: &str) -> String {
    let mut body = String::from("<main>");
    if let Some(c) = &check {
        let (class, verdict) = if c.report.ok { ("good", "every step is ok") } else { ("bad", "a step failed") };
        let _ = write!(
            body,
            r#"<section id="check" aria-labelledby="check-title"><h2 id="check-title">Check of {} ({})</h2><p id="check-result" class="{class}"><strong>{}</strong>: {verdict}.</p><table id="check-steps"><thead><tr><th scope="col">Step</th><th scope="col">Result</th><th scope="col">What was found</th><th scope="col">What to change</th></tr></thead><tbody>"#,
            esc(c.name),
            esc(c.id),
            if c.report.ok { "Ok" } else { "Failed" },
        );
        for s in &c.report.steps {
            let (class, word) = if s.ok { ("good", "ok") } else { ("bad", "failed") };
            let _ = write!(
                body,
                r#"<tr data-step="{n}"><th scope="row">{n}</th><td class="{class}">{word}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&s.detail),
                s.fix.as_deref().map(esc).unwrap_or_default(),
                n = esc(&s.name),
            );
        }
        body.push_str("</tbody></table></section>");
    }
    body.push_str(
        r#"<section id="suppliers" aria-labelledby="suppliers-title"><h2 id="suppliers-title">Supplier health</h2><p class="muted">Calls, retries and sweeps are this hub process's since it started; the hub has no circuit breaker (each call is retried with backoff, then given up on), so "Calls" says whether the latest calls to a supplier are failing.</p><table id="supplier-table"><thead><tr><th scope="col">Supplier</th><th scope="col">System</th><th scope="col">Last successful call</th><th scope="col">Last webhook</th><th scope="col">Last sweep</th><th scope="col">Watermark</th><th scope="col" class="num">Dispatch queue</th><th scope="col" class="num">Retries (1 h)</th><th scope="col" class="num">Dead letters (1 h)</th><th scope="col" class="num">Unmapped values</th><th scope="col">Calls</th><th scope="col">Check</th></tr></thead><tbody>"#,
    );
    for s in items {
        let h = &s.health;
        let sweep = match (&h.last_sweep.at, &h.last_sweep.error) {
            (Some(at), Some(e)) => format!(r#"<span class="bad">failed {}</span>: {}"#, esc(&opt_time(Some(*at), tz)), esc(e)),
            (at, None) => esc(&opt_time(*at, tz)),
            (None, Some(e)) => esc(e),
        };
        let calls = match h.calls.state {
            "failing" => format!(
                r#"<span class="bad">failing</span> ({} in a row{}){}"#,
                h.calls.failures_in_row,
                h.calls.last_failure_at.map(|t| format!(", last {}", esc(&opt_time(Some(t), tz)))).unwrap_or_default(),
                h.calls.last_failure.as_deref().map(|e| format!(": {}", esc(e))).unwrap_or_default()
            ),
            "ok" => r#"<span class="good">ok</span>"#.to_string(),
            other => esc(other),
        };
        let calls = if h.calls.failing_legs > 0 { format!("{calls}; {} tickets failing", h.calls.failing_legs) } else { calls };
        let depth = h.dispatch_queue_depth.map(|d| d.to_string()).unwrap_or_else(|| "–".into());
        let check = if s.base_url.is_some() {
            format!(
                r#"<form method="post" action="/dashboard/suppliers/{id}/check"><button type="submit" aria-label="Check now: {name}">Check now</button></form>"#,
                id = esc(&url_segment(&s.id)),
                name = esc(&s.name)
            )
        } else {
            r#"<span class="muted">nothing to check</span>"#.to_string()
        };
        let _ = write!(
            body,
            r#"<tr data-supplier="{id}"><th scope="row">{name}<br><span class="muted">{id}</span></th><td>{system}</td><td data-field="last_successful_call">{}</td><td data-field="last_webhook">{}</td><td data-field="last_sweep">{sweep}</td><td data-field="watermark">{}</td><td class="num" data-field="dispatch_queue_depth">{depth}</td><td class="num" data-field="retries_last_hour">{}</td><td class="num" data-field="dead_letters_last_hour">{}</td><td class="num" data-field="unmapped_values_waiting">{}</td><td data-field="calls">{calls}</td><td>{check}</td></tr>"#,
            esc(&opt_time(h.last_successful_call, tz)),
            esc(&opt_time(h.last_webhook, tz)),
            esc(&opt_time(h.last_sweep.watermark, tz)),
            h.retries_last_hour,
            h.dead_letters_last_hour,
            h.unmapped_values_waiting,
            id = esc(&s.id),
            name = esc(&s.name),
            system = esc(&s.system),
        );
    }
    body.push_str(r#"</tbody></table><p class="muted">Unmapped values are listed at <code>GET /api/v1/admin/mapping-events</code>; <code>siam-hub supplier discover ID</code> proposes the settings that map them.</p></section></main>"#);
    page("Suppliers · SIAM Hub", &header(viewer), &body)
}

/// A supplier id as one path segment.
fn url_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}
