//! Golden fixtures of the Remedy mapping (`adapters/remedy/fixtures/`).
//!
//! * `<case>.native.json` -> `<case>.canonical.json`: what `siam-hub map --system remedy` prints
//!   for a native payload: a create-form body, interface reads (entry, query answer, bare values,
//!   notification body), work log lists, `null` fields, an unknown status, AR error arrays.
//! * `<case>.canonical-in.json` -> `<case>.native-out.json`: what `--reverse` prints (the
//!   `HPD:IncidentInterface_Create` body) for a valid canonical incident.
//! * Round trips canonical -> create body -> canonical, both read straight from the create body
//!   and from the record Remedy would store (read names), keep everything Remedy can hold.
//!
//! The expected documents were written from `reference/suppliers/remedy.md` and the profile,
//! not copied from the program's output.

use crate::fixtures::{binary_fixture_failures, cases, check_native_fixtures, check_reverse_fixtures, mismatch, read_json, read_text, run_map};
use serde_json::{json, Map, Value};
use siam_hub::cli::map_payload;

const SYSTEM: &str = "remedy";
const MIN_NATIVE_FIXTURES: usize = 10;
const MIN_REVERSE_FIXTURES: usize = 4;

#[test]
fn remedy_golden_native_fixtures_map_to_their_canonical_documents() {
    check_native_fixtures(SYSTEM, MIN_NATIVE_FIXTURES, |_, text| map_payload(SYSTEM, false, text));
}

#[test]
fn remedy_golden_canonical_fixtures_are_valid_and_map_to_create_bodies() {
    check_reverse_fixtures(SYSTEM, MIN_REVERSE_FIXTURES, |_, text| map_payload(SYSTEM, true, text));
}

/// Create-form names and the read names Remedy stores them under (reference, section 3).
const CREATE_TO_READ: &[(&str, &str)] = &[
    ("Detailed_Decription", "Detailed Decription"),
    ("Service_Type", "Service Type"),
    ("First_Name", "First Name"),
    ("Last_Name", "Last Name"),
    ("Login_ID", "Customer Login ID"),
];

/// What the canonical fields read back as once Remedy holds them. Remedy keeps 100 characters
/// of the title; it has one status for new and assigned (a routed ticket is created Assigned);
/// its resolution reasons tell apart fixed, workaround and duplicate only, the others being
/// written as "No Further Action Required".
fn held_view(doc: &Value) -> Value {
    let title: String = doc["title"].as_str().unwrap_or("").chars().take(100).collect();
    let status = match doc["status"].as_str() {
        Some("new") => json!("assigned"),
        _ => doc["status"].clone(),
    };
    let code = match doc["resolution"]["code"].as_str() {
        Some(c @ ("fixed" | "workaround" | "duplicate")) => json!(c),
        Some(_) => json!("fixed"),
        None => Value::Null,
    };
    json!({
        "title": title,
        "description": doc["description"],
        "status": status,
        "hold_reason": doc["hold_reason"],
        "impact": doc["impact"],
        "urgency": doc["urgency"],
        "category": doc["category"],
        "ci": doc["ci"],
        "resolution_code": code,
        "resolution_notes": doc["resolution"]["notes"],
        "correlation_ref": doc["ref"],
    })
}

fn read_view(doc: &Value) -> Value {
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
        "resolution_notes": doc["resolution"]["notes"],
        "correlation_ref": doc["correlation_ref"],
    })
}

#[test]
fn remedy_golden_round_trip_keeps_what_remedy_can_hold() {
    let inputs = cases(SYSTEM, ".canonical-in.json");
    assert!(inputs.len() >= MIN_REVERSE_FIXTURES);
    let mut failures = Vec::new();
    for (i, (case, path)) in inputs.iter().enumerate() {
        let canonical = read_json(path);
        let body = map_payload(SYSTEM, true, &read_text(path)).unwrap_or_else(|e| panic!("{case}: reverse mapping failed: {e}"));
        let want = held_view(&canonical);

        // 1. The create body itself reads back (create names are understood).
        let straight = map_payload(SYSTEM, false, &body.to_string()).unwrap_or_else(|e| panic!("{case}: the create body does not read: {e}"));
        failures.extend(mismatch(case, "create body read back", &want, &read_view(&straight)));

        // 2. The entry Remedy would store, read through HPD:IncidentInterface.
        let mut stored: Map<String, Value> = body["values"].as_object().cloned().unwrap_or_else(|| panic!("{case}: no values"));
        stored.remove("z1D_Action");
        for (create, read) in CREATE_TO_READ {
            if let Some(v) = stored.remove(*create) {
                stored.insert(read.to_string(), v);
            }
        }
        let entry = format!("INC{:012}", 900 + i);
        stored.insert("Entry ID".into(), json!(entry));
        stored.insert("Request ID".into(), json!(format!("{entry}|{entry}")));
        stored.insert("Incident Number".into(), json!(format!("INC{:012}", 700 + i)));
        stored.insert("Assigned Group".into(), json!("Service Desk"));
        stored.insert("Last Modified Date".into(), json!("2024-05-16T10:15:00.000+0000"));
        let record = json!({ "values": stored });
        let back = map_payload(SYSTEM, false, &record.to_string()).unwrap_or_else(|e| panic!("{case}: the stored entry does not read: {e}"));
        failures.extend(mismatch(case, "stored entry read back", &want, &read_view(&back)));
        if back["legs"][0]["unmapped"] != json!({}) {
            failures.push(format!("{case}: the hub's own values read as unmapped: {}", back["legs"][0]["unmapped"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn remedy_golden_binary_maps_every_fixture_both_ways() {
    let failures = binary_fixture_failures(SYSTEM, |_, args| run_map(&[&["--system", SYSTEM], args].concat()));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn remedy_golden_binary_refuses_a_query_answer_with_several_entries() {
    let path = std::env::temp_dir().join(format!("siam-hub-remedy-two-entries-{}.json", std::process::id()));
    let two = json!({"entries": [{"values": {"Entry ID": "INC1", "Status": "New"}}, {"values": {"Entry ID": "INC2", "Status": "New"}}]});
    std::fs::write(&path, two.to_string()).expect("temp file written");
    let out = run_map(&["--system", SYSTEM, path.to_str().expect("UTF-8 temp path")]);
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error:") && stderr.contains("2 entries"), "{stderr}");
}
