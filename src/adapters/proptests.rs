//! Properties of every supplier payload reader: whatever a supplier sends, each [`Mapping`] and
//! [`change::ChangeMapping`] answers a record, an error or an empty list, never a panic; and what
//! it answers keeps the readers' contract (an id on everything the sync keys by it, a coherent
//! canonical reading, `siam-hub map` agreeing with what the sync applies, the hub's own values
//! reading back as themselves).

use super::*;
use crate::config::{Tmf621Settings, TmfFlavour, TmfVersion};
use crate::testkit::{self, config};
use proptest::prelude::*;

/// The priority matrix of the ServiceNow instance with overrides: it writes the impact and
/// urgency that give the record's priority there.
fn eager_matrix() -> PriorityMatrix {
    PriorityMatrix::try_from(vec![vec![1, 1, 2], vec![1, 2, 3], vec![2, 3, 4]]).expect("a valid matrix")
}

fn servicenow_instances() -> Vec<Arc<dyn Mapping>> {
    use crate::config::ProfileOverrides;
    let custom = ProfileOverrides {
        states: [("101".to_string(), Status::InProgress)].into(),
        hold_reasons: [("9".to_string(), HoldReason::AwaitingChange)].into(),
        resolutions: [("Fixed by vendor".to_string(), "fixed".to_string())].into(),
        priority_matrix: Some(eager_matrix()),
    };
    vec![Arc::new(servicenow::ServiceNow::default()), Arc::new(servicenow::ServiceNow::with_overrides(custom))]
}

fn tmf621_instances() -> Vec<Arc<dyn Mapping>> {
    [(TmfFlavour::Standard, TmfVersion::V4), (TmfFlavour::Standard, TmfVersion::V5), (TmfFlavour::Servicenow, TmfVersion::V4)]
        .into_iter()
        .map(|(flavour, version)| Arc::new(tmf621::Tmf621::new(&Tmf621Settings { flavour, version, ..Default::default() })) as Arc<dyn Mapping>)
        .collect()
}

fn instances(system: &str) -> Vec<Arc<dyn Mapping>> {
    match system {
        "servicenow" => servicenow_instances(),
        "tmf621" => tmf621_instances(),
        other => vec![mapping_for(other).expect("a supported system")],
    }
}

fn all_instances() -> Vec<Arc<dyn Mapping>> {
    SYSTEMS.iter().flat_map(|s| instances(s)).collect()
}

/// What a system sends: its native fixtures and the create bodies the hub writes to it.
fn natives(system: &str) -> Vec<Value> {
    let dir = format!("{system}/fixtures");
    [testkit::fixtures(&dir, ".native.json"), testkit::fixtures(&dir, ".native-out.json")].concat()
}

/// Canonical incident documents, as `siam-hub map --reverse` reads them.
fn canonical_documents() -> Vec<Value> {
    SYSTEMS.iter().flat_map(|s| testkit::fixtures(&format!("{s}/fixtures"), ".canonical-in.json")).collect()
}

/// Reads `payload` with every reader of `m` and checks what comes back.
fn read_everything(m: &dyn Mapping, payload: &Value) -> Result<(), TestCaseError> {
    let system = m.system();
    let record = m.parse_record(payload);
    for n in m.parse_notes(payload) {
        prop_assert!(!n.native_id.trim().is_empty(), "{system}: a note without an id (notes are kept by id): {n:?}");
    }
    for f in m.parse_attachments(payload).unwrap_or_default() {
        prop_assert!(!f.native_id.trim().is_empty(), "{system}: a file without an id: {f:?}");
    }
    let doc = m.canonical_document(payload);
    let Ok(rec) = record else { return Ok(()) };
    prop_assert!(!rec.native_id.trim().is_empty(), "{system}: a record without an id: {rec:?}");
    let c = m.to_canonical(&rec.fields, rec.assigned);
    coherent(system, &c)?;
    // `siam-hub map` shows what the sync would apply.
    let doc = match doc {
        Ok(doc) => doc,
        Err(e) => return Err(TestCaseError::fail(format!("{system}: the record reads but `siam-hub map` refuses it: {e}"))),
    };
    if let Some(leg) = doc.get("legs").and_then(|l| l.get(0)) {
        prop_assert_eq!(leg.get("native_id").and_then(Value::as_str), Some(rec.native_id.as_str()), "{}: the leg of the map is the record's", system);
        prop_assert_eq!(&doc["status"], &serde_json::json!(c.status), "{}: the map's status is the sync's", system);
        prop_assert_eq!(&doc["hold_reason"], &serde_json::json!(c.hold_reason), "{}: the map's hold reason is the sync's", system);
    }
    Ok(())
}

/// A canonical reading holds a hold reason exactly when on hold, and a resolution only once
/// resolved or closed.
fn coherent(system: &str, c: &Canonical) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.hold_reason.is_some(), c.status == Some(Status::OnHold), "{}: hold reason {:?} with status {:?}", system, c.hold_reason, c.status);
    if c.resolution.is_some() {
        prop_assert!(matches!(c.status, Some(Status::Resolved | Status::Closed)), "{system}: a resolution with status {:?}", c.status);
    }
    Ok(())
}

/// Field maps as the sync holds them for a leg: the systems' synced field names with their
/// profiles' values, odd text and strays.
fn field_maps() -> BoxedStrategy<(BTreeMap<String, String>, bool)> {
    let profiles: Vec<Value> = ["servicenow", "jira", "remedy", "tmf621"].iter().flat_map(|s| testkit::fixtures(s, "profile.json")).collect();
    let (_, mut values) = testkit::vocabulary_of(&profiles);
    values.extend(["1", "2", "3", "4", "0", "-1", " 2 ", "2 - High", "10001"].map(str::to_string));
    let mut names: Vec<String> = [servicenow::SYNCED_FIELDS, jira::mapping::SYNCED, remedy::mapping::SYNCED_FIELDS].concat().into_iter().map(str::to_string).collect();
    use tmf621::mapping as t;
    names.extend([t::F_STATUS, t::F_REASON, t::F_NAME, t::F_DESCRIPTION, t::F_SEVERITY, t::F_PRIORITY, t::F_CI].map(str::to_string));
    names.extend(["impact", "urgency", "category", "resolutionCode", "Impact"].map(|c| format!("{}{c}", t::F_CHAR)));
    names.push("stray".into());
    let value = prop_oneof![3 => prop::sample::select(values), 1 => testkit::odd_text()];
    (prop::collection::btree_map(prop::sample::select(names), value, 0..12), any::<bool>()).boxed()
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn servicenow_payloads_are_read_or_refused(payload in testkit::payloads(natives("servicenow"))) {
        for m in instances("servicenow") {
            read_everything(m.as_ref(), &payload)?;
        }
    }

    #[test]
    fn jira_payloads_are_read_or_refused(payload in testkit::payloads(natives("jira"))) {
        for m in instances("jira") {
            read_everything(m.as_ref(), &payload)?;
        }
    }

    #[test]
    fn remedy_payloads_are_read_or_refused(payload in testkit::payloads(natives("remedy"))) {
        for m in instances("remedy") {
            read_everything(m.as_ref(), &payload)?;
        }
    }

    #[test]
    fn tmf621_payloads_are_read_or_refused(payload in testkit::payloads(natives("tmf621"))) {
        for m in instances("tmf621") {
            read_everything(m.as_ref(), &payload)?;
        }
    }

    /// JSON with no likeness to any supplier's is refused (or read) by every system alike.
    #[test]
    fn arbitrary_json_is_read_or_refused_by_every_system(payload in testkit::json()) {
        for m in all_instances() {
            read_everything(m.as_ref(), &payload)?;
            let _ = m.native_document(&payload);
        }
    }

    /// `siam-hub map --reverse` takes a canonical incident document or refuses it with an error.
    #[test]
    fn canonical_documents_are_reversed_or_refused(doc in testkit::mutated(canonical_documents())) {
        let incident = serde_json::from_value::<Incident>(doc.clone());
        for m in all_instances() {
            match m.native_document(&doc) {
                Ok(body) => {
                    prop_assert!(incident.is_ok(), "{}: a native body for a document that is no incident", m.system());
                    prop_assert!(body.is_object(), "{}: the native body is an object", m.system());
                }
                Err(e) => prop_assert!(incident.is_err(), "{}: a canonical incident refused: {e}", m.system()),
            }
        }
    }

    /// Any stored field values (a leg's baseline, an instance's own values) read as a coherent
    /// canonical reading.
    #[test]
    fn field_values_read_coherently((fields, assigned) in field_maps()) {
        for m in all_instances() {
            let c = m.to_canonical(&fields, assigned);
            coherent(m.system(), &c)?;
        }
    }

    /// What the hub writes to a supplier reads back as what it wrote: otherwise the echo of its
    /// own write would look like a supplier's change. (A ticket at a supplier is assigned once
    /// past `new`.)
    #[test]
    fn the_hubs_own_values_read_back_as_the_incident(incident in testkit::incident()) {
        let eager = aligned_priority(Some(&eager_matrix()), &incident);
        for (n, m) in all_instances().into_iter().enumerate() {
            let system = m.system();
            // The second instance is the ServiceNow one with its own matrix.
            let incident = if n == 1 { eager.as_ref() } else { &incident };
            let fields = m.desired(incident, &BTreeMap::new());
            let c = m.to_canonical(&fields, incident.status != Status::New);
            prop_assert!(c.unmapped.is_empty(), "{}: the hub's own values read as unmapped: {:?}", system, c.unmapped);
            prop_assert_eq!(c.status, Some(incident.status), "{}: status", system);
            prop_assert_eq!(c.hold_reason.is_some(), incident.hold_reason.is_some(), "{}: hold", system);
            prop_assert_eq!(c.resolution.is_some(), incident.resolution.is_some(), "{}: resolution", system);
            prop_assert!(c.impact.is_none_or(|i| i == incident.impact), "{system}: impact {:?} for {}", c.impact, incident.impact);
            prop_assert!(c.urgency.is_none_or(|u| u == incident.urgency), "{system}: urgency {:?} for {}", c.urgency, incident.urgency);
            prop_assert!(m.native_document(&serde_json::to_value(incident).expect("an incident serialises")).is_ok(), "{system}: the incident maps out");
        }
    }

    /// A change payload is a change, or an error; a change the hub reads is always one it can
    /// show (valid against `schemas/change.v1.json`).
    #[test]
    fn change_payloads_are_read_or_refused(
        (system, payload) in prop_oneof![
            testkit::payloads(testkit::fixtures("servicenow/fixtures/change", ".native.json")).prop_map(|p| ("servicenow", p)),
            testkit::payloads(testkit::fixtures("remedy/fixtures/change", ".native.json")).prop_map(|p| ("remedy", p)),
            testkit::payloads(testkit::fixtures("tmf655/fixtures", ".native.json")).prop_map(|p| ("tmf655", p)),
        ]
    ) {
        for m in change::SYSTEMS {
            let read = change::mapping_for(m).expect("a change mapping").read(&payload);
            let doc = change::canonical_document(m, &payload);
            if read.is_ok() {
                prop_assert!(doc.is_ok(), "{m} (payload of {system}): a change read but not shown: {:?}", doc.err());
            }
        }
    }

    /// `siam-hub map --kind change --reverse` takes a canonical change or refuses it.
    #[test]
    fn change_documents_are_reversed_or_refused(
        doc in testkit::mutated([
            testkit::fixtures("servicenow/fixtures/change", ".canonical-in.json"),
            testkit::fixtures("remedy/fixtures/change", ".canonical-in.json"),
            testkit::fixtures("tmf655/fixtures", ".canonical-in.json"),
        ].concat())
    ) {
        for m in change::SYSTEMS {
            if let Ok(body) = change::native_document(m, &doc) {
                prop_assert!(body.is_object(), "{m}: the create body is an object");
            }
        }
    }
}

/// Instants in the years 1..9999 (the range the text forms can carry), to the millisecond.
fn instant() -> impl Strategy<Value = chrono::DateTime<chrono::Utc>> {
    (-62_135_596_800_000i64..253_402_300_799_999).prop_map(|ms| chrono::DateTime::from_timestamp_millis(ms).expect("in range"))
}

fn whole_seconds(t: &chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.timestamp(), 0).expect("in range")
}

proptest! {
    #![proptest_config(config(1000))]

    /// Every time form a supplier uses reads back as the instant the hub wrote in it, and any
    /// other text reads as no time.
    #[test]
    fn supplier_times_read_back_and_odd_ones_are_refused(t in instant(), offset_mins in -14 * 60..=14 * 60i32, odd in testkit::date_like(), text in testkit::odd_text()) {
        use servicenow::mapping::{parse_sn_time, sn_time};
        let secs = whole_seconds(&t);
        prop_assert_eq!(parse_sn_time(&sn_time(&t)), Some(secs));
        prop_assert_eq!(remedy::mapping::parse_ar_time(&remedy::mapping::ar_time(&t)), Some(secs));
        let zone = chrono::FixedOffset::east_opt(offset_mins * 60).expect("within a day");
        prop_assert_eq!(jira::mapping::parse_time(&Value::from(jira::mapping::jira_time(&t, &zone))), Some(t));
        prop_assert_eq!(jira::mapping::parse_time(&Value::from(t.timestamp_millis())), Some(t));
        prop_assert_eq!(tmf621::mapping::parse_time(&time::rfc3339(&t)), Some((t, true)));
        prop_assert_eq!(tmf621::mapping::parse_time(&sn_time(&t)), Some((secs, false)));
        for s in [odd, text] {
            let _ = parse_sn_time(&s);
            let _ = remedy::mapping::parse_ar_time(&s);
            let _ = jira::mapping::parse_time(&Value::from(s.clone()));
            let _ = tmf621::mapping::parse_time(&s);
            let _ = tmf621::mapping::canonical_event_type(&s);
        }
    }

    /// A value percent-encoded for a Remedy URL path segment decodes to itself and holds no
    /// character that means something in a path; any text decodes without failing.
    #[test]
    fn remedy_path_segments_round_trip(s in testkit::odd_text(), raw in "[%0-9a-fA-F/|?é]{0,24}") {
        let encoded = remedy::mapping::percent_encode(&s);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:%".contains(&b)), "{}", encoded);
        prop_assert_eq!(remedy::mapping::percent_decode(&encoded), s);
        let _ = remedy::mapping::percent_decode(&raw);
    }
}
