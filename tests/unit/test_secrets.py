"""fairline refuses to start with empty, default or weak secrets, and says how to make strong ones."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ari_app import cli
from ari_app.errors import ConfigError
from ari_app.settings import (GENERATE_SECRET, MIN_SECRET_LENGTH, WELL_KNOWN_SECRETS, database_password,
                              from_environment, secret_weakness)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "asterisk-docker"))

import stack as stackmod  # noqa: E402

FIX = (f"use a random secret of at least 16 characters, e.g. from {GENERATE_SECRET}, "
       "and set the same value where Asterisk or PostgreSQL checks it")
# Made once by secrets.token_urlsafe(32) and (24), what asterisk-docker/stack.py writes into secrets.env;
# fixed, so that every worker of `pytest -n` collects the same test ids.
STRONG = "Zk0v7Qm3_Xc9RtLb2yHw8nJd5sPa1fGu4eKo6iMqTzE"
OTHER_STRONG = "Wb5nR8tYc2Lq7vXk0jHm3sPd9gFa4uEz"


def secrets_file(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / "secrets.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in {"ARI_USER": "fairline", **values}.items()))
    path.chmod(0o600)
    return path


def problems_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_environment(env)
    return caught.value.problems


class TestSecretWeakness:
    """What counts as weak, each rule with the reason it gives."""

    @pytest.mark.parametrize(("secret", "reason"), [
        ("", "empty"),
        ("x", "shorter than 16 characters"),
        ("Tr0ub4dor&3-xyz", "shorter than 16 characters"),  # 15 characters, however mixed
        ("Password1234567!", "a well-known default password"),
        ("CHANGEME-changeme", "a well-known default password"),
        ("asteriskasterisk", "a well-known default password"),
        ("fairline-2026-11-25", "a well-known default password"),
        ("!!secret!!secret!!", "a well-known default password"),
        ("P@ssw0rd-2026-11", "a well-known default password"),
        ("4st3r1sk-4st3r1sk", "a well-known default password"),
        ("letmein-welcome-2026", "a well-known default password"),
        ("aaaaaaaaaaaaaaaa", "one piece of 1 character(s) repeated"),
        ("abababababababab", "one piece of 2 character(s) repeated"),
        ("1234123412341234", "one piece of 4 character(s) repeated"),
        ("Xy7-Xy7-Xy7-Xy7-Xy7-", "one piece of 4 character(s) repeated"),
        ("abcdefghijklmnop", "a run of consecutive characters"),
        ("ponmlkjihgfedcba", "a run of consecutive characters"),
    ])
    def test_weak_secret_is_refused_with_its_reason(self, secret: str, reason: str) -> None:
        assert secret_weakness(secret) == reason

    @pytest.mark.parametrize("word", sorted(WELL_KNOWN_SECRETS))
    def test_every_well_known_default_is_weak_however_it_is_padded(self, word: str) -> None:
        padded = (word.capitalize() + "1234567890123456!")[:max(MIN_SECRET_LENGTH, len(word) + 1)]
        assert secret_weakness(padded) == "a well-known default password"

    @pytest.mark.parametrize("secret", [
        STRONG, OTHER_STRONG, "correct-horse-battery-staple", "s3cr3t-Pa55-Xq7vL2wR",
    ])
    def test_strong_secret_passes(self, secret: str) -> None:
        assert secret_weakness(secret) is None

    @pytest.mark.parametrize("nbytes", [12, 16, 24, 32, 48])
    def test_random_tokens_of_twelve_bytes_or_more_are_never_weak(self, nbytes: int) -> None:
        """secrets.token_urlsafe(n >= 12): 16 or more random characters of base64url."""
        assert [t for t in (secrets.token_urlsafe(nbytes) for _ in range(500)) if secret_weakness(t)] == []

    def test_the_stack_generates_strong_secrets(self, tmp_path: Path) -> None:
        stack = stackmod.Stack(name="unit", ports=stackmod.Ports.defaults(), state_dir=tmp_path, rootfs=tmp_path)
        generated = stack.secrets()
        assert {k for k in generated if k.endswith(("_PASSWORD", "_SECRET"))} == {
            "ARI_PASSWORD", "AMI_SECRET", "PG_PASSWORD"}
        assert all(secret_weakness(v) is None for k, v in generated.items() if k.endswith(("_PASSWORD", "_SECRET")))

    def test_the_hint_runs_and_its_secret_is_strong(self) -> None:
        command = GENERATE_SECRET.removeprefix("python3 -c ").strip('"')
        out = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, check=True).stdout
        assert secret_weakness(out.strip()) is None


class TestDatabasePassword:
    @pytest.mark.parametrize(("url", "password"), [
        ("postgresql://fairline:pw@db:5432/fairline", "pw"),
        ("postgresql://fairline:p%40ss%3Aword@db/fairline", "p@ss:word"),
        ("postgresql://fairline:pass@word@db/fairline", "pass@word"),
        ("postgresql://fairline@db/fairline?sslmode=require&password=pw", "pw"),
        ("postgresql://fairline:@db/fairline", ""),
        ("postgresql://fairline@db/fairline", None),
        ("postgresql:///fairline?host=/run/postgresql", None),
    ])
    def test_password_is_found_where_libpq_takes_it(self, url: str, password: str | None) -> None:
        assert database_password(url) == password


class TestFairlineRefusesWeakSecrets:
    """Settings are refused before anything connects; the problem names the file and key, never the secret."""

    @pytest.mark.parametrize("weak", ["asterisk", "changeme", "secret", "password", "fairline",
                                      "aaaaaaaaaaaaaaaaaaaa", "Password12345678", "qwertyqwertyqwerty"])
    def test_weak_ari_password_names_the_file_and_key_and_how_to_fix_it(self, tmp_path: Path, weak: str) -> None:
        """The whole message is known: the key and the reason, never the value."""
        path = secrets_file(tmp_path, ARI_PASSWORD=weak)

        problems = problems_of({"FAIRLINE_SECRETS": str(path), "DATABASE_URL": "postgresql://fairline@db/fairline"})

        assert problems == [f"{path}: ARI_PASSWORD: too weak ({secret_weakness(weak)}); {FIX}"]

    def test_weak_ari_password_is_refused(self, tmp_path: Path) -> None:
        path = secrets_file(tmp_path, ARI_PASSWORD="Asterisk2026!!!!")

        [problem] = problems_of({"FAIRLINE_SECRETS": str(path), "DATABASE_URL": "postgresql://fairline@db/fairline"})

        assert problem.startswith(f"{path}: ARI_PASSWORD: too weak (a well-known default password)")
        assert "Asterisk2026" not in problem

    def test_empty_ari_password_is_reported_once(self, tmp_path: Path) -> None:
        path = secrets_file(tmp_path, ARI_PASSWORD="")

        assert problems_of({"FAIRLINE_SECRETS": str(path), "DATABASE_URL": "postgresql://fairline@db/fairline"}) == [
            f"{path}: ARI_USER and ARI_PASSWORD: expected both, non-empty"]

    def test_every_weak_secret_of_the_file_is_listed_at_once(self, tmp_path: Path) -> None:
        path = secrets_file(tmp_path, ARI_PASSWORD="short", AMI_SECRET="", PG_PASSWORD=STRONG)

        problems = problems_of({"FAIRLINE_SECRETS": str(path), "DATABASE_URL": "postgresql://fairline@db/fairline"})

        assert [p.split(": too weak")[0] for p in problems] == [f"{path}: AMI_SECRET", f"{path}: ARI_PASSWORD"]
        assert "(empty)" in problems[0] and "(shorter than 16 characters)" in problems[1]

    @pytest.mark.parametrize("url", [
        "postgresql://fairline:fairline@db/fairline",
        "postgresql://fairline:postgres@db:5432/fairline",
        "postgresql://fairline:@db/fairline",
        "postgresql://fairline@db/fairline?password=changeme",
        "postgres://fairline:s3cret-pw@db/fairline",
    ])
    def test_weak_database_password_is_refused_without_showing_it(self, tmp_path: Path, url: str) -> None:
        path = secrets_file(tmp_path, ARI_PASSWORD=STRONG)

        [problem] = problems_of({"FAIRLINE_SECRETS": str(path), "DATABASE_URL": url})

        assert problem == (f"--database-url / DATABASE_URL: the password: too weak "
                           f"({secret_weakness(database_password(url) or '')}); {FIX}")

    @pytest.mark.parametrize("url", [
        "postgresql://fairline@db/fairline",  # peer authentication or ~/.pgpass: nothing to judge
        f"postgresql://fairline:{STRONG}@db/fairline",
        f"postgresql://fairline@db/fairline?password={STRONG}",
    ])
    def test_database_without_password_or_with_a_strong_one_is_accepted(self, tmp_path: Path, url: str) -> None:
        path = secrets_file(tmp_path, ARI_PASSWORD=STRONG, AMI_SECRET=OTHER_STRONG, PG_PASSWORD=OTHER_STRONG + "x")

        settings = from_environment({"FAIRLINE_SECRETS": str(path), "DATABASE_URL": url})

        assert settings.ari_password == STRONG

    def test_fairline_run_exits_2_and_logs_the_problems_without_the_secrets(self, tmp_path: Path) -> None:
        path = secrets_file(tmp_path, ARI_PASSWORD="changeme-changeme")
        db = "postgresql://fairline:Password2026@127.0.0.1:1/fairline"
        args = cli.build_parser().parse_args([
            "run", "--secrets", str(path), "--database-url", db, "--config", str(ROOT / "dialplan" / "fairline.yaml"),
            "--spool-dir", str(tmp_path / "spool")])

        with capture_logs() as logs:
            status = cli.cmd_run(args)

        assert status == cli.EXIT_BAD_INPUT
        problems = [e["problem"] for e in logs if e["event"] == "config.invalid"]
        assert [p.split(": too weak")[0] for p in problems] == [
            f"{path}: ARI_PASSWORD", "--database-url / DATABASE_URL: the password"]
        assert "changeme-changeme" not in repr(logs) and "Password2026" not in repr(logs)
        assert not (tmp_path / "spool").exists()  # refused before anything started
