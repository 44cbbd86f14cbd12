"""Logging through structlog: console lines for people, JSON lines for machines.

Every line of a call carries its ``call_id`` (bound by the engine through contextvars). The last
processor before rendering masks any run of 8+ digits, so even a careless log call can never
print a whole license key or support code.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Literal

import structlog

from ivr.secrets import scrub

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

__all__ = ["LogFormat", "configure", "scrub_secrets"]

LogFormat = Literal["console", "json"]


def scrub_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Mask 8+ digit runs in every string value of a log line."""
    return {k: scrub(v) if isinstance(v, str) else v for k, v in event_dict.items()}


def configure(*, fmt: LogFormat = "console", level: str = "warning") -> None:
    """Route structlog to stderr in ``fmt``, showing ``level`` and above."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            scrub_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
