-- Issue 17: the node that took each call, in the CDR's identity. With `systemname` set in
-- asterisk.conf, Asterisk names every channel NODE-EPOCH.SEQ, so a call id carries its node and
-- two Asterisks on one database never share one (without it, both count EPOCH.SEQ and can). The
-- column spells the node out for queries by node (reconcile, several nodes: issue 20); it is
-- derived from call_id, so the two never disagree, and calls taken before systemname was set
-- (no prefix) have node ''. Existing rows keep everything and get their node in this migration.
-- Same rule as rating/core/cdr.py node_of(). Documented in docs/billing.md; decision 0023.
ALTER TABLE cdrs ADD COLUMN node text NOT NULL
    GENERATED ALWAYS AS (coalesce(substring(call_id FROM '^(.+)-[0-9]+\.[0-9]+$'), '')) STORED;
CREATE INDEX cdrs_node_started_at ON cdrs (node, started_at);
