//! Properties of the schedule and the CAB: windows are half-open and symmetric, an overlap is
//! seen from both changes alike, only changes in the forward schedule collide, freezes and
//! dependency order bite exactly when their periods say, and approvals only ever move a change
//! towards approval (one rejection rejects).

use super::lifecycle::{approval_state, ApprovalState, Approver, CabRule, Decision, LegPlan, LegState};
use super::schedule::{detect, ConflictKind, Freeze, MaintenanceWindow, Planned, Window};
use super::{ChangeStatus, ChangeType, Risk};
use crate::testkit::config;
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc, Weekday};
use proptest::prelude::*;

/// Quarter hours from a fixed Monday, 00:00 UTC.
fn at(q: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap() + Duration::minutes(15 * q)
}

/// A window of 1 to 16 quarter hours starting within two weeks.
fn window() -> impl Strategy<Value = Window> {
    (0i64..1344, 1i64..16).prop_map(|(s, len)| Window::new(at(s), at(s + len)).unwrap())
}

/// Distinct names from `names`, each written in either case (names compare without case).
fn some_of(names: Vec<&'static str>) -> impl Strategy<Value = Vec<String>> {
    let n = names.len();
    (prop::sample::subsequence(names, 0..=n), prop::collection::vec(any::<bool>(), n))
        .prop_map(|(picked, upper)| picked.into_iter().zip(upper).map(|(s, up)| if up { s.to_uppercase() } else { s.to_string() }).collect())
}

fn services() -> impl Strategy<Value = Vec<String>> {
    some_of(vec!["network", "email", "payroll"])
}

fn status() -> impl Strategy<Value = ChangeStatus> {
    prop::sample::select(ChangeStatus::ALL.to_vec())
}

fn planned(reference: &str) -> impl Strategy<Value = Planned> {
    let reference = reference.to_string();
    (status(), window(), services(), some_of(vec!["sw-1", "fw-2"])).prop_map(move |(status, w, services, cis)| Planned {
        reference: reference.clone(),
        status,
        window: Some(w),
        services,
        cis,
    })
}

fn shares_something(a: &Planned, b: &Planned) -> bool {
    a.services.iter().any(|s| b.services.iter().any(|o| o.eq_ignore_ascii_case(s))) || a.cis.iter().any(|c| b.cis.iter().any(|o| o.eq_ignore_ascii_case(c)))
}

fn overlaps_with(found: &[super::schedule::Conflict], other: &str) -> Vec<(String, Window)> {
    let mut v: Vec<(String, Window)> =
        found.iter().filter(|c| c.kind == ConflictKind::Overlap && c.other.as_deref() == Some(other)).map(|c| (c.subject.to_lowercase(), c.period)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

proptest! {
    #![proptest_config(config(2000))]

    /// Two windows overlap exactly when some instant lies in both; back-to-back windows never
    /// do, and the relation is symmetric.
    #[test]
    fn windows_are_half_open_and_overlap_symmetrically(a in window(), b in window()) {
        let some_instant_in_both = (0..1400).map(at).any(|t| a.start <= t && t < a.end && b.start <= t && t < b.end);
        prop_assert_eq!(a.overlaps(&b), some_instant_in_both);
        prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
        prop_assert_eq!(a.overlaps(&b), a.intersection(&b).is_some());
        let next = Window::new(a.end, a.end + Duration::hours(1)).unwrap();
        prop_assert!(!a.overlaps(&next));
        if let Some(i) = a.intersection(&b) {
            prop_assert!(a.contains(&i) && b.contains(&i));
        }
    }

    /// An overlap is found from both changes alike, on the same subjects and period, and only
    /// when both are in the forward schedule, share a service or CI and their windows meet.
    #[test]
    fn an_overlap_is_seen_from_both_sides(a in planned("CHG-000001"), b in planned("CHG-000002")) {
        let from_a = overlaps_with(&detect(&a, &[], std::slice::from_ref(&b), &[], &[]), "CHG-000002");
        let from_b = overlaps_with(&detect(&b, &[], std::slice::from_ref(&a), &[], &[]), "CHG-000001");
        let (wa, wb) = (a.window.unwrap(), b.window.unwrap());
        let expected = b.counts() && wa.overlaps(&wb) && shares_something(&a, &b);
        prop_assert_eq!(!from_a.is_empty(), expected, "{:?} against {:?}", a, b);
        if a.counts() && b.counts() {
            prop_assert_eq!(&from_a, &from_b);
        }
        for (_, period) in &from_a {
            prop_assert_eq!(Some(*period), wa.intersection(&wb));
        }
    }

    /// A freeze bites a change exactly when their periods meet and it covers one of the
    /// change's services (or every service); hard freezes are hard conflicts, soft ones not.
    #[test]
    fn a_freeze_bites_when_periods_meet_on_a_covered_service(change in planned("CHG-000001"), fw in window(), covered in services(), hard in any::<bool>()) {
        let freeze = Freeze { name: "year end".into(), services: covered.clone(), start: fw.start, end: fw.end, hard };
        let found: Vec<_> = detect(&change, &[], &[], std::slice::from_ref(&freeze), &[]).into_iter().filter(|c| c.kind == ConflictKind::Freeze).collect();
        let w = change.window.unwrap();
        let covers = covered.is_empty() || change.services.iter().any(|s| covered.iter().any(|c| c.eq_ignore_ascii_case(s)));
        prop_assert_eq!(!found.is_empty(), w.overlaps(&fw) && covers);
        prop_assert!(found.iter().all(|c| c.hard == hard && Some(c.period) == w.intersection(&fw)));
    }

    /// A leg may not be planned to start before a leg it depends on is planned to end; a leg
    /// planned outside the change window is a conflict of its own.
    #[test]
    fn dependency_order_and_leg_windows(change_w in window(), first in window(), second in window()) {
        let change = Planned { reference: "CHG-000001".into(), status: ChangeStatus::Scheduled, window: Some(change_w), services: vec![], cis: vec![] };
        let legs = [
            LegPlan { supplier: "network".into(), state: LegState::Scheduled, window: Some(first), depends_on: vec![] },
            LegPlan { supplier: "hosting".into(), state: LegState::Scheduled, window: Some(second), depends_on: vec!["network".into()] },
        ];
        let found = detect(&change, &legs, &[], &[], &[]);
        let out_of_order = found.iter().filter(|c| c.kind == ConflictKind::DependencyOrder).count();
        prop_assert_eq!(out_of_order, usize::from(first.end > second.start));
        let outside: Vec<&str> = found.iter().filter(|c| c.kind == ConflictKind::LegOutsideWindow).map(|c| c.subject.as_str()).collect();
        let expected: Vec<&str> = [("supplier network", first), ("supplier hosting", second)].into_iter().filter(|(_, w)| !change_w.contains(w)).map(|(s, _)| s).collect();
        prop_assert_eq!(outside, expected);
    }

    /// A window inside one weekly maintenance window is admitted; one that runs past its end
    /// is not.
    #[test]
    fn maintenance_windows_admit_exactly_what_fits(day in 0u32..7, hour in 0u32..24, hours in 1u32..8, offset_q in 0i64..32, len_q in 1i64..40) {
        let weekday = (0..day).fold(Weekday::Mon, |d, _| d.succ());
        let m = MaintenanceWindow { service: "network".into(), day: weekday, start: NaiveTime::from_hms_opt(hour, 0, 0).unwrap(), hours, time_zone: None };
        // The occurrence in the week of `at(0)` (a Monday).
        let opens = at(0) + Duration::days(i64::from(weekday.num_days_from_monday())) + Duration::hours(i64::from(hour));
        let start = opens + Duration::minutes(15 * offset_q);
        let w = Window::new(start, start + Duration::minutes(15 * len_q)).unwrap();
        let fits = w.end <= opens + Duration::hours(i64::from(hours));
        prop_assert_eq!(m.admits(&w), fits, "{} in {:?}", w, m);
    }

    /// Approvals only move a change towards approval: one more approval never takes an
    /// approved change back to pending, and any rejection rejects whatever else was decided.
    #[test]
    fn approvals_only_move_towards_approval(
        needed in 0u32..3,
        every_supplier in any::<bool>(),
        extra in 0u32..2,
        decided in prop::collection::vec((prop::sample::select(vec!["i:alice", "i:bob", "i:carol", "s:network", "s:hosting"]), any::<bool>()), 0..6),
    ) {
        let rule = CabRule { change_type: None, risk_at_least: Risk::new(3), integrator_approvals: needed, every_supplier };
        let suppliers = vec!["network".to_string(), "hosting".to_string()];
        let decision = |who: &str, approve: bool| Decision {
            by: match who.split_once(':') { Some(("i", k)) => Approver::Integrator(k.into()), Some((_, s)) => Approver::Supplier(s.into()), None => unreachable!() },
            approve,
            comment: String::new(),
        };
        let decisions: Vec<Decision> = decided.iter().map(|(w, a)| decision(w, *a)).collect();
        let state = approval_state(ChangeType::Normal, &rule, extra, &decisions, &suppliers);
        prop_assert_eq!(matches!(state, ApprovalState::Rejected { .. }), decisions.iter().any(|d| !d.approve));
        for who in ["i:alice", "i:dave", "s:network", "s:hosting"] {
            let mut more = decisions.clone();
            more.push(decision(who, true));
            let after = approval_state(ChangeType::Normal, &rule, extra, &more, &suppliers);
            if state == ApprovalState::Approved {
                prop_assert_eq!(&after, &ApprovalState::Approved);
            }
            if let (ApprovalState::Pending(before), ApprovalState::Pending(now)) = (&state, &after) {
                prop_assert!(now.len() <= before.len());
            }
        }
        prop_assert_eq!(approval_state(ChangeType::Standard, &rule, extra, &[], &suppliers), ApprovalState::Approved);
    }
}
