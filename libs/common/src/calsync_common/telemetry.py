"""OpenTelemetry set up once per process: traces and metrics, exported over OTLP when configured.

With an endpoint, aiohttp (server and client) and asyncpg are instrumented by their OpenTelemetry
packages and sampling follows ``OTEL_TRACES_SAMPLER`` (default: all). Kafka is traced by
``calsync_common.kafka`` itself (producer and consumer spans, W3C context in headers).

Without one, spans are not recorded (sampler ``parentbased_always_off``: building span attributes
for nothing cost half the webhook's CPU) but still carry ids, so trace ids reach the logs and Kafka
headers. asyncpg and the aiohttp client are then not instrumented at all, and the server gets
:func:`trace_context_middleware` instead of the instrumentation's (whose attributes and duration
metrics took an eighth of a busy query's CPU for nothing).
"""

from __future__ import annotations

import os

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.propagate import extract
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

_configured = False
#: Whether the aiohttp server instrumentation is on (only with an endpoint).
_server_instrumented = False
#: Whether spans are exported (an endpoint is configured).
_exporting = False
_tracer = trace.get_tracer(__name__)


def setup_telemetry(
    service: str, otlp_endpoint: str | None, *, untraced_paths: tuple[str, ...] = ()
) -> None:
    """Idempotent: the first call wins (tests build several apps in one process).

    ``untraced_paths`` (regular expressions) are left out of the server spans: a path whose
    query string may carry a credential (the OAuth callback's ``code``) would otherwise put it in
    a span attribute, since the instrumentation redacts only a fixed list of parameter names.
    """
    global _configured, _server_instrumented, _exporting
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
    if not otlp_endpoint:
        return  # new apps get trace_context_middleware (server_middlewares)
    _exporting = True
    if untraced_paths:
        # The instrumentation reads its exclusions from this variable only, at instrument().
        variable = "OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS"
        present = [p for p in os.environ.get(variable, "").split(",") if p]
        os.environ[variable] = ",".join([*present, *untraced_paths])
    # Patches web.Application, so it must run before the app is built (runtime.run does).
    AioHttpServerInstrumentor().instrument()
    _server_instrumented = True


@web.middleware
async def trace_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's trace context without the instrumentation: the caller's W3C
    ``traceparent`` when it sends one (else a new trace), in an unrecorded server span, so logs
    and the Kafka headers of what the request causes carry its trace id."""
    parent = extract(request.headers) if "traceparent" in request.headers else None
    with _tracer.start_as_current_span(
        request.method,  # without a route, the semantic conventions name it by method
        context=parent,
        kind=trace.SpanKind.SERVER,
        record_exception=False,
        set_status_on_exception=False,
    ):
        return await handler(request)


def spans_exported() -> bool:
    """Whether spans go anywhere: without an endpoint a span of one's own records nothing, and
    the current trace context (a request's, a consumed record's) is what headers carry."""
    return _exporting


def server_middlewares() -> list[Middleware]:
    """What a new app needs for its requests' trace context: nothing when the server
    instrumentation is on (it adds its own), else :func:`trace_context_middleware`."""
    return [] if _server_instrumented else [trace_context_middleware]
