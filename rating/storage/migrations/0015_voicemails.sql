-- Voicemail (issue 18, decision 0027): the CDR says a message was left, and each message has a row that
-- is also its e-mail's outbox: fairline mails it from here, retries with back-off while the SMTP server is
-- down or refuses, and a restarted fairline picks up where the last one stopped. Documented in docs/billing.md.
ALTER TABLE cdrs ADD COLUMN voicemail boolean NOT NULL DEFAULT false;

-- Written in the statement that writes the call's CDR (rating/storage/database.py), so the two land
-- together, from the spool too while PostgreSQL was down. A purge deletes the file and sets purged_at.
CREATE TABLE voicemails (
    call_id          text          PRIMARY KEY REFERENCES cdrs (call_id),
    file             text          NOT NULL CHECK (file LIKE '/%'),   -- absolute path of the WAV file
    started_at       timestamptz   NOT NULL,
    ended_at         timestamptz   NOT NULL,
    duration_seconds numeric(10,3) NOT NULL CHECK (duration_seconds >= 0),
    sha256           text          NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),  -- of the file as stored
    stored_at        timestamptz   NOT NULL DEFAULT now(),
    purged_at        timestamptz,                                    -- NULL: the file is kept
    email_status     text          NOT NULL DEFAULT 'pending'
                                   CHECK (email_status IN ('pending', 'retrying', 'failed', 'sent')),
    email_attempts   integer       NOT NULL DEFAULT 0 CHECK (email_attempts >= 0),
    next_attempt_at  timestamptz   NOT NULL DEFAULT now(),           -- also a lease: set ahead while one sends it
    last_error       text,                                           -- what the SMTP server or the network said
    emailed_to       text[],                                         -- the addresses of the last attempt
    sent_at          timestamptz,
    CHECK (ended_at >= started_at),
    CHECK ((email_status = 'sent') = (sent_at IS NOT NULL))
);

-- The mailer's query: the messages still to send, the first due first.
CREATE INDEX voicemails_unsent ON voicemails (next_attempt_at) WHERE email_status <> 'sent';
