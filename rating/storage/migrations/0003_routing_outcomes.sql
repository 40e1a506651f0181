-- Routing gives calls more ways to end than the first stack knew.
ALTER TABLE cdrs DROP CONSTRAINT cdrs_disposition_check;
ALTER TABLE cdrs ADD CONSTRAINT cdrs_disposition_check CHECK (disposition IN
    ('answered', 'no_answer', 'busy', 'unreachable', 'unallocated', 'abandoned', 'failed'));
