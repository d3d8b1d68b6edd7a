//! Inline SVG charts of the dashboard: compliance bars against target, the monthly trend, and a
//! ticket's timeline (who held it, when each clock ran and paused). Plain SVG text, so the page
//! needs nothing but itself.

use super::pages::{esc, fmt_duration, local_time};
use crate::sla::dashboard::ContractLine;
use crate::sla::ticket::TicketSla;
use chrono::{DateTime, Utc};
use std::fmt::Write;

pub const GOOD: &str = "#1b7f3b";
pub const BAD: &str = "#c62828";
pub const NEUTRAL: &str = "#9aa5b1";
pub(super) const INK: &str = "#1f2933";
pub(super) const GRID: &str = "#e4e7eb";
/// Distinct, colour-blind-friendly series colours.
const PALETTE: [&str; 8] = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#332288", "#999933"];

pub fn series_colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn label_of(l: &ContractLine) -> String {
    match &l.supplier {
        Some(s) => format!("{s} ({})", l.contract),
        None => format!("End to end ({})", l.contract),
    }
}

/// Horizontal bars of response and resolution compliance per contract, with each contract's
/// target as a dashed line: green at or above target, red below.
pub fn compliance_bars(lines: &[ContractLine]) -> String {
    let (left, width, row) = (250.0, 520.0, 64.0);
    let height = 36.0 + row * lines.len().max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" id="compliance-chart" viewBox="0 0 860 {height}" width="860" height="{height}" role="img" aria-labelledby="compliance-title"><title id="compliance-title">Compliance by contract against target</title>"#
    );
    for pct in [0, 25, 50, 75, 100] {
        let x = left + width * f64::from(pct) / 100.0;
        let _ = write!(
            s,
            r#"<line x1="{x}" y1="22" x2="{x}" y2="{}" stroke="{GRID}"/><text x="{x}" y="14" font-size="11" text-anchor="middle" fill="{INK}">{pct}%</text>"#,
            height - 6.0
        );
    }
    if lines.is_empty() {
        let _ = write!(s, r#"<text x="{left}" y="52" font-size="13" fill="{INK}">No SLA contracts are configured.</text>"#);
    }
    for (i, l) in lines.iter().enumerate() {
        let y = 30.0 + row * i as f64;
        let _ = write!(s, r#"<g class="contract-bars" data-contract="{}">"#, esc(&l.contract));
        let _ = write!(s, r#"<text x="0" y="{}" font-size="13" font-weight="600" fill="{INK}">{}</text>"#, y + 14.0, esc(&label_of(l)));
        let _ =
            write!(s, r#"<text x="0" y="{}" font-size="11" fill="{INK}">{} ticket{} · target {}%</text>"#, y + 32.0, l.tickets, if l.tickets == 1 { "" } else { "s" }, l.target);
        for (j, (name, c)) in [("response", &l.response), ("resolution", &l.resolution)].into_iter().enumerate() {
            let by = y + 2.0 + 22.0 * j as f64;
            let _ = write!(s, r#"<text x="{}" y="{}" font-size="11" text-anchor="end" fill="{INK}">{name}</text>"#, left - 6.0, by + 13.0);
            match c.percent() {
                Some(p) => {
                    let colour = if p >= l.target { GOOD } else { BAD };
                    let _ = write!(
                        s,
                        r#"<rect x="{left}" y="{by}" width="{:.1}" height="18" fill="{colour}" rx="2"><title>{name}: {} met, {} breached</title></rect><text x="{:.1}" y="{}" font-size="12" fill="{INK}" data-metric="{name}">{:.1}%</text>"#,
                        (width * p / 100.0).max(2.0),
                        c.met,
                        c.breached,
                        left + width * p / 100.0 + 6.0,
                        by + 13.0,
                        p
                    );
                }
                None => {
                    let _ = write!(s, r#"<text x="{}" y="{}" font-size="12" fill="{NEUTRAL}" data-metric="{name}">nothing decided yet</text>"#, left + 6.0, by + 13.0);
                }
            }
        }
        let tx = left + width * l.target / 100.0;
        let _ = write!(
            s,
            r#"<line x1="{tx}" y1="{}" x2="{tx}" y2="{}" stroke="{INK}" stroke-width="2" stroke-dasharray="4 3"><title>target {}%</title></line></g>"#,
            y - 2.0,
            y + 44.0,
            l.target
        );
    }
    s.push_str("</svg>");
    s
}

/// Resolution compliance per month and contract, with the target line.
pub fn trend(months: &[String], lines: &[ContractLine], target: f64) -> String {
    let (left, top, w, h) = (48.0, 16.0, 760.0, 200.0);
    let n = months.len().max(1);
    let x = |i: usize| if n == 1 { left + w / 2.0 } else { left + w * i as f64 / (n - 1) as f64 };
    let y = |p: f64| top + h * (1.0 - p / 100.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" id="trend-chart" viewBox="0 0 860 {}" width="860" height="{}" role="img" aria-labelledby="trend-title"><title id="trend-title">Resolution compliance by month</title>"#,
        top + h + 40.0,
        top + h + 40.0
    );
    for pct in [0, 25, 50, 75, 100] {
        let yy = y(f64::from(pct));
        let _ = write!(
            s,
            r#"<line x1="{left}" y1="{yy}" x2="{}" y2="{yy}" stroke="{GRID}"/><text x="{}" y="{}" font-size="11" text-anchor="end" fill="{INK}">{pct}%</text>"#,
            left + w,
            left - 6.0,
            yy + 4.0
        );
    }
    for (i, m) in months.iter().enumerate() {
        let _ = write!(s, r#"<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="{INK}">{}</text>"#, x(i), top + h + 18.0, esc(m));
    }
    let ty = y(target);
    let _ = write!(
        s,
        r#"<line x1="{left}" y1="{ty}" x2="{}" y2="{ty}" stroke="{INK}" stroke-width="1.5" stroke-dasharray="5 4"/><text x="{}" y="{}" font-size="11" text-anchor="end" fill="{INK}">target {target}%</text>"#,
        left + w,
        left + w,
        ty - 4.0
    );
    for (k, l) in lines.iter().enumerate() {
        let colour = series_colour(k);
        // A month with nothing decided breaks the line rather than pretending 0%.
        let mut segment: Vec<String> = Vec::new();
        let flush = |seg: &mut Vec<String>, s: &mut String| {
            if seg.len() > 1 {
                let _ = write!(s, r#"<polyline fill="none" stroke="{colour}" stroke-width="2.5" points="{}"/>"#, seg.join(" "));
            }
            seg.clear();
        };
        for (i, v) in l.trend.iter().enumerate() {
            match v {
                Some(p) => segment.push(format!("{:.1},{:.1}", x(i), y(*p))),
                None => flush(&mut segment, &mut s),
            }
        }
        flush(&mut segment, &mut s);
        for (i, v) in l.trend.iter().enumerate() {
            if let Some(p) = v {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"><title>{} {}: {:.1}%</title></circle>"#,
                    x(i),
                    y(*p),
                    esc(&label_of(l)),
                    esc(months.get(i).map(String::as_str).unwrap_or("")),
                    p
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// A ticket's timeline: a lane of who held it, then a lane per clock showing when it counted,
/// its pauses (with their reasons) and its breach, over the ticket's life.
pub fn ticket_timeline(t: &TicketSla, tz: &str) -> String {
    let start = t.incident.opened_at;
    let end = t
        .incident
        .closed_at
        .or(t.incident.resolved_at)
        .unwrap_or(t.now)
        .max(t.clocks.iter().filter_map(|k| k.clock.stopped_at).max().unwrap_or(start))
        .max(start + chrono::Duration::minutes(1));
    let (left, w, lane) = (210.0, 620.0, 30.0);
    let span = (end - start).num_milliseconds().max(1) as f64;
    let x = |t: DateTime<Utc>| left + w * ((t - start).num_milliseconds().clamp(0, span as i64) as f64 / span);
    let holdings: Vec<_> = t.clocks.iter().flat_map(|k| k.clock.holdings.iter()).collect();
    let mut suppliers: Vec<&str> = holdings.iter().map(|h| h.supplier.as_str()).collect();
    suppliers.sort_unstable();
    suppliers.dedup();
    let lanes = 1 + t.clocks.len();
    let height = 40.0 + lane * lanes as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" id="timeline-chart" viewBox="0 0 860 {height}" width="860" height="{height}" role="img" aria-labelledby="timeline-title"><title id="timeline-title">Timeline of {}</title>"#,
        esc(t.incident.reference.as_str())
    );
    let _ = write!(s, r#"<text x="{left}" y="12" font-size="11" fill="{INK}">{}</text>"#, esc(&local_time(&start, tz)));
    let _ = write!(s, r#"<text x="{}" y="12" font-size="11" text-anchor="end" fill="{INK}">{}</text>"#, left + w, esc(&local_time(&end, tz)));
    // Lane 0: who held the ticket.
    let y0 = 22.0;
    let _ = write!(s, r#"<text x="0" y="{}" font-size="12" font-weight="600" fill="{INK}">Held by</text>"#, y0 + 15.0);
    let mut seen = std::collections::HashSet::new();
    for h in holdings.iter().filter(|h| seen.insert((h.supplier.clone(), h.from))) {
        let colour = series_colour(suppliers.iter().position(|s| *s == h.supplier).unwrap_or(0));
        let (x1, x2) = (x(h.from), x(h.to.unwrap_or(end)));
        let _ = write!(
            s,
            r##"<rect class="holding" x="{x1:.1}" y="{y0}" width="{:.1}" height="20" fill="{colour}" opacity="0.85"><title>{} held it from {} to {}</title></rect><text x="{:.1}" y="{}" font-size="11" fill="#fff">{}</text>"##,
            (x2 - x1).max(1.0),
            esc(&h.supplier),
            esc(&local_time(&h.from, tz)),
            h.to.map(|t| local_time(&t, tz)).unwrap_or_else(|| "now".into()),
            x1 + 4.0,
            y0 + 14.0,
            if x2 - x1 > 60.0 { esc(&h.supplier) } else { String::new() }
        );
    }
    for (i, k) in t.clocks.iter().enumerate() {
        let c = &k.clock;
        let y = y0 + lane * (i + 1) as f64;
        let name = format!("{} {}", c.supplier.as_deref().unwrap_or("end to end"), crate::sla::compute::metric_name(c.metric));
        let _ = write!(s, r#"<text x="0" y="{}" font-size="12" fill="{INK}">{}</text>"#, y + 15.0, esc(&name));
        let colour = if c.breached {
            BAD
        } else if c.stopped_at.is_some() {
            GOOD
        } else {
            "#0072b2"
        };
        let (x1, x2) = (x(c.started_at), x(c.stopped_at.unwrap_or(t.now)));
        let _ = write!(
            s,
            r#"<rect class="clock" x="{x1:.1}" y="{}" width="{:.1}" height="12" fill="{colour}" opacity="0.75"><title>{}: {} of {} used</title></rect>"#,
            y + 4.0,
            (x2 - x1).max(1.0),
            esc(&name),
            fmt_duration(c.elapsed_secs),
            fmt_duration(c.target_secs)
        );
        for p in &c.pauses {
            let (p1, p2) = (x(p.from), x(p.to.unwrap_or(t.now)));
            let _ = write!(
                s,
                r#"<rect class="pause" x="{p1:.1}" y="{}" width="{:.1}" height="12" fill="{NEUTRAL}"><title>paused: {} ({} to {})</title></rect>"#,
                y + 4.0,
                (p2 - p1).max(1.0),
                esc(&p.reason),
                esc(&local_time(&p.from, tz)),
                p.to.map(|t| local_time(&t, tz)).unwrap_or_else(|| "now".into())
            );
        }
        if let Some(b) = c.breach_at.filter(|b| *b <= end) {
            let bx = x(b);
            let _ = write!(
                s,
                r#"<line x1="{bx:.1}" y1="{}" x2="{bx:.1}" y2="{}" stroke="{BAD}" stroke-width="2"><title>target reached {}</title></line>"#,
                y,
                y + 20.0,
                esc(&local_time(&b, tz))
            );
        }
    }
    s.push_str("</svg>");
    s
}
