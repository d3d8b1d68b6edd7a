//! The browser test kit: headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromedriver`), the few page helpers the dashboard's and the console's tests need, and an
//! accessibility check with axe-core (pinned in `tests/browser`). Also the proof that the
//! dashboard's pages pass that check, signed in through the form as a manager would.

use crate::change_dashboard::two_colliding_changes;
use crate::changes::{change_hub_with, change_options};
use crate::helpers::*;
use crate::sla::{scenario_month, seed_scenario};
use fantoccini::elements::Element;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL: &str = "install them with `apt-get install -y chromium chromium-driver` (.ci/run does)";
const AXE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/node_modules/axe-core/axe.min.js");

/// A headless Chromium session behind a chromedriver of its own. Dropping it kills chromedriver
/// and the browser it started; [`Browser::close`] ends the session cleanly first.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port();
        // A process group of its own, so that dropping the kit also ends the browser chromedriver
        // started when a failing test never closed its session.
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `chromedriver` ({e}); {INSTALL}"));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !reqwest::get(format!("{url}/status")).await.is_ok_and(|r| r.status().is_success()) {
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("chromedriver exited at start ({status})");
            }
            assert!(Instant::now() < deadline, "chromedriver did not answer on {url} within 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(format!("siam-webdriver-{}", uuid::Uuid::new_v4()));
        let options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        let caps = serde_json::Map::from_iter([("goog:chromeOptions".to_string(), options)]);
        let client = ClientBuilder::native().capabilities(caps).connect(&url).await.unwrap_or_else(|e| panic!("chromedriver opened no session of {CHROMIUM} ({e}); {INSTALL}"));
        // The accessibility check of a long page takes seconds; no implicit waits, tests poll.
        let timeouts = TimeoutConfiguration::new(Some(Duration::from_secs(60)), Some(Duration::from_secs(30)), Some(Duration::ZERO));
        client.update_timeouts(timeouts).await.expect("the session takes timeouts");
        Browser { client: Some(client), driver, profile }
    }

    /// Ends the WebDriver session (the browser quits), then chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await.expect("the session ends");
        }
    }

    /// The raw WebDriver client, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    pub async fn goto(&self, url: &str) {
        self.client().goto(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    pub async fn current_url(&self) -> url::Url {
        self.client().current_url().await.expect("the current URL")
    }

    /// The first element matching `css`; panics naming the selector and the page.
    pub async fn find(&self, css: &str) -> Element {
        match self.client().find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("no `{css}` on {}: {e}", self.current_url().await),
        }
    }

    /// Replaces the value of the input or text area `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap_or_else(|e| panic!("cannot clear `{css}`: {e}"));
        field.send_keys(text).await.unwrap_or_else(|e| panic!("cannot type into `{css}`: {e}"));
    }

    /// Chooses the `<option>` whose value is `value` in the `<select>` `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap_or_else(|e| panic!("no option {value:?} in `{css}`: {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    /// The rendered text of `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap_or_else(|e| panic!("no text of `{css}`: {e}"))
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await.attr(name).await.unwrap_or_else(|e| panic!("no attribute {name} of `{css}`: {e}"))
    }

    /// Waits until `css` is on the page.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        self.poll(css, "", timeout, false).await
    }

    /// Waits until the text of `css` contains `needle`; returns that text.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        self.text_of(self.poll(css, needle, timeout, false).await).await
    }

    /// [`Browser::wait_for`] for a page that shows news only when loaded again.
    #[allow(dead_code, reason = "for pages that change while open, as the console's")]
    pub async fn wait_for_reloading(&self, css: &str, timeout: Duration) -> Element {
        self.poll(css, "", timeout, true).await
    }

    /// [`Browser::wait_for_text`] for a page that shows news only when loaded again.
    #[allow(dead_code, reason = "for pages that change while open, as the console's")]
    pub async fn wait_for_text_reloading(&self, css: &str, needle: &str, timeout: Duration) -> String {
        self.text_of(self.poll(css, needle, timeout, true).await).await
    }

    async fn text_of(&self, e: Element) -> String {
        e.text().await.expect("the element's text")
    }

    async fn poll(&self, css: &str, needle: &str, timeout: Duration, reload: bool) -> Element {
        let deadline = Instant::now() + timeout;
        let mut seen = None;
        loop {
            if let Ok(e) = self.client().find(Locator::Css(css)).await {
                match e.text().await {
                    Ok(t) if t.contains(needle) => return e,
                    Ok(t) => seen = Some(t),
                    Err(_) => {}
                }
            }
            if Instant::now() >= deadline {
                let url = self.current_url().await;
                match seen {
                    Some(t) => panic!("`{css}` on {url} never contained {needle:?} within {timeout:?}; it reads {t:?}"),
                    None => panic!("no `{css}` on {url} within {timeout:?}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(if reload { 250 } else { 50 })).await;
            if reload {
                let _ = self.client().refresh().await;
            }
        }
    }

    /// Writes a PNG of the window to `path` (creating its folder).
    pub async fn screenshot(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let png = self.client().screenshot().await.expect("a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// The accessibility check of the current page: one line per serious or critical axe-core
    /// violation (rule, what it asks, and each offending element with why), none when it passes.
    /// Scripts run by WebDriver are not subject to the page's Content-Security-Policy, so the
    /// hub's `default-src 'none'` pages need no exception for it.
    pub async fn axe(&self) -> Vec<String> {
        let inject = format!("if (window.axe) return true;\n{}\nreturn !!window.axe;", axe_source());
        let loaded = self.client().execute(&inject, vec![]).await.expect("axe-core is injected");
        assert_eq!(loaded, json!(true), "axe-core did not load into {}", self.current_url().await);
        let run = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] }).then(
                r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => ({ target: n.target.map(t => [].concat(t).join(' >>> ')).join(' '), why: n.failureSummary || '' })),
                }))),
                e => done({ error: String(e) }));
        "#;
        let out = self.client().execute_async(run, vec![]).await.expect("axe-core runs");
        let Ok(violations) = serde_json::from_value::<Vec<Violation>>(out.clone()) else { panic!("axe-core failed on {}: {out}", self.current_url().await) };
        violations
            .into_iter()
            .map(|v| {
                let nodes: Vec<String> = v.nodes.iter().map(|n| format!("`{}` ({})", n.target, n.why.lines().skip(1).map(str::trim).collect::<Vec<_>>().join("; "))).collect();
                format!("{} [{}]: {}: {}", v.id, v.impact, v.help, nodes.join("; "))
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            // SAFETY: a signal to the process group this kit made for chromedriver (its id is
            // chromedriver's, still unreaped because the child handle is alive).
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[derive(Deserialize)]
struct Violation {
    id: String,
    impact: String,
    help: String,
    nodes: Vec<ViolationNode>,
}

#[derive(Deserialize)]
struct ViolationNode {
    target: String,
    why: String,
}

/// axe-core's source, installed from `tests/browser`'s lock file the first time a test needs it
/// (so `cargo test` alone is enough on a machine with npm).
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        if !Path::new(AXE).exists() {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
            let installed = std::process::Command::new("npm").args(["ci", "--prefix", dir, "--no-audit", "--no-fund", "--silent"]).status();
            assert!(installed.as_ref().is_ok_and(|s| s.success()), "`npm ci --prefix tests/browser` failed: {installed:?}");
        }
        std::fs::read_to_string(AXE).unwrap_or_else(|e| panic!("cannot read {AXE} ({e}); run `npm ci --prefix tests/browser` (.ci/run does)"))
    })
}

#[tokio::test]
async fn the_dashboard_pages_pass_the_accessibility_check() {
    let mut options = change_options();
    options.extra_toml.push_str(SLA_TOML);
    let h = change_hub_with(options).await;
    let refs = seed_scenario(&h.hub).await;
    let (change, payroll_change) = two_colliding_changes(&h).await;
    h.hub.sla_settled().await;
    let shots = std::env::var("SIAM_SCREENSHOT_DIR").ok();
    let browser = Browser::start().await;
    let mut found = vec![];

    // Signed out: the sign-in form, filled and sent as a manager does (a wrong key first).
    browser.goto(&h.hub.url("/dashboard")).await;
    assert_eq!(browser.attr("#key", "type").await.as_deref(), Some("password"));
    browser.fill("#key", "siam_nope_nope").await;
    browser.click("form[action='/dashboard/login'] button[type=submit]").await;
    browser.wait_for_text("#login-error", "unknown or revoked", Duration::from_secs(10)).await;
    found.extend(browser.axe().await.into_iter().map(|v| format!("sign-in: {v}")));
    browser.fill("#key", &h.hub.keys.manager).await;
    browser.click("form[action='/dashboard/login'] button[type=submit]").await;
    browser.wait_for("#tickets-opened", Duration::from_secs(10)).await;
    assert_eq!(browser.current_url().await.path(), "/dashboard", "signed in, on the overview");

    let month = scenario_month().label;
    let pages = [
        ("overview", format!("/dashboard?month={month}"), "#compliance-chart"),
        ("timeline", format!("/dashboard/incidents/{}", refs["D"]), "#timeline-chart"),
        ("schedule", "/dashboard/changes".to_string(), "#schedule-chart"),
        ("change", format!("/dashboard/changes/{change}"), "#leg-chart"),
    ];
    for (name, path, landmark) in pages {
        browser.goto(&h.hub.url(&path)).await;
        browser.wait_for(landmark, Duration::from_secs(10)).await;
        if let Some(dir) = &shots {
            browser.screenshot(format!("{dir}/axe-{name}.png")).await;
        }
        found.extend(browser.axe().await.into_iter().map(|v| format!("{name}: {v}")));
    }
    assert_eq!(browser.text("#ref").await, change, "the change's page");

    // The schedule's filters, used with the keyboard-reachable form.
    browser.goto(&h.hub.url("/dashboard/changes")).await;
    browser.select("#service", "payroll").await;
    browser.click("#filters button[type=submit]").await;
    browser.wait_for("#change-table", Duration::from_secs(10)).await;
    assert!(browser.current_url().await.query_pairs().any(|(k, v)| k == "service" && v == "payroll"));
    let mut rows = vec![];
    for row in browser.client().find_all(Locator::Css("#change-table tr[data-ref]")).await.expect("the table's rows") {
        rows.extend(row.attr("data-ref").await.expect("a row's reference"));
    }
    assert_eq!(rows, [payroll_change], "only the change on payroll");
    found.extend(browser.axe().await.into_iter().map(|v| format!("filtered schedule: {v}")));
    assert!(found.is_empty(), "serious or critical accessibility violations:\n{}", found.join("\n"));

    // The check sees what it should, under the page's own Content-Security-Policy.
    browser
        .client()
        .execute("document.querySelector('main').insertAdjacentHTML('beforeend', '<p style=\"color:#ccc\">faint</p><input id=\"bare\">')", vec![])
        .await
        .expect("the page takes the additions");
    let flagged = browser.axe().await.join("\n");
    eprintln!("FLAGGED:\n{flagged}");
    assert!(flagged.contains("color-contrast [serious]") && flagged.contains("label [critical]") && flagged.contains("`#bare`"), "{flagged}");
    browser.close().await;
    h.hub.finish().await;
}
