//! The dashboard's HTML pages. Every value from the record is escaped on the way in; the style
//! sheet is inline and there is no script.

use super::charts;
use super::Viewer;
use crate::api::auth::Role;
use crate::config::ReportingSettings;
use crate::domain::time;
use crate::sla::compute::metric_name;
use crate::sla::dashboard::Overview;
use crate::sla::ticket::TicketSla;
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Business seconds as a manager reads them: `45s`, `12m`, `3h 05m`, `2d 4h`.
pub fn fmt_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// An instant in the reporting time zone, to the minute.
pub fn local_time(t: &DateTime<Utc>, tz: &str) -> String {
    match tz.parse::<chrono_tz::Tz>() {
        Ok(zone) => t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string(),
        Err(_) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

pub(crate) fn opt_time(t: Option<DateTime<Utc>>, tz: &str) -> String {
    t.map(|t| local_time(&t, tz)).unwrap_or_else(|| "–".into())
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2933;background:#f5f7fa}
header{background:#102a43;color:#fff;padding:12px 24px;display:flex;align-items:center;gap:24px;flex-wrap:wrap}
header h1{font-size:18px;margin:0;font-weight:600}
header a{color:#bcccdc;text-decoration:none}
header a:hover{color:#fff}
header .who{margin-left:auto;font-size:13px;color:#bcccdc;display:flex;gap:12px;align-items:center}
header form{margin:0}
header button{background:none;border:1px solid #829ab1;color:#fff;border-radius:4px;padding:3px 10px;cursor:pointer}
nav.months{display:flex;gap:6px;align-items:center}
nav.months a,nav.months span{padding:3px 10px;border-radius:4px}
nav.months span{background:#fff;color:#102a43;font-weight:600}
main{padding:20px 24px;max-width:1180px}
section{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:16px 20px;margin-bottom:18px}
section h2{font-size:16px;margin:0 0 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;background:none;border:0;padding:0}
.card{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:12px 16px}
.card .v{font-size:26px;font-weight:700}
.card .l{font-size:12px;color:#52606d;text-transform:uppercase;letter-spacing:.04em}
.good{color:#1b7f3b}.bad{color:#c62828}.muted{color:#616e7c}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{font-weight:600;color:#52606d;background:#f5f7fa}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
a{color:#0b69a3}
.meter{display:inline-block;width:90px;height:8px;background:#e4e7eb;border-radius:4px;vertical-align:middle;margin-right:6px;overflow:hidden}
.meter i{display:block;height:100%}
.legend{display:flex;gap:16px;flex-wrap:wrap;font-size:12px;margin-top:6px}
.legend b{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:-2px}
.chart{max-width:100%;height:auto}
footer{color:#52606d;font-size:12px;padding:0 24px 24px}
.login{max-width:420px;margin:80px auto}
.login input[type=password]{width:100%;padding:8px;font-size:14px;border:1px solid #9aa5b1;border-radius:4px;margin:8px 0 12px}
.login button{background:#0b69a3;color:#fff;border:0;border-radius:4px;padding:8px 18px;font-size:14px;cursor:pointer}
.error{background:#ffe3e3;color:#8a1c1c;border-radius:4px;padding:8px 12px}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid #0b69a3;outline-offset:2px}
header a:focus-visible,header button:focus-visible{outline-color:#fff}
svg a:focus-visible{outline:3px solid #102a43}
.filters{display:flex;gap:14px;flex-wrap:wrap;align-items:flex-end}
.filters label{display:flex;flex-direction:column;gap:3px;font-size:12px;font-weight:600;color:#52606d}
.filters input,.filters select{font:inherit;color:#1f2933;background:#fff;border:1px solid #7b8794;border-radius:4px;padding:5px 8px}
.filters button{background:#0b69a3;color:#fff;border:0;border-radius:4px;padding:7px 16px;font:inherit;cursor:pointer}
.swatch{vertical-align:-2px;margin-right:4px}
tr.has-conflict td:first-child{border-left:4px solid #c62828}
ul.plain{margin:0;padding:0;list-style:none}
"#;

pub(crate) fn page(title: &str, header: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>{header}{body}</body></html>",
        esc(title)
    )
}

fn top_bar(viewer: Option<&Viewer>, extra: &str) -> String {
    bar("SLA dashboard", "/dashboard", viewer, extra)
}

/// The page header: the part of the dashboard (`heading`, linking to `home`), `extra`
/// navigation, and who is signed in with the sign-out button.
pub(super) fn bar(heading: &str, home: &str, viewer: Option<&Viewer>, extra: &str) -> String {
    let who = match viewer {
        Some(v) => {
            let role = match (&v.supplier, v.role) {
                (Some(s), _) => format!("supplier {}", esc(s)),
                (None, Role::ChangeManager) => "change manager".to_string(),
                (None, role) => format!("{role:?}").to_lowercase(),
            };
            format!(r#"<div class="who">Signed in as {role}<form method="post" action="/dashboard/logout"><button type="submit">Sign out</button></form></div>"#)
        }
        None => String::new(),
    };
    format!(r#"<header><h1><a href="{home}" style="color:#fff">SIAM Hub · {}</a></h1>{extra}{who}</header>"#, esc(heading))
}

/// The sign-in form; `next` is where to go once signed in.
pub fn login(error: Option<&str>, next: &str) -> String {
    let err = error.map(|e| format!(r#"<p class="error" id="login-error">{}</p>"#, esc(e))).unwrap_or_default();
    let body = format!(
        r#"<main><section class="login"><h2>Sign in</h2>{err}<form method="post" action="/dashboard/login"><label for="key">API key (manager, admin, change manager or supplier)</label><input type="password" id="key" name="key" autocomplete="off" required autofocus><input type="hidden" name="next" value="{}"><button type="submit">Open the dashboard</button></form><p class="muted">Create a key with <code>siam-hub keys create --role manager</code>.</p></section></main>"#,
        esc(next)
    );
    page("Sign in · SIAM Hub", &top_bar(None, ""), &body)
}

pub fn message(title: &str, text: &str) -> String {
    let body = format!(r#"<main><section><h2>{}</h2><p>{}</p><p><a href="/dashboard">Back to the dashboard</a></p></section></main>"#, esc(title), esc(text));
    page(title, &top_bar(None, ""), &body)
}

fn percent_cell(p: Option<f64>, target: f64, field: &str) -> String {
    match p {
        Some(p) => format!(r#"<td class="num {}" data-field="{field}">{p:.1}%</td>"#, if p >= target { "good" } else { "bad" }),
        None => format!(r#"<td class="num muted" data-field="{field}">–</td>"#),
    }
}

/// The opening cells of a clock's row in the breach and at-risk lists: the ticket (linked to
/// its timeline), contract, supplier, metric and priority.
fn clock_row_start(reference: &str, contract: &str, supplier: Option<&str>, metric: &str, priority: i16) -> String {
    format!(
        r#"<tr data-ref="{r}"><td><a href="/dashboard/incidents/{r}">{r}</a></td><td>{}</td><td>{}</td><td>{}</td><td class="num">{priority}</td>"#,
        esc(contract),
        esc(supplier.unwrap_or("end to end")),
        esc(metric),
        r = esc(reference),
    )
}

/// How a clock stands, in a manager's words.
fn clock_state(state: &str) -> &'static str {
    match state {
        "running" => "open, counting",
        "paused" => "open, paused",
        "idle" => "with another holder",
        _ => "stopped",
    }
}

/// Share of the target used; past the target, by how much.
fn used_cell(elapsed: i64, target: i64) -> String {
    if target > 0 && elapsed <= target {
        meter(elapsed as f64 * 100.0 / target as f64)
    } else {
        format!(r#"<span class="meter"><i style="width:100%;background:{}"></i></span><span class="bad">over by {}</span>"#, charts::BAD, fmt_duration(elapsed - target))
    }
}

fn meter(p: f64) -> String {
    let colour = if p >= 100.0 {
        charts::BAD
    } else if p >= 90.0 {
        "#e69f00"
    } else {
        "#0072b2"
    };
    format!(r#"<span class="meter"><i style="width:{:.0}%;background:{colour}"></i></span>{p:.0}%"#, p.clamp(0.0, 100.0))
}

pub fn overview(o: &Overview, viewer: &Viewer, tz: &str, reporting: &ReportingSettings) -> String {
    let prev = o.period.months_before(1).map(|p| p.label).unwrap_or_default();
    let next = o.period.months_before(0).ok().and_then(|p| {
        // The month after: one month before the month after next is this one, so step forward by label.
        let (y, m) = p.label.split_once('-')?;
        let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
        Some(if m == 12 { format!("{}-01", y + 1) } else { format!("{y}-{:02}", m + 1) })
    });
    let mut nav =
        format!(r#"<nav class="months" aria-label="Month"><a id="prev-month" href="/dashboard?month={prev}">‹ {prev}</a><span id="month">{}</span>"#, esc(&o.period.label));
    if let Some(n) = next {
        let _ = write!(nav, r#"<a id="next-month" href="/dashboard?month={n}">{n} ›</a>"#);
    }
    nav.push_str(r#"</nav><nav aria-label="Dashboard"><a id="nav-changes" href="/dashboard/changes">Change schedule</a>"#);
    if viewer.role == Role::Admin {
        nav.push_str(r#" · <a id="nav-suppliers" href="/dashboard/suppliers">Suppliers</a>"#);
    }
    nav.push_str("</nav>");

    // Headline figures: the end-to-end contracts when the viewer sees them, else all lines.
    let headline: Vec<_> = {
        let e2e: Vec<_> = o.lines.iter().filter(|l| l.supplier.is_none()).collect();
        if e2e.is_empty() {
            o.lines.iter().collect()
        } else {
            e2e
        }
    };
    let sum = |f: &dyn Fn(&crate::sla::dashboard::ContractLine) -> (i64, i64)| headline.iter().fold((0, 0), |a, l| (a.0 + f(l).0, a.1 + f(l).1));
    let (rm, rb) = sum(&|l| (l.response.met, l.response.breached));
    let (sm, sb) = sum(&|l| (l.resolution.met, l.resolution.breached));
    let pct = |m: i64, b: i64| if m + b > 0 { format!("{:.1}%", m as f64 * 100.0 / (m + b) as f64) } else { "–".into() };
    let tickets: i64 = headline.iter().map(|l| l.tickets).max().unwrap_or(0);
    let mut body = String::from("<main>");
    let _ = write!(
        body,
        r#"<section class="cards" id="summary"><div class="card"><div class="l">Tickets opened</div><div class="v" id="tickets-opened">{tickets}</div></div><div class="card"><div class="l">Response met</div><div class="v" id="response-met">{}</div></div><div class="card"><div class="l">Resolution met</div><div class="v" id="resolution-met">{}</div></div><div class="card"><div class="l">Breaches</div><div class="v bad" id="breach-count">{}</div></div><div class="card"><div class="l">Tickets at risk now</div><div class="v" id="at-risk-count">{}</div></div></section>"#,
        pct(rm, rb),
        pct(sm, sb),
        o.breaches_total,
        o.at_risk_tickets
    );

    let _ = write!(body, r#"<section id="compliance"><h2>Compliance in {} against target</h2>{}"#, esc(&o.period.label), charts::compliance_bars(&o.lines));
    body.push_str(r#"<table id="compliance-table"><thead><tr><th>Contract</th><th>Supplier</th><th class="num">Tickets</th><th class="num">Response met</th><th class="num">Resolution met</th><th class="num">Target</th><th>Report</th></tr></thead><tbody>"#);
    for l in &o.lines {
        let report = match &l.supplier {
            Some(s) => format!("/api/v1/reports/sla?supplier={}&month={}", esc(s), esc(&o.period.label)),
            None => format!("/api/v1/reports/sla?month={}", esc(&o.period.label)),
        };
        let _ = write!(
            body,
            r#"<tr data-contract="{}"><td>{}</td><td>{}</td><td class="num" data-field="tickets">{}</td>{}{}<td class="num">{}%</td><td><a href="{report}&amp;format=csv">CSV</a></td></tr>"#,
            esc(&l.contract),
            esc(&l.contract),
            esc(l.supplier.as_deref().unwrap_or("end to end")),
            l.tickets,
            percent_cell(l.response.percent(), l.target, "response-met"),
            percent_cell(l.resolution.percent(), l.target, "resolution-met"),
            l.target
        );
    }
    body.push_str("</tbody></table></section>");

    let _ = write!(
        body,
        r#"<section id="trend"><h2>Resolution compliance over {} months</h2>{}<div class="legend">"#,
        o.months.len(),
        charts::trend(&o.months, &o.lines, reporting.compliance_target)
    );
    for (i, l) in o.lines.iter().enumerate() {
        let _ = write!(
            body,
            r#"<span><b style="background:{}"></b>{}</span>"#,
            charts::series_colour(i),
            esc(l.supplier.as_deref().map(|s| format!("{s} ({})", l.contract)).as_deref().unwrap_or(&format!("end to end ({})", l.contract)))
        );
    }
    body.push_str("</div></section>");

    let _ = write!(
        body,
        r#"<section id="breaches"><h2>Breaches in {} ({} in all{})</h2>"#,
        esc(&o.period.label),
        o.breaches_total,
        if o.breaches_total as usize > o.breaches.len() { format!(", latest {} shown", o.breaches.len()) } else { String::new() }
    );
    if o.breaches.is_empty() {
        body.push_str(r#"<p class="muted">No clock breached its target.</p>"#);
    } else {
        body.push_str(r#"<table id="breach-table"><thead><tr><th>Ticket</th><th>Contract</th><th>Supplier</th><th>Metric</th><th class="num">P</th><th class="num">Target</th><th class="num">Used</th><th>Breached at</th><th>Clock</th></tr></thead><tbody>"#);
        for b in &o.breaches {
            let _ = write!(
                body,
                r#"{}<td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
                clock_row_start(&b.reference, &b.contract, b.supplier.as_deref(), &b.metric, b.priority),
                fmt_duration(b.target_secs),
                fmt_duration(b.elapsed_secs),
                opt_time(b.breach_at, tz),
                clock_state(&b.state),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");

    let _ = write!(body, r#"<section id="at-risk"><h2>Open tickets at risk (a clock past {}% of its target)</h2>"#, o.at_risk_percent);
    if o.at_risk.is_empty() {
        body.push_str(r#"<p class="muted">No open ticket is at risk.</p>"#);
    } else {
        body.push_str(r#"<table id="at-risk-table"><thead><tr><th>Ticket</th><th>Contract</th><th>Supplier</th><th>Metric</th><th class="num">P</th><th>Used</th><th>Target</th><th>Breach at</th><th>Clock</th></tr></thead><tbody>"#);
        for a in &o.at_risk {
            let _ = write!(
                body,
                r#"{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                clock_row_start(&a.reference, &a.contract, a.supplier.as_deref(), &a.metric, a.priority),
                used_cell(a.elapsed_secs, a.target_secs),
                fmt_duration(a.target_secs),
                opt_time(a.breach_at, tz),
                clock_state(&a.state),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section></main>");
    let _ = write!(
        body,
        r#"<footer>Tickets opened in {} ({}); times in {}. Generated {}{}.</footer>"#,
        esc(&o.period.label),
        esc(&o.period.time_zone),
        esc(tz),
        esc(&local_time(&o.generated_at, tz)),
        if o.pending_tickets > 0 { format!("; {} tickets are being recomputed", o.pending_tickets) } else { String::new() }
    );
    page(&format!("SLA dashboard {} · SIAM Hub", o.period.label), &top_bar(Some(viewer), &nav), &body)
}

/// One line of an event log, incident or change, in a manager's words.
fn event_summary(kind: &str, data: &serde_json::Value) -> String {
    let s = |k: &str| data.get(k).and_then(|v| v.as_str()).unwrap_or("");
    match kind {
        "incident.created" => format!("raised: {} (P{})", s("title"), data.get("priority").and_then(|p| p.as_i64()).unwrap_or(0)),
        "incident.routed" => format!("routed to {}", s("supplier")),
        "incident.status_changed" => {
            let hold = s("hold_reason");
            if hold.is_empty() {
                format!("{} → {}", s("from"), s("to"))
            } else {
                format!("{} → {} ({hold})", s("from"), s("to"))
            }
        }
        "incident.updated" => {
            let keys: Vec<String> = data.get("changes").and_then(|c| c.as_object()).map(|o| o.keys().cloned().collect()).unwrap_or_default();
            format!("changed {}", keys.join(", "))
        }
        "incident.note_added" => format!("{} note", s("visibility")),
        "leg.opened" => format!("{} ticket {}", s("supplier"), s("native_number")),
        "sla.warning" | "sla.breached" => {
            format!("{} {} {}%", data.get("supplier").and_then(|v| v.as_str()).unwrap_or("end to end"), s("metric"), data.get("threshold").and_then(|v| v.as_i64()).unwrap_or(0))
        }
        "change.created" => format!("raised: {} ({} change)", s("title"), s("type")),
        "change.status_changed" => match s("reason") {
            "" => format!("{} → {}", s("from"), s("to")),
            why => format!("{} → {} ({why})", s("from"), s("to")),
        },
        "change.updated" => format!("changed {}", list(data.get("fields"))),
        "change.leg_opened" => format!("{} leg opened", s("supplier")),
        "change.leg_updated" => format!("{} leg {} → {}", s("supplier"), s("from"), s("to")),
        "change.backout_requested" => format!("{} asked to back out after {} failed", s("supplier"), s("because")),
        "change.approval" => {
            let by = data.get("by").and_then(|b| b.get("id")).and_then(|v| v.as_str()).unwrap_or("");
            format!("{} by {by}: {}", s("decision"), s("comment"))
        }
        "change.approvals_voided" => format!("{} approvals voided: {}", data.get("voided").and_then(|v| v.as_i64()).unwrap_or(0), s("reason")),
        "change.conflict_detected" => match s("other") {
            "" => format!("{} on {}", s("kind"), s("subject")),
            other => format!("{} on {} with {other}", s("kind"), s("subject")),
        },
        "change.conflict_acknowledged" => format!("{} on {} acknowledged: {}", s("kind"), s("subject"), s("reason")),
        "change.conflicts_cleared" => format!("cleared {}", list(data.get("keys"))),
        "change.note_added" => format!("{} note by {}", s("visibility"), s("author")),
        _ => String::new(),
    }
}

/// An event log as a table, oldest first: each row carries the event's id as its anchor.
pub(crate) fn event_table<'a>(events: impl Iterator<Item = (uuid::Uuid, &'a DateTime<Utc>, &'a str, &'a str, &'a serde_json::Value)>, tz: &str) -> String {
    let mut out = String::from(r#"<table id="event-table"><thead><tr><th>Time</th><th>Event</th><th>By</th><th>Detail</th></tr></thead><tbody>"#);
    for (id, at, kind, source, data) in events {
        let _ = write!(
            out,
            r#"<tr id="{id}"><td title="{}">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&time::rfc3339(at)),
            esc(&local_time(at, tz)),
            esc(kind),
            esc(source),
            esc(&event_summary(kind, data))
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The strings of a JSON array, comma separated.
fn list(v: Option<&serde_json::Value>) -> String {
    v.and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

pub fn timeline(t: &TicketSla, viewer: &Viewer, tz: &str) -> String {
    let i = &t.incident;
    let mut body = String::from("<main>");
    let _ = write!(
        body,
        r#"<section id="ticket"><h2><span id="ref">{}</span> · {}</h2><table><tbody><tr><th>Status</th><td id="status">{}</td><th>Priority</th><td id="priority">P{}</td><th>Held by</th><td id="holder">{}</td></tr><tr><th>Opened</th><td>{}</td><th>Resolved</th><td>{}</td><th>Closed</th><td>{}</td></tr></tbody></table></section>"#,
        esc(i.reference.as_str()),
        esc(&i.title),
        esc(i.status.as_str()),
        i.priority,
        esc(i.assigned_supplier.as_deref().unwrap_or("–")),
        esc(&local_time(&i.opened_at, tz)),
        opt_time(i.resolved_at, tz),
        opt_time(i.closed_at, tz),
    );
    let _ = write!(body, r#"<section id="timeline"><h2>Timeline</h2>{}</section>"#, charts::ticket_timeline(t, tz));

    body.push_str(&clock_sections(t, tz));

    body.push_str(r#"<section id="events"><h2>Event log</h2>"#);
    body.push_str(&event_table(t.events.iter().map(|e| (e.event_id, &e.occurred_at, e.kind.as_str(), e.source.as_str(), &e.data)), tz));
    body.push_str("</section></main>");
    let _ = write!(body, r#"<footer>Clocks computed from the event log at {} ({}).</footer>"#, esc(&local_time(&t.now, tz)), esc(tz));
    page(&format!("{} · SLA timeline", i.reference), &top_bar(Some(viewer), r#"<a href="/dashboard">← Dashboard</a>"#), &body)
}

/// A ticket's SLA clocks, their pauses and who held the ticket when, as sections of a page.
pub(crate) fn clock_sections(t: &TicketSla, tz: &str) -> String {
    let i = &t.incident;
    let mut body = String::new();
    body.push_str(r#"<section id="clocks"><h2>Clocks</h2>"#);
    if t.clocks.is_empty() {
        body.push_str(r#"<p class="muted">No SLA clock applies to this ticket.</p>"#);
    } else {
        body.push_str(r#"<table id="clock-table"><thead><tr><th>Contract</th><th>Supplier</th><th>Metric</th><th class="num">P</th><th class="num">Target</th><th>Used</th><th>State</th><th>Started</th><th>Stopped</th><th>Breach at</th></tr></thead><tbody>"#);
        for k in &t.clocks {
            let c = &k.clock;
            let _ = write!(
                body,
                r#"<tr data-clock="{}"><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{} <span class="muted">({})</span></td><td class="{}">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&k.key),
                esc(&c.contract),
                esc(c.supplier.as_deref().unwrap_or("end to end")),
                metric_name(c.metric),
                c.priority,
                fmt_duration(c.target_secs),
                used_cell(c.elapsed_secs, c.target_secs),
                fmt_duration(c.elapsed_secs),
                if c.breached { "bad" } else { "" },
                crate::sla::compute::state_name(c.state),
                esc(&local_time(&c.started_at, tz)),
                opt_time(c.stopped_at, tz),
                opt_time(c.breach_at, tz),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");

    let pauses: Vec<_> = t.clocks.iter().flat_map(|k| k.clock.pauses.iter().map(move |p| (k, p))).collect();
    body.push_str(r#"<section id="pauses"><h2>Pauses</h2>"#);
    if pauses.is_empty() {
        body.push_str(r#"<p class="muted">No clock was paused.</p>"#);
    } else {
        body.push_str(r#"<table id="pause-table"><thead><tr><th>Clock</th><th>From</th><th>To</th><th>Reason</th><th>Source event</th></tr></thead><tbody>"#);
        for (k, p) in pauses {
            let _ = write!(
                body,
                r##"<tr><td>{}</td><td>{}</td><td>{}</td><td class="reason">{}</td><td><a href="#{}">{}</a></td></tr>"##,
                esc(&k.key),
                esc(&local_time(&p.from, tz)),
                opt_time(p.to, tz),
                esc(&p.reason),
                p.source_event,
                &p.source_event.to_string()[..8]
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");

    let mut holdings: Vec<_> = t.clocks.iter().flat_map(|k| k.clock.holdings.iter()).collect();
    holdings.sort_by_key(|h| (h.from, h.supplier.clone()));
    holdings.dedup_by(|a, b| a.from == b.from && a.supplier == b.supplier);
    body.push_str(r#"<section id="holdings"><h2>Who held the ticket</h2>"#);
    if holdings.is_empty() {
        body.push_str(r#"<p class="muted">No supplier clock records a holding.</p>"#);
    } else {
        body.push_str(r#"<table id="holding-table"><thead><tr><th>Supplier</th><th>From</th><th>To</th><th class="num">For</th></tr></thead><tbody>"#);
        // A holding still open on a resolved ticket ends, for this table, at the resolution.
        let finished = i.resolved_at.or(i.closed_at);
        for h in holdings {
            let (to, end) = match (h.to, finished) {
                (Some(to), _) => (local_time(&to, tz), to),
                (None, Some(done)) => (format!("resolved {}", local_time(&done, tz)), done),
                (None, None) => ("still holds it".to_string(), t.now),
            };
            let _ = write!(
                body,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td></tr>"#,
                esc(&h.supplier),
                esc(&local_time(&h.from, tz)),
                esc(&to),
                fmt_duration((end - h.from).num_seconds())
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(esc(r#"<script>alert('x')</script> & "q""#), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(-5), "0s");
        assert_eq!(fmt_duration(45), "45s");
        assert_eq!(fmt_duration(720), "12m");
        assert_eq!(fmt_duration(3 * 3600 + 5 * 60), "3h 05m");
        assert_eq!(fmt_duration(2 * 86400 + 4 * 3600 + 59), "2d 4h");
    }
}
