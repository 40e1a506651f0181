-- Every configuration fairline applied (at start or by reload), oldest first, with
-- what it changed per number. Written by ari_app/config_versions.py through
-- rating/config_store.py; docs/decisions/0008-config-versions.md says why so.

CREATE TABLE config_versions (
    id           bigserial   PRIMARY KEY,
    -- The name staff and invoices use, e.g. "v12" (service_charges.config_version holds it).
    version      text        GENERATED ALWAYS AS ('v' || id::text) STORED UNIQUE,
    content_hash text        NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),  -- sha256 of the file's text
    applied_at   timestamptz NOT NULL,                    -- when fairline applied it
    recorded_at  timestamptz NOT NULL DEFAULT now(),      -- later than applied_at when the database was down
    author       text        NOT NULL CHECK (author <> ''),
    content      text        NOT NULL                     -- the whole YAML file, as applied
);

-- One row per number the version added, changed or removed, against the version before it.
CREATE TABLE config_version_changes (
    version_id bigint NOT NULL REFERENCES config_versions,
    number     text   NOT NULL CHECK (number <> ''),  -- E.164 when it parses; '*': everything outside `numbers:`
    change     text   NOT NULL CHECK (change IN ('added', 'changed', 'removed')),
    diff       text   NOT NULL,                       -- unified diff of the number's YAML, before -> after
    PRIMARY KEY (version_id, number)
);
CREATE INDEX config_version_changes_number ON config_version_changes (number, version_id);
