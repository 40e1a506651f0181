"""Where CDRs and the configuration history live: PostgreSQL (migrations, queries) and the spool on disk."""
