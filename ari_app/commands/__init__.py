"""fairline's own commands beside `run`: `config history`, `queues` (the composition root is ari_app/cli.py)."""
