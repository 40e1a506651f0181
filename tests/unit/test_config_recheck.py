"""Checking a version against the one before (issue 16): only changed items of `numbers:` are read
again, and the result is always what checking the whole text gives, problems included."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from ari_app.config import number_items
from ari_app.config.yaml_loader import Checked, check, parse
from ari_app.errors import ConfigError
from ari_app.runtime import config_parse

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "dialplan" / "fairline.yaml", ROOT / "tests" / "e2e" / "fairline.yaml"]


def outcome(text: str, previous: Checked | None) -> object:
    try:
        return check(text, "config v2", previous).config
    except ConfigError as exc:
        return exc.problems


# ---- cutting the text


def test_a_plain_file_is_cut_into_its_items_and_back() -> None:
    text = FILES[1].read_text()
    cut = number_items.split(text)
    assert cut is not None and len(cut.items) == len(parse(text, "f").numbers)
    assert cut.before + "".join(cut.items) + cut.after == text
    assert all(item.startswith("  - number:") for item in cut.items)


@pytest.mark.parametrize("text", [
    "numbers: []\n",
    "numbers:\n  - &a {number: '+31201234567'}\n  - *a\n",  # items tied by an anchor
    "numbers:\n  - {number: '+31201234567'}\nnumbers:\n  - {number: '+31201234568'}\n",
    "%YAML 1.1\n---\nnumbers:\n  - {number: '+31201234567'}\n",
    "numbers:\r\n  - {number: '+31201234567'}\r\n",
    "numbers:\n  number: '+31201234567'\n",
    "customers: []\n",
], ids=["flow", "anchor", "twice", "directive", "crlf", "mapping", "none"])
def test_texts_not_plainly_shaped_are_not_cut(text: str) -> None:
    assert number_items.split(text) is None


def test_an_item_whose_mapping_starts_on_the_line_after_its_dash_is_one_item_too() -> None:
    text = FILES[0].read_text().replace('  - number: "+31201234570"', '  -\n    number: "+31201234570"')
    checked = check(text, "f")
    assert checked.layout is not None and checked.layout.items[-1].startswith("  -\n    number:")
    assert check(text.replace("+31201234584", "+31201234585"), "f", checked).config == parse(
        text.replace("+31201234584", "+31201234585"), "f")


# ---- a version against the one before


def test_one_changed_number_is_read_again_and_the_rest_reused() -> None:
    text = FILES[1].read_text()
    before = check(text, "config v1")
    changed = text.replace('"+31612340003"', '"+31612340004"', 1)
    after = check(changed, "config v2", before)
    assert after.config == parse(changed, "config v2") and after.config.text == changed
    same = [e for e, n in after.config.numbers.items() if n is before.config.numbers[e]]
    assert len(same) == len(before.config.numbers) - 1  # one number read again, every other one reused


def test_a_problem_in_a_new_item_names_its_line_in_the_whole_text() -> None:
    text = FILES[0].read_text()
    bad = text.replace('targets: ["+31201234584"]', 'targets: ["+1 555"]')
    with pytest.raises(ConfigError) as exc:
        check(bad, "config v2", check(text, "config v1"))
    line = bad.splitlines().index(next(l for l in bad.splitlines() if "+1 555" in l)) + 1
    assert exc.value.problems == ConfigError(exc.value.problems).problems
    assert any(p.startswith(f"config v2:{line}:") for p in exc.value.problems), exc.value.problems


def _items(text: str) -> tuple[str, list[str], str]:
    cut = number_items.split(text)
    assert cut is not None
    return cut.before, list(cut.items), cut.after


EDITS = ["target", "bad_target", "delete", "duplicate", "swap", "add", "customer", "comment", "head", "customer_name", "garbage"]


def edit(text: str, kind: str, rng: random.Random) -> str:
    before, items, after = _items(text) if number_items.split(text) else ("", [text], "")
    i, j = rng.randrange(len(items)), rng.randrange(len(items))
    if kind == "target":
        items[i] = items[i].replace('"+3161234', f'"+316{rng.randrange(10, 99)}34', 1)
    elif kind == "bad_target":
        items[i] = items[i].replace('"+3161234', '"+4961234', 1)  # abroad: refused unless allowed
    elif kind == "delete" and len(items) > 1:
        del items[i]
    elif kind == "duplicate":
        items.insert(j, items[i])
    elif kind == "swap":
        items[i], items[j] = items[j], items[i]
    elif kind == "add":
        items.append(items[i].replace('number: "+', f'number: "+3120999{rng.randrange(1000, 9999)}" # was "+', 1))
    elif kind == "customer":
        items[i] = items[i].replace("customer: acme", "customer: nobody", 1)
    elif kind == "comment":
        items[i] = items[i] + "  # a note\n"
    elif kind == "head":
        before = before.replace("customers:", "customers:  # who pays", 1)
    elif kind == "customer_name":
        before = before.replace("name: Acme BV", f"name: Acme {rng.randrange(100)}", 1)
    elif kind == "garbage":
        items[i] = "  - number: [\n"
    return before + "".join(items) + after


@settings(max_examples=150, deadline=None)
@given(file=st.sampled_from(FILES), kinds=st.lists(st.sampled_from(EDITS), min_size=1, max_size=4),
       seed=st.integers(0, 2**32))
def test_checking_against_the_previous_version_equals_checking_the_whole(file: Path, kinds: list[str],
                                                                           seed: int) -> None:
    rng = random.Random(seed)
    text = file.read_text()
    previous: Checked | None = check(text, "config v1")
    for kind in kinds:  # a chain of versions, each checked against the last one that checked
        text = edit(text, kind, rng)
        assert outcome(text, previous) == outcome(text, None), kind
        try:
            previous = check(text, "config v2", previous)
        except ConfigError:
            pass


# ---- in the child process


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_the_child_answers_with_the_changes_against_the_version_fairline_holds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = FILES[1].read_text()
    changed = text.replace('"+31612340003"', '"+31612340004"', 1)
    answers: list[str] = []
    real = config_parse.check_in_child

    def spy(*args: object) -> object:
        token, derived, answer = real(*args)  # type: ignore[arg-type]
        answers.append("changes" if isinstance(answer, config_parse.Changes) else "whole")
        return token, derived, answer

    async def scenario() -> None:
        # The child's work, run in this process so the test can watch it (a thread pool of one).
        from concurrent.futures import ThreadPoolExecutor
        monkeypatch.setattr(config_parse, "_pool", ThreadPoolExecutor(max_workers=1))
        monkeypatch.setattr(config_parse, "_base", None)
        monkeypatch.setattr(config_parse, "_last", None)
        monkeypatch.setattr(config_parse, "check_in_child", spy)
        first = (await config_parse.prepare_off_loop(text, "config v1")).config  # nothing known yet: whole
        second = (await config_parse.prepare_off_loop(changed, "config v2")).config  # against v1: the changes
        config_parse._base = ("another", first)  # fairline holds a version the child does not know
        third = (await config_parse.prepare_off_loop(text, "config v3")).config  # so: whole
        assert first == parse(text, "f") and second == parse(changed, "f") and third == first
        assert dataclasses.replace(second, text="") != dataclasses.replace(first, text="")

    run(scenario())
    assert answers == ["whole", "changes", "whole"]


def test_a_child_that_died_is_replaced_and_the_next_version_still_checks() -> None:
    import os
    import signal

    text = FILES[0].read_text()
    changed = text.replace('"+31612345673"', '"+31612345674"')

    async def scenario() -> None:
        first = await config_parse.prepare_off_loop(text, "config v1")
        assert config_parse._pool is not None
        for pid in list(config_parse._pool._processes):  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        second = await config_parse.prepare_off_loop(changed, "config v2")
        assert first.config == parse(text, "f") and second.config == parse(changed, "f")
        assert second.derived.fallback != first.derived.fallback  # the first target is in the fallback

    run(scenario())


def test_a_version_that_changes_many_numbers_comes_whole_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse(FILES[1].read_text(), "f")
    retyped = {e164: dataclasses.replace(n, international_forwarding=not n.international_forwarding)
               for e164, n in config.numbers.items()}
    many = dataclasses.replace(config, numbers=config_parse.read_only(retyped))
    assert isinstance(config_parse._changes(config, many), config_parse.Changes)  # fewer than a piece holds
    monkeypatch.setattr(config_parse, "CHUNK", 5)
    assert config_parse._changes(config, many) is None  # more: the whole Config, in pieces
