-- Blocked callers (issue 18, decision 0030): refused before anything rings, never answered, never priced.
ALTER TABLE cdrs DROP CONSTRAINT cdrs_disposition_check;
ALTER TABLE cdrs ADD CONSTRAINT cdrs_disposition_check CHECK (disposition IN
    ('answered', 'no_answer', 'busy', 'unreachable', 'unallocated', 'abandoned', 'failed', 'blocked'));
