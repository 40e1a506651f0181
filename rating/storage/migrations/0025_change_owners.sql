-- Whose number each change row is about, before and after the change (decision 0035): the console
-- shows a customer only the changes made while the number was theirs, never an earlier or later
-- owner's. Written with each row from now on (ari_app/config_versions.py number_changes); NULL for
-- "*" (everything outside `numbers:`), for a number that is not there (owner_before of "added",
-- owner_after of "removed") and where the backfill below cannot tell.

ALTER TABLE config_version_changes
    ADD COLUMN owner_before text NULL CHECK (owner_before <> ''),
    ADD COLUMN owner_after  text NULL CHECK (owner_after <> '');

-- The rows stored before this migration, from their own diffs: each is a unified diff of the
-- number's YAML dumped with sorted keys, so its top-level `customer:` line appears as "+customer: X"
-- whenever the customer is set (added) or changed, "-customer: X" whenever it is dropped (removed)
-- or changed. A row that does not touch the line keeps the customer of the number's last row that
-- set it. A number whose chain cannot be read (no "+customer:" yet, a value in double quotes) gets
-- NULL, which the console shows to staff only: hidden, never shown to the wrong customer.
WITH lines AS (
    SELECT version_id, number, change,
           substring(diff FROM '(?n)^\+customer: (.+)$') AS plus,
           substring(diff FROM '(?n)^-customer: (.+)$') AS minus
    FROM config_version_changes
    WHERE number <> '*'
), chained AS (
    SELECT *, count(plus) OVER (PARTITION BY number ORDER BY version_id) AS run
    FROM lines
), owners AS (
    SELECT version_id, number, change, minus,
           max(plus) OVER (PARTITION BY number, run) AS last_plus
    FROM chained
), unquoted AS (  -- yaml.safe_dump quotes a string that would read as something else: '007'
    SELECT version_id, number,
           CASE WHEN change = 'added' THEN NULL ELSE coalesce(minus, last_plus) END AS raw_before,
           CASE WHEN change = 'removed' THEN NULL ELSE last_plus END AS raw_after
    FROM owners
)
UPDATE config_version_changes c
SET owner_before = CASE WHEN u.raw_before ~ '^''.*''$'
                        THEN replace(substring(u.raw_before FROM 2 FOR length(u.raw_before) - 2), '''''', '''')
                        WHEN u.raw_before ~ '^"' THEN NULL ELSE u.raw_before END,
    owner_after = CASE WHEN u.raw_after ~ '^''.*''$'
                       THEN replace(substring(u.raw_after FROM 2 FOR length(u.raw_after) - 2), '''''', '''')
                       WHEN u.raw_after ~ '^"' THEN NULL ELSE u.raw_after END
FROM unquoted u
WHERE c.version_id = u.version_id AND c.number = u.number;

-- A customer's history reads by owner.
CREATE INDEX config_version_changes_owner_after ON config_version_changes (owner_after, version_id);
CREATE INDEX config_version_changes_owner_before ON config_version_changes (owner_before, version_id);
