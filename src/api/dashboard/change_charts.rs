//! Inline SVG of the change pages: the forward schedule of change (a row per service, a bar per
//! change on each service it touches, freezes as bands over the services they cover) and one
//! change's legs on a time axis. Every bar is also a row of a table on the same page, so the
//! chart is never the only way to read it.

use super::change_pages::Schedule;
use super::charts::{series_colour, BAD, GRID, INK};
use super::pages::{esc, local_time};
use crate::domain::change::schedule::Freeze;
use crate::store::change::{ChangeFile, ChangeRow, ConflictRow};
use chrono::{DateTime, Datelike, Duration, Utc};
use std::fmt::Write;

/// A change's colour by its status, each at least 3:1 against white. The status is written
/// beside every bar and in the table, so colour is never the only cue.
pub const STATUS_COLOURS: [(&str, &str); 6] =
    [("assess", "#0072b2"), ("authorize", "#6f42c1"), ("scheduled", "#1b7f3b"), ("implement", "#b35c00"), ("review", "#0f766e"), ("closed", "#616e7c")];

pub fn status_colour(status: &str) -> &'static str {
    STATUS_COLOURS.iter().find(|(s, _)| *s == status).map(|(_, c)| *c).unwrap_or("#52606d")
}

/// The row of the changes that name no service, only CIs.
pub const NO_SERVICE: &str = "CIs only";

/// The hatching a hard freeze is filled with.
const DEFS: &str = r##"<defs><pattern id="hard-freeze" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="8" height="8" fill="#fde8e8"/><rect width="3" height="8" fill="#e57373"/></pattern></defs>"##;

/// The look of a freeze band: a hard one hatched with a solid red edge, a soft one plain pale
/// yellow with a dashed edge, so the two differ in more than colour.
fn freeze_style(hard: bool) -> &'static str {
    if hard {
        r##"fill="url(#hard-freeze)" stroke="#c62828" stroke-width="1.5""##
    } else {
        r##"fill="#fff3c4" stroke="#8d6708" stroke-width="1.5" stroke-dasharray="5 3""##
    }
}

pub fn freeze_kind(hard: bool) -> &'static str {
    if hard {
        "hard freeze"
    } else {
        "soft freeze"
    }
}

/// A legend swatch of a freeze band (HTML), drawn as the chart draws it.
pub fn freeze_swatch(hard: bool) -> String {
    let hatch = if hard { r##"<path d="M0 10L10 0M-2 4L4 -2M6 12L12 6" stroke="#c62828" stroke-width="2"/>"## } else { "" };
    format!(
        r##"<svg class="swatch" width="14" height="14" viewBox="0 0 10 10" aria-hidden="true"><rect x="0.5" y="0.5" width="9" height="9" {}/>{hatch}</svg>"##,
        freeze_style(hard).replace("url(#hard-freeze)", "#fde8e8")
    )
}

/// The mark of a change with open conflicts: a red warning triangle, beside the red outline.
fn conflict_marker(x: f64, y: f64) -> String {
    format!(
        r##"<path class="conflict-marker" d="M{x:.1} {:.1}l6 -11l6 11z" fill="{BAD}"/><text x="{:.1}" y="{:.1}" font-size="9" font-weight="700" text-anchor="middle" fill="#fff">!</text>"##,
        y + 12.0,
        x + 6.0,
        y + 11.0
    )
}

/// A legend swatch of the conflict mark (HTML).
pub fn conflict_swatch() -> String {
    format!(r##"<svg class="swatch" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">{}</svg>"##, conflict_marker(1.0, 1.0))
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether the change belongs on the row of `service`.
fn on_row(c: &ChangeRow, service: &str) -> bool {
    if service == NO_SERVICE {
        c.services.is_empty()
    } else {
        c.services.iter().any(|s| same(s, service))
    }
}

/// Whether the freeze covers the row of `service` (a freeze naming no service covers all).
fn covers(f: &Freeze, service: &str) -> bool {
    f.services.is_empty() || f.services.iter().any(|s| same(s, service))
}

/// The rows of the schedule: the service asked for, else every service a change in it or a
/// freeze over it names, alphabetically; changes that name no service get a row of their own.
pub fn rows(s: &Schedule) -> Vec<String> {
    if let Some(service) = &s.service {
        return vec![service.clone()];
    }
    let mut rows: Vec<String> = Vec::new();
    for name in s.changes.iter().flat_map(|(c, _, _)| c.services.iter()).chain(s.freezes.iter().flat_map(|f| f.services.iter())) {
        if !rows.iter().any(|r| same(r, name)) {
            rows.push(name.clone());
        }
    }
    rows.sort_by_key(|r| r.to_lowercase());
    if s.changes.iter().any(|(c, _, _)| c.services.is_empty()) {
        rows.push(NO_SERVICE.into());
    }
    rows
}

/// Cuts a title to `n` characters for a label (the table and the bar's tooltip keep it whole).
fn short(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(n - 1).collect::<String>())
    }
}

fn window_text(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>, tz: &str) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("{} to {}", local_time(&s, tz), local_time(&e, tz)),
        (Some(s), None) => format!("from {}", local_time(&s, tz)),
        _ => "not planned".into(),
    }
}

/// Where a bar's label goes: right of the bar, left of it near the right edge, or over a bar
/// that spans the chart (labels have a white halo, so they read over any bar).
fn label_at(x1: f64, x2: f64, left: f64, w: f64) -> (f64, &'static str) {
    if x2 < left + w * 0.6 {
        (x2 + 5.0, "start")
    } else if x1 > left + w * 0.4 {
        (x1 - 5.0, "end")
    } else {
        (x1 + 4.0, "start")
    }
}

/// What a change's bar says to a screen reader and in its tooltip.
fn change_summary(c: &ChangeRow, open: &[ConflictRow], tz: &str) -> String {
    let conflicts = match open.len() {
        0 => String::new(),
        1 => ", 1 open conflict".into(),
        n => format!(", {n} open conflicts"),
    };
    format!("{} {}, {}, {}{conflicts}", c.reference, c.title, c.status, window_text(c.planned_start, c.planned_end, tz))
}

/// The forward schedule: day ticks along the top, the freezes in a strip of their own and as
/// bands over the rows of the services they cover, then a row per service with a lane per
/// change on it. Each bar links to its change's page; a change with open conflicts has a red
/// outline and a warning mark.
pub fn schedule(s: &Schedule, tz: &str) -> String {
    let (left, w, lane) = (170.0, 660.0, 22.0);
    let span = (s.to - s.from).num_milliseconds().max(1) as f64;
    let x = |t: DateTime<Utc>| left + w * ((t - s.from).num_milliseconds().clamp(0, span as i64) as f64 / span);
    let rows = rows(s);
    let strip = 36.0;
    let top = strip + 18.0 * s.freezes.len() as f64 + 6.0;
    let heights: Vec<f64> = rows.iter().map(|r| 8.0 + lane * s.changes.iter().filter(|(c, _, _)| on_row(c, r)).count().max(1) as f64).collect();
    let height = top + heights.iter().sum::<f64>() + 8.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" id="schedule-chart" viewBox="0 0 860 {height}" width="860" height="{height}" role="group" aria-labelledby="schedule-title"><title id="schedule-title">Forward schedule of change, {} to {}, by service</title>{DEFS}"#,
        esc(&s.from_day.to_string()),
        esc(&s.to_day.to_string())
    );

    // Day ticks: a line a day, the day's number where there is room (else Mondays), the month
    // where it begins.
    let days = (s.to_day - s.from_day).num_days() + 1;
    let per_day = w / days as f64;
    let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::Tz::UTC);
    for d in s.from_day.iter_days().take(days as usize + 1) {
        let dx = x(crate::sla::report::day_start(zone, d));
        let _ = write!(out, r#"<line class="day-tick" x1="{dx:.1}" y1="{}" x2="{dx:.1}" y2="{}" stroke="{GRID}"/>"#, strip - 4.0, height - 8.0);
        if d > s.to_day {
            break;
        }
        if d == s.from_day || d.day() == 1 {
            let _ = write!(out, r#"<text x="{:.1}" y="12" font-size="11" font-weight="600" fill="{INK}">{}</text>"#, dx + 2.0, d.format("%b %Y"));
        }
        if per_day >= 18.0 || d.weekday() == chrono::Weekday::Mon {
            let _ = write!(out, r#"<text x="{:.1}" y="28" font-size="10" text-anchor="middle" fill="{INK}">{}</text>"#, dx + per_day / 2.0, d.format("%d"));
        }
    }
    let now = Utc::now();
    if now > s.from && now < s.to {
        let nx = x(now);
        let _ = write!(
            out,
            r#"<line x1="{nx:.1}" y1="{}" x2="{nx:.1}" y2="{}" stroke="{INK}" stroke-width="1.5" stroke-dasharray="3 3"><title>now, {}</title></line>"#,
            strip - 4.0,
            height - 8.0,
            esc(&local_time(&now, tz))
        );
    }

    // The freezes: a strip each, named, then bands over the rows they cover.
    for (i, f) in s.freezes.iter().enumerate() {
        let y = strip + 18.0 * i as f64;
        let (x1, x2) = (x(f.start), x(f.end));
        let what = format!("{} {}: {} ({})", freeze_kind(f.hard), f.name, window_text(Some(f.start), Some(f.end), tz), services_text(&f.services));
        let _ = write!(
            out,
            r#"<g class="freeze {}" data-freeze="{}"><text x="0" y="{}" font-size="11" fill="{INK}">{}</text><rect x="{x1:.1}" y="{y}" width="{:.1}" height="14" {}><title>{}</title></rect></g>"#,
            if f.hard { "hard" } else { "soft" },
            esc(&f.name),
            y + 11.0,
            esc(&short(&format!("{}: {}", freeze_kind(f.hard), f.name), 28)),
            (x2 - x1).max(2.0),
            freeze_style(f.hard),
            esc(&what)
        );
    }
    let mut y = top;
    for (i, (row, h)) in rows.iter().zip(&heights).enumerate() {
        if i % 2 == 0 {
            let _ = write!(out, r##"<rect x="0" y="{y}" width="860" height="{h}" fill="#f5f7fa"/>"##);
        }
        for f in s.freezes.iter().filter(|f| covers(f, row)) {
            let (x1, x2) = (x(f.start), x(f.end));
            let _ = write!(
                out,
                r#"<rect class="freeze-band {}" data-freeze="{}" data-service="{}" x="{x1:.1}" y="{y}" width="{:.1}" height="{h}" {} opacity="0.7"><title>{} {} over {}</title></rect>"#,
                if f.hard { "hard" } else { "soft" },
                esc(&f.name),
                esc(row),
                (x2 - x1).max(2.0),
                freeze_style(f.hard),
                freeze_kind(f.hard),
                esc(&f.name),
                esc(row)
            );
        }
        let _ = write!(out, r#"<text x="0" y="{}" font-size="13" font-weight="600" fill="{INK}">{}</text>"#, y + 19.0, esc(&short(row, 22)));
        let mine: Vec<_> = s.changes.iter().filter(|(c, _, _)| on_row(c, row)).collect();
        if mine.is_empty() {
            let _ = write!(out, r#"<text x="{left}" y="{}" font-size="11" fill="{INK}">no change planned</text>"#, y + 19.0);
        }
        for (k, (c, _, open)) in mine.iter().enumerate() {
            let ly = y + 6.0 + lane * k as f64;
            let (Some(start), Some(end)) = (c.planned_start, c.planned_end) else { continue };
            let (x1, x2) = (x(start), x(end));
            let colour = status_colour(&c.status);
            let outline = if open.is_empty() { String::new() } else { format!(r#" stroke="{BAD}" stroke-width="2.5""#) };
            let label = format!("{} {} · {}", c.reference, short(&c.title, 30), c.status);
            let (lx, anchor) = label_at(x1, x2, left, w);
            let marker_x = if anchor == "start" { lx } else { lx - 13.0 };
            let text_x = match (open.is_empty(), anchor) {
                (false, "start") => lx + 15.0,
                (false, _) => lx - 15.0,
                _ => lx,
            };
            let _ = write!(
                out,
                r#"<a href="{base}/{r}" class="change-bar{}" data-ref="{r}" data-service="{}" aria-label="{s}"><title>{s}</title><rect x="{x1:.1}" y="{ly}" width="{:.1}" height="14" rx="2" fill="{colour}"{outline}/>"#,
                if open.is_empty() { "" } else { " conflict" },
                esc(row),
                (x2 - x1).max(3.0),
                base = s.paths.record,
                r = esc(&c.reference),
                s = esc(&change_summary(c, open, tz)),
            );
            if !open.is_empty() {
                out.push_str(&conflict_marker(marker_x, ly));
            }
            let _ = write!(
                out,
                r##"<text x="{text_x:.1}" y="{}" font-size="11" text-anchor="{anchor}" fill="{INK}" stroke="#fff" stroke-width="3" paint-order="stroke">{}</text></a>"##,
                ly + 11.0,
                esc(&label)
            );
        }
        let _ = write!(out, r#"<line x1="0" y1="{}" x2="860" y2="{}" stroke="{GRID}"/>"#, y + h, y + h);
        y += h;
    }
    out.push_str("</svg>");
    out
}

pub fn services_text(services: &[String]) -> String {
    if services.is_empty() {
        "every service".into()
    } else {
        services.join(", ")
    }
}

/// A lane of the legs chart: whose, in what state, planned when, and what it waits for.
struct Lane {
    name: String,
    state: String,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    colour: &'static str,
    after: String,
}

/// One change's legs on a time axis: the change's window first, then each supplier's planned
/// window, labelled with its state and the legs it waits for.
pub fn legs(f: &ChangeFile, tz: &str) -> String {
    let c = &f.change;
    let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        std::iter::once(c.planned_start.zip(c.planned_end)).chain(f.legs.iter().map(|l| l.planned_start.zip(l.planned_end))).flatten().collect();
    let (left, w, lane) = (220.0, 610.0, 36.0);
    let height = 40.0 + lane * (1 + f.legs.len()) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" id="leg-chart" viewBox="0 0 860 {height}" width="860" height="{height}" role="img" aria-labelledby="leg-title"><title id="leg-title">The planned windows of {} and of its legs</title>"#,
        esc(&c.reference)
    );
    let (Some(first), Some(last)) = (windows.iter().map(|w| w.0).min(), windows.iter().map(|w| w.1).max()) else {
        let _ = write!(out, r#"<text x="0" y="30" font-size="13" fill="{INK}">No window is planned yet.</text></svg>"#);
        return out;
    };
    let pad = Duration::milliseconds(((last - first).num_milliseconds() / 20).max(60_000));
    let (start, end) = (first - pad, last + pad);
    let span = (end - start).num_milliseconds().max(1) as f64;
    let x = |t: DateTime<Utc>| left + w * ((t - start).num_milliseconds().clamp(0, span as i64) as f64 / span);
    for k in 0..=4 {
        let t = start + Duration::milliseconds((span * f64::from(k) / 4.0) as i64);
        let tx = x(t);
        let anchor = match k {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            r#"<line x1="{tx:.1}" y1="18" x2="{tx:.1}" y2="{}" stroke="{GRID}"/><text x="{tx:.1}" y="12" font-size="10" text-anchor="{anchor}" fill="{INK}">{}</text>"#,
            height - 4.0,
            esc(&local_time(&t, tz))
        );
    }
    let mut lanes =
        vec![Lane { name: "Change window".into(), state: c.status.clone(), window: c.planned_start.zip(c.planned_end), colour: status_colour(&c.status), after: String::new() }];
    for (i, l) in f.legs.iter().enumerate() {
        let after = if l.depends_on.is_empty() { String::new() } else { format!(" · after {}", l.depends_on.join(", ")) };
        lanes.push(Lane { name: l.supplier_id.clone(), state: l.state.replace('_', " "), window: l.planned_start.zip(l.planned_end), colour: series_colour(i), after });
    }
    for (i, Lane { name, state, window, colour, after }) in lanes.iter().enumerate() {
        let y = 24.0 + lane * i as f64;
        let _ = write!(
            out,
            r#"<g class="leg-lane" data-lane="{}"><text x="0" y="{}" font-size="12" font-weight="600" fill="{INK}">{}</text><text x="0" y="{}" font-size="10" fill="{INK}">{}</text>"#,
            esc(name),
            y + 14.0,
            esc(&short(name, 30)),
            y + 27.0,
            esc(state)
        );
        match window {
            Some((s, e)) => {
                let (x1, x2) = (x(*s), x(*e));
                let _ = write!(
                    out,
                    r##"<rect x="{x1:.1}" y="{}" width="{:.1}" height="14" rx="2" fill="{colour}"><title>{}: {}</title></rect><text x="{:.1}" y="{}" font-size="11" text-anchor="{}" fill="{INK}" stroke="#fff" stroke-width="3" paint-order="stroke">{}{}</text>"##,
                    y + 7.0,
                    (x2 - x1).max(3.0),
                    esc(name),
                    esc(&window_text(Some(*s), Some(*e), tz)),
                    label_at(x1, x2, left, w).0,
                    y + 18.0,
                    label_at(x1, x2, left, w).1,
                    esc(state),
                    esc(after)
                );
            }
            None => {
                let _ = write!(out, r#"<text x="{left}" y="{}" font-size="11" fill="{INK}">no window planned{}</text>"#, y + 18.0, esc(after));
            }
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}
