"""What the sync-worker reports back, through the broker: write-back outcomes and two-way changes
made in Outlook, consumed by the running service on real Kafka and PostgreSQL.

Events are published to the session's prefixed topics as the sync-worker would; a test waits for
a record by its offset in the consumer group's stored offsets (``kafka_consumer_offsets``, written
in the handler's transaction), so "nothing happened" is asserted only once the record was
consumed, never after a sleep.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import RecordMetadata

from calsync_availability.service_layer.booking_feedback import TWO_WAY_GROUP, WRITEBACKS_GROUP
from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.booking_writebacks import BookingWriteBackRecorded
from calsync_common.contracts.calendar_events import BookingEventChangedInOutlook
from calsync_common.contracts.envelope import encode
from calsync_common.kafka.producer import EventPublisher
from calsync_common.runtime import PUBLISHER
from calsync_common.testing import eventually

from .bookings_harness import OVERLAPS, Harness, Member, at, serve, settings_for

pytestmark = pytest.mark.integration

CONFIRMED = "dev.calsync.booking.confirmed.v1"
RESCHEDULED = "dev.calsync.booking.rescheduled.v1"
CANCELLED = "dev.calsync.booking.cancelled.v1"
CONFLICT = "dev.calsync.booking.conflict_detected.v1"
SYNC_WORKER = "/calsync/sync-worker"


@pytest.fixture
async def h(infra: Any, fresh_database: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async for harness in serve(settings_for(infra.kafka_bootstrap, fresh_database, topic_prefix)):
        yield harness


def publisher(h: Harness) -> EventPublisher:
    return h.client.server.app[PUBLISHER]  # type: ignore[union-attr]


async def publish(h: Harness, payload: EventPayload) -> RecordMetadata:
    return await publisher(h).publish(payload)


async def consumed(h: Harness, group: str, *records: RecordMetadata) -> None:
    """Wait until ``group`` stored offsets past ``records`` (their effects committed with them)."""

    async def past() -> bool:
        for record in records:
            stored = await h.pool.fetchval(
                "SELECT next_offset FROM kafka_consumer_offsets"
                " WHERE group_id = $1 AND topic = $2 AND partition = $3",
                h.settings.platform.group(group),
                record.topic,
                record.partition,
            )
            if stored is None or stored <= record.offset:
                return False
        return True

    await eventually(past)


async def get(h: Harness, booking_id: str) -> dict[str, Any]:
    resp = await h.client.get(
        f"/v1/sub-accounts/{h.sub}/bookings/{booking_id}", headers=h.headers()
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def book(h: Harness, calendar_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    resp = await h.book(calendar_id, start, end)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def outcome(
    booking_id: str, version: int, outcome: str, at_s: float, **more: Any
) -> BookingWriteBackRecorded:
    return BookingWriteBackRecorded(
        booking_id=uuid.UUID(booking_id),
        booking_version=version,
        outcome=outcome,  # type: ignore[arg-type]
        occurred_at=datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=at_s),
        **more,
    )


def changed(
    member: Member,
    booking_id: str,
    version: int,
    start: datetime | None = None,
    end: datetime | None = None,
) -> BookingEventChangedInOutlook:
    return BookingEventChangedInOutlook(
        connection_id=member.connection_id,
        calendar_id=member.calendar_id,
        event_id=f"AAMk-written-{booking_id[:8]}",
        booking_id=uuid.UUID(booking_id),
        booking_version=version,
        change="deleted" if start is None else "moved",
        start=start,
        end=end,
        observed_at=datetime.now(UTC),
    )


async def two_way_member(h: Harness, user_id: str) -> Member:
    member = Member(user_id)
    await h.connect(member, sync_preference="two_way")
    await h.synced(member)
    return member


# --- write-back outcomes ---------------------------------------------------------------------


async def test_write_back_outcomes_show_on_the_booking_and_the_latest_version_wins(
    h: Harness,
) -> None:
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    booking = await book(h, cal, at(9), at(10))
    bid = booking["id"]
    assert booking["members"][0]["write_back"] is None

    await publish(h, outcome(bid, 1, "failed", 1, reason="ErrorServerBusy", will_retry=True))
    last = await publish(h, outcome(bid, 1, "written", 2, event_id="AAMk-1"))
    await consumed(h, WRITEBACKS_GROUP, last)
    wb = (await get(h, bid))["members"][0]["write_back"]
    assert (wb["booking_version"], wb["outcome"], wb["reason"]) == (1, "written", None)

    moved = await h.client.patch(
        f"/v1/sub-accounts/{h.sub}/bookings/{bid}",
        json={"start": at(11).isoformat(), "end": at(12).isoformat()},
        headers=h.headers(),
    )
    assert (await moved.json())["version"] == 2
    await publish(h, outcome(bid, 2, "written", 3, event_id="AAMk-1"))
    # A late report about version 1 (sent after version 2's) does not hide version 2's outcome,
    # and an older report about version 2 does not replace its newer one.
    await publish(h, outcome(bid, 1, "failed", 4, reason="ErrorItemNotFound"))
    last = await publish(h, outcome(bid, 2, "failed", 0, reason="ErrorServerBusy"))
    await consumed(h, WRITEBACKS_GROUP, last)
    wb = (await get(h, bid))["members"][0]["write_back"]
    assert (wb["booking_version"], wb["outcome"], wb["will_retry"]) == (2, "written", False)


async def test_each_member_of_a_collective_booking_shows_its_own_outcome(h: Harness) -> None:
    await h.member("ann")
    await h.member("bob")
    cal = await h.calendar("collective", ["ann", "bob"])
    booking = await book(h, cal, at(9), at(10))
    ann, bob = booking["members"]
    first = await publish(h, outcome(ann["booking_id"], 1, "written", 1))
    last = await publish(h, outcome(bob["booking_id"], 1, "skipped", 1, reason="no_connection"))
    await consumed(h, WRITEBACKS_GROUP, first, last)
    shown = {m["user_id"]: m["write_back"] for m in (await get(h, booking["id"]))["members"]}
    assert (shown["ann"]["outcome"], shown["bob"]["outcome"]) == ("written", "skipped")
    assert shown["bob"]["reason"] == "no_connection"


# --- two-way changes -------------------------------------------------------------------------


async def test_a_move_in_outlook_reschedules_the_booking(h: Harness) -> None:
    ann = await two_way_member(h, "ann")
    cal = await h.calendar("personal", ["ann"])  # hourly slots
    bid = (await book(h, cal, at(9), at(10)))["id"]
    # The person's own choice: off the slot grid, and any length up to a day.
    last = await publish(h, changed(ann, bid, 1, at(14.5), at(16)))
    await consumed(h, TWO_WAY_GROUP, last)
    now = await get(h, bid)
    assert (now["start"], now["end"]) == (at(14.5).isoformat(), at(16).isoformat())
    assert (now["version"], now["changed_by"], now["status"]) == (2, "outlook", "confirmed")
    assert now["outlook_change"]["outcome"] == "applied"
    assert now["outlook_change"]["change"] == "moved"
    assert await h.outbox(bid) == [CONFIRMED, RESCHEDULED]
    # The old time is free again, the new one is taken.
    assert (await h.book(cal, at(9), at(10))).status == 201
    assert (await h.book(cal, at(15), at(16))).status == 409


async def test_a_deletion_in_outlook_cancels_the_booking(h: Harness) -> None:
    ann = await two_way_member(h, "ann")
    cal = await h.calendar("personal", ["ann"])
    bid = (await book(h, cal, at(9), at(10)))["id"]
    last = await publish(h, changed(ann, bid, 1))
    await consumed(h, TWO_WAY_GROUP, last)
    now = await get(h, bid)
    assert (now["status"], now["version"], now["changed_by"]) == ("cancelled", 2, "outlook")
    assert now["outlook_change"]["change"] == "deleted"
    assert await h.outbox(bid) == [CONFIRMED, CANCELLED]
    assert (await h.book(cal, at(9), at(10))).status == 201


async def test_a_change_to_an_outdated_write_is_ignored(h: Harness) -> None:
    ann = await two_way_member(h, "ann")
    cal = await h.calendar("personal", ["ann"])
    bid = (await book(h, cal, at(9), at(10)))["id"]
    one = f"/v1/sub-accounts/{h.sub}/bookings/{bid}"
    moved = await h.client.patch(
        one, json={"start": at(11).isoformat(), "end": at(12).isoformat()}, headers=h.headers()
    )
    assert (await moved.json())["version"] == 2
    # The person moved (then deleted) the event of version 1, which the sync-worker is
    # overwriting with version 2.
    await publish(h, changed(ann, bid, 1, at(15), at(16)))
    last = await publish(h, changed(ann, bid, 1))
    await consumed(h, TWO_WAY_GROUP, last)
    now = await get(h, bid)
    assert (now["start"], now["version"], now["status"]) == (at(11).isoformat(), 2, "confirmed")
    assert now["outlook_change"] is None
    assert await h.outbox(bid) == [CONFIRMED, RESCHEDULED]


async def test_a_one_way_connection_changes_no_booking(h: Harness) -> None:
    ann = await h.member("ann")  # one_way
    cal = await h.calendar("personal", ["ann"])
    bid = (await book(h, cal, at(9), at(10)))["id"]
    one_way = await publish(h, changed(ann, bid, 1, at(15), at(16)))
    # Nor does a two-way change from a connection that is no longer the member's.
    stranger = Member("ann", calendar_id=ann.calendar_id)
    last = await publish(h, changed(stranger, bid, 1))
    await consumed(h, TWO_WAY_GROUP, one_way, last)
    now = await get(h, bid)
    assert (now["start"], now["version"], now["status"]) == (at(9).isoformat(), 1, "confirmed")
    assert await h.outbox(bid) == [CONFIRMED]


async def test_a_move_onto_another_booking_is_rejected_and_the_booking_republished(
    h: Harness,
) -> None:
    ann = await two_way_member(h, "ann")
    cal = await h.calendar("personal", ["ann"])
    first = (await book(h, cal, at(9), at(10)))["id"]
    other = (await book(h, cal, at(11), at(12)))["id"]
    # The person also double-booked themselves over it in Outlook: a recorded conflict.
    event_id = await h.outlook_busy(ann, at(9.5), at(10))
    last = await publish(h, changed(ann, first, 1, at(11.5), at(12.5)))
    await consumed(h, TWO_WAY_GROUP, last)
    now = await get(h, first)
    # Still at its own time, one version on, so the write-back puts the Outlook event back.
    assert (now["start"], now["end"]) == (at(9).isoformat(), at(10).isoformat())
    assert (now["version"], now["changed_by"], now["status"]) == (2, "api", "confirmed")
    assert now["outlook_change"]["outcome"] == "rejected"
    assert now["outlook_change"]["reason"] == "slot_unavailable"
    assert await h.outbox(first) == [CONFIRMED, CONFLICT, RESCHEDULED]
    assert (await get(h, other))["version"] == 1
    assert await h.pool.fetchval(OVERLAPS) == 0
    # Still at the time of that Outlook event, the conflict stays open.
    [conflict] = now["members"][0]["conflicts"]
    assert (conflict["event_id"], conflict["resolved_at"]) == (event_id, None)


async def test_a_move_onto_outlook_busy_time_is_accepted_and_recorded_as_a_conflict(
    h: Harness,
) -> None:
    ann = await two_way_member(h, "ann")
    cal = await h.calendar("personal", ["ann"])
    bid = (await book(h, cal, at(9), at(10)))["id"]
    event_id = await h.outlook_busy(ann, at(14), at(15))
    last = await publish(h, changed(ann, bid, 1, at(14.5), at(15.5)))
    await consumed(h, TWO_WAY_GROUP, last)
    now = await get(h, bid)
    assert (now["start"], now["version"]) == (at(14.5).isoformat(), 2)
    [conflict] = now["members"][0]["conflicts"]
    assert (conflict["event_id"], conflict["start"], conflict["end"]) == (
        event_id,
        at(14.5).isoformat(),
        at(15).isoformat(),
    )
    assert conflict["resolved_at"] is None
    assert await h.outbox(bid) == [CONFIRMED, RESCHEDULED, CONFLICT]


async def test_a_change_delivered_twice_is_applied_once(h: Harness) -> None:
    ann = await two_way_member(h, "ann")
    cal = await h.calendar("personal", ["ann"])
    relayed = (await book(h, cal, at(9), at(10)))["id"]
    republished = (await book(h, cal, at(11), at(12)))["id"]
    pub = publisher(h)
    # The relay's duplicate: the same record bytes (event id and per-key sequence) twice; the
    # runner drops the second by its sequence.
    message = encode(
        changed(ann, relayed, 1, at(15), at(16)),
        source=SYNC_WORKER,
        event_id=str(uuid.uuid4()),
        sequence=1,
    )
    key = message.key.encode() if isinstance(message.key, str) else message.key
    topic = pub.resolve(BookingEventChangedInOutlook.topic)
    for _ in range(2):
        await pub.send_raw(topic, key, message.value, list(message.headers.items()))
    # The same change published twice as new events (no sequence): the booking's version, not
    # the runner, makes the second a no-op.
    await publish(h, changed(ann, republished, 1, at(17), at(18)))
    last = await publish(h, changed(ann, republished, 1, at(17), at(18)))
    await consumed(h, TWO_WAY_GROUP, last)
    for bid, start in ((relayed, at(15)), (republished, at(17))):
        now = await get(h, bid)
        assert (now["start"], now["version"]) == (start.isoformat(), 2)
        assert await h.outbox(bid) == [CONFIRMED, RESCHEDULED]


async def test_a_write_back_outcome_delivered_twice_is_kept_once(h: Harness) -> None:
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    bid = (await book(h, cal, at(9), at(10)))["id"]
    pub = publisher(h)
    message = encode(
        outcome(bid, 1, "written", 1, event_id="AAMk-1"),
        source=SYNC_WORKER,
        event_id=str(uuid.uuid4()),
        sequence=7,
    )
    key = message.key.encode() if isinstance(message.key, str) else message.key
    topic = pub.resolve(BookingWriteBackRecorded.topic)
    for _ in range(2):
        last = await pub.send_raw(topic, key, message.value, list(message.headers.items()))
    await consumed(h, WRITEBACKS_GROUP, last)
    rows = await h.pool.fetch(
        "SELECT booking_version, outcome FROM booking_writebacks WHERE booking_id = $1",
        uuid.UUID(bid),
    )
    assert [tuple(r) for r in rows] == [(1, "written")]
    dropped = await h.pool.fetchval(
        "SELECT last_sequence FROM kafka_consumer_sequences WHERE group_id = $1 AND key = $2",
        h.settings.platform.group(WRITEBACKS_GROUP),
        bid,
    )
    assert dropped == 7
