"""The console's pure rules: no I/O, no clock of their own (time is passed in)."""
