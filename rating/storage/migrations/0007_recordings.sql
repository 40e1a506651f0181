-- Call recording (issue 6): whether and under which rule a call was recorded, on the CDR,
-- and one row per recording file. Documented in docs/billing.md.

-- 0002 reserved recorded, consent_mode and consent_evidence but nothing ever wrote them (all
-- false and NULL): the mode and evidence are those of recording, whether consent was asked or not.
ALTER TABLE cdrs RENAME COLUMN consent_mode TO recording_mode;
ALTER TABLE cdrs RENAME COLUMN consent_evidence TO recording_evidence;
ALTER TABLE cdrs
    ADD CONSTRAINT cdrs_recording_mode_known CHECK (recording_mode IN ('one_party', 'notify', 'consent', 'forbidden')),
    -- The law decided before anything was recorded; forbidden calls never are.
    ADD CONSTRAINT cdrs_recorded_under_a_mode_that_allows_it CHECK (
        NOT recorded OR coalesce(recording_mode IN ('one_party', 'notify', 'consent'), false));

-- Written in the statement that writes the call's CDR (rating/storage.py), so the two land
-- together. A purge deletes the file and sets purged_at; the row and the CDR stay.
CREATE TABLE recordings (
    call_id          text          PRIMARY KEY REFERENCES cdrs (call_id),
    file             text          NOT NULL CHECK (file LIKE '/%'),   -- absolute path of the WAV file
    started_at       timestamptz   NOT NULL,
    ended_at         timestamptz   NOT NULL,
    duration_seconds numeric(10,3) NOT NULL CHECK (duration_seconds >= 0),
    sha256           text          NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),  -- of the file as stored
    mode             text          NOT NULL CHECK (mode IN ('one_party', 'notify', 'consent')),
    evidence         text,                                           -- what allowed the recording
    stored_at        timestamptz   NOT NULL DEFAULT now(),
    purged_at        timestamptz,                                    -- NULL: the file is kept
    CHECK (ended_at >= started_at)
);

-- `fairline recordings purge` and `verify`: the recordings still kept.
CREATE INDEX recordings_kept_ended ON recordings (ended_at) WHERE purged_at IS NULL;
