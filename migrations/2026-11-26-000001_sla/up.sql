-- SLA state derived from the event log. Everything here but `sla_alerts` can be dropped and
-- rebuilt from `events` at any time (mark every ticket dirty and the SLA monitor recomputes it);
-- `sla_alerts` is the once-only memory of the warnings and breaches announced on the bus.

-- Tickets whose event log changed since the SLA monitor last computed their clocks. The trigger
-- marks a ticket in the same transaction as its event, whichever code path or hub process
-- wrote it, so no change can slip past the monitor; each new mark takes a new `seq`, and the
-- monitor removes a mark only if its `seq` is still the one it read, so an event that arrives
-- while its ticket is being computed keeps the ticket marked. The monitor's own `sla.*` events
-- do not mark: announcing a warning does not change a clock.
CREATE SEQUENCE sla_dirty_seq;
CREATE TABLE sla_dirty (
    incident_id BIGINT PRIMARY KEY REFERENCES incidents (id),
    seq         BIGINT NOT NULL DEFAULT nextval('sla_dirty_seq'),
    marked_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION sla_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sla_dirty (incident_id) VALUES (NEW.incident_id)
        ON CONFLICT (incident_id) DO UPDATE SET seq = nextval('sla_dirty_seq'), marked_at = now();
    RETURN NULL;
END
$$;

CREATE TRIGGER events_mark_sla_dirty AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.type NOT LIKE 'sla.%') EXECUTE FUNCTION sla_mark_dirty();

-- Tickets recorded before this migration are computed on the monitor's first rounds.
INSERT INTO sla_dirty (incident_id) SELECT id FROM incidents;

-- A fingerprint of the SLA configuration the stored clocks were computed under: a hub that
-- starts with different calendars or contracts marks every ticket for recomputation.
CREATE TABLE sla_configuration (
    id          INT PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The tables below refer to incidents without foreign keys on purpose: a foreign-key check
-- share-locks the incident row, and the monitor must not wait on a ticket an API request holds
-- while that request waits on the ticket's dirty mark. Incidents are never deleted.

-- Per-ticket facts the reports group by: who held it, how often it was handed on.
CREATE TABLE sla_tickets (
    incident_id BIGINT PRIMARY KEY,
    ref         TEXT NOT NULL,
    opened_at   TIMESTAMPTZ NOT NULL,
    priority    SMALLINT NOT NULL,
    -- Not resolved, closed or cancelled when computed.
    open        BOOLEAN NOT NULL,
    -- The supplier (or queue) holding the ticket when computed.
    holder      TEXT,
    -- Routings after the first to a different supplier (from `incident.routed` events).
    handoffs    INT NOT NULL,
    -- Hand-offs back to a supplier that held the ticket before: ping-pong.
    returns     INT NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sla_tickets_opened_idx ON sla_tickets (opened_at);

-- One row per clock (ticket x contract x supplier x metric; a clock restarted by a reopen gets
-- its own row), as the clock engine computed it at `computed_at`.
CREATE TABLE sla_clocks (
    incident_id   BIGINT NOT NULL,
    clock_key     TEXT NOT NULL,
    ref           TEXT NOT NULL,
    -- The ticket's opening time: reports take the tickets opened in their period.
    opened_at     TIMESTAMPTZ NOT NULL,
    contract      TEXT NOT NULL,
    supplier      TEXT,
    metric        TEXT NOT NULL,
    -- 0, or n for the resolution clock a `restart` contract starts at the n-th reopen.
    cycle         INT NOT NULL,
    priority      SMALLINT NOT NULL,
    target_secs   BIGINT NOT NULL,
    elapsed_secs  BIGINT NOT NULL,
    state         TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    stopped_at    TIMESTAMPTZ,
    breach_at     TIMESTAMPTZ,
    breached      BOOLEAN NOT NULL,
    pauses        JSONB NOT NULL,
    holdings      JSONB NOT NULL,
    -- When this running clock next crosses a warning threshold or its target, so the monitor
    -- revisits it then and only then; NULL when nothing can happen before the next event.
    next_alert_at TIMESTAMPTZ,
    computed_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, clock_key)
);
CREATE INDEX sla_clocks_period_idx ON sla_clocks (opened_at, contract);
-- Covers the report aggregates (index-only scans): a supplier's (or, NULL, the end-to-end)
-- clocks of a period, with every column the figures need.
CREATE INDEX sla_clocks_report_idx ON sla_clocks (supplier, opened_at)
    INCLUDE (contract, priority, metric, cycle, elapsed_secs, stopped_at, breached, state, breach_at, incident_id);
CREATE INDEX sla_clocks_due_idx ON sla_clocks (next_alert_at) WHERE next_alert_at IS NOT NULL;
CREATE INDEX sla_clocks_live_idx ON sla_clocks (breach_at) WHERE stopped_at IS NULL;

-- Warnings and breaches announced: the primary key makes each threshold of each clock announced
-- once, by one hub, once ever; the row is written in the transaction that queues the event.
CREATE TABLE sla_alerts (
    incident_id BIGINT NOT NULL,
    clock_key   TEXT NOT NULL,
    -- Percent of the target; 100 is the breach.
    threshold   SMALLINT NOT NULL,
    event_id    UUID NOT NULL,
    raised_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, clock_key, threshold)
);
