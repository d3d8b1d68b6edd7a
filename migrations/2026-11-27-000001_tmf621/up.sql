-- TMF621: the hub as a Trouble Ticket API, and the hub as a client of TMF621 suppliers.

-- Event subscriptions to the hub's own TMF621 API (`POST /tmf-api/troubleTicket/v4/hub`).
-- A subscription made with a supplier-scoped key only hears of that supplier's tickets.
CREATE TABLE tmf_subscriptions (
    id          UUID PRIMARY KEY,
    callback    TEXT NOT NULL,
    query       TEXT NOT NULL DEFAULT '',
    principal   TEXT NOT NULL,
    supplier_id TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The `externalId` a customer gave a ticket it raised through the TMF621 API, shown back on it.
CREATE TABLE tmf_external_ids (
    incident_id BIGINT PRIMARY KEY REFERENCES incidents (id),
    principal   TEXT NOT NULL,
    external_id TEXT NOT NULL,
    UNIQUE (principal, external_id)
);

-- The hub's own subscription at each TMF621 supplier's `/hub`. `claimed_until` lets one of
-- several hub processes (re)register it while the others wait.
CREATE TABLE tmf_supplier_subscriptions (
    supplier_id     TEXT PRIMARY KEY REFERENCES suppliers (id),
    subscription_id TEXT,
    callback        TEXT NOT NULL DEFAULT '',
    claimed_until   TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
