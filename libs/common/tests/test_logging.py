"""JSON log lines carry the trace id and never the value of a secret-looking field."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from calsync_common.logging import TraceContextFilter, configure_logging


def test_log_line_is_json_with_trace_id_and_redacted_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("test")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("calsync.test").warning(
            "token refreshed", extra={"refresh_token": "0.AAA-secret", "connection": "c-1"}
        )
        trace_id = format(span.get_span_context().trace_id, "032x")
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["message"] == "token refreshed"
    assert line["trace_id"] == trace_id
    assert line["service"] == "test"
    assert line["connection"] == "c-1"
    assert line["refresh_token"] == "[redacted]"
    assert "0.AAA-secret" not in json.dumps(line)
    logging.getLogger().handlers.clear()


def test_filter_without_span_adds_no_trace_id() -> None:
    record = logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None)
    assert TraceContextFilter("svc").filter(record)
    assert not hasattr(record, "trace_id")
