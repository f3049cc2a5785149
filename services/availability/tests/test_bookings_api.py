"""The bookings API on real PostgreSQL and Kafka: booking by calendar type, every problem code,
idempotent retries, stale Outlook data under both policies, the event-calendar rule."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from .bookings_harness import ALL_WEEK, OVERLAPS, Harness, Member, at, serve, settings_for

pytestmark = pytest.mark.integration

CONFIRMED = "dev.calsync.booking.confirmed.v1"
RESCHEDULED = "dev.calsync.booking.rescheduled.v1"
CANCELLED = "dev.calsync.booking.cancelled.v1"


@pytest.fixture
async def h(infra: Any, fresh_database: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async for harness in serve(settings_for(infra.kafka_bootstrap, fresh_database, topic_prefix)):
        yield harness


async def problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    assert body["code"] == code, body
    return body


async def test_a_personal_booking_is_confirmed_shown_and_published(h: Harness) -> None:
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    resp = await h.book(cal, at(9), at(10))
    assert resp.status == 201, await resp.text()
    booking = await resp.json()
    assert resp.headers["Location"].endswith(f"/bookings/{booking['id']}")
    assert (booking["status"], booking["version"]) == ("confirmed", 1)
    assert [m["user_id"] for m in booking["members"]] == ["ann"]
    assert booking["members"][0]["booking_id"] == booking["id"]
    got = await h.client.get(
        f"/v1/sub-accounts/{h.sub}/bookings/{booking['id']}", headers=h.headers()
    )
    assert got.status == 200
    assert await got.json() == booking
    assert await h.outbox(booking["id"]) == [CONFIRMED]


async def test_the_same_slot_twice_is_slot_unavailable_with_the_source_only(h: Harness) -> None:
    ann = await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    assert (await h.book(cal, at(9), at(10))).status == 201
    body = await problem(await h.book(cal, at(9), at(10)), 409, "slot_unavailable")
    assert body["conflicts"] == [
        {"user_id": "ann", "start": at(9).isoformat(), "end": at(10).isoformat(),
         "source": "booking"}
    ]  # fmt: skip
    await h.outlook_busy(ann, at(11, 0) + timedelta(minutes=30), at(12))
    body = await problem(await h.book(cal, at(11), at(12)), 409, "slot_unavailable")
    assert [c["source"] for c in body["conflicts"]] == ["outlook"]
    assert set(body["conflicts"][0]) == {"user_id", "start", "end", "source"}


async def test_buffers_keep_time_free_around_bookings(h: Harness) -> None:
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"], buffer_after_minutes=30)
    assert (await h.book(cal, at(9), at(10))).status == 201
    # 10:00-11:00 needs 10:00-11:30 free; the earlier booking ends at 10:00: fine.
    assert (await h.book(cal, at(10), at(11))).status == 201
    await problem(await h.book(cal, at(8), at(9)), 409, "slot_unavailable")  # buffer runs to 9:30


async def test_round_robin_rotates_over_free_members_and_skips_busy_ones(h: Harness) -> None:
    ann, bob, _ = await h.member("ann"), await h.member("bob"), await h.member("cyd")
    cal = await h.calendar("round_robin", ["ann", "bob", "cyd"])
    picked = []
    for hour in (9, 10, 11):
        resp = await h.book(cal, at(hour), at(hour + 1))
        assert resp.status == 201
        picked.append((await resp.json())["members"][0]["user_id"])
    assert picked == ["ann", "bob", "cyd"]
    await h.outlook_busy(ann, at(12), at(13))
    await h.outlook_busy(bob, at(12), at(13))
    resp = await h.book(cal, at(12), at(13))
    assert (await resp.json())["members"][0]["user_id"] == "cyd"
    body = await problem(await h.book(cal, at(12), at(13)), 409, "slot_unavailable")
    assert {c["user_id"] for c in body["conflicts"]} == {"ann", "bob", "cyd"}
    pinned = await h.book(cal, at(14), at(15), user_id="bob")
    assert (await pinned.json())["members"][0]["user_id"] == "bob"
    await problem(await h.book(cal, at(15), at(16), user_id="zed"), 422, "user_not_member")


async def test_a_collective_booking_holds_every_member_or_none(h: Harness) -> None:
    await h.member("ann")
    bob = await h.member("bob")
    cal = await h.calendar("collective", ["ann", "bob"])
    resp = await h.book(cal, at(9), at(10))
    booking = await resp.json()
    assert [m["user_id"] for m in booking["members"]] == ["ann", "bob"]
    for m in booking["members"]:
        assert await h.outbox(m["booking_id"]) == [CONFIRMED]
    await h.outlook_busy(bob, at(10), at(11))
    body = await problem(await h.book(cal, at(10), at(11)), 409, "slot_unavailable")
    assert [c["user_id"] for c in body["conflicts"]] == ["bob"]
    assert await h.pool.fetchval("SELECT count(*) FROM bookings") == 2
    await problem(await h.book(cal, at(11), at(12), user_id="ann"), 422, "user_not_member")


async def test_a_retry_gets_the_first_answer_byte_for_byte(h: Harness) -> None:
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    first = await h.book(cal, at(9), at(10), key="k-1")
    again = await h.book(cal, at(9), at(10), key="k-1")
    assert (first.status, again.status) == (201, 201)
    assert await first.read() == await again.read()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await h.pool.fetchval("SELECT count(*) FROM bookings") == 1
    # A 409 is an answer too: kept and replayed.
    lost = await h.book(cal, at(9), at(10), key="k-2")
    await h.client.delete(
        f"/v1/sub-accounts/{h.sub}/bookings/{(await first.json())['id']}", headers=h.headers()
    )
    replay = await h.book(cal, at(9), at(10), key="k-2")
    assert (lost.status, replay.status) == (409, 409)
    assert await lost.read() == await replay.read()
    await problem(await h.book(cal, at(10), at(11), key="k-1"), 422, "idempotency_key_reused")
    # Reused for time already taken: the refusal read before any lock finds the key held, so
    # the answer is the key's, not a fresh 409.
    assert (await h.book(cal, at(11), at(12), key="k-3")).status == 201
    await problem(await h.book(cal, at(11), at(12), key="k-1"), 422, "idempotency_key_reused")


async def test_the_idempotency_key_is_required_and_bounded(h: Harness) -> None:
    cal = await h.calendar("personal", ["ann"])
    body = {"booking_calendar_id": cal, "start": at(9).isoformat(), "end": at(10).isoformat(),
            "title": "t"}  # fmt: skip
    url = f"/v1/sub-accounts/{h.sub}/bookings"
    await problem(
        await h.client.post(url, json=body, headers=h.headers()), 400, "idempotency_key_required"
    )
    await problem(
        await h.client.post(url, json=body, headers=h.headers("x" * 256)),
        400,
        "invalid_idempotency_key",
    )


async def test_rule_errors(h: Harness) -> None:
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"], minimum_notice_minutes=60)
    await problem(await h.book(str(uuid.uuid4()), at(9), at(10)), 404, "calendar_not_found")
    await problem(await h.book(cal, at(10), at(9)), 422, "invalid_booking_time")
    await problem(await h.book(cal, at(9), at(9.5)), 422, "slot_not_offered")  # not 60 min
    await problem(await h.book(cal, at(9.25), at(10.25)), 422, "slot_not_offered")  # off grid
    resp = await h.book(cal, at(9), at(10), title="")
    await problem(resp, 422, "invalid_request")
    missing = await h.client.get(
        f"/v1/sub-accounts/{h.sub}/bookings/{uuid.uuid4()}", headers=h.headers()
    )
    await problem(missing, 404, "booking_not_found")


async def test_stale_outlook_data_fails_closed_by_default_and_proceeds_when_asked(
    h: Harness,
) -> None:
    ann = Member("ann")
    await h.connect(ann)
    await h.synced(ann, ago=timedelta(hours=2))
    closed = await h.calendar("personal", ["ann"], stale_after_seconds=600)
    body = await problem(await h.book(closed, at(13), at(14), key="s"), 409, "calendar_sync_stale")
    assert body["stale"][0]["user_id"] == "ann"
    proceed = await h.calendar("personal", ["ann"], stale_after_seconds=600, on_stale="proceed")
    assert (await h.book(proceed, at(9), at(10))).status == 201
    # Not kept for the key: once the sync is fresh, the same request goes through.
    await h.synced(ann)
    assert (await h.book(closed, at(13), at(14), key="s")).status == 201


async def test_reauth_required_fails_closed(h: Harness) -> None:
    ann = Member("ann")
    await h.connect(ann, status="reauth_required")
    await h.synced(ann)
    cal = await h.calendar("round_robin", ["ann"])
    await problem(await h.book(cal, at(9), at(10)), 409, "calendar_sync_stale")


async def test_event_calendars_refuse_outlook_conflicts(h: Harness) -> None:
    ann = await h.member("ann")
    cal = await h.calendar("event", ["ann"])
    await problem(
        await h.book(cal, at(9), at(10), use_outlook_conflicts=True),
        422,
        "outlook_not_supported_for_event_calendars",
    )
    url = f"/v1/sub-accounts/{h.sub}/calendars/{cal}/free-slots"
    query = {"start": at(9).isoformat(), "end": at(12).isoformat(), "include_outlook": "true"}
    await problem(
        await h.client.get(url, params=query, headers=h.headers()),
        422,
        "outlook_not_supported_for_event_calendars",
    )
    # Without asking for Outlook, an event calendar books against its own bookings only.
    await h.outlook_busy(ann, at(9), at(10))
    assert (await h.book(cal, at(9), at(10))).status == 201


async def test_reschedule_and_cancel_bump_the_version_and_publish(h: Harness) -> None:
    ann = await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    booking = await (await h.book(cal, at(9), at(10))).json()
    one = f"/v1/sub-accounts/{h.sub}/bookings/{booking['id']}"
    moved = await h.client.patch(
        one, json={"start": at(9.5).isoformat(), "end": at(10.5).isoformat()},
        headers=h.headers(),
    )  # fmt: skip
    await problem(moved, 422, "slot_not_offered")  # off the hourly grid
    await h.outlook_busy(ann, at(11), at(12))
    taken = await h.client.patch(
        one, json={"start": at(11).isoformat(), "end": at(12).isoformat()}, headers=h.headers()
    )
    await problem(taken, 409, "slot_unavailable")
    # Moving within its own time is no conflict with itself.
    ok = await h.client.patch(
        one, json={"start": at(10).isoformat(), "end": at(11).isoformat()}, headers=h.headers()
    )
    assert ok.status == 200
    assert ((await ok.json())["version"], (await ok.json())["start"]) == (2, at(10).isoformat())
    gone = await h.client.delete(one, headers=h.headers())
    assert ((await gone.json())["status"], (await gone.json())["version"]) == ("cancelled", 3)
    again = await h.client.delete(one, headers=h.headers())
    assert (await again.json())["version"] == 3
    await problem(
        await h.client.patch(
            one, json={"start": at(13).isoformat(), "end": at(14).isoformat()},
            headers=h.headers(),
        ),
        409,
        "booking_cancelled",
    )  # fmt: skip
    assert await h.outbox(booking["id"]) == [CONFIRMED, RESCHEDULED, CANCELLED]
    assert (await h.book(cal, at(10), at(11))).status == 201  # the time is free again
    assert await h.pool.fetchval(OVERLAPS) == 0


async def test_busy_shows_sources_and_freshness_without_private_details(h: Harness) -> None:
    ann = await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    booking = await (await h.book(cal, at(9), at(10))).json()
    event_id = await h.outlook_busy(ann, at(13), at(14))
    resp = await h.client.get(
        f"/v1/sub-accounts/{h.sub}/users/ann/busy",
        params={"start": at(0).isoformat(), "end": at(24).isoformat()},
        headers=h.headers(),
    )
    body = await resp.json()
    assert [(b["source"], b["start"]) for b in body["busy"]] == [
        ("booking", at(9).isoformat()),
        ("outlook", at(13).isoformat()),
    ]
    assert body["busy"][0]["booking_id"] == booking["id"]
    assert set(body["busy"][1]) == {
        "start", "end", "source", "show_as", "connection_id", "calendar_id", "event_id"
    }  # fmt: skip
    assert body["busy"][1]["event_id"] == event_id
    assert [(c["calendar_id"], c["stale"]) for c in body["calendars"]] == [(ann.calendar_id, False)]
    assert body["stale"] is False


async def test_free_slots_subtract_bookings_and_outlook_time(h: Harness) -> None:
    ann, bob = await h.member("ann"), await h.member("bob")
    cal = await h.calendar("round_robin", ["ann", "bob"])
    await h.outlook_busy(ann, at(9), at(10))
    await h.book(cal, at(10), at(11), user_id="bob")
    await h.outlook_busy(bob, at(11), at(12))
    await h.outlook_busy(ann, at(11), at(12))
    resp = await h.client.get(
        f"/v1/sub-accounts/{h.sub}/calendars/{cal}/free-slots",
        params={"start": at(9).isoformat(), "end": at(13).isoformat(), "timezone": "Europe/Paris"},
        headers=h.headers(),
    )
    body = await resp.json()
    assert [(s["start"], s["members"]) for s in body["slots"]] == [
        ("2030-01-07T10:00:00+01:00", ["bob"]),
        ("2030-01-07T11:00:00+01:00", ["ann"]),
        ("2030-01-07T13:00:00+01:00", ["ann", "bob"]),
    ]
    assert body["stale"] == []


def all_week(user_id: str) -> list[dict[str, Any]]:
    """The members of a calendar of one member, working around the clock."""
    return [{"user_id": user_id, "time_zone": "UTC", "working_hours": ALL_WEEK}]


async def replace_calendar(h: Harness, cal: str, client: Any = None, **changes: Any) -> None:
    """PUT the calendar as it is stored, with ``changes`` (through ``client``: another
    replica's)."""
    client = client or h.client
    url = f"/v1/sub-accounts/{h.sub}/calendars/{cal}"
    current = await (await client.get(url, headers=h.headers())).json()
    body = {k: current[k] for k in ("name", "type", "members", "slot_minutes")} | changes
    replaced = await client.put(url, json=body, headers=h.headers())
    assert replaced.status == 200, await replaced.text()


# --- the booking path's calendar cache: a cached calendar never decides an answer ------------


async def test_a_calendar_changed_after_it_was_cached_books_by_the_stored_one(h: Harness) -> None:
    ann = await h.member("ann")
    await h.member("bob")
    cal = await h.calendar("personal", ["ann"])
    assert (await h.book(cal, at(9), at(10))).status == 201  # the calendar is cached now
    await h.outlook_busy(ann, at(11), at(12))
    await problem(await h.book(cal, at(11), at(12)), 409, "slot_unavailable")
    # Another replica (here: the PUT, which leaves this replica's cache alone) gives the
    # calendar to bob: ann's Outlook time no longer refuses, and the booking is bob's.
    await replace_calendar(h, cal, members=all_week("bob"))
    resp = await h.book(cal, at(11), at(12))
    assert resp.status == 201, await resp.text()
    assert [m["user_id"] for m in (await resp.json())["members"]] == ["bob"]
    # A buffer added since is kept: 12:00-13:00 now needs 11:00-13:00 free, and bob's booking
    # holds 11:00-12:00.
    await replace_calendar(h, cal, buffer_before_minutes=60)
    await problem(await h.book(cal, at(12), at(13)), 409, "slot_unavailable")


async def test_a_calendar_deleted_after_it_was_cached_takes_no_booking(h: Harness) -> None:
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    booked = await h.book(cal, at(9), at(10))
    assert booked.status == 201
    booking_url = f"/v1/sub-accounts/{h.sub}/bookings/{(await booked.json())['id']}"
    assert (await h.client.delete(booking_url, headers=h.headers())).status == 200
    url = f"/v1/sub-accounts/{h.sub}/calendars/{cal}"
    assert (await h.client.delete(url, headers=h.headers())).status == 204
    await problem(await h.book(cal, at(10), at(11)), 404, "calendar_not_found")
    assert await h.pool.fetchval("SELECT count(*) FROM bookings WHERE status = 'confirmed'") == 0


async def test_free_slots_follow_a_calendar_changed_after_it_was_cached(h: Harness) -> None:
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    url = f"/v1/sub-accounts/{h.sub}/calendars/{cal}"
    query = {"start": at(9).isoformat(), "end": at(11).isoformat()}

    async def slot_starts() -> list[str]:
        resp = await h.client.get(f"{url}/free-slots", params=query, headers=h.headers())
        assert resp.status == 200, await resp.text()
        return [s["start"] for s in (await resp.json())["slots"]]

    assert await slot_starts() == [at(9).isoformat(), at(10).isoformat()]  # cached now
    await replace_calendar(h, cal, slot_minutes=30)
    assert await slot_starts() == [at(h).isoformat() for h in (9, 9.5, 10, 10.5)]
    assert (await h.client.delete(url, headers=h.headers())).status == 204
    resp = await h.client.get(f"{url}/free-slots", params=query, headers=h.headers())
    await problem(resp, 404, "calendar_not_found")


async def test_a_calendar_replaced_through_another_replica_books_by_the_stored_one(
    h: Harness,
) -> None:
    ann = await h.member("ann")
    await h.member("bob")
    cal = await h.calendar("personal", ["ann"])
    await h.outlook_busy(ann, at(11), at(12))
    await problem(await h.book(cal, at(11), at(12)), 409, "slot_unavailable")  # cached here
    async for other in serve(h.settings):  # a second replica on the same database
        await replace_calendar(h, cal, client=other.client, members=all_week("bob"))
    resp = await h.book(cal, at(11), at(12))
    assert resp.status == 201, await resp.text()
    assert [m["user_id"] for m in (await resp.json())["members"]] == ["bob"]


async def test_a_refusal_by_a_cached_calendar_is_checked_against_the_stored_one(
    h: Harness,
) -> None:
    await h.member("ann")
    monday_nine_to_five = [{"day": "monday", "start": "09:00", "end": "17:00"}]
    members = [{"user_id": "ann", "time_zone": "UTC", "working_hours": monday_nine_to_five}]
    cal = await h.calendar("personal", ["ann"], members=members)
    assert (await h.book(cal, at(9), at(10))).status == 201  # cached here
    await replace_calendar(h, cal, members=all_week("ann"))
    # 20:00 is outside the cached calendar's hours, inside the stored one's: booked, and the
    # key's answer is the booking, not a refusal made from the old hours.
    key = uuid.uuid4().hex
    resp = await h.book(cal, at(20), at(21), key=key)
    assert resp.status == 201, await resp.text()
    again = await h.book(cal, at(20), at(21), key=key)
    assert (again.status, await again.json()) == (201, await resp.json())


async def test_free_slots_judge_the_event_rule_by_the_stored_calendar(h: Harness) -> None:
    await h.member("ann")
    cal = await h.calendar("event", ["ann"])
    url = f"/v1/sub-accounts/{h.sub}/calendars/{cal}"
    query = {"start": at(9).isoformat(), "end": at(11).isoformat()}
    slots = await h.client.get(f"{url}/free-slots", params=query, headers=h.headers())
    assert slots.status == 200, await slots.text()  # cached here, as an event calendar
    await replace_calendar(h, cal, type="personal")
    with_outlook = query | {"include_outlook": "true"}
    slots = await h.client.get(f"{url}/free-slots", params=with_outlook, headers=h.headers())
    assert slots.status == 200, await slots.text()
