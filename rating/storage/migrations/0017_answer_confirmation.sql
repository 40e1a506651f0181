-- Issue 18 (decision 0031): a phone that must confirm takes a call only once the person pressed 1.
-- answer_confirmed: the phone that took the call pressed 1 first (NULL: it was not asked to);
-- unconfirmed_answers: phones that answered and did not press 1 (a mobile's voicemail box, say).
-- Documented in docs/billing.md.
ALTER TABLE cdrs ADD COLUMN answer_confirmed boolean;
ALTER TABLE cdrs ADD COLUMN unconfirmed_answers smallint NOT NULL DEFAULT 0
    CHECK (unconfirmed_answers >= 0);
