-- A change leg is a change record in the supplier's own system: its id there, what the hub last
-- wrote to it, what it last read of it, and why the last attempt to bring it in line failed.
ALTER TABLE change_legs
    ADD COLUMN native_id text,
    ADD COLUMN native_status text,
    ADD COLUMN native_kept jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN unmapped jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN pushed jsonb,
    ADD COLUMN backout_sent_at timestamptz,
    ADD COLUMN last_error text;

CREATE INDEX change_legs_open_by_supplier ON change_legs (supplier_id) WHERE native_id IS NOT NULL;
