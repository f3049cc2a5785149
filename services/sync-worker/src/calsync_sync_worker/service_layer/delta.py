"""Delta rounds: read what changed in a calendar, publish it, advance the delta link, together.

A round reads ``calendarView/delta`` from the stored delta link (or, the first time, after a 410
``syncStateNotFound`` and whenever the window needs rebasing, from scratch over the window),
hydrates thin occurrences from their series masters, normalises, and then in ONE transaction puts
the events in the outbox and stores the new delta link: a crash loses nothing and publishes
nothing twice. A read from scratch is published as a paged resync, so consumers also drop what
vanished. Rounds are leased per calendar; notifications only make a round due (so duplicates,
bursts and reordering coalesce), and every calendar gets a round at least every ``periodic``
(jittered), which repairs lost notifications and cancellations Graph never reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

from prometheus_client import Counter, Histogram

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.calendar_events import CalendarEventRemoved
from calsync_common.contracts.sync_status import CalendarSyncStatus
from calsync_common.loops import HELD_ELSEWHERE_S, RoundLoop
from calsync_common.ports import UnitOfWork
from calsync_common.transient import REFUSED_BY_DATABASE, TRANSIENT, RetryLater
from calsync_sync_worker.adapters.access_tokens import ConnectionTokenError
from calsync_sync_worker.adapters.graph_client import (
    GraphClient,
    GraphError,
    GraphNotFound,
    SyncStateGone,
)
from calsync_sync_worker.adapters.repository import FinishedRound, RoundWork
from calsync_sync_worker.domain.full_read import full_read_events
from calsync_sync_worker.domain.normalize import (
    MASTER_SELECT,
    MalformedGraphItem,
    NormalizedBatch,
    SyncWindow,
    normalize_delta_items,
)
from calsync_sync_worker.domain.series import MappingMasterLookup, missing_master_ids
from calsync_sync_worker.domain.subscriptions import Policy, retry_at
from calsync_sync_worker.domain.time_zones import UnknownTimeZone
from calsync_sync_worker.service_layer.two_way import booking_changes
from calsync_sync_worker.service_layer.unit_of_work import SyncWork

log = logging.getLogger(__name__)
ROUNDS = Counter("calsync_delta_rounds_total", "Delta rounds", ["kind", "outcome"])
ROUND_SECONDS = Histogram("calsync_delta_round_seconds", "Duration of a delta round", ["kind"])
EVENTS = Counter("calsync_delta_events_total", "Calendar events published", ["type"])
#: How long a calendar of an unusable connection waits when no snapshot wakes it earlier.
PARKED = timedelta(hours=6)


@dataclass(frozen=True)
class DeltaConfig:
    window_back: timedelta = timedelta(days=1)
    window_ahead: timedelta = timedelta(days=365)
    #: A round at least this often per calendar, whatever notifications say (± jitter).
    periodic: timedelta = timedelta(minutes=15)
    jitter: float = 0.2
    #: Read from scratch (a new window) at least this often: it rebases the window and repairs
    #: what delta never reported (Graph may omit a cancelled occurrence altogether).
    rebase_after: timedelta = timedelta(hours=6)
    every_s: float = 1.0
    lease_s: float = 120.0
    #: Rounds running at once (each mailbox's gate still lets 4 requests through). A finished
    #: round's place is claimed again at once: waiting for a whole claimed batch to finish kept
    #: 1,000 busy calendars seconds behind (bench). The service sets it (delta_concurrency).
    batch: int = 50


@dataclass(frozen=True)
class _Read:
    items: list[dict[str, Any]]
    delta_link: str
    window: SyncWindow
    full: bool


class DeltaRunner(RoundLoop):
    def __init__(
        self,
        uow: UnitOfWork[SyncWork],
        graph: GraphClient,
        clock: Callable[[], datetime],
        *,
        owner: str,
        config: DeltaConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config or DeltaConfig()
        super().__init__("delta", every_s=self._config.every_s, batch=self._config.batch)
        self._uow = uow
        self._graph = graph
        self._clock = clock
        self._owner = owner
        self._rng = rng or random.Random()  # noqa: S311 (jitter)
        self._backoff = Policy(backoff=timedelta(seconds=10), max_backoff=timedelta(minutes=10))
        self._running: set[asyncio.Task[None]] = set()
        self._crashed: BaseException | None = None
        #: The last claim filled every free place (more may be due), or a round finished with
        #: its calendar due again: then a finished round wakes the loop to claim. Otherwise
        #: nothing became due that its maker does not announce (a notification's commit wakes
        #: the loop; periodic rounds come due on the loop's ``every_s``), and a claim per
        #: finished round would only find nothing.
        self._backlog = False
        self._due_again = False

    async def run(self) -> None:
        """Rounds until stopped, then the ones still running are let finish (their leases
        would otherwise hold their calendars until they expire)."""
        try:
            await super().run()
        finally:
            running = list(self._running)
            try:
                await asyncio.gather(*running, return_exceptions=True)
            except asyncio.CancelledError:
                for task in running:
                    task.cancel()
                raise

    async def round(self) -> int:
        """Claim due calendars for the places free among :attr:`DeltaConfig.batch` running
        rounds, and start their rounds; a finished round wakes the loop when more may be due
        (see ``_backlog``)."""
        if self._crashed is not None:
            raise self._crashed  # a round's bug ends the loop, as it would have inline
        room = self._config.batch - len(self._running)
        if room <= 0:
            await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
            return self._config.batch  # look again at once
        self._due_again = False
        async with self._uow.autocommit() as work:  # one statement
            claims = await work.sync.claim_rounds(self._owner, self._config.lease_s, room)
        due = claims.items
        if claims.left_due:
            self.look_again_in(HELD_ELSEWHERE_S)
        self._backlog = len(due) == room
        for w in due:
            task = asyncio.create_task(self.sync(w), name=f"delta {w.calendar_id}")
            self._running.add(task)
            task.add_done_callback(self._finished)
        # A full claim may have left more due: claim again at once (the loop does, on batch).
        return self._config.batch if len(due) == room else len(due)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            if isinstance(exc, TRANSIENT):
                log.warning("delta round failed", extra={"error": type(exc).__name__})
            else:
                self._crashed = exc
        if self._backlog or self._due_again or self._crashed is not None:
            self.wake()

    async def sync(self, w: RoundWork) -> None:
        try:
            await self._round(w)
        except TRANSIENT:
            # The database (or the broker, or the connector) failed the round: give its lease
            # up at once if the database answers, so the calendar is read again after a short
            # backoff (or at once on its next notification) rather than when the lease runs
            # out minutes later; if it does not answer, the lease's end frees the calendar.
            retry = retry_at(w.failures + 1, self._clock(), self._backoff)
            with contextlib.suppress(*TRANSIENT):
                async with self._uow() as work:
                    await work.sync.release_round(self._owner, w, retry)
            raise

    async def _round(self, w: RoundWork) -> None:
        kind = "full" if w.delta_link is None else "delta"
        started = self._clock()
        try:
            read = await self._read(w, started)
            kind = "full" if read.full else "delta"
            batch = await self._normalise(w, read, started)
            events: list[EventPayload] = (
                full_read_events(
                    [batch],
                    connection_id=w.connection_id,
                    calendar_id=w.calendar_id,
                    window=read.window,
                    observed_at=started,
                    resync_id=uuid4(),
                )
                if read.full
                else list(batch.events)
            )
        except (GraphError, ConnectionTokenError, MalformedGraphItem, UnknownTimeZone) as exc:
            await self._failed(w, started, exc)
            ROUNDS.labels(kind, "failed").inc()
            return
        try:
            await self._commit(w, read, batch, events, started)
        except _LeaseLost:
            log.warning("delta round outlived its lease; another replica redoes it")
            ROUNDS.labels(kind, "lease_lost").inc()
            return
        except TRANSIENT:
            raise
        except REFUSED_BY_DATABASE as exc:
            # Not the server's state but this round's data or our SQL: a bug. This calendar is
            # retried with a growing backoff and reported stale; the others go on.
            log.exception(
                "delta round refused by the database",
                extra={"connection_id": str(w.connection_id), "sqlstate": _sqlstate(exc)},
            )
            await self._failed(w, started, exc)
            ROUNDS.labels(kind, "failed").inc()
            return
        for event in events:
            EVENTS.labels(type(event).__name__).inc()
        ROUNDS.labels(kind, "done").inc()
        ROUND_SECONDS.labels(kind).observe((self._clock() - started).total_seconds())

    async def _commit(
        self,
        w: RoundWork,
        read: _Read,
        batch: NormalizedBatch,
        events: list[EventPayload],
        started: datetime,
    ) -> None:
        """The round's events and its new delta link: one transaction, or nothing. Changes
        users made to calsync's own events follow the round's records (two-way sync)."""
        async with self._uow() as work:
            events = events + await booking_changes(
                work,
                connection_id=w.connection_id,
                calendar_id=w.calendar_id,
                records=batch.events,
                full_read=read.window if read.full else None,
                observed_at=started,
            )
            finished = await work.sync.finish_round(
                self._owner,
                w,
                delta_link=read.delta_link,
                window_start=read.window.start,
                window_end=read.window.end,
                synced_at=started,
                next_round_at=self._next_periodic(started),
                failures=0,
                error=None,
            )
            if finished is None:  # the lease was lost meanwhile: another replica owns this round
                raise _LeaseLost
            await work.outbox.add_many([*events, _status(w, finished, started, None)])
        if finished.due_again:
            self._due_again = True

    async def _read(self, w: RoundWork, now: datetime) -> _Read:
        # The window was set ``window_back`` before its start; rebase once it drifted too far.
        rebase = (
            w.window_start is None
            or now - (w.window_start + self._config.window_back) > self._config.rebase_after
        )
        if w.delta_link is not None and w.window_start and w.window_end and not rebase:
            window = SyncWindow(w.window_start, w.window_end)
            try:
                items, link = await self._pages(w, w.delta_link)
            except SyncStateGone:
                log.info("delta link expired; reading the window from scratch")
            else:
                return _Read(items, link, window, full=False)
        window = SyncWindow(now - self._config.window_back, now + self._config.window_ahead)
        query = urlencode(
            {
                "startDateTime": window.start.isoformat().replace("+00:00", "Z"),
                "endDateTime": window.end.isoformat().replace("+00:00", "Z"),
            }
        )
        items, link = await self._pages(
            w, f"/me/calendars/{w.calendar_id}/calendarView/delta?{query}"
        )
        return _Read(items, link, window, full=True)

    async def _pages(self, w: RoundWork, first: str) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        url: str = first
        while True:
            page = await self._graph.get(
                str(w.connection_id), url, prefer=("odata.maxpagesize=200",)
            )
            items.extend(page.get("value", []))
            if "@odata.nextLink" in page:
                url = str(page["@odata.nextLink"])
                continue
            return items, str(page["@odata.deltaLink"])

    async def _normalise(self, w: RoundWork, read: _Read, now: datetime) -> NormalizedBatch:
        masters: dict[str, dict[str, Any]] = {}
        gone: set[str] = set()
        for master_id in missing_master_ids(read.items, masters):
            try:
                masters[master_id] = await self._graph.get(
                    str(w.connection_id), f"/me/events/{master_id}?$select={MASTER_SELECT}"
                )
            except GraphNotFound:
                gone.add(master_id)  # the series was deleted: its occurrences are gone too
        batch = normalize_delta_items(
            read.items,
            connection_id=w.connection_id,
            calendar_id=w.calendar_id,
            window=read.window,
            mailbox_time_zone=w.time_zone,
            observed_at=now,
            masters=MappingMasterLookup(masters),
        )
        if not batch.deferred_ids:
            return batch
        removed = [
            CalendarEventRemoved(
                connection_id=w.connection_id,
                calendar_id=w.calendar_id,
                event_id=event_id,
                observed_at=now,
            )
            for event_id in batch.deferred_ids
        ]
        if set(batch.missing_master_ids) - gone:
            raise MalformedGraphItem(batch.missing_master_ids[0], "series master unavailable")
        return NormalizedBatch(events=(*batch.events, *removed))

    def _next_periodic(self, now: datetime) -> datetime:
        spread = 1 + self._config.jitter * (2 * self._rng.random() - 1)
        return now + self._config.periodic * spread

    async def _failed(self, w: RoundWork, now: datetime, exc: BaseException) -> None:
        code = getattr(exc, "code", None) or _sqlstate(exc) or ""
        error = f"{type(exc).__name__}: {code}".rstrip(": ")
        log.warning(
            "delta round failed; retried later, calendar marked stale",
            extra={"connection_id": str(w.connection_id), "error": error},
        )
        # A connection the connector cannot use (gone, or needing a new sign-in) is not retried
        # soon: its next snapshot re-plans the calendar (and makes a round due when resumed).
        unusable = isinstance(exc, ConnectionTokenError) and not isinstance(exc, RetryLater)
        retry = now + PARKED if unusable else retry_at(w.failures + 1, now, self._backoff)
        async with self._uow() as work:
            finished = await work.sync.finish_round(
                self._owner,
                w,
                delta_link=w.delta_link,
                window_start=w.window_start,
                window_end=w.window_end,
                synced_at=None,
                next_round_at=retry,
                failures=w.failures + 1,
                error=error[:500],
            )
            if finished is not None:
                await work.outbox.add(_status(w, finished, now, error))


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def _status(
    w: RoundWork, finished: FinishedRound, now: datetime, error: str | None
) -> CalendarSyncStatus:
    return CalendarSyncStatus(
        connection_id=w.connection_id,
        calendar_id=w.calendar_id,
        status="healthy" if error is None else "stale",
        subscription=finished.subscription,
        subscription_expires_at=finished.subscription_expires_at,
        last_synced_at=now if error is None else None,
        last_error=error[:500] if error else None,
        changed_at=now,
    )


class _LeaseLost(Exception):
    """The round's lease expired and another replica took the calendar: roll this one back."""
