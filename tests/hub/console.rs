//! The service desk console in a real headless browser: raising an incident through the form,
//! following it to the supplier's ticket, errors shown beside their field, notes kept apart by
//! visibility, what a supplier key may and may not do, and the accessibility check of every page.
//!
//! With `SIAM_SCREENSHOT_DIR` set, the tests save the screenshots the README shows.

use crate::browser::Browser;
use crate::change_dashboard::two_colliding_changes;
use crate::changes::{change_hub_with, change_options};
use crate::handoff::{two_supplier_hub, SECOND};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use siam_hub::domain::{Impact, Urgency};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Signs the browser in to the console with `key`, through the sign-in form.
async fn sign_in(browser: &Browser, hub: &TestHub, key: &str) {
    browser.goto(&hub.url("/console")).await;
    browser.fill("#key", key).await;
    browser.click("form[action='/console/login'] button[type=submit]").await;
    browser.wait_for("nav.console", Duration::from_secs(10)).await;
}

/// A plain HTTP client holding a console session for `key` (redirects not followed).
async fn session(hub: &TestHub, key: &str) -> (reqwest::Client, String) {
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed = plain.post(hub.url("/console/login")).form(&[("key", key)]).send().await.unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    (plain, cookie)
}

fn screenshot_dir() -> Option<String> {
    std::env::var("SIAM_SCREENSHOT_DIR").ok()
}

#[tokio::test]
async fn the_desk_raises_an_incident_in_the_console_and_sees_its_servicenow_ticket_appear() {
    let hub = TestHub::spawn().await;
    let browser = Browser::start().await;
    let mut found = vec![];

    browser.goto(&hub.url("/console/incidents/new")).await;
    found.extend(browser.axe().await.into_iter().map(|v| format!("sign-in: {v}")));
    browser.fill("#key", &hub.keys.service_desk).await;
    browser.click("form[action='/console/login'] button[type=submit]").await;
    browser.wait_for("#raise", Duration::from_secs(10)).await;
    assert_eq!(browser.current_url().await.path(), "/console/incidents/new", "signed in, back on the page asked for");

    // The form carries the API's field names, and shows the priority the matrix will give.
    for field in ["title", "description", "service", "ci", "impact", "urgency", "caller", "category"] {
        assert_eq!(browser.attr(&format!("#raise-{field}"), "name").await.as_deref(), Some(field));
    }
    let p11 = hub.settings.priority_matrix.derive(Impact::new(1).unwrap(), Urgency::new(1).unwrap()).get();
    let p33 = hub.settings.priority_matrix.derive(Impact::new(3).unwrap(), Urgency::new(3).unwrap()).get();
    assert_eq!(browser.text("#priority-preview").await, format!("P{p33}"));
    browser.select("#raise-impact", "1").await;
    browser.select("#raise-urgency", "1").await;
    browser.wait_for_text("#priority-preview", &format!("P{p11}"), Duration::from_secs(5)).await;

    browser.fill("#raise-title", "Core switch down in building 2").await;
    browser.fill("#raise-description", "Nobody on floors 2 and 3 has a network").await;
    browser.select("#raise-service", "network").await;
    browser.fill("#raise-ci", "core-switch-02").await;
    browser.fill("#raise-caller", "j.smith").await;
    if let Some(dir) = screenshot_dir() {
        browser.screenshot(format!("{dir}/console-raise.png")).await;
    }
    found.extend(browser.axe().await.into_iter().map(|v| format!("raise form: {v}")));
    browser.click("#raise-submit").await;

    // The browser lands on the record page, which follows the hub until the supplier's ticket
    // exists, with its number linking to the ticket in the supplier's own tool.
    browser.wait_for("#record", Duration::from_secs(10)).await;
    let r = browser.text("#ref").await;
    assert_eq!(browser.current_url().await.path(), format!("/console/incidents/{r}"));
    assert!(browser.text("#done").await.contains("raised"));
    assert_eq!(browser.text("#priority").await.split_whitespace().next(), Some(format!("P{p11}").as_str()));
    let number = browser.wait_for("#leg-table a.native", WAIT).await.text().await.unwrap();
    let doc = hub.incident(&r).await;
    let leg = leg(&doc, SUPPLIER, "open").expect("the ServiceNow leg is open");
    assert_eq!(number, leg["native_number"].as_str().unwrap());
    assert_eq!(browser.attr("#leg-table a.native", "href").await.as_deref(), leg["url"].as_str());
    let at_supplier = hub.sim.incident_by_correlation(&r);
    assert_eq!(at_supplier.len(), 1, "one ticket at ServiceNow");
    assert_eq!(at_supplier[0]["number"].as_str(), Some(number.as_str()));
    assert_eq!(at_supplier[0]["short_description"], "Core switch down in building 2");
    if let Some(dir) = screenshot_dir() {
        browser.screenshot(format!("{dir}/console-record.png")).await;
    }
    found.extend(browser.axe().await.into_iter().map(|v| format!("record: {v}")));

    // The queue lists it, found by the supplier's ticket number too.
    browser.goto(&hub.url(&format!("/console/incidents?q={number}"))).await;
    browser.wait_for(&format!("#queue-table tr[data-ref='{r}']"), Duration::from_secs(10)).await;
    found.extend(browser.axe().await.into_iter().map(|v| format!("queue: {v}")));
    assert!(found.is_empty(), "serious or critical accessibility violations:\n{}", found.join("\n"));
    browser.close().await;
    hub.finish().await;
}

#[tokio::test]
async fn a_raise_form_without_a_title_says_so_beside_the_title_and_keeps_what_was_typed() {
    let hub = TestHub::spawn().await;
    let browser = Browser::start().await;
    sign_in(&browser, &hub, &hub.keys.service_desk).await;
    browser.goto(&hub.url("/console/incidents/new")).await;
    browser.fill("#raise-caller", "j.smith").await;
    browser.fill("#raise-ci", "core-switch-02").await;
    browser.click("#raise-submit").await;

    let error = browser.wait_for_text("#raise-title-error", "Enter a value", Duration::from_secs(10)).await;
    assert!(!error.is_empty());
    assert_eq!(browser.attr("#raise-title", "aria-invalid").await.as_deref(), Some("true"));
    assert_eq!(browser.attr("#raise-title", "aria-describedby").await.as_deref(), Some("raise-title-error"), "the error is the title's");
    assert!(browser.client().find(fantoccini::Locator::Css("#raise-caller-error")).await.is_err(), "the caller was given");
    assert_eq!(browser.attr("#raise-caller", "value").await.as_deref(), Some("j.smith"), "nothing typed is lost");
    assert_eq!(browser.attr("#raise-ci", "value").await.as_deref(), Some("core-switch-02"));
    let v = browser.axe().await;
    assert!(v.is_empty(), "the form with its error:\n{}", v.join("\n"));
    let listed: Value = hub.get_as("/api/v1/incidents", &hub.keys.admin).await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0, "nothing was raised");
    browser.close().await;

    // The same form sent twice (a double click, a resend) raises one incident.
    let (plain, cookie) = session(&hub, &hub.keys.service_desk).await;
    let form = [("title", "Printer on fire"), ("caller", "j.smith"), ("service", "network"), ("impact", "2"), ("urgency", "2"), ("idempotency_key", "form-7f3a")];
    let mut landed = vec![];
    for _ in 0..2 {
        let resp = plain.post(hub.url("/console/incidents")).header("cookie", &cookie).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        landed.push(resp.headers()["location"].to_str().unwrap().to_string());
    }
    assert_eq!(landed[0], landed[1], "both land on the same record");
    let listed: Value = hub.get_as("/api/v1/incidents", &hub.keys.admin).await.json().await.unwrap();
    let raised: Vec<&Value> = listed["items"].as_array().unwrap().iter().filter(|i| i["title"] == "Printer on fire").collect();
    assert_eq!(raised.len(), 1, "{listed}");

    // A post from another site is refused, signed in or not.
    let forged = plain
        .post(hub.url("/console/incidents"))
        .header("cookie", &cookie)
        .header("origin", "https://elsewhere.example")
        .form(&[("title", "x"), ("caller", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    hub.finish().await;
}

#[tokio::test]
async fn an_internal_note_added_in_the_console_shows_as_internal_and_reaches_servicenow_as_a_work_note() {
    let hub = TestHub::spawn().await;
    let r = hub.raise(&network_incident("VPN drops every hour")).await["ref"].as_str().unwrap().to_string();
    let doc = hub.wait_incident(&r, "the ServiceNow leg", |d| leg(d, SUPPLIER, "open").is_some()).await;
    let sys_id = leg(&doc, SUPPLIER, "open").unwrap()["native_id"].as_str().unwrap().to_string();
    let browser = Browser::start().await;
    sign_in(&browser, &hub, &hub.keys.service_desk).await;
    browser.goto(&hub.url(&format!("/console/incidents/{r}"))).await;
    browser.wait_for("#note-form", Duration::from_secs(10)).await;

    // The supplier writes on its ticket while the desk has the page open: the page shows it
    // without being reloaded by hand.
    hub.sim.agent_update(&sys_id, json!({"comments": "Engineer dispatched to building 2"})).unwrap();
    browser.wait_for_text("#public-notes", "Engineer dispatched to building 2", WAIT).await;
    assert!(browser.text("#public-notes").await.contains(&format!("from {SUPPLIER}")), "the supplier's note says where it came from");

    browser.fill("#note-text", "Caller is a VIP; do not phone before 10:00").await;
    browser.click("#note-internal").await;
    browser.click("#note-submit").await;
    browser.wait_for_text("#done", "Note added", Duration::from_secs(10)).await;
    let internal = browser.text("#internal-notes").await;
    assert!(internal.contains("Caller is a VIP") && internal.contains("Internal"), "{internal}");
    assert!(!browser.text("#public-notes").await.contains("Caller is a VIP"), "not among the public notes");

    // A public one lands on the other side.
    browser.fill("#note-text", "We are looking into it").await;
    browser.click("#note-public").await;
    browser.click("#note-submit").await;
    browser.wait_for_text("#public-notes", "We are looking into it", Duration::from_secs(10)).await;
    assert!(!browser.text("#internal-notes").await.contains("We are looking into it"));

    // A file through the form, then downloaded from the record page's link.
    let file = std::env::temp_dir().join(format!("console-{}.txt", uuid::Uuid::new_v4()));
    std::fs::write(&file, "traceroute output").unwrap();
    browser.find("#file-file").await.send_keys(file.to_str().unwrap()).await.unwrap();
    browser.click("#file-submit").await;
    browser.wait_for_text("#file-table", file.file_name().unwrap().to_str().unwrap(), Duration::from_secs(10)).await;
    let href = browser.attr("#file-table a", "href").await.unwrap();
    let (plain, cookie) = session(&hub, &hub.keys.service_desk).await;
    let body = plain.get(hub.url(&href)).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "traceroute output");
    let _ = std::fs::remove_file(&file);
    let v = browser.axe().await;
    assert!(v.is_empty(), "the record with notes and a file:\n{}", v.join("\n"));
    browser.close().await;

    wait_for("ServiceNow to have both notes", || {
        let journal = hub.sim.journal(&sys_id);
        let element = |text: &str| journal.iter().find(|j| j["value"] == text).map(|j| j["element"].as_str().unwrap_or("").to_string());
        Some((element("Caller is a VIP; do not phone before 10:00")?, element("We are looking into it")?))
    })
    .await;
    let journal = hub.sim.journal(&sys_id);
    let element = |text: &str| journal.iter().find(|j| j["value"] == text).map(|j| j["element"].as_str().unwrap().to_string());
    assert_eq!(element("Caller is a VIP; do not phone before 10:00").as_deref(), Some("work_notes"), "internal stays internal");
    assert_eq!(element("We are looking into it").as_deref(), Some("comments"));
    hub.finish().await;
}

#[tokio::test]
async fn a_supplier_key_works_its_ticket_in_the_console_but_cannot_raise_or_reroute() {
    let hub = TestHub::spawn().await;
    let r = hub.raise(&network_incident("Switch stack flapping")).await["ref"].as_str().unwrap().to_string();
    hub.wait_incident(&r, "the ServiceNow leg", |d| leg(d, SUPPLIER, "open").is_some()).await;
    let browser = Browser::start().await;
    sign_in(&browser, &hub, &hub.keys.supplier).await;

    // No raise: not offered, and refused when asked for.
    assert!(browser.client().find(fantoccini::Locator::Css("a[href='/console/incidents/new']")).await.is_err(), "no raise link");
    browser.goto(&hub.url("/console/incidents/new")).await;
    assert!(browser.text("main").await.contains("needs one of the roles"), "{}", browser.text("main").await);
    let (plain, cookie) = session(&hub, &hub.keys.supplier).await;
    let raise = plain
        .post(hub.url("/console/incidents"))
        .header("cookie", &cookie)
        .form(&[("title", "from a supplier"), ("caller", "x"), ("impact", "3"), ("urgency", "3")])
        .send()
        .await
        .unwrap();
    assert_eq!(raise.status(), StatusCode::FORBIDDEN);

    // Its own ticket: notes, files and hand-back, no routing or status.
    browser.goto(&hub.url(&format!("/console/incidents/{r}"))).await;
    browser.wait_for("#note-form", Duration::from_secs(10)).await;
    for absent in ["#route-form", "#status-form", "#link-form"] {
        assert!(browser.client().find(fantoccini::Locator::Css(absent)).await.is_err(), "{absent} is not for a supplier");
    }
    let reroute = plain
        .post(hub.url(&format!("/console/incidents/{r}/route")))
        .header("cookie", &cookie)
        .form(&[("supplier", ""), ("reason", "not ours"), ("mode", "move")])
        .send()
        .await
        .unwrap();
    assert_eq!(reroute.status(), StatusCode::FORBIDDEN);
    assert_eq!(hub.incident(&r).await["assigned_supplier"], SUPPLIER, "still theirs");
    let v = browser.axe().await;
    assert!(v.is_empty(), "the supplier's record page:\n{}", v.join("\n"));

    browser.fill("#handback-reason", "Not our kit: the switch is the customer's").await;
    browser.click("#handback-submit").await;
    browser.wait_for("#queue", Duration::from_secs(10)).await;
    let doc = hub.incident(&r).await;
    assert!(leg(&doc, SUPPLIER, "handed_back").is_some(), "{doc}");
    browser.goto(&hub.url(&format!("/console/incidents/{r}"))).await;
    assert!(browser.text("main").await.contains("does not exist"), "a ticket let go of is gone for the supplier");
    browser.close().await;
    hub.finish().await;
}

#[tokio::test]
async fn every_console_page_passes_the_accessibility_check_and_the_change_pages_show_the_changes() {
    let h = change_hub_with(change_options()).await;
    let (change, _) = two_colliding_changes(&h).await;
    let r = h.hub.raise(&network_incident("Accessibility sweep")).await["ref"].as_str().unwrap().to_string();
    let browser = Browser::start().await;
    let mut found = vec![];
    for (who, key) in [("desk", h.hub.keys.service_desk.clone()), ("manager", h.hub.keys.manager.clone())] {
        sign_in(&browser, &h.hub, &key).await;
        let pages = [
            ("queue", "/console/incidents".to_string(), "#queue-table"),
            ("record", format!("/console/incidents/{r}"), "#summary"),
            ("changes", "/console/changes".to_string(), "#change-table"),
            ("change", format!("/console/changes/{change}"), "#leg-chart"),
            ("calendar", "/console/changes/calendar".to_string(), "#schedule-chart"),
        ];
        for (name, path, landmark) in pages {
            browser.goto(&h.hub.url(&path)).await;
            browser.wait_for(landmark, Duration::from_secs(10)).await;
            found.extend(browser.axe().await.into_iter().map(|v| format!("{who} {name}: {v}")));
        }
        // The change list links each change to its page in the console, and the calendar too.
        browser.goto(&h.hub.url("/console/changes")).await;
        assert_eq!(browser.attr(&format!("#change-table tr[data-ref='{change}'] a"), "href").await, Some(format!("/console/changes/{change}")));
        browser.goto(&h.hub.url("/console/changes/calendar")).await;
        assert_eq!(browser.attr(&format!("#schedule-chart a[data-ref='{change}']"), "href").await, Some(format!("/console/changes/{change}")));
        if who == "manager" {
            // A manager reads: no form to work the ticket.
            browser.goto(&h.hub.url(&format!("/console/incidents/{r}"))).await;
            assert!(browser.client().find(fantoccini::Locator::Css("#actions")).await.is_err(), "a manager's key reads only");
        }
        browser.click("form[action='/console/logout'] button").await;
        browser.wait_for("#key", Duration::from_secs(10)).await;
    }
    assert!(found.is_empty(), "serious or critical accessibility violations:\n{}", found.join("\n"));
    browser.close().await;
    h.hub.finish().await;
}

#[tokio::test]
async fn the_desk_resolves_reopens_and_links_a_change_from_the_record_page() {
    let hub = TestHub::spawn().await;
    let r = hub.raise(&network_incident("Link flapping")).await["ref"].as_str().unwrap().to_string();
    let start = chrono::Utc::now() + chrono::Duration::days(7);
    let change =
        json!({ "title": "Replace core optics", "services": ["network"], "planned_start": start.to_rfc3339(), "planned_end": (start + chrono::Duration::hours(1)).to_rfc3339() });
    let change = hub.post("/api/v1/changes", &hub.keys.service_desk, &change).await.json::<Value>().await.unwrap()["ref"].as_str().unwrap().to_string();
    hub.wait_incident(&r, "the ServiceNow leg", |d| leg(d, SUPPLIER, "open").is_some()).await;
    let (plain, cookie) = session(&hub, &hub.keys.service_desk).await;
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let (plain, cookie, url) = (plain.clone(), cookie.clone(), hub.url(&path));
        async move { plain.post(url).header("cookie", cookie).form(&form).send().await.unwrap() }
    };
    let version = || async { hub.incident(&r).await["version"].to_string() };

    let resolved = post(
        format!("/console/incidents/{r}/status"),
        vec![("version", version().await), ("status", "resolved".into()), ("resolution_code", "fixed".into()), ("resolution_notes", "Replaced the SFP".into())],
    )
    .await;
    assert_eq!(resolved.status(), StatusCode::SEE_OTHER);
    let doc = hub.incident(&r).await;
    assert_eq!((doc["status"].as_str(), doc["resolution"]["code"].as_str()), (Some("resolved"), Some("fixed")));

    // A stale form (the version it was read at) is refused beside its form, not applied.
    let stale = post(format!("/console/incidents/{r}/status"), vec![("version", "1".into()), ("status", "closed".into())]).await;
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    assert!(stale.text().await.unwrap().contains("changed this ticket since you opened it"));
    assert_eq!(hub.incident(&r).await["status"], "resolved");

    let reopened = post(format!("/console/incidents/{r}/status"), vec![("version", version().await), ("status", "in_progress".into())]).await;
    assert_eq!(reopened.status(), StatusCode::SEE_OTHER);
    assert_eq!(hub.incident(&r).await["status"], "in_progress");

    let bad_link = post(format!("/console/incidents/{r}/link"), vec![("version", version().await), ("caused_by_change", "not a change".into())]).await;
    assert_eq!(bad_link.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_link.text().await.unwrap().contains("link-caused_by_change-error"), "the error is beside the change field");
    let unknown = post(format!("/console/incidents/{r}/link"), vec![("version", version().await), ("caused_by_change", "CHG-999999".into())]).await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = unknown.text().await.unwrap();
    assert!(text.contains("link-caused_by_change-error") && text.contains("there is no change CHG-999999"), "beside the field");
    let linked = post(format!("/console/incidents/{r}/link"), vec![("version", version().await), ("caused_by_change", change.to_lowercase())]).await;
    assert_eq!(linked.status(), StatusCode::SEE_OTHER);
    assert_eq!(hub.incident(&r).await["caused_by_change"], change.as_str());
    let page = plain.get(hub.url(&format!("/console/incidents/{r}"))).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!(r#"<a href="/console/changes/{change}">{change}</a>"#)), "the record links the change");
    hub.finish().await;
}

#[tokio::test]
async fn the_queue_filters_searches_pages_and_marks_breached_tickets() {
    let hub = TestHub::spawn_with(Options::sla()).await;
    let scenario = crate::sla::seed_scenario(&hub).await;
    let mut raised = vec![];
    for i in 0..27 {
        let mut body = network_incident(&format!("Queue ticket {i:02}"));
        if i == 3 {
            body["title"] = json!("Payroll export fails");
            body["impact"] = json!(3);
            body["urgency"] = json!(3);
        }
        raised.push(hub.raise(&body).await["ref"].as_str().unwrap().to_string());
    }
    hub.sla_settled().await;
    let (plain, cookie) = session(&hub, &hub.keys.service_desk).await;
    let page = |q: String| {
        let (plain, cookie, url) = (plain.clone(), cookie.clone(), hub.url(&format!("/console/incidents{q}")));
        async move {
            let resp = plain.get(url).header("cookie", cookie).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.text().await.unwrap()
        }
    };
    // The rows of a queue page: each reference with its row's text.
    let rows_in = |html: &str| -> Vec<(String, String)> {
        html.split("<tr data-ref=\"")
            .skip(1)
            .map(|row| {
                let reference = row.split('"').next().unwrap().to_string();
                (reference, row.split("</tr>").next().unwrap().to_string())
            })
            .collect()
    };
    let refs_in = |html: &str| rows_in(html).into_iter().map(|(r, _)| r).collect::<Vec<_>>();

    // Newest first, 25 to a page, the next page from its link: every ticket once.
    let first = page(String::new()).await;
    assert_eq!(refs_in(&first).len(), 25, "a page holds 25");
    let before = &first[..first.find("\" id=\"next-page\"").expect("a next page link")];
    let next = before.rsplit("href=\"").next().unwrap().replace("&amp;", "&");
    let rest = page(next.trim_start_matches("/console/incidents").to_string()).await;
    let mut all: Vec<String> = refs_in(&first).into_iter().chain(refs_in(&rest)).collect();
    all.sort();
    let mut want: Vec<String> = raised.iter().cloned().chain(scenario.values().cloned()).collect();
    want.sort();
    assert_eq!(all, want, "the two pages hold every ticket once");

    // Search by title words, by reference, and the filters.
    assert_eq!(refs_in(&page("?q=payroll+export".into()).await), [raised[3].clone()]);
    assert_eq!(refs_in(&page(format!("?q={}", raised[5].to_lowercase())).await), [raised[5].clone()]);
    let p = hub.incident(&raised[3]).await["priority"].as_i64().unwrap();
    let by_priority = refs_in(&page(format!("?priority={p}&service=network")).await);
    assert!(by_priority.contains(&raised[3]) && !by_priority.contains(&raised[0]), "{by_priority:?}");
    let resolved = refs_in(&page("?status=resolved".into()).await);
    assert!(resolved.contains(&scenario["A"]) && !resolved.contains(&scenario["E"]) && !resolved.contains(&raised[0]), "{resolved:?}");
    let bad = plain.get(hub.url("/console/incidents?status=bogus")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // The SLA badges come from the stored clocks: E is past both targets, A met them.
    let scenario_rows = rows_in(&page("?q=E%3A".into()).await).into_iter().chain(rows_in(&page("?q=A%3A".into()).await)).collect::<Vec<_>>();
    let row = |r: &str| scenario_rows.iter().find(|(x, _)| x == r).map(|(_, t)| t.clone()).unwrap_or_else(|| panic!("{r} in {scenario_rows:?}"));
    assert!(row(&scenario["E"]).contains("SLA breached"), "{}", row(&scenario["E"]));
    assert!(!row(&scenario["A"]).contains("SLA "), "{}", row(&scenario["A"]));
    hub.finish().await;
}

#[tokio::test]
async fn the_desk_adds_a_second_supplier_to_a_major_incident_from_the_record_page() {
    let (hub, sim2) = two_supplier_hub(Options::default(), "").await;
    let r = hub.raise(&network_incident("Campus-wide outage")).await["ref"].as_str().unwrap().to_string();
    hub.wait_incident(&r, "the first leg", |d| leg(d, SUPPLIER, "open").is_some()).await;
    let (plain, cookie) = session(&hub, &hub.keys.service_desk).await;
    let route = |form: Vec<(&'static str, &'static str)>| {
        let (plain, cookie, url) = (plain.clone(), cookie.clone(), hub.url(&format!("/console/incidents/{r}/route")));
        async move { plain.post(url).header("cookie", cookie).form(&form).send().await.unwrap() }
    };

    // Without a reason the form says so beside the reason, and nothing moves.
    let refused = route(vec![("supplier", SECOND), ("mode", "add"), ("reason", "")]).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("route-reason-error"));
    let added = route(vec![("supplier", SECOND), ("mode", "add"), ("reason", "Major incident: the apps are down too")]).await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let doc = hub.wait_incident(&r, "the second supplier's leg", |d| leg(d, SECOND, "open").is_some()).await;
    assert!(leg(&doc, SUPPLIER, "open").is_some(), "the first supplier keeps its leg: {doc}");
    assert_eq!(sim2.incident_by_correlation(&r).len(), 1, "a ticket at the second supplier");
    let page = plain.get(hub.url(&format!("/console/incidents/{r}"))).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!(r#"<tr data-supplier="{SECOND}" data-state="open">"#)), "the record page lists the new leg");
    hub.finish().await;
}
