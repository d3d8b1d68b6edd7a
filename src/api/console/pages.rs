//! The console's HTML. Every value from the record is escaped on the way in; forms carry the
//! API's field names; every control has a label; the one script (`console.js`) only adds
//! conveniences (the priority preview, the record following the supplier) that the pages do
//! without.

use super::FormError;
use crate::api::auth::{Principal, Role};
use crate::api::dashboard::pages::{clock_sections, esc, event_table, local_time, opt_time, page};
use crate::domain::{Impact, Incident, PriorityMatrix, ResolutionCode, Status, Urgency, Visibility};
use crate::sla::dashboard::Standing;
use crate::sla::ticket::TicketSla;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The console's own styles, on top of the dashboard's.
const STYLE: &str = r#"<style>
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600}
.badge.risk{background:#fff3c4;color:#5c3c00}.badge.breached{background:#ffe3e3;color:#8a1c1c}
.badge.internal{background:#3e4c59;color:#fff}.badge.public{background:#d9f2e6;color:#0e5131}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:18px}
form.stack{display:flex;flex-direction:column;gap:10px;max-width:640px}
form.stack label,fieldset legend{font-weight:600;color:#323f4b}
form.stack input[type=text],form.stack textarea,form.stack select{font:inherit;color:#1f2933;background:#fff;border:1px solid #7b8794;border-radius:4px;padding:6px 8px;width:100%}
form.stack textarea{min-height:80px}
fieldset{border:1px solid #d9e2ec;border-radius:4px;padding:8px 12px}
fieldset label{display:block;font-weight:normal;margin:2px 0}
button.act{background:#0b69a3;color:#fff;border:0;border-radius:4px;padding:7px 16px;font:inherit;cursor:pointer;align-self:flex-start}
button.act.secondary{background:#fff;color:#0b69a3;border:1px solid #0b69a3}
.field-error{color:#8a1c1c;font-weight:600;margin:0}
[aria-invalid=true]{border-color:#c62828!important;border-width:2px!important}
.done{background:#d9f2e6;color:#0e5131;border-radius:4px;padding:8px 12px}
.note{border-left:4px solid #829ab1;padding:6px 12px;margin:0 0 10px;background:#f5f7fa}
.note.internal{border-left-color:#3e4c59;background:#eef1f4}
.note p{margin:4px 0 0;white-space:pre-wrap}
nav.console{display:flex;gap:16px}
nav.console a[aria-current=page]{color:#fff;font-weight:600;text-decoration:underline}
.pager{display:flex;gap:16px;margin-top:10px}
output{font-weight:700;font-size:16px}
textarea:focus-visible,input[type=text]:focus-visible,input[type=file]:focus-visible,input[type=radio]:focus-visible{outline:3px solid #0b69a3;outline-offset:2px}
</style>"#;

/// What the top bar highlights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Incidents,
    Raise,
    Changes,
    Calendar,
    None,
}

fn who(p: &Principal) -> String {
    match (&p.supplier, p.role) {
        (Some(s), _) => format!("supplier {}", esc(s)),
        (None, Role::ServiceDesk) => "service desk".into(),
        (None, Role::ChangeManager) => "change manager".into(),
        (None, role) => format!("{role:?}").to_lowercase(),
    }
}

/// A console page: the header with the console's navigation and who is signed in, the body,
/// and the script.
pub fn shell(title: &str, p: Option<&Principal>, area: Area, body: &str) -> String {
    let nav = match p {
        Some(p) => {
            let link = |href: &str, label: &str, me: Area| format!(r#"<a href="{href}"{}>{label}</a>"#, if me == area { r#" aria-current="page""# } else { "" });
            let raise = if p.role == Role::ServiceDesk || p.role == Role::Admin { link("/console/incidents/new", "Raise an incident", Area::Raise) } else { String::new() };
            format!(
                r#"<nav class="console" aria-label="Console">{}{raise}{}{}</nav><div class="who">Signed in as {}<form method="post" action="/console/logout"><button type="submit">Sign out</button></form></div>"#,
                link("/console/incidents", "Incidents", Area::Incidents),
                link("/console/changes", "Changes", Area::Changes),
                link("/console/changes/calendar", "Change calendar", Area::Calendar),
                who(p)
            )
        }
        None => String::new(),
    };
    let header = format!(r#"<header><h1><a href="/console" style="color:#fff">SIAM Hub · Service desk</a></h1>{nav}</header>"#);
    let body = format!(r#"{STYLE}{body}<script src="/console/assets/console.js" defer></script>"#);
    page(title, &header, &body)
}

pub fn login(error: Option<&str>, next: &str) -> String {
    let err = error.map(|e| format!(r#"<p class="error" id="login-error" role="alert">{}</p>"#, esc(e))).unwrap_or_default();
    let body = format!(
        r#"<main><section class="login"><h2>Sign in to the console</h2>{err}<form method="post" action="/console/login"><label for="key">API key (service desk, admin, manager, change manager or supplier)</label><input type="password" id="key" name="key" autocomplete="off" required autofocus><input type="hidden" name="next" value="{}"><button type="submit">Open the console</button></form><p class="muted">Create a key with <code>siam-hub keys create --role service_desk</code>.</p></section></main>"#,
        esc(next)
    );
    shell("Sign in · SIAM Hub console", None, Area::None, &body)
}

pub fn message(title: &str, text: &str) -> String {
    let body = format!(r#"<main><section><h2>{}</h2><p>{}</p><p><a href="/console/incidents">Back to the incidents</a></p></section></main>"#, esc(title), esc(text));
    shell(title, None, Area::None, &body)
}

/// A form-level error, and the errors of single fields, of the form named `form`.
fn errors_of<'a>(error: Option<&'a FormError>, form: &str) -> Option<&'a FormError> {
    error.filter(|e| e.form == form)
}

fn general_error(error: Option<&FormError>) -> String {
    match error.and_then(|e| e.general.as_deref()) {
        Some(msg) => format!(r#"<p class="error" role="alert" id="form-error">{}</p>"#, esc(msg)),
        None => String::new(),
    }
}

/// The attributes and message of a field: `aria-invalid` and `aria-describedby` when it has an
/// error, and the error itself shown right after it.
fn field_error(error: Option<&FormError>, form: &str, field: &str) -> (String, String) {
    match error.and_then(|e| e.fields.get(field)) {
        Some(msg) => (format!(r#" aria-invalid="true" aria-describedby="{form}-{field}-error""#), format!(r#"<p class="field-error" id="{form}-{field}-error">{}</p>"#, esc(msg))),
        None => (String::new(), String::new()),
    }
}

fn value<'a>(error: Option<&'a FormError>, field: &str, default: &'a str) -> &'a str {
    error.and_then(|e| e.values.get(field)).map(String::as_str).unwrap_or(default)
}

fn text_input(error: Option<&FormError>, form: &str, field: &str, label: &str, required: bool, default: &str) -> String {
    let (attrs, msg) = field_error(error, form, field);
    format!(
        r#"<label for="{form}-{field}">{label}{}</label><input type="text" id="{form}-{field}" name="{field}" value="{}"{}{attrs}>{msg}"#,
        if required { " (required)" } else { "" },
        esc(value(error, field, default)),
        if required { " required" } else { "" }
    )
}

fn select(error: Option<&FormError>, form: &str, field: &str, label: &str, options: &[(String, String)], default: &str) -> String {
    let (attrs, msg) = field_error(error, form, field);
    let chosen = value(error, field, default);
    let mut out = format!(r#"<label for="{form}-{field}">{label}</label><select id="{form}-{field}" name="{field}"{attrs}>"#);
    for (v, text) in options {
        let _ = write!(out, r#"<option value="{}"{}>{}</option>"#, esc(v), if v == chosen { " selected" } else { "" }, esc(text));
    }
    let _ = write!(out, "</select>{msg}");
    out
}

fn scale_options(words: [&str; 3]) -> Vec<(String, String)> {
    (1..=3).map(|v| (v.to_string(), format!("{v} · {}", words[v - 1]))).collect()
}

/// `/console/incidents/new`
pub fn raise(p: &Principal, services: &[String], matrix: &PriorityMatrix, error: Option<&FormError>, idempotency_key: &str) -> String {
    let error = errors_of(error, "raise");
    let mut service_options = vec![(String::new(), "Choose a service".to_string())];
    service_options.extend(services.iter().map(|s| (s.clone(), s.clone())));
    let level = |field: &str| value(error, field, "3").parse::<u8>().ok().and_then(|v| (1..=3).contains(&v).then_some(v)).unwrap_or(3);
    let (impact, urgency) = (Impact::new(level("impact")).unwrap_or(Impact::LOWEST), Urgency::new(level("urgency")).unwrap_or(Urgency::LOWEST));
    let cells: Vec<String> = (1..=3u8)
        .flat_map(|i| (1..=3u8).map(move |u| (i, u)))
        .map(|(i, u)| {
            let (i, u) = (Impact::new(i).unwrap_or(Impact::LOWEST), Urgency::new(u).unwrap_or(Urgency::LOWEST));
            format!("{}", matrix.derive(i, u).get())
        })
        .collect();
    let mut table = String::from(
        r#"<table id="priority-matrix"><caption>The priority matrix: impact (rows) by urgency (columns)</caption><thead><tr><th scope="col">Impact \ Urgency</th><th scope="col">1 high</th><th scope="col">2 medium</th><th scope="col">3 low</th></tr></thead><tbody>"#,
    );
    for (row, word) in ["1 high", "2 medium", "3 low"].iter().enumerate() {
        let _ = write!(table, r#"<tr><th scope="row">{word}</th>"#);
        for col in 0..3 {
            let _ = write!(table, "<td>P{}</td>", cells[row * 3 + col]);
        }
        table.push_str("</tr>");
    }
    table.push_str("</tbody></table>");
    let description = {
        let (attrs, msg) = field_error(error, "raise", "description");
        format!(
            r#"<label for="raise-description">Description</label><textarea id="raise-description" name="description"{attrs}>{}</textarea>{msg}"#,
            esc(value(error, "description", ""))
        )
    };
    let body = format!(
        r#"<main><section id="raise"><h2>Raise an incident</h2>{}<form class="stack" method="post" action="/console/incidents" novalidate data-matrix="{}"><input type="hidden" name="idempotency_key" value="{}">{}{}{}{}{}{}<p>Priority the matrix gives: <output id="priority-preview" for="raise-impact raise-urgency" aria-live="polite">P{}</output></p>{}{}<button type="submit" class="act" id="raise-submit">Raise the incident</button></form></section><section><h2>How the priority is set</h2>{table}</section></main>"#,
        general_error(error),
        cells.join(","),
        esc(value(error, "idempotency_key", idempotency_key)),
        text_input(error, "raise", "title", "Title", true, ""),
        description,
        select(error, "raise", "service", "Service", &service_options, ""),
        text_input(error, "raise", "ci", "Configuration item (CI)", false, ""),
        select(error, "raise", "impact", "Impact", &scale_options(["high", "medium", "low"]), "3"),
        select(error, "raise", "urgency", "Urgency", &scale_options(["high", "medium", "low"]), "3"),
        matrix.derive(impact, urgency).get(),
        text_input(error, "raise", "caller", "Caller", true, ""),
        text_input(error, "raise", "category", "Category", false, ""),
    );
    shell("Raise an incident · SIAM Hub console", Some(p), Area::Raise, &body)
}

/// One row of the queue.
pub struct QueueRow {
    pub incident: Incident,
    pub standing: Option<Standing>,
}

/// What the queue's filters hold, by field name.
pub type Filters = BTreeMap<&'static str, String>;

pub fn badge(standing: Option<Standing>) -> &'static str {
    match standing {
        Some(Standing::Breached) => r#"<span class="badge breached">SLA breached</span>"#,
        Some(Standing::AtRisk) => r#"<span class="badge risk">SLA at risk</span>"#,
        None => "",
    }
}

/// `/console/incidents`
pub fn queue(p: &Principal, rows: &[QueueRow], filters: &Filters, suppliers: &[String], services: &[String], next: Option<&str>, tz: &str) -> String {
    let get = |k: &str| filters.get(k).map(String::as_str).unwrap_or("");
    let options = |all: &str, values: Vec<(String, String)>| {
        let mut o = vec![(String::new(), all.to_string())];
        o.extend(values);
        o
    };
    let statuses = options("Any status", Status::ALL.iter().map(|s| (s.as_str().to_string(), s.as_str().replace('_', " "))).collect());
    let priorities = options("Any priority", (1..=5).map(|v| (v.to_string(), format!("P{v}"))).collect());
    let supplier_opts = options("Any supplier", suppliers.iter().map(|s| (s.clone(), s.clone())).collect());
    let service_opts = options("Any service", services.iter().map(|s| (s.clone(), s.clone())).collect());
    let sel = |id: &str, label: &str, opts: &[(String, String)]| {
        let mut out = format!(r#"<label for="f-{id}">{label}<select id="f-{id}" name="{id}">"#);
        for (v, t) in opts {
            let _ = write!(out, r#"<option value="{}"{}>{}</option>"#, esc(v), if v == get(id) { " selected" } else { "" }, esc(t));
        }
        out.push_str("</select></label>");
        out
    };
    let mut body = format!(
        r#"<main><section id="filters"><h2>Find incidents</h2><form class="filters" method="get" action="/console/incidents" role="search"><label for="f-q">Search title, reference or supplier ticket<input type="search" id="f-q" name="q" value="{}"></label>{}{}{}{}<button type="submit">Show</button></form></section>"#,
        esc(get("q")),
        sel("status", "Status", &statuses),
        sel("priority", "Priority", &priorities),
        if p.supplier.is_some() { String::new() } else { sel("supplier", "Supplier", &supplier_opts) },
        sel("service", "Service", &service_opts),
    );
    body.push_str(r#"<section id="queue"><h2>Incidents</h2>"#);
    if rows.is_empty() {
        body.push_str(r#"<p class="muted" id="queue-empty">No incident matches.</p>"#);
    } else {
        body.push_str(r#"<table id="queue-table"><thead><tr><th scope="col">Reference</th><th scope="col">Title</th><th scope="col">Status</th><th scope="col">Priority</th><th scope="col">Service</th><th scope="col">Supplier</th><th scope="col">Supplier tickets</th><th scope="col">Opened</th><th scope="col">SLA</th></tr></thead><tbody>"#);
        for row in rows {
            let i = &row.incident;
            let numbers: Vec<String> = i.legs.iter().filter_map(|l| l.native_number.as_deref().or(l.native_id.as_deref())).map(esc).collect();
            let _ = write!(
                body,
                r#"<tr data-ref="{r}"><td><a href="/console/incidents/{r}">{r}</a></td><td>{}</td><td>{}</td><td>P{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&i.title),
                esc(&i.status.as_str().replace('_', " ")),
                i.priority.get(),
                esc(i.service.as_deref().unwrap_or("–")),
                esc(i.assigned_supplier.as_deref().unwrap_or("–")),
                numbers.join(", "),
                esc(&local_time(&i.opened_at, tz)),
                badge(row.standing),
                r = esc(i.reference.as_str()),
            );
        }
        body.push_str("</tbody></table>");
    }
    if let Some(next) = next {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in filters.iter().filter(|(_, v)| !v.is_empty()) {
            q.append_pair(k, v);
        }
        q.append_pair("cursor", next);
        let _ = write!(
            body,
            r#"<nav class="pager" aria-label="Pages"><a href="/console/incidents" id="first-page">First page</a><a href="/console/incidents?{}" id="next-page" rel="next">Next page</a></nav>"#,
            esc(&q.finish())
        );
    }
    body.push_str("</section></main>");
    shell("Incidents · SIAM Hub console", Some(p), Area::Incidents, &body)
}

/// What the record page offers to whom.
pub struct Offers {
    /// Notes and files (the desk, and a supplier whose leg is in play).
    pub work: bool,
    /// Re-route, status, link a change (the desk).
    pub manage: bool,
    /// Hand the ticket back (its supplier).
    pub hand_back: bool,
    pub suppliers: Vec<String>,
}

fn notes_html(i: &Incident, visibility: Visibility, tz: &str) -> String {
    let mut out = String::new();
    for n in i.notes.iter().filter(|n| n.visibility == visibility) {
        let _ = write!(
            out,
            r#"<article class="note {v}" data-note="{}"><span class="badge {v}">{}</span> <strong>{}</strong> <span class="muted">{}{}</span><p>{}</p></article>"#,
            n.id,
            if visibility == Visibility::Internal { "Internal" } else { "Public" },
            esc(&n.author),
            esc(&local_time(&n.created_at, tz)),
            if n.origin == "hub" { String::new() } else { format!(" · from {}", esc(&n.origin)) },
            esc(&n.text),
            v = visibility.as_str(),
        );
    }
    if out.is_empty() {
        out = r#"<p class="muted">None yet.</p>"#.into();
    }
    out
}

/// `/console/incidents/{ref}`
pub fn record(p: &Principal, t: &TicketSla, fingerprint: &str, offers: &Offers, error: Option<&FormError>, done: Option<&str>, tz: &str) -> String {
    let i = &t.incident;
    let r = esc(i.reference.as_str());
    let mut body = format!(r#"<main id="record" data-ref="{r}" data-fingerprint="{}">"#, esc(fingerprint));
    if let Some(done) = done {
        let _ = write!(body, r#"<p class="done" role="status" id="done">{}</p>"#, esc(done));
    }
    let change = |c: &Option<crate::domain::change::ChangeRef>| match c {
        Some(c) => format!(r#"<a href="/console/changes/{c}">{c}</a>"#, c = esc(c.as_str())),
        None => "–".into(),
    };
    let _ = write!(
        body,
        r#"<section id="summary"><h2><span id="ref">{r}</span> · {}</h2><table><tbody><tr><th scope="row">Status</th><td id="status">{}</td><th scope="row">Priority</th><td id="priority">P{} <span class="muted">(impact {}, urgency {})</span></td><th scope="row">Assigned to</th><td id="assigned">{}</td></tr><tr><th scope="row">Service</th><td>{}</td><th scope="row">CI</th><td>{}</td><th scope="row">Caller</th><td>{}</td></tr><tr><th scope="row">Opened</th><td>{}</td><th scope="row">Resolved</th><td>{}</td><th scope="row">Closed</th><td>{}</td></tr><tr><th scope="row">Category</th><td>{}</td><th scope="row">Resolution</th><td id="resolution">{}</td><th scope="row">Caused by change</th><td id="caused-by">{}</td></tr></tbody></table><p>{}</p></section>"#,
        esc(&i.title),
        esc(&i.status.as_str().replace('_', " ")),
        i.priority.get(),
        i.impact.get(),
        i.urgency.get(),
        esc(i.assigned_supplier.as_deref().unwrap_or("–")),
        esc(i.service.as_deref().unwrap_or("–")),
        esc(i.ci.as_deref().unwrap_or("–")),
        esc(&i.caller),
        esc(&local_time(&i.opened_at, tz)),
        opt_time(i.resolved_at, tz),
        opt_time(i.closed_at, tz),
        esc(i.category.as_deref().unwrap_or("–")),
        i.resolution.as_ref().map(|r| esc(&format!("{} {}", r.code, r.notes))).unwrap_or_else(|| "–".into()),
        change(&i.caused_by_change),
        esc(&i.description),
    );

    body.push_str(r#"<section id="legs"><h2>Supplier tickets</h2>"#);
    if i.legs.is_empty() {
        body.push_str(r#"<p class="muted">Not routed to a supplier yet.</p>"#);
    } else {
        body.push_str(r#"<table id="leg-table"><thead><tr><th scope="col">Supplier</th><th scope="col">System</th><th scope="col">Leg</th><th scope="col">Their ticket</th><th scope="col">Their status</th><th scope="col">Opened</th><th scope="col">Last problem</th></tr></thead><tbody>"#);
        for l in &i.legs {
            let number = l.native_number.as_deref().or(l.native_id.as_deref());
            let ticket = match (number, l.url.as_deref()) {
                (Some(n), Some(u)) if u.starts_with("https://") || u.starts_with("http://") => {
                    format!(r#"<a class="native" href="{}" rel="noopener noreferrer" target="_blank">{}</a>"#, esc(u), esc(n))
                }
                (Some(n), _) => format!(r#"<span class="native">{}</span>"#, esc(n)),
                (None, _) => r#"<span class="muted">not created yet</span>"#.into(),
            };
            let _ = write!(
                body,
                r#"<tr data-supplier="{s}" data-state="{}"><td>{s}{}</td><td>{}</td><td>{}</td><td>{ticket}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                l.state.as_str(),
                if l.primary { " <span class=\"muted\">(owner)</span>" } else { "" },
                esc(&l.system),
                esc(&l.state.as_str().replace('_', " ")),
                esc(l.native_status.as_deref().unwrap_or("–")),
                esc(&local_time(&l.opened_at, tz)),
                esc(l.last_error.as_deref().unwrap_or("")),
                s = esc(&l.supplier),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");

    let _ = write!(
        body,
        r#"<div class="grid2"><section id="public-notes"><h2>Public notes <span class="muted">(the caller may see these)</span></h2>{}</section><section id="internal-notes"><h2>Internal work notes <span class="muted">(resolvers only)</span></h2>{}</section></div>"#,
        notes_html(i, Visibility::Public, tz),
        notes_html(i, Visibility::Internal, tz)
    );

    body.push_str(r#"<section id="files"><h2>Files</h2>"#);
    if i.attachments.is_empty() {
        body.push_str(r#"<p class="muted">No file yet.</p>"#);
    } else {
        body.push_str(r#"<table id="file-table"><thead><tr><th scope="col">File</th><th scope="col">Type</th><th scope="col" class="num">Bytes</th><th scope="col">From</th><th scope="col">Added</th></tr></thead><tbody>"#);
        for a in &i.attachments {
            let _ = write!(
                body,
                r#"<tr><td><a href="/console/incidents/{r}/attachments/{}" download>{}</a></td><td>{}</td><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
                a.id,
                esc(&a.file_name),
                esc(&a.content_type),
                a.size,
                esc(&a.origin),
                esc(&local_time(&a.created_at, tz))
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");

    body.push_str(&actions(i, offers, error));
    body.push_str(&clock_sections(t, tz));
    body.push_str(r#"<section id="events"><h2>History</h2>"#);
    body.push_str(&event_table(t.events.iter().map(|e| (e.event_id, &e.occurred_at, e.kind.as_str(), e.source.as_str(), &e.data)), tz));
    body.push_str("</section></main>");
    // Without the script, the page still follows the supplier: it reloads itself now and then.
    body.push_str(r#"<noscript><p class="muted">This page reloads every 15 seconds to show suppliers' updates.</p><meta http-equiv="refresh" content="15"></noscript>"#);
    shell(&format!("{} · SIAM Hub console", i.reference), Some(p), Area::Incidents, &body)
}

fn actions(i: &Incident, offers: &Offers, error: Option<&FormError>) -> String {
    let r = esc(i.reference.as_str());
    let mut out = String::new();
    if !(offers.work || offers.manage || offers.hand_back) {
        return out;
    }
    out.push_str(r#"<section id="actions"><h2>Work the ticket</h2><div class="grid2">"#);
    if offers.work {
        let e = errors_of(error, "note");
        let (attrs, msg) = field_error(e, "note", "text");
        let chosen = value(e, "visibility", "internal");
        let radio = |v: &str, label: &str| {
            format!(r#"<label><input type="radio" name="visibility" id="note-{v}" value="{v}"{}> {label}</label>"#, if chosen == v { " checked" } else { "" })
        };
        let _ = write!(
            out,
            r#"<form class="stack" id="note-form" method="post" action="/console/incidents/{r}/notes"><h3>Add a note</h3>{}<label for="note-text">Note</label><textarea id="note-text" name="text" required{attrs}>{}</textarea>{msg}<fieldset><legend>Who may see it</legend>{} {}</fieldset><button type="submit" class="act" id="note-submit">Add the note</button></form>"#,
            general_error(e),
            esc(value(e, "text", "")),
            radio("internal", "Internal work note (resolvers only)"),
            radio("public", "Public (the caller may see it)"),
        );
        let e = errors_of(error, "file");
        let (attrs, msg) = field_error(e, "file", "file");
        let _ = write!(
            out,
            r#"<form class="stack" id="file-form" method="post" action="/console/incidents/{r}/attachments" enctype="multipart/form-data"><h3>Add a file</h3>{}<label for="file-file">File</label><input type="file" id="file-file" name="file" required{attrs}>{msg}<button type="submit" class="act" id="file-submit">Upload</button></form>"#,
            general_error(e)
        );
    }
    if offers.manage {
        let e = errors_of(error, "route");
        let mut opts = vec![(String::new(), "The next supplier by the routing rules".to_string())];
        opts.extend(offers.suppliers.iter().map(|s| (s.clone(), s.clone())));
        let mode = value(e, "mode", "move");
        let _ = write!(
            out,
            r#"<form class="stack" id="route-form" method="post" action="/console/incidents/{r}/route"><h3>Re-route or add a supplier</h3>{}{}<fieldset><legend>How</legend><label><input type="radio" name="mode" id="route-move" value="move"{}> Move the ticket to this supplier</label> <label><input type="radio" name="mode" id="route-add" value="add"{}> Add this supplier too (major incident)</label></fieldset>{}<button type="submit" class="act" id="route-submit">Route</button></form>"#,
            general_error(e),
            select(e, "route", "supplier", "Supplier", &opts, ""),
            if mode != "add" { " checked" } else { "" },
            if mode == "add" { " checked" } else { "" },
            text_input(e, "route", "reason", "Reason", true, ""),
        );
        let e = errors_of(error, "status");
        let mut choices: Vec<(String, String)> = vec![];
        match i.status {
            Status::Resolved => {
                choices.push(("closed".into(), "Close".into()));
                choices.push(("in_progress".into(), "Reopen".into()));
            }
            s if s.is_terminal() => {}
            _ => {
                choices.push(("resolved".into(), "Resolve".into()));
                choices.push(("cancelled".into(), "Cancel".into()));
            }
        }
        if !choices.is_empty() {
            let codes: Vec<(String, String)> = std::iter::once((String::new(), "No resolution code".to_string()))
                .chain(ResolutionCode::ALL.iter().map(|c| (c.as_str().to_string(), c.as_str().replace('_', " "))))
                .collect();
            let _ = write!(
                out,
                r#"<form class="stack" id="status-form" method="post" action="/console/incidents/{r}/status"><h3>Resolve, close, cancel or reopen</h3>{}<input type="hidden" name="version" value="{}">{}{}{}<button type="submit" class="act" id="status-submit">Apply</button></form>"#,
                general_error(e),
                i.version,
                select(e, "status", "status", "What to do", &choices, ""),
                select(e, "status", "resolution_code", "Resolution code (to resolve)", &codes, ""),
                text_input(e, "status", "resolution_notes", "Resolution notes", false, ""),
            );
        }
        let e = errors_of(error, "link");
        let _ = write!(
            out,
            r#"<form class="stack" id="link-form" method="post" action="/console/incidents/{r}/link"><h3>Link the change that caused it</h3>{}<input type="hidden" name="version" value="{}">{}<button type="submit" class="act secondary" id="link-submit">Link</button></form>"#,
            general_error(e),
            i.version,
            text_input(e, "link", "caused_by_change", "Change reference (CHG-…)", true, i.caused_by_change.as_ref().map(|c| c.as_str()).unwrap_or("")),
        );
    }
    if offers.hand_back {
        let e = errors_of(error, "handback");
        let _ = write!(
            out,
            r#"<form class="stack" id="handback-form" method="post" action="/console/incidents/{r}/handback"><h3>Hand the ticket back</h3><p class="muted">When it is not yours: the service desk routes it on.</p>{}{}<button type="submit" class="act secondary" id="handback-submit">Hand back</button></form>"#,
            general_error(e),
            text_input(e, "handback", "reason", "Reason", true, ""),
        );
    }
    out.push_str("</div></section>");
    out
}
