//! How a change coordinated over several suppliers moves: its stages by type, the gates each
//! move must pass (one approval, every leg ready, the window open, no open hard conflict), the
//! CAB rules that say whose approval is needed, and what a failed leg asks of the others.
//!
//! Everything here is a pure function of the change's state, so the record layer, the API and
//! the dashboard all judge a move the same way, and a refused move names everything missing.

use super::schedule::{Conflict, Window};
use super::{ChangeStatus, ChangeType, Outcome, Risk};
use crate::domain::incident::{vocabulary, UnknownValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

vocabulary!(
    /// One supplier's part of a change, in its own system.
    LegState {
        /// Sent to the supplier; not yet taken on.
        Proposed => "proposed",
        /// The supplier took it on.
        Accepted => "accepted",
        /// The supplier planned its window.
        Scheduled => "scheduled",
        /// Ready to start when the window opens.
        Ready => "ready",
        InProgress => "in_progress",
        Succeeded => "succeeded",
        SucceededWithIssues => "succeeded_with_issues",
        Failed => "failed",
        BackedOut => "backed_out",
        Cancelled => "cancelled",
    }
);

impl LegState {
    /// The leg's work is over, one way or another.
    pub fn is_final(&self) -> bool {
        matches!(self, LegState::Succeeded | LegState::SucceededWithIssues | LegState::Failed | LegState::BackedOut | LegState::Cancelled)
    }

    /// The supplier has planned its part (or is further along).
    pub fn is_scheduled(&self) -> bool {
        !matches!(self, LegState::Proposed | LegState::Accepted | LegState::Cancelled)
    }

    /// Ready to implement, or implementing already, or done.
    pub fn is_ready(&self) -> bool {
        matches!(self, LegState::Ready | LegState::InProgress) || self.is_final() && *self != LegState::Cancelled
    }

    pub fn succeeded(&self) -> bool {
        matches!(self, LegState::Succeeded | LegState::SucceededWithIssues)
    }
}

/// Where a leg stands, read from the supplier's own change: its stage, how it ended and whether
/// the supplier's approvers passed it. Planned and approved is `ready`; an implemented change is
/// as good as its outcome (none given reads as a success, as the supplier closed it without
/// complaint); draft and assessment say nothing the leg's `proposed` does not (`None`).
pub fn leg_state_of(status: ChangeStatus, outcome: Option<Outcome>, approval: Option<super::Approval>) -> Option<LegState> {
    use super::Approval;
    Some(match status {
        ChangeStatus::Draft | ChangeStatus::Assess => return None,
        ChangeStatus::Authorize => LegState::Accepted,
        ChangeStatus::Scheduled if approval == Some(Approval::Approved) => LegState::Ready,
        ChangeStatus::Scheduled => LegState::Scheduled,
        ChangeStatus::Implement => LegState::InProgress,
        ChangeStatus::Review | ChangeStatus::Closed => match outcome {
            Some(Outcome::Unsuccessful) => LegState::Failed,
            Some(Outcome::SuccessfulWithIssues) => LegState::SucceededWithIssues,
            Some(Outcome::Successful) | None => LegState::Succeeded,
        },
        ChangeStatus::Cancelled | ChangeStatus::Rejected => LegState::Cancelled,
    })
}

/// What the change lifecycle needs to know about one leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegPlan {
    pub supplier: String,
    pub state: LegState,
    /// The supplier's own planned window, as read back from its system.
    pub window: Option<Window>,
    /// Suppliers whose legs must succeed before this one may start.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

/// Who decided on a change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Approver {
    /// The integrator's change manager (by key), or an administrator.
    Integrator(String),
    /// An affected supplier, for its own leg (through the hub or in its own system).
    Supplier(String),
}

/// One approval decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub by: Approver,
    pub approve: bool,
    pub comment: String,
}

/// A CAB rule from configuration: which changes it covers and whose approval they need. The
/// first rule that matches a change applies.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CabRule {
    /// The type it covers (`normal`, `emergency`); any type when absent. Standard changes are
    /// pre-approved by their template and need none.
    #[serde(default, rename = "type")]
    pub change_type: Option<ChangeType>,
    /// It covers changes at this risk or riskier (1 = very high .. 5 = very low); any risk
    /// when absent.
    #[serde(default)]
    pub risk_at_least: Option<Risk>,
    /// Distinct integrator approvals needed.
    #[serde(default = "one")]
    pub integrator_approvals: u32,
    /// Whether every affected supplier must approve its own part too.
    #[serde(default)]
    pub every_supplier: bool,
}

fn one() -> u32 {
    1
}

impl CabRule {
    fn covers(&self, change_type: ChangeType, risk: Option<Risk>) -> bool {
        self.change_type.is_none_or(|t| t == change_type) && self.risk_at_least.is_none_or(|r| risk.is_some_and(|risk| risk <= r))
    }

    /// The rule for a change: the first that covers it, else one integrator approval.
    pub fn for_change(rules: &[CabRule], change_type: ChangeType, risk: Option<Risk>) -> CabRule {
        rules.iter().find(|r| r.covers(change_type, risk)).cloned().unwrap_or(CabRule { change_type: None, risk_at_least: None, integrator_approvals: 1, every_supplier: false })
    }
}

/// Where a change stands with its approvers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalState {
    Approved,
    /// Still needed, in words (`"1 more integrator approval"`, `"supplier hosting's approval"`).
    Pending(Vec<String>),
    Rejected {
        by: Approver,
        comment: String,
    },
}

/// Judges the decisions against the rule. `extra_integrator` approvals are added for soft
/// freezes the change falls in.
pub fn approval_state(change_type: ChangeType, rule: &CabRule, extra_integrator: u32, decisions: &[Decision], suppliers: &[String]) -> ApprovalState {
    if let Some(d) = decisions.iter().find(|d| !d.approve) {
        return ApprovalState::Rejected { by: d.by.clone(), comment: d.comment.clone() };
    }
    if change_type == ChangeType::Standard {
        return ApprovalState::Approved;
    }
    let integrators: BTreeSet<&str> = decisions
        .iter()
        .filter_map(|d| match &d.by {
            Approver::Integrator(k) => Some(k.as_str()),
            Approver::Supplier(_) => None,
        })
        .collect();
    let mut missing = Vec::new();
    let needed = rule.integrator_approvals + extra_integrator;
    if (integrators.len() as u32) < needed {
        let more = needed - integrators.len() as u32;
        missing.push(format!("{more} more integrator approval{}", if more == 1 { "" } else { "s" }));
    }
    if rule.every_supplier {
        for s in suppliers {
            if !decisions.iter().any(|d| d.by == Approver::Supplier(s.clone())) {
                missing.push(format!("supplier {s}'s approval"));
            }
        }
    }
    if missing.is_empty() {
        ApprovalState::Approved
    } else {
        ApprovalState::Pending(missing)
    }
}

/// Why a move is refused: each names what is missing, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    #[error("a {change_type} change cannot move from {from} to {to}")]
    IllegalMove { change_type: ChangeType, from: ChangeStatus, to: ChangeStatus },
    #[error("the change is on hold")]
    OnHold,
    #[error("the change has no planned window")]
    NoWindow,
    #[error("the change names no service or CI")]
    NothingAffected,
    #[error("approval missing: {0}")]
    Approval(String),
    #[error("rejected by {by:?}: {comment}")]
    Rejected { by: Approver, comment: String },
    #[error("supplier {supplier}'s leg is {state}, it must be {needs}")]
    LegNotReady { supplier: String, state: LegState, needs: &'static str },
    #[error("supplier {supplier}'s leg is planned outside the change window")]
    LegOutsideWindow { supplier: String },
    #[error("the window opens at {0}")]
    WindowNotOpen(DateTime<Utc>),
    #[error("the window closed at {0}")]
    WindowClosed(DateTime<Utc>),
    #[error("open conflict: {0}")]
    Conflict(String),
    #[error("supplier {supplier}'s leg is {state}, not yet final")]
    LegNotFinal { supplier: String, state: LegState },
    #[error("the change has no supplier leg yet")]
    NoLegs,
}

/// The moves each type may make in the forward flow (cancel and reject are checked apart).
fn forward(change_type: ChangeType, from: ChangeStatus) -> &'static [ChangeStatus] {
    use ChangeStatus::*;
    match (change_type, from) {
        (ChangeType::Normal, Draft) => &[Assess],
        (ChangeType::Standard, Draft) => &[Scheduled],
        (ChangeType::Emergency, Draft) => &[Authorize],
        (ChangeType::Normal, Assess) => &[Authorize],
        // Sent back for another look (the CAB asks for more, or an edit voided the approvals).
        (ChangeType::Normal, Authorize) => &[Scheduled, Assess],
        (ChangeType::Emergency, Authorize) => &[Scheduled],
        (_, Scheduled) => &[Implement, Assess],
        (_, Implement) => &[Review],
        (_, Review) => &[Closed],
        _ => &[],
    }
}

/// Everything a gate looks at.
pub struct GateInput<'a> {
    pub change_type: ChangeType,
    pub status: ChangeStatus,
    pub on_hold: bool,
    pub window: Option<Window>,
    pub affects_something: bool,
    pub approval: &'a ApprovalState,
    pub legs: &'a [LegPlan],
    /// Conflicts found and not acknowledged.
    pub open_conflicts: &'a [Conflict],
    pub now: DateTime<Utc>,
}

/// Checks a move to `to`; `Err` lists everything that stands in the way, not just the first.
pub fn check_move(g: &GateInput<'_>, to: ChangeStatus) -> Result<(), Vec<Blocked>> {
    use ChangeStatus::*;
    let final_stage = matches!(g.status, Closed | Cancelled | Rejected);
    let legal = match to {
        Cancelled => !final_stage,
        Rejected => matches!(g.status, Assess | Authorize),
        _ => forward(g.change_type, g.status).contains(&to),
    };
    if !legal {
        return Err(vec![Blocked::IllegalMove { change_type: g.change_type, from: g.status, to }]);
    }
    let mut missing = Vec::new();
    if g.on_hold && !matches!(to, Cancelled | Rejected) {
        missing.push(Blocked::OnHold);
    }
    if g.status == Draft && to != Cancelled {
        if g.window.is_none() {
            missing.push(Blocked::NoWindow);
        }
        if !g.affects_something {
            missing.push(Blocked::NothingAffected);
        }
    }
    match to {
        Scheduled => {
            match g.approval {
                ApprovalState::Approved => {}
                ApprovalState::Pending(what) => missing.extend(what.iter().map(|w| Blocked::Approval(w.clone()))),
                ApprovalState::Rejected { by, comment } => missing.push(Blocked::Rejected { by: by.clone(), comment: comment.clone() }),
            }
            if g.status != Draft && g.legs.is_empty() {
                missing.push(Blocked::NoLegs);
            }
            for leg in g.legs.iter().filter(|l| l.state != LegState::Cancelled) {
                if !leg.state.is_scheduled() {
                    missing.push(Blocked::LegNotReady { supplier: leg.supplier.clone(), state: leg.state, needs: "scheduled" });
                } else if let (Some(w), Some(lw)) = (g.window, leg.window) {
                    if !w.contains(&lw) {
                        missing.push(Blocked::LegOutsideWindow { supplier: leg.supplier.clone() });
                    }
                }
            }
        }
        Implement => {
            if let Some(w) = g.window {
                if g.now < w.start {
                    missing.push(Blocked::WindowNotOpen(w.start));
                } else if g.now >= w.end {
                    missing.push(Blocked::WindowClosed(w.end));
                }
            }
            for c in g.open_conflicts.iter().filter(|c| c.hard) {
                missing.push(Blocked::Conflict(c.to_string()));
            }
            for leg in g.legs.iter().filter(|l| l.state != LegState::Cancelled && !l.state.is_ready()) {
                missing.push(Blocked::LegNotReady { supplier: leg.supplier.clone(), state: leg.state, needs: "ready" });
            }
        }
        Review => {
            for leg in g.legs.iter().filter(|l| !l.state.is_final()) {
                missing.push(Blocked::LegNotFinal { supplier: leg.supplier.clone(), state: leg.state });
            }
        }
        _ => {}
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// Whether `leg` may start: every leg it depends on has succeeded.
pub fn may_start(leg: &LegPlan, legs: &[LegPlan]) -> Result<(), Vec<String>> {
    let waiting: Vec<String> =
        leg.depends_on.iter().filter(|d| !legs.iter().any(|l| &&l.supplier == d && l.state.succeeded())).map(|d| format!("supplier {d}'s leg has not succeeded")).collect();
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(waiting)
    }
}

/// How the implementation went, from the legs: any failed or backed-out leg makes it
/// unsuccessful; any that succeeded with issues, successful with issues.
pub fn outcome(legs: &[LegPlan]) -> Option<Outcome> {
    let worked: Vec<&LegPlan> = legs.iter().filter(|l| l.state != LegState::Cancelled).collect();
    if worked.is_empty() || !worked.iter().all(|l| l.state.is_final()) {
        return None;
    }
    Some(if worked.iter().any(|l| matches!(l.state, LegState::Failed | LegState::BackedOut)) {
        Outcome::Unsuccessful
    } else if worked.iter().any(|l| l.state == LegState::SucceededWithIssues) {
        Outcome::SuccessfulWithIssues
    } else {
        Outcome::Successful
    })
}

/// Under the default failure policy, a failed leg asks every leg that already did its part (or
/// is doing it) to back out: those suppliers, in reverse dependency order (a leg before the
/// legs it depends on).
pub fn back_out_after_failure(legs: &[LegPlan]) -> Vec<String> {
    if !legs.iter().any(|l| l.state == LegState::Failed) {
        return vec![];
    }
    let mut out: Vec<&LegPlan> = legs.iter().filter(|l| l.state.succeeded() || l.state == LegState::InProgress).collect();
    // Dependants first: a leg that others depend on is undone after them.
    out.sort_by_key(|l| std::cmp::Reverse(depth(l, legs, 0)));
    out.into_iter().map(|l| l.supplier.clone()).collect()
}

/// How many legs stand before `leg` in dependency order (cycles are cut at the leg count).
fn depth(leg: &LegPlan, legs: &[LegPlan], seen: usize) -> usize {
    if seen > legs.len() {
        return seen;
    }
    leg.depends_on.iter().filter_map(|d| legs.iter().find(|l| &l.supplier == d)).map(|d| 1 + depth(d, legs, seen + 1)).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::change::schedule::ConflictKind;
    use chrono::{Duration, TimeZone};

    fn at(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 12, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn leg(s: &str, state: LegState, window: Option<(i64, i64)>, deps: &[&str]) -> LegPlan {
        LegPlan { supplier: s.into(), state, window: window.map(|(a, b)| Window::new(at(a), at(b)).unwrap()), depends_on: deps.iter().map(|d| d.to_string()).collect() }
    }

    fn input<'a>(t: ChangeType, status: ChangeStatus, approval: &'a ApprovalState, legs: &'a [LegPlan], conflicts: &'a [Conflict], now: i64) -> GateInput<'a> {
        GateInput { change_type: t, status, on_hold: false, window: Window::new(at(2), at(6)), affects_something: true, approval, legs, open_conflicts: conflicts, now: at(now) }
    }

    #[test]
    fn each_type_takes_its_own_path_through_the_stages() {
        use ChangeStatus::*;
        let ok = ApprovalState::Approved;
        let ready = [leg("net", LegState::Ready, Some((2, 4)), &[])];
        let legal = |t, from, to| !matches!(check_move(&input(t, from, &ok, &ready, &[], 3), to), Err(ref e) if matches!(e[0], Blocked::IllegalMove { .. }));
        assert!(legal(ChangeType::Normal, Draft, Assess));
        assert!(!legal(ChangeType::Normal, Draft, Scheduled), "a normal change is assessed and authorised");
        assert!(legal(ChangeType::Standard, Draft, Scheduled), "a standard change skips assess and authorize");
        assert!(!legal(ChangeType::Standard, Draft, Assess));
        assert!(legal(ChangeType::Emergency, Draft, Authorize), "an emergency change skips assess");
        assert!(!legal(ChangeType::Emergency, Draft, Assess));
        assert!(legal(ChangeType::Normal, Authorize, Rejected));
        assert!(!legal(ChangeType::Normal, Implement, Rejected));
        assert!(legal(ChangeType::Normal, Implement, Cancelled));
        assert!(!legal(ChangeType::Normal, Closed, Cancelled));
        assert!(!legal(ChangeType::Normal, Review, Implement), "no way back from review");
    }

    #[test]
    fn scheduling_needs_the_approvals_and_every_leg_scheduled_inside_the_window() {
        let pending = ApprovalState::Pending(vec!["1 more integrator approval".into()]);
        let legs = [leg("net", LegState::Scheduled, Some((2, 4)), &[]), leg("host", LegState::Accepted, None, &[]), leg("apps", LegState::Scheduled, Some((5, 7)), &[])];
        let err = check_move(&input(ChangeType::Normal, ChangeStatus::Authorize, &pending, &legs, &[], 0), ChangeStatus::Scheduled).unwrap_err();
        assert_eq!(
            err,
            vec![
                Blocked::Approval("1 more integrator approval".into()),
                Blocked::LegNotReady { supplier: "host".into(), state: LegState::Accepted, needs: "scheduled" },
                Blocked::LegOutsideWindow { supplier: "apps".into() },
            ]
        );
        let ok = ApprovalState::Approved;
        let legs = [leg("net", LegState::Scheduled, Some((2, 4)), &[]), leg("apps", LegState::Ready, Some((4, 6)), &[])];
        assert_eq!(check_move(&input(ChangeType::Normal, ChangeStatus::Authorize, &ok, &legs, &[], 0), ChangeStatus::Scheduled), Ok(()));
    }

    #[test]
    fn implementing_needs_the_window_open_no_hard_conflict_and_every_leg_ready() {
        let ok = ApprovalState::Approved;
        let legs = [leg("net", LegState::Ready, Some((2, 4)), &[]), leg("apps", LegState::Scheduled, Some((4, 6)), &[])];
        let hard = Conflict {
            kind: ConflictKind::Freeze,
            other: None,
            subject: "network".into(),
            period: Window::new(at(0), at(24)).unwrap(),
            hard: true,
            detail: "year-end freeze".into(),
        };
        let soft = Conflict { hard: false, kind: ConflictKind::OutsideMaintenance, ..hard.clone() };
        let err = check_move(&input(ChangeType::Normal, ChangeStatus::Scheduled, &ok, &legs, &[hard.clone(), soft], 1), ChangeStatus::Implement).unwrap_err();
        assert_eq!(err.len(), 3, "{err:?}");
        assert_eq!(err[0], Blocked::WindowNotOpen(at(2)));
        assert!(matches!(&err[1], Blocked::Conflict(c) if c.contains("year-end freeze")));
        assert_eq!(err[2], Blocked::LegNotReady { supplier: "apps".into(), state: LegState::Scheduled, needs: "ready" });
        let err = check_move(&input(ChangeType::Normal, ChangeStatus::Scheduled, &ok, &legs[..1], &[], 6), ChangeStatus::Implement).unwrap_err();
        assert_eq!(err, vec![Blocked::WindowClosed(at(6))], "the window is half-open: its end is outside it");
        assert_eq!(check_move(&input(ChangeType::Normal, ChangeStatus::Scheduled, &ok, &legs[..1], &[], 2), ChangeStatus::Implement), Ok(()));
    }

    #[test]
    fn review_waits_for_every_leg_to_finish_and_the_outcome_follows_the_legs() {
        let ok = ApprovalState::Approved;
        let legs = [leg("net", LegState::Succeeded, None, &[]), leg("apps", LegState::InProgress, None, &["net"])];
        let err = check_move(&input(ChangeType::Normal, ChangeStatus::Implement, &ok, &legs, &[], 3), ChangeStatus::Review).unwrap_err();
        assert_eq!(err, vec![Blocked::LegNotFinal { supplier: "apps".into(), state: LegState::InProgress }]);
        assert_eq!(outcome(&legs), None);
        assert_eq!(outcome(&[leg("a", LegState::Succeeded, None, &[]), leg("b", LegState::Cancelled, None, &[])]), Some(Outcome::Successful));
        assert_eq!(outcome(&[leg("a", LegState::Succeeded, None, &[]), leg("b", LegState::SucceededWithIssues, None, &[])]), Some(Outcome::SuccessfulWithIssues));
        assert_eq!(outcome(&[leg("a", LegState::BackedOut, None, &[]), leg("b", LegState::Failed, None, &[])]), Some(Outcome::Unsuccessful));
    }

    #[test]
    fn a_leg_starts_after_what_it_depends_on_and_a_failure_backs_out_the_others_dependants_first() {
        let legs = [leg("net", LegState::Succeeded, None, &[]), leg("host", LegState::Succeeded, None, &["net"]), leg("apps", LegState::Failed, None, &["host"])];
        assert_eq!(may_start(&legs[1], &legs), Ok(()));
        let waiting = [leg("net", LegState::InProgress, None, &[]), leg("host", LegState::Ready, None, &["net"])];
        assert_eq!(may_start(&waiting[1], &waiting), Err(vec!["supplier net's leg has not succeeded".into()]));
        assert_eq!(back_out_after_failure(&legs), vec!["host".to_string(), "net".to_string()]);
        assert!(back_out_after_failure(&waiting).is_empty(), "nothing failed");
    }

    #[test]
    fn cab_rules_pick_by_type_and_risk_and_count_distinct_approvers() {
        let rules = vec![
            CabRule { change_type: Some(ChangeType::Normal), risk_at_least: Risk::new(2), integrator_approvals: 2, every_supplier: true },
            CabRule { change_type: Some(ChangeType::Normal), risk_at_least: None, integrator_approvals: 1, every_supplier: false },
        ];
        let high = CabRule::for_change(&rules, ChangeType::Normal, Risk::new(1));
        assert_eq!(high.integrator_approvals, 2);
        assert_eq!(CabRule::for_change(&rules, ChangeType::Normal, Risk::new(4)).integrator_approvals, 1);
        assert_eq!(
            CabRule::for_change(&rules, ChangeType::Emergency, Risk::new(1)),
            CabRule { change_type: None, risk_at_least: None, integrator_approvals: 1, every_supplier: false }
        );
        let d = |by: Approver, approve| Decision { by, approve, comment: "ok".into() };
        let suppliers = vec!["net".to_string(), "apps".to_string()];
        let twice = [d(Approver::Integrator("k1".into()), true), d(Approver::Integrator("k1".into()), true), d(Approver::Supplier("net".into()), true)];
        assert_eq!(
            approval_state(ChangeType::Normal, &high, 0, &twice, &suppliers),
            ApprovalState::Pending(vec!["1 more integrator approval".into(), "supplier apps's approval".into()])
        );
        let all = [
            d(Approver::Integrator("k1".into()), true),
            d(Approver::Integrator("k2".into()), true),
            d(Approver::Supplier("net".into()), true),
            d(Approver::Supplier("apps".into()), true),
        ];
        assert_eq!(approval_state(ChangeType::Normal, &high, 0, &all, &suppliers), ApprovalState::Approved);
        assert_eq!(
            approval_state(ChangeType::Normal, &high, 1, &all, &suppliers),
            ApprovalState::Pending(vec!["1 more integrator approval".into()]),
            "a soft freeze asks one more"
        );
        let no = [d(Approver::Supplier("apps".into()), false)];
        assert!(matches!(approval_state(ChangeType::Normal, &high, 0, &no, &suppliers), ApprovalState::Rejected { .. }));
        assert_eq!(approval_state(ChangeType::Standard, &high, 0, &[], &suppliers), ApprovalState::Approved, "standard changes are pre-approved");
    }
}
