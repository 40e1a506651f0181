"""The configuration watch: the store's newest version is applied once, checked off the loop, cached on disk."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from ari_app.runtime.config_parse import Prepared
from ari_app.errors import ConfigError
from ari_app.runtime.config_watch import CACHE_FILE, Cached, ConfigWatch, read_cache, write_cache

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "dialplan" / "fairline.yaml").read_text()


@dataclasses.dataclass(frozen=True)
class Version:
    id: int
    name: str
    content: str


def watch(tmp_path: Path, store: list[Version], applied: list[tuple[Prepared, Any]], running: int | None = None
          ) -> ConfigWatch:
    async def newest(_: Any) -> Version | None:
        return store[-1] if store else None

    async def apply(prepared: Prepared, version: Any) -> None:
        applied.append((prepared, version))

    return ConfigWatch("postgresql://unused", fetch_newest=newest, apply=apply, spool_dir=tmp_path,
                       running=running, log=structlog.get_logger("test"))


async def test_a_new_version_is_applied_once_and_cached(tmp_path: Path) -> None:
    store, applied = [Version(3, "v3", TEXT)], []
    w = watch(tmp_path, store, applied)

    await w.catch_up(None)  # type: ignore[arg-type]
    await w.catch_up(None)  # type: ignore[arg-type]  (a second notification for the same version)

    assert [v.name for _, v in applied] == ["v3"] and w.running == 3
    assert applied[0][0].config.text == TEXT
    assert read_cache(tmp_path) == Cached(3, "v3", TEXT)


async def test_the_version_in_force_is_not_applied_again(tmp_path: Path) -> None:
    applied: list[tuple[Prepared, Any]] = []
    await watch(tmp_path, [Version(3, "v3", TEXT)], applied, running=3).catch_up(None)  # type: ignore[arg-type]
    assert applied == [] and not (tmp_path / CACHE_FILE).exists()


async def test_an_empty_store_changes_nothing(tmp_path: Path) -> None:
    applied: list[tuple[Prepared, Any]] = []
    await watch(tmp_path, [], applied).catch_up(None)  # type: ignore[arg-type]
    assert applied == []


async def test_a_stored_version_that_does_not_check_is_refused_once_and_the_running_one_stays(tmp_path: Path) -> None:
    store, applied = [Version(3, "v3", TEXT), Version(4, "v4", "numbers: [")], []
    w = watch(tmp_path, store, applied, running=3)

    with capture_logs() as logs:
        await w.catch_up(None)  # type: ignore[arg-type]
        await w.catch_up(None)  # type: ignore[arg-type]

    assert applied == [] and w.running == 3
    [refused] = [e for e in logs if e["event"] == "config.version_refused"]
    assert refused["version"] == "v4" and refused["problems"][0].startswith("config v4:")
    assert refused["routing"] == "continues on v3"


class TestCache:
    def test_no_cache_is_none(self, tmp_path: Path) -> None:
        assert read_cache(tmp_path) is None

    def test_a_cache_is_written_whole_and_read_back(self, tmp_path: Path) -> None:
        write_cache(tmp_path, Version(7, "v7", TEXT))
        write_cache(tmp_path, Version(8, "v8", "numbers: []\n"))
        assert read_cache(tmp_path) == Cached(8, "v8", "numbers: []\n")
        assert [p.name for p in tmp_path.iterdir()] == [CACHE_FILE]  # no temporary file left
        assert (tmp_path / CACHE_FILE).stat().st_mode & 0o777 == 0o600  # customers' call flows

    @pytest.mark.parametrize("damage", [b"{", b"[]", json.dumps({"id": "x", "name": "v1", "content": ""}).encode()])
    def test_a_damaged_cache_names_the_file_and_what_to_do(self, tmp_path: Path, damage: bytes) -> None:
        (tmp_path / CACHE_FILE).write_bytes(damage)
        with pytest.raises(ConfigError) as raised:
            read_cache(tmp_path)
        [problem] = raised.value.problems
        assert problem.startswith(f"{tmp_path / CACHE_FILE}: ") and "delete it" in problem
