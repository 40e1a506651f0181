"""The text invoice's one piece of Python: undoing COPY's text-format escapes (the SQL runs in tests/e2e)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.storage.invoice_text import unescape_copy_text


def copy_escaped(line: str) -> bytes:
    """A one-column row as PostgreSQL's COPY ... TO STDOUT (text format) sends it (CopyAttributeOutText)."""
    escapes = {"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    return ("".join(escapes.get(c, c) for c in line) + "\n").encode()


class TestUnescapeCopyText:
    @pytest.mark.parametrize(("sent", "text"), [
        (b"calls 0.2200 + service charges 0.0000 = total 0.2200 EUR\n\n",
         b"calls 0.2200 + service charges 0.0000 = total 0.2200 EUR\n\n"),
        (b"menu C:\\\\night\\tv2\n", b"menu C:\\night\tv2\n"),
        (b"two\\nlines\\r\n", b"two\nlines\r\n"),
        (b"\\\\n is a backslash and an n\n", b"\\n is a backslash and an n\n"),
        (b"\\b\\f\\v\n", b"\b\f\v\n"),
    ])
    def test_escapes_become_the_characters_they_stand_for(self, sent: bytes, text: bytes) -> None:
        assert unescape_copy_text(sent) == text

    def test_rows_without_a_backslash_are_passed_on_as_they_are(self) -> None:
        sent = "Invoice 2026-11 for bäckerei (Bäckerei Zoë)\n".encode()
        assert unescape_copy_text(sent) is sent

    @given(st.lists(st.text(), max_size=5))
    def test_any_rows_come_back_as_their_text(self, lines: list[str]) -> None:
        sent = b"".join(copy_escaped(line) for line in lines)
        assert unescape_copy_text(sent) == "".join(line + "\n" for line in lines).encode()
