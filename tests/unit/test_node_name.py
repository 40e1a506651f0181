"""Which node a fairline serves: Asterisk's systemname, from ARI's /asterisk/info (issue 20)."""

from __future__ import annotations

from typing import Any

import pytest

from ari_app.ari.event_parser import parse_system_name
from ari_app.commands.queues_cli import render


@pytest.mark.parametrize(("info", "node"), [
    ({"system": {"version": "22.10.1"}, "config": {"name": "n1", "default_language": "en"}}, "n1"),
    ({"system": {"version": "22.10.1"}, "config": {"default_language": "en"}}, ""),  # systemname not set
    ({"system": {"version": "22.10.1"}}, ""),
    ({"config": "n1"}, ""),
    ([], ""),
])
def test_the_node_is_asterisks_systemname_or_nothing(info: Any, node: str) -> None:
    assert parse_system_name(info) == node


def test_fairline_queues_names_the_node_first_when_it_is_known() -> None:
    queue = {"name": "help", "customer": "acme", "waiting": [], "strategy": "ringall", "max_wait_seconds": 60,
             "agents": []}

    assert render([queue], "n2").splitlines()[0].startswith("node n2: ")
    assert render([queue]).splitlines()[0].startswith("queue help")
