//! Attachment content and its fate on each supplier leg.
//!
//! Content arrives in chunks under an upload id ([`stage_chunk`]); [`finish_upload`] then files
//! it under its SHA-256, keeping one copy of any content, and attaches it to the incident once.
//! An upload in progress is listed in `staged_uploads`, so content never finished (the hub
//! stopped mid-upload) can be found and deleted.

use super::models::IncidentRow;
use super::record::{add_to_record, record_event, Context};
use super::schema::*;
use super::{StoreError, StoreResult};
use crate::domain::*;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::PgConnection;
use serde_json::json;

/// Bytes per stored chunk.
pub const CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = attachments, check_for_backend(diesel::pg::Pg))]
pub struct AttachmentRow {
    pub id: i64,
    pub incident_id: i64,
    pub sha256: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub origin: String,
    pub created_at: DateTime<Utc>,
}

pub fn stage_chunk(conn: &mut PgConnection, upload_id: uuid::Uuid, seq: i32, data: &[u8]) -> StoreResult<()> {
    conn.transaction(|conn| {
        diesel::insert_into(staged_uploads::table)
            .values(staged_uploads::upload_id.eq(upload_id))
            .on_conflict(staged_uploads::upload_id)
            .do_update()
            .set(staged_uploads::touched_at.eq(diesel::dsl::now))
            .execute(conn)?;
        diesel::insert_into(blob_chunks::table).values((blob_chunks::upload_id.eq(upload_id), blob_chunks::seq.eq(seq), blob_chunks::data.eq(data))).execute(conn)?;
        Ok(())
    })
}

pub fn discard_upload(conn: &mut PgConnection, upload_id: uuid::Uuid) -> StoreResult<()> {
    diesel::delete(blob_chunks::table.filter(blob_chunks::upload_id.eq(upload_id))).execute(conn)?;
    diesel::delete(staged_uploads::table.find(upload_id)).execute(conn)?;
    Ok(())
}

/// What the upload is.
pub struct Upload<'a> {
    pub upload_id: uuid::Uuid,
    pub sha256: &'a str,
    pub size: i64,
    pub file_name: &'a str,
    pub content_type: &'a str,
    /// `hub`, or the supplier it came from.
    pub origin: &'a str,
    /// For a file fetched from a supplier: its leg and the supplier's attachment id.
    pub from_leg: Option<(i64, &'a str)>,
    /// The most files the incident may hold.
    pub max_per_incident: i64,
}

/// Files the staged content and attaches it to the locked incident. The same content attached
/// twice (a re-upload, or the supplier's copy of a file the hub sent) is the one attachment:
/// `false` tells the caller nothing new was added. A new file on an incident that holds
/// `max_per_incident` already is refused ([`StoreError::LimitReached`]); the caller discards its
/// staged content.
pub fn finish_upload(conn: &mut PgConnection, ctx: &Context, row: &mut IncidentRow, up: &Upload) -> StoreResult<(AttachmentRow, bool)> {
    let on_record = attachments::table.filter(attachments::incident_id.eq(row.id));
    let held: bool = diesel::select(diesel::dsl::exists(on_record.filter(attachments::sha256.eq(up.sha256)))).get_result(conn)?;
    if !held {
        let count: i64 = on_record.count().get_result(conn)?;
        if count >= up.max_per_incident {
            return Err(StoreError::LimitReached(format!(
                "{} holds {count} files, the most one incident may hold (max_attachments_per_incident = {})",
                row.reference, up.max_per_incident
            )));
        }
    }
    keep_content(conn, up.upload_id, up.sha256, up.size)?;
    let inserted: Option<AttachmentRow> = diesel::insert_into(attachments::table)
        .values((
            attachments::incident_id.eq(row.id),
            attachments::sha256.eq(up.sha256),
            attachments::file_name.eq(up.file_name),
            attachments::content_type.eq(up.content_type),
            attachments::size.eq(up.size),
            attachments::origin.eq(up.origin),
        ))
        .on_conflict_do_nothing()
        .returning(AttachmentRow::as_returning())
        .get_result(conn)
        .optional()?;
    let created = inserted.is_some();
    let att = match inserted {
        Some(a) => a,
        None => attachments::table.filter(attachments::incident_id.eq(row.id)).filter(attachments::sha256.eq(up.sha256)).select(AttachmentRow::as_select()).first(conn)?,
    };
    if let Some((leg_id, native_id)) = up.from_leg {
        // The supplier holds this content: never send it back to that leg.
        let state = if created { "received" } else { "sent" };
        diesel::insert_into(attachment_deliveries::table)
            .values((
                attachment_deliveries::attachment_id.eq(att.id),
                attachment_deliveries::leg_id.eq(leg_id),
                attachment_deliveries::state.eq(state),
                attachment_deliveries::native_id.eq(native_id),
            ))
            .on_conflict((attachment_deliveries::attachment_id, attachment_deliveries::leg_id))
            .do_update()
            .set(attachment_deliveries::native_id.eq(native_id))
            .execute(conn)?;
    }
    if created {
        let data = json!({ "attachment_id": att.id, "file_name": att.file_name, "size": att.size, "sha256": att.sha256, "origin": att.origin });
        add_to_record(conn, ctx, row, NewEvent::new(EventType::AttachmentAdded, &ctx.source, data), "attachment")?;
    }
    Ok((att, created))
}

/// Files staged content under its SHA-256: the first upload of a content becomes its stored copy,
/// a later one of the same content is discarded.
pub fn keep_content(conn: &mut PgConnection, upload_id: uuid::Uuid, sha256: &str, size: i64) -> StoreResult<()> {
    diesel::delete(staged_uploads::table.find(upload_id)).execute(conn)?;
    let existing_blob: Option<uuid::Uuid> = blobs::table.find(sha256).select(blobs::upload_id).first(conn).optional()?;
    match existing_blob {
        Some(kept) if kept != upload_id => discard_upload(conn, upload_id)?,
        Some(_) => {}
        None => {
            diesel::insert_into(blobs::table).values((blobs::sha256.eq(sha256), blobs::upload_id.eq(upload_id), blobs::size.eq(size))).execute(conn)?;
        }
    }
    Ok(())
}

/// One chunk of stored content, `None` past the end.
pub fn chunk(conn: &mut PgConnection, sha256: &str, seq: i32) -> StoreResult<Option<Vec<u8>>> {
    Ok(blob_chunks::table
        .inner_join(blobs::table.on(blobs::upload_id.eq(blob_chunks::upload_id)))
        .filter(blobs::sha256.eq(sha256))
        .filter(blob_chunks::seq.eq(seq))
        .select(blob_chunks::data)
        .first(conn)
        .optional()?)
}

pub fn find(conn: &mut PgConnection, incident_id: i64, id: i64) -> StoreResult<Option<AttachmentRow>> {
    Ok(attachments::table.filter(attachments::incident_id.eq(incident_id)).filter(attachments::id.eq(id)).select(AttachmentRow::as_select()).first(conn).optional()?)
}

/// Attachments of an incident that a leg has neither sent, received nor refused, oldest first;
/// files that came from the leg's own supplier are never sent back to it.
pub fn pending_for_leg(conn: &mut PgConnection, incident_id: i64, leg_id: i64, supplier: &str) -> StoreResult<Vec<(AttachmentRow, Option<DateTime<Utc>>)>> {
    let handled =
        attachment_deliveries::table.filter(attachment_deliveries::leg_id.eq(leg_id)).filter(attachment_deliveries::state.ne(SENDING)).select(attachment_deliveries::attachment_id);
    let pending: Vec<AttachmentRow> = attachments::table
        .filter(attachments::incident_id.eq(incident_id))
        .filter(attachments::origin.ne(supplier))
        .filter(attachments::id.ne_all(handled))
        .order(attachments::id)
        .select(AttachmentRow::as_select())
        .load(conn)?;
    let tried: std::collections::HashMap<i64, DateTime<Utc>> = attachment_deliveries::table
        .filter(attachment_deliveries::leg_id.eq(leg_id))
        .filter(attachment_deliveries::state.eq(SENDING))
        .select((attachment_deliveries::attachment_id, attachment_deliveries::at))
        .load::<(i64, DateTime<Utc>)>(conn)?
        .into_iter()
        .collect();
    Ok(pending.into_iter().map(|a| (a.clone(), tried.get(&a.id).copied())).collect())
}

/// The delivery state of a file whose upload to a leg has begun and not been answered: a
/// later attempt looks for what it left before uploading again.
pub const SENDING: &str = "sending";

/// Notes that the upload of `attachment_id` to `leg_id` begins (kept if one began before).
pub fn mark_sending(conn: &mut PgConnection, attachment_id: i64, leg_id: i64) -> StoreResult<()> {
    diesel::insert_into(attachment_deliveries::table)
        .values((attachment_deliveries::attachment_id.eq(attachment_id), attachment_deliveries::leg_id.eq(leg_id), attachment_deliveries::state.eq(SENDING)))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(())
}

/// Records what happened to an attachment on a leg; a refusal is also an event on the ticket.
pub fn record_delivery(
    conn: &mut PgConnection,
    ctx: &Context,
    att: &AttachmentRow,
    leg_id: i64,
    supplier: &str,
    state: &str,
    reason: Option<&str>,
    native_id: Option<&str>,
) -> StoreResult<()> {
    diesel::insert_into(attachment_deliveries::table)
        .values((
            attachment_deliveries::attachment_id.eq(att.id),
            attachment_deliveries::leg_id.eq(leg_id),
            attachment_deliveries::state.eq(state),
            attachment_deliveries::reason.eq(reason),
            attachment_deliveries::native_id.eq(native_id),
        ))
        .on_conflict((attachment_deliveries::attachment_id, attachment_deliveries::leg_id))
        .do_update()
        .set((
            attachment_deliveries::state.eq(state),
            attachment_deliveries::reason.eq(reason),
            attachment_deliveries::native_id.eq(native_id),
            attachment_deliveries::at.eq(Utc::now()),
        ))
        .execute(conn)?;
    if state == "refused" {
        let row: IncidentRow = incidents::table.find(att.incident_id).select(IncidentRow::as_select()).first(conn)?;
        record_event(
            conn,
            ctx,
            &row,
            NewEvent::new(EventType::AttachmentRefused, &ctx.source, json!({ "attachment_id": att.id, "file_name": att.file_name, "supplier": supplier, "reason": reason })),
        )?;
    }
    Ok(())
}

/// Whether a supplier attachment is already on the record (or was refused before).
pub fn known_native(conn: &mut PgConnection, leg_id: i64, native_id: &str) -> StoreResult<bool> {
    let delivered: bool =
        diesel::select(diesel::dsl::exists(attachment_deliveries::table.filter(attachment_deliveries::leg_id.eq(leg_id)).filter(attachment_deliveries::native_id.eq(native_id))))
            .get_result(conn)?;
    let refused: bool = diesel::select(diesel::dsl::exists(inbound_refusals::table.find((leg_id, native_id)))).get_result(conn)?;
    Ok(delivered || refused)
}

/// Records a supplier file the hub would not take, with an event saying why.
pub fn refuse_inbound(conn: &mut PgConnection, ctx: &Context, row: &IncidentRow, leg_id: i64, supplier: &str, native_id: &str, file_name: &str, reason: &str) -> StoreResult<()> {
    let n = diesel::insert_into(inbound_refusals::table)
        .values((inbound_refusals::leg_id.eq(leg_id), inbound_refusals::native_id.eq(native_id), inbound_refusals::file_name.eq(file_name), inbound_refusals::reason.eq(reason)))
        .on_conflict_do_nothing()
        .execute(conn)?;
    if n == 1 {
        record_event(
            conn,
            ctx,
            row,
            NewEvent::new(EventType::AttachmentRefused, &ctx.source, json!({ "file_name": file_name, "supplier": supplier, "direction": "inbound", "reason": reason })),
        )?;
    }
    Ok(())
}

/// A delivery as read for the document: attachment id, supplier, state, reason, native id.
type DeliveryRow = (i64, String, String, Option<String>, Option<String>);

/// The attachments of the given incidents, with their deliveries, for the canonical document.
pub fn for_incidents(conn: &mut PgConnection, ids: &[i64]) -> StoreResult<Vec<(i64, Attachment)>> {
    let atts: Vec<AttachmentRow> = attachments::table.filter(attachments::incident_id.eq_any(ids)).order(attachments::id).select(AttachmentRow::as_select()).load(conn)?;
    let att_ids: Vec<i64> = atts.iter().map(|a| a.id).collect();
    let deliveries: Vec<DeliveryRow> = attachment_deliveries::table
        .inner_join(legs::table)
        .filter(attachment_deliveries::attachment_id.eq_any(&att_ids))
        .order((attachment_deliveries::attachment_id, attachment_deliveries::at))
        .select((attachment_deliveries::attachment_id, legs::supplier_id, attachment_deliveries::state, attachment_deliveries::reason, attachment_deliveries::native_id))
        .load(conn)?;
    Ok(atts
        .into_iter()
        .map(|a| {
            let d = deliveries
                .iter()
                .filter(|d| d.0 == a.id)
                .map(|d| AttachmentDelivery { supplier: d.1.clone(), state: d.2.clone(), reason: d.3.clone(), native_id: d.4.clone() })
                .collect();
            (
                a.incident_id,
                Attachment {
                    id: a.id,
                    file_name: a.file_name,
                    content_type: a.content_type,
                    size: a.size,
                    sha256: a.sha256,
                    origin: a.origin,
                    created_at: a.created_at,
                    deliveries: d,
                },
            )
        })
        .collect())
}
