-- Files on a change (the plan, the vendor's release notes, the test evidence): content is kept
-- once per SHA-256 in `blobs`, as for incidents; a change holds each content once.
CREATE TABLE change_attachments (
    id bigserial PRIMARY KEY,
    change_id bigint NOT NULL REFERENCES changes (id),
    sha256 text NOT NULL REFERENCES blobs (sha256),
    file_name text NOT NULL,
    content_type text NOT NULL,
    size bigint NOT NULL,
    author text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (change_id, sha256)
);
