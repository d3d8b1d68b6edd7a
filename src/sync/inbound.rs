//! Applying a supplier's view of its ticket to the unified record.
//!
//! Echoes are recognised deterministically: the leg's `baseline` holds the supplier fields as
//! last agreed, so only what differs from it (read canonically) is a supplier change, whoever
//! wrote it; and the record's revision orders deliveries, so an older delivery changes nothing.

use super::{Engine, SyncError};
use crate::adapters::{Canonical, Mapping, NativeNote, NativeRecord};
use crate::config::{ConflictPolicy, SYNCED_FIELDS};
use crate::domain::*;
use crate::store::models::LegRow;
use crate::store::record::{self, Context, NewNote};
use crate::store::schema::{incidents, legs, note_deliveries, notes};
use crate::store::{StoreError, StoreResult};
use chrono::Utc;
use diesel::prelude::*;
use diesel::PgConnection;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Dispatch reason of a delivery whose order could not be told: read the ticket again.
pub const REREAD: &str = "supplier ticket re-read";

/// What an inbound record did to the record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The hub has no leg for this supplier ticket (not raised through the hub).
    pub unknown_ticket: bool,
    /// The delivery was older than, or the same as, what the hub already had.
    pub stale: bool,
    /// The delivery (by its id) was received before; nothing was applied again.
    pub duplicate: bool,
    /// Canonical fields that changed.
    pub changed: Vec<String>,
    pub notes_added: usize,
    pub reference: Option<String>,
    /// The supplier refused the ticket and it was handed back.
    pub handed_back: bool,
    /// The leg and incident ids, when the leg was active (in play) as the record arrived.
    pub active_leg: Option<(i64, i64)>,
    /// The delivery carries the revision the hub holds but other values: which is newer cannot
    /// be told, so the ticket is read again after it.
    pub reread: bool,
}

/// A leg's baseline as native field -> value.
pub(super) fn baseline_map(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object().map(|o| o.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()).unwrap_or_default()
}

/// The canonical changes implied by a supplier record (`new`) against the leg's baseline
/// (`old`), both read canonically, so the rule is the same for every system.
fn changes_from(new: &Canonical, old: &Canonical, close_notes: &str) -> IncidentChanges {
    let mut ch = IncidentChanges::default();
    let status_moved = new.status.is_some() && new.status != old.status;
    if let Some(s) = new.status {
        if status_moved {
            ch.status = Some(s);
        }
        match s {
            Status::OnHold if status_moved || new.hold_reason != old.hold_reason => {
                ch.hold_reason = Some(new.hold_reason.or(Some(HoldReason::Other)));
            }
            Status::Resolved | Status::Closed if status_moved || new.resolution != old.resolution => {
                let fallback = Resolution { code: "other".into(), notes: close_notes.to_string() };
                ch.resolution = Some(Some(new.resolution.clone().unwrap_or(fallback)));
            }
            _ => {}
        }
    }
    if new.impact.is_some() && new.impact != old.impact {
        ch.impact = new.impact;
    }
    if new.urgency.is_some() && new.urgency != old.urgency {
        ch.urgency = new.urgency;
    }
    if new.title != old.title {
        ch.title = new.title.clone().filter(|t| !t.trim().is_empty());
    }
    if new.description != old.description {
        ch.description = new.description.clone();
    }
    if new.category != old.category {
        ch.category = Some(new.category.clone());
    }
    if new.ci != old.ci {
        ch.ci = Some(new.ci.clone());
    }
    ch
}

fn find_leg(conn: &mut PgConnection, supplier: &str, rec: &NativeRecord) -> StoreResult<Option<LegRow>> {
    let by_native = legs::table.filter(legs::supplier_id.eq(supplier)).filter(legs::native_id.eq(&rec.native_id)).select(LegRow::as_select()).first(conn).optional()?;
    if by_native.is_some() {
        return Ok(by_native);
    }
    // A ticket the hub created but whose create answer it never saw: adopt it by correlation id.
    let Some(reference) = &rec.correlation else { return Ok(None) };
    Ok(legs::table
        .inner_join(incidents::table)
        .filter(incidents::reference.eq(reference))
        .filter(legs::supplier_id.eq(supplier))
        .filter(legs::native_id.is_null())
        .select(LegRow::as_select())
        .first(conn)
        .optional()?)
}

/// Whether two canonical readings agree on one synced field.
fn same(a: &Canonical, b: &Canonical, field: &str) -> bool {
    match field {
        "title" => a.title == b.title,
        "description" => a.description == b.description,
        "status" => a.status == b.status,
        "hold_reason" => a.hold_reason == b.hold_reason,
        "impact" => a.impact == b.impact,
        "urgency" => a.urgency == b.urgency,
        "category" => a.category == b.category,
        "ci" => a.ci == b.ci,
        "resolution" => a.resolution == b.resolution,
        _ => true,
    }
}

fn touches(ch: &IncidentChanges, field: &str) -> bool {
    match field {
        "title" => ch.title.is_some(),
        "description" => ch.description.is_some(),
        "status" => ch.status.is_some(),
        "hold_reason" => ch.hold_reason.is_some(),
        "impact" => ch.impact.is_some(),
        "urgency" => ch.urgency.is_some(),
        "category" => ch.category.is_some(),
        "ci" => ch.ci.is_some(),
        "resolution" => ch.resolution.is_some(),
        _ => false,
    }
}

fn drop_field(ch: &mut IncidentChanges, field: &str) {
    match field {
        "title" => ch.title = None,
        "description" => ch.description = None,
        // Hold reason and resolution belong to the status they came with.
        "status" => {
            ch.status = None;
            ch.hold_reason = None;
            ch.resolution = None;
        }
        "hold_reason" => ch.hold_reason = None,
        "impact" => ch.impact = None,
        "urgency" => ch.urgency = None,
        "category" => ch.category = None,
        "ci" => ch.ci = None,
        "resolution" => ch.resolution = None,
        _ => {}
    }
}

impl Engine {
    /// Applies one supplier record (and its notes) in the caller's transaction.
    ///
    /// Only an active leg changes the record, and only the owning (primary) supplier's leg moves
    /// its fields; other legs of a major incident keep their supplier's values on the leg and
    /// contribute notes. A supplier refusing the ticket hands it back.
    ///
    /// Revisions order deliveries, but a revision that is a modification time in whole seconds
    /// (Remedy's) is shared by two changes made in one second. A delivery with the revision
    /// held but other values may be the newer of the two or the older: it is applied (in order,
    /// it is the newer), and the ticket is read again ([`REREAD`]) by a read the hub makes
    /// after both deliveries, so an older one applied last is undone and the record cannot stay
    /// behind the supplier. `fresh`: `rec` is such a read (the answer to the hub's own write
    /// or read), which asks for no further one.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_record_tx(
        &self,
        conn: &mut PgConnection,
        ctx: &Context,
        supplier: &str,
        mapping: &dyn Mapping,
        rec: &NativeRecord,
        notes: &[NativeNote],
        fresh: bool,
    ) -> StoreResult<Applied> {
        let Some(found) = find_leg(conn, supplier, rec)? else {
            return Ok(Applied { unknown_ticket: true, ..Default::default() });
        };
        let mut row = record::lock_row_by_id(conn, found.incident_id)?;
        let leg: LegRow = legs::table.find(found.id).select(LegRow::as_select()).for_update().first(conn)?;
        let mut applied = Applied { reference: Some(row.reference.clone()), ..Default::default() };
        applied.stale = matches!((rec.revision, leg.native_revision), (Some(new), Some(old)) if new < old);
        // An equal revision with the values held is a repeat, and the baseline makes it a no-op.
        let tied = matches!((rec.revision, leg.native_revision), (Some(new), Some(old)) if new == old);
        applied.reread = tied && !fresh && rec.fields != baseline_map(&leg.baseline);
        let active = leg.state()?.is_active();
        applied.active_leg = active.then_some((leg.id, row.id));
        let mut hand_back = None;
        if applied.reread && active {
            record::enqueue_dispatch(conn, ctx, &row.reference, supplier, REREAD)?;
        }

        if !applied.stale {
            // A value the hub is writing right now, which the record already carries, is the
            // echo of that write (its notification overtook the write's answer), not a change.
            let mut baseline = baseline_map(&leg.baseline);
            for (k, v) in baseline_map(&leg.pushing) {
                if rec.fields.get(&k) == Some(&v) {
                    baseline.insert(k, v);
                }
            }
            let canonical = mapping.to_canonical(&rec.fields, rec.assigned);
            // The baseline is read with the record's own assignment, so an assignee change alone
            // is not taken for a status change.
            let agreed = if baseline.is_empty() { Canonical::default() } else { mapping.to_canonical(&baseline, rec.assigned) };
            let primary = row.assigned_supplier.as_deref() == Some(supplier);
            if active && canonical.handed_back.is_some() && agreed.handed_back.is_none() {
                hand_back = canonical.handed_back.clone();
            } else if active && primary {
                let close_notes = canonical.resolution.as_ref().map(|r| r.notes.clone()).unwrap_or_default();
                let mut changes = changes_from(&canonical, &agreed, &close_notes);
                self.settle_conflicts(conn, ctx, &row, mapping, &canonical, &agreed, rec, supplier, &mut changes)?;
                if !changes.is_empty() {
                    let before = row.version;
                    match record::apply_changes(conn, ctx, row.clone(), &changes, &self.matrix) {
                        Ok(updated) => {
                            if updated.version != before {
                                applied.changed = serde_json::to_value(&changes).ok().and_then(|v| v.as_object().map(|o| o.keys().cloned().collect())).unwrap_or_default();
                            }
                            row = updated;
                        }
                        Err(StoreError::Lifecycle(e)) => {
                            // The record refuses the change (e.g. it is closed at the hub): keep
                            // the supplier's values on the leg and say so in the log.
                            tracing::warn!(reference = %row.reference, %supplier, error = %e, "supplier change not applied to the record");
                            record::record_event(
                                conn,
                                ctx,
                                &row,
                                NewEvent::new(EventType::LegUpdated, &ctx.source, json!({ "supplier": supplier, "refused": e.to_string(), "native": rec.fields })),
                            )?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            let old_unmapped = leg.unmapped.as_object().cloned().unwrap_or_default();
            for (field, value) in &canonical.unmapped {
                if old_unmapped.get(field).and_then(|v| v.as_str()) != Some(value.as_str()) {
                    record::record_event(
                        conn,
                        ctx,
                        &row,
                        NewEvent::new(EventType::UnmappedValue, &ctx.source, json!({ "supplier": supplier, "system": mapping.system(), "field": field, "value": value })),
                    )?;
                }
            }
            let native_status = rec.native_status.clone();
            if native_status != leg.native_status {
                record::record_event(
                    conn,
                    ctx,
                    &row,
                    NewEvent::new(EventType::LegUpdated, &ctx.source, json!({ "supplier": supplier, "native_status": native_status, "from": leg.native_status })),
                )?;
            }
            // An inactive leg (handed back, withdrawn, closed) keeps its state.
            let closed = matches!(canonical.status, Some(Status::Closed) | Some(Status::Cancelled));
            let state = match leg.state()? {
                s if !s.is_active() => s,
                _ if closed => LegState::Closed,
                _ => LegState::Open,
            };
            diesel::update(legs::table.find(leg.id))
                .set((
                    legs::native_id.eq(&rec.native_id),
                    legs::native_number.eq(rec.native_number.clone().or(leg.native_number.clone())),
                    legs::native_status.eq(&native_status),
                    legs::native_revision.eq(rec.revision.max(leg.native_revision)),
                    legs::native_updated_at.eq(rec.updated_at.or(leg.native_updated_at)),
                    legs::baseline.eq(json!(rec.fields)),
                    legs::unmapped.eq(json!(canonical.unmapped)),
                    legs::state.eq(state.as_str()),
                    legs::closed_at.eq(if state == LegState::Open { None } else { leg.closed_at.or(Some(Utc::now())) }),
                    legs::synced_at.eq(Utc::now()),
                ))
                .execute(conn)?;
            // The supplier's own notice of a new ticket can beat the answer to the create: the
            // ticket is with the supplier all the same, so the record is assigned now, as the
            // create answer would have made it.
            if leg.native_id.is_none() && state == LegState::Open && row.assigned_supplier.as_deref() == Some(supplier) {
                row = record::assign_if_new(conn, ctx, row, &self.matrix)?;
            }
        }

        let own_user = self.suppliers.get(supplier).map(|l| l.settings.username.as_str()).filter(|u| !u.is_empty());
        for entry in notes.iter().filter(|n| n.ticket_id.is_empty() || n.ticket_id == rec.native_id) {
            if import_journal_entry(conn, ctx, supplier, own_user, &leg, &mut row, entry)? {
                applied.notes_added += 1;
            }
        }
        if let Some(reason) = hand_back {
            self.hand_back_tx(conn, ctx, row, supplier, &reason)?;
            applied.handed_back = true;
        }
        Ok(applied)
    }

    /// Where the hub changed a field the supplier also changed before the two were back in sync,
    /// the configured policy picks the winner. A field the hub keeps is dropped from `changes`
    /// and the supplier is sent the hub's value again.
    #[allow(clippy::too_many_arguments)]
    fn settle_conflicts(
        &self,
        conn: &mut PgConnection,
        ctx: &Context,
        row: &crate::store::models::IncidentRow,
        mapping: &dyn Mapping,
        theirs: &Canonical,
        agreed: &Canonical,
        rec: &NativeRecord,
        supplier: &str,
        changes: &mut IncidentChanges,
    ) -> StoreResult<()> {
        let hub = row.to_domain(&[], &[])?;
        // The hub's value as the supplier would hold it, so both sides are read alike.
        let ours = mapping.to_canonical(&mapping.from_canonical(&hub), rec.assigned);
        let mut kept = vec![];
        for field in SYNCED_FIELDS {
            if !touches(changes, field) || same(&ours, agreed, field) || same(&ours, theirs, field) {
                continue;
            }
            let hub_wins = match self.policy.conflicts.policy(field) {
                ConflictPolicy::HubWins => true,
                ConflictPolicy::SupplierWins => false,
                ConflictPolicy::LatestWins => rec.updated_at.is_some_and(|t| row.updated_at > t),
            };
            if hub_wins {
                drop_field(changes, field);
                kept.push(*field);
            }
        }
        if !kept.is_empty() {
            record::record_event(conn, ctx, row, NewEvent::new(EventType::ConflictResolved, &ctx.source, json!({ "supplier": supplier, "kept_hub_value": kept })))?;
            record::enqueue_dispatch(conn, ctx, &row.reference, supplier, "conflict")?;
        }
        Ok(())
    }
}

/// Adds a supplier journal entry as a note unless it is one already held or one the hub wrote
/// itself: matched to the hub note it delivered, by content, and linked to its native id; or,
/// where the system names the hub's integration user (`own_user`) as its author, any entry by
/// that user, which is never a supplier's note (a second copy of a hub note a lost answer left
/// behind, a note whose text the supplier reformatted), so it never comes back as one.
fn import_journal_entry(
    conn: &mut PgConnection,
    ctx: &Context,
    supplier: &str,
    own_user: Option<&str>,
    leg: &LegRow,
    row: &mut crate::store::models::IncidentRow,
    entry: &NativeNote,
) -> StoreResult<bool> {
    let known_delivery: bool =
        diesel::select(diesel::dsl::exists(note_deliveries::table.filter(note_deliveries::leg_id.eq(leg.id)).filter(note_deliveries::native_id.eq(&entry.native_id))))
            .get_result(conn)?;
    if known_delivery {
        return Ok(false);
    }
    let hash = record::content_hash(&[entry.visibility.as_str(), entry.text.trim()]);
    let echo: Option<i64> = note_deliveries::table
        .inner_join(notes::table)
        .filter(note_deliveries::leg_id.eq(leg.id))
        .filter(note_deliveries::native_id.is_null())
        .filter(notes::content_hash.eq(&hash))
        .order(note_deliveries::delivered_at)
        .select(note_deliveries::note_id)
        .first(conn)
        .optional()?;
    if let Some(note_id) = echo {
        diesel::update(note_deliveries::table.find((note_id, leg.id))).set(note_deliveries::native_id.eq(&entry.native_id)).execute(conn)?;
        return Ok(false);
    }
    if own_user == Some(entry.author.as_str()) {
        tracing::info!(%supplier, native_id = %entry.native_id, "a journal entry by the hub's own integration user is not taken for a supplier note");
        return Ok(false);
    }
    let note = NewNote {
        visibility: entry.visibility,
        author: entry.author.clone(),
        text: entry.text.clone(),
        origin: supplier.to_string(),
        native_id: Some(entry.native_id.clone()),
        created_at: entry.created_at.unwrap_or_else(Utc::now),
    };
    Ok(record::add_note(conn, ctx, row, &note)?.is_some())
}

impl Engine {
    /// Applies a record in its own transaction and wakes the relay. With a `delivery` id (a
    /// webhook's), a delivery already handled is recognised and changes nothing. `fetch_files`
    /// asks the dispatcher to fetch the supplier's new files (a notification carries none; the
    /// sweep fetches them itself).
    pub async fn apply(
        &self,
        supplier: &str,
        rec: NativeRecord,
        notes: Vec<NativeNote>,
        correlation_id: String,
        delivery: Option<String>,
        fetch_files: bool,
    ) -> Result<Applied, SyncError> {
        let supplier_id = supplier.to_string();
        let mapping = self.supplier(supplier)?.mapping.clone();
        let engine = self.clone();
        let applied = self
            .store
            .tx(move |conn| {
                if let Some(id) = &delivery {
                    if !crate::store::outbox::mark_seen(conn, &format!("webhook:{supplier_id}"), id)? {
                        return Ok(Applied { stale: true, duplicate: true, ..Default::default() });
                    }
                }
                let ctx = Context::supplier(&supplier_id, correlation_id);
                let applied = engine.apply_record_tx(conn, &ctx, &supplier_id, mapping.as_ref(), &rec, &notes, false)?;
                // A pushed change may come with files: the dispatcher looks (and pushes nothing
                // the supplier already has).
                if fetch_files && !applied.stale && !applied.unknown_ticket && !applied.handed_back {
                    if let Some(r) = &applied.reference {
                        record::enqueue_dispatch(conn, &ctx, r, &supplier_id, crate::sync::outbound::PULL_FILES)?;
                    }
                }
                Ok(applied)
            })
            .await?;
        self.notify();
        Ok(applied)
    }
}
