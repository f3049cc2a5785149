"""Booking use cases: book, reschedule, cancel; never two confirmed bookings of a member at once.

Concurrency, chosen deliberately (``../shared/reference/performance-reliability.md`` §2.3 and
``bench/availability_api_bench.py``):

* READ COMMITTED, and a transaction-level advisory lock per member
  (``pg_advisory_xact_lock``, all of a booking's candidate members, in key order) taken *before*
  the availability read. Every later statement of the transaction sees what earlier lock holders
  committed, so the read pre-check (confirmed bookings *and* blocking Outlook time, with the
  calendar's buffers) is exact, and the INSERT that follows never meets a competing insert.
  A POST first reads without the locks and outside any transaction: time it finds already
  taken is answered ``409`` at once (it was taken when read, whatever commits next), its key
  and answer stored in one statement, so on a hot slot the losers never queue behind the
  winner's lock (three statements instead of six); only an attempt that may succeed opens the
  transaction, locks and reads again.
* Why a lock and not only a pre-check: the pre-check alone measured fastest on one table, but
  the Outlook half of the check reads another table (the busy projection), which the exclusion
  constraint does not cover. Without a lock, a booking and a busy row committed at the same
  moment can each miss the other (write skew). The member lock is the one point both writers
  can meet (``bookings_repository.member_lock_id``; the projection may take it shared). On hot
  calendars it also avoids the reference's exclusion-only failure mode (deadlocks between
  inserts, ~1 s stalls, dead tuples): losers are rejected by the read, never by a failed insert.
  Per-member locks cost throughput only on the same member; the benchmark's 10 hot calendars
  hold well above the 2,000 attempts/s target (figures in the bench JSON).
* Locks are taken in sorted key order in one statement, so bookings never deadlock on them;
  round robin locks every candidate (it must know who is free), collective every member.
* The exclusion constraint stays as the backstop. 23P01 (never expected under the lock), 40P01
  and 40001 retry the whole transaction up to :data:`MAX_ATTEMPTS` times; a retry of a 23P01
  re-reads and answers ``slot_unavailable`` with the conflicting intervals; if it still fails,
  ``slot_unavailable`` without them.

Idempotency: the POST's key row is inserted first in the same transaction (a concurrent retry
waits on it), and the answer's exact bytes are stored there before commit. A refusal answered
before the transaction stores its key only if the key is free; a key already held (answered,
or in flight) sends the request down the transaction's path, which answers as the key says.
Answers of errors that depend on a passing condition (``calendar_sync_stale``) are not stored:
the transaction rolls back and the key stays free.

Every change adds its ``calsync.bookings.v1`` events to the outbox in the same transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar
from uuid import UUID, uuid4

import asyncpg

from calsync_availability.adapters import bookings_repository as repo
from calsync_availability.adapters.busy_queries import booking_conflicts
from calsync_availability.domain.booking_calendars import BookingCalendar
from calsync_availability.domain.bookings import (
    REPLAYABLE_ELSEWHERE,
    Booking,
    BookingCancelledError,
    BookingError,
    BookingNotFound,
    BusyInterval,
    CalendarChanged,
    CalendarSyncStale,
    Conflict,
    Hold,
    IdempotencyKeyReused,
    MembersWindow,
    SlotNotOffered,
    SlotUnavailable,
    WriteBack,
    blocked_window,
    check_times,
    conflicts_of,
    members_to_hold,
    public_conflicts,
)
from calsync_availability.domain.errors import AvailabilityError
from calsync_availability.domain.intervals import Interval
from calsync_availability.domain.projection import BookingConflict
from calsync_availability.domain.slots import (
    free_slots,
    require_outlook_supported,
    round_robin_order,
)
from calsync_common.contracts.bookings import (
    BookingCancelled,
    BookingConfirmed,
    BookingConflictDetected,
    BookingRescheduled,
)
from calsync_common.loops import RoundLoop
from calsync_common.postgres import Connection
from calsync_common.postgres.uow import PostgresUnitOfWork, PostgresWork
from calsync_common.transient import RetryLater

log = logging.getLogger(__name__)

#: Whole-transaction attempts on 40P01 / 40001 / 23P01.
MAX_ATTEMPTS = 5
RETRYABLE = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.ExclusionViolationError,
    CalendarChanged,
)
Clock = Callable[[], datetime]
T = TypeVar("T")


class AvailabilitySources(Protocol):
    """What the booking path reads of the booking calendars and the busy projection (bound to
    their modules by ``adapters/availability_sources.py``)."""

    async def calendar(
        self, conn: Connection, sub_account_id: str, calendar_id: str
    ) -> BookingCalendar:
        """The calendar, held against deletion until the transaction ends; CalendarNotFound."""
        ...

    async def calendar_unlocked(
        self, conn: Connection, sub_account_id: str, calendar_id: str
    ) -> BookingCalendar:
        """The calendar without a lock, perhaps as this replica last read it (only
        :meth:`window` and :meth:`vouch` vouch for it); CalendarNotFound."""
        ...

    async def vouch(self, conn: Connection, calendar: BookingCalendar) -> None:
        """:class:`CalendarChanged` unless ``calendar`` is the stored version (one read)."""
        ...

    async def outlook_busy(
        self,
        conn: Connection,
        sub_account_id: str,
        user_ids: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> list[BusyInterval]: ...

    async def window(
        self,
        conn: Connection,
        sub_account_id: str,
        user_ids: Sequence[str],
        start: datetime,
        end: datetime,
        calendar: BookingCalendar,
        now: datetime,
    ) -> MembersWindow:
        """In one read: the members' confirmed bookings and, where the calendar uses them,
        blocking Outlook time over ``[start, end)``; and, under a ``fail_closed`` stale policy,
        the members whose Conflict Calendars are staler than the calendar allows.
        :class:`CalendarChanged` when ``calendar`` is not the stored version (in the same
        read): the attempt was planned with another calendar than the one that holds now."""
        ...

    async def sync_preference(
        self, conn: Connection, sub_account_id: str, user_id: str, connection_id: UUID
    ) -> str | None:
        """The sync preference of the member's current connection, if it is ``connection_id``."""
        ...


@dataclass(frozen=True)
class NewBooking:
    booking_calendar_id: str
    start: datetime
    end: datetime
    title: str
    user_id: str | None = None
    #: Only ``True`` or None: asks to use the members' Outlook conflicts (an event calendar
    #: refuses); None uses them wherever the calendar type can.
    use_outlook_conflicts: bool | None = None


@dataclass(frozen=True)
class _Plan:
    calendar: BookingCalendar
    candidates: list[str]
    all_of_them: bool
    window: Interval
    now: datetime


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of the POST as stored for the key: status and the exact body bytes."""

    status: int
    body: bytes
    replayed: bool = False


@dataclass(frozen=True)
class BookingView:
    booking: Booking
    writebacks: dict[UUID, WriteBack]
    conflicts: list[BookingConflict]


#: Renders what the POST answers (a booking, or a replayable error) to status and bytes.
Render = Callable[[BookingView | AvailabilityError], tuple[int, bytes]]


def request_hash(method: str, path: str, body: dict[str, Any]) -> bytes:
    """What "the same request" means for a key: method, path and the validated body."""
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


class Bookings:
    def __init__(
        self,
        uow: PostgresUnitOfWork[Any],
        sources: AvailabilitySources,
        clock: Clock,
        *,
        idempotency_retention_s: float,
    ) -> None:
        self.uow = uow
        self.sources = sources
        self.clock = clock
        self.retention_s = idempotency_retention_s

    # --- POST ------------------------------------------------------------------------------

    async def book(
        self, sub_account_id: str, key: str, fingerprint: bytes, new: NewBooking, render: Render
    ) -> Answer:
        refused = await self._refused_at_once(sub_account_id, key, fingerprint, new, render)
        if refused is not None:
            return refused

        async def attempt() -> Answer:
            async with self.uow() as work:
                stored = await repo.claim_key(
                    work.connection, sub_account_id, key, fingerprint, self.retention_s
                )
                if stored is not None:
                    if stored.request_hash != fingerprint:
                        raise IdempotencyKeyReused(
                            "this Idempotency-Key was first used with another request"
                        )
                    return Answer(stored.status, stored.body, replayed=True)
                try:
                    # The booking's answer is stored with its holds, in one statement.
                    return await self._book(work, sub_account_id, key, new, render)
                except (BookingError, *REPLAYABLE_ELSEWHERE) as exc:
                    if isinstance(exc, BookingError) and not exc.replayable:
                        raise
                    status, body = render(exc)
                await repo.store_answer(work.connection, sub_account_id, key, status, body)
                return Answer(status, body)

        return await self._with_retries(attempt)

    async def _refused_at_once(
        self, sub_account_id: str, key: str, fingerprint: bytes, new: NewBooking, render: Render
    ) -> Answer | None:
        """Time already taken is refused before any transaction or lock: what this read sees
        committed was taken when it ran, so ``409`` is a true answer whatever commits next. On
        a hot slot most attempts end here, in two statements (the members' time with the
        calendar's version, the key with its answer; the calendar itself usually comes from
        this replica's cache), instead of queueing behind the members' locks to learn the
        same. None: the booking may succeed, or another answer is due (an error, a key
        already used): the transaction of :meth:`book` decides, from the start."""
        async with self.uow.connection() as conn:
            try:
                plan = await self._plan(conn, sub_account_id, new, answering=False)
                eligible, busy = await self._read(
                    conn, plan.calendar, plan.candidates, plan.all_of_them, plan.window, plan.now
                )
                _free_members(plan.window, plan.all_of_them, eligible, busy)
            except SlotUnavailable as exc:
                status, body = render(exc)
            except (AvailabilityError, CalendarChanged):
                return None  # the transaction plans from the stored calendar
            else:
                return None
            stored = await repo.store_first_answer(
                conn, sub_account_id, key, fingerprint, self.retention_s, status, body
            )
        return Answer(status, body) if stored else None

    async def _plan(
        self, conn: Connection, sub_account_id: str, new: NewBooking, *, answering: bool
    ) -> _Plan:
        """The calendar (perhaps cached: the read of time checks its version), the members
        that may take the booking and the time it blocks; or the error that refuses it before
        any read of time. ``answering``: such an error will be the answer, so a cached calendar
        that refuses is first checked against the stored version (:class:`CalendarChanged`)."""
        check_times(new.start, new.end)
        calendar = await self.sources.calendar_unlocked(
            conn, sub_account_id, new.booking_calendar_id
        )
        try:
            return self._plan_of(calendar, new)
        except (BookingError, *REPLAYABLE_ELSEWHERE):
            if answering:
                await self.sources.vouch(conn, calendar)
            raise

    def _plan_of(self, calendar: BookingCalendar, new: NewBooking) -> _Plan:
        if new.use_outlook_conflicts:
            require_outlook_supported(calendar)
        candidates, all_of_them = members_to_hold(calendar, new.user_id)
        now = self.clock()
        candidates = _offered_to(calendar, candidates, all_of_them, new.start, new.end, now)
        window = blocked_window(calendar, new.start, new.end)
        return _Plan(calendar, candidates, all_of_them, window, now)

    async def _book(
        self, work: PostgresWork, sub_account_id: str, key: str, new: NewBooking, render: Render
    ) -> Answer:
        """Lock, read, and (free) the holds with the key's answer, then their events: under the
        members' locks, four round trips with the commit (each one holds every attempt queued
        on those members)."""
        conn = work.connection
        plan = await self._plan(conn, sub_account_id, new, answering=True)
        calendar, candidates, all_of_them = plan.calendar, plan.candidates, plan.all_of_them
        window, now = plan.window, plan.now
        # The calendar held against deletion and the members locked, in one statement; then
        # their time read with the calendar's version (CalendarChanged: planned again, from the
        # stored calendar): the exact check (a lock-free one refused what was already taken,
        # see _refused_at_once).
        await repo.lock_members(conn, sub_account_id, candidates, calendar_id=calendar.id)
        eligible, busy = await self._read(conn, calendar, candidates, all_of_them, window, now)
        free = _free_members(window, all_of_them, eligible, busy)
        if all_of_them:
            chosen = free
        else:
            last = None
            if len(free) > 1:
                last = await repo.last_assigned(conn, sub_account_id, str(calendar.id))
            chosen = [round_robin_order(calendar, free, last)[0]]
        group_id = uuid4()
        holds = [
            repo.NewHold(group_id if len(chosen) == 1 else uuid4(), user_id) for user_id in chosen
        ]
        # As load_group would read it back (times in UTC, holds by user id), without the read.
        booking = Booking(
            group_id=group_id,
            sub_account_id=sub_account_id,
            booking_calendar_id=str(calendar.id),
            start=new.start.astimezone(UTC),
            end=new.end.astimezone(UTC),
            title=new.title,
            status="confirmed",
            version=1,
            changed_by="api",
            created_at=now,
            updated_at=now,
            holds=tuple(
                Hold(h.booking_id, h.user_id, 1, "confirmed")
                for h in sorted(holds, key=lambda h: h.user_id)
            ),
        )
        status, body = render(BookingView(booking, {}, []))
        await repo.insert_holds(
            conn,
            sub_account_id,
            str(calendar.id),
            group_id,
            holds,
            new.start,
            new.end,
            new.title,
            now,
            answer=repo.KeyAnswer(key, status, body),
        )
        await work.outbox.add_many(
            [
                BookingConfirmed(
                    **_identity(hold, sub_account_id, str(calendar.id), 1, now),
                    start=new.start,
                    end=new.end,
                    title=new.title,
                )
                for hold in holds
            ],
            new_keys=True,  # each hold's id was made just now: its events start at 1
        )
        return Answer(status, body)

    async def _read(
        self,
        conn: Connection,
        calendar: BookingCalendar,
        candidates: list[str],
        all_of_them: bool,
        window: Interval,
        now: datetime,
    ) -> tuple[list[str], list[BusyInterval]]:
        """The candidates the calendar's stale policy lets the booking take, and their busy
        time over ``window`` (one read, under the members' locks). ``fail_closed``: round robin
        passes over a member whose Outlook data it cannot vouch for; a booking that needs that
        member fails with ``calendar_sync_stale``. ``proceed``: everyone."""
        found = await self.sources.window(
            conn, calendar.sub_account_id, candidates, window.start, window.end, calendar, now
        )
        stale = found.stale
        eligible = [u for u in candidates if u not in stale]
        if stale and (all_of_them or not eligible):
            raise CalendarSyncStale(
                "a member's conflict calendar is staler than the calendar allows",
                stale=[{"user_id": u, "calendars": stale[u]} for u in sorted(stale)],
            )
        kept = set(eligible)
        return eligible, [b for b in found.busy if b.user_id in kept]

    # --- GET, PATCH, DELETE ----------------------------------------------------------------

    async def view(self, sub_account_id: str, group_id: UUID) -> BookingView:
        async with self.uow() as work:
            booking = await repo.load_group(work.connection, sub_account_id, group_id)
            if booking is None:
                raise BookingNotFound()
            return await _view(work.connection, booking)

    async def reschedule(
        self, sub_account_id: str, group_id: UUID, start: datetime, end: datetime
    ) -> BookingView:
        async def attempt() -> BookingView:
            async with self.uow() as work:
                booking = await self._reschedule(work, sub_account_id, group_id, start, end)
                return await _view(work.connection, booking)

        return await self._with_retries(attempt)

    async def _reschedule(
        self,
        work: PostgresWork,
        sub_account_id: str,
        group_id: UUID,
        start: datetime,
        end: datetime,
    ) -> Booking:
        conn = work.connection
        check_times(start, end)
        found = await repo.load_group(conn, sub_account_id, group_id)
        if found is None:
            raise BookingNotFound()
        await repo.lock_members(conn, sub_account_id, found.user_ids)
        booking = await repo.load_group(conn, sub_account_id, group_id, lock=True)
        assert booking is not None  # holds are never deleted
        if booking.status == "cancelled":
            raise BookingCancelledError("a cancelled booking cannot be rescheduled")
        calendar = await self.sources.calendar(conn, sub_account_id, booking.booking_calendar_id)
        now = self.clock()
        _offered_to(calendar, booking.user_ids, True, start, end, now)
        window = blocked_window(calendar, start, end)
        _, busy = await self._read(conn, calendar, booking.user_ids, True, window, now)
        conflicts = conflicts_of(window, busy, ignore_group=[booking.group_id])
        if conflicts:
            raise SlotUnavailable(conflicts=public_conflicts(conflicts))
        await move(work, booking, start, end, now, "api")
        moved = await repo.load_group(conn, sub_account_id, group_id)
        assert moved is not None
        return moved

    async def cancel(self, sub_account_id: str, group_id: UUID) -> BookingView:
        async def attempt() -> BookingView:
            async with self.uow() as work:
                found = await repo.load_group(work.connection, sub_account_id, group_id)
                if found is None:
                    raise BookingNotFound()
                # The member lock, as for every change of a booking's time: a conflict the
                # projection records concurrently (under that lock) is then seen and resolved
                # here, never left open on a cancelled booking.
                await repo.lock_members(work.connection, sub_account_id, found.user_ids)
                booking = await repo.load_group(
                    work.connection, sub_account_id, group_id, lock=True
                )
                assert booking is not None  # holds are never deleted
                if booking.status == "confirmed":
                    await cancel(work, booking, self.clock(), "api")
                    booking = await repo.load_group(work.connection, sub_account_id, group_id)
                    assert booking is not None
                return await _view(work.connection, booking)

        return await self._with_retries(attempt)

    async def _with_retries(self, attempt: Callable[[], Awaitable[T]]) -> T:
        for n in range(1, MAX_ATTEMPTS + 1):
            try:
                return await attempt()
            except RETRYABLE as exc:
                if n == MAX_ATTEMPTS:
                    if isinstance(exc, asyncpg.ExclusionViolationError):
                        raise SlotUnavailable("the slot was taken meanwhile") from None
                    if isinstance(exc, CalendarChanged):
                        raise RetryLater("the booking calendar kept changing") from exc
                    raise
                log.info("booking transaction retried", extra={"error": type(exc).__name__})
                await asyncio.sleep(random.uniform(0, 0.002 * n))  # noqa: S311 (jitter)
        raise AssertionError("unreachable")


# --- shared by the API and the two-way consumer ----------------------------------------------


def _offered_to(
    calendar: BookingCalendar,
    candidates: list[str],
    all_of_them: bool,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[str]:
    """The candidates whose working hours offer exactly ``[start, end)`` (slot length, grid,
    minimum notice; busy time aside), or :class:`SlotNotOffered`."""
    slots = free_slots(calendar, {}, start=start, end=end, now=now)
    offered = next((s for s in slots if s.start == start and s.end == end), None)
    members = set(offered.members) if offered else set()
    kept = [u for u in candidates if u in members]
    if not kept or (all_of_them and len(kept) < len(candidates)):
        raise SlotNotOffered(
            f"the calendar offers {calendar.slot_length} slots on its grid within the members'"
            f" working hours, at least {calendar.minimum_notice} ahead"
        )
    return kept


def _free_members(
    window: Interval, all_of_them: bool, eligible: list[str], busy: list[BusyInterval]
) -> list[str]:
    """The eligible members free over ``window``: all of them when the booking needs all (else
    :class:`SlotUnavailable`), or those free, at least one (else :class:`SlotUnavailable`)."""
    conflicts = conflicts_of(window, busy)
    busy_members = {c.user_id for c in conflicts}
    free = [u for u in eligible if u not in busy_members]
    if (all_of_them and conflicts) or not free:
        raise SlotUnavailable(conflicts=public_conflicts(conflicts))
    return free


async def _view(conn: Connection, booking: Booking) -> BookingView:
    ids = [h.booking_id for h in booking.holds]
    return BookingView(
        booking,
        await repo.latest_writebacks(conn, ids),
        await booking_conflicts(conn, ids),
    )


ChangedByValue = Literal["api", "outlook"]


async def move(
    work: PostgresWork,
    booking: Booking,
    start: datetime,
    end: datetime,
    now: datetime,
    changed_by: ChangedByValue,
    outlook_change: dict[str, Any] | None = None,
) -> int:
    version = booking.version + 1
    await repo.update_group(
        work.connection,
        booking,
        start=start,
        end=end,
        status="confirmed",
        version=version,
        changed_by=changed_by,
        now=now,
        outlook_change=outlook_change,
    )
    if (start, end) != (booking.start, booking.end):
        # The booking left the time its conflicts were about; any at the new time are recorded
        # anew. (Re-published at its own time, a rejected two-way move, it keeps them open.)
        await repo.resolve_conflicts(work.connection, [h.booking_id for h in booking.holds], now)
    await work.outbox.add_many(
        [
            BookingRescheduled(**_group_identity(booking, hold, version, now), start=start, end=end)
            for hold in booking.holds
        ]
    )
    return version


async def cancel(
    work: PostgresWork,
    booking: Booking,
    now: datetime,
    changed_by: ChangedByValue,
    outlook_change: dict[str, Any] | None = None,
) -> None:
    version = booking.version + 1
    await repo.update_group(
        work.connection,
        booking,
        start=booking.start,
        end=booking.end,
        status="cancelled",
        version=version,
        changed_by=changed_by,
        now=now,
        outlook_change=outlook_change,
    )
    await repo.resolve_conflicts(work.connection, [h.booking_id for h in booking.holds], now)
    await work.outbox.add_many(
        [BookingCancelled(**_group_identity(booking, hold, version, now)) for hold in booking.holds]
    )


async def report_conflicts(
    work: PostgresWork, booking: Booking, version: int, busy: Sequence[BusyInterval], now: datetime
) -> int:
    """Record blocking Outlook time over the booking's holds and publish each new one."""
    holds = {h.user_id: h for h in booking.holds}
    published = 0
    for b in busy:
        hold = holds.get(b.user_id)
        if b.source != "outlook" or hold is None or b.connection_id is None:
            continue
        conflict = Conflict(
            booking_id=hold.booking_id,
            booking_version=version,
            connection_id=b.connection_id,
            calendar_id=b.calendar_id or "",
            event_id=b.event_id or "",
            show_as=b.show_as or "busy",
            start=max(b.start, booking.start),
            end=min(b.end, booking.end),
            detected_at=now,
        )
        if await repo.record_conflict(work.connection, conflict):
            await work.outbox.add(
                BookingConflictDetected(
                    **_group_identity(booking, hold, version, now),
                    start=booking.start,
                    end=booking.end,
                    connection_id=b.connection_id,
                    calendar_id=conflict.calendar_id,
                    event_id=conflict.event_id,
                    show_as=conflict.show_as,
                    conflict_start=conflict.start,
                    conflict_end=conflict.end,
                )
            )
            published += 1
    return published


class IdempotencyKeySweeper(RoundLoop):
    """Deletes idempotency keys past their retention, a batch per round."""

    def __init__(self, uow: PostgresUnitOfWork[Any], retention_s: float, every_s: float) -> None:
        super().__init__("idempotency key sweep", every_s=every_s, batch=1000)
        self.uow = uow
        self.retention_s = retention_s

    async def round(self) -> int:
        async with self.uow() as work:
            return await repo.sweep_keys(work.connection, self.retention_s, self.batch)


def _identity(
    hold: Hold | repo.NewHold,
    sub_account_id: str,
    booking_calendar_id: str,
    version: int,
    now: datetime,
) -> dict[str, Any]:
    """What every ``calsync.bookings.v1`` event of one member's hold carries."""
    return {
        "booking_id": hold.booking_id,
        "version": version,
        "sub_account_id": sub_account_id,
        "user_id": hold.user_id,
        "booking_calendar_id": booking_calendar_id,
        "occurred_at": now,
    }


def _group_identity(booking: Booking, hold: Hold, version: int, now: datetime) -> dict[str, Any]:
    return _identity(hold, booking.sub_account_id, booking.booking_calendar_id, version, now)
