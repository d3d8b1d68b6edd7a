-- Browser sign-ins (dashboard, console): the cookie carries a random session id, never the API
-- key. Only the id's SHA-256 is stored; a session ends at its expiry, on sign-out, or when its
-- key is revoked.
CREATE TABLE browser_sessions (
    id_hash    TEXT PRIMARY KEY,
    key_id     BIGINT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ
);
CREATE INDEX browser_sessions_expiry ON browser_sessions (expires_at);
