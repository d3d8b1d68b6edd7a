//! The `siam-hub` command as an operator runs it.

use crate::helpers::*;
use reqwest::StatusCode;
use std::process::Command;

pub(crate) fn siam_hub() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_siam-hub"));
    c.env_remove("SIAM_CONFIG").env("RUST_LOG", "error");
    c
}

#[tokio::test]
async fn keys_create_prints_a_key_that_the_api_accepts() {
    let hub = TestHub::spawn().await;
    let out = siam_hub().args(["keys", "create", "--role", "manager", "--label", "ops"]).env("SIAM_DATABASE_URL", &hub.settings.database_url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("siam_"));
    assert_eq!(hub.get_as("/api/v1/incidents", &key).await.status(), StatusCode::OK);
    assert_eq!(hub.get_as("/api/v1/incidents", "siam_forged_key").await.status(), StatusCode::UNAUTHORIZED);

    let out = siam_hub().args(["keys", "create", "--role", "supplier"]).env("SIAM_DATABASE_URL", &hub.settings.database_url).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: a supplier key needs --supplier"), "{err}");
    hub.finish().await;
}

#[test]
fn a_missing_database_is_named_in_one_line_with_how_to_start_it() {
    let out = siam_hub().arg("migrate").env("SIAM_DATABASE_URL", "postgres://postgres:secret@127.0.0.1:1/siam_hub").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("PostgreSQL is not reachable at postgres://postgres:***@127.0.0.1:1/siam_hub"), "{err}");
    assert!(err.contains("pg_ctlcluster"), "{err}");
    assert!(!err.contains("secret"), "the password must not be printed: {err}");
}

#[test]
fn a_bad_configuration_file_is_one_clear_line() {
    let dir = std::env::temp_dir().join(format!("siam-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hub.toml");
    std::fs::write(&file, "[[routing.rules]]\nservice = \"email\"\nsupplier = \"ghost\"\n").unwrap();
    let out = siam_hub().args(["--config", file.to_str().unwrap(), "migrate"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown supplier `ghost`"), "{err}");
    let out = siam_hub().args(["--config", "/nonexistent/hub.toml", "serve"]).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success() && err.lines().count() == 1 && err.contains("/nonexistent/hub.toml"), "{err}");
}

#[test]
fn map_applies_a_supplier_instances_own_states() {
    let dir = std::env::temp_dir().join(format!("siam-map-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("hub.toml");
    std::fs::write(
        &cfg,
        "[[suppliers]]\nid = \"acme-sn\"\nname = \"Acme\"\nsystem = \"servicenow\"\nbase_url = \"https://acme.service-now.com\"\n[suppliers.overrides]\nstates = { \"11\" = \"in_progress\" }\n",
    )
    .unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/adapters/servicenow/fixtures/raw_unknown_custom_state.native.json");
    let base = siam_hub().args(["map", "--system", "servicenow", fixture]).output().unwrap();
    let base: serde_json::Value = serde_json::from_slice(&base.stdout).unwrap();
    assert_eq!(base["status"], serde_json::Value::Null, "the base profile does not know state 11");

    let out = siam_hub().args(["--config", cfg.to_str().unwrap(), "map", "--system", "servicenow", "--supplier", "acme-sn", fixture]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "in_progress");
    assert!(doc["legs"][0]["unmapped"].get("state").is_none());
    assert_eq!(doc["legs"][0]["unmapped"]["impact"], base["legs"][0]["unmapped"]["impact"], "what the instance did not declare stays unmapped");

    let wrong = siam_hub().args(["--config", cfg.to_str().unwrap(), "map", "--system", "servicenow", "--supplier", "nobody", fixture]).output().unwrap();
    assert!(!wrong.status.success());
    assert_eq!(String::from_utf8_lossy(&wrong.stderr).lines().count(), 1);
}

/// Output piped into a reader that already went away (`| head -0`, a closed descriptor): the
/// command does its work and ends without a panic.
#[test]
fn a_closed_standard_output_is_no_panic() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/adapters/servicenow/fixtures/raw_unknown_custom_state.native.json");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = siam_hub().args(["map", "--system", "servicenow", fixture]).stdout(writer).stderr(std::process::Stdio::piped()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
}
