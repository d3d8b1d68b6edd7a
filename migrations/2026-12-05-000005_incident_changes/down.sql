ALTER TABLE incidents DROP COLUMN caused_by_change, DROP COLUMN fixed_by_change;
