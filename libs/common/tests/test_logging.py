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
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.util.http import get_excluded_urls

    from calsync_common import telemetry

    monkeypatch.setenv("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", "^/healthz")
    monkeypatch.setattr(telemetry, "_configured", False)
    monkeypatch.setattr(telemetry.AioHttpServerInstrumentor, "instrument", lambda self: None)
    monkeypatch.setattr(telemetry.AioHttpClientInstrumentor, "instrument", lambda self: None)
    monkeypatch.setattr(telemetry.AsyncPGInstrumentor, "instrument", lambda self: None)
    monkeypatch.setattr(telemetry.trace, "set_tracer_provider", lambda provider: None)
    monkeypatch.setattr(telemetry.metrics, "set_meter_provider", lambda provider: None)
    monkeypatch.setattr(telemetry, "_server_instrumented", False)
    # No exporting threads left behind in this process.
    monkeypatch.setattr(telemetry, "BatchSpanProcessor", SimpleSpanProcessor)
    monkeypatch.setattr(
        telemetry, "PeriodicExportingMetricReader", lambda exporter: InMemoryMetricReader()
    )
    # The exclusions matter only where the instrumentation runs: with an endpoint.
    telemetry.setup_telemetry("t", "http://127.0.0.1:4318", untraced_paths=("^/oauth/callback",))
    excluded = get_excluded_urls("AIOHTTP_SERVER")
    assert excluded.url_disabled("/oauth/callback")
    assert excluded.url_disabled("/healthz")  # what was configured before is kept
    assert not excluded.url_disabled("/v1/sub-accounts/x/connections")


async def test_without_the_instrumentation_requests_still_carry_their_trace_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``trace_context_middleware``: the caller's traceparent becomes the handler's trace (so
    its logs and Kafka headers continue the caller's trace); without one, a new trace. The
    tracer is the one ``setup_telemetry`` makes without an endpoint (nothing recorded)."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    from calsync_common import telemetry

    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    monkeypatch.setattr(telemetry, "_tracer", provider.get_tracer("test"))

    async def current(request: web.Request) -> web.Response:
        ctx = trace.get_current_span().get_span_context()
        return web.json_response({"trace": format(ctx.trace_id, "032x"), "valid": ctx.is_valid})

    app = web.Application(middlewares=[telemetry.trace_context_middleware])
    app.router.add_get("/t", current)
    caller = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/t", headers={"traceparent": f"00-{caller}-00f067aa0ba902b7-01"})
        assert await resp.json() == {"trace": caller, "valid": True}
        first = await (await client.get("/t")).json()
        second = await (await client.get("/t")).json()
    assert first["valid"] and second["valid"]
    assert first["trace"] != second["trace"] != caller  # each request its own trace
