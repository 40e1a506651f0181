-- Issue 20 (decision 0033): cdrs partitioned by billing_month, one partition per month
-- (cdrs_YYYY_MM) and a DEFAULT partition (cdrs_default) so that no CDR ever fails for want of one.
-- A partitioned table's unique keys must hold the partition key, so the primary key becomes
-- (call_id, billing_month); cdr_calls, a plain table with call_id as its primary key, keeps a call
-- id unique across months (statement triggers on cdrs fill and empty it) and is what recordings
-- and voicemails refer to: a month's partition can be detached for archive without touching them.
-- Rows, columns, checks, defaults, the generated node, indexes (by name) and views are kept; the
-- old table is rewritten once (docs/operations.md: how long per million rows). Documented in
-- docs/billing.md.

CREATE TEMPORARY TABLE cdrs_dependents (kind text, name text, definition text) ON COMMIT DROP;

-- What depends on the old table, read before anything moves: views, foreign keys, indexes.
INSERT INTO cdrs_dependents
SELECT DISTINCT 'view', v.oid::regclass::text, pg_get_viewdef(v.oid)
FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class v ON v.oid = w.ev_class
WHERE d.refobjid = 'cdrs'::regclass AND v.oid <> 'cdrs'::regclass;
INSERT INTO cdrs_dependents
SELECT 'foreign key', c.conrelid::regclass::text, c.conname
FROM pg_constraint c WHERE c.confrelid = 'cdrs'::regclass AND c.contype = 'f';
INSERT INTO cdrs_dependents
SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i WHERE i.indrelid = 'cdrs'::regclass AND NOT i.indisprimary;

DO $$
DECLARE
    dependent record;
BEGIN
    FOR dependent IN SELECT * FROM cdrs_dependents WHERE kind = 'view' LOOP
        EXECUTE format('DROP VIEW %s', dependent.name);
    END LOOP;
    FOR dependent IN SELECT * FROM cdrs_dependents WHERE kind = 'foreign key' LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', dependent.name, dependent.definition);
    END LOOP;
END
$$;

ALTER TABLE cdrs RENAME TO cdrs_unpartitioned;

-- Every column, default, check and the generated node as they were; no index yet (loaded first).
CREATE TABLE cdrs (LIKE cdrs_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED
                   INCLUDING STORAGE INCLUDING COMMENTS)
    PARTITION BY RANGE (billing_month);
CREATE TABLE cdrs_default PARTITION OF cdrs DEFAULT;

-- One partition per month from the oldest row's to this month (UTC); later months are made
-- ahead of time by `fairline cdr partitions ensure` and at `fairline run` start.
DO $$
DECLARE
    month date;
BEGIN
    FOR month IN
        SELECT generate_series(
            least(coalesce(date_trunc('month', min(billing_month)), 'infinity'), date_trunc('month', now() AT TIME ZONE 'UTC')),
            date_trunc('month', greatest(max(billing_month), now() AT TIME ZONE 'UTC')),
            interval '1 month')::date
        FROM cdrs_unpartitioned
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF cdrs FOR VALUES FROM (%L) TO (%L)',
                       'cdrs_' || to_char(month, 'YYYY_MM'), month, (month + interval '1 month')::date);
    END LOOP;
END
$$;

-- The rows, every column but the generated node (computed again, by the same rule).
DO $$
DECLARE
    columns text;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO columns
    FROM pg_attribute
    WHERE attrelid = 'cdrs_unpartitioned'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
    EXECUTE format('INSERT INTO cdrs (%s) SELECT %s FROM cdrs_unpartitioned', columns, columns);
END
$$;

CREATE TABLE cdr_calls (
    call_id       text PRIMARY KEY,
    billing_month date NOT NULL     -- the partition its CDR is in (or was in, once detached)
);
INSERT INTO cdr_calls (call_id, billing_month) SELECT call_id, billing_month FROM cdrs_unpartitioned;

DROP TABLE cdrs_unpartitioned;

ALTER TABLE cdrs ADD CONSTRAINT cdrs_pkey PRIMARY KEY (call_id, billing_month);
DO $$
DECLARE
    dependent record;
BEGIN
    FOR dependent IN SELECT * FROM cdrs_dependents WHERE kind = 'index' LOOP
        EXECUTE dependent.definition;  -- "CREATE INDEX name ON public.cdrs ...": now the partitioned table
    END LOOP;
    FOR dependent IN SELECT * FROM cdrs_dependents WHERE kind = 'foreign key' LOOP
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I FOREIGN KEY (call_id) REFERENCES cdr_calls (call_id)',
                       dependent.name, dependent.definition);
    END LOOP;
    FOR dependent IN SELECT * FROM cdrs_dependents WHERE kind = 'view' LOOP
        EXECUTE format('CREATE VIEW %s AS %s', dependent.name, dependent.definition);
    END LOOP;
END
$$;

-- The guard: a call id already stored in another month's partition makes the insert fail on
-- cdr_calls' primary key (SQLSTATE 23505), as the single-table primary key did. Statement
-- triggers with transition tables: one INSERT per statement (a COPY of a million rows too), not
-- one per row. They fire for statements on cdrs, not on a partition named directly: write cdrs.
CREATE FUNCTION cdr_calls_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cdr_calls (call_id, billing_month) SELECT call_id, billing_month FROM added;
    RETURN NULL;
END
$$;
CREATE TRIGGER cdr_calls_added AFTER INSERT ON cdrs REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION cdr_calls_added();

CREATE FUNCTION cdr_calls_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM cdr_calls c USING removed r WHERE c.call_id = r.call_id AND c.billing_month = r.billing_month;
    RETURN NULL;
END
$$;
CREATE TRIGGER cdr_calls_removed AFTER DELETE ON cdrs REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION cdr_calls_removed();

-- A call's id and month are its identity: an update that changed them would leave cdr_calls behind.
CREATE FUNCTION cdr_identity_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a CDR''s call_id and billing_month are never updated (call %)', OLD.call_id
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER cdr_identity_kept BEFORE UPDATE OF call_id, billing_month ON cdrs FOR EACH ROW
    WHEN (OLD.call_id IS DISTINCT FROM NEW.call_id OR OLD.billing_month IS DISTINCT FROM NEW.billing_month)
    EXECUTE FUNCTION cdr_identity_kept();

-- TRUNCATE cdrs (tests, benchmarks) empties the registry too, and with it what refers to it:
-- recordings and voicemails, as TRUNCATE cdrs CASCADE did before.
CREATE FUNCTION cdr_calls_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE cdr_calls CASCADE;
    RETURN NULL;
END
$$;
CREATE TRIGGER cdr_calls_truncated AFTER TRUNCATE ON cdrs FOR EACH STATEMENT EXECUTE FUNCTION cdr_calls_truncated();
