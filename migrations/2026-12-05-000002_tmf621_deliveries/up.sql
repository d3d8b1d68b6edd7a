-- Notifications owed to subscribers of the hub's TMF621 API, one row per subscription and hub
-- event, posted in order per subscription by the delivery workers. `message` is the hub event
-- as the broker carried it (what a dead letter replays); `lease_until` marks the one row of a
-- subscription a worker is posting.
CREATE TABLE tmf_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    subscription_id UUID NOT NULL REFERENCES tmf_subscriptions (id) ON DELETE CASCADE,
    message_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    incident_ref    TEXT NOT NULL,
    envelope        JSONB NOT NULL,
    message         JSONB NOT NULL,
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    failing_since   TIMESTAMPTZ,
    last_error      TEXT,
    lease_until     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX tmf_deliveries_by_subscription ON tmf_deliveries (subscription_id, id);
CREATE INDEX tmf_subscriptions_by_principal ON tmf_subscriptions (principal);
