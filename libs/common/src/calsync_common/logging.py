"""JSON logs: one line per event, with the current trace and span ids, never with secrets."""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

REDACTED = "[redacted]"
_SECRET_KEYS = ("token", "secret", "password", "authorization", "client_state", "code_verifier")


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id``/``span_id`` of the active span and redacts secret-looking extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.service = self.service
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        for key in list(record.__dict__):
            if any(s in key.lower() for s in _SECRET_KEYS) and key != "trace_id":
                record.__dict__[key] = REDACTED
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    )
    handler.addFilter(TraceContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log duplicates the trace spans and would log query strings (tokens).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
