"""I/O helpers both ari_app and rating share, no business rules."""
