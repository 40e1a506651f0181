-- Issue 17: a call that ended while fairline was away from Asterisk (the events websocket down,
-- Asterisk stopped) ends at the time Asterisk's own CDR gives; where that CDR has no record of it
-- (Asterisk was killed), ended_at is when fairline lost the connection, and end_estimated is true.
-- Documented in docs/billing.md.
ALTER TABLE cdrs ADD COLUMN end_estimated boolean NOT NULL DEFAULT false;
