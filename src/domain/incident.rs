//! The canonical incident, its lifecycle values and its supplier legs.

use super::change::ChangeRef;
use super::time::serde_ms;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Declares a closed vocabulary that travels as snake_case strings and parses strictly.
macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownValue { kind: stringify!($name), value: other.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}
// The change model declares its vocabularies the same way.
pub(crate) use vocabulary;

/// A value outside a closed vocabulary (for example a status read back from the database that
/// this build does not know).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

vocabulary!(
    /// Where an incident is in its life, whatever the supplier calls it.
    Status {
        New => "new",
        Assigned => "assigned",
        InProgress => "in_progress",
        OnHold => "on_hold",
        Resolved => "resolved",
        Closed => "closed",
        Cancelled => "cancelled",
    }
);

impl LegState {
    /// The leg is in play: the hub keeps the supplier ticket in sync.
    pub fn is_active(&self) -> bool {
        matches!(self, LegState::Pending | LegState::Open)
    }
}

impl Status {
    /// Closed and cancelled tickets take no further work; a resolved one can still be reopened.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Status::Closed | Status::Cancelled)
    }
}

vocabulary!(
    /// Why a ticket is on hold. SLA contracts pause clocks on some of these and not others.
    HoldReason {
        AwaitingCaller => "awaiting_caller",
        AwaitingEvidence => "awaiting_evidence",
        AwaitingProblem => "awaiting_problem",
        AwaitingSupplier => "awaiting_supplier",
        AwaitingChange => "awaiting_change",
        Other => "other",
    }
);

vocabulary!(
    /// Whether a note may be shown to the caller (`public`) or only to resolvers (`internal`).
    Visibility {
        Public => "public",
        Internal => "internal",
    }
);

vocabulary!(
    /// Whether the priority came from the hub's matrix or was supplied as-is.
    PrioritySource {
        Derived => "derived",
        Supplied => "supplied",
    }
);

vocabulary!(
    /// The life of one supplier ticket behind an incident.
    LegState {
        /// Routed, not yet created at the supplier.
        Pending => "pending",
        /// The supplier ticket exists and is being kept in sync.
        Open => "open",
        /// The supplier ticket is resolved, closed or cancelled.
        Closed => "closed",
        /// Delivery failed for good; the reason is on the leg and in the dead-letter list.
        Failed => "failed",
        /// The supplier refused the ticket or handed it back; nothing more is sent to it.
        HandedBack => "handed_back",
        /// The hub moved the ticket to another supplier; the supplier's ticket is being cancelled.
        Withdrawn => "withdrawn",
    }
);

/// Declares a small bounded integer scale (1 = the most severe).
macro_rules! scale {
    ($(#[$m:meta])* $name:ident, $max:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "u8", into = "u8")]
        pub struct $name(u8);

        impl $name {
            pub const LOWEST: $name = $name($max);
            pub fn new(v: u8) -> Option<Self> {
                (1..=$max).contains(&v).then_some($name(v))
            }
            pub fn get(&self) -> u8 { self.0 }
        }

        impl TryFrom<u8> for $name {
            type Error = String;
            fn try_from(v: u8) -> Result<Self, String> {
                $name::new(v).ok_or_else(|| format!("{} must be 1..{}, got {v}", stringify!($name).to_lowercase(), $max))
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 { v.0 }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{}", self.0) }
        }
    };
}
pub(crate) use scale;

scale!(
    /// How widely the service is affected: 1 = high, 3 = low.
    Impact, 3
);
scale!(
    /// How soon it must be fixed: 1 = high, 3 = low.
    Urgency, 3
);
scale!(
    /// 1 = critical .. 5 = planning.
    Priority, 5
);

/// The hub's reference of an incident (`INC-000042`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TicketRef(String);

impl TicketRef {
    pub fn incident(n: i64) -> Self {
        TicketRef(format!("INC-{n:06}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TicketRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = s.split_once('-').is_some_and(|(p, n)| matches!(p, "INC" | "CHG") && n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            Ok(TicketRef(s.to_string()))
        } else {
            Err(format!("`{s}` is not a hub reference such as INC-000042"))
        }
    }
}

impl TryFrom<String> for TicketRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<TicketRef> for String {
    fn from(r: TicketRef) -> String {
        r.0
    }
}

impl fmt::Display for TicketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

vocabulary!(
    /// How a ticket came to be resolved: the canonical resolution codes
    /// (`schemas/incident.v1.json`, `$defs/resolution`).
    ResolutionCode {
        Fixed => "fixed",
        Workaround => "workaround",
        NotReproducible => "not_reproducible",
        NotFixed => "not_fixed",
        ResolvedByCaller => "resolved_by_caller",
        Duplicate => "duplicate",
        Other => "other",
    }
);

impl ResolutionCode {
    /// Whether `code` is one of the canonical codes.
    pub fn is_canonical(code: &str) -> bool {
        code.parse::<ResolutionCode>().is_ok()
    }
}

/// How a ticket was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub code: String,
    #[serde(default)]
    pub notes: String,
}

/// A journal entry on the unified record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub id: i64,
    pub visibility: Visibility,
    pub author: String,
    pub text: String,
    /// `hub` for notes written at the hub, otherwise the supplier id the note came from.
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native_id: Option<String>,
    #[serde(with = "serde_ms")]
    pub created_at: DateTime<Utc>,
}

/// One supplier ticket behind an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub supplier: String,
    pub system: String,
    pub state: LegState,
    pub native_id: Option<String>,
    pub native_number: Option<String>,
    pub native_status: Option<String>,
    pub url: Option<String>,
    #[serde(with = "serde_ms")]
    pub opened_at: DateTime<Utc>,
    #[serde(with = "serde_ms::option")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Native values the hub could not map; kept so nothing the supplier said is lost.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty", default)]
    pub unmapped: serde_json::Map<String, serde_json::Value>,
    /// The leg of the supplier that owns the incident; its status drives the record.
    #[serde(default)]
    pub primary: bool,
}

/// What happened to an attachment on one supplier leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentDelivery {
    pub supplier: String,
    /// `sent`, `received` (the file came from this supplier) or `refused`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native_id: Option<String>,
}

/// A file on the record, stored once per content (SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: i64,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    /// `hub`, or the supplier the file came from.
    pub origin: String,
    #[serde(with = "serde_ms")]
    pub created_at: DateTime<Utc>,
    pub deliveries: Vec<AttachmentDelivery>,
}

/// The unified service record of an incident, as every API answer and event carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    #[serde(rename = "ref")]
    pub reference: TicketRef,
    pub title: String,
    pub description: String,
    pub status: Status,
    pub hold_reason: Option<HoldReason>,
    pub impact: Impact,
    pub urgency: Urgency,
    pub priority: Priority,
    pub priority_source: PrioritySource,
    pub category: Option<String>,
    pub service: Option<String>,
    pub ci: Option<String>,
    pub caller: String,
    pub assigned_supplier: Option<String>,
    pub resolution: Option<Resolution>,
    pub notes: Vec<Note>,
    #[serde(with = "serde_ms")]
    pub opened_at: DateTime<Utc>,
    #[serde(with = "serde_ms")]
    pub updated_at: DateTime<Utc>,
    #[serde(with = "serde_ms::option")]
    pub resolved_at: Option<DateTime<Utc>>,
    #[serde(with = "serde_ms::option")]
    pub closed_at: Option<DateTime<Utc>>,
    pub version: i32,
    /// The change that caused this incident, as the service desk found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by_change: Option<ChangeRef>,
    /// The change that fixed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_by_change: Option<ChangeRef>,
    pub legs: Vec<Leg>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// A new incident as the service desk raises it, already checked against the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIncident {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub service: Option<String>,
    pub ci: Option<String>,
    pub impact: Impact,
    pub urgency: Urgency,
    pub caller: String,
    pub category: Option<String>,
}

/// Field changes to an incident, from the hub's API or from a supplier. `None` = unchanged;
/// for clearable fields `Some(None)` clears.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub hold_reason: Option<Option<HoldReason>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub category: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub ci: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub resolution: Option<Option<Resolution>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub caused_by_change: Option<Option<ChangeRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub fixed_by_change: Option<Option<ChangeRef>>,
}

impl IncidentChanges {
    pub fn is_empty(&self) -> bool {
        *self == IncidentChanges::default()
    }

    /// Whether it only names (or unnames) the changes that caused or fixed the incident.
    pub fn only_links(&self) -> bool {
        IncidentChanges { caused_by_change: None, fixed_by_change: None, ..self.clone() }.is_empty()
    }
}

/// Distinguishes an absent field (unchanged) from an explicit `null` (cleared).
pub(crate) mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Why a requested change cannot be applied to the incident as it stands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("an incident on hold needs a hold_reason")]
    HoldReasonRequired,
    #[error("a resolved incident needs a resolution code")]
    ResolutionRequired,
    #[error("the incident is {0} and takes no further changes")]
    Terminal(Status),
}

impl Incident {
    /// Checks that `changes` would leave the incident in a coherent state.
    pub fn check(&self, changes: &IncidentChanges) -> Result<(), LifecycleError> {
        let status = changes.status.unwrap_or(self.status);
        // A closed incident still learns which change caused or fixed it.
        if self.status.is_terminal() && !changes.only_links() {
            return Err(LifecycleError::Terminal(self.status));
        }
        let hold = changes.hold_reason.unwrap_or(self.hold_reason);
        if status == Status::OnHold && hold.is_none() {
            return Err(LifecycleError::HoldReasonRequired);
        }
        let resolution = changes.resolution.clone().unwrap_or_else(|| self.resolution.clone());
        if status == Status::Resolved && resolution.is_none() {
            return Err(LifecycleError::ResolutionRequired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_refs_parse_strictly() {
        assert_eq!(TicketRef::incident(42).as_str(), "INC-000042");
        assert!("INC-000042".parse::<TicketRef>().is_ok());
        assert!("INC-42".parse::<TicketRef>().is_err());
        assert!("XYZ-000042".parse::<TicketRef>().is_err());
        assert!("INC-00004a".parse::<TicketRef>().is_err());
    }

    #[test]
    fn scales_reject_out_of_range() {
        assert!(Impact::new(0).is_none());
        assert!(Impact::new(4).is_none());
        assert!(Priority::new(5).is_some());
        assert!(serde_json::from_value::<Urgency>(serde_json::json!(7)).is_err());
    }

    #[test]
    fn changes_distinguish_absent_from_null() {
        let c: IncidentChanges = serde_json::from_value(serde_json::json!({"ci": null})).unwrap();
        assert_eq!(c.ci, Some(None));
        assert_eq!(c.category, None);
        assert!(!c.is_empty());
    }
}
