"""Log output: `key=value` text by default, one JSON object a line on request."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson


def _value(value: Any) -> str:
    text = str(value)
    if not text or " " in text or "=" in text or '"' in text:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return text


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{k}={_value(v)}" for k, v in fields.items())

        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)

        return orjson.dumps(entry, default=str).decode()


def configure(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send cartsvc's logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log would repeat each request's line without its fields.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
