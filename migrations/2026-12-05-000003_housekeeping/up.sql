-- Housekeeping: uploads in progress are tracked so content never finished can be deleted, and
-- the outbox and inbox are pruned by age.

-- An upload whose content is being staged in blob_chunks; gone once it is filed or discarded.
CREATE TABLE staged_uploads (
    upload_id  UUID PRIMARY KEY,
    touched_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX staged_uploads_touched_idx ON staged_uploads (touched_at);

-- Content staged before this table existed and never filed.
INSERT INTO staged_uploads (upload_id, touched_at)
SELECT c.upload_id, max(c.created_at) FROM blob_chunks c
WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.upload_id = c.upload_id)
GROUP BY c.upload_id;

CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX inbox_processed_idx ON inbox (processed_at);
