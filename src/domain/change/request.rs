//! What the hub's API asks of a change: a new change, an edit (JSON merge patch), a leg's
//! progress and an approval decision, parsed into domain types at the edge.

use super::lifecycle::LegState;
use super::{ChangeStatus, ChangeType, Risk};
use crate::domain::incident::double_option;
use crate::domain::incident::{Impact, Urgency};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/changes`. Fields a template supplies may be left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChange {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "type")]
    pub change_type: Option<ChangeType>,
    #[serde(default)]
    pub risk: Option<Risk>,
    #[serde(default)]
    pub impact: Option<Impact>,
    #[serde(default)]
    pub urgency: Option<Urgency>,
    #[serde(default)]
    pub services: Option<Vec<String>>,
    #[serde(default)]
    pub cis: Option<Vec<String>>,
    #[serde(default)]
    pub planned_start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub planned_end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub implementation_plan: Option<String>,
    #[serde(default)]
    pub backout_plan: Option<String>,
    #[serde(default)]
    pub test_plan: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
}

/// Field changes to a change. `None` = unchanged; for clearable fields `Some(None)` clears.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ChangeStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_hold: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub hold_reason: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cis: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub planned_start: Option<Option<DateTime<Utc>>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub planned_end: Option<Option<DateTime<Utc>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation_plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backout_plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub outcome_notes: Option<Option<String>>,
}

impl ChangePatch {
    /// Whether the edit touches what the approvers judged (dates, services, CIs, risk): such an
    /// edit voids their approvals and sends the change back to assessment.
    pub fn reopens_assessment(&self) -> bool {
        self.planned_start.is_some() || self.planned_end.is_some() || self.services.is_some() || self.cis.is_some() || self.risk.is_some()
    }
}

/// `PATCH /api/v1/changes/{ref}/legs/{supplier}`: a supplier's progress on its part, or the
/// change manager's plan of the legs' order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegUpdate {
    #[serde(default)]
    pub state: Option<LegState>,
    #[serde(default)]
    pub planned_start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub planned_end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub native_number: Option<String>,
    #[serde(default)]
    pub depends_on: Option<Vec<String>>,
}

/// `POST /api/v1/changes/{ref}/approvals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    pub decision: DecisionWord,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionWord {
    Approve,
    Reject,
}

/// `POST /api/v1/changes/{ref}/conflicts/acknowledge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    pub key: String,
    pub reason: String,
}

/// A new change with everything known: the request, completed from its template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub title: String,
    pub description: String,
    pub change_type: ChangeType,
    pub risk: Risk,
    pub impact: Impact,
    pub urgency: Urgency,
    pub services: Vec<String>,
    pub cis: Vec<String>,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    pub implementation_plan: String,
    pub backout_plan: String,
    pub test_plan: String,
    pub template: Option<String>,
}
