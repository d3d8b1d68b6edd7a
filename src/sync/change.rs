//! Change legs: each supplier's part of a change, kept as a change record in its own system.
//!
//! A leg's dispatcher reads the supplier's change first, so the supplier's own moves reach the
//! record before anything is written, then writes what the hub decided and the supplier's
//! change lacks. The change is created there once (a retried create adopts what an unanswered
//! attempt made), then given the stages the hub decides (assess, authorize, scheduled; cancelled,
//! closed), its window and its plans. From implementation on the supplier's change is the
//! supplier's to move: the hub reads its progress and outcome, never writes them. A back-out
//! request after another leg failed reaches the supplier's change as a work note.
//!
//! The same dispatch runs after every edit of the change and from the reconciliation sweep, so
//! a change made in the supplier's tool is read within one sweep even with no notification.

use super::{Engine, SyncError};
use crate::adapters::change::{self as mapping, ChangeClient, ChangeMapping};
use crate::adapters::MapError;
use crate::domain::change::lifecycle::{leg_state_of, LegState};
use crate::domain::change::{Approval, Change, ChangeLeg, ChangeStatus, Outcome, Risk};
use crate::domain::{Impact, Urgency};
use crate::store::change::legs::{self, LegSnapshot, Reading};
use crate::store::record::Context;
use serde_json::{Map, Value};

/// How far through planning a stage is, for the hub's stages and the leg's: the hub writes a
/// stage to the supplier's change only when that moves it forward.
fn planning_rank(state: LegState) -> u8 {
    match state {
        LegState::Proposed => 0,
        LegState::Accepted => 1,
        _ => 2,
    }
}

/// The stage the hub writes to the supplier's change, if any.
fn stage_to_write(status: ChangeStatus, leg: LegState) -> Option<ChangeStatus> {
    match status {
        ChangeStatus::Assess | ChangeStatus::Authorize => {
            let rank = if status == ChangeStatus::Assess { 0 } else { 1 };
            (!leg.is_final() && leg != LegState::InProgress && rank >= planning_rank(leg)).then_some(status)
        }
        // Several systems read their scheduled stage as approved (Remedy's Scheduled, JSM's
        // Awaiting implementation): the hub's schedule reaches a leg only once the supplier
        // approved its part, never approving it in the supplier's name.
        ChangeStatus::Scheduled => (leg == LegState::Ready).then_some(status),
        ChangeStatus::Cancelled | ChangeStatus::Rejected if !leg.is_final() || leg == LegState::Cancelled => Some(ChangeStatus::Cancelled),
        ChangeStatus::Closed if leg.is_final() && leg != LegState::Cancelled => Some(ChangeStatus::Closed),
        _ => None,
    }
}

/// The canonical change as the supplier's change should hold it: the record's details, the
/// leg's own window where it has one, the stage the hub writes, and the supplier's own values
/// kept from the last read.
fn wanted(snap: &LegSnapshot, system: &str) -> Result<Change, SyncError> {
    let (c, l) = (&snap.change, &snap.leg);
    let leg_state = snap.leg_state()?;
    let status = stage_to_write(snap.status()?, leg_state);
    let mut change = Change::blank();
    change.reference = c.reference.parse().ok();
    change.title = c.title.clone();
    // Plans travel in the description: no supplier system has a field for each.
    let mut description = vec![c.description.clone()];
    for (title, text) in [("Implementation plan", &c.implementation_plan), ("Back-out plan", &c.backout_plan), ("Test plan", &c.test_plan)] {
        if !text.trim().is_empty() {
            description.push(format!("{title}:\n{text}"));
        }
    }
    change.description = description.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join("\n\n");
    change.change_type = snap.change_type().ok();
    change.status = status;
    change.on_hold = c.on_hold;
    change.hold_reason = c.hold_reason.clone().filter(|_| c.on_hold);
    change.risk = u8::try_from(c.risk).ok().and_then(Risk::new);
    change.impact = u8::try_from(c.impact).ok().and_then(Impact::new);
    change.urgency = u8::try_from(c.urgency).ok().and_then(Urgency::new);
    (change.planned_start, change.planned_end) = match (l.planned_start, l.planned_end) {
        (Some(s), Some(e)) => (Some(s), Some(e)),
        _ => (c.planned_start, c.planned_end),
    };
    if status == Some(ChangeStatus::Closed) {
        change.outcome = match leg_state {
            LegState::Failed | LegState::BackedOut => Some(Outcome::Unsuccessful),
            LegState::SucceededWithIssues => Some(Outcome::SuccessfulWithIssues),
            _ => Some(Outcome::Successful),
        };
    }
    change.services = c.services.clone();
    change.cis = c.cis.clone();
    change.legs = vec![ChangeLeg {
        supplier: Some(l.supplier_id.clone()),
        system: system.to_string(),
        native_id: l.native_id.clone().unwrap_or_default(),
        native_number: l.native_number.clone(),
        native_status: l.native_status.clone(),
        native: l.native_kept.as_object().cloned().unwrap_or_default(),
        unmapped: Map::new(),
    }];
    Ok(change)
}

/// The supplier's change in the leg's terms.
fn reading(read: &Change, source: String) -> Reading {
    let leg = read.legs.first();
    let approval = match read.approval {
        Some(Approval::Approved) => Some(true),
        Some(Approval::Rejected) => Some(false),
        _ => None,
    };
    Reading {
        state: read.status.and_then(|s| leg_state_of(s, read.outcome, read.approval)),
        window: read.planned_start.zip(read.planned_end).filter(|(s, e)| e > s),
        approval,
        native_status: leg.and_then(|l| l.native_status.clone()),
        native_number: leg.and_then(|l| l.native_number.clone()),
        kept: Value::Object(leg.map(|l| l.native.clone()).unwrap_or_default()),
        unmapped: Value::Object(leg.map(|l| l.unmapped.clone()).unwrap_or_default()),
        source,
    }
}

impl Engine {
    async fn change_snapshot(&self, reference: &str, supplier: &str) -> Result<Option<LegSnapshot>, SyncError> {
        let (settings, r, s) = (self.changes.clone(), reference.to_string(), supplier.to_string());
        Ok(self.store.run(move |c| legs::snapshot(c, &crate::store::change::rules_of(&settings), &r, &s)).await?)
    }

    /// Applies a record of the supplier's change to the leg.
    async fn absorb_change(&self, ctx: &Context, supplier: &str, reference: &str, mapping: &dyn ChangeMapping, record: &Value) -> Result<(), SyncError> {
        let read = mapping.read(record)?;
        let number = read.legs.first().map(|l| l.native_number.clone().unwrap_or_else(|| l.native_id.clone())).unwrap_or_default();
        let r = reading(&read, format!("{} change {number} at {supplier}", mapping.system()));
        let (settings, ctx, reference, supplier) = (self.changes.clone(), ctx.clone(), reference.to_string(), supplier.to_string());
        self.store.run(move |c| legs::absorb(c, &ctx, &crate::store::change::rules_of(&settings), &reference, &supplier, &r)).await?;
        self.notify();
        Ok(())
    }

    /// Brings `supplier`'s change for the hub change `reference` in line with the record, and
    /// the record in line with what the supplier did in its own tool.
    pub async fn sync_change_leg(&self, supplier: &str, reference: &str, correlation_id: &str) -> Result<(), SyncError> {
        let link = self.supplier(supplier)?;
        let Some(client) = link.client.changes().filter(|_| link.settings.change_records) else { return Ok(()) };
        let mapping = mapping::mapping_for(client.change_system()).ok_or_else(|| MapError(format!("system `{}` has no change mapping", client.change_system())))?;
        let Some(snap) = self.change_snapshot(reference, supplier).await? else { return Ok(()) };
        let ctx = Context::supplier(supplier, correlation_id);
        let native_id = match snap.leg.native_id.clone() {
            Some(id) => {
                let current = client.fetch_change(&id).await?;
                self.absorb_change(&ctx, supplier, reference, mapping, &current).await?;
                id
            }
            None => {
                if snap.leg_state()? == LegState::Cancelled || snap.status()? == ChangeStatus::Draft {
                    return Ok(());
                }
                self.create_change_leg(&ctx, client, mapping, &snap).await?
            }
        };
        let Some(snap) = self.change_snapshot(reference, supplier).await? else { return Ok(()) };
        let body = mapping.create_body(&wanted(&snap, mapping.system())?);
        if snap.leg.pushed.as_ref() != Some(&body) {
            let answer = client.update_change(&native_id, &body).await?;
            let (leg_id, sent) = (snap.leg.id, body.clone());
            self.store.run(move |c| legs::pushed(c, leg_id, &sent)).await?;
            self.absorb_change(&ctx, supplier, reference, mapping, &answer).await?;
        }
        if snap.leg.backout_requested_at.is_some() && snap.leg.backout_sent_at.is_none() {
            let text = format!(
                "Back-out requested by SIAM Hub for change {reference}: another supplier's part of this change failed. Please back out the work done under this change and report the result."
            );
            client.add_change_note(&native_id, &text).await?;
            let (ctx, r, s) = (ctx.clone(), reference.to_string(), supplier.to_string());
            self.store.run(move |c| legs::backout_sent(c, &ctx, &r, &s)).await?;
        }
        Ok(())
    }

    /// Creates the supplier's change and links the leg to it.
    async fn create_change_leg(&self, ctx: &Context, client: &dyn ChangeClient, mapping: &dyn ChangeMapping, snap: &LegSnapshot) -> Result<String, SyncError> {
        let reference = snap.change.reference.clone();
        let supplier = snap.leg.supplier_id.clone();
        let body = mapping.create_body(&wanted(snap, mapping.system())?);
        let created = client.create_change(&reference, &body).await?;
        let read = mapping.read(&created)?;
        let leg = read.legs.first().ok_or_else(|| MapError("the supplier's answer to the create holds no change".into()))?;
        // A system with no business number (TMF655) shows its id to people.
        let (native_id, number) = (leg.native_id.clone(), leg.native_number.clone().or_else(|| Some(leg.native_id.clone())));
        let (c, r, s, id, n, sent) = (ctx.clone(), reference.clone(), supplier.clone(), native_id.clone(), number.clone(), body.clone());
        self.store.run(move |conn| legs::link(conn, &c, &r, &s, &id, n.as_deref(), &sent)).await?;
        self.absorb_change(ctx, &supplier, &reference, mapping, &created).await?;
        Ok(native_id)
    }
}

/// Whether a dispatch message names a change rather than an incident.
pub fn is_change(reference: &str) -> bool {
    reference.starts_with("CHG-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_moves_a_supplier_change_forward_through_planning_only() {
        use ChangeStatus as C;
        use LegState as L;
        assert_eq!(stage_to_write(C::Authorize, L::Proposed), Some(C::Authorize));
        // The supplier already scheduled its part: authorising the change does not undo that.
        assert_eq!(stage_to_write(C::Authorize, L::Scheduled), None);
        assert_eq!(stage_to_write(C::Scheduled, L::Ready), Some(C::Scheduled));
        // Scheduling the change does not approve a leg its supplier has not approved.
        assert_eq!(stage_to_write(C::Scheduled, L::Scheduled), None);
        // Implementation is the supplier's to report.
        assert_eq!(stage_to_write(C::Implement, L::Ready), None);
        assert_eq!(stage_to_write(C::Review, L::Succeeded), None);
        assert_eq!(stage_to_write(C::Scheduled, L::InProgress), None);
        assert_eq!(stage_to_write(C::Cancelled, L::Scheduled), Some(C::Cancelled));
        assert_eq!(stage_to_write(C::Rejected, L::Proposed), Some(C::Cancelled));
        assert_eq!(stage_to_write(C::Cancelled, L::Succeeded), None);
        assert_eq!(stage_to_write(C::Closed, L::Succeeded), Some(C::Closed));
        assert_eq!(stage_to_write(C::Closed, L::Cancelled), None);
    }

    #[test]
    fn a_supplier_change_reads_as_the_leg_state_its_stage_and_outcome_say() {
        use ChangeStatus::*;
        assert_eq!(leg_state_of(Assess, None, None), None);
        assert_eq!(leg_state_of(Authorize, None, Some(Approval::Requested)), Some(LegState::Accepted));
        assert_eq!(leg_state_of(Scheduled, None, Some(Approval::Requested)), Some(LegState::Scheduled));
        assert_eq!(leg_state_of(Scheduled, None, Some(Approval::Approved)), Some(LegState::Ready));
        assert_eq!(leg_state_of(Implement, None, Some(Approval::Approved)), Some(LegState::InProgress));
        assert_eq!(leg_state_of(Review, Some(Outcome::Unsuccessful), None), Some(LegState::Failed));
        assert_eq!(leg_state_of(Closed, Some(Outcome::SuccessfulWithIssues), None), Some(LegState::SucceededWithIssues));
        assert_eq!(leg_state_of(Review, None, None), Some(LegState::Succeeded));
        assert_eq!(leg_state_of(Cancelled, None, None), Some(LegState::Cancelled));
    }
}
