-- Issue 16: every CDR says what priced it, so billing can explain any amount without re-rating.
-- tariff: the traffic rates that priced the call, as rating/core/tariff.py's TrafficRates.label writes
--   them ("2026-01-01: 0.04 + 0.07/0.05 per min": valid from; set-up + peak/off-peak EUR per minute),
--   "; " between two when the call ran into a new version; NULL for a call never answered.
-- rating_zone: the clock that told peak from off-peak and the billing month (IANA name, e.g.
--   "Europe/Amsterdam"; "UTC" for a number without one).
-- Both NULL for CDRs stored before this migration. Documented in docs/billing.md.
ALTER TABLE cdrs ADD COLUMN tariff text CHECK (tariff <> '');
ALTER TABLE cdrs ADD COLUMN rating_zone text CHECK (rating_zone <> '');
