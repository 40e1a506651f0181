"""Pricing of calls and fair use: pure functions over frozen values, no I/O."""
