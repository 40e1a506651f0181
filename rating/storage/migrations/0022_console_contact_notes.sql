-- The console's staff tools (issue 19): notes of the fair-use phone call (the policy's `contact`
-- status) and the audit events of staff's billing actions. SQL that reads and writes these is in
-- console/billing_storage.py; docs/billing.md describes the table, docs/console.md the pages.

-- One row per call made (or tried) to a customer about a month's `contact` status; never edited.
CREATE TABLE console_contact_notes (
    id          bigserial   PRIMARY KEY,
    customer_id text        NOT NULL REFERENCES customers,
    -- The fair-use month whose `contact` status the call was about (fair_use_results.month).
    month       date        NOT NULL CHECK (extract(day FROM month) = 1),
    spoke_with  text        NOT NULL CHECK (spoke_with <> ''),   -- who at the customer's (or "no answer")
    called_at   timestamptz NOT NULL,                            -- when the call was made
    note        text        NOT NULL CHECK (note <> ''),         -- what was agreed
    recorded_by bigint      NOT NULL REFERENCES console_users,   -- the staff member who wrote it
    recorded_at timestamptz NOT NULL
);
CREATE INDEX console_contact_notes_customer ON console_contact_notes (customer_id, recorded_at);

-- Staff's actions join the audit: a heavy-user decision and a contact note.
ALTER TABLE console_audit DROP CONSTRAINT console_audit_event_check;
ALTER TABLE console_audit ADD CONSTRAINT console_audit_event_check CHECK (event IN (
    'login', 'login_failed', 'lockout', 'login_refused', 'logout', 'password_changed', 'totp_enrolled',
    'user_added', 'user_reset', 'user_disabled',
    'heavy_user_marked', 'heavy_user_unmarked', 'contact_noted'));
