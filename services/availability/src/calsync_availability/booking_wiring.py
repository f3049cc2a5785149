"""The booking write path's part of :func:`bootstrap.bootstrap`: its services, the idempotency
key sweeper, and the consumers of what the sync-worker reports (write-backs, two-way changes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from calsync_availability.adapters.availability_sources import ProjectionSources
from calsync_availability.adapters.calendar_cache import CalendarCache
from calsync_availability.entrypoints.bookings_api import BOOKINGS, QUERIES
from calsync_availability.service_layer.availability_queries import AvailabilityQueries
from calsync_availability.service_layer.booking_feedback import (
    TWO_WAY_GROUP,
    WRITEBACKS_GROUP,
    TwoWayChanges,
    on_writeback,
)
from calsync_availability.service_layer.bookings import Bookings, IdempotencyKeySweeper
from calsync_availability.settings import AvailabilitySettings
from calsync_common.contracts.topics import BOOKING_WRITEBACKS, CALENDAR_EVENTS
from calsync_common.kafka.consumer import ConsumerRunner
from calsync_common.postgres.uow import PostgresUnitOfWork, PostgresWork
from calsync_common.runtime import POOL, background_ctx, catalogue_consumer, consumer_ctx

WRITEBACKS_CONSUMER = web.AppKey("booking_writebacks_consumer", ConsumerRunner)
TWO_WAY_CONSUMER = web.AppKey("two_way_consumer", ConsumerRunner)


def utc_now() -> datetime:
    return datetime.now(UTC)


def wire_bookings(
    app: web.Application,
    settings: AvailabilitySettings,
    source: str,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    def uow(a: web.Application) -> PostgresUnitOfWork[PostgresWork]:
        return PostgresUnitOfWork(a[POOL], source, PostgresWork)

    async def services(a: web.Application) -> AsyncIterator[None]:
        calendars = CalendarCache()  # one per replica, for the POST and free slots
        a[BOOKINGS] = Bookings(
            uow(a),
            ProjectionSources(calendars),
            clock,
            idempotency_retention_s=settings.idempotency_retention_s,
        )
        a[QUERIES] = AvailabilityQueries(
            a[POOL],
            clock,
            stale_after=timedelta(seconds=settings.busy_stale_after_s),
            calendars=calendars,
        )
        yield

    app.cleanup_ctx.append(services)
    app.cleanup_ctx.append(
        background_ctx(
            "idempotency key sweep",
            lambda a: IdempotencyKeySweeper(
                uow(a), settings.idempotency_retention_s, settings.idempotency_sweep_every_s
            ),
        )
    )

    def writebacks(a: web.Application) -> ConsumerRunner[PostgresWork]:
        return catalogue_consumer(
            a,
            settings,
            group_id=WRITEBACKS_GROUP,
            topic=BOOKING_WRITEBACKS.name,
            handler=on_writeback,
            bind=uow(a).bind,
        )

    def two_way(a: web.Application) -> ConsumerRunner[PostgresWork]:
        return catalogue_consumer(
            a,
            settings,
            group_id=TWO_WAY_GROUP,
            topic=CALENDAR_EVENTS.name,
            handler=TwoWayChanges(ProjectionSources(), clock),
            bind=uow(a).bind,
        )

    app.cleanup_ctx.append(consumer_ctx(WRITEBACKS_CONSUMER, writebacks))
    app.cleanup_ctx.append(consumer_ctx(TWO_WAY_CONSUMER, two_way))
