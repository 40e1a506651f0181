"""The pure, synchronous core of fairline: decisions over frozen values, no I/O."""
