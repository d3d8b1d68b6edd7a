//! Golden fixtures of the change mappings (`siam-hub map --kind change`).
//!
//! * ServiceNow `change_request` in `adapters/servicenow/fixtures/change/` (raw, exclude-reference-
//!   link, display_value=true and all, envelopes, unknown values), Remedy `CHG:` forms in
//!   `adapters/remedy/fixtures/change/` (read names and create names, entry, query answer and bare
//!   values), TMF655 v4 `changeRequest` in `adapters/tmf655/fixtures/` (resource, event, list
//!   answer, free-string spellings, unknown values).
//! * `<case>.native.json` -> `<case>.canonical.json`; `<case>.canonical-in.json` ->
//!   `<case>.native-out.json`. Every canonical document, expected or produced, must be valid
//!   against `schemas/change.v1.json`.
//! * Round trips canonical -> native -> canonical keep everything the target system can hold
//!   (what each cannot hold is listed in [`held`]), bring back the native values kept on the
//!   target's leg, and leave nothing unmapped: the hub never writes what it cannot read back.
//!
//! The expected documents were written from `reference/suppliers/` and the profiles, not copied
//! from the program's output.

use crate::fixtures::{mismatch, read_json, read_text, run_map, sibling};
use serde_json::{json, Value};
use siam_hub::cli::{check_map_target, map_document, Kind};
use siam_hub::validation::{validate, Doc};
use std::path::{Path, PathBuf};

/// A system's fixture folder and how many cases it must at least hold.
struct System {
    name: &'static str,
    dir: &'static str,
    min_native: usize,
    min_reverse: usize,
}

const SYSTEMS: &[System] = &[
    System { name: "servicenow", dir: "adapters/servicenow/fixtures/change", min_native: 6, min_reverse: 3 },
    System { name: "remedy", dir: "adapters/remedy/fixtures/change", min_native: 6, min_reverse: 3 },
    System { name: "tmf655", dir: "adapters/tmf655/fixtures", min_native: 6, min_reverse: 3 },
];

fn dir(system: &System) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(system.dir)
}

/// The cases whose input file ends with `suffix`, sorted by name: (case, input path).
fn cases(system: &System, suffix: &str) -> Vec<(String, PathBuf)> {
    let dir = dir(system);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut found: Vec<(String, PathBuf)> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter_map(|p| {
            let case = p.file_name()?.to_str()?.strip_suffix(suffix)?.to_string();
            Some((case, p))
        })
        .collect();
    found.sort();
    found
}

fn invalid(case: &str, what: &str, doc: &Value) -> Option<String> {
    validate(Doc::Change, doc).err().map(|v| format!("{case}: {what} is not a valid change: {v:?}"))
}

#[test]
fn golden_change_native_fixtures_map_to_their_canonical_documents() {
    let mut failures = Vec::new();
    for system in SYSTEMS {
        let natives = cases(system, ".native.json");
        assert!(natives.len() >= system.min_native, "{}: expected at least {} native fixtures, found {}", system.name, system.min_native, natives.len());
        for (case, path) in &natives {
            let expected = read_json(&sibling(path, case, ".canonical.json"));
            let case = format!("{}/{case}", system.name);
            failures.extend(invalid(&case, "the expected canonical document", &expected));
            match map_document(Kind::Change, system.name, false, &read_text(path)) {
                Ok(actual) => {
                    failures.extend(invalid(&case, "the mapped document", &actual));
                    failures.extend(mismatch(&case, "canonical change", &expected, &actual));
                }
                Err(e) => failures.push(format!("{case}: mapping failed: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn golden_change_canonical_fixtures_are_valid_and_map_to_their_native_bodies() {
    let mut failures = Vec::new();
    for system in SYSTEMS {
        let inputs = cases(system, ".canonical-in.json");
        assert!(inputs.len() >= system.min_reverse, "{}: expected at least {} reverse fixtures, found {}", system.name, system.min_reverse, inputs.len());
        for (case, path) in &inputs {
            let expected = read_json(&sibling(path, case, ".native-out.json"));
            let case = format!("{}/{case}", system.name);
            if let Some(report) = invalid(&case, "the canonical input", &read_json(path)) {
                failures.push(report);
                continue;
            }
            match map_document(Kind::Change, system.name, true, &read_text(path)) {
                Ok(actual) => failures.extend(mismatch(&case, "native body", &expected, &actual)),
                Err(e) => failures.push(format!("{case}: reverse mapping failed: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The record the supplier would hand back for a create body: the body plus the ids it assigns.
fn stored(system: &str, body: &Value, i: usize) -> Value {
    let mut body = body.clone();
    match system {
        "servicenow" => {
            body["sys_id"] = json!(format!("{:032x}", 0xc4a9_0000_u64 + i as u64));
            body["number"] = json!(format!("CHG{:07}", 40_000 + i));
        }
        "remedy" => {
            // The create form's answer names: Change_Entry_ID and Infrastructure Change Id.
            let id = format!("CRQ{:012}", 900 + i);
            body["values"]["Change_Entry_ID"] = json!(id);
            body["values"]["Infrastructure Change Id"] = json!(id);
        }
        _ => {
            let id = format!("rt-{i}");
            body["href"] = json!(format!("https://partner.example.net/tmf-api/changeManagement/v4/changeRequest/{id}"));
            body["id"] = json!(id);
        }
    }
    body
}

/// ServiceNow's glide_date_time holds whole seconds.
fn seconds(v: &Value) -> Value {
    match v.as_str() {
        Some(s) if s.len() == 24 => json!(format!("{}.000Z", &s[..19])),
        _ => v.clone(),
    }
}

fn first_only(v: &Value) -> Value {
    json!(v.as_array().map(|a| a.iter().take(1).cloned().collect::<Vec<_>>()).unwrap_or_default())
}

/// What of a canonical change `system` can hold, so a round trip through it must keep.
fn held(system: &str, doc: &Value) -> Value {
    let mut view = json!({});
    for k in [
        "ref",
        "title",
        "description",
        "type",
        "status",
        "on_hold",
        "hold_reason",
        "approval",
        "risk",
        "impact",
        "urgency",
        "priority",
        "planned_start",
        "planned_end",
        "actual_start",
        "actual_end",
        "outcome",
        "outcome_notes",
        "services",
        "cis",
        "opened_at",
        "closed_at",
    ] {
        view[k] = doc[k].clone();
    }
    let on_hold = doc["on_hold"] == json!(true);
    let v = view.as_object_mut().expect("an object");
    match system {
        "servicenow" => {
            // One business_service and one cmdb_ci on the record; risk stops at 4 Low; the
            // instance sets opened_at and closed_at itself.
            v.insert("services".into(), first_only(&doc["services"]));
            v.insert("cis".into(), first_only(&doc["cis"]));
            if doc["risk"] == json!(5) {
                v.insert("risk".into(), json!(4));
            }
            for k in ["planned_start", "planned_end", "actual_start", "actual_end"] {
                v.insert(k.into(), seconds(&doc[k]));
            }
            v.remove("opened_at");
            v.remove("closed_at");
        }
        "remedy" => {
            // A 100-character summary; Pending says nothing of the stage; approvals are the
            // workflow's phases; CIs are association records; no close notes field; one service
            // CI; four priority labels; Submit Date and the status history are Remedy's own.
            let title: String = doc["title"].as_str().unwrap_or_default().chars().take(100).collect();
            v.insert("title".into(), json!(title));
            if on_hold {
                v.insert("status".into(), Value::Null);
            }
            if doc["priority"] == json!(5) {
                v.insert("priority".into(), json!(4));
            }
            v.insert("services".into(), first_only(&doc["services"]));
            for k in ["approval", "cis", "outcome_notes", "opened_at", "closed_at"] {
                v.remove(k);
            }
        }
        _ => {
            // A hold is a status of its own; approval shows only through some statuses.
            if on_hold {
                v.insert("status".into(), Value::Null);
            }
            v.remove("approval");
        }
    }
    view
}

#[test]
fn golden_change_round_trip_keeps_what_each_system_holds() {
    let mut failures = Vec::new();
    for system in SYSTEMS {
        for (i, (case, path)) in cases(system, ".canonical-in.json").iter().enumerate() {
            let case = format!("{}/{case}", system.name);
            let canonical = read_json(path);
            let body = match map_document(Kind::Change, system.name, true, &read_text(path)) {
                Ok(b) => b,
                Err(e) => {
                    failures.push(format!("{case}: reverse mapping failed: {e}"));
                    continue;
                }
            };
            let back = match map_document(Kind::Change, system.name, false, &stored(system.name, &body, i).to_string()) {
                Ok(b) => b,
                Err(e) => {
                    failures.push(format!("{case}: reading the created change back failed: {e}"));
                    continue;
                }
            };
            failures.extend(invalid(&case, "the change read back", &back));
            failures.extend(mismatch(&case, "what the system holds, after canonical -> native -> canonical", &held(system.name, &canonical), &held(system.name, &back)));
            let leg = &back["legs"][0];
            if leg["unmapped"] != json!({}) {
                failures.push(format!("{case}: the hub wrote values it cannot read back: {}", leg["unmapped"]));
            }
            let kept = canonical["legs"].as_array().and_then(|legs| legs.iter().find(|l| l["system"] == system.name)).map(|l| l["native"].clone());
            if let Some(Value::Object(kept)) = kept {
                for (field, value) in &kept {
                    if leg["native"][field] != *value {
                        failures.push(format!("{case}: the native `{field}` = {value} kept on the leg did not come back (got {})", leg["native"][field]));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn golden_change_binary_maps_one_fixture_per_system_both_ways() {
    for system in SYSTEMS {
        let (case, path) = cases(system, ".native.json").into_iter().next().unwrap_or_else(|| panic!("{}: no native fixture", system.name));
        let out = run_map(&["--system", system.name, "--kind", "change", path.to_str().expect("UTF-8 fixture path")]);
        assert!(out.status.success(), "{}/{case}: exit {:?}, stderr: {}", system.name, out.status.code(), String::from_utf8_lossy(&out.stderr));
        let actual: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}/{case}: stdout is not JSON: {e}", system.name));
        if let Some(report) = mismatch(&case, "`siam-hub map --kind change` output", &read_json(&sibling(&path, &case, ".canonical.json")), &actual) {
            panic!("{}: {report}", system.name);
        }

        let (case, path) = cases(system, ".canonical-in.json").into_iter().next().unwrap_or_else(|| panic!("{}: no reverse fixture", system.name));
        let out = run_map(&["--system", system.name, "--kind", "change", "--reverse", path.to_str().expect("UTF-8 fixture path")]);
        assert!(out.status.success(), "{}/{case}: exit {:?}, stderr: {}", system.name, out.status.code(), String::from_utf8_lossy(&out.stderr));
        let actual: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}/{case}: stdout is not JSON: {e}", system.name));
        if let Some(report) = mismatch(&case, "`siam-hub map --kind change --reverse` output", &read_json(&sibling(&path, &case, ".native-out.json")), &actual) {
            panic!("{}: {report}", system.name);
        }
    }
}

/// Runs `map` with `args` plus a temporary file holding `content`; expects one `error:` line.
fn one_error_line(args: &[&str], content: &str) -> String {
    let path = std::env::temp_dir().join(format!("siam-hub-golden-change-{}-{}.json", std::process::id(), uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, content).expect("temp file written");
    let mut all: Vec<&str> = args.to_vec();
    all.push(path.to_str().expect("UTF-8 temp path"));
    let out = run_map(&all);
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} must fail; stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout when mapping fails");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: stderr must be one line, got:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    stderr
}

#[test]
fn golden_change_binary_reports_bad_combinations_and_payloads_in_one_line() {
    let e = one_error_line(&["--system", "tmf655"], "{}");
    assert!(e.contains("`tmf655` maps changes only") && e.contains("--kind change"), "{e}");
    let e = one_error_line(&["--system", "tmf655", "--kind", "incident", "--reverse"], "{}");
    assert!(e.contains("--kind change"), "{e}");
    let e = one_error_line(
        &["--system", "remedy", "--kind", "change"],
        r#"[{"messageType":"ERROR","messageText":"Entry does not exist in database","messageAppendedText":"CHG:ChangeInterface : CRQ000000000999","messageNumber":302}]"#,
    );
    assert!(e.contains("Remedy answered ERROR 302: Entry does not exist in database"), "{e}");
    let incident = read_text(&Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/servicenow/fixtures/resolved_workaround.canonical-in.json"));
    let e = one_error_line(&["--system", "servicenow", "--kind", "change", "--reverse"], &incident);
    assert!(e.contains("not a canonical change"), "{e}");
    let e = one_error_line(&["--system", "servicenow", "--kind", "change"], "state=-2");
    assert!(e.contains("not valid JSON"), "{e}");
}

#[test]
fn golden_change_only_change_systems_take_kind_change() {
    for system in SYSTEMS {
        assert_eq!(check_map_target(Kind::Change, system.name), Ok(()));
    }
    assert_eq!(check_map_target(Kind::Incident, "servicenow"), Ok(()));
    assert_eq!(check_map_target(Kind::Change, "jira"), Ok(()));
    let e = check_map_target(Kind::Change, "zendesk").unwrap_err();
    assert!(e.contains("servicenow, remedy, tmf655, jira"), "{e}");
    assert!(check_map_target(Kind::Incident, "tmf655").unwrap_err().contains("maps changes only"));
}
