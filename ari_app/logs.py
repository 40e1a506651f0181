"""Logging set-up: structlog, JSON in production, key=value in a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Literal

LogFormat = Literal["json", "console", "auto"]


def configure(fmt: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog once, at program start. Every line carries ISO UTC time and level."""
    import structlog  # here, not at the top: the composition root imports this module for `--help` too

    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
