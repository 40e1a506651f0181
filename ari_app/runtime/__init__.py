"""The running ARI application: the session with Asterisk, and the parts that act on its calls."""
