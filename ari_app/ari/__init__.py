"""The ARI edge: the REST and websocket client, and the only code that reads Asterisk's JSON."""
