DROP INDEX IF EXISTS inbox_processed_idx;
DROP INDEX IF EXISTS outbox_published_idx;
DROP TABLE IF EXISTS staged_uploads;
