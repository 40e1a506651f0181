"""Tariffs, fair use and CDR storage: `core/` is pure (the pricing rules), `storage/` the I/O edge, `commands/` the command line."""
