"""The pricing rules: tariff, fair use, the CDR model, the charge rule, reconciliation. Pure: no I/O, no asyncio."""
