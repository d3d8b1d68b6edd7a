//! Golden fixtures of the Jira mapping (`adapters/jira/fixtures/`).
//!
//! * `<case>.native.json` -> `<case>.canonical.json`: what `siam-hub map --system jira` prints
//!   for REST v3 (ADF) and v2 (wiki) issues, webhook bodies (issue updated with a changelog,
//!   issue commented, comment created internal and public), a JSM `CustomerRequest`, unknown
//!   statuses, a status id that means something else on another site, `null` vs missing fields
//!   and non-UTC offsets (-0700/-0800, +0100, +0700).
//! * `<case>.canonical-in.json` -> `<case>.native-out.json`: what `--reverse` prints (the create
//!   body and the transition the hub would make).
//!
//! The expected documents were written from `reference/suppliers/jira.md` and the profile, not
//! copied from the program's output.

use crate::fixtures::{binary_fixture_failures, cases, check_native_fixtures, check_reverse_fixtures, mismatch, read_json, read_text, run_map};
use serde_json::{json, Value};
use siam_hub::cli::map_payload;
use std::process::Command;

const SYSTEM: &str = "jira";
const MIN_NATIVE_FIXTURES: usize = 11;
const MIN_REVERSE_FIXTURES: usize = 5;

#[test]
fn jira_native_fixtures_map_to_their_canonical_documents() {
    check_native_fixtures(SYSTEM, MIN_NATIVE_FIXTURES, |_, text| map_payload(SYSTEM, false, text));
}

#[test]
fn jira_canonical_fixtures_are_valid_and_map_to_their_native_bodies() {
    check_reverse_fixtures(SYSTEM, MIN_REVERSE_FIXTURES, |_, text| map_payload(SYSTEM, true, text));
}

/// What Jira can hold of the synced fields: a one-line summary, the hold reasons the site has
/// statuses for (awaiting the caller; every other reason is `Pending`), the resolutions it has
/// names for. Category and CI have no Jira field and stay at the hub.
fn holdable(doc: &Value) -> Value {
    let hold = match doc["hold_reason"].as_str() {
        None => Value::Null,
        Some("awaiting_caller") => json!("awaiting_caller"),
        Some(_) => json!("other"),
    };
    let code = match doc["status"].as_str() {
        Some("resolved" | "closed") => match doc["resolution"]["code"].as_str() {
            Some(c @ ("fixed" | "not_fixed" | "not_reproducible" | "duplicate")) => json!(c),
            Some(_) => json!("fixed"),
            None => Value::Null,
        },
        _ => Value::Null,
    };
    json!({
        "title": doc["title"].as_str().map(|t| t.split('\n').collect::<Vec<_>>().join(" ")),
        "description": doc["description"],
        "status": doc["status"],
        "hold_reason": hold,
        "impact": doc["impact"],
        "urgency": doc["urgency"],
        "resolution_code": code,
    })
}

fn synced(doc: &Value) -> Value {
    json!({
        "title": doc["title"],
        "description": doc["description"],
        "status": doc["status"],
        "hold_reason": doc["hold_reason"],
        "impact": doc["impact"],
        "urgency": doc["urgency"],
        "resolution_code": doc["resolution"]["code"],
    })
}

/// The issue Jira would hold after the create and the transition, read back through REST v3.
fn issue_from(native: &Value, n: usize) -> Value {
    let mut fields = native["fields"].as_object().cloned().expect("fields");
    let to = native.pointer("/transition/to").cloned().unwrap_or(json!({"id": "10010", "statusCategory": "new"}));
    fields.insert("status".into(), json!({"id": to["id"], "name": "(any name)", "statusCategory": {"key": to["statusCategory"]}}));
    fields.insert("resolution".into(), native.pointer("/transition/fields/resolution").cloned().unwrap_or(Value::Null));
    fields.entry("description").or_insert(Value::Null);
    fields.insert("created".into(), json!("2024-09-02T10:30:00.000+0300"));
    fields.insert("updated".into(), json!("2024-09-02T10:31:00.000+0300"));
    json!({"id": format!("{}", 30_000 + n), "key": format!("OPS-{}", 900 + n), "fields": fields})
}

#[test]
fn jira_round_trip_keeps_what_jira_can_hold() {
    let inputs = cases(SYSTEM, ".canonical-in.json");
    assert!(inputs.len() >= MIN_REVERSE_FIXTURES);
    let mut failures = Vec::new();
    for (n, (case, path)) in inputs.iter().enumerate() {
        let canonical = read_json(path);
        let native = map_payload(SYSTEM, true, &read_text(path)).unwrap_or_else(|e| panic!("{case}: {e}"));
        let back = map_payload(SYSTEM, false, &issue_from(&native, n).to_string()).unwrap_or_else(|e| panic!("{case}: {e}"));
        failures.extend(mismatch(case, "synced fields after canonical -> native -> canonical", &holdable(&canonical), &synced(&back)));
        if back["correlation_ref"] != canonical["ref"] {
            failures.push(format!("{case}: the hub reference did not survive: {}", back["correlation_ref"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn jira_binary_maps_both_directions() {
    let failures = binary_fixture_failures(SYSTEM, |_, args| run_map(&[&["--system", SYSTEM], args].concat()));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn jira_binary_refuses_what_is_not_a_jira_issue_in_one_line() {
    let path = std::env::temp_dir().join(format!("siam-hub-jira-not-an-issue-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"webhookEvent": "jira:issue_deleted", "issue": {"id": "1", "fields": {}}}"#).expect("temp file");
    let out = run_map(&["--system", SYSTEM, path.to_str().expect("UTF-8 path")]);
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error:") && stderr.contains("issue_deleted"), "{stderr}");
    let unknown = Command::new(env!("CARGO_BIN_EXE_siam-hub")).args(["map", "--system", "remedyish", "-"]).output().expect("runs");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("jira"), "the possible values come from adapters::SYSTEMS");
}
