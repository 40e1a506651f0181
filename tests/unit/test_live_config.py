"""Switching to a new version: the directory in PostgreSQL is synced only when what it holds changed."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path
from typing import Any

import pytest
import structlog

from ari_app.config.yaml_loader import parse
from ari_app.runtime.config_parse import Prepared, derive
from ari_app.runtime.config_watch import Cached
from ari_app.runtime import live_config
from ari_app.runtime.live_config import LiveConfig

TEXT = (Path(__file__).resolve().parents[2] / "dialplan" / "fairline.yaml").read_text()


async def apply_versions(texts: list[str], sync_answers: list[bool]) -> list[str]:
    """Apply each text as a version; the E.164 of the first number each directory sync was given."""
    synced: list[str] = []
    answers = iter(sync_answers)

    async def sync_directory(config: Any) -> bool:
        synced.append(next(iter(config.numbers)))
        return next(answers)

    app: Any = types.SimpleNamespace(config=None, rates=None, config_origin=None, calls={})
    app.config_origin = types.SimpleNamespace(version=None, source="file")
    live = LiveConfig(app, sync_directory=sync_directory, ami=None, log=structlog.get_logger("test"))
    for i, text in enumerate(texts, start=1):
        config = parse(text, f"config v{i}")
        await live.apply(Prepared(config, derive(config)), Cached(i, f"v{i}", text))
        while live._tasks:  # the sync after the switch
            await asyncio.sleep(0)
    return synced


async def test_a_version_that_changes_only_routes_does_not_sync_the_directory_again() -> None:
    route_only = TEXT.replace('"+31612345673"', '"+31612345674"')
    assert await apply_versions([TEXT, route_only], [True, True]) == ["+31201234567"]


async def test_a_version_that_moves_or_retypes_a_number_syncs_it() -> None:
    retyped = TEXT.replace("type: local", "type: national", 1)
    assert await apply_versions([TEXT, retyped], [True, True]) == ["+31201234567", "+31201234567"]


async def test_a_sync_that_failed_is_tried_again_with_the_next_version() -> None:
    route_only = TEXT.replace('"+31612345673"', '"+31612345674"')
    assert await apply_versions([TEXT, route_only], [False, True]) == ["+31201234567", "+31201234567"]


async def test_versions_in_quick_succession_publish_the_fallback_once_more_the_newest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[str] = []

    async def publish(_: Any, text: str) -> Any:
        published.append(text)
        return types.SimpleNamespace(extensions=1, digest="d")

    monkeypatch.setattr(live_config, "publish_fallback", publish)
    monkeypatch.setattr(live_config, "PUBLISH_EVERY_S", 0.3)

    async def synced(_: Any) -> bool:
        return True

    app: Any = types.SimpleNamespace(config=None, rates=None, calls={},
                                     config_origin=types.SimpleNamespace(version=None, source="file"))
    live = LiveConfig(app, sync_directory=synced, ami=object(), log=structlog.get_logger("test"))  # type: ignore[arg-type]
    texts = [TEXT.replace('"+31612345673"', f'"+3161234567{d}"') for d in (3, 4, 6)]
    for i, text in enumerate(texts, start=1):
        config = parse(text, f"config v{i}")
        await live.apply(Prepared(config, derive(config)), Cached(i, f"v{i}", text))
        await asyncio.sleep(0.01)
    while live._tasks:
        await asyncio.sleep(0.01)
    assert len(published) == 2  # v1 at once; v2 was overtaken by v3 while the first publish's interval ran
    assert "+31612345676" in published[1] and "+31612345674" not in published[1]


def test_the_checker_child_runs_as_usual_under_a_real_time_fairline() -> None:
    """A fairline whose loop runs at SCHED_RR (docs/operations.md) does not pass it on to the child that checks
    versions: it would take a core from Asterisk for seconds. The child is a process of its own here too."""
    import os
    import subprocess
    import sys

    probe = ("import os; from ari_app.runtime.config_parse import _in_the_background; _in_the_background(); "
             "print(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))")
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    except PermissionError:
        pytest.skip("setting SCHED_RR needs CAP_SYS_NICE")
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).resolve().parents[2], check=True)
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    assert done.stdout.split() == [str(os.SCHED_OTHER), str(os.getpriority(os.PRIO_PROCESS, 0) + 10)]
