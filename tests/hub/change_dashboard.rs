//! The dashboard's change pages in a real headless browser: two changes colliding on one
//! service and a hard freeze show on the forward schedule as a manager checks them, every link
//! opens the change's page with its legs, approvals, conflicts and history, suppliers see only
//! the changes they hold a leg of, and bad periods and unknown changes answer plainly.

use crate::changes::{change_hub, normal_change, ts, ChangeHub, PAYROLL};
use crate::dashboard::{chromium, dom, text_of};
use crate::helpers::*;
use chrono::{Duration, SubsecRound, Utc};
use reqwest::StatusCode;
use serde_json::json;

/// The row of the table `table_id` marked `data-ref="<reference>"`, as HTML.
fn row<'a>(dom: &'a str, table_id: &str, reference: &str) -> &'a str {
    let table = &dom[dom.find(&format!("id=\"{table_id}\"")).unwrap_or_else(|| panic!("no #{table_id}"))..];
    let start = table.find(&format!("<tr data-ref=\"{reference}\"")).unwrap_or_else(|| panic!("no row for {reference} in #{table_id}"));
    &table[start..start + table[start..].find("</tr>").unwrap()]
}

/// The links to change pages in a page.
fn change_links(dom: &str) -> Vec<String> {
    let mut out: Vec<String> = dom.split("href=\"").skip(1).filter_map(|s| s.split('"').next()).filter(|h| h.starts_with("/dashboard/changes/CHG-")).map(str::to_string).collect();
    out.sort();
    out.dedup();
    out
}

/// Two submitted changes on the network in intersecting windows two days from now (the second
/// also on payroll), the first authorised with the CAB's and the network supplier's approval
/// and the supplier's own window on its leg.
pub(crate) async fn two_colliding_changes(h: &ChangeHub) -> (String, String) {
    let t0 = (Utc::now() + Duration::days(2)).trunc_subsecs(0);
    let a = h.raise(normal_change("Core switch firmware", &["network"], t0, t0 + Duration::hours(3))).await;
    let b = h.raise(normal_change("Payroll link <re-cabling>", &["network", "payroll"], t0 + Duration::hours(1), t0 + Duration::hours(2))).await;
    for c in [&a, &b] {
        assert_eq!(h.patch(c, &h.hub.keys.service_desk, json!({ "status": "assess" })).await.0, StatusCode::OK);
    }
    h.move_to(&a, "authorize").await;
    assert_eq!(h.decide(&a, &h.cm, "approve", "CAB 7 Dec: go").await.0, StatusCode::CREATED);
    assert_eq!(h.decide(&a, &h.network, "approve", "fine by the network").await.0, StatusCode::CREATED);
    let window = json!({ "state": "scheduled", "planned_start": ts(t0), "planned_end": ts(t0 + Duration::hours(2)) });
    let (code, doc) = h.leg(&a, SUPPLIER, &h.network, window).await;
    assert_eq!(code, StatusCode::OK, "{doc}");
    (a, b)
}

#[tokio::test]
async fn the_change_schedule_shows_collisions_and_the_freeze_and_its_links_open_each_change() {
    let h = change_hub().await;
    let (a, b) = two_colliding_changes(&h).await;
    let key = &h.hub.keys.manager;
    // The configured hard freeze on payroll begins 30 days from now: ask for 35 days.
    let zone: chrono_tz::Tz = h.hub.settings.reporting.time_zone.parse().unwrap();
    let today = Utc::now().with_timezone(&zone).date_naive();
    let range = format!("from={today}&to={}", today + Duration::days(34));
    let url = h.hub.url(&format!("/dashboard/changes?{range}&key={key}"));
    if let Ok(dir) = std::env::var("SIAM_SCREENSHOT_DIR") {
        chromium(vec![format!("--screenshot={dir}/changes.png"), "--window-size=1280,1400".into(), url.clone()]).await;
        let page = h.hub.url(&format!("/dashboard/changes/{a}?key={key}"));
        chromium(vec![format!("--screenshot={dir}/change.png"), "--window-size=1280,1600".into(), page]).await;
    }
    let page = dom(&url).await;
    assert!(!page.contains(key.as_str()), "the key must not stay in the page");
    assert_eq!(text_of(&page, "period"), format!("{today} to {}", today + Duration::days(34)));

    // Both changes, on the chart (a bar per service they touch) and in the table.
    let start = page.find("id=\"schedule-chart\"").unwrap();
    let chart = &page[start..start + page[start..].find("</svg>").unwrap()];
    for (r, services) in [(&a, 1), (&b, 2)] {
        assert_eq!(chart.matches(&format!("data-ref=\"{r}\"")).count(), services, "{r}: a bar per service");
        assert!(chart.contains(&format!("href=\"/dashboard/changes/{r}\"")), "{r}'s bar links to its page");
    }
    // The collision: both bars outlined and marked, both rows list it with the other change.
    assert_eq!(chart.matches("class=\"change-bar conflict\"").count(), 3, "every bar of both changes is highlighted");
    assert!(chart.contains("class=\"conflict-marker\""));
    for (r, other) in [(&a, &b), (&b, &a)] {
        let tr = row(&page, "change-table", r);
        assert!(tr.contains("class=\"has-conflict\""), "{tr}");
        assert!(tr.contains("data-kind=\"overlap\"") && tr.contains("service network"), "{tr}");
        assert!(tr.contains(&format!("href=\"/dashboard/changes/{other}\"")), "the other change is named and linked: {tr}");
        assert!(tr.contains(SUPPLIER), "the suppliers: {tr}");
    }
    assert!(row(&page, "change-table", &b).contains(PAYROLL));
    assert!(text_of(&page, "change-table").contains("Payroll link &lt;re-cabling&gt;"), "titles escaped and shown whole");
    // The hard freeze: named in its strip, hatched over the payroll row only, and listed.
    assert!(chart.contains("class=\"freeze hard\" data-freeze=\"payroll-run\""), "the freeze strip");
    assert!(chart.contains("class=\"freeze-band hard\" data-freeze=\"payroll-run\" data-service=\"payroll\""), "the band over payroll");
    assert!(!chart.contains("data-freeze=\"payroll-run\" data-service=\"network\""), "the network is not frozen");
    assert!(chart.contains("url(#hard-freeze)"), "hatched, not only coloured");
    let freezes = text_of(&page, "freeze-table");
    assert!(freezes.contains("payroll-run") && freezes.contains("hard freeze"), "{freezes}");
    assert!(text_of(&page, "schedule-legend").contains("hard freeze (hatched, solid edge)"));
    // The default period (today, 28 days) has both changes but not the freeze a month away.
    let default = dom(&h.hub.url(&format!("/dashboard/changes?key={key}"))).await;
    assert!(default.contains(&format!("data-ref=\"{a}\"")) && default.contains(&format!("data-ref=\"{b}\"")));
    assert!(!default.contains("id=\"freeze-table\""));
    // The way to it from the SLA dashboard.
    let overview = dom(&h.hub.url(&format!("/dashboard?key={key}"))).await;
    assert!(overview.contains("href=\"/dashboard/changes\""), "the overview links to the change schedule");

    // Every change link opens the change's page.
    let links = change_links(&page);
    let mut want = vec![format!("/dashboard/changes/{a}"), format!("/dashboard/changes/{b}")];
    want.sort();
    assert_eq!(links, want, "each change's bars and row link to its page");
    for href in &links {
        let r = href.rsplit('/').next().unwrap();
        let p = dom(&h.hub.url(&format!("{href}?key={key}"))).await;
        assert_eq!(text_of(&p, "ref"), r, "{href}");
        for id in ["leg-chart", "leg-table", "conflict-table", "event-table"] {
            assert!(p.contains(&format!("id=\"{id}\"")), "{href} has #{id}");
        }
    }
    let p = dom(&h.hub.url(&format!("/dashboard/changes/{a}?key={key}"))).await;
    assert_eq!(text_of(&p, "status").trim(), "authorize");
    assert!(text_of(&p, "window").contains(" – "));
    let legs = text_of(&p, "leg-table");
    assert!(legs.contains(SUPPLIER) && legs.contains("scheduled"), "{legs}");
    assert!(p.contains(&format!("data-lane=\"{SUPPLIER}\"")), "the leg has its lane on the chart");
    let approvals = text_of(&p, "approval-table");
    assert!(approvals.contains("CAB 7 Dec: go") && approvals.contains("fine by the network") && approvals.contains("approve"), "{approvals}");
    let conflicts = text_of(&p, "conflict-table");
    assert!(conflicts.contains("overlap") && conflicts.contains(&b) && conflicts.contains("no, open"), "{conflicts}");
    let history = text_of(&p, "event-table");
    for kind in ["change.created", "change.status_changed", "change.approval", "change.conflict_detected", "change.leg_updated"] {
        assert!(history.contains(kind), "{kind} in the history: {history}");
    }
    assert!(history.contains("draft → assess"), "{history}");
    h.hub.finish().await;
}

/// Signs `key` in through the form and reads `path` with the session (no redirects followed).
async fn page_as(hub: &TestHub, path: &str, key: &str) -> (StatusCode, String) {
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed = plain.post(hub.url("/dashboard/login")).form(&[("key", key)]).send().await.unwrap();
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let resp = plain.get(hub.url(path)).header("cookie", cookie).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn the_change_pages_answer_bad_periods_and_unknown_changes_plainly_and_suppliers_see_only_their_changes() {
    let h = change_hub().await;
    let (a, b) = two_colliding_changes(&h).await;
    let manager = &h.hub.keys.manager;

    // A period that is no period: 400, saying why.
    for (query, why) in [
        ("from=2026-13-01", "from must be a date such as 2026-12-01"),
        ("from=2026-12-10&to=2026-12-01", "ends (2026-12-01) before it begins (2026-12-10)"),
        ("from=2026-01-01&to=2026-12-31", "at most 92 days"),
        ("to=tomorrow", "to must be a date"),
    ] {
        let (status, body) = page_as(&h.hub, &format!("/dashboard/changes?{query}"), manager).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(body.contains(why), "{query}: {body}");
    }
    let (status, _) = page_as(&h.hub, "/dashboard/changes?from=2026-12-01&to=2027-03-02", manager).await;
    assert_eq!(status, StatusCode::OK, "92 days is allowed");

    // Unknown, malformed and hidden changes are all simply not found.
    for path in ["/dashboard/changes/CHG-999999", "/dashboard/changes/not-a-ref"] {
        let (status, body) = page_as(&h.hub, path, manager).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("There is no change"), "{body}");
    }
    // The applications supplier holds no leg of either change: it sees neither.
    let (status, schedule) = page_as(&h.hub, "/dashboard/changes", &h.apps).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!schedule.contains(&a) && !schedule.contains(&b), "{schedule}");
    let (status, body) = page_as(&h.hub, &format!("/dashboard/changes/{a}"), &h.apps).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains(&format!("There is no change {a}")));
    // Payroll holds a leg of the second only: it sees that, and its collision with the first
    // by reference, unlinked.
    let (_, schedule) = page_as(&h.hub, "/dashboard/changes", &h.payroll).await;
    assert!(schedule.contains(&format!("data-ref=\"{b}\"")) && !schedule.contains(&format!("data-ref=\"{a}\"")));
    assert!(schedule.contains(&a) && !schedule.contains(&format!("href=\"/dashboard/changes/{a}\"")), "the other change named, not linked");
    assert!(!schedule.contains("id=\"supplier\""), "no supplier filter for a supplier key");
    assert_eq!(page_as(&h.hub, &format!("/dashboard/changes/{b}"), &h.payroll).await.0, StatusCode::OK);
    assert_eq!(page_as(&h.hub, &format!("/dashboard/changes/{a}"), &h.payroll).await.0, StatusCode::NOT_FOUND);
    // The network holds legs of both.
    let (_, schedule) = page_as(&h.hub, "/dashboard/changes", &h.network).await;
    assert!(schedule.contains(&format!("data-ref=\"{a}\"")) && schedule.contains(&format!("data-ref=\"{b}\"")));

    // The change manager: the change pages, not the SLA ones; signing in lands on the schedule.
    let (status, schedule) = page_as(&h.hub, "/dashboard/changes?service=payroll", &h.cm).await;
    assert_eq!(status, StatusCode::OK);
    assert!(schedule.contains(&format!("data-ref=\"{b}\"")) && !schedule.contains(&format!("data-ref=\"{a}\"")), "filtered by service");
    assert_eq!(page_as(&h.hub, "/dashboard", &h.cm).await.0, StatusCode::FORBIDDEN);
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed = plain.post(h.hub.url("/dashboard/login")).form(&[("key", h.cm.as_str())]).send().await.unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed.headers()["location"], "/dashboard/changes");
    let signed = plain.get(h.hub.url(&format!("/dashboard/changes/{a}?key={}", h.cm))).send().await.unwrap();
    assert_eq!(signed.headers()["location"], format!("/dashboard/changes/{a}").as_str());
    // Without a session: the sign-in form.
    assert_eq!(plain.get(h.hub.url("/dashboard/changes")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    h.hub.finish().await;
}
