//! Golden fixtures of the supplier mappings (`adapters/servicenow/fixtures/`).
//!
//! * `<case>.native.json` -> `<case>.canonical.json`: what `siam-hub map --system servicenow`
//!   prints for a native ServiceNow payload (raw, display_value=true/all, webhook, envelope).
//! * `<case>.canonical-in.json` -> `<case>.native-out.json`: what `--reverse` prints for a full
//!   canonical incident (which must itself be valid against `schemas/incident.v1.json`).
//!
//! The expected documents were written from the ServiceNow reference and the mapping profile,
//! not copied from the program's output.

use crate::fixtures::{binary_fixture_failures, cases, check_native_fixtures, check_reverse_fixtures, mismatch, read_json, read_text, run_map};
use serde_json::{json, Value};
use siam_hub::cli::map_payload;

const SYSTEM: &str = "servicenow";
const MIN_NATIVE_FIXTURES: usize = 8;
const MIN_REVERSE_FIXTURES: usize = 2;

#[test]
fn golden_native_fixtures_map_to_their_canonical_documents() {
    check_native_fixtures(SYSTEM, MIN_NATIVE_FIXTURES, |_, text| map_payload(SYSTEM, false, text));
}

#[test]
fn golden_canonical_fixtures_are_valid_and_map_to_their_native_bodies() {
    check_reverse_fixtures(SYSTEM, MIN_REVERSE_FIXTURES, |_, text| map_payload(SYSTEM, true, text));
}

/// The synced canonical fields a canonical -> native -> canonical trip must keep.
fn synced_view(doc: &Value) -> Value {
    json!({
        "title": doc["title"],
        "description": doc["description"],
        "status": doc["status"],
        "hold_reason": doc["hold_reason"],
        "impact": doc["impact"],
        "urgency": doc["urgency"],
        "category": doc["category"],
        "ci": doc["ci"],
        "resolution_code": doc["resolution"]["code"],
    })
}

#[test]
fn golden_round_trip_keeps_the_synced_fields() {
    let inputs = cases(SYSTEM, ".canonical-in.json");
    assert!(inputs.len() >= MIN_REVERSE_FIXTURES, "expected at least {MIN_REVERSE_FIXTURES} *.canonical-in.json fixtures, found {}", inputs.len());
    let mut failures = Vec::new();
    for (i, (case, path)) in inputs.iter().enumerate() {
        let canonical = read_json(path);
        let native = map_payload(SYSTEM, true, &read_text(path)).unwrap_or_else(|e| panic!("{case}: reverse mapping failed: {e}"));
        // What the instance would hand back in raw mode: the body plus the keys it assigns.
        let mut record = native.as_object().cloned().unwrap_or_else(|| panic!("{case}: the native body is not an object"));
        record.insert("sys_id".into(), json!(format!("{:032x}", 0x5eed_0000_u64 + i as u64)));
        record.insert("number".into(), json!(format!("INC{:07}", 20_000 + i)));
        let back = map_payload(SYSTEM, false, &Value::Object(record).to_string()).unwrap_or_else(|e| panic!("{case}: forward mapping failed: {e}"));
        failures.extend(mismatch(case, "synced fields after canonical -> native -> canonical", &synced_view(&canonical), &synced_view(&back)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn golden_binary_maps_every_fixture_both_ways() {
    let natives = cases(SYSTEM, ".native.json");
    assert!(natives.len() >= MIN_NATIVE_FIXTURES, "expected at least {MIN_NATIVE_FIXTURES} native fixtures, found {}", natives.len());
    let failures = binary_fixture_failures(SYSTEM, |_, args| run_map(&[&["--system", SYSTEM], args].concat()));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn golden_binary_rejects_a_non_json_file_with_one_error_line() {
    let path = std::env::temp_dir().join(format!("siam-hub-golden-not-json-{}.txt", std::process::id()));
    std::fs::write(&path, "state=2\nshort_description=this is not JSON\n").expect("temp file written");
    let out = run_map(&["--system", SYSTEM, path.to_str().expect("UTF-8 temp path")]);
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a non-JSON file must fail; stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert_ne!(out.status.code(), Some(0));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr must be exactly one line, got:\n{stderr}");
    assert!(lines[0].starts_with("error:"), "stderr must start with `error:`, got: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout when mapping fails, got: {}", String::from_utf8_lossy(&out.stdout));
}
