"""OpenTelemetry set up once per process: traces and metrics, exported over OTLP when configured.

aiohttp (server and client) and asyncpg are instrumented by their OpenTelemetry packages; Kafka
is traced by ``calsync_common.kafka`` itself (producer and consumer spans, W3C context in headers).
Without an endpoint spans are not recorded (sampler ``parentbased_always_off``: building span
attributes for nothing cost half the webhook's CPU) but still carry ids, so trace ids reach the
logs and Kafka headers, and asyncpg and the aiohttp client are not instrumented at all. With one,
sampling follows ``OTEL_TRACES_SAMPLER`` (default: all).
"""

from __future__ import annotations

import os

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

_configured = False


def setup_telemetry(
    service: str, otlp_endpoint: str | None, *, untraced_paths: tuple[str, ...] = ()
) -> None:
    """Idempotent: the first call wins (tests build several apps in one process).

    ``untraced_paths`` (regular expressions) are left out of the server spans: a path whose
    query string may carry a credential (the OAuth callback's ``code``) would otherwise put it in
    a span attribute, since the instrumentation redacts only a fixed list of parameter names.
    """
    global _configured
    if _configured:
        return
    _configured = True
    resource = Resource.create({"service.name": f"calsync-{service}"})
    # None: the SDK reads OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG.
    sampler = None if otlp_endpoint else ParentBased(ALWAYS_OFF)
    tracer_provider = TracerProvider(resource=resource, sampler=sampler)
    readers = []
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = otlp_endpoint.rstrip("/")
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces"))
        )
        readers.append(
            PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"))
        )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    if otlp_endpoint:
        # A span per query and per outgoing request is worth its cost only when exported: the
        # wrappers took a fifth of a booking's CPU with nothing recorded.
        AioHttpClientInstrumentor().instrument()
        AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    if untraced_paths:
        # The instrumentation reads its exclusions from this variable only, at instrument().
        variable = "OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS"
        present = [p for p in os.environ.get(variable, "").split(",") if p]
        os.environ[variable] = ",".join([*present, *untraced_paths])
    # Patches web.Application, so it must run before the app is built (runtime.run does).
    AioHttpServerInstrumentor().instrument()
