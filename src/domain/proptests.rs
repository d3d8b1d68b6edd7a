//! Properties of the domain parsers every reader ends in: references, closed vocabularies, the
//! priority matrix, canonical documents and the schema check. Any input parses strictly or is
//! refused, never a panic; what parses prints back as itself.

use super::change::{Approval, Change, ChangeStatus, ChangeType, Outcome};
use super::*;
use crate::testkit::{self, config};
use crate::validation::{validate, Doc};
use proptest::prelude::*;
use serde_json::Value;
use std::fmt::Display;
use std::str::FromStr;

/// Every value of a vocabulary prints and parses as itself; any other text is refused.
fn vocabulary_holds<T: FromStr + Display + PartialEq + std::fmt::Debug + Copy>(all: &[T], text: &str) -> Result<(), TestCaseError> {
    for v in all {
        prop_assert_eq!(v.to_string().parse::<T>().ok(), Some(*v));
    }
    match text.parse::<T>() {
        Ok(v) => prop_assert_eq!(v.to_string(), text),
        Err(_) => prop_assert!(all.iter().all(|v| v.to_string() != text)),
    }
    Ok(())
}

fn words() -> BoxedStrategy<String> {
    let mut known: Vec<String> = Status::ALL.iter().map(ToString::to_string).collect();
    known.extend(HoldReason::ALL.iter().map(ToString::to_string));
    known.extend(ChangeStatus::ALL.iter().map(ToString::to_string));
    known.extend(["INC-000042", "CHG-0000001", "INC-00042", "inc-000042", "INC-00004a", "INC--000042", "PRB-000042", "INC-٠٠٠٠٠٠"].map(str::to_string));
    prop_oneof![prop::sample::select(known), testkit::odd_text(), "(INC|CHG|X)?-?[0-9]{0,12}"].boxed()
}

proptest! {
    #![proptest_config(config(2000))]

    /// A hub reference is `INC-` or `CHG-` and at least six ASCII digits; it prints as it was
    /// given, and a reference the hub makes always parses.
    #[test]
    fn references_parse_strictly_and_print_back(text in words(), n in any::<i64>()) {
        match text.parse::<TicketRef>() {
            Ok(r) => {
                prop_assert_eq!(r.as_str(), text.as_str());
                let (prefix, digits) = text.split_once('-').expect("a reference has a dash");
                prop_assert!(matches!(prefix, "INC" | "CHG") && digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()));
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
        let own = TicketRef::incident(n.max(0));
        prop_assert_eq!(own.as_str().parse::<TicketRef>().ok(), Some(own.clone()));
        prop_assert_eq!(serde_json::from_value::<TicketRef>(serde_json::json!(own.as_str())).ok(), Some(own));
    }

    #[test]
    fn vocabularies_parse_strictly_and_print_back(text in words()) {
        vocabulary_holds(Status::ALL, &text)?;
        vocabulary_holds(HoldReason::ALL, &text)?;
        vocabulary_holds(Visibility::ALL, &text)?;
        vocabulary_holds(PrioritySource::ALL, &text)?;
        vocabulary_holds(LegState::ALL, &text)?;
        vocabulary_holds(ChangeType::ALL, &text)?;
        vocabulary_holds(ChangeStatus::ALL, &text)?;
        vocabulary_holds(Approval::ALL, &text)?;
        vocabulary_holds(Outcome::ALL, &text)?;
    }

    /// A matrix is 3 x 3 priorities 1..5, else refused; an accepted one prints back as given,
    /// derives every pair, and the pair it finds for a priority gives that priority.
    #[test]
    fn priority_matrices_are_checked_and_consistent(rows in prop::collection::vec(prop::collection::vec(0u8..8, 0..5), 0..5), i in 1u8..=3, u in 1u8..=3, p in 1u8..=5) {
        let valid = rows.len() == 3 && rows.iter().all(|r| r.len() == 3 && r.iter().all(|p| (1..=5).contains(p)));
        match PriorityMatrix::try_from(rows.clone()) {
            Ok(m) => {
                prop_assert!(valid);
                prop_assert_eq!(Vec::<Vec<u8>>::from(m.clone()), rows);
                let (i, u, p) = (Impact::new(i).expect("1..=3"), Urgency::new(u).expect("1..=3"), Priority::new(p).expect("1..=5"));
                let _ = m.derive(i, u);
                if let Some((pi, pu)) = m.pair_for(p, i, u) {
                    prop_assert_eq!(m.derive(pi, pu), p);
                }
            }
            Err(e) => prop_assert!(!valid && !e.is_empty()),
        }
    }

    /// Any JSON is checked against every schema, and read as a canonical document, without a
    /// panic; the hub's own incidents are valid.
    #[test]
    fn any_json_is_checked_and_read_as_a_document(doc in prop_oneof![testkit::json(), testkit::mutated(testkit::fixtures("servicenow/fixtures", ".canonical-in.json"))], incident in testkit::incident()) {
        for kind in [Doc::Incident, Doc::Create, Doc::Patch, Doc::NoteCreate, Doc::Route, Doc::Handback, Doc::Change] {
            if let Err(v) = validate(kind, &doc) {
                prop_assert!(!v.is_empty());
            }
        }
        let _ = serde_json::from_value::<Incident>(doc.clone());
        let _ = serde_json::from_value::<NewIncident>(doc.clone());
        let _ = serde_json::from_value::<IncidentChanges>(doc.clone());
        if let Ok(c) = serde_json::from_value::<Change>(doc.clone()) {
            let _ = c.check();
        }
        let own: Value = serde_json::to_value(&incident).expect("an incident serialises");
        prop_assert_eq!(serde_json::from_value::<Incident>(own).ok(), Some(incident));
    }
}
