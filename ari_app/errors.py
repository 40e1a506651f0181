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


class AmiError(FairlineError):
    """Asterisk's manager interface (AMI) could not do what fairline asked."""


class AmiUnreachable(AmiError):
    """No AMI session: nothing listens, the connection dropped, or Asterisk did not answer in time."""


class AmiUnauthorized(AmiError):
    """Asterisk refused the AMI user or secret (or the address it came from): retrying will not help."""


class AmiRefused(AmiError):
    """Asterisk answered an AMI action with an error, e.g. "Permission denied" for a right the user lacks."""

    def __init__(self, action: str, message: str) -> None:
        self.action = action
        self.message = message
        super().__init__(f"AMI {action}: {message}")


class FallbackNotLoaded(AmiError):
    """The fallback dialplan could not be put in place, or Asterisk does not show what was published."""
