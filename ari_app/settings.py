"""Where fairline connects to: ARI, its secrets, PostgreSQL. Read once at start."""

from __future__ import annotations

import dataclasses
import re
import stat
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from ari_app.errors import ConfigError
from rating.storage import redact as redact  # one way to hide a database password, for both packages


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    ari_url: str  # http://127.0.0.1:8088 (the /ari prefix is added by the client)
    ari_app: str
    ari_user: str
    ari_password: str = dataclasses.field(repr=False)
    database_url: str = dataclasses.field(repr=False)
    config_path: Path = Path("fairline.yaml")
    spool_dir: Path = Path("spool")  # CDRs wait here, on disk, while PostgreSQL is unreachable


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
    user = password = ""
    if not secrets_path:
        problems.append("--secrets / FAIRLINE_SECRETS: missing; expected the file with ARI_USER and ARI_PASSWORD")
    else:
        try:
            values = read_secrets(Path(secrets_path))
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            user, password = values.get("ARI_USER", ""), values.get("ARI_PASSWORD", "")
            if not user or not password:
                problems.append(f"{secrets_path}: ARI_USER and ARI_PASSWORD: expected both, non-empty")
    db = database_url or env.get("DATABASE_URL", "")
    if not db.startswith(("postgres://", "postgresql://")):
        problems.append("--database-url / DATABASE_URL: expected postgresql://USER@HOST:PORT/DB")
    config_path = config or env.get("FAIRLINE_CONFIG", "fairline.yaml")
    if problems:
        raise ConfigError(problems)
    return Settings(
        ari_url=url.rstrip("/"),
        ari_app=ari_app or env.get("FAIRLINE_ARI_APP", "fairline"),
        ari_user=user,
        ari_password=password,
        database_url=db,
        config_path=Path(config_path),
        spool_dir=Path(spool_dir or env.get("FAIRLINE_SPOOL_DIR", "spool")),
    )
