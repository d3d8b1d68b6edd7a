-- An incident may name the change that caused it and the change that fixed it.
ALTER TABLE incidents
    ADD COLUMN caused_by_change TEXT REFERENCES changes (ref),
    ADD COLUMN fixed_by_change TEXT REFERENCES changes (ref);
CREATE INDEX incidents_caused_by_change ON incidents (caused_by_change) WHERE caused_by_change IS NOT NULL;
CREATE INDEX incidents_fixed_by_change ON incidents (fixed_by_change) WHERE fixed_by_change IS NOT NULL;
