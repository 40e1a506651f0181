"""`fairline config apply | diff | export | rollback | history` against the real PostgreSQL, run as an
admin runs them: in a shell, with $DATABASE_URL, on files kept in git."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_config_store_db import config

pytestmark = pytest.mark.e2e


def fairline(database_url: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """`fairline ARGV` as an admin types it, with the database in $DATABASE_URL (a scratch one: the stack's
    running fairline would apply what these tests store)."""
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "ari_app.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          timeout=60)


class TestCommands:
    def test_apply_export_rollback_and_history_as_an_admin_uses_them(
        self, scratch_database: str, tmp_path: Path
    ) -> None:
        def run(*argv: str) -> subprocess.CompletedProcess[bytes]:
            return fairline(scratch_database, *argv, cwd=tmp_path)

        a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
        a.write_text(config("hello-world", comment="# kept in git\n"))
        b.write_text(config("tt-monkeys", comment="# kept in git\n"))
        first = run("config", "apply", "a.yaml", "--author", "alice", "--reason", "start")
        assert first.returncode == 0, first.stderr.decode()
        stored_a = first.stdout.decode().splitlines()[-1].split()[1]  # "stored v12 (...)"

        exported = run("config", "export")
        assert exported.returncode == 0 and exported.stdout == a.read_bytes()
        (tmp_path / "exported.yaml").write_bytes(exported.stdout)
        again = run("config", "apply", "exported.yaml", "--author", "alice", "--reason", "again")
        assert (again.returncode, again.stdout.decode()) == (0, f"no change: exported.yaml is {stored_a} already\n")

        dry = run("config", "diff", "b.yaml")
        assert dry.returncode == 1 and "-announcement: hello-world" in dry.stdout.decode()
        assert run("config", "export").stdout == a.read_bytes()  # the dry run stored nothing
        assert run("config", "diff", "a.yaml").returncode == 0

        changed = run("config", "apply", "b.yaml", "--author", "bob", "--reason", "monkeys", "--role", "staff")
        assert changed.returncode == 0, changed.stderr.decode()
        assert "changed +31201234567" in changed.stdout.decode()
        stored_b = changed.stdout.decode().splitlines()[-1].split()[1]

        stale = run("config", "apply", "a.yaml", "--author", "carol", "--reason", "late", "--base", stored_a)
        assert stale.returncode == 2
        assert (f"based on {stored_a}, but {stored_b} is the newest: export {stored_b}, make the change again"
                in stale.stderr.decode())

        back = run("config", "rollback", stored_a, "--author", "dave", "--reason", "customer complained")
        assert back.returncode == 0, back.stderr.decode()
        assert "+announcement: hello-world" in back.stdout.decode()
        assert run("config", "export").stdout == a.read_bytes()  # byte for byte the version rolled back to
        assert run("config", "export", stored_b).stdout == b.read_bytes()  # and the history keeps the other

        history = run("config", "history", "+31201234567").stdout.decode().splitlines()
        heads = [line for line in history if line.startswith("v")]
        assert heads[0].split()[4:7] == ["dave", "as", "admin"] and heads[1].split()[4:7] == ["bob", "as", "staff"]
        assert f"    why: rollback to {stored_a}: customer complained" in history
        assert "    why: monkeys" in history

    def test_an_invalid_file_stores_nothing_and_names_file_line_and_key(
        self, scratch_database: str, tmp_path: Path
    ) -> None:
        (tmp_path / "bad.yaml").write_text(config("beep").replace("type: local", "type: premium"))
        bad = fairline(scratch_database, "config", "apply", "bad.yaml", "--author", "alice", "--reason", "r", cwd=tmp_path)
        assert bad.returncode == 2
        assert "bad.yaml:7: numbers[0].type:" in bad.stderr.decode()
        assert fairline(scratch_database, "config", "export", cwd=tmp_path).returncode == 2  # nothing stored

    def test_a_version_that_does_not_exist_is_named_as_such(self, scratch_database: str, tmp_path: Path) -> None:
        for argv in (["config", "export", "v999999"],
                     ["config", "rollback", "v999999", "--author", "a", "--reason", "r"]):
            missing = fairline(scratch_database, *argv, cwd=tmp_path)
            assert missing.returncode == 2 and "no version v999999" in missing.stderr.decode()
