"""Bookings written back to the members' Linked Calendars.

The consumer of ``calsync.bookings.v1`` only records what each booking wants (newest version
wins) and makes its write due, in the transaction that stores the offsets. The
:class:`WriteBackRunner` then makes the Graph calls, leased per booking so one replica writes a
booking at a time, and records where the event is together with the outcome it publishes
(``calsync.booking-writebacks.v1``) in one transaction:

- a create carries ``transactionId = calsync-<booking id>``: a create retried after a crash or a
  lost answer finds the first event instead of making a second one;
- updates and deletes address the event calsync stored (ImmutableId); a delete answered 404 is
  done, an update answered 404 (the user deleted the event) creates it again;
- a write that cannot be made now (no connection, a connection needing sign-in, no Linked
  Calendar, write access refused) is parked, its outcome published once, and becomes due again
  when the member's connection snapshot changes; transient failures retry with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter

from calsync_common.contracts.booking_writebacks import (
    BookingWriteBackRecorded,
    WriteBackOutcome,
)
from calsync_common.contracts.bookings import (
    BookingCancelled,
    BookingConfirmed,
    BookingRescheduled,
)
from calsync_common.kafka.consumer import ConsumedEvent, Message
from calsync_common.loops import RoundLoop
from calsync_common.ports import UnitOfWork
from calsync_common.transient import REFUSED_BY_DATABASE, TRANSIENT, RetryLater
from calsync_sync_worker.adapters.access_tokens import ConnectionTokenError
from calsync_sync_worker.adapters.graph_client import (
    GraphAccessDenied,
    GraphClient,
    GraphError,
    GraphNotFound,
    GraphRetryable,
)
from calsync_sync_worker.adapters.write_back_repository import Claimed, Written
from calsync_sync_worker.domain.subscriptions import Policy, retry_at
from calsync_sync_worker.domain.write_back import Decision, Step, Wanted, decide, event_body
from calsync_sync_worker.service_layer.unit_of_work import SyncWork

log = logging.getLogger(__name__)
WRITES = Counter("calsync_write_back_total", "Booking writes to Linked Calendars", ["outcome"])


async def on_booking(work: SyncWork, message: Message) -> None:
    """Record what a booking wants; other events of the topic (conflicts) are not for us."""
    if not isinstance(message, ConsumedEvent):
        return  # bookings are never tombstoned; tolerate one
    event = message.envelope.data
    if isinstance(event, BookingConfirmed | BookingRescheduled | BookingCancelled):
        await work.write_back.receive(event)


@dataclass(frozen=True)
class WriteBackConfig:
    every_s: float = 1.0
    lease_s: float = 45.0
    batch: int = 20
    backoff: timedelta = timedelta(seconds=5)
    max_backoff: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class _Result:
    outcome: WriteBackOutcome
    reason: str | None = None
    written: Written | None = None
    retry: bool = False


class WriteBackRunner(RoundLoop):
    def __init__(
        self,
        uow: UnitOfWork[SyncWork],
        graph: GraphClient,
        clock: Callable[[], datetime],
        *,
        owner: str,
        config: WriteBackConfig | None = None,
    ) -> None:
        self._config = config or WriteBackConfig()
        super().__init__("write-back", every_s=self._config.every_s, batch=self._config.batch)
        self._uow = uow
        self._graph = graph
        self._clock = clock
        self._owner = owner
        self._policy = Policy(backoff=self._config.backoff, max_backoff=self._config.max_backoff)

    async def round(self) -> int:
        async with self._uow.autocommit() as work:  # one statement
            claimed = await work.write_back.claim(
                self._owner, self._config.lease_s, self._config.batch
            )
        # Every write of the round ends (recorded, or its lease given up) before the round does.
        results = await asyncio.gather(*(self._write(c) for c in claimed), return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        return len(claimed)

    async def _write(self, c: Claimed) -> None:
        decision = decide(c.wanted, c.target)
        result = await self._attempt(c.wanted, decision)
        try:
            await self._finish(c, decision, result)
        except TRANSIENT:
            # The write reached Graph (or not) but its record did not commit: a session cut, a
            # restart. Give the lease up at once if the database answers again, so the write
            # is retried after a short backoff instead of when its lease runs out (the retry
            # finds what it made by transactionId); if not, the lease's end frees it.
            await self._release(c)
            raise
        except REFUSED_BY_DATABASE:
            # The record itself is refused (a bug, or data the code let through): this write
            # is retried with a growing backoff, and the other bookings go on.
            log.exception(
                "write-back outcome refused by the database",
                extra={"booking_id": str(c.wanted.booking_id)},
            )
            await self._release(c)

    async def _release(self, c: Claimed) -> None:
        retry = retry_at(c.wanted.failures + 1, self._clock(), self._policy)
        with contextlib.suppress(*TRANSIENT):
            async with self._uow() as work:
                await work.write_back.release(self._owner, c.wanted.booking_id, retry)

    async def _finish(self, c: Claimed, decision: Decision, result: _Result) -> None:
        now = self._clock()
        failures = c.wanted.failures + 1 if result.retry else 0
        due = retry_at(failures, now, self._policy) if result.retry else None
        async with self._uow() as work:
            kept = await work.write_back.finish(
                self._owner,
                c.wanted,
                written=result.written,
                written_at=now if result.written is not None else None,
                outcome=(result.outcome, result.reason),
                due_at=due,
                failures=failures,
            )
            if not kept:
                log.warning("write-back outlived its lease; another replica redoes it")
                return
            repeated = (c.outcome, c.outcome_version, c.outcome_reason) == (
                result.outcome,
                c.wanted.version,
                result.reason,
            )
            if not repeated:  # one outcome per version and reason, not one per retry
                await work.outbox.add(self._outcome(c.wanted, decision, result, now))
        WRITES.labels(result.outcome).inc()

    async def _attempt(self, wanted: Wanted, decision: Decision) -> _Result:
        try:
            return await self._call(wanted, decision)
        except GraphAccessDenied as exc:
            return _Result("failed", exc.code or "access_denied")
        except (GraphRetryable, RetryLater) as exc:
            return _Result("failed", getattr(exc, "code", None) or _name(exc), retry=True)
        except ConnectionTokenError:
            return _Result("skipped", "connection_not_active")
        except GraphError as exc:
            # Refused for a reason retrying will not change soon (a bad request, a calendar
            # gone): parked until the member's connection changes, and said so.
            return _Result("failed", exc.code or f"http_{exc.status}")

    async def _call(self, wanted: Wanted, decision: Decision) -> _Result:
        step = decision.step
        if step is Step.SKIP:
            return _Result("skipped", decision.reason)
        if step is Step.NOTHING_TO_REMOVE:
            return _Result("removed")
        connection = str(decision.connection_id)
        if step is Step.DELETE:
            # Already gone: a retry after a lost answer, or the user deleted it.
            with contextlib.suppress(GraphNotFound):
                await self._graph.delete(connection, f"/me/events/{wanted.event_id}")
            return _Result("removed", written=Written(None, None, None, None, None))
        if step is Step.UPDATE:
            try:
                reply = await self._graph.patch(
                    connection, f"/me/events/{wanted.event_id}", event_body(wanted, create=False)
                )
            except GraphNotFound:
                reply = None  # deleted in Outlook: place the booking again
            if reply is not None:
                return self._written(wanted, decision, str(reply.get("id") or wanted.event_id))
        created = await self._graph.post(
            connection,
            f"/me/calendars/{decision.calendar_id or wanted.calendar_id}/events",
            event_body(wanted, create=True),
            idempotent=True,  # the transactionId makes a retried create find the first event
        )
        calendar = decision.calendar_id or wanted.calendar_id
        return self._written(
            wanted, Decision(step, None, decision.connection_id, calendar), str(created["id"])
        )

    @staticmethod
    def _written(wanted: Wanted, decision: Decision, event_id: str) -> _Result:
        assert wanted.start is not None
        assert wanted.end is not None
        return _Result(
            "written",
            written=Written(
                decision.connection_id,
                decision.calendar_id,
                event_id,
                wanted.start.replace(microsecond=0),  # what Graph keeps of it
                wanted.end.replace(microsecond=0),
            ),
        )

    def _outcome(
        self, wanted: Wanted, decision: Decision, result: _Result, now: datetime
    ) -> BookingWriteBackRecorded:
        written = result.written
        return BookingWriteBackRecorded(
            booking_id=wanted.booking_id,
            booking_version=wanted.version,
            outcome=result.outcome,
            reason=(result.reason or "unknown")[:200] if result.outcome in _NEEDS_REASON else None,
            will_retry=result.retry,
            connection_id=(written.connection_id if written else None) or decision.connection_id,
            calendar_id=(written.calendar_id if written else None) or decision.calendar_id,
            event_id=written.event_id if written else wanted.event_id,
            occurred_at=now,
        )


_NEEDS_REASON = frozenset({"failed", "skipped"})


def _name(exc: BaseException) -> str:
    return type(exc).__name__
