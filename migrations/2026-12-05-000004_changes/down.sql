DROP TABLE change_idempotency_keys;
DROP TABLE change_notes;
DROP TABLE change_events;
DROP TABLE change_conflicts;
DROP TABLE change_approvals;
DROP TABLE change_legs;
DROP TABLE changes;
