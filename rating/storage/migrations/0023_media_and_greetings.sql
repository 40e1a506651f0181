-- The console's recordings, voicemails and greetings (issue 19, decision 0036), and the audit events of call-flow changes made in it (decision 0035).

-- A customer's uploaded voicemail greeting, in the database every node shares: each fairline writes it
-- into its own greetings directory, under its hash's name, when a configuration version names it
-- (`greeting_file: <greetings dir>/<sha256>.wav`), before checking that version. Already converted to what
-- Asterisk plays (8 kHz, 16-bit, mono WAV). Rows are never changed: the content is the key.
CREATE TABLE greetings (
    sha256      text          PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),  -- of audio
    customer_id text          NOT NULL,                                       -- who uploaded it first
    audio       bytea         NOT NULL CHECK (octet_length(audio) <= 16777216),
    seconds     numeric(8,3)  NOT NULL CHECK (seconds > 0),
    uploaded_by text          NOT NULL,                                       -- the console account's e-mail
    uploaded_at timestamptz   NOT NULL DEFAULT now()
);

-- Every play or download of a recording or voicemail and every greeting upload is in the audit.
ALTER TABLE console_audit DROP CONSTRAINT console_audit_event_check;
ALTER TABLE console_audit ADD CONSTRAINT console_audit_event_check CHECK (event IN (
    'login', 'login_failed', 'lockout', 'login_refused', 'logout', 'password_changed', 'totp_enrolled',
    'user_added', 'user_reset', 'user_disabled',
    'heavy_user_marked', 'heavy_user_unmarked', 'contact_noted',  -- migration 0022
    'media_played', 'media_downloaded', 'media_refused', 'greeting_uploaded',
    'flow_changed', 'fee_charged'));  -- a call flow changed in the console, a staff fee attached to it

