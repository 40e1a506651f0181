"""The AMI edge: fairline's only use of Asterisk's manager interface (decision 0022)."""
