//! Dispatch: brings one supplier ticket in line with the unified record.
//!
//! A dispatch message only names the ticket; the consumer reads the record as it is now and
//! pushes what the supplier lacks. So duplicated, reordered or replayed messages are harmless,
//! and a retried create never makes a second ticket: the hub looks for its reference in the
//! supplier's `correlation_id` before creating.

use super::inbound::baseline_map;
use super::{Engine, SupplierLink, SyncError};
use crate::adapters::SupplierError;
use crate::bus::{Handler, Incoming, Outcome};
use crate::domain::*;
use crate::store::models::{IncidentRow, LegRow, NoteRow};
use crate::store::record::{self, Context};
use crate::store::schema::{legs, note_deliveries, notes};
use crate::store::{outbox, StoreResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::PgConnection;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the dispatcher needs to know about one leg, read in one go.
struct Snapshot {
    incident: Incident,
    row: IncidentRow,
    leg: LegRow,
    /// Hub notes the supplier has not confirmed, with when an earlier attempt was made.
    notes: Vec<(NoteRow, Option<DateTime<Utc>>)>,
}

fn snapshot(conn: &mut PgConnection, reference: &str, supplier: &str) -> StoreResult<Option<Snapshot>> {
    let row = record::find_row(conn, reference)?;
    let leg = legs::table.filter(legs::incident_id.eq(row.id)).filter(legs::supplier_id.eq(supplier)).order(legs::id.desc()).select(LegRow::as_select()).first(conn).optional()?;
    let Some(leg) = leg else { return Ok(None) };
    let confirmed = note_deliveries::table.filter(note_deliveries::leg_id.eq(leg.id)).filter(note_deliveries::confirmed.eq(true)).select(note_deliveries::note_id);
    let unconfirmed: Vec<NoteRow> = notes::table
        .filter(notes::incident_id.eq(row.id))
        .filter(notes::origin.ne(supplier))
        .filter(notes::id.ne_all(confirmed))
        .order(notes::id)
        .select(NoteRow::as_select())
        .load(conn)?;
    let attempted: HashMap<i64, DateTime<Utc>> = note_deliveries::table
        .filter(note_deliveries::leg_id.eq(leg.id))
        .filter(note_deliveries::confirmed.eq(false))
        .select((note_deliveries::note_id, note_deliveries::delivered_at))
        .load::<(i64, DateTime<Utc>)>(conn)?
        .into_iter()
        .collect();
    let pending = unconfirmed
        .into_iter()
        .map(|n| {
            let tried = attempted.get(&n.id).copied();
            (n, tried)
        })
        .collect();
    let incident = record::document(conn, &row)?;
    Ok(Some(Snapshot { incident, row, leg, notes: pending }))
}

/// Dispatch reason of a supplier's own change: only fetch its new files. Nothing is pushed back
/// to a supplier because of a change it made itself.
pub const PULL_FILES: &str = "supplier changed";

impl Engine {
    /// Fetches the files a supplier attached to its ticket.
    async fn pull_files(&self, supplier: &str, reference: &str, correlation_id: &str) -> Result<(), SyncError> {
        let link = self.supplier(supplier)?;
        let (r, s) = (reference.to_string(), supplier.to_string());
        let Some(snap) = self.store.run(move |c| snapshot(c, &r, &s)).await? else { return Ok(()) };
        let (Some(native_id), true) = (snap.leg.native_id.clone(), snap.leg.state()?.is_active()) else { return Ok(()) };
        let leg = super::attachments::LegRef { supplier, leg_id: snap.leg.id, incident_id: snap.row.id, native_id: &native_id, correlation_id };
        self.pull_attachments(&link, &leg, None).await?;
        Ok(())
    }

    /// Reads the supplier's ticket as it is now and applies it: a delivery whose order against
    /// what the hub holds could not be told is settled by a read made after it.
    async fn reread(&self, supplier: &str, reference: &str, correlation_id: &str) -> Result<(), SyncError> {
        let link = self.supplier(supplier)?;
        let (r, s) = (reference.to_string(), supplier.to_string());
        let Some(snap) = self.store.run(move |c| snapshot(c, &r, &s)).await? else { return Ok(()) };
        let (Some(native_id), true) = (snap.leg.native_id.clone(), snap.leg.state()?.is_active()) else { return Ok(()) };
        let current = match link.client.fetch(&native_id).await? {
            Some(ticket) => Some(ticket),
            None => link.client.find_by_correlation(reference).await?.into_iter().find(|t| link.mapping.parse_record(t).is_ok_and(|rec| rec.native_id == native_id)),
        };
        match current {
            Some(ticket) => self.absorb(supplier, snap.leg.id, None, None, Some(&ticket), correlation_id).await,
            None => Ok(()),
        }
    }

    /// Brings `supplier`'s ticket for `reference` in line with the record.
    pub async fn sync_leg(&self, supplier: &str, reference: &str, correlation_id: &str) -> Result<(), SyncError> {
        let link = self.supplier(supplier)?;
        let (r, s) = (reference.to_string(), supplier.to_string());
        let Some(snap) = self.store.run(move |c| snapshot(c, &r, &s)).await? else {
            return Ok(());
        };
        match snap.leg.state()? {
            LegState::Closed | LegState::HandedBack => return Ok(()),
            // Withdrawn and already cancelled at the supplier.
            LegState::Withdrawn if snap.leg.closed_at.is_some() => return Ok(()),
            LegState::Withdrawn => return self.withdraw(supplier, &snap, correlation_id).await,
            _ => {}
        }
        let sys_id = match snap.leg.native_id.clone() {
            Some(id) => id,
            None => self.open_leg(supplier, &snap, correlation_id).await?,
        };

        // Push the synced fields the supplier lacks, then read its answer as an inbound record
        // so a change the supplier made meanwhile is not hidden by the new baseline.
        let (r, s) = (reference.to_string(), supplier.to_string());
        let Some(snap) = self.store.run(move |c| snapshot(c, &r, &s)).await? else { return Ok(()) };
        let baseline = baseline_map(&snap.leg.baseline);
        let mut wanted = snap.incident.clone();
        if snap.incident.assigned_supplier.as_deref() != Some(supplier) && !baseline.is_empty() {
            // A further supplier on a major incident runs its own ticket's lifecycle: the hub
            // sends it the record's details and notes, not the owner's status.
            let theirs = link.mapping.to_canonical(&baseline, true);
            if let Some(s) = theirs.status {
                wanted.status = s;
                wanted.hold_reason = theirs.hold_reason;
                wanted.resolution = theirs.resolution;
            }
        }
        let diff: BTreeMap<String, String> = link.mapping.desired(&wanted, &baseline).into_iter().filter(|(k, v)| baseline.get(k) != Some(v)).collect();
        if !diff.is_empty() {
            // Said before the write: the supplier may notify the hub of it before its answer is
            // recorded. A failed write leaves it said (an unknown outcome may still echo); the
            // next write replaces it.
            let (leg_id, intent) = (snap.leg.id, serde_json::to_value(&diff).unwrap_or_default());
            self.store.run(move |c| Ok(diesel::update(legs::table.find(leg_id)).set(legs::pushing.eq(intent)).execute(c).map(|_| ())?)).await?;
            let answer = link.client.update(&sys_id, &diff).await?;
            self.absorb(supplier, snap.leg.id, Some(diff), None, Some(&answer), correlation_id).await?;
        }

        // Notes: the client writes internal ones only ever to the supplier's internal field.
        for (note, tried) in &snap.notes {
            let visibility: Visibility = note.visibility.parse().map_err(crate::store::StoreError::from)?;
            let hash = record::content_hash(&[note.visibility.as_str(), note.body.trim()]);
            if let Some(attempted_at) = *tried {
                // An earlier attempt may have reached the supplier before failing: look first.
                self.settle_writes_of_earlier_processes(&link, attempted_at).await;
                let held = link.mapping.parse_notes(&link.client.notes(&sys_id).await?);
                if let Some(entry) = held.iter().find(|n| record::content_hash(&[n.visibility.as_str(), n.text.trim()]) == hash) {
                    let (note_id, leg_id, native) = (note.id, snap.leg.id, entry.native_id.clone());
                    self.store.run(move |c| confirm_delivery(c, note_id, leg_id, Some(&native))).await?;
                    continue;
                }
            } else {
                let (note_id, leg_id) = (note.id, snap.leg.id);
                self.store
                    .run(move |c| {
                        diesel::insert_into(note_deliveries::table)
                            .values((note_deliveries::note_id.eq(note_id), note_deliveries::leg_id.eq(leg_id), note_deliveries::delivered_at.eq(Utc::now())))
                            .on_conflict_do_nothing()
                            .execute(c)?;
                        Ok(())
                    })
                    .await?;
            }
            let answer = link.client.add_note(&sys_id, visibility, &note.body).await?;
            self.absorb(supplier, snap.leg.id, None, Some(note.id), answer.as_ref(), correlation_id).await?;
        }

        let leg = super::attachments::LegRef { supplier, leg_id: snap.leg.id, incident_id: snap.row.id, native_id: &sys_id, correlation_id };
        self.push_attachments(&link, &leg).await?;
        self.pull_attachments(&link, &leg, None).await?;
        Ok(())
    }

    /// The hub moved the ticket elsewhere: cancel the supplier's ticket (if it exists) and end
    /// the leg. It stays `withdrawn` (with its closing time), so the record says why it ended
    /// and the supplier no longer sees the ticket.
    async fn withdraw(&self, supplier: &str, snap: &Snapshot, _correlation_id: &str) -> Result<(), SyncError> {
        let link = self.supplier(supplier)?;
        let native_id = match &snap.leg.native_id {
            Some(id) => Some(id.clone()),
            None => match self.unheld_ticket(&link, supplier, snap).await?.0 {
                Some(found) => Some(link.mapping.parse_record(&found)?.native_id),
                None => None,
            },
        };
        let mut native_status = snap.leg.native_status.clone();
        if let Some(id) = &native_id {
            let mut cancelled = snap.incident.clone();
            cancelled.status = Status::Cancelled;
            cancelled.hold_reason = None;
            let baseline = baseline_map(&snap.leg.baseline);
            let diff: BTreeMap<String, String> = link.mapping.from_canonical(&cancelled).into_iter().filter(|(k, v)| baseline.get(k) != Some(v)).collect();
            if !diff.is_empty() {
                let answer = link.client.update(id, &diff).await?;
                native_status = link.mapping.parse_record(&answer)?.native_status;
            }
        }
        let leg_id = snap.leg.id;
        self.store
            .run(move |c| {
                diesel::update(legs::table.find(leg_id)).set((legs::native_id.eq(native_id), legs::native_status.eq(native_status), legs::closed_at.eq(Utc::now()))).execute(c)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// The supplier's ticket for this leg that an earlier attempt made (its answer lost), if
    /// any, and the native ids of every ticket the supplier holds for the reference. A ticket an
    /// earlier leg of this supplier held (handed back, withdrawn) is never this leg's: the
    /// supplier gets a fresh ticket for the new assignment.
    async fn unheld_ticket(&self, link: &SupplierLink, supplier: &str, snap: &Snapshot) -> Result<(Option<Value>, Vec<String>), SyncError> {
        let candidates = link.client.find_by_correlation(snap.incident.reference.as_str()).await?;
        let ids = candidates.iter().map(|c| link.mapping.parse_record(c).map(|r| r.native_id)).collect::<Result<Vec<_>, _>>()?;
        let (s, leg_id, wanted) = (supplier.to_string(), snap.leg.id, ids.clone());
        let held: Vec<Option<String>> = self
            .store
            .run(move |c| Ok(legs::table.filter(legs::supplier_id.eq(&s)).filter(legs::native_id.eq_any(&wanted)).filter(legs::id.ne(leg_id)).select(legs::native_id).load(c)?))
            .await?;
        let unheld = candidates.into_iter().zip(&ids).find(|(_, id)| !held.iter().flatten().any(|h| h == *id)).map(|(c, _)| c);
        Ok((unheld, ids))
    }

    /// Creates (or adopts) the supplier ticket and opens the leg.
    async fn open_leg(&self, supplier: &str, snap: &Snapshot, correlation_id: &str) -> Result<String, SyncError> {
        let link = self.supplier(supplier)?;
        let reference = snap.incident.reference.as_str();
        self.settle_writes_of_earlier_processes(&link, snap.leg.opened_at).await;
        let native = match self.unheld_ticket(&link, supplier, snap).await? {
            (Some(existing), _) => {
                tracing::info!(%reference, %supplier, "adopting the supplier ticket a previous attempt created");
                existing
            }
            (None, known) => link.client.create(&snap.incident, &known).await?,
        };
        let rec = link.mapping.parse_record(&native)?;
        let native_id = rec.native_id.clone();
        let url = link.client.ticket_url(&rec.native_id);
        let system = link.mapping.system();
        let (leg_id, row_id, s) = (snap.leg.id, snap.row.id, supplier.to_string());
        let (matrix, corr, engine, mapping) = (self.matrix.clone(), correlation_id.to_string(), self.clone(), link.mapping.clone());
        self.store
            .tx(move |conn| {
                let ctx = Context::supplier(&s, corr);
                // Lock order everywhere: incident row, then leg.
                let row = record::lock_row_by_id(conn, row_id)?;
                diesel::update(legs::table.find(leg_id))
                    .set((
                        legs::native_id.eq(&rec.native_id),
                        legs::native_number.eq(&rec.native_number),
                        legs::native_status.eq(&rec.native_status),
                        legs::url.eq(&url),
                        legs::state.eq(LegState::Open.as_str()),
                        legs::last_error.eq(None::<String>),
                        legs::synced_at.eq(Utc::now()),
                    ))
                    .execute(conn)?;
                record::record_event(
                    conn,
                    &ctx,
                    &row,
                    NewEvent::new(EventType::LegOpened, &ctx.source, json!({ "supplier": s, "system": system, "native_id": rec.native_id, "native_number": rec.native_number })),
                )?;
                let row = record::assign_if_new(conn, &ctx, row, &matrix)?;
                // The agreed state is what the hub wants the ticket to hold, as the create wrote
                // it, not the ticket as read back: the supplier may have changed it between the
                // create and the read, and that change is the supplier's, applied like any
                // other (which then makes the read the baseline), never taken for the hub's own
                // and reverted.
                let written = mapping.desired(&record::document(conn, &row)?, &rec.fields);
                diesel::update(legs::table.find(leg_id)).set(legs::baseline.eq(json!(written))).execute(conn)?;
                engine.apply_record_tx(conn, &ctx, &s, mapping.as_ref(), &rec, &[], true)?;
                Ok(())
            })
            .await?;
        self.notify();
        Ok(native_id)
    }

    /// Records what the hub just wrote to the supplier (pushed fields move the baseline; a pushed
    /// note is marked delivered), then applies the supplier's answer as an inbound record.
    async fn absorb(
        &self,
        supplier: &str,
        leg_id: i64,
        pushed: Option<BTreeMap<String, String>>,
        note_id: Option<i64>,
        answer: Option<&Value>,
        correlation_id: &str,
    ) -> Result<(), SyncError> {
        let mapping = self.supplier(supplier)?.mapping.clone();
        let rec = answer.map(|a| mapping.parse_record(a)).transpose()?;
        let notes = answer.map(|a| mapping.parse_notes(a)).unwrap_or_default();
        let (s, corr, engine) = (supplier.to_string(), correlation_id.to_string(), self.clone());
        self.store
            .tx(move |conn| {
                // Lock order everywhere: incident row, then leg.
                let incident_id: i64 = legs::table.find(leg_id).select(legs::incident_id).first(conn)?;
                record::lock_row_by_id(conn, incident_id)?;
                if let Some(pushed) = pushed {
                    let mut baseline: Value = legs::table.find(leg_id).select(legs::baseline).for_update().first(conn)?;
                    if let Some(obj) = baseline.as_object_mut() {
                        obj.extend(pushed.into_iter().map(|(k, v)| (k, Value::String(v))));
                    }
                    diesel::update(legs::table.find(leg_id)).set((legs::baseline.eq(baseline), legs::pushing.eq(json!({})))).execute(conn)?;
                }
                if let Some(note_id) = note_id {
                    confirm_delivery(conn, note_id, leg_id, None)?;
                }
                if let Some(rec) = &rec {
                    let ctx = Context::supplier(&s, corr);
                    engine.apply_record_tx(conn, &ctx, &s, mapping.as_ref(), rec, &notes, true)?;
                }
                Ok(())
            })
            .await?;
        self.notify();
        Ok(())
    }

    /// The dispatch queue handler for one supplier: idempotent by message id; failures that
    /// outlived their retries go to the dead-letter list with the reason, and the leg says so.
    pub fn dispatch_handler(self: &Arc<Self>, supplier: &str) -> Handler {
        let engine = self.clone();
        let supplier = supplier.to_string();
        Arc::new(move |msg: Incoming| {
            let engine = engine.clone();
            let supplier = supplier.clone();
            Box::pin(async move { engine.handle_dispatch(&supplier, msg).await })
        })
    }

    async fn handle_dispatch(&self, supplier: &str, msg: Incoming) -> Outcome {
        let consumer = format!("dispatch:{supplier}");
        let (c, id) = (consumer.clone(), msg.message_id.clone());
        match self.store.run(move |conn| outbox::seen(conn, &c, &id)).await {
            Ok(true) => return Outcome::Done,
            Ok(false) => {}
            Err(e) => return Outcome::store_failure(&e),
        }
        let Some(reference) = msg.payload.pointer("/data/ref").and_then(|v| v.as_str()).map(str::to_string) else {
            return Outcome::Dead("dispatch message without data.ref".into());
        };
        let correlation = msg.payload.get("correlationid").and_then(|v| v.as_str()).unwrap_or(&msg.message_id).to_string();
        let span = tracing::info_span!("dispatch", %supplier, %reference, correlation_id = %correlation);
        let _enter = span.enter();
        let result = match msg.payload.pointer("/data/reason").and_then(|v| v.as_str()) {
            _ if super::change::is_change(&reference) => self.sync_change_leg(supplier, &reference, &correlation).await,
            Some(PULL_FILES) => self.pull_files(supplier, &reference, &correlation).await,
            Some(super::inbound::REREAD) => self.reread(supplier, &reference, &correlation).await,
            _ => self.sync_leg(supplier, &reference, &correlation).await,
        };
        let failure = match result {
            Ok(()) => None,
            Err(SyncError::Store(e)) => return Outcome::store_failure(&e),
            Err(SyncError::Supplier(e @ SupplierError::Transient { .. })) => Some(format!("retries exhausted: {e}")),
            Err(e) => Some(e.to_string()),
        };
        let (s, r) = (supplier.to_string(), reference.clone());
        // The leg's failure and its dead letter are written together, so whoever sees one sees
        // the other.
        let done = self
            .store
            .tx(move |conn| {
                if let Some(reason) = &failure {
                    if super::change::is_change(&r) {
                        crate::store::change::legs::failed(conn, &Context::hub(correlation.as_str()), &r, &s, reason)?;
                    } else {
                        mark_leg_failed(conn, &s, &r, reason, &correlation)?;
                    }
                    let message_id = uuid::Uuid::parse_str(&msg.message_id).unwrap_or_else(|_| uuid::Uuid::now_v7());
                    crate::store::deadletters::insert(
                        conn,
                        &crate::store::deadletters::NewDeadLetter {
                            message_id,
                            routing_key: &msg.routing_key,
                            payload: &msg.payload,
                            supplier_id: Some(&s),
                            incident_ref: Some(&r),
                            reason,
                        },
                    )?;
                    tracing::warn!(supplier = %s, reference = %r, %reason, "dispatch dead-lettered");
                }
                outbox::mark_seen(conn, &consumer, &msg.message_id)?;
                Ok(())
            })
            .await;
        self.notify();
        match done {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::store_failure(&e),
        }
    }
}

/// Marks a hub note as received by the supplier (keeping a native id already linked).
fn confirm_delivery(conn: &mut PgConnection, note_id: i64, leg_id: i64, native_id: Option<&str>) -> StoreResult<()> {
    diesel::insert_into(note_deliveries::table)
        .values((
            note_deliveries::note_id.eq(note_id),
            note_deliveries::leg_id.eq(leg_id),
            note_deliveries::delivered_at.eq(Utc::now()),
            note_deliveries::confirmed.eq(true),
            note_deliveries::native_id.eq(native_id),
        ))
        .on_conflict((note_deliveries::note_id, note_deliveries::leg_id))
        .do_update()
        .set((
            note_deliveries::confirmed.eq(true),
            note_deliveries::native_id.eq(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>("COALESCE(note_deliveries.native_id, excluded.native_id)")),
        ))
        .execute(conn)?;
    Ok(())
}

/// Notes the failure on the leg; a leg whose ticket was never created becomes `failed`.
fn mark_leg_failed(conn: &mut PgConnection, supplier: &str, reference: &str, reason: &str, correlation: &str) -> StoreResult<()> {
    let found = record::find_row(conn, reference)?;
    let row = record::lock_row_by_id(conn, found.id)?;
    let leg: Option<LegRow> =
        legs::table.filter(legs::incident_id.eq(row.id)).filter(legs::supplier_id.eq(supplier)).order(legs::id.desc()).select(LegRow::as_select()).first(conn).optional()?;
    let Some(leg) = leg else { return Ok(()) };
    let state = if leg.native_id.is_none() { LegState::Failed } else { leg.state()? };
    diesel::update(legs::table.find(leg.id)).set((legs::last_error.eq(reason), legs::state.eq(state.as_str()))).execute(conn)?;
    let ctx = Context::hub(correlation);
    record::record_event(conn, &ctx, &row, NewEvent::new(EventType::LegFailed, "hub", json!({ "supplier": supplier, "reason": reason })))
}
