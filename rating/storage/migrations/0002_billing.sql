-- Billing: customers and their numbers, rated CDRs, fair-use results, heavy-user
-- decisions and service charges; views invoice_lines and fair_use_monthly.
-- Documented column by column in docs/billing.md.

CREATE TABLE customers (
    customer_id text        PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE numbers (
    e164         text PRIMARY KEY,
    customer_id  text NOT NULL REFERENCES customers,
    number_type  text NOT NULL CHECK (number_type IN ('local', 'national', 'international', 'tollfree', 'premium')),
    active_from  date NOT NULL,
    active_until date,                               -- NULL: still active
    CHECK (active_until IS NULL OR active_until >= active_from)
);
CREATE INDEX numbers_customer ON numbers (customer_id);

ALTER TABLE cdrs
    ADD COLUMN customer_id       text,               -- NULL for numbers not in service
    ADD COLUMN number_type       text CHECK (number_type IN ('local', 'national', 'international', 'tollfree', 'premium')),
    ADD COLUMN answered_target   text,               -- E.164 of the phone that answered, when forwarded
    ADD COLUMN target_kind       text CHECK (target_kind IN ('fixed', 'mobile')),
    ADD COLUMN wait_seconds      integer      NOT NULL DEFAULT 0 CHECK (wait_seconds >= 0),
    ADD COLUMN billable_seconds  integer      NOT NULL DEFAULT 0 CHECK (billable_seconds >= 0),
    ADD COLUMN peak_seconds      integer      NOT NULL DEFAULT 0 CHECK (peak_seconds >= 0),
    ADD COLUMN offpeak_seconds   integer      NOT NULL DEFAULT 0 CHECK (offpeak_seconds >= 0),
    ADD COLUMN setup_eur         numeric(12,4) NOT NULL DEFAULT 0,
    ADD COLUMN usage_eur         numeric(12,4) NOT NULL DEFAULT 0,
    ADD COLUMN list_price_eur    numeric(12,4) NOT NULL DEFAULT 0,
    ADD COLUMN fair_use_eligible boolean      NOT NULL DEFAULT false,
    ADD COLUMN charged_eur       numeric(12,4) NOT NULL DEFAULT 0,
    ADD COLUMN billing_month     date,               -- first day of the month of started_at, number's local time
    ADD COLUMN rating_error      text,               -- why the call could not be priced (then all prices are 0)
    ADD COLUMN recorded          boolean      NOT NULL DEFAULT false,
    ADD COLUMN consent_mode      text,
    ADD COLUMN consent_evidence  text,
    ADD COLUMN source            text         NOT NULL DEFAULT 'live' CHECK (source IN ('live', 'import')),
    ADD CONSTRAINT cdrs_split_adds_up CHECK (peak_seconds + offpeak_seconds = billable_seconds),
    ADD CONSTRAINT cdrs_price_adds_up CHECK (list_price_eur = setup_eur + usage_eur),
    ADD CONSTRAINT cdrs_charged_is_free_or_list CHECK (charged_eur = 0 OR charged_eur = list_price_eur);

UPDATE cdrs SET billing_month = date_trunc('month', started_at AT TIME ZONE 'UTC')::date;
ALTER TABLE cdrs ALTER COLUMN billing_month SET NOT NULL;
CREATE INDEX cdrs_customer_month ON cdrs (customer_id, billing_month);
CREATE INDEX cdrs_month ON cdrs (billing_month);

-- Every decision is kept; the latest per customer and month is in force (view heavy_users).
CREATE TABLE heavy_user_decisions (
    id          bigserial   PRIMARY KEY,
    customer_id text        NOT NULL REFERENCES customers,
    month       date        NOT NULL CHECK (extract(day FROM month) = 1),
    heavy       boolean     NOT NULL,
    decided_by  text        NOT NULL CHECK (decided_by <> ''),
    reason      text        NOT NULL CHECK (reason <> ''),
    decided_at  timestamptz NOT NULL DEFAULT clock_timestamp()  -- not now(): orders concurrent decisions
);

CREATE VIEW heavy_users AS
SELECT DISTINCT ON (customer_id, month) customer_id, month, heavy, decided_by, reason, decided_at
FROM heavy_user_decisions
ORDER BY customer_id, month, decided_at DESC, id DESC;

CREATE TABLE service_charges (
    id             bigserial     PRIMARY KEY,
    customer_id    text          NOT NULL REFERENCES customers,
    month          date          NOT NULL CHECK (extract(day FROM month) = 1),
    amount_eur     numeric(12,4) NOT NULL CHECK (amount_eur > 0),
    reason         text          NOT NULL CHECK (reason <> ''),
    charged_by     text          NOT NULL CHECK (charged_by <> ''),
    config_version text,                              -- the call-flow version the fee paid for, when known
    charged_at     timestamptz   NOT NULL DEFAULT now()
);

-- Written by `fairline fair-use report`: one row per active customer and month.
CREATE TABLE fair_use_results (
    month                  date          NOT NULL CHECK (extract(day FROM month) = 1),
    customer_id            text          NOT NULL REFERENCES customers,
    eligible_calls         integer       NOT NULL,
    platform_average       numeric(14,4) NOT NULL,
    allowance              numeric(14,4) NOT NULL,
    above                  boolean       NOT NULL,
    months_above_of_last_6 integer       NOT NULL CHECK (months_above_of_last_6 BETWEEN 0 AND 6),
    status                 text          NOT NULL CHECK (status IN ('ok', 'above', 'contact')),
    computed_at            timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (month, customer_id)
);

CREATE VIEW fair_use_monthly AS
SELECT f.month, f.customer_id, c.name AS customer_name, f.eligible_calls, f.platform_average, f.allowance,
       f.above, f.months_above_of_last_6, f.status, coalesce(h.heavy, false) AS heavy_user, f.computed_at
FROM fair_use_results f
JOIN customers c USING (customer_id)
LEFT JOIN heavy_users h ON h.customer_id = f.customer_id AND h.month = f.month;

CREATE VIEW invoice_lines AS
SELECT customer_id, billing_month AS month, 'call'::text AS kind, call_id AS reference, started_at AS at,
       did || ' from ' || coalesce(caller, 'withheld') AS description, billable_seconds, fair_use_eligible,
       list_price_eur, charged_eur AS amount_eur, rating_error
FROM cdrs
WHERE customer_id IS NOT NULL AND answered_at IS NOT NULL
UNION ALL
SELECT customer_id, month, 'service_charge', 'SC-' || id, charged_at,
       reason || ' (by ' || charged_by || coalesce(', config ' || config_version, '') || ')', NULL, false,
       amount_eur, amount_eur, NULL
FROM service_charges;
