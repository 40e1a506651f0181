"""The pure, synchronous core: no I/O."""
