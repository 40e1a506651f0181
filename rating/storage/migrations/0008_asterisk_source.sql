-- `fairline reconcile --import` (issue 7) stores calls that only Asterisk recorded, e.g. those the
-- dialplan fallback served while fairline was down, built from Asterisk's own CDRs: source 'asterisk'.
-- Documented in docs/billing.md.
ALTER TABLE cdrs DROP CONSTRAINT cdrs_source_check;
ALTER TABLE cdrs ADD CONSTRAINT cdrs_source_check CHECK (source IN ('live', 'import', 'asterisk'));
