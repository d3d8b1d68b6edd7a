-- The unified service record: tickets, supplier legs, the append-only event log, notes,
-- and the outbox/inbox that make broker delivery exactly-once in effect.

CREATE TABLE suppliers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    system      TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE routing_rules (
    id          SERIAL PRIMARY KEY,
    position    INT NOT NULL,
    service     TEXT,
    ci          TEXT,
    category    TEXT,
    supplier_id TEXT NOT NULL REFERENCES suppliers (id)
);

CREATE TABLE incidents (
    id                BIGINT PRIMARY KEY,
    ref               TEXT NOT NULL UNIQUE,
    title             TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL,
    hold_reason       TEXT,
    impact            SMALLINT NOT NULL CHECK (impact BETWEEN 1 AND 3),
    urgency           SMALLINT NOT NULL CHECK (urgency BETWEEN 1 AND 3),
    priority          SMALLINT NOT NULL CHECK (priority BETWEEN 1 AND 5),
    priority_source   TEXT NOT NULL,
    category          TEXT,
    service           TEXT,
    ci                TEXT,
    caller            TEXT NOT NULL,
    assigned_supplier TEXT REFERENCES suppliers (id),
    resolution_code   TEXT,
    resolution_notes  TEXT,
    opened_at         TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    resolved_at       TIMESTAMPTZ,
    closed_at         TIMESTAMPTZ,
    version           INT NOT NULL DEFAULT 1
);
CREATE SEQUENCE incident_number_seq OWNED BY incidents.id;
CREATE INDEX incidents_status_idx ON incidents (status, id);
CREATE INDEX incidents_supplier_idx ON incidents (assigned_supplier, id);

-- One row per supplier ticket. `baseline` holds the supplier's synced fields, in its native
-- values, as last known to agree with the hub: a supplier change is a difference from it, and
-- a hub write moves it, so the hub's own writes never come back as new changes.
CREATE TABLE legs (
    id                BIGSERIAL PRIMARY KEY,
    incident_id       BIGINT NOT NULL REFERENCES incidents (id),
    supplier_id       TEXT NOT NULL REFERENCES suppliers (id),
    system            TEXT NOT NULL,
    state             TEXT NOT NULL,
    native_id         TEXT,
    native_number     TEXT,
    native_status     TEXT,
    url               TEXT,
    native_revision   BIGINT,
    native_updated_at TIMESTAMPTZ,
    baseline          JSONB NOT NULL DEFAULT '{}',
    unmapped          JSONB NOT NULL DEFAULT '{}',
    last_error        TEXT,
    opened_at         TIMESTAMPTZ NOT NULL,
    closed_at         TIMESTAMPTZ,
    synced_at         TIMESTAMPTZ,
    UNIQUE (supplier_id, native_id)
);
CREATE INDEX legs_incident_idx ON legs (incident_id);

CREATE TABLE events (
    id             BIGSERIAL PRIMARY KEY,
    event_id       UUID NOT NULL UNIQUE,
    incident_id    BIGINT NOT NULL REFERENCES incidents (id),
    type           TEXT NOT NULL,
    source         TEXT NOT NULL,
    data           JSONB NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    correlation_id TEXT
);
CREATE INDEX events_incident_idx ON events (incident_id, id);

CREATE TABLE notes (
    id           BIGSERIAL PRIMARY KEY,
    incident_id  BIGINT NOT NULL REFERENCES incidents (id),
    visibility   TEXT NOT NULL,
    author       TEXT NOT NULL,
    body         TEXT NOT NULL,
    origin       TEXT NOT NULL,
    native_id    TEXT,
    content_hash TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX notes_incident_idx ON notes (incident_id, id);
CREATE UNIQUE INDEX notes_native_uniq ON notes (incident_id, origin, native_id) WHERE native_id IS NOT NULL;

-- Which hub notes were sent to which supplier leg, and under which native journal id they came
-- back. The row is written before the supplier call (`confirmed` false), so the supplier's echo
-- of the note is recognised even when it arrives before the call returns.
CREATE TABLE note_deliveries (
    note_id      BIGINT NOT NULL REFERENCES notes (id),
    leg_id       BIGINT NOT NULL REFERENCES legs (id),
    delivered_at TIMESTAMPTZ NOT NULL,
    confirmed    BOOLEAN NOT NULL DEFAULT false,
    native_id    TEXT,
    PRIMARY KEY (note_id, leg_id)
);

CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    message_id   UUID NOT NULL UNIQUE,
    routing_key  TEXT NOT NULL,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A relay that claimed the row; another relay may take it over once the lease has passed.
    lease_until  TIMESTAMPTZ,
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE inbox (
    consumer     TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE idempotency_keys (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    incident_id  BIGINT NOT NULL REFERENCES incidents (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);

CREATE TABLE dead_letters (
    id           BIGSERIAL PRIMARY KEY,
    message_id   UUID NOT NULL,
    routing_key  TEXT NOT NULL,
    payload      JSONB NOT NULL,
    supplier_id  TEXT,
    incident_ref TEXT,
    reason       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    replayed_at  TIMESTAMPTZ
);

CREATE TABLE api_keys (
    id          BIGSERIAL PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    role        TEXT NOT NULL,
    supplier_id TEXT,
    label       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);

-- Reconciliation sweep position per supplier (the highest supplier-side update time seen).
CREATE TABLE poll_state (
    supplier_id TEXT PRIMARY KEY REFERENCES suppliers (id),
    watermark   TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
