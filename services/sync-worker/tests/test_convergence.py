"""What reaches Kafka equals the emulator's ground truth, whatever Graph and the network do.

Each test signs in a mailbox of its own, lets the sync-worker (the ``test_subscriptions`` rig:
real webhooks, Kafka, PostgreSQL) sync it, and compares the calendar's events as a consumer
would apply them from the outbox with ``/_emulator/users/{id}/calendars/{cid}/busy`` instance by
instance: id, start, end and ``showAs``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_common.runtime import POOL
from calsync_common.testing import eventually
from calsync_sync_worker.adapters.graph_client import RETRIES
from calsync_sync_worker.bootstrap import SOURCE
from calsync_sync_worker.entrypoints.keys import DELTA, SUBSCRIPTIONS
from calsync_sync_worker.service_layer.unit_of_work import SyncWork

from .conftest import Emulator, SignedIn, sign_in
from .test_subscriptions import Rig, published, running_rig

pytestmark = pytest.mark.integration
FMT = "%Y-%m-%dT%H:%M:%S"
BUCHAREST = ZoneInfo("Europe/Bucharest")


@contextlib.contextmanager
def mailbox(graph_emulator: Emulator, time_zone: str = "UTC") -> Iterator[SignedIn]:
    with sign_in(graph_emulator, timeZone=time_zone) as user:
        yield user


@contextlib.asynccontextmanager
async def rig_for(
    infra: Any,
    fresh_database: str,
    graph_emulator: Emulator,
    topic_prefix: str,
    user: SignedIn,
    **overrides: Any,
) -> AsyncIterator[Rig]:
    async with running_rig(
        infra, fresh_database, graph_emulator, user, topic_prefix, delta_every_s=0.2, **overrides
    ) as rig:
        yield rig


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def applied(events: list[dict[str, Any]]) -> dict[str, tuple[datetime, datetime, str]]:
    """Event id → (start, end, showAs), applying the records as a consumer does."""
    state: dict[str, dict[str, Any]] = {}
    listed: set[str] = set()
    for e in events:
        kind = e["type"]
        if kind.endswith("calendar_event.upserted.v1"):
            state[e["event_id"]] = e
        elif kind.endswith("calendar_event.removed.v1"):
            state.pop(e["event_id"], None)
        elif kind.endswith("resync_started.v1"):
            listed = set()
        elif kind.endswith("resync_page.v1"):
            listed.update(e["event_ids"])
        elif kind.endswith("resync_completed.v1"):
            state = {i: v for i, v in state.items() if i in listed}
    return {i: (_utc(e["start"]), _utc(e["end"]), e["show_as"]) for i, e in state.items()}


async def truth(rig: Rig, calendar_id: str) -> dict[str, tuple[datetime, datetime, str]]:
    """The emulator's instances in the sync window (cancelled ones are not there)."""
    now = datetime.now(UTC)
    body = await rig.control(
        "GET",
        f"/_emulator/users/{rig.user.user_id}/calendars/{calendar_id}/busy?"
        f"start={(now - timedelta(hours=20)).strftime(FMT)}Z"
        f"&end={(now + timedelta(days=360)).strftime(FMT)}Z",
    )
    return {
        i["id"]: (_utc(i["start"]), _utc(i["end"]), i["showAs"])
        for i in body["instances"]
        if not i["isCancelled"]
    }


async def converged(rig: Rig, calendar_id: str, timeout_s: float = 40) -> None:
    """Wait until the published calendar equals the ground truth; say how they differ if not."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        got, want = applied(await published(rig, calendar_id)), await truth(rig, calendar_id)
        if got == want and want:
            return
        if asyncio.get_running_loop().time() > deadline:
            extra = {k: got[k] for k in got.keys() - want.keys()}
            missing = {k: want[k] for k in want.keys() - got.keys()}
            wrong = {k: (got[k], want[k]) for k in got.keys() & want.keys() if got[k] != want[k]}
            raise AssertionError(f"extra {extra}\nmissing {missing}\ndiffering {wrong}")
        await asyncio.sleep(0.2)


def timed(subject: str, start: datetime, end: datetime, show_as: str, zone: str) -> dict[str, Any]:
    return {
        "subject": subject,
        "start": {"dateTime": start.strftime(FMT), "timeZone": zone},
        "end": {"dateTime": end.strftime(FMT), "timeZone": zone},
        "showAs": show_as,
    }


async def default_calendar(rig: Rig) -> str:
    calendars = await rig.graph("/me/calendars")
    return str(next(c["id"] for c in calendars["value"] if c["isDefaultCalendar"]))


async def round_now(rig: Rig, calendar_id: str) -> None:
    async with PostgresUnitOfWork(rig.app[POOL], SOURCE, SyncWork)() as work:
        await work.sync.round_due_now(rig.connection_id, calendar_id)
    rig.app[DELTA].wake()


def next_weekday(after: date, weekday: int) -> date:
    return after + timedelta(days=(weekday - after.weekday()) % 7)


def spring_forward(year: int) -> date:
    """The last Sunday of March: the EU's switch to summer time."""
    return next_weekday(date(year, 3, 25), 6)


async def test_series_across_dst_all_day_and_every_show_as_in_a_bucharest_mailbox(
    infra: Any, fresh_database: str, graph_emulator: Emulator, topic_prefix: str
) -> None:
    today = datetime.now(UTC).date()
    switch = spring_forward(today.year if today < spring_forward(today.year) else today.year + 1)
    first_friday = next_weekday(switch - timedelta(days=17), 4)
    zone = "Europe/Bucharest"
    with mailbox(graph_emulator, zone) as user:
        async with rig_for(infra, fresh_database, graph_emulator, topic_prefix, user) as rig:
            cal = await default_calendar(rig)
            events = f"/_emulator/users/{user.user_id}/calendars/{cal}/events"
            # A weekly series at 09:00 Bucharest time, before and after the switch (UTC 07:00
            # then 06:00), and an all-day event on the 23-hour day of the switch.
            nine = datetime.combine(first_friday, datetime.min.time()).replace(hour=9)
            series = timed("Standup", nine, nine + timedelta(hours=1), "busy", zone)
            series["recurrence"] = {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["friday"]},
                "range": {
                    "type": "numbered",
                    "startDate": first_friday.isoformat(),
                    "numberOfOccurrences": 5,
                },
            }
            master = await rig.control("POST", events, series)
            await rig.control(
                "POST",
                events,
                {
                    "subject": "Holiday",
                    "isAllDay": True,
                    "start": {"dateTime": f"{switch.isoformat()}T00:00:00", "timeZone": zone},
                    "end": {
                        "dateTime": f"{(switch + timedelta(days=1)).isoformat()}T00:00:00",
                        "timeZone": zone,
                    },
                    "showAs": "oof",
                },
            )
            base = datetime.combine(first_friday - timedelta(days=3), datetime.min.time())
            for n, show_as in enumerate(["free", "tentative", "busy", "oof", "workingElsewhere"]):
                start = base.replace(hour=8 + n)
                await rig.control(
                    "POST", events, timed(show_as, start, start + timedelta(hours=1), show_as, zone)
                )
            await rig.snapshot(3, (cal,), time_zone=zone)
            await converged(rig, cal)

            got = applied(await published(rig, cal))
            series_ids = {
                e["event_id"]
                for e in await published(rig, cal)
                if e.get("series_master_id") == master["id"]
            }
            standups = sorted(got[i][0] for i in series_ids)
            assert [s.astimezone(BUCHAREST).hour for s in standups] == [9] * 5
            assert {s.hour for s in standups} == {6, 7}  # both sides of the switch
            (holiday,) = [
                (s, e) for s, e, a in got.values() if a == "oof" and e - s >= timedelta(hours=23)
            ]
            assert holiday[1] - holiday[0] == timedelta(hours=23)
            assert holiday[0].astimezone(BUCHAREST).hour == 0
            assert {a for _, _, a in got.values()} >= {
                "free",
                "tentative",
                "busy",
                "oof",
                "workingElsewhere",
            }

            # After the first sync: one occurrence moved to 11:00, one cancelled (delta path).
            occurrences = await rig.graph(
                f"/me/events/{master['id']}/instances?"
                f"startDateTime={first_friday.isoformat()}T00:00:00Z"
                f"&endDateTime={(first_friday + timedelta(days=40)).isoformat()}T00:00:00Z"
            )
            ids = [o["id"] for o in occurrences["value"]]
            moved_day = first_friday + timedelta(days=21)  # after the switch
            eleven = datetime.combine(moved_day, datetime.min.time()).replace(hour=11)
            await rig.control(
                "PATCH",
                f"/_emulator/users/{user.user_id}/events/{ids[3]}",
                {
                    "start": {"dateTime": eleven.strftime(FMT), "timeZone": zone},
                    "end": {
                        "dateTime": (eleven + timedelta(hours=1)).strftime(FMT),
                        "timeZone": zone,
                    },
                },
            )
            await rig.control("DELETE", f"/_emulator/users/{user.user_id}/events/{ids[1]}")
            await round_now(rig, cal)
            await converged(rig, cal)
            got = applied(await published(rig, cal))
            assert ids[1] not in got
            assert got[ids[3]][0] == eleven.replace(tzinfo=BUCHAREST).astimezone(UTC)


@pytest.mark.parametrize(
    ("form", "seconds"), [("seconds", 1), ("fractional", 0.3), ("http-date", 1)]
)
async def test_throttled_rounds_wait_as_told_and_converge(
    infra: Any,
    fresh_database: str,
    graph_emulator: Emulator,
    topic_prefix: str,
    form: str,
    seconds: float,
) -> None:
    with mailbox(graph_emulator) as user:
        async with rig_for(infra, fresh_database, graph_emulator, topic_prefix, user) as rig:
            cal = await default_calendar(rig)
            events = f"/_emulator/users/{user.user_id}/calendars/{cal}/events"
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            for n in range(12):
                at = start + timedelta(days=1 + n)
                await rig.control(
                    "POST", events, timed(f"e{n}", at, at + timedelta(hours=1), "busy", "UTC")
                )
            throttled_before = RETRIES.labels("throttled")._value.get()
            await rig.control(
                "PUT",
                f"/_emulator/faults/users/{user.user_id}",
                {
                    "throttle_rate": 0.4,
                    "retry_after_s": seconds,
                    "retry_after_form": form,
                    "seed": 7,
                },
            )
            try:
                await rig.snapshot(3, (cal,))
                await converged(rig, cal, timeout_s=60)
            finally:
                await rig.control("DELETE", f"/_emulator/faults/users/{user.user_id}")
            assert RETRIES.labels("throttled")._value.get() > throttled_before


async def test_lost_duplicated_and_reordered_notifications_still_converge(
    infra: Any, fresh_database: str, graph_emulator: Emulator, topic_prefix: str
) -> None:
    with mailbox(graph_emulator) as user:
        async with rig_for(
            infra, fresh_database, graph_emulator, topic_prefix, user, periodic_round_s=2.0
        ) as rig:
            cal = await default_calendar(rig)
            events = f"/_emulator/users/{user.user_id}/calendars/{cal}/events"
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            first = start + timedelta(days=1)
            await rig.control(
                "POST", events, timed("seed", first, first + timedelta(hours=1), "busy", "UTC")
            )
            await rig.snapshot(3, (cal,))
            await converged(rig, cal)
            await rig.control(
                "PUT",
                f"/_emulator/faults/users/{user.user_id}",
                {"loss_rate": 0.5, "duplicate_rate": 0.5, "reorder": True, "seed": 11},
            )
            try:
                created = []
                for n in range(10):
                    at = start + timedelta(days=2 + n, hours=n)
                    created.append(
                        await rig.control(
                            "POST",
                            events,
                            timed(f"c{n}", at, at + timedelta(hours=1), "busy", "UTC"),
                        )
                    )
                for e in created[:3]:
                    await rig.control("DELETE", f"/_emulator/users/{user.user_id}/events/{e['id']}")
                await rig.control(
                    "PATCH",
                    f"/_emulator/users/{user.user_id}/events/{created[5]['id']}",
                    {"showAs": "free"},
                )
                await converged(rig, cal, timeout_s=60)
            finally:
                await rig.control("DELETE", f"/_emulator/faults/users/{user.user_id}")
            # The faults did happen: notifications of this calendar were lost and duplicated.
            (subscription,) = await rig.rows()
            log = await rig.control(
                "GET", f"/_emulator/deliveries?subscriptionId={subscription['subscription_id']}"
            )
            assert log["lost"], "no notification was lost: the test proved nothing"


async def test_an_expired_delta_link_resyncs_the_window_and_drops_what_vanished(
    infra: Any, fresh_database: str, graph_emulator: Emulator, topic_prefix: str
) -> None:
    with mailbox(graph_emulator) as user:
        async with rig_for(infra, fresh_database, graph_emulator, topic_prefix, user) as rig:
            cal = await default_calendar(rig)
            events = f"/_emulator/users/{user.user_id}/calendars/{cal}/events"
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            made = []
            for n in range(3):
                at = start + timedelta(days=1 + n)
                made.append(
                    await rig.control(
                        "POST", events, timed(f"e{n}", at, at + timedelta(hours=1), "busy", "UTC")
                    )
                )
            await rig.snapshot(3, (cal,))
            await converged(rig, cal)
            resyncs = sum(
                e["type"].endswith("resync_started.v1") for e in await published(rig, cal)
            )

            await rig.control("POST", f"/_emulator/users/{user.user_id}/delta/expire", {})
            await rig.control("DELETE", f"/_emulator/users/{user.user_id}/events/{made[0]['id']}")
            await round_now(rig, cal)
            await converged(rig, cal)
            after = await published(rig, cal)
            assert sum(e["type"].endswith("resync_started.v1") for e in after) == resyncs + 1
            assert made[0]["id"] not in applied(after)


async def sync_status(rig: Rig, calendar_id: str) -> list[dict[str, Any]]:
    return await rig.published("calsync.sync-status.v1", f"{rig.connection_id}/{calendar_id}")


async def test_reauth_required_stops_subscriptions_reports_stale_and_resumes_by_delta(
    infra: Any, fresh_database: str, graph_emulator: Emulator, topic_prefix: str
) -> None:
    with mailbox(graph_emulator) as user:
        async with rig_for(infra, fresh_database, graph_emulator, topic_prefix, user) as rig:
            cal = await default_calendar(rig)
            events = f"/_emulator/users/{user.user_id}/calendars/{cal}/events"
            at = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
            await rig.control(
                "POST", events, timed("one", at, at + timedelta(hours=1), "busy", "UTC")
            )
            await rig.snapshot(3, (cal,))
            await converged(rig, cal)

            async def subscribed(count: int) -> bool:
                return len(await rig.emulator_subscriptions()) == count

            await wait(lambda: subscribed(1))
            statuses = await sync_status(rig, cal)
            assert statuses[-1]["status"] == "healthy"
            assert statuses[-1]["subscription"] in ("active", "missing")

            await rig.snapshot(4, (cal,), status="reauth_required")
            rig.app[SUBSCRIPTIONS].wake()
            await wait(lambda: subscribed(0))  # deleted at Graph, not left to lapse
            last = (await sync_status(rig, cal))[-1]
            assert (last["status"], last["subscription"]) == ("reauth_required", "stopped")
            assert last["last_synced_at"] is not None

            resyncs = sum(
                e["type"].endswith("resync_started.v1") for e in await published(rig, cal)
            )
            later = at + timedelta(days=1)
            await rig.control(
                "POST", events, timed("two", later, later + timedelta(hours=1), "busy", "UTC")
            )
            await rig.snapshot(5, (cal,), status="active")
            rig.app[SUBSCRIPTIONS].wake()
            await wait(lambda: subscribed(1))
            await converged(rig, cal)
            # The delta link was still valid: the change came by delta, no re-import.
            after = await published(rig, cal)
            assert sum(e["type"].endswith("resync_started.v1") for e in after) == resyncs


async def wait(condition: Any, timeout_s: float = 30) -> None:
    await eventually(condition, timeout_s=timeout_s)
