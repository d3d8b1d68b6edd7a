//! First contact with a supplier: the check (shared steps, an unreachable host, a wrong
//! password), the discovery, the suppliers' health through the admin API and on the dashboard
//! in a real headless browser, and the `siam-hub supplier` and `keys create` commands.

use crate::browser::Browser;
use crate::cli::siam_hub;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;
use siam_hub::config::{SecretRef, Settings, SupplierSettings};
use std::time::Duration;

/// A ServiceNow supplier at `base_url` calling with `password`; no sweeps of its own.
fn servicenow_supplier(id: &str, base_url: &str, password: &str) -> SupplierSettings {
    let toml = format!("[[suppliers]]\nid = \"{id}\"\nname = \"Supplier {id}\"\nsystem = \"servicenow\"\nbase_url = \"{base_url}\"\nusername = \"{SIM_USER}\"\npoll_interval_secs = 0\ntimeout_secs = 2\nmax_attempts = 1\n");
    let mut s = Settings::from_toml(&toml).expect("a valid supplier").suppliers.remove(0);
    s.password = Some(SecretRef::Value(secrecy::SecretString::from(password.to_string())));
    s
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn step<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    report["steps"].as_array()?.iter().find(|s| s["name"] == name)
}

#[tokio::test]
async fn the_check_names_what_works_an_unreachable_host_and_a_wrong_password() {
    let gone = format!("http://127.0.0.1:{}", closed_port());
    // The hub's ServiceNow simulator, a supplier whose host is down and one that calls the
    // simulator with a wrong password (added once the simulator's address is known).
    let mut hub = TestHub::spawn_with(Options::default()).await;
    let sim_url = hub.sim.base_url().unwrap();
    hub.stop().await;
    hub.settings.suppliers.push(servicenow_supplier("sn-gone", &gone, SIM_PASSWORD));
    hub.settings.suppliers.push(servicenow_supplier("sn-wrong", &sim_url, "not-the-password"));
    hub.restart().await;
    let admin = hub.keys.admin.clone();

    // The simulator, with the hub's credentials: every step ok, the shared ones first.
    let resp = hub.get_as(&format!("/api/v1/admin/suppliers/{SUPPLIER}/check"), &admin).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let report: Value = resp.json().await.unwrap();
    let names: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(&names[..2], ["reachable", "clock skew"], "{report}");
    for s in report["steps"].as_array().unwrap() {
        assert!(s["ok"].is_boolean() && s["detail"].is_string(), "every step says ok and what was found: {s}");
        assert!(s["ok"] == true || s["fix"].is_string(), "a failed step says what to change: {s}");
    }
    assert!(step(&report, "reachable").unwrap()["ok"] == true && step(&report, "clock skew").unwrap()["ok"] == true, "{report}");
    assert_eq!(report["ok"], true, "{report}");

    // Nothing listens: named, with a fix, and the system's steps skipped.
    let report: Value = hub.get_as("/api/v1/admin/suppliers/sn-gone/check", &admin).await.json().await.unwrap();
    assert_eq!(report["ok"], false, "{report}");
    let reachable = step(&report, "reachable").unwrap();
    assert_eq!(reachable["ok"], false);
    assert!(reachable["detail"].as_str().unwrap().contains("refused"), "{report}");
    assert!(reachable["fix"].as_str().unwrap().contains("port"), "{report}");
    assert!(step(&report, "clock skew").is_none(), "nothing to measure the skew by: {report}");
    assert!(step(&report, "system checks").unwrap()["detail"].as_str().unwrap().starts_with("skipped"), "{report}");

    // A wrong password: reachable, but the check fails, naming the credentials.
    let report: Value = hub.get_as("/api/v1/admin/suppliers/sn-wrong/check", &admin).await.json().await.unwrap();
    assert_eq!(step(&report, "reachable").unwrap()["ok"], true, "{report}");
    assert_eq!(report["ok"], false, "a wrong password fails the check: {report}");
    let failed: Vec<&Value> = report["steps"].as_array().unwrap().iter().filter(|s| s["ok"] == false).collect();
    if let Some(credentials) = step(&report, "credentials") {
        assert_eq!(credentials["ok"], false, "{report}");
    } else {
        assert!(failed.iter().any(|s| s.to_string().to_lowercase().contains("credential") || s.to_string().contains("401")), "{report}");
    }

    // The discovery: the simulator's vocabulary; an unreachable supplier is a 502 saying why.
    let resp = hub.get_as(&format!("/api/v1/admin/suppliers/{SUPPLIER}/discovery"), &admin).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let found: Value = resp.json().await.unwrap();
    assert!(found["statuses"].is_array() && found["priorities"].is_array() && found["fields"].is_array() && found["toml"].is_string(), "{found}");
    let resp = hub.get_as("/api/v1/admin/suppliers/sn-gone/discovery", &admin).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let problem: Value = resp.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("sn-gone cannot be reached") && problem["detail"].as_str().unwrap().contains("refused"), "{problem}");

    // Unknown suppliers and the hub's own queue.
    let resp = hub.get_as("/api/v1/admin/suppliers/nobody/check", &admin).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = hub.get_as("/api/v1/admin/suppliers/integrator/check", &admin).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = resp.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("nothing") || problem["detail"].as_str().unwrap().contains("no supplier system"), "{problem}");
    assert_eq!(hub.get_as("/api/v1/admin/suppliers/integrator/discovery", &admin).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    hub.finish().await;
}

#[tokio::test]
async fn the_health_of_each_supplier_follows_its_tickets() {
    let hub = TestHub::spawn().await;
    let r = hub.raise(&network_incident("Health check")).await["ref"].as_str().unwrap().to_string();
    hub.wait_incident(&r, "the leg", |d| leg(d, SUPPLIER, "open").is_some()).await;
    let resp = hub.get_as("/api/v1/admin/suppliers", &hub.keys.admin).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    let items = doc["items"].as_array().unwrap();
    let sn = items.iter().find(|i| i["id"] == SUPPLIER).unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(sn["system"], "servicenow");
    assert_eq!(sn["name"], "Network supplier");
    assert_eq!(sn["base_url"], hub.sim.base_url().unwrap().as_str());
    let h = &sn["health"];
    assert!(h["last_successful_call"].is_string(), "the ticket was created: {h}");
    assert!(h["dispatch_queue_depth"].is_u64(), "the broker was asked: {h}");
    assert!(h["retries_last_hour"].is_u64() && h["dead_letters_last_hour"] == 0 && h["unmapped_values_waiting"] == 0, "{h}");
    assert_eq!(h["calls"]["state"], "ok", "{h}");
    for key in ["last_webhook", "last_sweep"] {
        assert!(h.get(key).is_some(), "{key} in {h}");
    }
    assert!(h["last_sweep"].get("watermark").is_some(), "{h}");
    // A sweep now shows in the figures.
    hub.reconcile().await;
    let doc: Value = hub.get_as("/api/v1/admin/suppliers", &hub.keys.admin).await.json().await.unwrap();
    let sn = doc["items"].as_array().unwrap().iter().find(|i| i["id"] == SUPPLIER).unwrap().clone();
    assert!(sn["health"]["last_sweep"]["at"].is_string() && sn["health"]["last_sweep"]["error"].is_null(), "{sn}");
    assert!(sn["health"]["last_sweep"]["watermark"].is_string(), "{sn}");
    let queue = doc["items"].as_array().unwrap().iter().find(|i| i["system"] == "queue");
    if let Some(q) = queue {
        assert!(q["base_url"].is_null() && q["health"]["dispatch_queue_depth"].is_null(), "{q}");
    }
    hub.finish().await;
}

#[tokio::test]
async fn the_suppliers_page_checks_a_supplier_in_a_real_browser() {
    let hub = TestHub::spawn().await;
    let r = hub.raise(&network_incident("Seen on the suppliers page")).await["ref"].as_str().unwrap().to_string();
    hub.wait_incident(&r, "the leg", |d| leg(d, SUPPLIER, "open").is_some()).await;
    let browser = Browser::start().await;
    let mut found = Vec::new();
    browser.goto(&hub.url("/dashboard/suppliers")).await;
    browser.fill("#key", &hub.keys.admin).await;
    browser.click("form[action='/dashboard/login'] button[type=submit]").await;
    browser.wait_for("#supplier-table", Duration::from_secs(10)).await;
    assert_eq!(browser.current_url().await.path(), "/dashboard/suppliers");
    let row = browser.text(&format!("tr[data-supplier='{SUPPLIER}']")).await;
    assert!(row.contains("Network supplier") && row.contains("servicenow"), "{row}");
    assert_ne!(browser.text(&format!("tr[data-supplier='{SUPPLIER}'] td[data-field='last_successful_call']")).await, "–");
    found.extend(browser.axe().await.into_iter().map(|v| format!("suppliers: {v}")));

    browser.click(&format!("tr[data-supplier='{SUPPLIER}'] form button[type=submit]")).await;
    browser.wait_for("#check-steps", Duration::from_secs(20)).await;
    assert_eq!(browser.current_url().await.path(), format!("/dashboard/suppliers/{SUPPLIER}/check"));
    let steps = browser.text("#check-steps").await;
    assert!(steps.contains("reachable") && steps.contains("clock skew"), "{steps}");
    assert!(browser.text("#check-result").await.starts_with("Ok"), "{}", browser.text("#check").await);
    found.extend(browser.axe().await.into_iter().map(|v| format!("check: {v}")));
    browser.close().await;
    assert!(found.is_empty(), "accessibility violations:\n{}", found.join("\n"));

    // Other dashboard keys get its 403 page; a post from another site is refused.
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed = plain.post(hub.url("/dashboard/login")).form(&[("key", hub.keys.manager.as_str())]).send().await.unwrap();
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = plain.get(hub.url("/dashboard/suppliers")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().await.unwrap().contains("needs an admin key"));
    let signed = plain.post(hub.url("/dashboard/login")).form(&[("key", hub.keys.admin.as_str())]).send().await.unwrap();
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let forged = plain.post(hub.url(&format!("/dashboard/suppliers/{SUPPLIER}/check"))).header("cookie", &cookie).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let unknown = plain.post(hub.url("/dashboard/suppliers/nobody/check")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    hub.finish().await;
}

#[tokio::test]
async fn keys_for_a_supplier_the_database_knows_need_no_configuration_file() {
    let hub = TestHub::spawn().await;
    let out = siam_hub().args(["keys", "create", "--role", "supplier", "--supplier", SUPPLIER]).env("SIAM_DATABASE_URL", &hub.settings.database_url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(hub.get_as("/api/v1/incidents", &key).await.status(), StatusCode::OK);

    let out = siam_hub().args(["keys", "create", "--role", "supplier", "--supplier", "ghost"]).env("SIAM_DATABASE_URL", &hub.settings.database_url).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("supplier `ghost` is unknown"), "{err}");
    hub.finish().await;
}

#[tokio::test]
async fn supplier_check_and_discover_on_the_command_line() {
    let hub = TestHub::spawn().await;
    let sim_url = hub.sim.base_url().unwrap();
    let dir = std::env::temp_dir().join(format!("siam-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("hub.toml");
    let gone = format!("http://127.0.0.1:{}", closed_port());
    std::fs::write(
        &cfg,
        format!(
            "[[suppliers]]\nid = \"sn-cli\"\nname = \"Network\"\nsystem = \"servicenow\"\nbase_url = \"{sim_url}\"\nusername = \"{SIM_USER}\"\npassword = {{ env = \"SIAM_TEST_SN_PASSWORD\" }}\n\n[[suppliers]]\nid = \"sn-gone\"\nname = \"Gone\"\nsystem = \"servicenow\"\nbase_url = \"{gone}\"\nusername = \"{SIM_USER}\"\npassword = {{ env = \"SIAM_TEST_SN_PASSWORD\" }}\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| siam_hub().arg("--config").arg(&cfg).args(args).env("SIAM_TEST_SN_PASSWORD", SIM_PASSWORD).output().unwrap();

    let out = run(&["supplier", "check", "sn-cli"]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{table}{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("reachable") && table.contains("clock skew") && table.contains("result: ok"), "{table}");
    let out = run(&["supplier", "check", "sn-cli", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");

    let out = run(&["supplier", "check", "sn-gone"]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(table.contains("FAILED") && table.contains("refused") && table.contains("fix:"), "{table}");

    let out = run(&["supplier", "discover", "sn-cli", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(found["statuses"].is_array() && found["toml"].is_string(), "{found}");
    let out = run(&["supplier", "discover", "sn-gone"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be reached"));

    // Usage and configuration errors: status 2, one line.
    for (args, needle) in [(vec!["supplier", "check", "nobody"], "not in the configuration"), (vec!["supplier", "check", "integrator"], "own queue")] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.lines().count() == 1 && err.contains(needle), "{args:?}: {err}");
    }
    let out = siam_hub().arg("--config").arg(&cfg).args(["supplier", "check", "sn-cli"]).env_remove("SIAM_TEST_SN_PASSWORD").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.lines().count() == 1 && err.contains("SIAM_TEST_SN_PASSWORD"), "{err}");

    // A closed standard output is no panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = siam_hub().arg("--config").arg(&cfg).args(["supplier", "check", "sn-cli"]).env("SIAM_TEST_SN_PASSWORD", SIM_PASSWORD).stdout(writer).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert_eq!(out.status.code(), Some(0));
    hub.finish().await;
}

#[test]
fn map_translates_a_servicenow_record_without_sys_id_with_a_warning() {
    let dir = std::env::temp_dir().join(format!("siam-map-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("no-sys-id.json");
    // Read with `sysparm_fields=number,state,short_description`: no sys_id.
    std::fs::write(&file, r#"{"result": {"number": "INC0010001", "state": "2", "short_description": "Printer on fire"}}"#).unwrap();
    let out = siam_hub().args(["map", "--system", "servicenow", file.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["legs"][0]["native_id"], Value::Null);
    assert_eq!(doc["title"], "Printer on fire");
    assert!(err.starts_with("warning:") && err.contains("sys_id") && err.lines().count() == 1, "{err}");
}
