//! Applying a supplier's view of its ticket to the unified record.
//!
//! Echoes are recognised deterministically: the leg's `baseline` holds the supplier fields as
//! last agreed, so a field equal to the baseline is no change, whoever wrote it; and
//! `sys_mod_count` orders deliveries, so a repeated or older delivery changes nothing.

use super::{Engine, SyncError};
use crate::adapters::servicenow::mapping::{to_canonical, Canonical};
use crate::adapters::servicenow::{JournalEntry, SnRecord, SYNCED_FIELDS};
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

/// What an inbound record did to the record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The hub has no leg for this supplier ticket (not raised through the hub).
    pub unknown_ticket: bool,
    /// The delivery was older than, or the same as, what the hub already had.
    pub stale: bool,
    /// Canonical fields that changed.
    pub changed: Vec<String>,
    pub notes_added: usize,
    pub reference: Option<String>,
}

fn baseline_map(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| o.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

/// The canonical changes implied by the supplier fields that differ from the baseline.
fn changes_from(rec: &SnRecord, baseline: &BTreeMap<String, String>, c: &Canonical) -> IncidentChanges {
    let changed = |k: &str| rec.fields.get(k) != baseline.get(k);
    let mut ch = IncidentChanges::default();
    if changed("state") || changed("hold_reason") || changed("close_code") || changed("close_notes") {
        if let Some(s) = c.status {
            if changed("state") {
                ch.status = Some(s);
            }
            match s {
                Status::OnHold => ch.hold_reason = Some(c.hold_reason.or(Some(HoldReason::Other))),
                Status::Resolved | Status::Closed => {
                    let notes = rec.fields.get("close_notes").cloned().unwrap_or_default();
                    ch.resolution = Some(Some(c.resolution.clone().unwrap_or(Resolution { code: "other".into(), notes })));
                }
                _ => {}
            }
        }
    }
    if changed("impact") {
        ch.impact = c.impact;
    }
    if changed("urgency") {
        ch.urgency = c.urgency;
    }
    if changed("short_description") {
        ch.title = c.title.clone().filter(|t| !t.trim().is_empty());
    }
    if changed("description") {
        ch.description = c.description.clone();
    }
    if changed("category") {
        ch.category = Some(c.category.clone());
    }
    if changed("cmdb_ci") {
        ch.ci = Some(c.ci.clone());
    }
    ch
}

fn find_leg(conn: &mut PgConnection, supplier: &str, rec: &SnRecord) -> StoreResult<Option<LegRow>> {
    let by_native = legs::table
        .filter(legs::supplier_id.eq(supplier))
        .filter(legs::native_id.eq(&rec.sys_id))
        .select(LegRow::as_select())
        .first(conn)
        .optional()?;
    if by_native.is_some() {
        return Ok(by_native);
    }
    // A ticket the hub created but whose create answer it never saw: adopt it by correlation id.
    let Some(reference) = &rec.correlation_id else { return Ok(None) };
    Ok(legs::table
        .inner_join(incidents::table)
        .filter(incidents::reference.eq(reference))
        .filter(legs::supplier_id.eq(supplier))
        .filter(legs::native_id.is_null())
        .select(LegRow::as_select())
        .first(conn)
        .optional()?)
}

/// Applies one supplier record (and journal rows) in the caller's transaction.
pub fn apply_record(
    conn: &mut PgConnection,
    ctx: &Context,
    supplier: &str,
    rec: &SnRecord,
    journal: &[JournalEntry],
    matrix: &PriorityMatrix,
) -> StoreResult<Applied> {
    let Some(found) = find_leg(conn, supplier, rec)? else {
        return Ok(Applied { unknown_ticket: true, ..Default::default() });
    };
    let mut row = record::lock_row_by_id(conn, found.incident_id)?;
    let leg: LegRow = legs::table.find(found.id).select(LegRow::as_select()).for_update().first(conn)?;
    let mut applied = Applied { reference: Some(row.reference.clone()), ..Default::default() };
    applied.stale = matches!((rec.mod_count, leg.native_revision), (Some(new), Some(old)) if new <= old);

    if !applied.stale {
        let baseline = baseline_map(&leg.baseline);
        let canonical = to_canonical(&rec.fields, rec.assigned);
        let changes = changes_from(rec, &baseline, &canonical);
        if !changes.is_empty() {
            let before = row.version;
            match record::apply_changes(conn, ctx, row.clone(), &changes, matrix) {
                Ok(updated) => {
                    if updated.version != before {
                        applied.changed = serde_json::to_value(&changes)
                            .ok()
                            .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
                            .unwrap_or_default();
                    }
                    row = updated;
                }
                Err(StoreError::Lifecycle(e)) => {
                    // The record refuses the change (e.g. it is closed at the hub): keep the
                    // supplier's values on the leg and say so in the log, lose nothing.
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
        let old_unmapped = leg.unmapped.as_object().cloned().unwrap_or_default();
        for (field, value) in &canonical.unmapped {
            if old_unmapped.get(field).and_then(|v| v.as_str()) != Some(value.as_str()) {
                record::record_event(
                    conn,
                    ctx,
                    &row,
                    NewEvent::new(EventType::UnmappedValue, &ctx.source, json!({ "supplier": supplier, "system": "servicenow", "field": field, "value": value })),
                )?;
            }
        }
        let native_status = rec.fields.get("state").cloned();
        if native_status != leg.native_status {
            record::record_event(
                conn,
                ctx,
                &row,
                NewEvent::new(EventType::LegUpdated, &ctx.source, json!({ "supplier": supplier, "native_status": native_status, "from": leg.native_status })),
            )?;
        }
        let closed = matches!(canonical.status, Some(Status::Closed) | Some(Status::Cancelled));
        let state = if closed { LegState::Closed } else { LegState::Open };
        diesel::update(legs::table.find(leg.id))
            .set((
                legs::native_id.eq(&rec.sys_id),
                legs::native_number.eq(rec.number.clone().or(leg.native_number.clone())),
                legs::native_status.eq(&native_status),
                legs::native_revision.eq(rec.mod_count.or(leg.native_revision)),
                legs::native_updated_at.eq(rec.updated_on.or(leg.native_updated_at)),
                legs::baseline.eq(json!(rec.fields)),
                legs::unmapped.eq(json!(canonical.unmapped)),
                legs::state.eq(state.as_str()),
                legs::closed_at.eq(if closed { leg.closed_at.or(Some(Utc::now())) } else { None }),
                legs::synced_at.eq(Utc::now()),
            ))
            .execute(conn)?;
    }

    for entry in journal.iter().filter(|j| j.element_id.is_empty() || j.element_id == rec.sys_id) {
        if import_journal_entry(conn, ctx, supplier, &leg, &mut row, entry)? {
            applied.notes_added += 1;
        }
    }
    Ok(applied)
}

/// Adds a supplier journal entry as a note unless it is one already held or one the hub wrote
/// itself (matched to the hub note it delivered, by content, and linked to its native id).
fn import_journal_entry(
    conn: &mut PgConnection,
    ctx: &Context,
    supplier: &str,
    leg: &LegRow,
    row: &mut crate::store::models::IncidentRow,
    entry: &JournalEntry,
) -> StoreResult<bool> {
    let known_delivery: bool = diesel::select(diesel::dsl::exists(
        note_deliveries::table.filter(note_deliveries::leg_id.eq(leg.id)).filter(note_deliveries::native_id.eq(&entry.sys_id)),
    ))
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
        diesel::update(note_deliveries::table.find((note_id, leg.id))).set(note_deliveries::native_id.eq(&entry.sys_id)).execute(conn)?;
        return Ok(false);
    }
    let note = NewNote {
        visibility: entry.visibility,
        author: entry.author.clone(),
        text: entry.text.clone(),
        origin: supplier.to_string(),
        native_id: Some(entry.sys_id.clone()),
        created_at: entry.created_on.unwrap_or_else(Utc::now),
    };
    Ok(record::add_note(conn, ctx, row, &note)?.is_some())
}

impl Engine {
    /// Applies a record in its own transaction and wakes the relay. With a `delivery` id (a
    /// webhook's), a delivery already handled is recognised and changes nothing.
    pub async fn apply(
        &self,
        supplier: &str,
        rec: SnRecord,
        journal: Vec<JournalEntry>,
        correlation_id: String,
        delivery: Option<String>,
    ) -> Result<Applied, SyncError> {
        let supplier_id = supplier.to_string();
        let matrix = self.matrix.clone();
        let applied = self
            .store
            .tx(move |conn| {
                if let Some(id) = &delivery {
                    if !crate::store::outbox::mark_seen(conn, &format!("webhook:{supplier_id}"), id)? {
                        return Ok(Applied { stale: true, ..Default::default() });
                    }
                }
                let ctx = Context::supplier(&supplier_id, correlation_id);
                apply_record(conn, &ctx, &supplier_id, &rec, &journal, &matrix)
            })
            .await?;
        self.notify();
        Ok(applied)
    }
}

/// Field names the hub keeps in sync, for messages and docs.
pub fn synced_fields() -> &'static [&'static str] {
    SYNCED_FIELDS
}
