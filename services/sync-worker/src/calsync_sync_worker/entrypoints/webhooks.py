"""Microsoft Graph webhooks: the validation handshake, change and lifecycle notifications.

A notification is acknowledged (202) only once Kafka has it: the idempotent producer's ack comes
first, then the answer. If Kafka cannot take it in time, 503 makes Graph deliver it again.
Notifications of unknown subscriptions or with a wrong ``clientState`` are dropped and counted.
No Graph call is ever made here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Histogram

from calsync_common.contracts.base import EventPayload
from calsync_common.http.problems import Problem
from calsync_common.kafka.producer import EventPublisher
from calsync_sync_worker.adapters.repository import SyncRepository
from calsync_sync_worker.domain.notifications import (
    Target,
    change_event,
    client_state_matches,
    lifecycle_event,
    parse_changes,
    parse_lifecycle,
    parse_or_none,
)

log = logging.getLogger(__name__)
RECEIVED = Counter(
    "calsync_webhook_notifications_total", "Notifications received", ["kind", "outcome"]
)
ACK_SECONDS = Histogram("calsync_webhook_ack_seconds", "Receipt to Kafka ack", ["kind"])


class SubscriptionTargets:
    """Subscription id → its calendar and clientState hash, cached briefly (a flood of forged
    notifications must not become a flood of queries)."""

    def __init__(self, pool: asyncpg.Pool, *, ttl_s: float = 30.0, miss_ttl_s: float = 5.0) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._miss_ttl_s = miss_ttl_s
        self._cache: dict[str, tuple[float, Target | None]] = {}

    def forget(self, subscription_id: str) -> None:
        self._cache.pop(subscription_id, None)

    async def get(self, subscription_id: str) -> Target | None:
        now = time.monotonic()
        cached = self._cache.get(subscription_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._pool.acquire() as conn:  # one read: no transaction around it
            record = await SyncRepository(conn).subscription(subscription_id)
        target = (
            Target(record.connection_id, record.calendar_id, record.client_state_hash)
            if record is not None
            else None
        )
        ttl = self._ttl_s if target is not None else self._miss_ttl_s
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[subscription_id] = (now + ttl, target)
        return target


class GraphWebhooks:
    def __init__(
        self,
        targets: SubscriptionTargets,
        publisher: EventPublisher,
        *,
        ack_timeout_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._targets = targets
        self._publisher = publisher
        self._ack_timeout_s = ack_timeout_s
        self._clock = clock

    async def notifications(self, request: web.Request) -> web.Response:
        return await self._receive(request, "change", parse_changes, change_event)

    async def lifecycle(self, request: web.Request) -> web.Response:
        return await self._receive(request, "lifecycle", parse_lifecycle, lifecycle_event)

    async def _receive(
        self,
        request: web.Request,
        kind: str,
        parse: Callable[[Any], list[Any]],
        to_event: Callable[[Any, Target, datetime], EventPayload],
    ) -> web.Response:
        token = request.query.get("validationToken")
        if token is not None:  # the handshake: echo the (decoded) token, as text, at once
            return web.Response(text=token, content_type="text/plain")
        started = time.perf_counter()
        try:
            body = await request.json()
        except ValueError:
            raise Problem(400, "invalid_notification", "Body is not JSON") from None
        items = parse_or_none(parse, body)
        if items is None:
            raise Problem(400, "invalid_notification", "Not a Graph notification collection")
        now = self._clock()
        accepted: list[EventPayload] = []
        for item in items:
            target = await self._targets.get(item.subscription_id)
            if target is None:
                RECEIVED.labels(kind, "unknown_subscription").inc()
                continue
            if not client_state_matches(item.client_state, target.client_state_hash):
                RECEIVED.labels(kind, "client_state_mismatch").inc()
                continue
            accepted.append(to_event(item, target, now))
        if accepted:
            try:
                async with asyncio.timeout(self._ack_timeout_s):
                    await asyncio.gather(*(self._publisher.publish(e) for e in accepted))
            except (KafkaError, TimeoutError) as exc:
                RECEIVED.labels(kind, "not_queued").inc(len(accepted))
                log.warning(
                    "notifications not queued; Graph will retry",
                    extra={"error": type(exc).__name__},
                )
                raise Problem(
                    503,
                    "notifications_not_queued",
                    "Kafka did not take the notifications in time; send them again",
                    headers={"Retry-After": "5"},
                ) from None
            RECEIVED.labels(kind, "queued").inc(len(accepted))
            ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)
        return web.Response(status=202)


def setup_webhook_routes(app: web.Application, webhooks: Callable[[], GraphWebhooks]) -> None:
    async def notifications(request: web.Request) -> web.Response:
        return await webhooks().notifications(request)

    async def lifecycle(request: web.Request) -> web.Response:
        return await webhooks().lifecycle(request)

    app.router.add_post("/webhooks/graph/notifications", notifications)
    app.router.add_post("/webhooks/graph/lifecycle", lifecycle)
