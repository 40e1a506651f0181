"""fairline's ARI application: call control for virtual numbers on Asterisk."""
