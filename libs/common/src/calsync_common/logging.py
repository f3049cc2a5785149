"""JSON logs: one line per event, with the current trace and span ids, never with secrets."""

from __future__ import annotations

import logging
import re
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

REDACTED = "[redacted]"
_SECRET_KEYS = ("token", "secret", "password", "authorization", "client_state", "code_verifier")
#: A JWT anywhere in a message (access, ID or bearer tokens) is masked before it is written.
_JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+")
#: Libraries that log credentials or personal data below WARNING (MSAL logs authorization codes
#: and token-cache events at DEBUG): never more verbose than this, whatever the service level.
NOISY_LOGGERS = {"msal": logging.WARNING, "urllib3": logging.INFO}


def quiet_noisy_loggers() -> None:
    for name, floor in NOISY_LOGGERS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), floor))


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
        message = record.getMessage()
        if _JWT.search(message):
            record.msg, record.args = _JWT.sub(REDACTED, message), None
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
    quiet_noisy_loggers()
