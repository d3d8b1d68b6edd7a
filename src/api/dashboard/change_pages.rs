//! The dashboard's change pages: the forward schedule of change (`/dashboard/changes`) and one
//! change's page (`/dashboard/changes/{ref}`). Plain HTML and inline SVG like the SLA pages,
//! every value escaped; each chart has its table beside it.

use super::change_charts::{self, conflict_swatch, freeze_kind, freeze_swatch, services_text, status_colour, STATUS_COLOURS};
use super::pages::{bar, esc, event_table, local_time, opt_time, page};
use super::Viewer;
use crate::domain::change::schedule::Freeze;
use crate::store::change::{ChangeFile, ConflictRow, Scheduled, FILE_EVENTS};
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt::Write;

/// Where the change pages live: the dashboard's, or the service desk console's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paths {
    /// The schedule page.
    pub schedule: &'static str,
    /// The prefix of one change's page (`{record}/{ref}`).
    pub record: &'static str,
}

pub const DASHBOARD: Paths = Paths { schedule: "/dashboard/changes", record: "/dashboard/changes" };
pub const CONSOLE: Paths = Paths { schedule: "/console/changes/calendar", record: "/console/changes" };

/// What the schedule page shows.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The first and the last day shown (both whole days in the reporting time zone)...
    pub from_day: NaiveDate,
    pub to_day: NaiveDate,
    /// ...and the instants they begin and end.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The filters asked for.
    pub service: Option<String>,
    pub supplier: Option<String>,
    /// What the filters offer: the service catalogue and the suppliers (none to a supplier key).
    pub catalogue: Vec<String>,
    pub suppliers: Vec<String>,
    /// The changes in the period, by planned start, with their legs and open conflicts.
    pub changes: Vec<Scheduled>,
    /// The configured freezes that reach into the period.
    pub freezes: Vec<Freeze>,
    pub generated_at: DateTime<Utc>,
    /// Where its links go.
    pub paths: Paths,
}

fn schedule_bar(viewer: &Viewer, extra: &str) -> String {
    let sla = if viewer.sees_sla() { r#"<nav aria-label="Dashboard"><a id="nav-sla" href="/dashboard">SLA dashboard</a></nav>"# } else { "" };
    bar("Change schedule", "/dashboard/changes", Some(viewer), &format!("{sla}{extra}"))
}

/// The schedule's link to the same filters over other days.
fn schedule_link(s: &Schedule, from: NaiveDate, to: NaiveDate) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("from", &from.to_string()).append_pair("to", &to.to_string());
    for (k, v) in [("service", &s.service), ("supplier", &s.supplier)] {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    format!("{}?{}", s.paths.schedule, q.finish())
}

/// A `<select>` of `options` with "all" first, `chosen` selected.
fn select(id: &str, label: &str, all: &str, options: &[String], chosen: Option<&str>) -> String {
    let mut out = format!(r#"<label for="{id}">{label}<select id="{id}" name="{id}"><option value="">{all}</option>"#);
    let mut listed = options.to_vec();
    if let Some(c) = chosen.filter(|c| !options.iter().any(|o| o == c)) {
        listed.push(c.to_string());
    }
    for o in &listed {
        let _ = write!(out, r#"<option value="{v}"{}>{v}</option>"#, if Some(o.as_str()) == chosen { " selected" } else { "" }, v = esc(o));
    }
    out.push_str("</select></label>");
    out
}

fn change_link(reference: &str, paths: Paths) -> String {
    format!(r#"<a href="{}/{r}">{r}</a>"#, paths.record, r = esc(reference))
}

/// A conflict in words: its kind, what it is about, and the other change (linked when the
/// viewer may open it).
fn conflict_text(c: &ConflictRow, link_other: bool, paths: Paths) -> String {
    let other = match &c.other_ref {
        Some(o) if link_other => format!(" with {}", change_link(o, paths)),
        Some(o) => format!(" with {}", esc(o)),
        None => String::new(),
    };
    format!(r#"<span class="kind">{}</span> on {}{other}"#, esc(&c.kind.replace('_', " ")), esc(&c.subject))
}

/// A status in words, after a small square of its colour on the schedule.
fn status_mark(status: &str) -> String {
    format!(r#"<b style="display:inline-block;width:10px;height:10px;border-radius:2px;background:{}"></b> {}"#, status_colour(status), esc(status))
}

/// A section headed `heading`, with `before` (a chart) and then a table of `rows` under the
/// named columns, or `empty` in words when there are none.
fn table_section(id: &str, heading: &str, before: &str, (table_id, columns): (&str, &[&str]), rows: &[String], empty: &str) -> String {
    let mut out = format!(r#"<section id="{id}"><h2>{}</h2>{before}"#, esc(heading));
    if rows.is_empty() {
        let _ = write!(out, r#"<p class="muted">{}</p>"#, esc(empty));
    } else {
        let _ = write!(out, r#"<table id="{table_id}"><thead><tr>"#);
        for c in columns {
            let _ = write!(out, "<th>{}</th>", esc(c));
        }
        let _ = write!(out, "</tr></thead><tbody>{}</tbody></table>", rows.concat());
    }
    out.push_str("</section>");
    out
}

fn window_cell(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>, tz: &str) -> String {
    if start.is_none() && end.is_none() {
        return "–".into();
    }
    format!("{} – {}", opt_time(start, tz), opt_time(end, tz))
}

pub fn schedule(s: &Schedule, viewer: &Viewer, tz: &str) -> String {
    let (title, nav, body) = schedule_parts(s, viewer.supplier.is_some(), tz);
    page(&title, &schedule_bar(viewer, &nav), &body)
}

/// The schedule page's title, its navigation over periods and its body; a supplier key's page
/// offers no supplier filter and links only the changes it may open.
pub fn schedule_parts(s: &Schedule, supplier_scoped: bool, tz: &str) -> (String, String, String) {
    let days = (s.to_day - s.from_day).num_days() + 1;
    let (before, after) = (chrono::Duration::days(days), chrono::Duration::days(days));
    let nav = format!(
        r#"<nav class="months" aria-label="Period"><a id="prev-period" href="{}">‹ earlier</a><span id="period">{} to {}</span><a id="next-period" href="{}">later ›</a></nav>"#,
        esc(&schedule_link(s, s.from_day - before, s.to_day - before)),
        s.from_day,
        s.to_day,
        esc(&schedule_link(s, s.from_day + after, s.to_day + after)),
    );
    let mut body = String::from("<main>");
    let _ = write!(
        body,
        r#"<section id="filters"><h2>Period and filters</h2><form class="filters" method="get" action="{}"><label for="from">From<input type="date" id="from" name="from" value="{}" required></label><label for="to">To (inclusive)<input type="date" id="to" name="to" value="{}" required></label>{}"#,
        s.paths.schedule,
        s.from_day,
        s.to_day,
        select("service", "Service", "All services", &s.catalogue, s.service.as_deref())
    );
    if !supplier_scoped {
        body.push_str(&select("supplier", "Supplier", "All suppliers", &s.suppliers, s.supplier.as_deref()));
    }
    body.push_str(r#"<button type="submit">Show</button></form></section>"#);

    let _ = write!(
        body,
        r#"<section id="schedule"><h2>Forward schedule of change, {} to {}</h2>{}<div class="legend" id="schedule-legend">"#,
        s.from_day,
        s.to_day,
        change_charts::schedule(s, tz)
    );
    for (status, colour) in STATUS_COLOURS {
        let _ = write!(body, r#"<span><b style="background:{colour}"></b>{status}</span>"#);
    }
    let _ = write!(
        body,
        r#"<span>{}hard freeze (hatched, solid edge)</span><span>{}soft freeze (plain, dashed edge)</span><span>{}open conflict (red outline)</span></div></section>"#,
        freeze_swatch(true),
        freeze_swatch(false),
        conflict_swatch()
    );

    let conflicted = s.changes.iter().filter(|(_, _, open)| !open.is_empty()).count();
    let rows: Vec<String> = s
        .changes
        .iter()
        .map(|(c, legs, open)| {
            let suppliers: Vec<&str> = legs.iter().map(|l| l.supplier_id.as_str()).collect();
            let conflicts = if open.is_empty() {
                r#"<span class="muted">none</span>"#.to_string()
            } else {
                let items: Vec<String> = open
                    .iter()
                    .map(|o| {
                        let visible = !supplier_scoped || o.other_ref.as_ref().is_some_and(|r| s.changes.iter().any(|(x, _, _)| &x.reference == r));
                        format!(r#"<li data-kind="{}">{}</li>"#, esc(&o.kind), conflict_text(o, visible, s.paths))
                    })
                    .collect();
                format!(r#"<ul class="plain">{}</ul>"#, items.concat())
            };
            format!(
                r#"<tr data-ref="{r}"{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{conflicts}</td></tr>"#,
                if open.is_empty() { "" } else { r#" class="has-conflict""# },
                change_link(&c.reference, s.paths),
                esc(&c.title),
                status_mark(&c.status),
                esc(&window_cell(c.planned_start, c.planned_end, tz)),
                esc(&services_text(&c.services)),
                esc(&if suppliers.is_empty() { "–".to_string() } else { suppliers.join(", ") }),
                r = esc(&c.reference),
            )
        })
        .collect();
    body.push_str(&table_section(
        "changes",
        &format!("Changes in the period ({} in all, {conflicted} with open conflicts)", s.changes.len()),
        "",
        ("change-table", &["Change", "Title", "Status", "Window", "Services", "Suppliers", "Open conflicts"]),
        &rows,
        "No change is planned in this period.",
    ));
    body.push_str("</section>");

    let rows: Vec<String> = s
        .freezes
        .iter()
        .map(|f| {
            format!(
                r#"<tr data-freeze="{}"><td>{}</td><td>{}{} <span class="muted">({})</span></td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&f.name),
                esc(&f.name),
                freeze_swatch(f.hard),
                freeze_kind(f.hard),
                if f.hard { "blocks implementation; an emergency change may override it" } else { "asks one more integrator approval" },
                esc(&services_text(&f.services)),
                esc(&local_time(&f.start, tz)),
                esc(&local_time(&f.end, tz))
            )
        })
        .collect();
    body.push_str(&table_section(
        "freezes",
        "Freezes in the period",
        "",
        ("freeze-table", &["Freeze", "Kind", "Services", "From", "To"]),
        &rows,
        "No freeze reaches into this period.",
    ));
    body.push_str("</main>");
    let _ = write!(
        body,
        r#"<footer>Changes planned from {} to {} (whole days, {}); drafts, cancelled and rejected changes are left out. Generated {}.</footer>"#,
        s.from_day,
        s.to_day,
        esc(tz),
        esc(&local_time(&s.generated_at, tz))
    );
    (format!("Change schedule {} to {} · SIAM Hub", s.from_day, s.to_day), nav, body)
}

/// A risk as the scale reads: 1 = very high .. 5 = very low.
fn risk_word(risk: i16) -> &'static str {
    match risk {
        1 => "very high",
        2 => "high",
        3 => "moderate",
        4 => "low",
        5 => "very low",
        _ => "unknown",
    }
}

pub fn change(f: &ChangeFile, viewer: &Viewer, tz: &str) -> String {
    let body = change_body(f, viewer.supplier.is_some(), tz, DASHBOARD);
    page(&format!("{} · change", f.change.reference), &schedule_bar(viewer, r#"<a href="/dashboard/changes">← Change schedule</a>"#), &body)
}

/// One change's page body: its record, legs, approvals, conflicts and history.
pub fn change_body(f: &ChangeFile, supplier_scoped: bool, tz: &str, paths: Paths) -> String {
    let c = &f.change;
    let mut body = String::from("<main>");
    let approval = if f.missing.is_empty() { esc(&f.approval.replace('_', " ")) } else { format!("{} (missing: {})", esc(f.approval), esc(&f.missing.join("; "))) };
    let _ = write!(
        body,
        r#"<section id="change"><h2><span id="ref">{}</span> · {}</h2><table><tbody><tr><th>Status</th><td id="status">{}{}</td><th>Type</th><td id="type">{}</td><th>Risk</th><td id="risk">{} ({})</td></tr><tr><th>Planned window</th><td id="window" colspan="3">{}</td><th>Actual</th><td>{}</td></tr><tr><th>Services</th><td id="services">{}</td><th>CIs</th><td>{}</td><th>Approval</th><td id="approval">{approval}</td></tr><tr><th>Requested by</th><td>{}</td><th>Opened</th><td>{}</td><th>Closed</th><td>{}</td></tr></tbody></table>"#,
        esc(&c.reference),
        esc(&c.title),
        status_mark(&c.status),
        if c.on_hold { format!(", on hold ({})", esc(c.hold_reason.as_deref().unwrap_or("no reason given"))) } else { String::new() },
        esc(&c.change_type),
        c.risk,
        risk_word(c.risk),
        esc(&window_cell(c.planned_start, c.planned_end, tz)),
        esc(&window_cell(c.actual_start, c.actual_end, tz)),
        esc(&services_text(&c.services)),
        esc(&if c.cis.is_empty() { "–".to_string() } else { c.cis.join(", ") }),
        esc(&c.requested_by),
        esc(&local_time(&c.opened_at, tz)),
        opt_time(c.closed_at, tz),
    );
    if !c.description.is_empty() {
        let _ = write!(body, r#"<p id="description">{}</p>"#, esc(&c.description));
    }
    body.push_str("</section>");

    let rows: Vec<String> = f
        .legs
        .iter()
        .map(|l| {
            format!(
                r#"<tr data-supplier="{s}"><td>{s}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&l.state.replace('_', " ")),
                esc(&window_cell(l.planned_start, l.planned_end, tz)),
                esc(&if l.depends_on.is_empty() { "–".to_string() } else { l.depends_on.join(", ") }),
                opt_time(l.backout_requested_at, tz),
                s = esc(&l.supplier_id),
            )
        })
        .collect();
    body.push_str(&table_section(
        "legs",
        "Supplier legs",
        &change_charts::legs(f, tz),
        ("leg-table", &["Supplier", "State", "Planned window", "Depends on", "Back-out asked"]),
        &rows,
        "No supplier leg yet: legs open when the change is submitted.",
    ));

    let rows: Vec<String> = f
        .approvals
        .iter()
        .map(|a| {
            format!(
                r#"<tr><td>{} <span class="muted">({})</span></td><td class="{}">{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&a.approver),
                esc(&a.kind),
                if a.approve { "good" } else { "bad" },
                if a.approve { "approve" } else { "reject" },
                esc(&a.comment),
                esc(&local_time(&a.decided_at, tz))
            )
        })
        .collect();
    body.push_str(&table_section("approvals", "Approvals", "", ("approval-table", &["Who", "Decision", "Comment", "When"]), &rows, "No decision yet."));

    let rows: Vec<String> = f
        .conflicts
        .iter()
        .map(|k| {
            let ack = match k.acknowledged_at {
                Some(at) => format!("by {} at {}", esc(k.acknowledged_by.as_deref().unwrap_or("?")), esc(&local_time(&at, tz))),
                None => r#"<span class="bad">no, open</span>"#.to_string(),
            };
            format!(
                r#"<tr data-kind="{}"{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{ack}</td><td>{}</td></tr>"#,
                esc(&k.kind),
                if k.acknowledged_at.is_none() { r#" class="has-conflict""# } else { "" },
                conflict_text(k, !supplier_scoped, paths),
                esc(&window_cell(Some(k.period_start), Some(k.period_end), tz)),
                if k.hard { "yes (hard)" } else { "no (soft)" },
                esc(&k.detail),
                esc(k.ack_reason.as_deref().unwrap_or("–"))
            )
        })
        .collect();
    body.push_str(&table_section(
        "conflicts",
        "Conflicts",
        "",
        ("conflict-table", &["Conflict", "Period", "Blocks", "Detail", "Acknowledged", "Reason"]),
        &rows,
        "No conflict in the forward schedule.",
    ));

    let _ = write!(
        body,
        r#"<section id="history"><h2>History{}</h2>{}</section></main><footer>Times in {}.</footer>"#,
        if f.events.len() as i64 >= FILE_EVENTS { format!(" (the first {FILE_EVENTS} events)") } else { String::new() },
        event_table(f.events.iter().map(|e| (e.event_id, &e.occurred_at, e.kind.as_str(), e.source.as_str(), &e.data)), tz),
        esc(tz)
    );
    body
}
