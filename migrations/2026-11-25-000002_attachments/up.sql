-- Attachments. Content is stored once per SHA-256 (de-duplication), in chunks, so uploads and
-- downloads stream through the hub without holding a whole file in memory, and several hub
-- processes share it through the one database.

CREATE TABLE blob_chunks (
    upload_id  UUID NOT NULL,
    seq        INT NOT NULL,
    data       BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (upload_id, seq)
);

CREATE TABLE blobs (
    sha256     TEXT PRIMARY KEY,
    upload_id  UUID NOT NULL,
    size       BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE attachments (
    id           BIGSERIAL PRIMARY KEY,
    incident_id  BIGINT NOT NULL REFERENCES incidents (id),
    sha256       TEXT NOT NULL REFERENCES blobs (sha256),
    file_name    TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    -- `hub`, or the supplier the file came from.
    origin       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (incident_id, sha256)
);

-- What happened to each attachment on each leg: `sent`, `received` (it came from that leg) or
-- `refused` (with the reason: too large for the supplier, the supplier rejected it...).
CREATE TABLE attachment_deliveries (
    attachment_id BIGINT NOT NULL REFERENCES attachments (id),
    leg_id        BIGINT NOT NULL REFERENCES legs (id),
    state         TEXT NOT NULL,
    reason        TEXT,
    native_id     TEXT,
    at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (attachment_id, leg_id)
);
CREATE INDEX attachment_deliveries_native_idx ON attachment_deliveries (leg_id, native_id);

-- Supplier files the hub would not take (too large), so a sweep does not fetch them again.
CREATE TABLE inbound_refusals (
    leg_id    BIGINT NOT NULL REFERENCES legs (id),
    native_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    reason    TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (leg_id, native_id)
);
