"""One structured logger: readable in a terminal, JSON in production, request id on every line."""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


MAX_LOGGED_ID_CHARS = 128


def loggable_id(value: str) -> str:
    """A caller's id as it may appear in a log line: short, one line, control characters escaped,
    so no request id can forge or flood log lines."""
    if len(value) > MAX_LOGGED_ID_CHARS:
        value = value[:MAX_LOGGED_ID_CHARS] + "…"
    return value if value.isprintable() else ascii(value)[1:-1]


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = loggable_id(request_id_var.get())
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(time.time(), 3),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(service: str, *, fmt: str = "text", level: str = "INFO") -> None:
    """Send logs to stderr (stdout is kept for the readiness line that ``voicemesh up`` reads)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)-5s {service} [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # faster-whisper logs every utterance's duration at INFO: noise at our default level.
    logging.getLogger("faster_whisper").setLevel(max(logging.WARNING, root.level))
