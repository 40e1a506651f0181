"""Tariffs, fair use and CDR storage. The pricing core (tariff, fair_use, cdr) is pure; storage and the CDR writer are the I/O edge."""
