//! What a supplier may see and do on an incident, read from its legs.
//!
//! A supplier works a ticket (reads it, adds notes and files, hands it back) while its leg is in
//! play. Once the ticket it worked is over (its leg closed with the supplier's ticket, or the
//! incident closed or cancelled) it keeps read access to it. A leg ended by the hub or by the
//! supplier itself (handed back, withdrawn on a re-route, never created) gives nothing: the
//! supplier no longer sees the record at all, so notes and files added after it let go never
//! reach it. Whatever it sees, it never sees another supplier's leg details (native ids and
//! values, errors, hand-back reasons).

use super::event::EventType;
use super::incident::{Incident, Leg, LegState};

/// A supplier's access to one incident, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SupplierAccess {
    /// Not shown at all: the supplier never held it, or let go of it.
    None,
    /// The ticket it worked to the end: read only.
    Read,
    /// Its leg is in play: read, annotate, attach, hand back.
    Work,
}

impl LegState {
    /// Leg states that let their supplier see the incident (the store filters lists by them).
    pub const SEEN_BY_ITS_SUPPLIER: &'static [LegState] = &[LegState::Pending, LegState::Open, LegState::Closed];

    /// What a leg in this state gives its supplier.
    pub fn supplier_access(&self) -> SupplierAccess {
        match self {
            LegState::Pending | LegState::Open => SupplierAccess::Work,
            LegState::Closed => SupplierAccess::Read,
            LegState::Failed | LegState::HandedBack | LegState::Withdrawn => SupplierAccess::None,
        }
    }
}

impl EventType {
    /// Events whose data describe one supplier's own ticket (native ids and values, errors,
    /// its reasons, its SLA clocks): shown in full only to that supplier and to the hub's own
    /// roles.
    pub fn carries_leg_details(&self) -> bool {
        matches!(
            self,
            EventType::LegOpened
                | EventType::LegUpdated
                | EventType::LegFailed
                | EventType::LegHandedBack
                | EventType::UnmappedValue
                | EventType::AttachmentRefused
                | EventType::ConflictResolved
                | EventType::SlaWarning
                | EventType::SlaBreached
        )
    }
}

impl Incident {
    /// The strongest access any of `supplier`'s legs gives it; a closed or cancelled incident
    /// takes no more work from anyone.
    pub fn supplier_access(&self, supplier: &str) -> SupplierAccess {
        let best = self.legs.iter().filter(|l| l.supplier == supplier).map(|l| l.state.supplier_access()).max().unwrap_or(SupplierAccess::None);
        if best == SupplierAccess::Work && self.status.is_terminal() {
            SupplierAccess::Read
        } else {
            best
        }
    }

    /// The record as `supplier` may see it: other suppliers' legs without their details, and
    /// file deliveries to its own legs only.
    pub fn seen_by_supplier(mut self, supplier: &str) -> Incident {
        for leg in self.legs.iter_mut().filter(|l| l.supplier != supplier) {
            leg.redact();
        }
        for att in &mut self.attachments {
            att.deliveries.retain(|d| d.supplier == supplier);
        }
        self
    }
}

impl Leg {
    /// Keeps who and in what state; drops the supplier's own ids, values and errors.
    fn redact(&mut self) {
        self.native_id = None;
        self.native_number = None;
        self.native_status = None;
        self.url = None;
        self.last_error = None;
        self.unmapped.clear();
    }
}

/// An event's data as `viewer` (a supplier) may see it: another supplier's leg details are
/// reduced to whose leg it was.
pub fn event_data_seen_by_supplier(kind: &str, data: &serde_json::Value, viewer: &str) -> serde_json::Value {
    let about = data.get("supplier").and_then(|s| s.as_str());
    let other = about.is_some_and(|s| s != viewer);
    let detailed = serde_json::from_value::<EventType>(serde_json::Value::String(kind.to_string())).map(|k| k.carries_leg_details()).unwrap_or(true);
    if other && detailed {
        serde_json::json!({ "supplier": about })
    } else {
        data.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::{AttachmentDelivery, Status};

    fn incident(legs: &[(&str, LegState)], status: Status) -> Incident {
        let doc = serde_json::json!({
            "ref": "INC-000001", "title": "t", "description": "", "status": status, "hold_reason": null,
            "impact": 2, "urgency": 2, "priority": 3, "priority_source": "derived", "category": null,
            "service": null, "ci": null, "caller": "c", "assigned_supplier": null, "resolution": null,
            "notes": [], "opened_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
            "resolved_at": null, "closed_at": null, "version": 1,
            "legs": legs.iter().map(|(s, st)| serde_json::json!({
                "supplier": s, "system": "servicenow", "state": st, "native_id": format!("{s}-id"), "native_number": "N1",
                "native_status": "2", "url": "https://x", "opened_at": "2026-01-01T00:00:00.000Z", "closed_at": null,
                "last_error": "boom", "unmapped": {"state": "77"}
            })).collect::<Vec<_>>(),
            "attachments": [{"id": 1, "file_name": "f", "content_type": "text/plain", "size": 1, "sha256": "00", "origin": "hub",
                "created_at": "2026-01-01T00:00:00.000Z", "deliveries": [
                    {"supplier": "a", "state": "sent", "native_id": "x"}, {"supplier": "b", "state": "refused", "reason": "too big"}]}]
        });
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn a_supplier_works_while_its_leg_is_in_play_and_reads_what_it_worked_to_the_end() {
        use SupplierAccess::*;
        let cases = [
            (vec![("a", LegState::Pending)], Status::New, Work),
            (vec![("a", LegState::Open)], Status::InProgress, Work),
            (vec![("a", LegState::Open)], Status::Closed, Read),
            (vec![("a", LegState::Closed)], Status::Resolved, Read),
            (vec![("a", LegState::HandedBack)], Status::Assigned, None),
            (vec![("a", LegState::Withdrawn)], Status::Assigned, None),
            (vec![("a", LegState::Failed)], Status::New, None),
            (vec![("b", LegState::Open)], Status::Assigned, None),
            // Routed back to a supplier that handed it back earlier: the new leg counts.
            (vec![("a", LegState::HandedBack), ("b", LegState::Withdrawn), ("a", LegState::Open)], Status::Assigned, Work),
        ];
        for (legs, status, want) in cases {
            assert_eq!(incident(&legs, status).supplier_access("a"), want, "{legs:?} {status}");
        }
    }

    #[test]
    fn a_supplier_never_sees_another_suppliers_leg_details() {
        let seen = incident(&[("a", LegState::Open), ("b", LegState::HandedBack)], Status::Assigned).seen_by_supplier("a");
        let (own, other) = (&seen.legs[0], &seen.legs[1]);
        assert_eq!(own.native_id.as_deref(), Some("a-id"));
        assert_eq!(own.last_error.as_deref(), Some("boom"));
        assert_eq!((other.supplier.as_str(), other.state), ("b", LegState::HandedBack));
        assert!(other.native_id.is_none() && other.native_number.is_none() && other.native_status.is_none() && other.url.is_none());
        assert!(other.last_error.is_none() && other.unmapped.is_empty());
        assert_eq!(seen.attachments[0].deliveries, vec![AttachmentDelivery { supplier: "a".into(), state: "sent".into(), reason: None, native_id: Some("x".into()) }]);
    }

    #[test]
    fn another_suppliers_leg_events_show_only_whose_they_were() {
        let failed = serde_json::json!({"supplier": "b", "reason": "401 from https://b.example with user x"});
        assert_eq!(event_data_seen_by_supplier("leg.failed", &failed, "a"), serde_json::json!({"supplier": "b"}));
        assert_eq!(event_data_seen_by_supplier("leg.failed", &failed, "b"), failed);
        let routed = serde_json::json!({"supplier": "b", "rule": "network"});
        assert_eq!(event_data_seen_by_supplier("incident.routed", &routed, "a"), routed, "routing is the record's own story");
        assert_eq!(event_data_seen_by_supplier("some.future_event", &failed, "a"), serde_json::json!({"supplier": "b"}), "unknown kinds are redacted");
    }
}
