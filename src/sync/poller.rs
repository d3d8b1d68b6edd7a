//! The reconciliation sweep: reads every supplier ticket updated since the watermark (minus an
//! overlap, so a supplier clock behind ours or a slow commit loses nothing), pages through
//! them, and applies each as an inbound record. Re-reading is harmless: unchanged records are
//! recognised by their revision.
//!
//! Pages follow the update time: each page starts at the time the previous one ended on, so a
//! ticket that changes while the sweep pages moves ahead of the sweep instead of shifting
//! another out of its page. The watermark is where everything before has been read and applied
//! (a failure stops it there), and never later than the hub's own clock plus the overlap: a
//! ticket dated in the future must not make later sweeps skip what changes meanwhile.

use super::{Engine, SupplierLink, SyncError};
use crate::store::schema::{legs, poll_state};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde::Serialize;
use std::collections::HashSet;
use tokio::sync::watch;

const PAGE: usize = 100;

#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    pub read: usize,
    /// Tickets whose supplier state changed the record.
    pub applied: usize,
    pub notes_added: usize,
    pub attachments_added: usize,
    pub watermark: Option<DateTime<Utc>>,
    /// Open changes whose leg at this supplier was queued to be read again.
    pub changes_checked: usize,
}

impl Engine {
    /// One sweep of one supplier; its end is noted in the supplier's [`super::Activity`].
    pub async fn sweep(&self, supplier: &str) -> Result<SweepReport, SyncError> {
        let result = self.sweep_once(supplier).await;
        if let Some(activity) = self.activity.get(supplier) {
            activity.swept(result.as_ref().err().map(ToString::to_string));
        }
        result
    }

    async fn sweep_once(&self, supplier: &str) -> Result<SweepReport, SyncError> {
        let link = self.supplier(supplier)?;
        let s = supplier.to_string();
        let stored: Option<DateTime<Utc>> =
            self.store.run(move |c| Ok(poll_state::table.find(&s).select(poll_state::watermark).first::<Option<DateTime<Utc>>>(c).optional()?.flatten())).await?;
        let started = Utc::now();
        let overlap = Duration::seconds(link.settings.poll_overlap_secs);
        let ceiling = started + overlap;
        let since = stored.unwrap_or_else(|| started - Duration::days(1)).min(ceiling) - overlap;
        let mut report = SweepReport { watermark: stored, ..Default::default() };
        // Where the next page starts, and how many tickets read there it skips.
        let (mut from, mut skip) = (since, 0);
        let mut newest_read: Option<DateTime<Utc>> = None;
        let mut seen: HashSet<(String, Option<DateTime<Utc>>)> = HashSet::new();
        let outcome: Result<(), SyncError> = loop {
            let page = match link.client.updated_since(from, skip, PAGE).await {
                Ok(page) => page,
                Err(e) => break Err(e.into()),
            };
            // Update times of the page's ordered part (a client may add tickets after it).
            let mut times = Vec::with_capacity(page.len());
            let mut failed = None;
            for (i, native) in page.iter().enumerate() {
                report.read += 1;
                let rec = match link.mapping.parse_record(native) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(%supplier, error = %e, "skipping unreadable supplier record");
                        continue;
                    }
                };
                times.extend(rec.updated_at.filter(|_| i < PAGE));
                newest_read = newest_read.max(rec.updated_at);
                // Pages overlap where they meet: a ticket read already is not applied again.
                if !seen.insert((rec.native_id.clone(), rec.updated_at)) {
                    continue;
                }
                if let Err(e) = self.sweep_record(&link, supplier, rec, &mut report).await {
                    failed = Some(e);
                    break;
                }
            }
            if let Some(e) = failed {
                break Err(e);
            }
            if page.len() < PAGE {
                break Ok(());
            }
            match times.iter().max().copied().filter(|t| *t > from) {
                Some(t) => (from, skip) = (t, times.iter().filter(|x| **x == t).count()),
                // A whole page at one time (or without times): step over it.
                None => skip += PAGE,
            }
        };
        // Everything before `from` is read and applied; after the last page, everything read.
        let reached = match &outcome {
            Ok(()) => newest_read.map(|n| n.max(from)),
            Err(_) => (from > since).then_some(from),
        };
        // A stored watermark past the ceiling (a future-dated ticket read before) is pulled back.
        let mut watermark = stored.map(|w| w.min(ceiling));
        if let Some(r) = reached {
            watermark = watermark.max(Some(r.min(ceiling)));
        }
        if let Some(w) = watermark.filter(|w| Some(*w) != stored) {
            let s = supplier.to_string();
            self.store
                .run(move |c| {
                    diesel::insert_into(poll_state::table)
                        .values((poll_state::supplier_id.eq(&s), poll_state::watermark.eq(w), poll_state::updated_at.eq(Utc::now())))
                        .on_conflict(poll_state::supplier_id)
                        .do_update()
                        .set((poll_state::watermark.eq(w), poll_state::updated_at.eq(Utc::now())))
                        .execute(c)?;
                    Ok(())
                })
                .await?;
        }
        report.watermark = watermark;
        outcome?;
        report.changes_checked = self.recheck_change_legs(&link, supplier).await?;
        Ok(report)
    }

    /// Queues every open change's leg at the supplier to be read again: supplier systems notify
    /// no change to the hub, so the sweep is how a change made in the supplier's tool arrives.
    async fn recheck_change_legs(&self, link: &SupplierLink, supplier: &str) -> Result<usize, SyncError> {
        if link.client.changes().is_none() || !link.settings.change_records {
            return Ok(0);
        }
        let s = supplier.to_string();
        let queued = self
            .store
            .tx(move |c| {
                let refs = crate::store::change::legs::open_at(c, &s)?;
                let ctx = crate::store::record::Context::hub(uuid::Uuid::now_v7().to_string());
                for r in &refs {
                    crate::store::record::enqueue_dispatch(c, &ctx, r, &s, "sweep")?;
                }
                Ok(refs.len())
            })
            .await?;
        if queued > 0 {
            self.notify();
        }
        Ok(queued)
    }

    /// Applies one supplier ticket a sweep read, with its notes and files.
    async fn sweep_record(&self, link: &SupplierLink, supplier: &str, rec: crate::adapters::NativeRecord, report: &mut SweepReport) -> Result<(), SyncError> {
        // Fetch the journal only for tickets whose revision moved past what the hub holds.
        let (s, native_id, corr) = (supplier.to_string(), rec.native_id.clone(), rec.correlation.clone());
        let known: Option<Option<i64>> = self
            .store
            .run(move |c| {
                let by_id: Option<Option<i64>> =
                    legs::table.filter(legs::supplier_id.eq(&s)).filter(legs::native_id.eq(&native_id)).select(legs::native_revision).first(c).optional()?;
                Ok(by_id.or(corr.map(|_| None)))
            })
            .await?;
        let Some(revision) = known else { return Ok(()) };
        // Only an older revision is skipped: a revision that is a modification time (Remedy's
        // whole-second `Last Modified Date`) can be shared by two versions, and a supplier
        // whose notes are separate records (Remedy's work logs) can gain a note without a
        // new revision. Re-reading an unchanged ticket changes nothing.
        if matches!((rec.revision, revision), (Some(new), Some(old)) if new < old) {
            return Ok(());
        }
        let journal = link.client.notes(&rec.native_id).await?;
        let (notes, listed) = (link.mapping.parse_notes(&journal), link.mapping.parse_attachments(&journal));
        let native_id = rec.native_id.clone();
        let correlation = uuid::Uuid::now_v7().to_string();
        let applied = self.apply(supplier, rec, notes, correlation.clone(), None, false).await?;
        if let Some((leg_id, incident_id)) = applied.active_leg.filter(|_| !applied.handed_back) {
            let leg = super::attachments::LegRef { supplier, leg_id, incident_id, native_id: &native_id, correlation_id: &correlation };
            report.attachments_added += self.pull_attachments(link, &leg, listed).await?;
        }
        if !applied.unknown_ticket && !applied.stale && !applied.changed.is_empty() {
            report.applied += 1;
        }
        report.notes_added += applied.notes_added;
        Ok(())
    }

    /// Sweeps `supplier` every `poll_interval_secs` until shutdown.
    pub async fn run_poller(self, supplier: String, mut shutdown: watch::Receiver<bool>) {
        let Ok(link) = self.supplier(&supplier) else { return };
        let every = std::time::Duration::from_secs(link.settings.poll_interval_secs.max(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            match self.sweep(&supplier).await {
                Ok(r) if r.applied > 0 || r.notes_added > 0 => {
                    tracing::info!(%supplier, applied = r.applied, notes = r.notes_added, "reconciliation sweep caught up changes")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%supplier, error = %e, "reconciliation sweep failed"),
            }
        }
    }
}
