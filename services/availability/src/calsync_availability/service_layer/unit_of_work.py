"""The availability service's unit of work: its repositories beside the outbox, on one
transaction (the consumer runner binds it to its batch transaction; HTTP opens its own)."""

from __future__ import annotations

from calsync_availability.adapters.calendars_repository import CalendarsRepository
from calsync_availability.adapters.projection_repository import ProjectionRepository
from calsync_common.postgres.uow import PostgresWork


class AvailabilityWork(PostgresWork):
    @property
    def projection(self) -> ProjectionRepository:
        return ProjectionRepository(self.connection)

    @property
    def calendars(self) -> CalendarsRepository:
        return CalendarsRepository(self.connection)
