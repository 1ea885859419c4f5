"""Structured logs: the gateway's ``event key=value …`` lines as text, or as one JSON object per line.

JSON lines carry ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg`` and the event's fields:
whatever was passed with ``extra={...}``, and the ``key=value`` pairs written in the message
(``rejected reason=bad_mac source=node=gg-a4cf12: …`` gives ``reason``, ``source`` and
``node``). Numbers become JSON numbers; an exception adds ``exc`` with the traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["TEXT_FORMAT", "JsonFormatter", "configure_logging", "message_fields"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# A field: a lowercase key, '=', a token of safe characters (a nested key=value allowed: source=node=x).
_TOKEN = r"[\w.:/@+-]+"
_FIELD = re.compile(rf"(?:^|(?<=\s))([a-z][a-z0-9_]*)=({_TOKEN}(?:={_TOKEN})?)(?=[\s,;]|$)")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
# Attributes every LogRecord has: anything else on a record came from extra={...}.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_RESERVED = ("ts", "level", "logger", "msg", "exc")


def _value(text: str) -> Any:
    if _NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)
    return text


def message_fields(message: str) -> dict[str, Any]:
    """The ``key=value`` fields of a log message."""
    fields: dict[str, Any] = {}
    for key, raw in _FIELD.findall(message):
        value = raw.rstrip(":.")
        fields[key] = _value(value)
        inner_key, sep, inner = value.partition("=")
        if sep and re.fullmatch(r"[a-z][a-z0-9_]*", inner_key):
            fields.setdefault(inner_key, _value(inner))
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record, one record per line (journald and log shippers read it as is)."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": msg,
        }
        fields = message_fields(msg)
        fields.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        for key, value in fields.items():
            if key not in _RESERVED:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr (journald keeps it) at ``level`` in ``fmt`` ("text" or "json").

    Reuses the root handlers the ``gonggi`` command set up, replacing their format; the level goes
    on the handlers too, so loggers with a level of their own do not get below it.
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    root.setLevel(level.upper())
    for handler in root.handlers:
        handler.setLevel(level.upper())
        handler.setFormatter(formatter)
