//! Files in both directions: the record's attachments go to every leg that lacks them (within
//! the supplier's size limit, else the refusal is recorded on the leg), and files attached at a
//! supplier are fetched into the record (or refused on the leg with why: too large, or a URL the
//! supplier's client will not follow, see [`crate::adapters::egress`]). Content streams in chunks both ways and is identified
//! by its SHA-256, so the same file is never stored or sent twice.

use super::{Engine, SupplierLink, SyncError};
use crate::adapters::{ContentFactory, NativeAttachment, OutgoingFile, SupplierError};
use crate::store::attachments::{self as store_att, Upload, CHUNK};
use crate::store::record::{self, Context};
use crate::store::schema::attachments as att_table;
use crate::store::StoreError;
use diesel::prelude::*;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The leg a transfer concerns.
pub struct LegRef<'a> {
    pub supplier: &'a str,
    pub leg_id: i64,
    pub incident_id: i64,
    pub native_id: &'a str,
    pub correlation_id: &'a str,
}

impl Engine {
    /// Streams stored content chunk by chunk.
    fn content_stream(&self, sha256: &str) -> ContentFactory {
        let (store, sha) = (self.store.clone(), sha256.to_string());
        Arc::new(move || {
            let (store, sha) = (store.clone(), sha.clone());
            let chunks = futures_util::stream::unfold(Some(0i32), move |seq| {
                let (store, sha) = (store.clone(), sha.clone());
                async move {
                    let seq = seq?;
                    match store.run(move |c| store_att::chunk(c, &sha, seq)).await {
                        Ok(Some(data)) => Some((Ok::<_, std::io::Error>(data), Some(seq + 1))),
                        Ok(None) => None,
                        Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
                    }
                }
            });
            chunks.boxed()
        })
    }

    /// Sends the record's files this leg has not had; too large or refused ones are recorded.
    pub async fn push_attachments(&self, link: &SupplierLink, leg: &LegRef<'_>) -> Result<(), SyncError> {
        let (incident_id, leg_id, supplier) = (leg.incident_id, leg.leg_id, leg.supplier.to_string());
        let pending = self.store.run(move |c| store_att::pending_for_leg(c, incident_id, leg_id, &supplier)).await?;
        for (att, tried) in pending {
            let limit = link.settings.max_attachment_bytes;
            let outcome = if att.size > limit {
                Err(format!("{} bytes is over the supplier's limit of {limit} bytes", att.size))
            } else {
                let file = OutgoingFile { file_name: att.file_name.clone(), content_type: att.content_type.clone(), size: att.size, content: self.content_stream(&att.sha256) };
                // An upload begun before (by a hub process that stopped) may have attached it.
                let left = match tried {
                    Some(at) => {
                        self.settle_writes_of_earlier_processes(link, at).await;
                        match link.client.find_uploaded(leg.native_id, &file, &[]).await {
                            Ok(found) => found,
                            Err(SupplierError::Rejected { .. }) => None,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    None => {
                        let (att_id, leg_id) = (att.id, leg.leg_id);
                        self.store.run(move |c| store_att::mark_sending(c, att_id, leg_id)).await?;
                        None
                    }
                };
                match left {
                    Some(native) => Ok(native),
                    None => match link.client.upload_attachment(leg.native_id, &file).await {
                        Ok(native) => Ok(native),
                        Err(SupplierError::Rejected { message, .. }) => Err(message),
                        Err(e) => return Err(e.into()),
                    },
                }
            };
            let ctx = Context::hub(leg.correlation_id);
            let supplier = leg.supplier.to_string();
            self.store
                .tx(move |c| match &outcome {
                    Ok(native) => store_att::record_delivery(c, &ctx, &att, leg_id, &supplier, "sent", None, Some(native)),
                    Err(reason) => store_att::record_delivery(c, &ctx, &att, leg_id, &supplier, "refused", Some(reason), None),
                })
                .await?;
        }
        self.notify();
        Ok(())
    }

    /// Fetches the supplier's files the record lacks; returns how many were added. `listed`:
    /// the supplier's files when a payload already read lists them (else they are asked for).
    pub async fn pull_attachments(&self, link: &SupplierLink, leg: &LegRef<'_>, listed: Option<Vec<NativeAttachment>>) -> Result<usize, SyncError> {
        let files = match listed {
            Some(files) => files,
            None => match link.client.list_attachments(leg.native_id).await {
                Ok(f) => f,
                Err(SupplierError::Rejected { .. }) => return Ok(0),
                Err(e) => return Err(e.into()),
            },
        };
        let mut added = 0;
        for file in files {
            let (leg_id, native) = (leg.leg_id, file.native_id.clone());
            if self.store.run(move |c| store_att::known_native(c, leg_id, &native)).await? {
                continue;
            }
            // A file the record already holds (the supplier's copy of one the hub sent) is
            // linked, not fetched again.
            if let Some(sha) = &file.sha256 {
                let (incident_id, sha) = (leg.incident_id, sha.clone());
                let held: bool = self
                    .store
                    .run(move |c| {
                        Ok(diesel::select(diesel::dsl::exists(att_table::table.filter(att_table::incident_id.eq(incident_id)).filter(att_table::sha256.eq(&sha)))).get_result(c)?)
                    })
                    .await?;
                if held {
                    self.store_download(link, leg, &file, None).await?;
                    continue;
                }
            }
            let limit = link.settings.max_attachment_bytes;
            if file.size.is_some_and(|s| s > limit) {
                self.refuse(leg, &file, format!("{} bytes is over the limit of {limit} bytes for this supplier", file.size.unwrap_or(0))).await?;
                continue;
            }
            let resp = match link.client.download_attachment(&file).await {
                Ok(r) => r,
                // The supplier will not give this file (gone, forbidden, no address): on record,
                // and not asked for again.
                Err(SupplierError::Rejected { message, .. }) => {
                    self.refuse(leg, &file, message).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if self.store_download(link, leg, &file, Some(resp)).await? {
                added += 1;
            }
        }
        if added > 0 {
            self.notify();
        }
        Ok(added)
    }

    async fn refuse(&self, leg: &LegRef<'_>, file: &NativeAttachment, reason: String) -> Result<(), SyncError> {
        let ctx = Context::supplier(leg.supplier, leg.correlation_id);
        let (incident_id, leg_id, supplier, native, name) = (leg.incident_id, leg.leg_id, leg.supplier.to_string(), file.native_id.clone(), file.file_name.clone());
        self.store
            .tx(move |c| {
                let row = record::lock_row_by_id(c, incident_id)?;
                store_att::refuse_inbound(c, &ctx, &row, leg_id, &supplier, &native, &name, &reason)
            })
            .await?;
        Ok(())
    }

    /// Streams a supplier file into chunks (when `resp` is given) and files it on the record;
    /// without content, links the supplier's id to the copy the record holds.
    async fn store_download(&self, link: &SupplierLink, leg: &LegRef<'_>, file: &NativeAttachment, resp: Option<reqwest::Response>) -> Result<bool, SyncError> {
        let upload_id = uuid::Uuid::now_v7();
        let mut size: i64 = 0;
        let sha = match resp {
            None => file.sha256.clone().unwrap_or_default(),
            Some(resp) => {
                let limit = link.settings.max_attachment_bytes;
                let mut hasher = Sha256::new();
                let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
                let mut seq = 0;
                let mut stream = resp.bytes_stream();
                while let Some(part) = stream.next().await {
                    let part = match part {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = self.store.run(move |c| store_att::discard_upload(c, upload_id)).await;
                            return Err(SupplierError::Transient { message: format!("downloading {}: {e}", file.file_name), retry_after: None, unsent: false }.into());
                        }
                    };
                    size += part.len() as i64;
                    if size > limit {
                        let _ = self.store.run(move |c| store_att::discard_upload(c, upload_id)).await;
                        self.refuse(leg, file, format!("larger than the limit of {limit} bytes for this supplier")).await?;
                        return Ok(false);
                    }
                    hasher.update(&part);
                    buf.extend_from_slice(&part);
                    while buf.len() >= CHUNK {
                        let chunk: Vec<u8> = buf.drain(..CHUNK).collect();
                        self.store.run(move |c| store_att::stage_chunk(c, upload_id, seq, &chunk)).await?;
                        seq += 1;
                    }
                }
                if !buf.is_empty() || seq == 0 {
                    self.store.run(move |c| store_att::stage_chunk(c, upload_id, seq, &buf)).await?;
                }
                hex::encode(hasher.finalize())
            }
        };
        let ctx = Context::supplier(leg.supplier, leg.correlation_id);
        let (incident_id, leg_id, supplier, native) = (leg.incident_id, leg.leg_id, leg.supplier.to_string(), file.native_id.clone());
        let (name, content_type) = (file.file_name.clone(), if file.content_type.is_empty() { "application/octet-stream".to_string() } else { file.content_type.clone() });
        let max_per_incident = self.max_attachments;
        let filed = self
            .store
            .tx(move |c| {
                let mut row = record::lock_row_by_id(c, incident_id)?;
                let up =
                    Upload { upload_id, sha256: &sha, size, file_name: &name, content_type: &content_type, origin: &supplier, from_leg: Some((leg_id, &native)), max_per_incident };
                Ok(store_att::finish_upload(c, &ctx, &mut row, &up)?.1)
            })
            .await;
        match filed {
            Ok(created) => Ok(created),
            // The record is full: the file is refused on the leg, and not fetched again.
            Err(StoreError::LimitReached(reason)) => {
                self.store.run(move |c| store_att::discard_upload(c, upload_id)).await?;
                self.refuse(leg, file, reason).await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}
