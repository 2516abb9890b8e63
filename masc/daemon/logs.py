"""Structured logging for the daemon: text for people, JSON lines for machines.

Every record about a session carries ``peer`` (address) and ``domain`` so that an operator
grepping for one neighbour sees its whole story, and ``event`` names what happened with a
stable identifier (``state``, ``notification_sent``, ...) that tests and log shippers key on.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Final

LOGGER_NAME: Final = "masc"
# Fields of a record that belong to the structured payload rather than to logging itself.
_STANDARD: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, message and the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        payload.update(fields(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, sort_keys=False)


class TextFormatter(logging.Formatter):
    """``2026-11-21T07:30:00Z info  peer 192.0.2.2 (domain 65000): Idle -> Connect``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        extra = fields(record)
        prefix = ""
        if "peer" in extra:
            prefix = f"peer {extra['peer']} (domain {extra.get('domain', '?')}): "
        line = f"{stamp} {record.levelname.lower():<7} {prefix}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _Context(logging.Filter):
    """Stamps every record with the node's own identity (``local_domain``, ``node``), so
    that logs of several daemons shipped to one place can be told apart."""

    def __init__(self, context: Mapping[str, object]) -> None:
        super().__init__()
        self.context = dict(context)

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.context.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def configure(
    level: str = "info", fmt: str = "text", context: Mapping[str, object] | None = None
) -> logging.Logger:
    """Send the daemon's logs to stderr in ``fmt`` ("text" or "json"), each record carrying
    ``context`` (in JSON; the text format names peers only, to stay readable)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if context:
        handler.addFilter(_Context(context))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger
