-- Issue 18, decision 0028: fair use counts handled calls, those a person of the customer's took
-- (a target phone or a queue agent was connected), not every answered line: a caller who only
-- waited in a queue, or was answered only for a consent prompt or an announcement, is not one.
-- The CDR writer fills the column from rating/core/fair_use.py handled(); the fair-use report
-- counts it. Rows stored before get it here, by the same rule on the columns they have:
-- a record that does not say who answered (an import, Asterisk's own record) counts when answered.
-- A row written by hand without it is not handled. Documented in docs/billing.md.
ALTER TABLE cdrs ADD COLUMN handled boolean NOT NULL DEFAULT false;
UPDATE cdrs SET handled = true
WHERE answered_at IS NOT NULL
  AND (source <> 'live' OR answered_target IS NOT NULL OR queue_disposition = 'answered');
ALTER TABLE cdrs ADD CONSTRAINT cdrs_handled_answered CHECK (NOT handled OR answered_at IS NOT NULL);
