-- Changes coordinated over several suppliers: the record, one leg per supplier, the CAB's
-- decisions, the conflicts found in the forward schedule (acknowledgements survive
-- re-detection by key), and the change's own append-only event log and notes.

CREATE TABLE changes (
    id                  BIGINT PRIMARY KEY,
    ref                 TEXT NOT NULL UNIQUE,
    title               TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    type                TEXT NOT NULL,
    status              TEXT NOT NULL,
    on_hold             BOOLEAN NOT NULL DEFAULT false,
    hold_reason         TEXT,
    risk                SMALLINT NOT NULL CHECK (risk BETWEEN 1 AND 5),
    impact              SMALLINT NOT NULL CHECK (impact BETWEEN 1 AND 3),
    urgency             SMALLINT NOT NULL CHECK (urgency BETWEEN 1 AND 3),
    services            TEXT[] NOT NULL DEFAULT '{}',
    cis                 TEXT[] NOT NULL DEFAULT '{}',
    planned_start       TIMESTAMPTZ,
    planned_end         TIMESTAMPTZ,
    actual_start        TIMESTAMPTZ,
    actual_end          TIMESTAMPTZ,
    implementation_plan TEXT NOT NULL DEFAULT '',
    backout_plan        TEXT NOT NULL DEFAULT '',
    test_plan           TEXT NOT NULL DEFAULT '',
    template            TEXT,
    outcome             TEXT,
    outcome_notes       TEXT,
    requested_by        TEXT NOT NULL,
    opened_at           TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    closed_at           TIMESTAMPTZ,
    version             INT NOT NULL DEFAULT 1
);
CREATE SEQUENCE change_number_seq OWNED BY changes.id;
CREATE INDEX changes_status_idx ON changes (status, id);
CREATE INDEX changes_window_idx ON changes (planned_start, planned_end);

CREATE TABLE change_legs (
    id                   BIGSERIAL PRIMARY KEY,
    change_id            BIGINT NOT NULL REFERENCES changes (id),
    supplier_id          TEXT NOT NULL REFERENCES suppliers (id),
    system               TEXT NOT NULL,
    state                TEXT NOT NULL,
    native_number        TEXT,
    planned_start        TIMESTAMPTZ,
    planned_end          TIMESTAMPTZ,
    depends_on           TEXT[] NOT NULL DEFAULT '{}',
    backout_requested_at TIMESTAMPTZ,
    opened_at            TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (change_id, supplier_id)
);
CREATE INDEX change_legs_supplier_idx ON change_legs (supplier_id, change_id);

CREATE TABLE change_approvals (
    id          BIGSERIAL PRIMARY KEY,
    change_id   BIGINT NOT NULL REFERENCES changes (id),
    -- `integrator` (a change manager's key) or `supplier` (for its own leg).
    kind        TEXT NOT NULL,
    approver    TEXT NOT NULL,
    approve     BOOLEAN NOT NULL,
    comment     TEXT NOT NULL DEFAULT '',
    decided_at  TIMESTAMPTZ NOT NULL,
    -- Set when an edit of dates, services, CIs or risk sent the change back to assessment.
    voided_at   TIMESTAMPTZ
);
CREATE INDEX change_approvals_change_idx ON change_approvals (change_id, id);

CREATE TABLE change_conflicts (
    change_id       BIGINT NOT NULL REFERENCES changes (id),
    key             TEXT NOT NULL,
    kind            TEXT NOT NULL,
    other_ref       TEXT,
    subject         TEXT NOT NULL,
    period_start    TIMESTAMPTZ NOT NULL,
    period_end      TIMESTAMPTZ NOT NULL,
    hard            BOOLEAN NOT NULL,
    detail          TEXT NOT NULL,
    detected_at     TIMESTAMPTZ NOT NULL,
    acknowledged_by TEXT,
    ack_reason      TEXT,
    acknowledged_at TIMESTAMPTZ,
    PRIMARY KEY (change_id, key)
);

CREATE TABLE change_events (
    id             BIGSERIAL PRIMARY KEY,
    event_id       UUID NOT NULL UNIQUE,
    change_id      BIGINT NOT NULL REFERENCES changes (id),
    type           TEXT NOT NULL,
    source         TEXT NOT NULL,
    data           JSONB NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    correlation_id TEXT
);
CREATE INDEX change_events_change_idx ON change_events (change_id, id);

CREATE TABLE change_notes (
    id          BIGSERIAL PRIMARY KEY,
    change_id   BIGINT NOT NULL REFERENCES changes (id),
    visibility  TEXT NOT NULL,
    author      TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX change_notes_change_idx ON change_notes (change_id, id);

CREATE TABLE change_idempotency_keys (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    change_id    BIGINT NOT NULL REFERENCES changes (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
