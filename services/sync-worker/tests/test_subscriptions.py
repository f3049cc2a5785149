"""Subscription upkeep against the Graph emulator, with the real webhooks on a real port.

The sync-worker runs as an app on a port the emulator can reach (it validates the notification
URL when a subscription is created, then delivers notifications there); the connector's token
endpoint is played by ``FakeConnector`` handing out a token of a sandbox user signed in with MSAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from calsync_common import testing
from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.contracts.envelope import Envelope
from calsync_common.contracts.examples import examples
from calsync_common.contracts.topics import CALENDAR_EVENTS
from calsync_common.kafka.consumer import ConsumedEvent
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_common.runtime import POOL, PUBLISHER
from calsync_common.settings import HttpSettings, PlatformSettings
from calsync_common.testing import eventually
from calsync_sync_worker.adapters.graph_client import GraphClientSettings
from calsync_sync_worker.bootstrap import SOURCE
from calsync_sync_worker.entrypoints.http import init_app
from calsync_sync_worker.entrypoints.keys import SUBSCRIPTIONS
from calsync_sync_worker.service_layer.connections import on_connection
from calsync_sync_worker.service_layer.unit_of_work import SyncWork
from calsync_sync_worker.settings import SyncWorkerSettings

from .conftest import Emulator, FakeConnector, SignedIn

pytestmark = pytest.mark.integration
BASE = next(e for e in examples() if isinstance(e, ConnectionSnapshot))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    app: Any
    emulator: Emulator
    user: SignedIn
    connection_id: uuid.UUID
    http: aiohttp.ClientSession
    dsn: str

    @property
    def sub_account_id(self) -> str:
        """The rig's own member, so snapshots other tests left on the shared topics never
        match it."""
        return f"sa-{self.connection_id.hex[:12]}"

    user_id = "user-1"

    async def published(self, topic: str, key: str) -> list[dict[str, Any]]:
        """What the sync-worker published for the key (sent or still queued), in sequence
        order: each event's data and its ``type``."""
        events = await testing.published(self.dsn, self.app[PUBLISHER], topic, key)
        return [{"type": e.headers["ce_type"], **json.loads(e.value or b"{}")} for e in events]

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, f"{self.emulator.base_url}{path}", json=body) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json(content_type=None)

    async def graph(self, path: str) -> Any:
        async with self.http.get(
            f"{self.emulator.graph_url}{path}",
            headers={"Authorization": f"Bearer {self.user.access_token}"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def snapshot(self, version: int, calendars: tuple[str, ...], **kw: Any) -> None:
        payload = BASE.model_copy(
            update={
                "connection_id": self.connection_id,
                "sub_account_id": self.sub_account_id,
                "version": version,
                "linked_calendar_id": calendars[0] if calendars else None,
                "conflict_calendar_ids": calendars,
                **kw,
            }
        )
        uow = PostgresUnitOfWork(self.app[POOL], SOURCE, SyncWork)
        envelope = Envelope("id", "/calsync/connector", payload.event_type, None, None, payload)
        async with uow() as work:
            await on_connection(work, ConsumedEvent("t", 0, 0, b"k", envelope))
        self.app[SUBSCRIPTIONS].wake()

    async def rows(self) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(
                await conn.fetch(
                    "SELECT subscription_id, calendar_id, expires_at FROM subscriptions"
                    " WHERE connection_id = $1",
                    self.connection_id,
                )
            )
        finally:
            await conn.close()

    async def emulator_subscriptions(self) -> list[dict[str, Any]]:
        body = await self.control("GET", "/_emulator/subscriptions")
        return [s for s in body["value"] if s["userId"] == self.user.user_id]


@contextlib.asynccontextmanager
async def running_rig(
    infra: Any,
    fresh_database: str,
    graph_emulator: Emulator,
    signed_in: SignedIn,
    topic_prefix: str,
    **overrides: Any,
) -> AsyncIterator[Rig]:
    connector = FakeConnector()
    connection_id = uuid.uuid4()
    connector.tokens[str(connection_id)] = signed_in.access_token
    port = free_port()
    async with (
        TestServer(connector.app()) as fake_connector,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=graph_emulator.ssl())) as http,
    ):
        settings = SyncWorkerSettings(
            platform=PlatformSettings(
                kafka_bootstrap=infra.kafka_bootstrap, topic_prefix=topic_prefix
            ),
            http=HttpSettings(port=port),
            database_url=fresh_database,  # type: ignore[arg-type]
            public_url=f"http://127.0.0.1:{port}",
            subscriptions_every_s=overrides.pop("subscriptions_every_s", 0.2),
            graph=GraphClientSettings(
                graph_url=graph_emulator.graph_url,
                ca_bundle=graph_emulator.ca_path,
                connector_url=str(fake_connector.make_url("")).rstrip("/"),
            ),
            **overrides,
        )
        app = init_app(settings)
        async with TestServer(app, port=port):
            yield Rig(app, graph_emulator, signed_in, connection_id, http, fresh_database)


@pytest.fixture
async def rig(
    infra: Any,
    fresh_database: str,
    graph_emulator: Emulator,
    signed_in: SignedIn,
    topic_prefix: str,
) -> AsyncIterator[Rig]:
    async with running_rig(infra, fresh_database, graph_emulator, signed_in, topic_prefix) as r:
        yield r


async def test_a_synced_calendar_gets_a_subscription_whose_notifications_reach_kafka(
    rig: Rig,
) -> None:
    calendars = await rig.graph("/me/calendars")
    default = next(c["id"] for c in calendars["value"] if c["isDefaultCalendar"])
    await rig.snapshot(3, (default,))

    async def subscribed() -> bool:
        return len(await rig.rows()) == 1

    await eventually(subscribed, timeout_s=30)
    (row,) = await rig.rows()
    (at_graph,) = await rig.emulator_subscriptions()
    assert at_graph["resource"] == f"/me/calendars/{default}/events"
    assert at_graph["changeType"] == "created,updated,deleted"
    assert at_graph["lifecycleNotificationUrl"].endswith("/webhooks/graph/lifecycle")
    assert row["calendar_id"] == default
    # The expiry stored is the one Graph granted: close to the 4,200 minutes asked for.
    assert row["expires_at"] > datetime.now(UTC) + timedelta(days=2)
    deliveries_before = await rig.control(
        "GET", f"/_emulator/deliveries?subscriptionId={row['subscription_id']}"
    )

    # A change in Outlook: the emulator notifies our webhook, which queues it in Kafka.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    await rig.control(
        "POST",
        f"/_emulator/users/{rig.user.user_id}/calendars/{default}/events",
        {
            "subject": "Dentist",
            "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {
                "dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": "UTC",
            },
            "showAs": "busy",
        },
    )

    async def delivered() -> bool:
        log = await rig.control(
            "GET", f"/_emulator/deliveries?subscriptionId={row['subscription_id']}"
        )
        return _count(log) > _count(deliveries_before) and _all_accepted(log)

    await eventually(delivered, timeout_s=30)


async def test_renewal_before_expiry_recreation_after_404_and_deletion_when_dropped(
    rig: Rig,
) -> None:
    calendars = await rig.graph("/me/calendars")
    default = next(c["id"] for c in calendars["value"] if c["isDefaultCalendar"])
    await rig.snapshot(3, (default,))
    await eventually(lambda: _has_rows(rig, 1), timeout_s=30)
    (first,) = await rig.rows()

    # Graph's expiry comes close: renewed (same subscription, later expiry).
    await _expire_soon(rig)
    await eventually(lambda: _renewed(rig, first["subscription_id"]), timeout_s=30)

    # Graph deleted it meanwhile: the renewal meets 404 and it is recreated.
    await rig.control("POST", f"/_emulator/subscriptions/{first['subscription_id']}/remove")
    await _expire_soon(rig)
    await eventually(lambda: _replaced(rig, first["subscription_id"]), timeout_s=30)
    (second,) = await rig.rows()

    # The calendar stops being synced: its subscription is deleted at Graph and forgotten.
    await rig.snapshot(4, ())
    await eventually(lambda: _has_rows(rig, 0), timeout_s=30)
    live = {s.get("id") for s in await rig.emulator_subscriptions()}
    assert second["subscription_id"] not in live


async def _has_rows(rig: Rig, n: int) -> bool:
    return len(await rig.rows()) == n


async def _renewed(rig: Rig, subscription_id: str) -> bool:
    rows = await rig.rows()
    return (
        len(rows) == 1
        and rows[0]["subscription_id"] == subscription_id
        and rows[0]["expires_at"] > datetime.now(UTC) + timedelta(days=2)
    )


async def _replaced(rig: Rig, old: str) -> bool:
    rows = await rig.rows()
    return len(rows) == 1 and rows[0]["subscription_id"] != old


async def _expire_soon(rig: Rig) -> None:
    conn = await asyncpg.connect(rig.dsn)
    try:
        await conn.execute(
            "UPDATE subscriptions SET expires_at = now() + interval '1 hour'"
            " WHERE connection_id = $1",
            rig.connection_id,
        )
        await conn.execute(
            "UPDATE calendars SET subscription_due_at = now() WHERE connection_id = $1",
            rig.connection_id,
        )
    finally:
        await conn.close()
    rig.app[SUBSCRIPTIONS].wake()
    await asyncio.sleep(0)


def _changes(log: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in log["attempts"] if a["kind"] == "change"]


def _count(log: dict[str, Any]) -> int:
    return len(_changes(log))


def _all_accepted(log: dict[str, Any]) -> bool:
    """Every change POST was answered 202: queued in Kafka before the answer."""
    return all(a["status"] == 202 for a in _changes(log))


# -- delta rounds ------------------------------------------------------------------------------


async def published(rig: Rig, calendar_id: str) -> list[dict[str, Any]]:
    """What the sync-worker published for the calendar, in sequence order."""
    return await rig.published(CALENDAR_EVENTS.name, f"{rig.connection_id}/{calendar_id}")


def upserted_busy(events: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """event id → (start, end) of the busy instances as the events say now (applied as a
    consumer applies them: upserts, removals, and a completed resync drops what it did not
    list)."""
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
    return {i: (e["start"], e["end"]) for i, e in state.items() if e["show_as"] == "busy"}


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


async def ground_truth(rig: Rig, calendar_id: str) -> set[tuple[datetime, datetime]]:
    now = datetime.now(UTC)
    body = await rig.control(
        "GET",
        f"/_emulator/users/{rig.user.user_id}/calendars/{calendar_id}/busy?"
        f"start={(now - timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        f"&end={(now + timedelta(days=300)).strftime('%Y-%m-%dT%H:%M:%SZ')}",
    )
    return {
        (_utc(i["start"]), _utc(i["end"]))
        for i in body["instances"]
        if i["showAs"] == "busy" and not i["isCancelled"]
    }


def as_intervals(busy: dict[str, tuple[str, str]]) -> set[tuple[datetime, datetime]]:
    return {(_utc(s), _utc(e)) for s, e in busy.values()}


def event_body(subject: str, start: datetime, hours: int, show_as: str) -> dict[str, Any]:
    fmt = "%Y-%m-%dT%H:%M:%S"
    return {
        "subject": subject,
        "start": {"dateTime": start.strftime(fmt), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(hours=hours)).strftime(fmt), "timeZone": "UTC"},
        "showAs": show_as,
    }


async def until(rig: Rig, condition: Any) -> None:
    """``eventually``, saying what the calendar's rounds last reported when it times out."""
    try:
        await eventually(condition, timeout_s=30)
    except TimeoutError:
        conn = await asyncpg.connect(rig.dsn)
        try:
            rows = await conn.fetch(
                "SELECT calendar_id, last_error, round_failures, next_round_at FROM calendars"
                " WHERE connection_id = $1",
                rig.connection_id,
            )
        finally:
            await conn.close()
        tail = [
            (e["type"].split(".")[-2], e.get("event_id", "")[-12:])
            for e in (await published(rig, rows[0]["calendar_id"]) if rows else [])
        ]
        raise AssertionError(
            f"{condition.__name__}: {[dict(r) for r in rows]} last published: {tail}"
        ) from None


async def test_delta_rounds_publish_the_calendar_as_it_is_and_follow_its_changes(
    rig: Rig,
) -> None:
    calendars = await rig.graph("/me/calendars")
    default = next(c["id"] for c in calendars["value"] if c["isDefaultCalendar"])
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    events = f"/_emulator/users/{rig.user.user_id}/calendars/{default}/events"
    await rig.control("POST", events, event_body("Busy", base, 1, "busy"))
    await rig.control("POST", events, event_body("Free", base + timedelta(hours=3), 1, "free"))
    weekly = event_body("Weekly", base + timedelta(days=1), 1, "busy")
    weekly["recurrence"] = {
        "pattern": {
            "type": "weekly",
            "interval": 1,
            "daysOfWeek": [(base + timedelta(days=1)).strftime("%A").lower()],
        },
        "range": {
            "type": "numbered",
            "startDate": (base + timedelta(days=1)).strftime("%Y-%m-%d"),
            "numberOfOccurrences": 3,
        },
    }
    await rig.control("POST", events, weekly)

    await rig.snapshot(3, (default,))

    async def first_round_done() -> bool:
        return any(e["type"].endswith("resync_completed.v1") for e in await published(rig, default))

    await until(rig, first_round_done)
    first = await published(rig, default)
    assert first[0]["type"].endswith("resync_started.v1")
    assert as_intervals(upserted_busy(first)) == await ground_truth(rig, default)
    assert len(upserted_busy(first)) == len(await ground_truth(rig, default)) >= 4

    # A change in Outlook reaches the projection's input through notification and delta.
    created = await rig.control(
        "POST", events, event_body("Late add", base + timedelta(hours=6), 2, "busy")
    )

    async def follows() -> bool:
        busy = upserted_busy(await published(rig, default))
        return created["id"] in busy

    await until(rig, follows)
    await rig.control("DELETE", f"/_emulator/users/{rig.user.user_id}/events/{created['id']}")

    async def removed() -> bool:
        return created["id"] not in upserted_busy(await published(rig, default))

    await until(rig, removed)
    assert as_intervals(upserted_busy(await published(rig, default))) == await ground_truth(
        rig, default
    )

    # The delta link expires (410): the next round reads the window from scratch.
    await rig.control(
        "POST", f"/_emulator/users/{rig.user.user_id}/delta/expire", {"calendarId": default}
    )
    before = len([e for e in await published(rig, default) if e["type"].endswith("completed.v1")])
    await rig.control(
        "POST", events, event_body("After expiry", base + timedelta(days=3), 1, "busy")
    )

    async def resynced() -> bool:
        done = [e for e in await published(rig, default) if e["type"].endswith("completed.v1")]
        return len(done) > before

    await until(rig, resynced)
    assert as_intervals(upserted_busy(await published(rig, default))) == await ground_truth(
        rig, default
    )


@pytest.mark.parametrize("reported", ["removed", "omitted"])
async def test_a_cancelled_occurrence_is_released_whether_graph_reports_it_or_not(
    infra: Any,
    fresh_database: str,
    graph_emulator: Emulator,
    signed_in: SignedIn,
    topic_prefix: str,
    reported: str,
) -> None:
    """Graph may send a cancelled occurrence as ``@removed`` or not at all (field reports); the
    periodic full read repairs the second case (here every 2 s instead of 6 h)."""
    async with running_rig(
        infra,
        fresh_database,
        graph_emulator,
        signed_in,
        topic_prefix,
        periodic_round_s=1.0,
        full_read_every_s=2.0,
    ) as rig:
        calendars = await rig.graph("/me/calendars")
        default = next(c["id"] for c in calendars["value"] if c["isDefaultCalendar"])
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=30)
        weekly = event_body("Standup", start, 1, "busy")
        weekly["recurrence"] = {
            "pattern": {
                "type": "weekly",
                "interval": 1,
                "daysOfWeek": [start.strftime("%A").lower()],
            },
            "range": {
                "type": "numbered",
                "startDate": start.strftime("%Y-%m-%d"),
                "numberOfOccurrences": 3,
            },
        }
        events = f"/_emulator/users/{rig.user.user_id}/calendars/{default}/events"
        master = await rig.control("POST", events, weekly)
        await rig.snapshot(3, (default,))

        async def series_synced() -> bool:
            busy = upserted_busy(await published(rig, default))
            return as_intervals(busy) == await ground_truth(rig, default) and len(busy) >= 3

        await until(rig, series_synced)
        await rig.control("PUT", "/_emulator/behaviour", {"cancelledOccurrencesInDelta": reported})
        try:
            occurrences = await rig.graph(
                f"/me/events/{master['id']}/instances?startDateTime="
                f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')}&endDateTime="
                f"{(start + timedelta(days=21)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
            )
            second = sorted(occurrences["value"], key=lambda o: o["start"]["dateTime"])[1]
            await rig.control(
                "DELETE", f"/_emulator/users/{rig.user.user_id}/events/{second['id']}"
            )

            async def released() -> bool:
                busy = upserted_busy(await published(rig, default))
                return as_intervals(busy) == await ground_truth(rig, default)

            await until(rig, released)
        finally:
            await rig.control(
                "PUT", "/_emulator/behaviour", {"cancelledOccurrencesInDelta": "removed"}
            )
