//! `/api/v1/incidents/{ref}/attachments`: files on the record, streamed in and out.

use super::auth::{Need, Principal, Role};
use super::error::ApiError;
use super::incidents::{load_for, parse_ref};
use super::{correlation_id, AppState};
use crate::domain::Attachment;
use crate::domain::TicketRef;
use crate::store::attachments::{self as store_att, Upload, CHUNK};
use crate::store::record::{self, Context};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    pub(super) file_name: Option<String>,
}

pub(super) fn clean_name(raw: Option<&str>) -> Result<String, ApiError> {
    let name = raw.map(str::trim).unwrap_or("");
    let bad = name.is_empty() || name.len() > 255 || name.contains(['/', '\\', '\0']) || name == "." || name == "..";
    if bad {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-file-name",
            "Invalid file name",
            "give the file as `?file_name=<name>` (1-255 characters, no path separators)",
        ));
    }
    Ok(name.to_string())
}

/// `POST /api/v1/incidents/{ref}/attachments?file_name=...` with the file as the body.
pub async fn upload(
    req: HttpRequest,
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<UploadQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let r = parse_ref(&path)?;
    let (att, created) = file(&state, &p, correlation_id(&req), r, q.file_name.as_deref(), content_type_of(&req), &mut payload).await?;
    let mut resp = if created { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(resp.json(att))
}

/// Files an upload on an incident the caller may work: answers the file and whether it is new
/// (the same content under the same name is kept once).
pub(crate) async fn file<S, E>(
    state: &AppState,
    p: &Principal,
    correlation: String,
    r: TicketRef,
    file_name: Option<&str>,
    content_type: String,
    payload: &mut S,
) -> Result<(Attachment, bool), ApiError>
where
    S: Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    p.require(&[Role::ServiceDesk, Role::Supplier])?;
    let file_name = clean_name(file_name)?;
    let incident = load_for(state, p, &r, Need::Work).await?;
    if incident.status.is_terminal() {
        return Err(ApiError::unprocessable("invalid-transition", "The incident is closed", format!("{} is {} and takes no new files", incident.reference, incident.status)));
    }

    let Received { upload_id, sha256: sha, size } = receive(state, payload).await?;
    let discard = |store: crate::store::Store| async move {
        let _ = store.run(move |c| store_att::discard_upload(c, upload_id)).await;
    };
    let ctx = Context { source: p.source(), supplier: None, correlation_id: correlation };
    let max_per_incident = state.settings.max_attachments_per_incident;
    let filed = state
        .store
        .tx(move |c| {
            let found = record::find_row(c, r.as_str())?;
            let mut row = record::lock_row_by_id(c, found.id)?;
            let up = Upload { upload_id, sha256: &sha, size: size as i64, file_name: &file_name, content_type: &content_type, origin: "hub", from_leg: None, max_per_incident };
            let (att, created) = store_att::finish_upload(c, &ctx, &mut row, &up)?;
            let doc: Attachment = store_att::for_incidents(c, &[row.id])?
                .into_iter()
                .map(|(_, a)| a)
                .find(|a| a.id == att.id)
                .ok_or_else(|| crate::store::StoreError::NotFound("attachment".into()))?;
            Ok((doc, created))
        })
        .await;
    let (att, created) = match filed {
        Ok(filed) => filed,
        Err(e) => {
            discard(state.store.clone()).await;
            return Err(e.into());
        }
    };
    state.engine.notify();
    Ok((att, created))
}

/// `GET /api/v1/incidents/{ref}/attachments/{id}`: the content, streamed.
pub async fn download(p: Principal, state: web::Data<AppState>, path: web::Path<(String, i64)>) -> Result<HttpResponse, ApiError> {
    let (raw_ref, id) = path.into_inner();
    fetch(&state, &p, &raw_ref, id).await
}

/// A file of an incident the caller may read, streamed.
pub(crate) async fn fetch(state: &AppState, p: &Principal, raw_ref: &str, id: i64) -> Result<HttpResponse, ApiError> {
    let r = parse_ref(raw_ref)?;
    let incident = load_for(state, p, &r, Need::Read).await?;
    let att = incident.attachments.iter().find(|a| a.id == id).cloned().ok_or_else(|| ApiError::not_found(format!("attachment {id} of {} does not exist", incident.reference)))?;
    Ok(stream_content(state, &att.sha256, &att.file_name, &att.content_type))
}

/// A file received: staged under `upload_id` until it is filed or discarded.
pub(super) struct Received {
    pub upload_id: uuid::Uuid,
    pub sha256: String,
    pub size: usize,
}

/// The type a client gave its file, or `application/octet-stream`.
pub(super) fn content_type_of(req: &HttpRequest) -> String {
    req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()).unwrap_or("application/octet-stream").to_string()
}

/// Reads the request body into staged chunks, hashing it on the way, within the hub's file
/// size limit. A broken, empty or too large upload leaves nothing staged.
pub(super) async fn receive<S, E>(state: &AppState, payload: &mut S) -> Result<Received, ApiError>
where
    S: Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let limit = state.settings.max_attachment_bytes;
    let upload_id = uuid::Uuid::now_v7();
    let (mut hasher, mut buf, mut seq, mut size) = (Sha256::new(), Vec::with_capacity(CHUNK), 0i32, 0usize);
    let discard = |store: crate::store::Store| async move {
        let _ = store.run(move |c| store_att::discard_upload(c, upload_id)).await;
    };
    while let Some(part) = payload.next().await {
        let part = match part {
            Ok(p) => p,
            Err(e) => {
                discard(state.store.clone()).await;
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "unreadable-body", "The upload could not be read", e.to_string()));
            }
        };
        size += part.len();
        if size > limit {
            discard(state.store.clone()).await;
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "attachment-too-large", "The file is too large", format!("files are limited to {limit} bytes")));
        }
        hasher.update(&part);
        buf.extend_from_slice(&part);
        while buf.len() >= CHUNK {
            let chunk: Vec<u8> = buf.drain(..CHUNK).collect();
            if let Err(e) = state.store.run(move |c| store_att::stage_chunk(c, upload_id, seq, &chunk)).await {
                discard(state.store.clone()).await;
                return Err(e.into());
            }
            seq += 1;
        }
    }
    if size == 0 {
        return Err(ApiError::unprocessable("empty-attachment", "The file is empty", "send the file's bytes as the request body"));
    }
    if !buf.is_empty() {
        if let Err(e) = state.store.run(move |c| store_att::stage_chunk(c, upload_id, seq, &buf)).await {
            discard(state.store.clone()).await;
            return Err(e.into());
        }
    }
    Ok(Received { upload_id, sha256: hex::encode(hasher.finalize()), size })
}

/// Stored content as a download, streamed chunk by chunk.
pub(super) fn stream_content(state: &AppState, sha256: &str, file_name: &str, content_type: &str) -> HttpResponse {
    let store = state.store.clone();
    let sha = sha256.to_string();
    let body = futures_util::stream::unfold(Some(0i32), move |seq| {
        let (store, sha) = (store.clone(), sha.clone());
        async move {
            let seq = seq?;
            match store.run(move |c| store_att::chunk(c, &sha, seq)).await {
                Ok(Some(data)) => Some((Ok::<_, actix_web::Error>(web::Bytes::from(data)), Some(seq + 1))),
                Ok(None) => None,
                Err(e) => Some((Err(actix_web::error::ErrorServiceUnavailable(e.to_string())), None)),
            }
        }
    });
    let disposition = format!("attachment; filename=\"{}\"", file_name.replace('"', "'"));
    HttpResponse::Ok()
        .content_type(content_type.to_string())
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header(("Digest", format!("sha-256={sha256}")))
        .streaming(body)
}
