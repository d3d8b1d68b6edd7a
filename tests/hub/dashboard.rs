//! The managers' dashboard in a real headless browser (Debian's `chromium`): the seeded figures
//! render, every link in it opens a working page, suppliers see only their own contracts, and
//! the browser sign-in (cookie and `?key=`) behaves.

use crate::helpers::*;
use crate::sla::{scenario_month, seed_scenario};
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use siam_hub::store::seed::Story;
use std::process::{Command, Stdio};

const CHROMIUM: &str = "chromium";

/// Runs headless Chromium with a fresh profile, offline-safe flags and `args`; returns stdout.
pub(crate) async fn chromium(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let profile = std::env::temp_dir().join(format!("siam-chromium-{}", uuid::Uuid::new_v4()));
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{CHROMIUM}` ({e}); install it with `apt-get install -y chromium` (.ci/run does)"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not finish within 60 s: {args:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        let _ = std::fs::remove_dir_all(&profile);
        out
    })
    .await
    .unwrap()
}

/// The DOM the browser built for `url`.
pub(crate) async fn dom(url: &str) -> String {
    chromium(vec!["--dump-dom".into(), url.into()]).await
}

/// The text of the first element with `id`, tags stripped.
pub(crate) fn text_of(dom: &str, id: &str) -> String {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no element #{id} in the page"));
    let open_end = start + dom[start..].find('>').unwrap() + 1;
    let mut depth = 0;
    let mut out = String::new();
    let mut in_tag = false;
    for (i, c) in dom[open_end..].char_indices() {
        if c == '<' {
            in_tag = true;
            if dom[open_end + i..].starts_with("</") {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            } else {
                depth += 1;
            }
        } else if c == '>' {
            in_tag = false;
            if dom[open_end..open_end + i].ends_with('/') {
                depth -= 1;
            }
        } else if !in_tag {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// The cells (`data-field` -> text) of the table row marked `data-contract="<contract>"`.
fn contract_cell(dom: &str, contract: &str, field: &str) -> String {
    let row_start = dom.find(&format!("<tr data-contract=\"{contract}\"")).unwrap_or_else(|| panic!("no row for {contract}"));
    let row = &dom[row_start..row_start + dom[row_start..].find("</tr>").unwrap()];
    let cell = row.find(&format!("data-field=\"{field}\"")).unwrap_or_else(|| panic!("no {field} in the row of {contract}"));
    let from = cell + row[cell..].find('>').unwrap() + 1;
    row[from..from + row[from..].find('<').unwrap()].to_string()
}

fn links(dom: &str) -> Vec<String> {
    let mut out: Vec<String> = dom.split("href=\"").skip(1).filter_map(|s| s.split('"').next()).filter(|h| h.starts_with("/dashboard/incidents/")).map(str::to_string).collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn the_dashboard_shows_the_seeded_figures_in_a_real_browser_and_its_links_work() {
    let hub = TestHub::spawn_with(Options::sla()).await;
    let refs = seed_scenario(&hub).await;
    // Open now: one priority 2 ticket 8 minutes into its 10-minute response (at risk), one
    // priority 3 ticket 5 minutes into 30 (not at risk).
    let now = Utc::now();
    let mut risky = Story::raised("Payments terminal offline", now - Duration::minutes(8), 2, SUPPLIER);
    risky.with_leg(SUPPLIER);
    let mut calm = Story::raised("Printer queue slow", now - Duration::minutes(5), 3, SUPPLIER);
    calm.with_leg(SUPPLIER);
    let live = hub.seed(vec![risky, calm]).await;
    hub.sla_settled().await;
    let month = scenario_month().label;
    let key = &hub.keys.manager;

    let page = dom(&hub.url(&format!("/dashboard?month={month}&key={key}"))).await;
    if let Ok(dir) = std::env::var("SIAM_SCREENSHOT_DIR") {
        let file = format!("{dir}/dashboard.png");
        chromium(vec![format!("--screenshot={file}"), "--window-size=1280,2200".into(), hub.url(&format!("/dashboard?month={month}&key={key}"))]).await;
        let file = format!("{dir}/timeline.png");
        chromium(vec![format!("--screenshot={file}"), "--window-size=1280,1600".into(), hub.url(&format!("/dashboard/incidents/{}?key={key}", refs["D"]))]).await;
    }
    assert!(!page.contains(key.as_str()), "the key must not stay in the page");
    assert_eq!(text_of(&page, "month"), month);
    assert_eq!(text_of(&page, "tickets-opened"), "5", "the end-to-end contract's tickets");
    assert_eq!(text_of(&page, "response-met"), "60.0%");
    assert_eq!(text_of(&page, "resolution-met"), "60.0%");
    assert_eq!(text_of(&page, "breach-count"), "9", "4 network, 1 hosting and 4 end-to-end breaches");
    assert_eq!(text_of(&page, "at-risk-count"), "2", "E, past its targets, and the ticket 8 minutes into 10");
    assert_eq!(contract_cell(&page, "network-ola", "tickets"), "5");
    assert_eq!(contract_cell(&page, "network-ola", "response-met"), "60.0%");
    assert_eq!(contract_cell(&page, "network-ola", "resolution-met"), "60.0%");
    assert_eq!(contract_cell(&page, "hosting-ola", "response-met"), "0.0%");
    assert_eq!(contract_cell(&page, "hosting-ola", "resolution-met"), "100.0%");
    assert_eq!(contract_cell(&page, "customer-sla", "tickets"), "5");
    assert!(page.contains("id=\"compliance-chart\"") && page.contains("id=\"trend-chart\""), "both charts render");
    let breach_table = text_of(&page, "breach-table");
    for r in ["B", "C", "D", "E"] {
        assert!(breach_table.contains(&refs[r]), "{r} breached: {breach_table}");
    }
    assert!(!breach_table.contains(&refs["A"]) && !breach_table.contains(&refs["F"]));
    let at_risk = text_of(&page, "at-risk-table");
    assert!(at_risk.contains(&live[0]), "the priority 2 ticket at 80% is at risk: {at_risk}");
    assert!(!at_risk.contains(&live[1]), "the priority 3 ticket at 17% is not");
    assert!(at_risk.contains(&refs["E"]), "E is open and past its targets");

    // Every ticket link opens its timeline in the browser.
    let targets = links(&page);
    assert!(targets.len() >= 5, "{targets:?}");
    for href in &targets {
        let r = href.rsplit('/').next().unwrap();
        let t = dom(&hub.url(&format!("{href}?key={key}"))).await;
        assert_eq!(text_of(&t, "ref"), r, "{href}");
        assert!(t.contains("id=\"timeline-chart\"") && t.contains("id=\"clock-table\"") && t.contains("id=\"event-table\""), "{href}");
    }
    let b = dom(&hub.url(&format!("/dashboard/incidents/{}?key={key}", refs["B"]))).await;
    assert!(text_of(&b, "pause-table").contains("awaiting_caller"), "B's pause and its reason");
    let d = dom(&hub.url(&format!("/dashboard/incidents/{}?key={key}", refs["D"]))).await;
    let holdings = text_of(&d, "holding-table");
    assert_eq!(holdings.matches(SUPPLIER).count(), 2, "D went to the network supplier twice: {holdings}");
    assert!(holdings.contains(OTHER_SUPPLIER));
    let prev = dom(&hub.url(&format!("/dashboard?month={}&key={key}", scenario_month().months_before(1).unwrap().label))).await;
    assert_eq!(text_of(&prev, "tickets-opened"), "0");

    // A supplier's key shows its own contract only, and its own tickets' timelines.
    let mine = dom(&hub.url(&format!("/dashboard?month={month}&key={}", hub.keys.supplier))).await;
    assert_eq!(contract_cell(&mine, "network-ola", "tickets"), "5");
    assert!(!mine.contains("hosting-ola") && !mine.contains("customer-sla"), "no other contract is shown to a supplier");
    let d_as_supplier = dom(&hub.url(&format!("/dashboard/incidents/{}?key={}", refs["D"], hub.keys.supplier))).await;
    assert!(!text_of(&d_as_supplier, "clock-table").contains("hosting-ola"));

    // Without a key: the sign-in form; with a wrong one: why not.
    let login = dom(&hub.url("/dashboard")).await;
    assert!(login.contains("name=\"key\"") && login.contains("action=\"/dashboard/login\""));
    let wrong = dom(&hub.url("/dashboard?key=siam_nope_nope")).await;
    assert!(text_of(&wrong, "login-error").contains("unknown or revoked"));
    let desk = dom(&hub.url(&format!("/dashboard?key={}", hub.keys.service_desk))).await;
    assert!(text_of(&desk, "login-error").contains("manager, admin or supplier"));
    hub.finish().await;
}

#[tokio::test]
async fn the_browser_session_is_an_http_only_strict_cookie_and_the_key_leaves_the_url() {
    let hub = TestHub::spawn_with(Options::sla()).await;
    let refs = seed_scenario(&hub).await;
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = plain.get(hub.url(&format!("/dashboard?month=2026-11&key={}", hub.keys.manager))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/dashboard?month=2026-11");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    let page = plain.get(hub.url("/dashboard?month=2026-11")).header("cookie", &session).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert!(page.text().await.unwrap().contains("SLA dashboard"));

    // The form signs in the same way and only sends the browser back into the dashboard.
    let resp = plain.post(hub.url("/dashboard/login")).form(&[("key", hub.keys.manager.as_str()), ("next", "https://elsewhere.example/")]).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/dashboard");
    let resp = plain.post(hub.url("/dashboard/login")).form(&[("key", "siam_wrong")]).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = plain.post(hub.url("/dashboard/logout")).send().await.unwrap();
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));

    // A supplier's session cannot open another supplier's ticket; nobody gets a bad month.
    let resp = plain.get(hub.url(&format!("/dashboard/incidents/{}?key={}", refs["A"], hub.keys.supplier))).send().await.unwrap();
    let supplier_session = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let mut s = Story::raised("integrator only", Utc::now() - Duration::minutes(1), 3, "integrator");
    s.after_secs(1);
    let internal = hub.seed(vec![s]).await.remove(0);
    let resp = plain.get(hub.url(&format!("/dashboard/incidents/{internal}"))).header("cookie", &supplier_session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = plain.get(hub.url(&format!("/dashboard/incidents/{}", refs["A"]))).header("cookie", &supplier_session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = plain.get(hub.url("/dashboard?month=2026-13")).header("cookie", &session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = plain.get(hub.url("/dashboard/incidents/not-a-ref")).header("cookie", &session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    hub.finish().await;
}

/// The value of the session cookie a sign-in answer sets (`name=value`).
fn session_of(resp: &reqwest::Response) -> String {
    resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn the_session_cookie_holds_no_key_and_ends_on_sign_out_expiry_and_key_revocation() {
    let hub = TestHub::spawn().await;
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let key = hub.key("manager", None).await;
    let sign_in = || plain.post(hub.url("/dashboard/login")).form(&[("key", key.as_str())]).send();
    let opens = |session: String| {
        let plain = plain.clone();
        let url = hub.url("/dashboard");
        async move { plain.get(url).header("cookie", session).send().await.unwrap().status() }
    };

    // The cookie carries a session id of its own; the key itself opens nothing as a cookie.
    let resp = sign_in().await.unwrap();
    let session = session_of(&resp);
    assert!(!session.contains(&key) && !session.contains(key.split('_').nth(2).unwrap()), "the key travels in the cookie: {session}");
    assert_eq!(opens(session.clone()).await, StatusCode::OK);
    assert_eq!(opens(format!("siam_dashboard={key}")).await, StatusCode::UNAUTHORIZED);
    assert!(!resp.headers()["set-cookie"].to_str().unwrap().contains("Secure"), "plain http, no public https URL");

    // Signing out ends the session on the hub's side: the same cookie replayed opens nothing.
    let out = plain.post(hub.url("/dashboard/logout")).header("cookie", &session).send().await.unwrap();
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(opens(session).await, StatusCode::UNAUTHORIZED);

    // The hub enforces the expiry itself, whatever the browser keeps.
    let session = session_of(&sign_in().await.unwrap());
    hub.app().store.run(|c| Ok(diesel::RunQueryDsl::execute(diesel::sql_query("UPDATE browser_sessions SET expires_at = now() - interval '1 second'"), c)?)).await.unwrap();
    assert_eq!(opens(session).await, StatusCode::UNAUTHORIZED);

    // Revoking the key (as an operator does, with the CLI) ends every session opened with it.
    let session = session_of(&sign_in().await.unwrap());
    assert_eq!(opens(session.clone()).await, StatusCode::OK);
    let prefix = key.split('_').nth(1).unwrap();
    let revoked = crate::cli::siam_hub().args(["keys", "revoke", prefix]).env("SIAM_DATABASE_URL", &hub.settings.database_url).output().unwrap();
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    assert_eq!(opens(session).await, StatusCode::UNAUTHORIZED);
    assert_eq!(hub.get_as("/api/v1/incidents", &key).await.status(), StatusCode::UNAUTHORIZED, "the key itself is dead too");
    let again = crate::cli::siam_hub().args(["keys", "revoke", prefix]).env("SIAM_DATABASE_URL", &hub.settings.database_url).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).starts_with("error: no live key"));

    // Over TLS (here: a proxy saying so) the cookie is Secure.
    let other = hub.key("manager", None).await;
    let resp = plain.post(hub.url("/dashboard/login")).header("x-forwarded-proto", "https").form(&[("key", other.as_str())]).send().await.unwrap();
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("Secure"));
    hub.finish().await;
}
