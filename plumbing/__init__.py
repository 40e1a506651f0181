"""I/O helpers that ari_app and rating both use: durable file writes, redaction, metrics. No business rules."""
