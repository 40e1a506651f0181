"""The `fairline` subcommands that price, bill, reconcile and keep recordings; argument parsing and output only."""
