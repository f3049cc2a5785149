"""Busy time, free slots and bookings of a sub-account.

All routes live under ``/v1/sub-accounts/{sub_account_id}``; the connector's token rules apply.

``POST .../bookings`` needs an ``Idempotency-Key`` header (1-255 visible ASCII characters): a
retry with the same key (within the retention, 24 h by default) gets the first answer byte for
byte, with ``Idempotent-Replayed: true``; the same key with another request is 422
``idempotency_key_reused``. Answers kept: 201 and the booking errors that a retry would repeat
(404, 409 ``slot_unavailable``, 422 rule errors); ``calendar_sync_stale`` is not kept (the key
may be retried once the sync recovers). Shape errors (422 ``invalid_request``) come before the
key is looked at and are never kept.
"""

from __future__ import annotations

import json
import zoneinfo
from typing import Any, TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ValidationError

from calsync_availability.domain.bookings import BookingNotFound
from calsync_availability.domain.errors import AvailabilityError
from calsync_availability.entrypoints.booking_views import (
    BookingDocument,
    BookingRequest,
    BusyDocument,
    FreeSlotsDocument,
    FreeSlotsQuery,
    RescheduleRequest,
    WindowQuery,
    booking_document,
    dumps,
)
from calsync_availability.entrypoints.openapi_parts import (
    AUTH_PROBLEMS,
    BODY_PROBLEMS,
    json_content,
    problem,
    schemas,
)
from calsync_availability.service_layer.availability_queries import AvailabilityQueries
from calsync_availability.service_layer.bookings import (
    Bookings,
    BookingView,
    NewBooking,
    request_hash,
)
from calsync_common.http import auth
from calsync_common.http.problems import PROBLEM_JSON, Problem, read_body

BOOKINGS = web.AppKey("bookings", Bookings)
QUERIES = web.AppKey("availability_queries", AvailabilityQueries)

BASE = "/v1/sub-accounts/{sub_account_id}"
BUSY = BASE + "/users/{user_id}/busy"
FREE_SLOTS = BASE + "/calendars/{calendar_id}/free-slots"
ALL_BOOKINGS = BASE + "/bookings"
ONE_BOOKING = ALL_BOOKINGS + "/{booking_id}"
MAX_KEY_LENGTH = 255


def problem_of(exc: AvailabilityError) -> Problem:
    return Problem(exc.status, exc.code, exc.title, exc.detail, **exc.extensions())


def _sub_account(request: web.Request) -> str:
    auth.sub_account_caller(request)
    return request.match_info["sub_account_id"]


def _booking_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["booking_id"])
    except ValueError:
        raise problem_of(BookingNotFound()) from None  # not an id of ours: as unknown as any


M = TypeVar("M", bound=BaseModel)


def _query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise Problem(
            422, "invalid_query", "The query parameters are not valid", errors=errors
        ) from None


def _idempotency_key(request: web.Request) -> str:
    keys = request.headers.getall("Idempotency-Key", [])
    if not keys:
        raise Problem(
            400, "idempotency_key_required", "POST /bookings needs an Idempotency-Key header"
        )
    key = keys[0]
    if len(keys) > 1 or not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(
            400,
            "invalid_idempotency_key",
            "The Idempotency-Key must be one header of 1-255 printable characters",
        )
    return key


def _json(document: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(document), status=status, content_type="application/json")


async def get_busy(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    user_id = request.match_info["user_id"]
    q = _query(request, WindowQuery)
    try:
        found = await request.app[QUERIES].member_busy(sub_account_id, user_id, q.start, q.end)
    except AvailabilityError as exc:
        raise problem_of(exc) from None
    busy = []  # datetimes are written by orjson, as isoformat() would write them
    for b in found.busy:
        item: dict[str, Any] = {
            "start": b.start,
            "end": b.end,
            "source": b.source,
        }
        if b.source == "outlook":
            item |= {
                "show_as": b.show_as,
                "connection_id": str(b.connection_id),
                "calendar_id": b.calendar_id,
                "event_id": b.event_id,
            }
        else:
            item["booking_id"] = str(b.booking_id)
        busy.append(item)
    calendars = [
        {
            "connection_id": str(f.connection_id),
            "calendar_id": f.calendar_id,
            "connection_status": f.connection_status,
            "status": f.status,
            "subscription": f.subscription,
            "last_synced_at": f.last_synced_at,
            "stale": stale,
        }
        for f, stale in found.calendars
    ]
    return _json(
        {
            "user_id": user_id,
            "start": q.start,
            "end": q.end,
            "busy": busy,
            "calendars": calendars,
            "stale": any(stale for _, stale in found.calendars),
        }
    )


async def get_free_slots(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    q = _query(request, FreeSlotsQuery)
    try:
        found = await request.app[QUERIES].calendar_slots(
            sub_account_id, request.match_info["calendar_id"], q.start, q.end, q.include_outlook
        )
    except AvailabilityError as exc:
        raise problem_of(exc) from None
    zone = zoneinfo.ZoneInfo(q.timezone)
    # Aware datetimes and tuples are written by orjson itself, as isoformat() and lists would
    # be: half the cost of rendering them in Python.
    return _json(
        {
            "calendar_id": str(found.calendar.id),
            "timezone": q.timezone,
            "start": q.start.astimezone(zone),
            "end": q.end.astimezone(zone),
            "slots": [
                {
                    "start": s.start.astimezone(zone),
                    "end": s.end.astimezone(zone),
                    "members": s.members,
                }
                for s in found.slots
            ],
            "stale": [{"user_id": u, "calendars": c} for u, c in sorted(found.stale.items())],
        }
    )


async def create_booking(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    key = _idempotency_key(request)
    body = await read_body(request, BookingRequest)
    instance = request.rel_url.raw_path

    def render(outcome: BookingView | AvailabilityError) -> tuple[int, bytes]:
        if isinstance(outcome, AvailabilityError):
            problem = problem_of(outcome)
            return problem.status, json.dumps(problem.body(instance)).encode()
        return 201, dumps(booking_document(outcome))

    fingerprint = request_hash("POST", instance, body.model_dump(mode="json"))
    new = NewBooking(
        booking_calendar_id=body.booking_calendar_id,
        start=body.start,
        end=body.end,
        title=body.title,
        user_id=body.user_id,
        use_outlook_conflicts=body.use_outlook_conflicts,
    )
    try:
        answer = await request.app[BOOKINGS].book(sub_account_id, key, fingerprint, new, render)
    except AvailabilityError as exc:
        raise problem_of(exc) from None
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    if answer.status == 201:
        booking_id = json.loads(answer.body)["id"]
        headers["Location"] = f"{request.rel_url.raw_path}/{booking_id}"
    return web.Response(
        body=answer.body,
        status=answer.status,
        content_type="application/json" if answer.status < 400 else PROBLEM_JSON,
        headers=headers,
    )


async def get_booking(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    try:
        view = await request.app[BOOKINGS].view(sub_account_id, _booking_id(request))
    except AvailabilityError as exc:
        raise problem_of(exc) from None
    return _json(booking_document(view))


async def reschedule_booking(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    booking_id = _booking_id(request)
    body = await read_body(request, RescheduleRequest)
    try:
        view = await request.app[BOOKINGS].reschedule(
            sub_account_id, booking_id, body.start, body.end
        )
    except AvailabilityError as exc:
        raise problem_of(exc) from None
    return _json(booking_document(view))


async def cancel_booking(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    try:
        view = await request.app[BOOKINGS].cancel(sub_account_id, _booking_id(request))
    except AvailabilityError as exc:
        raise problem_of(exc) from None
    return _json(booking_document(view))


def setup(app: web.Application) -> None:
    """Register this module's routes on app."""
    app.router.add_get(BUSY, get_busy)
    app.router.add_get(FREE_SLOTS, get_free_slots)
    app.router.add_post(ALL_BOOKINGS, create_booking)
    app.router.add_get(ONE_BOOKING, get_booking)
    app.router.add_patch(ONE_BOOKING, reschedule_booking)
    app.router.add_delete(ONE_BOOKING, cancel_booking)


# --- OpenAPI --------------------------------------------------------------------------------


def _string(name: str, where: str = "path", **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": "string", **schema},
    }


def _time(name: str) -> dict[str, Any]:
    return {**_string(name, "query", format="date-time"), "required": True}


_AUTH = AUTH_PROBLEMS
_NUL = {"400": problem("A NUL character (invalid_characters)")}
_BAD_BODY = BODY_PROBLEMS
_SUB = [_string("sub_account_id")]
_IDEMPOTENCY_KEY = {
    **_string("Idempotency-Key", "header", minLength=1, maxLength=MAX_KEY_LENGTH),
    "required": True,
}
_ONE = [*_SUB, _string("booking_id")]
_BOOKING = {"description": "The booking", "content": json_content("BookingDocument")}
_WINDOW_ERRORS = "invalid_query, invalid_window (start < end, at most 62 days)"
_RULES = (
    "invalid_request (shape), invalid_booking_time, slot_not_offered (working hours, slot "
    "grid, minimum notice), user_not_member, calendar_has_no_members, "
    "outlook_not_supported_for_event_calendars"
)

#: OpenAPI path items of this module's routes (merged by openapi.document).
PATHS: dict[str, Any] = {
    BUSY: {
        "parameters": [*_SUB, _string("user_id")],
        "get": {
            "operationId": "getBusy",
            "tags": ["availability"],
            "summary": "A member's busy time (Outlook, bookings) and calendar freshness",
            "description": "Outlook time shows its time, showAs and source ids only.",
            "parameters": [_time("start"), _time("end")],
            "responses": {
                "200": {"description": "Busy time", "content": json_content("BusyDocument")},
                **_NUL,
                "422": problem(_WINDOW_ERRORS),
                **_AUTH,
            },
        },
    },
    FREE_SLOTS: {
        "parameters": [*_SUB, _string("calendar_id")],
        "get": {
            "operationId": "getFreeSlots",
            "tags": ["availability"],
            "summary": "Bookable slots of a booking calendar",
            "description": (
                "Working hours minus busy time and buffers, by calendar type. include_outlook="
                "true on an event calendar is outlook_not_supported_for_event_calendars."
            ),
            "parameters": [
                _time("start"),
                _time("end"),
                {**_string("timezone", "query", maxLength=64), "description": "IANA zone"},
                {"name": "include_outlook", "in": "query", "schema": {"type": "boolean"}},
            ],
            "responses": {
                "200": {"description": "Free slots", "content": json_content("FreeSlotsDocument")},
                **_NUL,
                "404": problem("No such calendar (calendar_not_found)"),
                "422": problem(f"{_WINDOW_ERRORS}, outlook_not_supported_for_event_calendars"),
                **_AUTH,
            },
        },
    },
    ALL_BOOKINGS: {
        "parameters": _SUB,
        "post": {
            "operationId": "createBooking",
            "tags": ["bookings"],
            "summary": "Book a slot (idempotent with Idempotency-Key)",
            "parameters": [_IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": json_content("BookingRequest")},
            "responses": {
                "201": {
                    "description": "Booked",
                    "headers": {
                        "Location": {"schema": {"type": "string"}},
                        "Idempotent-Replayed": {"schema": {"type": "string"}},
                    },
                    "content": json_content("BookingDocument"),
                },
                "400": problem(
                    "idempotency_key_required, invalid_idempotency_key, malformed_json, "
                    "invalid_characters"
                ),
                "404": problem("No such calendar (calendar_not_found)"),
                "409": problem(
                    "slot_unavailable (with `conflicts`: member, start, end, source), "
                    "calendar_sync_stale (with `stale`)"
                ),
                "415": _BAD_BODY["415"],
                "422": problem(f"{_RULES}, idempotency_key_reused"),
                **_AUTH,
            },
        },
    },
    ONE_BOOKING: {
        "parameters": _ONE,
        "get": {
            "operationId": "getBooking",
            "tags": ["bookings"],
            "summary": "A booking, with its write-back outcome and Outlook conflicts",
            "responses": {
                "200": _BOOKING,
                **_NUL,
                "404": problem("booking_not_found"),
                **_AUTH,
            },
        },
        "patch": {
            "operationId": "rescheduleBooking",
            "tags": ["bookings"],
            "summary": "Reschedule a booking (the same rules as booking; a new version)",
            "requestBody": {"required": True, "content": json_content("RescheduleRequest")},
            "responses": {
                "200": _BOOKING,
                **_BAD_BODY,
                "404": problem("booking_not_found, calendar_not_found"),
                "409": problem("slot_unavailable, calendar_sync_stale, booking_cancelled"),
                "422": problem(_RULES),
                **_AUTH,
            },
        },
        "delete": {
            "operationId": "cancelBooking",
            "tags": ["bookings"],
            "summary": "Cancel a booking (cancelling a cancelled booking changes nothing)",
            "responses": {
                "200": _BOOKING,
                **_NUL,
                "404": problem("booking_not_found"),
                **_AUTH,
            },
        },
    },
}

#: Component schemas the path items refer to (#/components/schemas/...). ``Problem`` is the
#: calendars module's.
SCHEMAS: dict[str, Any] = {
    **schemas(BookingRequest, RescheduleRequest, mode="validation"),
    **schemas(BookingDocument, BusyDocument, FreeSlotsDocument, mode="serialization"),
}
