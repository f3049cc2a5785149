"""``GET /metrics``: Prometheus text, like every calsync process.

Per app (one registry per ``init_app``, so in-process test apps do not share counters):

* ``msgraph_emulator_graph_requests_total{method,status}``: answered ``/v1.0/*`` requests,
  including 401/429/5xx and ``$batch`` inner requests (they arrive over loopback).
* ``msgraph_emulator_token_requests_total{status}``: token endpoint answers.
* ``msgraph_emulator_notifications_delivered_total{kind}``: items acknowledged with a 2xx
  (``change``, ``lifecycle``); ``..._notification_posts_failed_total{kind}``: POSTs that failed
  (also ``validation``); ``..._notifications_dropped_total``: items given up after the retry
  window; ``..._notifications_lost_total``: items lost by fault injection.
* ``msgraph_emulator_subscriptions``: subscriptions in the store.

Notification counters read the delivery log, so ``/_emulator/reset`` starts them again at 0
(Prometheus treats that as a counter reset).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from msgraph_emulator.notify.store import SubscriptionStore
from msgraph_emulator.state import EmulatorState

PREFIX = "msgraph_emulator"


class NotificationCollector(Collector):
    """Reads the notification part's counters at scrape time."""

    def __init__(self, store: SubscriptionStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        log = self.store.deliveries
        delivered = CounterMetricFamily(
            f"{PREFIX}_notifications_delivered",
            "Notification items acknowledged with a 2xx, by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(log.delivered_by_kind.items()):
            delivered.add_metric([kind], count)
        failed = CounterMetricFamily(
            f"{PREFIX}_notification_posts_failed",
            "Notification or validation POSTs without a 2xx answer, by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(log.failed_by_kind.items()):
            failed.add_metric([kind], count)
        yield delivered
        yield failed
        yield CounterMetricFamily(
            f"{PREFIX}_notifications_dropped",
            "Notification items dropped after the retry window.",
            value=log.dropped_count,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_notifications_lost",
            "Notification items lost by fault injection.",
            value=log.lost_count,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_subscriptions", "Subscriptions in the store.", value=len(self.store.by_id)
        )


class EmulatorMetrics:
    def __init__(self, state: EmulatorState) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.graph_requests = Counter(
            f"{PREFIX}_graph_requests",
            "Graph /v1.0 requests answered, by method and status.",
            ["method", "status"],
            registry=self.registry,
        )
        self.token_requests = Counter(
            f"{PREFIX}_token_requests",
            "Token endpoint requests answered, by status.",
            ["status"],
            registry=self.registry,
        )
        self.registry.register(NotificationCollector(state.subscriptions))

    def observe(self, request: web.Request, status: int) -> None:
        path = request.path
        if path.startswith("/v1.0/"):
            self.graph_requests.labels(request.method, str(status)).inc()
        elif path.endswith("/oauth2/v2.0/token"):
            self.token_requests.labels(str(status)).inc()


METRICS = web.AppKey("metrics", EmulatorMetrics)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: sees the final status (errors rendered, throttling applied)."""
    metrics = request.app[METRICS]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        metrics.observe(request, exc.status)
        raise
    except Exception:
        metrics.observe(request, 500)
        raise
    metrics.observe(request, response.status)
    return response


async def metrics_endpoint(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(request.app[METRICS].registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def setup_metrics(app: web.Application, state: EmulatorState) -> None:
    app[METRICS] = EmulatorMetrics(state)
    app.middlewares.insert(0, count_requests)
    app.router.add_get("/metrics", metrics_endpoint)
