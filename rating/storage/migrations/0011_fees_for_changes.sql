-- Issue 16: a fee pays for a stored change that staff made for the customer charged. The version a
-- service charge names is now a foreign key (config_version keeps the name, as before); rows from
-- before are linked where their text names a stored version. The invoice says what the change was:
-- the version's reason. Documented in docs/billing.md.
ALTER TABLE service_charges ADD COLUMN config_version_id bigint REFERENCES config_versions (id);
UPDATE service_charges s SET config_version_id = v.id FROM config_versions v WHERE v.version = s.config_version;

CREATE OR REPLACE VIEW invoice_lines AS
SELECT customer_id, billing_month AS month, 'call'::text AS kind, call_id AS reference, started_at AS at,
       did || ' from ' || coalesce(caller, 'withheld') AS description, billable_seconds, fair_use_eligible,
       list_price_eur, charged_eur AS amount_eur, rating_error
FROM cdrs
WHERE customer_id IS NOT NULL AND answered_at IS NOT NULL
UNION ALL
SELECT s.customer_id, s.month, 'service_charge', 'SC-' || s.id, s.charged_at,
       s.reason || ' (by ' || s.charged_by
       || coalesce(', config ' || s.config_version || coalesce(': ' || nullif(v.reason, ''), ''), '') || ')',
       NULL, false, s.amount_eur, s.amount_eur, NULL
FROM service_charges s LEFT JOIN config_versions v ON v.id = s.config_version_id;
