"""Wires the availability service: the one place resources are built and fakes swapped in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from calsync_availability.booking_wiring import wire_bookings
from calsync_availability.entrypoints.calendars_api import CALENDARS
from calsync_availability.service_layer.calendars import CalendarsService
from calsync_availability.service_layer.projections import (
    apply_calendar_records,
    on_calendar_event,
    on_connection,
    on_sync_status,
)
from calsync_availability.service_layer.unit_of_work import AvailabilityWork
from calsync_availability.settings import AvailabilitySettings
from calsync_common.contracts.topics import CALENDAR_EVENTS, CONNECTIONS, SYNC_STATUS
from calsync_common.kafka.consumer import BatchHandler, ConsumerRunner, Handler
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_common.runtime import (
    POOL,
    catalogue_consumer,
    consumer_ctx,
    outbox_relay_ctx,
    postgres_ctx,
    publisher_ctx,
)

SERVICE = "availability"
SOURCE = f"/calsync/{SERVICE}"
MIGRATIONS = Path(__file__).parent / "migrations" / "versions"
_Consumer = tuple[
    web.AppKey[ConsumerRunner[AvailabilityWork]],
    str,
    str,
    Handler[AvailabilityWork],
    BatchHandler[AvailabilityWork] | None,
]
#: Session parameters of the pool. Prepared statements run their generic plan: the custom plans
#: PostgreSQL otherwise keeps for this schema's array and range parameters were planned again on
#: every execution, and planning cost more than running (busy query: 0.45 ms planning, 0.15 ms
#: executing). ``test_query_plans`` holds the hot statements' generic plans to their indexes.
SESSION = {"plan_cache_mode": "force_generic_plan"}
#: The busy projection's consumers (one group per topic, so a slow topic holds up no other);
#: calendar events are applied a fetched batch at a time (the runner falls back to one by one).
PROJECTION_CONSUMERS: tuple[_Consumer, ...] = (
    (
        web.AppKey("connections_consumer", ConsumerRunner),
        CONNECTIONS.name,
        "connections",
        on_connection,
        None,
    ),
    (
        web.AppKey("calendar_events_consumer", ConsumerRunner),
        CALENDAR_EVENTS.name,
        "calendar-events",
        on_calendar_event,
        apply_calendar_records,
    ),
    (
        web.AppKey("sync_status_consumer", ConsumerRunner),
        SYNC_STATUS.name,
        "sync-status",
        on_sync_status,
        None,
    ),
)


#: Records a batch-applied consumer takes per poll, shared by the partitions it fetched (each
#: applied in its own transaction, side by side). The runner's per-transaction cost (offsets,
#: sequences, commit, and the wait for the slowest partition before the next poll) is shared by
#: more events the larger it is. Bench (150,000 events, calendar-events topic of 6 partitions,
#: same run): 2,000 gave 22,400-23,000 events/s, 4,000 25,100, 6,000 27,600, 12,000 26,900.
#: The cost: a transaction holds its members' locks until it commits, about 0.2 s at 6,000
#: (1,000 records a partition) during a catch-up, so a booking of such a member waits that long
#: at most. In steady state a poll brings what arrived since the last one: far fewer.
PROJECTION_BATCH = 6_000


def bootstrap(app: web.Application, settings: AvailabilitySettings) -> None:
    """Register every resource the service needs on the app's lifecycle, in order."""
    app.cleanup_ctx.append(postgres_ctx(settings, SERVICE, MIGRATIONS, SESSION))
    app.cleanup_ctx.append(publisher_ctx(settings, SERVICE))
    app.cleanup_ctx.append(outbox_relay_ctx(settings, SERVICE))
    app.cleanup_ctx.append(_calendars_ctx)
    wire_bookings(app, settings, SOURCE)  # bookings: API services, key sweeper, feedback consumers
    for key, topic, short, handler, batch_handler in PROJECTION_CONSUMERS:
        app.cleanup_ctx.append(
            consumer_ctx(key, _projection_runner(settings, topic, short, handler, batch_handler))
        )


def _projection_runner(
    settings: AvailabilitySettings,
    topic: str,
    short: str,
    handler: Handler[AvailabilityWork],
    batch_handler: BatchHandler[AvailabilityWork] | None,
) -> Callable[[web.Application], ConsumerRunner[AvailabilityWork]]:
    def make(app: web.Application) -> ConsumerRunner[AvailabilityWork]:
        return catalogue_consumer(
            app,
            settings,
            group_id=f"availability-projections-{short}",
            topic=topic,
            handler=handler,
            bind=PostgresUnitOfWork(app[POOL], SOURCE, AvailabilityWork).bind,
            batch_handler=batch_handler,
            batch_max_records=PROJECTION_BATCH if batch_handler is not None else None,
        )

    return make


async def _calendars_ctx(app: web.Application) -> AsyncIterator[None]:
    """Booking calendars' CRUD (after the pool)."""
    uow = PostgresUnitOfWork(app[POOL], SOURCE, AvailabilityWork)
    app[CALENDARS] = CalendarsService(uow, lambda: datetime.now(UTC))
    yield
