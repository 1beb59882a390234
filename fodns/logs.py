"""Logging setup: structlog JSON lines on stderr, events as snake_case facts with fields."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import structlog

# structlog is imported where it is first used, not with this module: the client
# commands (`fodns group switch ...`) never log, and a script calling them in a loop
# should not pay for loading it (a sixth of a second each) every time.


def configure_logging(level: str = "info") -> None:
    import structlog

    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # One write() per line (message and newline together): DNS workers share
        # stderr, and a line written in two parts can interleave with another
        # process's line, leaving neither readable as JSON.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(**fields: object) -> structlog.stdlib.BoundLogger:
    import structlog

    return structlog.get_logger(**fields)  # type: ignore[no-any-return]
