"""One logging setup for every AEGIS process: JSON lines on stdout.

Each line carries ``time``, ``severity``, ``service``, ``logger``, ``message`` and, when a trace is active,
``trace_id``. The root logger stays at WARNING (libraries are quiet) while the ``aegis`` loggers log at INFO; both
levels are settings (``AEGIS_LOG_ROOT_LEVEL``, ``AEGIS_LOG_LEVEL``).
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import json
import logging
import sys
from typing import Any

trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("aegis_trace_id", default=None)
"""Trace id of the work in progress, for code paths that carry one without OpenTelemetry."""

_RESERVED = set(vars(logging.makeLogRecord({})))


def _current_trace_id() -> str | None:
    explicit = trace_id_var.get()
    if explicit:
        return explicit
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:  # OpenTelemetry not loaded in this process: nothing to look up
        return None
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds"),
            "severity": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id = _current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(service: str, level: str = "info", root_level: str = "warning", stream: Any = None) -> None:
    """Send every log record of this process to ``stream`` (stdout) as JSON lines tagged with ``service``."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(root_level.upper())
    logging.getLogger("aegis").setLevel(level.upper())
    logging.captureWarnings(True)
