-- Call queues: where a caller waited, how long, and how each wait ended. The
-- summary columns describe the call; queue_visits keeps every visit, in order
-- (an overflow can lead into another queue). Documented in docs/billing.md.
ALTER TABLE cdrs
    ADD COLUMN queue_name         text,           -- the first queue visited; NULL when the call never queued
    ADD COLUMN queue_wait_seconds numeric(9,3)    CHECK (queue_wait_seconds >= 0),  -- all visits together
    ADD COLUMN queue_overflows    smallint        NOT NULL DEFAULT 0 CHECK (queue_overflows >= 0),
    ADD COLUMN queue_disposition  text            CHECK (queue_disposition IN
        ('answered', 'overflowed', 'queue_timeout', 'abandoned')),  -- how the last visit ended
    -- [{"queue": "support", "entered_at": "2026-11-03T10:00:05+00:00", "waited_seconds": "61.250",
    --   "outcome": "overflowed"}, ...]
    ADD COLUMN queue_visits       jsonb           NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(queue_visits) = 'array'),
    ADD CONSTRAINT cdrs_queue_summary_complete CHECK (
        (queue_name IS NULL) = (queue_wait_seconds IS NULL)
        AND (queue_name IS NULL) = (queue_disposition IS NULL)
        AND (queue_name IS NULL) = (queue_visits = '[]'::jsonb));

-- `fairline queue report`: a month's queued calls.
CREATE INDEX cdrs_queued_month ON cdrs (billing_month) WHERE queue_name IS NOT NULL;
