"""The configuration loader under fuzzing: whatever the file holds, `load` returns a Config or raises ConfigError.

An operator runs `fairline config check` (and `fairline reload`) on files written by hand, pasted
from mails and half-edited. Whatever the text, the answer must be the documented one: every
problem on its own line, as `FILE:LINE: KEY: what was expected`; never a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ari_app.config.yaml_loader import load
from ari_app.core.model import Config
from ari_app.errors import ConfigError
from tests.unit.test_config import documented_example

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# An empty document has no line to name: the one problem the loader reports without one (test_config.py).
EMPTY_DOCUMENT = "(top level): expected a mapping with 'customers' and 'numbers' lists"

# Characters YAML's reader refuses outright (their problem has no line yet: an xfail in test_bad_input.py),
# and the characters it reads as line breaks.
_NOT_YAML = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_BREAKS = "\n\r\x85\u2028\u2029"


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file per module, rewritten by each example (hypothesis runs a test many times on one fixture)."""
    return tmp_path_factory.mktemp("fuzz") / "fairline.yaml"


def outcome(path: Path, text: str) -> Config | list[str]:
    """What `load` made of `text`: the Config, or the problems it listed. Any other exception fails the test."""
    path.write_text(text, encoding="utf-8")
    try:
        return load(path)
    except ConfigError as exc:
        return exc.problems


def assert_well_formed(path: Path, text: str, result: Config | list[str]) -> None:
    """A Config, or at least one problem, each one line `FILE:LINE: KEY: expected` with a line in the file."""
    if isinstance(result, Config):
        return
    assert result, "ConfigError without a problem"
    lines = len(re.split("\r\n|[\n\r\x85\u2028\u2029]", text))  # YAML's line breaks, NEL and LS included
    shape = re.compile(rf"{re.escape(str(path))}:(\d+): (\S[^\n]*?): ([^\n]+)")
    for problem in result:
        if problem == f"{path}: {EMPTY_DOCUMENT}":
            continue
        found = shape.fullmatch(problem)
        assert found is not None, f"problem not as FILE:LINE: KEY: expected: {problem!r}"
        assert 1 <= int(found[1]) <= lines, f"line {found[1]} is not in a file of {lines} lines: {problem!r}"


# ---- random text, from a YAML-ish alphabet


TOKENS = ["customers:", "numbers:", "queues:", "tariff:", "route:", "targets:", "no_answer:", "hours:",
          "outside_hours:", "agents:", "overflow:", "- ", "  ", "    ", "\n", "\n", "\n", "\t", ":", ": ", ",", "[",
          "]", "{", "}", "&a ", "*a", "*b", "<<: ", "? ", "!!python/object/apply:os.system ", "!tag ", "|", ">",
          "#", "---\n", "...\n", "%YAML 1.1\n", '"', "'", "\\", "~", "null", "true", "0x1F", "1e999", "-1",
          '"+31201234567"', "+31612345678", "id: acme", "name: Acme", "type: local", "announcement: beep",
          "max_wait_seconds: 90", "mon-fri: \"08:00-18:00\"", "\ufeff", "\xa0", "é"]


def yaml_text(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(TOKENS), alphabet), max_size=60).map("".join)


READABLE = st.text(st.characters(codec="utf-8").filter(lambda c: not _NOT_YAML.match(c)), max_size=4)


class TestRandomText:
    @FUZZ
    @given(yaml_text(READABLE))
    def test_any_text_is_a_config_or_problems_by_file_line_and_key(self, config_file: Path, text: str) -> None:
        """Any text YAML's reader accepts: a Config, or each problem on its line."""
        assert_well_formed(config_file, text, outcome(config_file, text))

    @FUZZ
    @given(st.text(max_size=200))
    def test_arbitrary_characters_never_escape_as_another_exception(self, config_file: Path, text: str) -> None:
        """Any text at all, control characters included: ConfigError or a Config, nothing else."""
        outcome(config_file, text)


# ---- structurally plausible configurations with random types, values and keys


class Mapping(list[tuple[str, object]]):
    """Keys and values in file order; a key may come twice, as in a hand-edited file."""


def render(node: object, indent: int = 0) -> str:
    """Block YAML for a tree of Mapping, list and already-written scalars."""
    pad = " " * indent
    if isinstance(node, Mapping):
        if not node:
            return f"{pad}{{}}\n"
        out = []
        for key, value in node:
            if isinstance(value, (Mapping, list)) and value:
                out.append(f"{pad}{key}:\n{render(value, indent + 2)}")
            else:
                out.append(f"{pad}{key}: {render(value).strip()}\n")
        return "".join(out)
    if isinstance(node, list):
        if not node:
            return f"{pad}[]\n"
        return "".join(f"{pad}-\n{render(item, indent + 2)}" if isinstance(item, (Mapping, list)) and item
                       else f"{pad}- {render(item).strip()}\n" for item in node)
    return f"{pad}{node}\n"


def quoted(values: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(values).map(json.dumps)


JUNK_TEXT = st.text(st.characters(codec="utf-8").filter(lambda c: not _NOT_YAML.match(c)), max_size=12)
PLAIN = st.sampled_from(["~", "null", "true", "no", "yes", "0", "-1", "1.5", "1e3", "0x1F", ".inf", ".nan",
                         "2026-01-01", "12:30", "9999999", "acme", "hello-world"])
SCALAR = st.one_of(PLAIN, JUNK_TEXT.map(json.dumps), st.integers(-10**15, 10**15).map(str))


def junk(depth: int = 2) -> st.SearchStrategy[object]:
    """A value of any shape: scalar, list or mapping."""
    if depth == 0:
        return SCALAR
    return st.one_of(SCALAR, st.lists(junk(depth - 1), max_size=3),
                     st.lists(st.tuples(st.sampled_from(["number", "x", "targets"]), junk(depth - 1)),
                              max_size=2).map(Mapping))


# Keys that are not the loader's: misspelt, capitalised, plainly foreign (no line breaks: see test_bad_input.py).
UNKNOWN_KEY = st.one_of(st.sampled_from(["colour", "Number", "anouncement", "targes", "queue", "<<", "route "]),
                        st.text(st.characters(codec="utf-8", exclude_characters=_BREAKS)
                                .filter(lambda c: not _NOT_YAML.match(c)), min_size=1, max_size=8).map(json.dumps))

NUMBERS = ["+31201234567", "+31201234568", "+31201230005", "+31201230006"]
BAD_NUMBERS = ["+3215123456", "+318001234567", "+319001234567", "+999", "0201234567", "", "+", "+31 20 123 4567",
               "+3120123456", "+12025550100", "+3197012345678"]
PHONES = ["+31612345678", "+31612345677", "+31201234599", "+31612340071", "+31201230971"]
ABROAD = ["+32470123456", "+14155550123"]
SOUNDS = ["hello-world", "custom/welcome", "vm-nobodyavail"]
BAD_SOUNDS = ["../etc/passwd", "/etc/asterisk", "hello world", "", "custom//x"]
WINDOWS = ['"08:00-18:00"', '"08:30-17:30"', '"20:00-24:00"', '["10:00-12:00", "13:00-14:00"]']
BAD_WINDOWS = ['"22:00-02:00"', '"24:00-24:00"', '"8am-6pm"', '["08:00-12:00", "11:00-13:00"]', '"08:60-09:00"']


class Fuzzer:
    """Strategies for each part of a configuration; `noise` in 0..100 is how often a value is wrong or junk.

    Every strategy is built once, here: building them per example would cost more than loading the files.
    """

    def __init__(self, noise: int) -> None:
        self.noise = noise
        field, mapping = self.field, self.mapping
        seconds = field(st.integers(1, 60).map(str),
                        st.one_of(st.integers(-5, 700).map(str), st.sampled_from(["1e3", "20.5", "9999999", "0"])))
        number = field(quoted(NUMBERS), quoted(BAD_NUMBERS))
        phone = field(quoted(PHONES), quoted(ABROAD + BAD_NUMBERS + NUMBERS))
        sound = field(st.sampled_from(SOUNDS), st.sampled_from(BAD_SOUNDS))
        queue_name = field(st.sampled_from(["support", "sales"]), st.sampled_from(["Support!", "nowhere"]))
        target = st.one_of(phone, phone, mapping({"number": phone}, {"ring_seconds": seconds}))
        no_answer = st.one_of(mapping({"announcement": sound}), mapping({"number": number}),
                              mapping({"queue": queue_name}), mapping({}, {"announcement": sound, "number": number}))
        route = mapping({"targets": field(st.lists(target, min_size=1, max_size=3))}, {
            "strategy": field(st.sampled_from(["simultaneous", "sequential"]), st.just("ringall")),
            "ring_seconds": seconds,
            "no_answer": no_answer,
        })
        day = field(st.sampled_from(["mon", "tue", "sat", "sun", "mon-fri", "sat-sun"]),
                    st.sampled_from(["fri-mon", "weekdays", "Mon"]))
        hours = st.lists(st.tuples(day, field(st.sampled_from(WINDOWS), st.sampled_from(BAD_WINDOWS))),
                         min_size=1, max_size=3).map(lambda days: Mapping((str(d), w) for d, w in days))
        common = {"number": number,
                  "customer": field(st.sampled_from(["acme", "bakery"]), st.sampled_from(["Acme", "x"])),
                  "type": field(st.just("local"), st.sampled_from(["premium", "tollfree", "mobile"]))}
        flag = {"international_forwarding": field(st.sampled_from(["true", "false"]), st.just("yes"))}
        a_number = st.one_of(mapping({**common, "announcement": sound}),
                             mapping({**common, "route": route}, flag),
                             mapping({**common, "route": route, "hours": hours, "outside_hours": route}, flag))
        queue = mapping({
            "name": field(st.sampled_from(["support", "sales"]), st.sampled_from(["Support", '"a b"'])),
            "customer": field(st.sampled_from(["acme", "bakery"]), st.just("nobody")),
            "agents": field(st.lists(phone, min_size=1, max_size=3)),
        }, {
            "strategy": field(st.sampled_from(["ringall", "roundrobin", "longestidle"]), st.just("x")),
            "ring_seconds": seconds, "wrapup_seconds": seconds, "position_every_seconds": seconds,
            "max_wait_seconds": field(st.integers(1, 60).map(str),
                                      st.sampled_from(["61", "90", "3600", "9999999", "0", "-1"])),
            "overflow": st.one_of(mapping({"number": number}), mapping({"announcement": sound}), no_answer),
        })
        amount = field(st.sampled_from(["0.04", "0.07", "0"]), st.sampled_from(["-1", ".nan", "1e999", "x"]))
        tariff = mapping({"valid_from": field(st.sampled_from(["2020-01-01", "2026-07-01"]),
                                              st.sampled_from(["2026-13-01", "yesterday"])),
                          "setup_eur": amount, "peak_eur_per_min": amount, "offpeak_eur_per_min": amount})
        customers = st.just([Mapping([("id", "acme"), ("name", "Acme BV")]),
                             Mapping([("id", "bakery"), ("name", "Brussels Bakery")])])
        a_customer = mapping({"id": field(st.sampled_from(["acme", "bakery"]), st.sampled_from(["-x", "a" * 65])),
                              "name": field(st.just("Acme BV"), st.sampled_from(['"  "', "~"]))})
        self.config = mapping({
            "customers": field(customers, st.lists(a_customer, max_size=3)),
            "numbers": field(st.lists(a_number, max_size=3)),
        }, {
            "queues": field(st.lists(queue, max_size=2)),
            "tariff": field(st.lists(tariff, min_size=1, max_size=2)),
        })

    def field(self, good: st.SearchStrategy[object], bad: st.SearchStrategy[object] | None = None,
              ) -> st.SearchStrategy[object]:
        """A sensible value, or (as often as the noise says) a wrong one or anything at all."""
        wrong = st.one_of(junk(), bad) if bad is not None else junk()
        noise = self.noise

        @st.composite
        def pick(draw: st.DrawFn) -> object:
            return draw(good if draw(st.integers(0, 99)) >= noise else wrong)

        return pick()

    def mapping(self, required: dict[str, st.SearchStrategy[object]],
                optional: dict[str, st.SearchStrategy[object]] | None = None) -> st.SearchStrategy[Mapping]:
        """The required keys (one dropped now and then), some optional ones, maybe an unknown key or a key twice."""
        fields = {**required, **(optional or {})}
        optional_keys = st.lists(st.sampled_from(sorted(optional)), unique=True) if optional else st.just([])
        noise = self.noise

        @st.composite
        def build(draw: st.DrawFn) -> Mapping:
            keys = list(required)
            if keys and draw(st.integers(0, 99)) < noise // 2:
                keys.remove(draw(st.sampled_from(keys)))
            keys += draw(optional_keys)
            if draw(st.integers(0, 99)) < noise // 2:
                keys.append(draw(UNKNOWN_KEY))
            if keys and draw(st.integers(0, 99)) < noise // 3:
                keys.append(draw(st.sampled_from(keys)))  # given twice
            keys = draw(st.permutations(keys))
            return Mapping((k, draw(fields[k]) if k in fields else draw(junk())) for k in keys)

        return build()


# Most examples are files with a few mistakes; some are clean enough to load, some are mostly junk.
CONFIGS = st.one_of(*(Fuzzer(noise).config for noise in (0, 0, 0, 2, 5, 10, 30)))


class TestPlausibleConfigs:
    @FUZZ
    @given(CONFIGS)
    def test_config_with_random_keys_types_and_values_is_a_config_or_problems_by_line(
            self, config_file: Path, tree: Mapping) -> None:
        text = render(tree)
        assert_well_formed(config_file, text, outcome(config_file, text))

    @FUZZ
    @given(st.data())
    def test_documented_example_edited_at_random_is_a_config_or_problems_by_line(
            self, config_file: Path, data: st.DataObject) -> None:
        """The example people copy, with lines deleted, repeated, moved or re-indented, as careless edits do."""
        lines = documented_example().splitlines()
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(lines) - 1))
            edit = data.draw(st.sampled_from(["delete", "repeat", "move", "indent", "dedent", "truncate"]))
            if edit == "delete":
                del lines[i]
            elif edit == "repeat":
                lines.insert(i, lines[i])
            elif edit == "move":
                lines.insert(data.draw(st.integers(0, len(lines) - 1)), lines.pop(i))
            elif edit == "indent":
                lines[i] = "  " + lines[i]
            elif edit == "dedent":
                lines[i] = lines[i].removeprefix("  ")
            else:
                lines[i] = lines[i][:data.draw(st.integers(0, len(lines[i])))]
            if not lines:
                break
        text = "\n".join(lines) + "\n"
        assert_well_formed(config_file, text, outcome(config_file, text))

    @settings(FUZZ, max_examples=25)
    @given(st.integers(61, 10**9))
    def test_any_queue_wait_over_the_policy_is_refused_on_its_line(self, config_file: Path, seconds: int) -> None:
        """However large the wait asked for, the file is refused at max_wait_seconds: no caller waits past a minute."""
        text = documented_example().replace("max_wait_seconds: 60", f"max_wait_seconds: {seconds}")
        result = outcome(config_file, text)

        assert isinstance(result, list), "a queue wait over the policy was accepted"
        line = text.splitlines().index(f"    max_wait_seconds: {seconds}") + 1
        assert [p for p in result if p.startswith(f"{config_file}:{line}: queues[0].max_wait_seconds: ")] == result
