DROP INDEX IF EXISTS change_legs_open_by_supplier;
ALTER TABLE change_legs
    DROP COLUMN native_id,
    DROP COLUMN native_status,
    DROP COLUMN native_kept,
    DROP COLUMN unmapped,
    DROP COLUMN pushed,
    DROP COLUMN backout_sent_at,
    DROP COLUMN last_error;
