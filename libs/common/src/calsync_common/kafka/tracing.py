"""W3C trace context in Kafka headers (``traceparent``/``tracestate``), explicit on both sides.

Done here rather than by the aiokafka auto-instrumentation so that the consumer runner can run
each handler inside the producer's trace, and so a header is never added twice.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import propagate
from opentelemetry.context import Context

Headers = list[tuple[str, bytes]]


def inject(headers: Headers) -> Headers:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return headers + [(k, v.encode()) for k, v in carrier.items()]


def extract(headers: Iterable[tuple[str, bytes]]) -> Context:
    carrier = {k: v.decode("latin-1") for k, v in headers if k in ("traceparent", "tracestate")}
    return propagate.extract(carrier)
