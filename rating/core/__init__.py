"""The pure core of rating: no I/O."""
