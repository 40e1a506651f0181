"""fairline's errors, split by whose fault they are."""

from __future__ import annotations


class FairlineError(Exception):
    """Base of every error fairline raises on purpose."""


class ConfigError(FairlineError, ValueError):
    """Configuration the operator gave is wrong; the message names where and what was expected."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class AriError(FairlineError):
    """Asterisk's REST interface answered with an error or could not be reached."""

    def __init__(self, method: str, path: str, status: int | None, detail: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        super().__init__(f"ARI {method} {path}: {status if status is not None else 'no answer'} {detail}".strip())


class ChannelGone(AriError):
    """The channel hung up before the request reached it (ARI 404)."""


class AriUnauthorized(AriError):
    """Asterisk rejected the ARI user or password: retrying will not help."""
