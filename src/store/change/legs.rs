//! Each change leg's record in the supplier's own system: the snapshot its dispatcher works
//! from, the link to the supplier's change once created there, what the hub last wrote to it,
//! and what a read of it does to the leg (its state, its window, the supplier's approval).
//!
//! A read never forces the record: a move the change's rules refuse (a leg started before the
//! leg it depends on succeeded, a window outside the change's) leaves the leg where it was and
//! is recorded on it, with why, for the change manager to settle with the supplier.

use super::*;

/// What a leg's dispatcher needs, read in one go.
#[derive(Debug, Clone)]
pub struct LegSnapshot {
    pub change: ChangeRow,
    pub leg: ChangeLegRow,
    /// `approved`, `pre_approved`, `pending` or `rejected`.
    pub approval: &'static str,
}

impl LegSnapshot {
    pub fn status(&self) -> StoreResult<ChangeStatus> {
        self.change.status()
    }
    pub fn change_type(&self) -> StoreResult<ChangeType> {
        self.change.kind()
    }
    pub fn leg_state(&self) -> StoreResult<LegState> {
        self.leg.state()
    }
}

pub fn snapshot(conn: &mut PgConnection, rules: &Rules<'_>, reference: &str, supplier: &str) -> StoreResult<Option<LegSnapshot>> {
    let change = find_row(conn, reference)?;
    let legs = legs_of(conn, change.id)?;
    let Some(leg) = legs.iter().find(|l| l.supplier_id == supplier).cloned() else { return Ok(None) };
    let (approval, _) = approval_word(rules, &change, &legs, &approvals_of(conn, change.id)?, &conflicts_of(conn, change.id)?)?;
    Ok(Some(LegSnapshot { change, leg, approval }))
}

/// The change reference of every leg at `supplier` whose change is still open.
pub fn open_at(conn: &mut PgConnection, supplier: &str) -> StoreResult<Vec<String>> {
    Ok(change_legs::table
        .inner_join(changes::table)
        .filter(change_legs::supplier_id.eq(supplier))
        .filter(change_legs::native_id.is_not_null())
        .filter(changes::closed_at.is_null())
        .order(changes::id)
        .select(changes::reference)
        .load(conn)?)
}

fn leg_row(conn: &mut PgConnection, change_id: i64, supplier: &str) -> StoreResult<ChangeLegRow> {
    change_legs::table
        .filter(change_legs::change_id.eq(change_id))
        .filter(change_legs::supplier_id.eq(supplier))
        .select(ChangeLegRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("supplier {supplier}'s leg")))
}

/// Links the leg to the change created for it in the supplier's system.
pub fn link(conn: &mut PgConnection, ctx: &Context, reference: &str, supplier: &str, native_id: &str, native_number: Option<&str>, pushed: &Value) -> StoreResult<()> {
    conn.transaction(|conn| {
        let row = lock_row(conn, reference)?;
        let leg = leg_row(conn, row.id, supplier)?;
        if leg.native_id.as_deref() == Some(native_id) {
            return Ok(());
        }
        diesel::update(change_legs::table.find(leg.id))
            .set((
                change_legs::native_id.eq(native_id),
                change_legs::native_number.eq(native_number.map(str::to_string).or(leg.native_number.clone())),
                change_legs::pushed.eq(pushed),
                change_legs::last_error.eq(None::<String>),
                change_legs::updated_at.eq(Utc::now()),
            ))
            .execute(conn)?;
        record_event(conn, ctx, &row, "change.leg_linked", json!({ "supplier": supplier, "native_id": native_id, "native_number": native_number }))
    })
}

/// Records what was last written to the supplier's change.
pub fn pushed(conn: &mut PgConnection, leg_id: i64, body: &Value) -> StoreResult<()> {
    diesel::update(change_legs::table.find(leg_id)).set((change_legs::pushed.eq(body), change_legs::last_error.eq(None::<String>))).execute(conn)?;
    Ok(())
}

/// Records that the back-out request reached the supplier's change.
pub fn backout_sent(conn: &mut PgConnection, ctx: &Context, reference: &str, supplier: &str) -> StoreResult<()> {
    conn.transaction(|conn| {
        let row = lock_row(conn, reference)?;
        let leg = leg_row(conn, row.id, supplier)?;
        diesel::update(change_legs::table.find(leg.id)).set(change_legs::backout_sent_at.eq(Utc::now())).execute(conn)?;
        record_event(conn, ctx, &row, "change.backout_sent", json!({ "supplier": supplier, "native_number": leg.native_number }))
    })
}

/// Records why the leg's change could not be brought in line (retries exhausted, refused).
pub fn failed(conn: &mut PgConnection, ctx: &Context, reference: &str, supplier: &str, reason: &str) -> StoreResult<()> {
    conn.transaction(|conn| {
        let row = lock_row(conn, reference)?;
        let leg = leg_row(conn, row.id, supplier)?;
        diesel::update(change_legs::table.find(leg.id)).set(change_legs::last_error.eq(reason)).execute(conn)?;
        record_event(conn, ctx, &row, "change.leg_error", json!({ "supplier": supplier, "reason": reason }))
    })
}

/// The supplier's change as read from its system, in the leg's terms.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub state: Option<LegState>,
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The supplier's approvers' decision, once taken there.
    pub approval: Option<bool>,
    pub native_status: Option<String>,
    pub native_number: Option<String>,
    pub kept: Value,
    pub unmapped: Value,
    /// Where it was read, for the record (`ServiceNow CHG0030001`).
    pub source: String,
}

/// Applies a read of the supplier's change to its leg. Returns whether the leg or the change
/// moved.
pub fn absorb(conn: &mut PgConnection, ctx: &Context, rules: &Rules<'_>, reference: &str, supplier: &str, r: &Reading) -> StoreResult<bool> {
    conn.transaction(|conn| {
        let row = lock_row(conn, reference)?;
        let leg = leg_row(conn, row.id, supplier)?;
        diesel::update(change_legs::table.find(leg.id))
            .set((
                change_legs::native_status.eq(&r.native_status),
                change_legs::native_kept.eq(&r.kept),
                change_legs::unmapped.eq(&r.unmapped),
                change_legs::native_number.eq(r.native_number.clone().or(leg.native_number.clone())),
            ))
            .execute(conn)?;
        let status = row.status()?;
        if row.closed_at.is_some() {
            return Ok(false);
        }
        let mut moved = false;
        if let Some(approve) = r.approval {
            let current = approvals_of(conn, row.id)?.into_iter().find(|a| a.kind == "supplier" && a.approver == supplier).map(|a| a.approve);
            let deciding = matches!(status, ChangeStatus::Assess | ChangeStatus::Authorize) && row.kind()? != ChangeType::Standard;
            if deciding && current != Some(approve) {
                let verb = if approve { "approved" } else { "rejected" };
                let by = Approver::Supplier(supplier.to_string());
                match decide(conn, ctx, rules, reference, &by, approve, &format!("{verb} in {}", r.source)) {
                    Ok(_) => moved = true,
                    Err(e @ (StoreError::Conflict(_) | StoreError::Blocked(_) | StoreError::Invalid(_))) => {
                        return refuse(conn, ctx, reference, supplier, &leg, r, &e).map(|_| moved)
                    }
                    Err(e) => return Err(e),
                }
                if !approve {
                    return Ok(moved);
                }
            }
        }
        let from = leg.state()?;
        // A leg with no window of its own works in the change's: reading that back is no news.
        let own = (leg.planned_start, leg.planned_end);
        let window = r.window.filter(|(s, e)| (Some(*s), Some(*e)) != own && !(own == (None, None) && (Some(*s), Some(*e)) == (row.planned_start, row.planned_end)));
        // Reads only move a leg forward: a supplier's tool that lags behind what the supplier
        // reported through the hub's API does not undo it.
        let to = r.state.filter(|t| progress(*t) > progress(from) || (*t == LegState::BackedOut && from != LegState::BackedOut));
        // A leg read done that was last seen before it started passed through `in_progress`
        // between two reads.
        let steps: Vec<Option<LegState>> = match to {
            Some(t @ (LegState::Succeeded | LegState::SucceededWithIssues | LegState::Failed)) if matches!(from, LegState::Accepted | LegState::Scheduled | LegState::Ready) => {
                vec![Some(LegState::InProgress), Some(t)]
            }
            Some(t) => vec![Some(t)],
            None if window.is_some() => vec![None],
            None => vec![],
        };
        for (i, step) in steps.into_iter().enumerate() {
            let (planned_start, planned_end) = match (i, window) {
                (0, Some((s, e))) => (Some(s), Some(e)),
                _ => (None, None),
            };
            let u = LegUpdate { state: step, planned_start, planned_end, native_number: None, depends_on: None };
            match update_leg(conn, ctx, rules, reference, supplier, &u) {
                Ok(_) => moved = true,
                Err(e @ (StoreError::Conflict(_) | StoreError::Blocked(_) | StoreError::Invalid(_))) => return refuse(conn, ctx, reference, supplier, &leg, r, &e).map(|_| moved),
                Err(e) => return Err(e),
            }
        }
        if moved && leg.last_error.is_some() {
            diesel::update(change_legs::table.find(leg.id)).set(change_legs::last_error.eq(None::<String>)).execute(conn)?;
        }
        Ok(moved)
    })
}

/// How far along a leg is.
fn progress(s: LegState) -> u8 {
    match s {
        LegState::Proposed => 0,
        LegState::Accepted => 1,
        LegState::Scheduled => 2,
        LegState::Ready => 3,
        LegState::InProgress => 4,
        _ => 5,
    }
}

/// Keeps the leg where it was and says why, once per distinct refusal.
fn refuse(conn: &mut PgConnection, ctx: &Context, reference: &str, supplier: &str, leg: &ChangeLegRow, r: &Reading, e: &StoreError) -> StoreResult<()> {
    let why = format!("the supplier's change ({}, status {}) was not applied: {e}", r.source, r.native_status.as_deref().unwrap_or("unknown"));
    if leg.last_error.as_deref() == Some(why.as_str()) {
        return Ok(());
    }
    let row = find_row(conn, reference)?;
    diesel::update(change_legs::table.find(leg.id)).set(change_legs::last_error.eq(&why)).execute(conn)?;
    record_event(conn, ctx, &row, "change.leg_refused", json!({ "supplier": supplier, "native_status": r.native_status, "why": why }))
}
