"""Booking calendars over HTTP on real PostgreSQL (and Kafka, which the service starts with):
create, read, list, replace with If-Match, delete; validation codes; tenancy; the event-calendar
rule; and ``load_calendar``, the read the bookings path uses."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from calsync_availability.adapters.calendars_repository import load_calendar
from calsync_availability.domain.errors import CalendarNotFound
from calsync_availability.domain.slots import free_slots
from calsync_availability.entrypoints import calendars_api
from calsync_availability.entrypoints.http import init_app
from calsync_availability.settings import AvailabilitySettings
from calsync_common.http.auth import mint
from calsync_common.settings import HttpSettings, PlatformSettings

pytestmark = pytest.mark.integration

WEEKDAYS_9_TO_5 = [
    {"day": d, "start": "09:00", "end": "17:00"}
    for d in ("monday", "tuesday", "wednesday", "thursday", "friday")
]


@dataclass
class Service:
    client: TestClient[Any, Any]
    settings: AvailabilitySettings
    dsn: str

    def headers(self, sub_account_id: str, **extra: str) -> dict[str, str]:
        token = mint(self.settings.auth, subject="platform-user", sub_account_id=sub_account_id)
        return {"Authorization": f"Bearer {token}", **extra}

    def service_headers(self, service: str) -> dict[str, str]:
        token = mint(self.settings.auth, subject=service, service=service)
        return {"Authorization": f"Bearer {token}"}

    async def create(self, sub: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self.client.post(
            f"/v1/sub-accounts/{sub}/calendars", json=body, headers=self.headers(sub)
        )
        assert resp.status == 201, await resp.text()
        created: dict[str, Any] = await resp.json()
        return created


@pytest.fixture(scope="module")
async def service(infra: Any, databases: Any, topic_prefix: str) -> AsyncIterator[Service]:
    """One service for the module; each test works in sub-accounts of its own."""
    async with databases.throwaway() as dsn:
        settings = AvailabilitySettings(
            platform=PlatformSettings(
                kafka_bootstrap=infra.kafka_bootstrap, topic_prefix=topic_prefix
            ),
            http=HttpSettings(port=0),
            database_url=dsn,
        )
        async with TestClient(TestServer(init_app(settings))) as client:
            yield Service(client, settings, dsn)


def new_sub_account() -> str:
    return f"sa-{uuid.uuid4().hex[:8]}"


def body(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "Sales demos",
        "type": "round_robin",
        "members": [
            {"user_id": "ana", "time_zone": "Europe/Bucharest", "working_hours": WEEKDAYS_9_TO_5},
            {"user_id": "bob", "time_zone": "America/New_York", "working_hours": WEEKDAYS_9_TO_5},
        ],
        "slot_minutes": 30,
    }
    doc.update(fields)
    return doc


async def test_a_calendar_is_created_read_replaced_and_deleted(service: Service) -> None:
    sub = new_sub_account()
    resp = await service.client.post(
        f"/v1/sub-accounts/{sub}/calendars",
        json=body(buffer_before_minutes=10, minimum_notice_minutes=120),
        headers=service.headers(sub),
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    location = f"/v1/sub-accounts/{sub}/calendars/{created['id']}"
    assert resp.headers["Location"] == location
    assert resp.headers["ETag"] == '"v1"'
    assert created["version"] == 1
    assert created["sub_account_id"] == sub
    assert [m["user_id"] for m in created["members"]] == ["ana", "bob"]
    assert created["members"][0]["working_hours"] == WEEKDAYS_9_TO_5
    # Defaults: Outlook conflicts on (not an event calendar), fail closed after 15 minutes.
    assert created["outlook_conflicts"] is True
    assert created["on_stale"] == "fail_closed"
    assert created["stale_after_seconds"] == 900
    assert (created["buffer_before_minutes"], created["buffer_after_minutes"]) == (10, 0)
    assert created["minimum_notice_minutes"] == 120

    resp = await service.client.get(location, headers=service.headers(sub))
    assert resp.status == 200
    assert await resp.json() == created
    assert resp.headers["ETag"] == '"v1"'

    night = [{"day": "sunday", "start": "22:00", "end": "24:00"}]
    replacement = body(
        name="Sales demos (EU)",
        type="collective",
        members=[{"user_id": "ana", "time_zone": "Europe/Bucharest", "working_hours": night}],
        on_stale="proceed",
        stale_after_seconds=3600,
    )
    resp = await service.client.put(
        location, json=replacement, headers=service.headers(sub, **{"If-Match": '"v1"'})
    )
    assert resp.status == 200, await resp.text()
    replaced = await resp.json()
    assert resp.headers["ETag"] == '"v2"'
    assert (replaced["id"], replaced["created_at"]) == (created["id"], created["created_at"])
    assert replaced["type"] == "collective"
    assert replaced["members"] == replacement["members"]
    assert (replaced["on_stale"], replaced["stale_after_seconds"]) == ("proceed", 3600)
    assert replaced["buffer_before_minutes"] == 0  # a replacement: what is left out is default

    # A write based on the first read is stale now.
    resp = await service.client.put(
        location, json=body(), headers=service.headers(sub, **{"If-Match": '"v1"'})
    )
    assert resp.status == 412
    assert (await resp.json())["code"] == "precondition_failed"
    resp = await service.client.delete(
        location, headers=service.headers(sub, **{"If-Match": '"v1"'})
    )
    assert resp.status == 412

    resp = await service.client.delete(location, headers=service.headers(sub))
    assert resp.status == 204
    for method in ("GET", "DELETE"):
        gone = await service.client.request(method, location, headers=service.headers(sub))
        assert gone.status == 404
        assert gone.content_type == "application/problem+json"
        assert (await gone.json())["code"] == "calendar_not_found"
    resp = await service.client.put(location, json=body(), headers=service.headers(sub))
    assert (resp.status, (await resp.json())["code"]) == (404, "calendar_not_found")


async def test_concurrent_replacements_of_one_version_let_one_win(service: Service) -> None:
    sub = new_sub_account()
    created = await service.create(sub, body())
    location = f"/v1/sub-accounts/{sub}/calendars/{created['id']}"
    answers = await asyncio.gather(
        *(
            service.client.put(
                location,
                json=body(name=f"rename {i}"),
                headers=service.headers(sub, **{"If-Match": '"v1"'}),
            )
            for i in range(5)
        )
    )
    assert sorted(r.status for r in answers) == [200, 412, 412, 412, 412]
    final = await (await service.client.get(location, headers=service.headers(sub))).json()
    assert final["version"] == 2


INVALID = [
    ("two members, personal", {"type": "personal"}, "invalid_members", "members"),
    (
        "a member twice",
        {"members": [body()["members"][0], body()["members"][0]]},
        "invalid_members",
        "members.1.user_id",
    ),
    (
        "no such zone",
        {"members": [{"user_id": "ana", "time_zone": "Mars/Olympus_Mons"}]},
        "invalid_time_zone",
        "members.0.time_zone",
    ),
    (
        "a path, not a zone",
        {"members": [{"user_id": "ana", "time_zone": "/etc/localtime"}]},
        "invalid_time_zone",
        "members.0.time_zone",
    ),
    (
        "hours that overlap",
        {
            "members": [
                {
                    "user_id": "ana",
                    "time_zone": "UTC",
                    "working_hours": [
                        {"day": "monday", "start": "09:00", "end": "13:00"},
                        {"day": "monday", "start": "12:00", "end": "17:00"},
                    ],
                }
            ]
        },
        "invalid_working_hours",
        "members.0.working_hours",
    ),
    (
        "hours that end before they start",
        {
            "members": [
                {
                    "user_id": "ana",
                    "time_zone": "UTC",
                    "working_hours": [{"day": "friday", "start": "17:00", "end": "09:00"}],
                }
            ]
        },
        "invalid_working_hours",
        "members.0.working_hours.0",
    ),
    (
        "no such time",
        {
            "members": [
                {
                    "user_id": "ana",
                    "time_zone": "UTC",
                    "working_hours": [{"day": "friday", "start": "09:00", "end": "25:00"}],
                }
            ]
        },
        "invalid_request",
        "members.0.working_hours.0.end",
    ),
    (
        "Outlook on an event calendar",
        {"type": "event", "outlook_conflicts": True},
        "outlook_not_supported_for_event_calendars",
        None,
    ),
    ("a blank name", {"name": "   "}, "invalid_calendar", "name"),
    ("a zero slot", {"slot_minutes": 0}, "invalid_request", "slot_minutes"),
    ("an unknown field", {"colour": "red"}, "invalid_request", "colour"),
    ("an unknown type", {"type": "webinar"}, "invalid_request", "type"),
    ("an unknown stale policy", {"on_stale": "maybe"}, "invalid_request", "on_stale"),
    ("no members", {"members": []}, "invalid_request", "members"),
]


@pytest.mark.parametrize(("case", "fields", "code", "field"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_calendars_are_422_with_a_stable_code(
    service: Service, case: str, fields: dict[str, Any], code: str, field: str | None
) -> None:
    sub = new_sub_account()
    resp = await service.client.post(
        f"/v1/sub-accounts/{sub}/calendars", json=body(**fields), headers=service.headers(sub)
    )
    assert resp.status == 422, (case, await resp.text())
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["code"] == code, case
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    # Nothing was stored.
    listed = await service.client.get(
        f"/v1/sub-accounts/{sub}/calendars", headers=service.headers(sub)
    )
    assert (await listed.json())["calendars"] == []


async def test_bodies_that_are_not_json_are_refused(service: Service) -> None:
    sub = new_sub_account()
    url = f"/v1/sub-accounts/{sub}/calendars"
    resp = await service.client.post(
        url, data=b"{", headers=service.headers(sub, **{"Content-Type": "application/json"})
    )
    assert (resp.status, (await resp.json())["code"]) == (400, "malformed_json")
    resp = await service.client.post(url, data=b"name=x", headers=service.headers(sub))
    assert (resp.status, (await resp.json())["code"]) == (415, "unsupported_media_type")


async def test_event_calendars_never_use_outlook(service: Service) -> None:
    sub = new_sub_account()
    created = await service.create(sub, body(type="event", members=body()["members"][:1]))
    assert created["outlook_conflicts"] is False  # the default for event calendars
    location = f"/v1/sub-accounts/{sub}/calendars/{created['id']}"
    resp = await service.client.put(
        location,
        json=body(type="event", members=body()["members"][:1], outlook_conflicts=True),
        headers=service.headers(sub),
    )
    assert resp.status == 422
    assert (await resp.json())["code"] == "outlook_not_supported_for_event_calendars"
    # Turning a calendar with Outlook conflicts into an event calendar needs them off as well.
    other = await service.create(sub, body())
    resp = await service.client.put(
        f"/v1/sub-accounts/{sub}/calendars/{other['id']}",
        json=body(type="event", outlook_conflicts=True),
        headers=service.headers(sub),
    )
    assert (await resp.json())["code"] == "outlook_not_supported_for_event_calendars"
    unchanged = await service.client.get(location, headers=service.headers(sub))
    assert (await unchanged.json())["version"] == 1


async def test_no_answer_reveals_another_sub_accounts_calendar(service: Service) -> None:
    sub_a, sub_b = new_sub_account(), new_sub_account()
    created = await service.create(sub_a, body())
    on_a = f"/v1/sub-accounts/{sub_a}/calendars/{created['id']}"
    on_b = f"/v1/sub-accounts/{sub_b}/calendars/{created['id']}"
    # B's token on A's path: forbidden, whatever the method.
    for method in ("GET", "PUT", "DELETE"):
        resp = await service.client.request(
            method, on_a, json=body(), headers=service.headers(sub_b)
        )
        assert resp.status == 403, method
        assert (await resp.json())["code"] == "forbidden"
    resp = await service.client.post(
        f"/v1/sub-accounts/{sub_a}/calendars", json=body(), headers=service.headers(sub_b)
    )
    assert resp.status == 403
    # A's calendar id under B's path, with B's token: no such calendar there.
    resp = await service.client.get(on_b, headers=service.headers(sub_b))
    assert (resp.status, (await resp.json())["code"]) == (404, "calendar_not_found")
    # An id that is no id at all is just as unknown.
    resp = await service.client.get(
        f"/v1/sub-accounts/{sub_a}/calendars/not-a-uuid", headers=service.headers(sub_a)
    )
    assert (resp.status, (await resp.json())["code"]) == (404, "calendar_not_found")
    # No token: 401 with a challenge. A platform service's token: any sub-account.
    resp = await service.client.get(on_a)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await service.client.get(on_a, headers=service.service_headers("platform"))
    assert resp.status == 200
    listed = await service.client.get(
        f"/v1/sub-accounts/{sub_b}/calendars", headers=service.headers(sub_b)
    )
    assert (await listed.json())["calendars"] == []


async def test_the_list_pages_in_creation_order_and_filters(service: Service) -> None:
    sub = new_sub_account()
    ids = []
    for i, kind in enumerate(["round_robin", "personal", "collective", "personal", "service"]):
        members = body()["members"][:1] if kind == "personal" else body()["members"]
        if i == 3:
            members = [{"user_id": "cy", "time_zone": "UTC", "working_hours": []}]
        ids.append((await service.create(sub, body(type=kind, members=members)))["id"])
    url = f"/v1/sub-accounts/{sub}/calendars"

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (
            await service.client.get(url, params=params, headers=service.headers(sub))
        ).json()
        seen += [c["id"] for c in page["calendars"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert pages == 3

    async def listed(**params: str) -> list[str]:
        resp = await service.client.get(url, params=params, headers=service.headers(sub))
        assert resp.status == 200, await resp.text()
        return [c["id"] for c in (await resp.json())["calendars"]]

    assert await listed(type="personal") == [ids[1], ids[3]]
    assert await listed(user_id="cy") == [ids[3]]
    assert await listed(user_id="bob") == [ids[0], ids[2], ids[4]]
    for params, code in [
        ({"cursor": "bm90LWEtY3Vyc29y"}, "invalid_cursor"),
        ({"cursor": "!!"}, "invalid_cursor"),
        ({"limit": "0"}, "invalid_query"),
        ({"limit": "lots"}, "invalid_query"),
        ({"type": "webinar"}, "invalid_query"),
    ]:
        resp = await service.client.get(url, params=params, headers=service.headers(sub))
        assert (resp.status, (await resp.json())["code"]) == (422, code), params


async def test_a_calendar_with_upcoming_bookings_is_not_deleted(service: Service) -> None:
    sub = new_sub_account()
    created = await service.create(sub, body())
    location = f"/v1/sub-accounts/{sub}/calendars/{created['id']}"
    booking_id = uuid.uuid4()
    now = datetime.now(UTC)
    conn = await asyncpg.connect(service.dsn)
    try:
        await conn.execute(
            "INSERT INTO bookings (booking_id, group_id, sub_account_id, booking_calendar_id,"
            " user_id, during, status, version, title)"
            " VALUES ($1, $1, $2, $3, 'ana', tstzrange($4, $5), 'confirmed', 1, 'Demo')",
            booking_id,
            sub,
            created["id"],
            now + timedelta(days=1),
            now + timedelta(days=1, hours=1),
        )
        resp = await service.client.delete(location, headers=service.headers(sub))
        assert resp.status == 409
        assert (await resp.json())["code"] == "calendar_has_upcoming_bookings"
        assert (await service.client.get(location, headers=service.headers(sub))).status == 200
        # Once that booking is cancelled, nothing holds the calendar.
        await conn.execute(
            "UPDATE bookings SET status = 'cancelled' WHERE booking_id = $1", booking_id
        )
        assert (await service.client.delete(location, headers=service.headers(sub))).status == 204
    finally:
        await conn.close()


async def test_load_calendar_reads_what_the_api_wrote(service: Service) -> None:
    sub = new_sub_account()
    created = await service.create(sub, body(buffer_after_minutes=15))
    conn = await asyncpg.connect(service.dsn)
    try:
        calendar = await load_calendar(conn, sub, created["id"])
        assert str(calendar.id) == created["id"]
        assert [m.user_id for m in calendar.members] == ["ana", "bob"]
        assert calendar.members[1].time_zone == "America/New_York"
        assert calendar.buffer_after == timedelta(minutes=15)
        assert calendar.version == 1
        async with conn.transaction():
            locked = await load_calendar(conn, sub, uuid.UUID(created["id"]), lock="key_share")
        assert locked == calendar
        for other_sub, calendar_id in [
            (new_sub_account(), created["id"]),
            (sub, str(uuid.uuid4())),
            (sub, "not-a-uuid"),
        ]:
            with pytest.raises(CalendarNotFound):
                await load_calendar(conn, other_sub, calendar_id)
    finally:
        await conn.close()
    # What was stored computes slots: Monday 1 June 2026, both members 09:00-17:00 local.
    slots = free_slots(
        calendar,
        {},
        start=datetime(2026, 6, 1, tzinfo=UTC),
        end=datetime(2026, 6, 2, tzinfo=UTC),
        now=datetime(2026, 5, 1, tzinfo=UTC),
    )
    assert slots[0].start == datetime(2026, 6, 1, 6, tzinfo=UTC)  # 09:00 in Bucharest
    assert slots[0].members == ("ana",)
    assert slots[-1].end == datetime(2026, 6, 1, 21, tzinfo=UTC)  # 17:00 in New York
    assert slots[-1].members == ("bob",)


def test_the_calendar_routes_are_documented_in_valid_openapi_3_1() -> None:
    document = {
        "openapi": "3.1.0",
        "info": {"title": "calendars", "version": "1"},
        "paths": calendars_api.PATHS,
        "components": {"schemas": calendars_api.SCHEMAS},
    }
    validate(document)
    app = web.Application()
    calendars_api.setup(app)
    registered = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    documented = {
        (method, path)
        for path, item in calendars_api.PATHS.items()
        for method in item
        if method != "parameters"
    }
    assert registered == documented
