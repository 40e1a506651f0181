"""The ARI edge apart from events: the one Asterisk version rule, and what adoption reads of Asterisk's JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ari_app.ari.event_parser import BadChannel, Channel, parse_bridges, parse_channels, parse_variable
from ari_app.ari.version import UnsupportedAsterisk, asterisk_major, require_supported


class TestVersion:
    """One rule for ARI's system.version and for `asterisk -V` (the stack runner's check)."""

    @pytest.mark.parametrize(("version", "major"), [
        ("Asterisk 22.10.1+dfsg+~cs6.17.60671434-1", 22), ("Asterisk certified/22.8-cert4", 22),
        ("Asterisk 20.5.2", 20), ("22.10.1", 22)])
    def test_asterisk_dash_v_reads_like_aris_version(self, version: str, major: int) -> None:
        assert asterisk_major(version) == major

    def test_an_older_asterisk_is_refused(self) -> None:
        with pytest.raises(UnsupportedAsterisk, match="too old: fairline needs 22 or newer"):
            require_supported("20.5.2")

    def test_a_supported_asterisk_gives_its_major(self) -> None:
        assert require_supported("23.0.0") == 23


class TestChannels:
    def test_a_channel_is_read_with_the_events_caller_rule(self) -> None:
        [channel] = parse_channels([{
            "id": "c1", "state": "Up", "caller": {"number": "anonymous"}, "creationtime": "2026-11-25T13:00:00.000+0000",
            "dialplan": {"context": "from-carrier", "exten": "+3120\u202e1234567", "app_name": "Stasis",
                         "app_data": "fairline"}}])
        assert channel == Channel("c1", "Up", None, datetime(2026, 11, 25, 13, 0, tzinfo=UTC), "from-carrier",
                                  "+31201234567", "Stasis", "fairline")

    def test_a_bad_channel_spoils_only_itself(self) -> None:
        found = parse_channels([{"id": "c1", "creationtime": "yesterday"}, "junk",
                                {"id": "c2", "creationtime": "2026-11-25T13:00:00.000+0000"}])
        assert [type(c) for c in found] == [BadChannel, BadChannel, Channel]
        assert [c.channel_id for c in found] == ["c1", "", "c2"]

    def test_not_a_list_is_no_channels(self) -> None:
        assert parse_channels({"message": "oops"}) == []

    def test_bridges_and_variables(self) -> None:
        assert parse_bridges([{"id": "c1-bridge", "channels": ["c1", "c1-agent-1"]}, "junk"]) == {
            "c1-bridge": ["c1", "c1-agent-1"]}
        assert (parse_variable({"value": "+31201234567"}), parse_variable(None)) == ("+31201234567", "")
