-- One row per inbound call that reached fairline. Written once, when the call
-- ends; call_id (Asterisk's channel id of the inbound leg) makes writes idempotent.
CREATE TABLE cdrs (
    call_id       text        PRIMARY KEY,
    did           text        NOT NULL,           -- the number dialled, E.164 when it parses
    caller        text,                           -- caller id as received; NULL when withheld
    started_at    timestamptz NOT NULL,           -- the call reached fairline
    answered_at   timestamptz,                    -- NULL when never answered
    ended_at      timestamptz NOT NULL,
    disposition   text        NOT NULL CHECK (disposition IN ('answered', 'unallocated', 'abandoned', 'failed')),
    hangup_cause  integer,                        -- Q.850 cause of the release, when known
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (answered_at IS NULL OR answered_at >= started_at),
    CHECK (ended_at >= started_at)
);

CREATE INDEX cdrs_started_at ON cdrs (started_at);
CREATE INDEX cdrs_did_started_at ON cdrs (did, started_at);
