"""`fairline config apply | diff` without a database: what they show, and that an invalid file,
a blank author or reason, or a bad --base never reach the database."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from ari_app import cli
from ari_app.commands import config_store_cli
from ari_app.commands.config_store_cli import Plan, plan, write_plan
from rating.storage.config_store import ROLES, NumberChange
from tests.unit.test_config_store import BASE, stored


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestPlan:
    def test_the_newest_content_is_no_change(self) -> None:
        p = plan(stored(4), BASE)
        assert p == Plan("v4", True, ())
        out = io.StringIO()
        write_plan(out, p, "f.yaml")
        assert out.getvalue() == "no change: f.yaml is v4 already\n"

    def test_a_changed_number_is_shown_with_its_diff_and_counted(self) -> None:
        out = io.StringIO()
        write_plan(out, plan(stored(4), BASE.replace("hello-world", "beep")), "f.yaml")
        lines = out.getvalue().splitlines()
        assert lines[0] == "changed +31201234567"
        assert "    -announcement: hello-world" in lines and "    +announcement: beep" in lines
        assert lines[-1] == "f.yaml against v4: 1 changed"

    def test_only_a_comment_is_a_new_version_without_changed_numbers(self) -> None:
        p = plan(stored(4), "# reviewed\n" + BASE)
        assert (p.same, p.changes) == (False, ())
        out = io.StringIO()
        write_plan(out, p, "f.yaml")
        assert out.getvalue() == "f.yaml against v4: no number changed (only comments, layout or order)\n"

    def test_against_an_empty_store_everything_is_added(self) -> None:
        out = io.StringIO()
        write_plan(out, Plan(None, False, (NumberChange("*", "added", ""), NumberChange("+1", "added", ""))), "f")
        assert out.getvalue().splitlines()[-1] == "f against nothing stored: 2 added"


class TestCommands:
    @pytest.fixture(autouse=True)
    def _logs_left_alone(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(cli.logs, "configure", lambda *_: None)  # structlog's setup is global: leave it to other tests

    def test_the_roles_offered_are_the_roles_stored(self) -> None:
        assert set(config_store_cli.ROLE_CHOICES) == set(ROLES)

    def test_an_invalid_file_names_file_line_and_key_and_never_reaches_the_database(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(BASE.replace("customer: acme", "customer: nobody"))
        url = f"postgresql://fairline:pw@127.0.0.1:{closed_port()}/fairline"  # reaching it would exit 3
        for command in (["apply", str(bad), "--author", "alice", "--reason", "r"], ["diff", str(bad)]):
            assert cli.main(["config", *command, "--database-url", url]) == 2
            err = capsys.readouterr().err
            assert f"{bad}:6: numbers[0].customer: 'nobody' is not a customer" in err
            assert "unreachable" not in err

    @pytest.mark.parametrize(("option", "said"), [("--author", "--author: expected who"), ("--reason", "--reason: expected why")])
    def test_a_blank_author_or_reason_is_refused_before_anything_is_read(
        self, option: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        good = tmp_path / "good.yaml"
        good.write_text(BASE)
        given = {"--author": "alice", "--reason": "r", option: "  "}
        argv = ["config", "apply", str(good), *[x for kv in given.items() for x in kv],
                "--database-url", f"postgresql://fairline:pw@127.0.0.1:{closed_port()}/fairline"]
        assert cli.main(argv) == 2
        assert said in capsys.readouterr().err

    def test_apply_without_an_author_is_a_usage_error(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exited:
            cli.main(["config", "apply", str(tmp_path / "f.yaml"), "--reason", "r"])
        assert exited.value.code == 2
        assert "--author" in capsys.readouterr().err

    def test_a_base_that_is_no_version_name_is_refused(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        good = tmp_path / "good.yaml"
        good.write_text(BASE)
        assert cli.main(["config", "apply", str(good), "--author", "a", "--reason", "r", "--base", "latest",
                         "--database-url", f"postgresql://fairline:pw@127.0.0.1:{closed_port()}/fairline"]) == 2
        assert "--base: expected a version such as v12, got 'latest'" in capsys.readouterr().err


