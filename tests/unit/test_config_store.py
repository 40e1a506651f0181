"""The configuration store's rules without a database: version names, when a change is refused,
and a stored text checked by the same loader as a file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ari_app.config import yaml_loader
from ari_app.errors import ConfigError
from rating.storage.config_store import (
    MissingAuthor,
    SameContent,
    StaleBase,
    StoredVersion,
    content_hash,
    refusal,
    version_id,
)

BASE = """\
customers:
  - id: acme
    name: Acme BV
numbers:
  - number: "+31201234567"
    customer: acme
    type: local
    announcement: hello-world
"""


def stored(vid: int, content: str = BASE) -> StoredVersion:
    return StoredVersion(id=vid, name=f"v{vid}", content=content, content_hash=content_hash(content), author="alice",
                         role="admin", reason="", based_on=vid - 1 or None,
                         applied_at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC))


class TestVersionNames:
    @pytest.mark.parametrize(("name", "vid"), [("v12", 12), ("12", 12), (" v3 ", 3), ("v1", 1)])
    def test_a_name_or_a_bare_id_names_the_version(self, name: str, vid: int) -> None:
        assert version_id(name) == vid

    @pytest.mark.parametrize("name", ["", "v", "v0", "x12", "v-1", "v1.5", "v١٢", "v" + "9" * 19, "12v"])
    def test_anything_else_names_no_version(self, name: str) -> None:
        assert version_id(name) is None


class TestRefusal:
    def test_a_change_made_from_the_newest_version_may_be_stored(self) -> None:
        assert refusal(author="bob", based_on=5, content_hash=content_hash("x: 1\n"), newest=stored(5)) is None

    def test_the_first_version_is_made_from_nothing(self) -> None:
        assert refusal(author="bob", based_on=None, content_hash=content_hash(BASE), newest=None) is None

    def test_a_change_made_from_an_older_version_is_refused_naming_both(self) -> None:
        problem = refusal(author="bob", based_on=3, content_hash=content_hash("x: 1\n"), newest=stored(5))
        assert isinstance(problem, StaleBase) and (problem.base, problem.newest) == (3, 5)
        assert str(problem) == "based on v3, but v5 is the newest: export v5, make the change again"

    def test_a_change_made_from_nothing_while_versions_exist_is_refused(self) -> None:
        problem = refusal(author="bob", based_on=None, content_hash=content_hash("x: 1\n"), newest=stored(2))
        assert isinstance(problem, StaleBase)
        assert str(problem).startswith("based on no version, but v2 is the newest")

    @pytest.mark.parametrize("author", ["", "   ", "\t"])
    def test_a_change_without_an_author_is_refused(self, author: str) -> None:
        problem = refusal(author=author, based_on=5, content_hash=content_hash("x: 1\n"), newest=stored(5))
        assert isinstance(problem, MissingAuthor) and "--author" in str(problem)

    def test_the_newest_content_again_is_no_change_whatever_it_was_based_on(self) -> None:
        problem = refusal(author="bob", based_on=3, content_hash=content_hash(BASE), newest=stored(5))
        assert isinstance(problem, SameContent)
        assert str(problem).startswith("no change: v5 has this content already")


class TestLoadText:
    def test_a_stored_text_is_checked_like_a_file_with_problems_named_by_its_source(self) -> None:
        with pytest.raises(ConfigError) as refused:
            yaml_loader.parse(BASE.replace("type: local", "type: premium"), "v7")
        assert refused.value.problems[0].startswith("v7:7: numbers[0].type:")

    def test_a_valid_text_loads_keeping_the_text_as_given(self) -> None:
        assert yaml_loader.parse(BASE, "v7").text == BASE
