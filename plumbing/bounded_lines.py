"""Lines of a byte stream, each at most a given length: a line without end never fills memory."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import BinaryIO

_SKIP_CHUNK = 1 << 16  # how much of an overlong line is held at once while it is read past


@dataclasses.dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line longer than the limit, read past without being kept."""

    length: int  # its bytes, without the line end


def bounded_lines(stream: BinaryIO, limit: int) -> Iterator[bytes | LineTooLong]:
    """Each line of `stream` (with its b"\\n", if any), or LineTooLong for a line of more than `limit` bytes.

    Memory stays within `limit` plus 64 KiB whatever the input; the line after an overlong one comes next.
    """
    while line := stream.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        length = len(line)
        while (rest := stream.readline(_SKIP_CHUNK)) and not rest.endswith(b"\n"):
            length += len(rest)
        yield LineTooLong(length + len(rest.rstrip(b"\n")))
