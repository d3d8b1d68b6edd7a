//! The canonical change (`schemas/change.v1.json`): its vocabularies, scales and supplier legs.
//!
//! A change moves through stages (`draft` .. `closed`); being on hold is a flag beside the stage,
//! as ServiceNow keeps it, and approval is a state of its own, because suppliers disagree on
//! both (Remedy has a `Pending` status and expresses approval only through statuses). Anything a
//! supplier says that these types cannot carry stays on the leg, never guessed.
//!
//! [`lifecycle`] says how a change coordinated over several suppliers may move (stages, gates,
//! CAB rules, back-out after a failure); [`schedule`] finds its conflicts in the forward
//! schedule.

pub mod lifecycle;
#[cfg(test)]
mod proptests;
pub mod request;
pub mod schedule;

use super::incident::{scale, vocabulary, Impact, Priority, UnknownValue, Urgency};
use super::time::serde_ms;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

vocabulary!(
    /// The kind of change: a pre-approved `standard` change, a `normal` one that goes through
    /// assessment and authorisation, or an `emergency` one authorised on a short path.
    ChangeType {
        Standard => "standard",
        Normal => "normal",
        Emergency => "emergency",
    }
);

vocabulary!(
    /// The stage a change is in, whatever the supplier calls it.
    ChangeStatus {
        Draft => "draft",
        Assess => "assess",
        Authorize => "authorize",
        Scheduled => "scheduled",
        Implement => "implement",
        Review => "review",
        Closed => "closed",
        Cancelled => "cancelled",
        Rejected => "rejected",
    }
);

impl ChangeStatus {
    /// The stages in which an implementation outcome can be known.
    pub fn takes_outcome(&self) -> bool {
        matches!(self, ChangeStatus::Review | ChangeStatus::Closed)
    }
}

vocabulary!(
    /// Where the change stands with its approvers.
    Approval {
        NotRequested => "not_requested",
        Requested => "requested",
        Approved => "approved",
        Rejected => "rejected",
    }
);

vocabulary!(
    /// How the implementation went.
    Outcome {
        Successful => "successful",
        SuccessfulWithIssues => "successful_with_issues",
        Unsuccessful => "unsuccessful",
    }
);

scale!(
    /// The risk of implementing the change: 1 = very high, 2 = high, 3 = moderate, 4 = low,
    /// 5 = very low. Most severe first like every canonical scale; five levels so that neither
    /// ServiceNow (1 Very High .. 4 Low) nor Remedy (Risk Level 1 = lowest .. 5) loses a level.
    Risk, 5
);

/// The hub's reference of a change (`CHG-000045`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChangeRef(String);

impl ChangeRef {
    pub fn new(n: i64) -> Self {
        ChangeRef(format!("CHG-{n:06}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ChangeRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = s.strip_prefix("CHG-").is_some_and(|n| n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            Ok(ChangeRef(s.to_string()))
        } else {
            Err(format!("`{s}` is not a change reference such as CHG-000045"))
        }
    }
}

impl TryFrom<String> for ChangeRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ChangeRef> for String {
    fn from(r: ChangeRef) -> String {
        r.0
    }
}

impl fmt::Display for ChangeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One supplier's change behind the canonical change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeLeg {
    /// The configured supplier instance; `None` when a payload is mapped on its own.
    pub supplier: Option<String>,
    pub system: String,
    pub native_id: String,
    pub native_number: Option<String>,
    pub native_status: Option<String>,
    /// Native values the canonical reading does not fully carry (many-to-one mappings), so a
    /// write back to the same supplier keeps them instead of rewriting them to a default.
    #[serde(default)]
    pub native: Map<String, Value>,
    /// Native values the hub could not map, by native field name; kept, never guessed.
    #[serde(default)]
    pub unmapped: Map<String, Value>,
}

/// The canonical change, as `siam-hub map --kind change` prints it and reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    #[serde(rename = "ref")]
    pub reference: Option<ChangeRef>,
    pub title: String,
    pub description: String,
    #[serde(rename = "type")]
    pub change_type: Option<ChangeType>,
    pub status: Option<ChangeStatus>,
    pub on_hold: bool,
    pub hold_reason: Option<String>,
    pub approval: Option<Approval>,
    pub risk: Option<Risk>,
    pub impact: Option<Impact>,
    pub urgency: Option<Urgency>,
    pub priority: Option<Priority>,
    #[serde(with = "serde_ms::option")]
    pub planned_start: Option<DateTime<Utc>>,
    #[serde(with = "serde_ms::option")]
    pub planned_end: Option<DateTime<Utc>>,
    #[serde(with = "serde_ms::option")]
    pub actual_start: Option<DateTime<Utc>>,
    #[serde(with = "serde_ms::option")]
    pub actual_end: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub outcome_notes: Option<String>,
    pub services: Vec<String>,
    pub cis: Vec<String>,
    #[serde(with = "serde_ms::option")]
    pub opened_at: Option<DateTime<Utc>>,
    #[serde(with = "serde_ms::option")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(with = "serde_ms::option")]
    pub closed_at: Option<DateTime<Utc>>,
    pub legs: Vec<ChangeLeg>,
}

/// Why a change document is not coherent, beyond what its schema can say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("hold_reason is set but the change is not on hold")]
    HoldReasonWithoutHold,
    #[error("an outcome is only known in review or once closed, not when the status is {0}")]
    OutcomeTooEarly(String),
    #[error("{window} ends before it starts")]
    WindowReversed { window: &'static str },
}

impl Change {
    /// A change with nothing known yet: where every mapping starts.
    pub fn blank() -> Self {
        Change {
            reference: None,
            title: String::new(),
            description: String::new(),
            change_type: None,
            status: None,
            on_hold: false,
            hold_reason: None,
            approval: None,
            risk: None,
            impact: None,
            urgency: None,
            priority: None,
            planned_start: None,
            planned_end: None,
            actual_start: None,
            actual_end: None,
            outcome: None,
            outcome_notes: None,
            services: Vec::new(),
            cis: Vec::new(),
            opened_at: None,
            updated_at: None,
            closed_at: None,
            legs: Vec::new(),
        }
    }

    /// Checks what the schema cannot: a change sent to a supplier must make sense as a whole,
    /// or the supplier's workflow would refuse it half-written.
    pub fn check(&self) -> Result<(), ChangeError> {
        if !self.on_hold && self.hold_reason.is_some() {
            return Err(ChangeError::HoldReasonWithoutHold);
        }
        if self.outcome.is_some() && !self.status.is_some_and(|s| s.takes_outcome()) {
            return Err(ChangeError::OutcomeTooEarly(self.status.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into())));
        }
        for (window, start, end) in [("the planned window", self.planned_start, self.planned_end), ("the actual window", self.actual_start, self.actual_end)] {
            if let (Some(s), Some(e)) = (start, end) {
                if e < s {
                    return Err(ChangeError::WindowReversed { window });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn change_refs_parse_strictly() {
        assert_eq!(ChangeRef::new(45).as_str(), "CHG-000045");
        assert!("CHG-000045".parse::<ChangeRef>().is_ok());
        assert!("CHG-1234567".parse::<ChangeRef>().is_ok());
        assert!("INC-000045".parse::<ChangeRef>().is_err());
        assert!("CHG-45".parse::<ChangeRef>().is_err());
        assert!("CHG-00004x".parse::<ChangeRef>().is_err());
        assert!("CHG0030001".parse::<ChangeRef>().is_err());
    }

    #[test]
    fn risk_is_a_five_level_scale() {
        assert!(Risk::new(0).is_none());
        assert!(Risk::new(5).is_some());
        assert!(Risk::new(6).is_none());
        assert!(serde_json::from_value::<Risk>(serde_json::json!(9)).is_err());
    }

    #[test]
    fn vocabularies_travel_as_snake_case() {
        assert_eq!(serde_json::to_value(Outcome::SuccessfulWithIssues).unwrap(), "successful_with_issues");
        assert_eq!("not_requested".parse::<Approval>(), Ok(Approval::NotRequested));
        assert!("Scheduled".parse::<ChangeStatus>().is_err());
    }

    #[test]
    fn check_refuses_incoherent_changes() {
        let mut c = Change::blank();
        c.title = "Patch the core switches".into();
        assert_eq!(c.check(), Ok(()));
        c.hold_reason = Some("waiting for the vendor".into());
        assert_eq!(c.check(), Err(ChangeError::HoldReasonWithoutHold));
        c.on_hold = true;
        assert_eq!(c.check(), Ok(()));
        c.outcome = Some(Outcome::Successful);
        c.status = Some(ChangeStatus::Implement);
        assert!(matches!(c.check(), Err(ChangeError::OutcomeTooEarly(_))));
        c.status = Some(ChangeStatus::Review);
        assert_eq!(c.check(), Ok(()));
        c.planned_start = Utc.with_ymd_and_hms(2024, 6, 1, 22, 0, 0).single();
        c.planned_end = Utc.with_ymd_and_hms(2024, 6, 1, 21, 0, 0).single();
        assert_eq!(c.check(), Err(ChangeError::WindowReversed { window: "the planned window" }));
    }
}
