"""Log output: `key=value` text by default, one JSON object a line on request."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

# A value written as it is: not empty, and nothing a reader would split it on.
_PLAIN = re.compile(r'[^ ="\\]+')
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    if char.isprintable() and char not in _ESCAPES:
        return char

    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _value(value: Any) -> str:
    """A field's value for a text line, quoted and escaped when it must be.

    Values may come from a sender (an action, a store id): a newline or other
    control character in one must not start a line that looks like another.
    """
    if isinstance(value, int | float):
        return str(value)

    text = str(value)
    if text.isprintable() and _PLAIN.fullmatch(text):
        return text

    return '"' + "".join(map(_escaped, text)) + '"'


class MalformedRequestFilter(logging.Filter):
    """aiohttp's report of a request it could not parse, without the request.

    aiohttp logs such a request as an error with a traceback that quotes the
    raw request line: anyone could write session ids, or forged text, into the
    log that way. It is the client's mistake, so one warning line says what
    kind of mistake it was.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg = "malformed HTTP request refused: %s %s"
            record.args = (type(error).__name__, error.code)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"

        return True


class _SecondCache:
    """formatTime with its date and time worked out once a second, not a line.

    Every request writes a line, and strftime was a tenth of the line's cost.
    Formatters run under their handler's lock, so the cache needs none.
    """

    converter = staticmethod(time.localtime)
    _second = -1
    _prefix = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))

        return f"{self._prefix},{int(record.msecs):03d}"


class TextFormatter(_SecondCache, logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{k}={_value(v)}" for k, v in fields.items())

        return line


class JsonFormatter(_SecondCache, logging.Formatter):
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
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server.filters):
        server.addFilter(MalformedRequestFilter())
