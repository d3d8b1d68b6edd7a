//! Files on a change: the plans, the vendor's release notes, the test evidence. Content is kept
//! once per SHA-256 with the incidents' files; a change holds each content once.

use super::*;
use crate::store::attachments::keep_content;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = change_attachments, check_for_backend(diesel::pg::Pg))]
pub struct ChangeFileRow {
    pub id: i64,
    pub change_id: i64,
    pub sha256: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

impl ChangeFileRow {
    pub fn json(&self, reference: &str) -> Value {
        json!({
            "id": self.id, "file_name": self.file_name, "content_type": self.content_type, "size": self.size,
            "sha256": self.sha256, "author": self.author, "created_at": ms(&self.created_at),
            "href": format!("/api/v1/changes/{reference}/attachments/{}", self.id),
        })
    }
}

/// A file received for a change, staged under `upload_id`.
pub struct NewFile<'a> {
    pub upload_id: uuid::Uuid,
    pub sha256: &'a str,
    pub size: i64,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub author: &'a str,
    /// The most files one change may hold.
    pub max: i64,
}

pub(super) fn files_of(conn: &mut PgConnection, change_id: i64) -> StoreResult<Vec<ChangeFileRow>> {
    Ok(change_attachments::table.filter(change_attachments::change_id.eq(change_id)).order(change_attachments::id).select(ChangeFileRow::as_select()).load(conn)?)
}

/// Files the staged content on the change. The same content attached again is the one file:
/// `false` tells the caller nothing new was added. A closed change takes no new files.
pub fn attach(conn: &mut PgConnection, ctx: &Context, reference: &str, f: &NewFile<'_>) -> StoreResult<(ChangeFileRow, bool)> {
    conn.transaction(|conn| {
        let row = lock_row(conn, reference)?;
        if row.closed_at.is_some() {
            return Err(StoreError::Conflict(format!("change {reference} is {} and takes no new files", row.status)));
        }
        let held = files_of(conn, row.id)?;
        if let Some(same) = held.iter().find(|h| h.sha256 == f.sha256) {
            crate::store::attachments::discard_upload(conn, f.upload_id)?;
            return Ok((same.clone(), false));
        }
        if held.len() as i64 >= f.max {
            return Err(StoreError::LimitReached(format!("{reference} holds {} files, the most one change may hold", held.len())));
        }
        keep_content(conn, f.upload_id, f.sha256, f.size)?;
        let file: ChangeFileRow = diesel::insert_into(change_attachments::table)
            .values((
                change_attachments::change_id.eq(row.id),
                change_attachments::sha256.eq(f.sha256),
                change_attachments::file_name.eq(f.file_name),
                change_attachments::content_type.eq(f.content_type),
                change_attachments::size.eq(f.size),
                change_attachments::author.eq(f.author),
            ))
            .returning(ChangeFileRow::as_returning())
            .get_result(conn)?;
        record_event(conn, ctx, &row, "change.attachment_added", json!({ "attachment_id": file.id, "file_name": file.file_name, "size": file.size, "sha256": file.sha256 }))?;
        diesel::update(changes::table.find(row.id)).set((changes::version.eq(row.version + 1), changes::updated_at.eq(Utc::now()))).execute(conn)?;
        Ok((file, true))
    })
}

/// One file of the change.
pub fn find(conn: &mut PgConnection, reference: &str, id: i64) -> StoreResult<ChangeFileRow> {
    let row = find_row(conn, reference)?;
    change_attachments::table
        .filter(change_attachments::change_id.eq(row.id))
        .filter(change_attachments::id.eq(id))
        .select(ChangeFileRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("attachment {id} of {reference}")))
}
