"""Where fairline connects to: ARI, AMI, its secrets, PostgreSQL. Read once at start.

The only place that knows the environment variables: `fill_from_environment` runs once,
in the composition root (ari_app/cli.py), and copies each variable into its command-line
option when the option was not given; no other module reads os.environ.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import stat
from pathlib import Path
from typing import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from ari_app.core.voicemail import is_email
from ari_app.errors import ConfigError


DEFAULT_CONFIG = Path("fairline.yaml")
DEFAULT_SPOOL_DIR = Path("spool")  # CDRs wait here, on disk, while PostgreSQL is unreachable
DEFAULT_RECORDINGS_DIR = Path("recordings")
DEFAULT_ASTERISK_RECORDINGS_DIR = Path("/var/spool/asterisk/recording")  # Asterisk's astspooldir/recording
# Customers' uploaded greetings, written by each fairline from PostgreSQL: the same path on every node
# and for the console, since configuration versions name the files there (decision 0036).
DEFAULT_GREETINGS_DIR = Path("/var/lib/fairline/greetings")
DEFAULT_SHED_AFTER_MS = 150
DEFAULT_LOOP_TICK_MS = 50  # how often the event loop's lag is sampled (plumbing/loop_watch.py)
# 8088 is ARI; 8089 is Asterisk's own HTTPS port (ARI over TLS), so the next one up.
DEFAULT_STATUS_PORT = 8090  # of /healthz and /metrics (ari_app/health.py)
DEFAULT_AMI_HOST = "127.0.0.1"
DEFAULT_AMI_PORT = 5038
DEFAULT_SMTP_PORT = 25
# The file extensions.conf includes (`#tryinclude "fallback/fairline-fallback.conf"`), as seen from
# fairline: a directory of its own, so fairline needs write access to nothing else of Asterisk's.
DEFAULT_ASTERISK_FALLBACK = Path("/etc/asterisk/fallback/fairline-fallback.conf")

# Each option (its argparse dest) and the variable it falls back to, for every command that has it.
OPTION_VARIABLES: Mapping[str, str] = {
    "config": "FAIRLINE_CONFIG",
    "secrets": "FAIRLINE_SECRETS",
    "database_url": "DATABASE_URL",
    "ari_url": "FAIRLINE_ARI_URL",
    "ari_app": "FAIRLINE_ARI_APP",
    "spool_dir": "FAIRLINE_SPOOL_DIR",
    "recordings_dir": "FAIRLINE_RECORDINGS_DIR",
    "asterisk_recordings_dir": "FAIRLINE_ASTERISK_RECORDINGS_DIR",
    "greetings_dir": "FAIRLINE_GREETINGS_DIR",
    "asterisk_cdr": "FAIRLINE_ASTERISK_CDR",
    "status_port": "FAIRLINE_STATUS_PORT",
    "shed_after_ms": "FAIRLINE_SHED_AFTER_MS",
    "loop_tick_ms": "FAIRLINE_LOOP_TICK_MS",
    "ami_host": "FAIRLINE_AMI_HOST",
    "ami_port": "FAIRLINE_AMI_PORT",
    "asterisk_fallback": "FAIRLINE_ASTERISK_FALLBACK",
    "smtp_host": "FAIRLINE_SMTP_HOST",
    "smtp_port": "FAIRLINE_SMTP_PORT",
    "smtp_from": "FAIRLINE_SMTP_FROM",
    "smtp_starttls": "FAIRLINE_SMTP_STARTTLS",
}


def fill_from_environment(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """Give each option the command has but was not given its variable's value (command line first).

    Values stay text, as if typed on the command line; each command converts its own (Path, int).
    A command lists the options that do not read their variable in `environment_exempt`.
    """
    exempt = getattr(args, "environment_exempt", ())
    for dest, variable in OPTION_VARIABLES.items():
        if dest not in exempt and hasattr(args, dest) and getattr(args, dest) is None and variable in env:
            setattr(args, dest, env[variable])


MIN_SECRET_LENGTH = 16
# Passwords that attackers of a PBX try first: Asterisk's and PostgreSQL's sample
# defaults, the names of the parts of this stack, and the usual suspects.
WELL_KNOWN_SECRETS = frozenset({
    "asterisk", "secret", "password", "passwd", "passw0rd", "changeme", "fairline", "admin", "administrator",
    "root", "default", "postgres", "postgresql", "ari", "ami", "manager", "amp", "letmein", "welcome",
    "qwerty", "test", "guest", "voip", "sip", "pbx",
})
GENERATE_SECRET = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
_LOOKALIKES = {"a": "a@4", "e": "e3", "i": "i1!", "l": "l1", "o": "o0", "s": "s$5", "t": "t7"}
# Nothing but well-known words (any case, P@ssw0rd-style look-alikes) and digits or punctuation.
_ONLY_WELL_KNOWN = re.compile(
    "^[^a-z]*(?:(?:" + "|".join(
        "".join(f"[{re.escape(_LOOKALIKES[c])}]" if c in _LOOKALIKES else re.escape(c) for c in word)
        for word in sorted(WELL_KNOWN_SECRETS, key=len, reverse=True)
    ) + ")[^a-z]*)+$"
)


def secret_weakness(secret: str) -> str | None:
    """Why `secret` is too weak to guard ARI or the database; None when it is strong enough.

    Weak means any of: empty; shorter than MIN_SECRET_LENGTH (16) characters; nothing but
    well-known defaults (WELL_KNOWN_SECRETS, in any case and with look-alikes such as 0 for o
    or @ for a) and digits or punctuation ("Password1234567!", "P@ssw0rd-2026-11",
    "changeme-changeme", "asteriskasterisk"); one piece repeated over at least half the
    length ("aaaa...", "abab...", "12341234..."); or a run of consecutive characters
    ("abcdefghijklmnop", "ponmlkjihgfedcba").
    """
    if not secret:
        return "empty"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"shorter than {MIN_SECRET_LENGTH} characters"
    if _ONLY_WELL_KNOWN.match(secret.lower()):
        return "a well-known default password"
    # Period n: every character equals the one n places on ("abcabcab" has period 3).
    period = next((n for n in range(1, len(secret) // 2 + 1) if secret[n:] == secret[:-n]), None)
    if period is not None:
        return f"one piece of {period} character(s) repeated"
    steps = {ord(b) - ord(a) for a, b in zip(secret, secret[1:])}
    if steps in ({1}, {-1}):
        return "a run of consecutive characters"
    return None


def _weak(where: str, secret: str) -> str | None:
    """The problem to report for a weak secret: where it is and why, never the secret itself."""
    reason = secret_weakness(secret)
    if reason is None:
        return None
    return (f"{where}: too weak ({reason}); use a random secret of at least {MIN_SECRET_LENGTH} characters, "
            f"e.g. from {GENERATE_SECRET}, and set the same value where Asterisk or PostgreSQL checks it")


def database_password(url: str) -> str | None:
    """The password a PostgreSQL URL carries (in the user part or as ?password=), or None when it has none."""
    parts = urlsplit(url)
    if parts.password is not None:
        return unquote(parts.password)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() == "password":
            return value
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    ari_url: str  # http://127.0.0.1:8088 (the /ari prefix is added by the client)
    ari_app: str
    ari_user: str
    ari_password: str = dataclasses.field(repr=False)
    database_url: str = dataclasses.field(repr=False)
    config_path: Path = DEFAULT_CONFIG
    spool_dir: Path = DEFAULT_SPOOL_DIR


def read_secrets(path: Path) -> dict[str, str]:
    """KEY=VALUE lines from a secrets file that only its owner may read."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the secrets file: {exc.strerror}"]) from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError([f"{path}: secrets file is readable by others (mode {stat.S_IMODE(st.st_mode):o}); run chmod 600 {path}"])
    values: dict[str, str] = {}
    problems = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            problems.append(f"{path}:{n}: expected KEY=VALUE")
            continue
        values[key.strip()] = value.strip()
    if problems:
        raise ConfigError(problems)
    return values


def from_environment(env: Mapping[str, str], *, ari_url: str | None = None, ari_app: str | None = None,
                     secrets: str | None = None, database_url: str | None = None,
                     config: str | None = None, spool_dir: str | None = None) -> Settings:
    """Settings from command-line values, falling back to the environment; every problem at once."""
    problems: list[str] = []
    url = ari_url or env.get("FAIRLINE_ARI_URL", "http://127.0.0.1:8088")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"--ari-url / FAIRLINE_ARI_URL: {url!r}: expected http://HOST:PORT")
    secrets_path = secrets or env.get("FAIRLINE_SECRETS")
    user, password, values = _credentials(secrets_path, "ARI_USER", "ARI_PASSWORD", problems)
    # The file's other secrets (AMI_SECRET, PG_PASSWORD from the stack) guard this deployment too.
    for key in sorted(k for k in values if k.endswith(("_PASSWORD", "_SECRET"))):
        problem = _weak(f"{secrets_path}: {key}", values[key])
        if problem:
            problems.append(problem)
    db = database_url or env.get("DATABASE_URL", "")
    if not db.startswith(("postgres://", "postgresql://")):
        problems.append("--database-url / DATABASE_URL: expected postgresql://USER@HOST:PORT/DB")
    else:
        db_password = database_password(db)
        if db_password is not None:  # none at all is fine: peer authentication or ~/.pgpass
            problem = _weak("--database-url / DATABASE_URL: the password", db_password)
            if problem:
                problems.append(problem)
    config_path = config or env.get("FAIRLINE_CONFIG", str(DEFAULT_CONFIG))
    if problems:
        raise ConfigError(problems)
    return Settings(
        ari_url=url.rstrip("/"),
        ari_app=ari_app or env.get("FAIRLINE_ARI_APP", "fairline"),
        ari_user=user,
        ari_password=password,
        database_url=db,
        config_path=Path(config_path),
        spool_dir=Path(spool_dir or env.get("FAIRLINE_SPOOL_DIR", str(DEFAULT_SPOOL_DIR))),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class AmiSettings:
    """Where and as whom fairline reaches Asterisk's manager interface, and the fallback file it publishes."""

    host: str
    port: int
    user: str
    secret: str = dataclasses.field(repr=False)
    fallback_file: Path = DEFAULT_ASTERISK_FALLBACK  # where Asterisk reads fairline-fallback, seen from fairline
    secrets_file: Path | None = None  # where user and secret came from: named when Asterisk refuses them


def _credentials(secrets: str | None, user_key: str, secret_key: str,
                 problems: list[str]) -> tuple[str, str, dict[str, str]]:
    """`user_key` and `secret_key` of the secrets file, what is wrong with them added to `problems`; with
    the file's values, which are {} unless both are there."""
    if not secrets:
        problems.append(f"--secrets / FAIRLINE_SECRETS: missing; expected the file with {user_key} and {secret_key}")
        return "", "", {}
    try:
        values = read_secrets(Path(secrets))
    except ConfigError as exc:
        problems.extend(exc.problems)
        return "", "", {}
    user, secret = values.get(user_key, ""), values.get(secret_key, "")
    if not user or not secret:
        problems.append(f"{secrets}: {user_key} and {secret_key}: expected both, non-empty")
        return user, secret, {}
    return user, secret, values


def loop_tick_from_argument(loop_tick_ms: str | None) -> float:
    """The loop watch's tick in seconds, from --loop-tick-ms / FAIRLINE_LOOP_TICK_MS (whole ms, 1-1000)."""
    raw = (loop_tick_ms or str(DEFAULT_LOOP_TICK_MS)).strip()
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ConfigError([f"--loop-tick-ms / FAIRLINE_LOOP_TICK_MS: {raw[:20]!r}: expected whole milliseconds "
                           f"1-1000 (default {DEFAULT_LOOP_TICK_MS}; 1 to measure stalls of a few ms)"])
    return int(raw) / 1000


def ami_from_arguments(*, ami_host: str | None, ami_port: str | None, secrets: str | None,
                       asterisk_fallback: str | None) -> AmiSettings:
    """AMI settings from command-line values (the environment already filled in); every problem at once.

    The user and secret are AMI_USER and AMI_SECRET of the secrets file (--secrets / FAIRLINE_SECRETS),
    as ARI's are: a secret in the environment would be readable in /proc and inherited by children.
    """
    problems: list[str] = []
    host = ami_host or DEFAULT_AMI_HOST
    raw_port = ami_port or str(DEFAULT_AMI_PORT)
    port = int(raw_port) if raw_port.isdigit() else 0
    if not 0 < port < 65536:
        problems.append(f"--ami-port / FAIRLINE_AMI_PORT: {raw_port!r}: expected a port number 1-65535")
    user, secret, values = _credentials(secrets, "AMI_USER", "AMI_SECRET", problems)
    if values and (problem := _weak(f"{secrets}: AMI_SECRET", secret)) is not None:
        problems.append(problem)
    if problems:
        raise ConfigError(problems)
    return AmiSettings(host=host, port=port, user=user, secret=secret,
                       fallback_file=Path(asterisk_fallback or DEFAULT_ASTERISK_FALLBACK),
                       secrets_file=Path(secrets) if secrets else None)


@dataclasses.dataclass(frozen=True, slots=True)
class SmtpSettings:
    """The SMTP server voicemail messages are mailed through (ari_app/mail.py)."""

    host: str
    port: int
    sender: str  # the From address
    starttls: bool = False  # upgrade the connection with STARTTLS before anything else (and before a login)
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)


def smtp_from_arguments(*, smtp_host: str | None, smtp_port: str | None, smtp_from: str | None,
                        smtp_starttls: str | None, secrets: str | None) -> SmtpSettings | None:
    """Where voicemail is mailed from (the environment already filled in); None when no SMTP host is given.

    A login is SMTP_USER and SMTP_PASSWORD of the secrets file, both or neither, as ARI's credentials are.
    """
    if not smtp_host:
        return None
    problems: list[str] = []
    raw_port = smtp_port or str(DEFAULT_SMTP_PORT)
    port = int(raw_port) if raw_port.isascii() and raw_port.isdigit() else 0
    if not 0 < port < 65536:
        problems.append(f"--smtp-port / FAIRLINE_SMTP_PORT: {raw_port!r}: expected a port number 1-65535")
    sender = smtp_from or ""
    if not is_email(sender):
        problems.append(f"--smtp-from / FAIRLINE_SMTP_FROM: {sender!r}: expected the From address of voicemail "
                        "e-mails, like voicemail@example.com")
    starttls = (smtp_starttls or "no").lower()
    if starttls not in ("yes", "no"):
        problems.append(f"--smtp-starttls / FAIRLINE_SMTP_STARTTLS: {smtp_starttls!r}: expected yes or no")
    user = password = None
    if secrets:
        try:
            values = read_secrets(Path(secrets))
        except ConfigError as exc:
            values = {}
            problems.extend(exc.problems)
        user, password = values.get("SMTP_USER") or None, values.get("SMTP_PASSWORD") or None
        if (user is None) != (password is None):
            problems.append(f"{secrets}: SMTP_USER and SMTP_PASSWORD: expected both (an SMTP login) or neither")
    if problems:
        raise ConfigError(problems)
    return SmtpSettings(smtp_host, port, sender, starttls == "yes", user, password)
