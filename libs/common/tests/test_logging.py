"""JSON log lines carry the trace id and never the value of a secret-looking field."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from calsync_common.logging import TraceContextFilter, configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers: give the session's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    msal_level = logging.getLogger("msal").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("msal").setLevel(msal_level)


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


def test_filter_without_span_adds_no_trace_id() -> None:
    record = logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None)
    assert TraceContextFilter("svc").filter(record)
    assert not hasattr(record, "trace_id")


def test_a_jwt_inside_a_message_is_masked_and_msal_never_logs_below_warning() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGF0Zm9ybSJ9.c2lnbmF0dXJlLXZhbHVl"
    record = logging.LogRecord("n", logging.INFO, "p", 1, "calling with %s done", (jwt,), None)
    assert TraceContextFilter("svc").filter(record)
    assert record.getMessage() == "calling with [redacted] done"
    configure_logging("test", "DEBUG")
    assert logging.getLogger("msal").getEffectiveLevel() == logging.WARNING
    assert not logging.getLogger("msal.token_cache").isEnabledFor(logging.DEBUG)


def test_untraced_paths_reach_the_server_instrumentation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.util.http import get_excluded_urls

    from calsync_common import telemetry

    monkeypatch.setenv("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", "^/healthz")
    monkeypatch.setattr(telemetry, "_configured", False)
    monkeypatch.setattr(telemetry.AioHttpServerInstrumentor, "instrument", lambda self: None)
    monkeypatch.setattr(telemetry.AioHttpClientInstrumentor, "instrument", lambda self: None)
    monkeypatch.setattr(telemetry.AsyncPGInstrumentor, "instrument", lambda self: None)
    monkeypatch.setattr(telemetry.trace, "set_tracer_provider", lambda provider: None)
    monkeypatch.setattr(telemetry.metrics, "set_meter_provider", lambda provider: None)
    telemetry.setup_telemetry("t", None, untraced_paths=("^/oauth/callback",))
    excluded = get_excluded_urls("AIOHTTP_SERVER")
    assert excluded.url_disabled("/oauth/callback")
    assert excluded.url_disabled("/healthz")  # what was configured before is kept
    assert not excluded.url_disabled("/v1/sub-accounts/x/connections")
