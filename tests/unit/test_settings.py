"""Connection settings: from the command line and the environment, secrets from an owner-only file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ari_app.errors import ConfigError
from ari_app.settings import (DEFAULT_AMI_PORT, DEFAULT_ASTERISK_FALLBACK, Settings, ami_from_arguments,
                              from_environment, read_secrets)
from plumbing.redaction import redact

PASSWORD = "s3cr3t-Pa55-Xq7vL2wR"  # strong enough for the weak-secret rule (tests/unit/test_secrets.py)
DB = "postgresql://fairline@127.0.0.1:5432/fairline"


LOGIN = f"ARI_USER=fairline\nARI_PASSWORD={PASSWORD}\n"


def secrets_file(tmp_path: Path, text: str = LOGIN, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def problems_of(env: dict[str, str], **cli: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_environment(env, **cli)
    return caught.value.problems


class TestReadSecrets:
    """KEY=VALUE lines from a file only its owner may read."""

    def test_reads_keys_and_values_skipping_blanks_and_comments(self, tmp_path: Path) -> None:
        path = secrets_file(tmp_path, "# ARI login\n\nARI_USER = fairline \nARI_PASSWORD=a=b==\n  # indented comment\n")

        assert read_secrets(path) == {"ARI_USER": "fairline", "ARI_PASSWORD": "a=b=="}

    @pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
    def test_owner_only_file_is_accepted(self, tmp_path: Path, mode: int) -> None:
        assert read_secrets(secrets_file(tmp_path, mode=mode))["ARI_PASSWORD"] == PASSWORD

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601, 0o610])
    def test_file_others_may_touch_is_refused_with_the_fix(self, tmp_path: Path, mode: int) -> None:
        """The message says what is wrong and the command that fixes it."""
        path = secrets_file(tmp_path, mode=mode)

        with pytest.raises(ConfigError) as caught:
            read_secrets(path)

        [problem] = caught.value.problems
        assert f"chmod 600 {path}" in problem
        assert f"mode {mode:o}" in problem
        assert PASSWORD not in problem

    def test_line_without_equals_names_its_line(self, tmp_path: Path) -> None:
        path = secrets_file(tmp_path, "ARI_USER=fairline\nARI_PASSWORD\nnonsense\n")

        with pytest.raises(ConfigError) as caught:
            read_secrets(path)

        assert caught.value.problems == [f"{path}:2: expected KEY=VALUE", f"{path}:3: expected KEY=VALUE"]

    def test_missing_file_says_it_cannot_be_read(self, tmp_path: Path) -> None:
        path = tmp_path / "absent"

        with pytest.raises(ConfigError) as caught:
            read_secrets(path)

        [problem] = caught.value.problems
        assert problem.startswith(f"{path}: cannot read the secrets file")


class TestFromEnvironment:
    """Command-line values first, then the environment; every problem reported at once."""

    def test_environment_gives_settings(self, tmp_path: Path) -> None:
        env = {
            "FAIRLINE_ARI_URL": "http://asterisk.example:8088/",
            "FAIRLINE_ARI_APP": "fairline-test",
            "FAIRLINE_SECRETS": str(secrets_file(tmp_path)),
            "DATABASE_URL": DB,
            "FAIRLINE_CONFIG": "/etc/fairline/numbers.yaml",
        }

        assert from_environment(env) == Settings(
            ari_url="http://asterisk.example:8088",  # no trailing slash: the client appends /ari
            ari_app="fairline-test",
            ari_user="fairline",
            ari_password=PASSWORD,
            database_url=DB,
            config_path=Path("/etc/fairline/numbers.yaml"),
        )

    def test_defaults_for_what_is_not_given(self, tmp_path: Path) -> None:
        st = from_environment({"FAIRLINE_SECRETS": str(secrets_file(tmp_path)), "DATABASE_URL": DB})

        assert (st.ari_url, st.ari_app, st.config_path) == ("http://127.0.0.1:8088", "fairline", Path("fairline.yaml"))

    def test_command_line_overrides_environment(self, tmp_path: Path) -> None:
        env = {"FAIRLINE_ARI_URL": "http://wrong:1", "FAIRLINE_ARI_APP": "wrong", "FAIRLINE_SECRETS": "/nonexistent",
               "DATABASE_URL": "mysql://wrong", "FAIRLINE_CONFIG": "wrong.yaml"}

        st = from_environment(env, ari_url="https://pbx:8089", ari_app="app", secrets=str(secrets_file(tmp_path)),
                              database_url="postgres://db/fairline", config="right.yaml")

        assert (st.ari_url, st.ari_app, st.database_url, st.config_path) == (
            "https://pbx:8089", "app", "postgres://db/fairline", Path("right.yaml"))

    @pytest.mark.parametrize(
        "text",
        ["ARI_USER=fairline\n", "ARI_USER=fairline\nARI_PASSWORD=\n", "ARI_PASSWORD=x\n"],
        ids=["password-missing", "password-empty", "user-missing"],
    )
    def test_secrets_need_user_and_password(self, tmp_path: Path, text: str) -> None:
        path = secrets_file(tmp_path, text)

        assert problems_of({"FAIRLINE_SECRETS": str(path), "DATABASE_URL": DB}) == [
            f"{path}: ARI_USER and ARI_PASSWORD: expected both, non-empty"]

    def test_no_secrets_file_given_is_a_problem(self) -> None:
        [problem] = problems_of({"DATABASE_URL": DB})

        assert problem.startswith("--secrets / FAIRLINE_SECRETS: missing")

    def test_secrets_file_readable_by_others_is_a_problem(self, tmp_path: Path) -> None:
        path = secrets_file(tmp_path, mode=0o644)

        [problem] = problems_of({"FAIRLINE_SECRETS": str(path), "DATABASE_URL": DB})

        assert "chmod 600" in problem

    @pytest.mark.parametrize("url", ["", "mysql://fairline@db/fairline", "sqlite:///fairline.db", "127.0.0.1:5432",
                                     "postgresql:/fairline"])
    def test_database_that_is_not_postgresql_is_refused(self, tmp_path: Path, url: str) -> None:
        [problem] = problems_of({"FAIRLINE_SECRETS": str(secrets_file(tmp_path)), "DATABASE_URL": url})

        assert problem.startswith("--database-url / DATABASE_URL: expected postgresql://")

    @pytest.mark.parametrize("url", ["postgres://db/fairline", "postgresql://fairline@db:5432/fairline"])
    def test_both_postgresql_schemes_are_accepted(self, tmp_path: Path, url: str) -> None:
        st = from_environment({"FAIRLINE_SECRETS": str(secrets_file(tmp_path)), "DATABASE_URL": url})

        assert st.database_url == url

    @pytest.mark.parametrize("url", ["ftp://pbx:8088", "127.0.0.1:8088", "http://", "ws://pbx:8088"])
    def test_ari_url_must_be_http_with_a_host(self, tmp_path: Path, url: str) -> None:
        [problem] = problems_of({"FAIRLINE_SECRETS": str(secrets_file(tmp_path)), "DATABASE_URL": DB,
                                 "FAIRLINE_ARI_URL": url})

        assert problem == f"--ari-url / FAIRLINE_ARI_URL: {url!r}: expected http://HOST:PORT"

    def test_all_problems_are_reported_at_once(self, tmp_path: Path) -> None:
        """A bad ARI URL, a world-readable secrets file and a MySQL URL: three problems, one run."""
        env = {"FAIRLINE_ARI_URL": "ftp://pbx", "FAIRLINE_SECRETS": str(secrets_file(tmp_path, mode=0o644)),
               "DATABASE_URL": "mysql://db"}

        found = problems_of(env)

        assert len(found) == 3
        assert found[0].startswith("--ari-url")
        assert "chmod 600" in found[1]
        assert found[2].startswith("--database-url")

    def test_problems_never_show_the_database_url(self, tmp_path: Path) -> None:
        """A mistyped scheme may still carry a password: the message does not repeat the URL."""
        [problem] = problems_of({"FAIRLINE_SECRETS": str(secrets_file(tmp_path)),
                                 "DATABASE_URL": f"postgress://fairline:{PASSWORD}@db/fairline"})

        assert PASSWORD not in problem


class TestRedact:
    """A database URL safe to log."""

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            (f"postgresql://fairline:{PASSWORD}@db:5432/fairline", "postgresql://fairline:***@db:5432/fairline"),
            ("postgresql://fairline:p%40ss@db/fairline", "postgresql://fairline:***@db/fairline"),
            ("postgresql://fairline:pass@word@db/fairline", "postgresql://fairline:***@db/fairline"),
            ("postgresql://fairline:fairline@db/fairline", "postgresql://fairline:***@db/fairline"),
        ],
        ids=["plain", "percent-encoded", "at-sign-in-password", "password-equals-user"],
    )
    def test_password_is_hidden(self, url: str, shown: str) -> None:
        assert redact(url) == shown

    @pytest.mark.parametrize("url", ["postgresql://fairline@db:5432/fairline", "postgresql://db/fairline",
                                     "postgresql:///fairline?host=/run/postgresql"])
    def test_url_without_password_is_unchanged(self, url: str) -> None:
        assert redact(url) == url

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            (f"postgresql://fairline@db/fairline?password={PASSWORD}",
             "postgresql://fairline@db/fairline?password=***"),
            (f"postgresql://fairline@db/fairline?sslmode=require&password={PASSWORD}&application_name=fairline",
             "postgresql://fairline@db/fairline?sslmode=require&password=***&application_name=fairline"),
            (f"postgresql://fairline@db/fairline?PASSWORD={PASSWORD}",
             "postgresql://fairline@db/fairline?PASSWORD=***"),
            (f"postgresql://fairline:{PASSWORD}@db/fairline?password={PASSWORD}",
             "postgresql://fairline:***@db/fairline?password=***"),
        ],
        ids=["only-parameter", "among-others", "upper-case-key", "in-both-places"],
    )
    def test_password_in_query_is_hidden(self, url: str, shown: str) -> None:
        """libpq and asyncpg also take the password as a query parameter."""
        assert redact(url) == shown


class TestSettingsRepr:
    """Settings end up in logs and tracebacks; their repr must not carry secrets."""

    def test_repr_shows_neither_password_nor_database_url(self, tmp_path: Path) -> None:
        db = f"postgresql://fairline:{PASSWORD}-db@db/fairline"
        st = from_environment({"FAIRLINE_SECRETS": str(secrets_file(tmp_path)), "DATABASE_URL": db})

        assert PASSWORD not in repr(st)
        assert PASSWORD not in str(st)
        assert "fairline" in repr(st)  # the rest is still there to read


AMI_LOGIN = f"AMI_USER=fairline\nAMI_SECRET={PASSWORD}\n"


class TestAmiFromArguments:
    """AMI's address from options (or FAIRLINE_AMI_*), its user and secret from the secrets file, as ARI's."""

    def test_defaults_and_the_secrets_files_user(self, tmp_path: Path) -> None:
        path = secrets_file(tmp_path, AMI_LOGIN)
        ami = ami_from_arguments(ami_host=None, ami_port=None, secrets=str(path), asterisk_fallback=None)

        assert (ami.host, ami.port, ami.user, ami.secret) == ("127.0.0.1", DEFAULT_AMI_PORT, "fairline", PASSWORD)
        assert (ami.fallback_file, ami.secrets_file) == (DEFAULT_ASTERISK_FALLBACK, path)
        assert PASSWORD not in repr(ami)

    def test_given_values_are_taken(self, tmp_path: Path) -> None:
        ami = ami_from_arguments(ami_host="::1", ami_port="5039", secrets=str(secrets_file(tmp_path, AMI_LOGIN)),
                                 asterisk_fallback="/srv/etc/fallback/f.conf")
        assert (ami.host, ami.port, ami.fallback_file) == ("::1", 5039, Path("/srv/etc/fallback/f.conf"))

    @pytest.mark.parametrize("port", ["0", "65536", "ami", "-1"])
    def test_a_port_that_is_no_port_is_named(self, tmp_path: Path, port: str) -> None:
        with pytest.raises(ConfigError) as caught:
            ami_from_arguments(ami_host=None, ami_port=port, secrets=str(secrets_file(tmp_path, AMI_LOGIN)),
                               asterisk_fallback=None)
        assert caught.value.problems == [f"--ami-port / FAIRLINE_AMI_PORT: {port!r}: expected a port number 1-65535"]

    @pytest.mark.parametrize("text", [LOGIN, "AMI_USER=fairline\n", f"AMI_SECRET={PASSWORD}\n"])
    def test_user_and_secret_are_both_needed(self, tmp_path: Path, text: str) -> None:
        path = secrets_file(tmp_path, text)
        with pytest.raises(ConfigError) as caught:
            ami_from_arguments(ami_host=None, ami_port=None, secrets=str(path), asterisk_fallback=None)
        assert caught.value.problems == [f"{path}: AMI_USER and AMI_SECRET: expected both, non-empty"]

    def test_a_weak_secret_is_refused_without_showing_it(self, tmp_path: Path) -> None:
        path = secrets_file(tmp_path, "AMI_USER=fairline\nAMI_SECRET=amp111\n")
        with pytest.raises(ConfigError) as caught:
            ami_from_arguments(ami_host=None, ami_port=None, secrets=str(path), asterisk_fallback=None)
        [problem] = caught.value.problems
        assert problem.startswith(f"{path}: AMI_SECRET: too weak") and "amp111" not in problem

    def test_no_secrets_file_is_named(self) -> None:
        with pytest.raises(ConfigError) as caught:
            ami_from_arguments(ami_host=None, ami_port="x", secrets=None, asterisk_fallback=None)
        assert len(caught.value.problems) == 2
        assert caught.value.problems[1].startswith("--secrets / FAIRLINE_SECRETS: missing")


class TestLoopTick:
    """How often the loop's lag is sampled: --loop-tick-ms / FAIRLINE_LOOP_TICK_MS, whole milliseconds."""

    def test_the_default_is_fifty_milliseconds(self) -> None:
        from ari_app.settings import loop_tick_from_argument

        assert loop_tick_from_argument(None) == 0.05

    @pytest.mark.parametrize(("raw", "seconds"), [("1", 0.001), (" 5 ", 0.005), ("1000", 1.0)])
    def test_whole_milliseconds_are_taken(self, raw: str, seconds: float) -> None:
        from ari_app.settings import loop_tick_from_argument

        assert loop_tick_from_argument(raw) == seconds

    @pytest.mark.parametrize("raw", ["0", "1001", "0.5", "-1", "fast", "１"])
    def test_anything_else_is_named_with_what_was_expected(self, raw: str) -> None:
        from ari_app.settings import loop_tick_from_argument

        with pytest.raises(ConfigError) as caught:
            loop_tick_from_argument(raw)
        assert caught.value.problems == [f"--loop-tick-ms / FAIRLINE_LOOP_TICK_MS: {raw!r}: expected whole "
                                         "milliseconds 1-1000 (default 50; 1 to measure stalls of a few ms)"]

    def test_the_variable_fills_the_option(self) -> None:
        import argparse

        from ari_app.settings import fill_from_environment

        args = argparse.Namespace(loop_tick_ms=None)
        fill_from_environment(args, {"FAIRLINE_LOOP_TICK_MS": "1"})
        assert args.loop_tick_ms == "1"
