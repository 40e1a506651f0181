-- The configuration store (issue 16): each version also says in which role its author made it,
-- why, and which version it was made from. `fairline config apply` refuses a change whose base
-- is not the newest version (rating/storage/config_store.py); decision 0021 says why so.

ALTER TABLE config_versions
    ADD COLUMN role     text   NOT NULL DEFAULT 'admin' CHECK (role IN ('customer', 'staff', 'admin')),
    ADD COLUMN reason   text   NOT NULL DEFAULT '',
    -- The version the author started from: the newest one when this one was stored (NULL: the first).
    ADD COLUMN based_on bigint NULL REFERENCES config_versions (id),
    ADD CONSTRAINT config_versions_based_on_earlier CHECK (based_on < id);

-- Versions recorded before this migration were each diffed against the one before them (0008).
UPDATE config_versions v
SET based_on = (SELECT max(p.id) FROM config_versions p WHERE p.id < v.id);

-- Every stored version wakes whoever listens on `fairline_config` (payload: the new version's id,
-- e.g. '12'). Sent when the insert commits, never for a version rolled back. A wake-up only: a
-- listener reads the table, which is the truth, and catches up on what it missed while away.
CREATE FUNCTION config_versions_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fairline_config', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER config_versions_notify AFTER INSERT ON config_versions
    FOR EACH ROW EXECUTE FUNCTION config_versions_notify();
