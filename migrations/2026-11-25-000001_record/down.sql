DROP TABLE poll_state, api_keys, dead_letters, idempotency_keys, inbox, outbox, note_deliveries,
    notes, events, legs, incidents, routing_rules, suppliers CASCADE;
