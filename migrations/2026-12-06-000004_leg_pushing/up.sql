-- What the hub is writing to a supplier ticket right now (native field -> value), between the
-- write and the moment its answer is recorded: the supplier's notification of that write can
-- arrive first, and must be known as the hub's own echo, not as the supplier's change.
ALTER TABLE legs ADD COLUMN pushing jsonb NOT NULL DEFAULT '{}'::jsonb;
