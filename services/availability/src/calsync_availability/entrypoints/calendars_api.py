"""Booking calendars of a sub-account: calendars, members and working hours (CRUD).

All routes live under ``/v1/sub-accounts/{sub_account_id}``; the connector's token rules apply
(a sub-account token acts on its own sub-account only). A change is a full replacement (``PUT``
with the whole document, ``If-Match`` optional: with it, a write based on an old read is ``412``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from calsync_availability.domain.booking_calendars import CALENDAR_TYPES
from calsync_availability.entrypoints.calendar_views import (
    BookingCalendarDocument,
    CalendarList,
    CalendarListQuery,
    CalendarRequest,
    calendar_document,
    decode_cursor,
    encode_cursor,
    etag,
    parse_if_match,
)
from calsync_availability.entrypoints.openapi_parts import (
    AUTH_PROBLEMS,
    BODY_PROBLEMS,
    json_content,
    problem,
    schemas,
)
from calsync_availability.service_layer.calendars import CalendarsService
from calsync_common.http import auth
from calsync_common.http.problems import Problem, read_body

CALENDARS = web.AppKey("booking_calendars", CalendarsService)
BASE = "/v1/sub-accounts/{sub_account_id}/calendars"
ONE = BASE + "/{calendar_id}"
_ROUTE = "booking-calendar"


def _sub_account(request: web.Request) -> str:
    auth.sub_account_caller(request)
    return request.match_info["sub_account_id"]


def _document(request: web.Request, calendar: Any, *, status: int = 200) -> web.Response:
    headers = {"ETag": etag(calendar)}
    if status == 201:
        url = request.app.router[_ROUTE].url_for(
            sub_account_id=calendar.sub_account_id, calendar_id=str(calendar.id)
        )
        headers["Location"] = str(url)
    return web.json_response(calendar_document(calendar), status=status, headers=headers)


async def create_calendar(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    body = await read_body(request, CalendarRequest)
    created = await request.app[CALENDARS].create(sub_account_id, body.to_draft())
    return _document(request, created, status=201)


async def list_calendars(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    query = _query(request, CalendarListQuery)
    page = await request.app[CALENDARS].list(
        sub_account_id,
        limit=query.limit,
        after=decode_cursor(query.cursor) if query.cursor else None,
        user_id=query.user_id,
        calendar_type=query.type,
    )
    return web.json_response(
        {
            "calendars": [calendar_document(c) for c in page.calendars],
            "next_cursor": encode_cursor(page.next) if page.next else None,
        }
    )


async def get_calendar(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    found = await request.app[CALENDARS].get(sub_account_id, request.match_info["calendar_id"])
    return _document(request, found)


async def replace_calendar(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    body = await read_body(request, CalendarRequest)
    changed = await request.app[CALENDARS].replace(
        sub_account_id,
        request.match_info["calendar_id"],
        body.to_draft(),
        parse_if_match(request.headers.get("If-Match")),
    )
    return _document(request, changed)


async def delete_calendar(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    await request.app[CALENDARS].delete(
        sub_account_id,
        request.match_info["calendar_id"],
        parse_if_match(request.headers.get("If-Match")),
    )
    return web.Response(status=204)


M = TypeVar("M", bound=BaseModel)


def _query(request: web.Request, model: type[M]) -> M:
    """The query string validated as ``model``, or 422 ``invalid_query`` (as ``read_body``)."""
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


def setup(app: web.Application) -> None:
    """Register this module's routes on app."""
    app.router.add_post(BASE, create_calendar)
    app.router.add_get(BASE, list_calendars)
    app.router.add_get(ONE, get_calendar, name=_ROUTE)
    app.router.add_put(ONE, replace_calendar)
    app.router.add_delete(ONE, delete_calendar)


# --- OpenAPI --------------------------------------------------------------------------------


_ETAG = {"ETag": {"description": 'The version, "v<n>"', "schema": {"type": "string"}}}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'The ETag last read ("v<n>"); another version is 412 precondition_failed.',
    "schema": {"type": "string"},
}
_AUTH = AUTH_PROBLEMS
_BODY_ERRORS = {
    **BODY_PROBLEMS,
    "422": problem(
        "A rule is broken: invalid_request (shape), invalid_calendar, invalid_members, "
        "invalid_time_zone, invalid_working_hours, outlook_not_supported_for_event_calendars"
    ),
}
_NOT_FOUND = {"404": problem("No such calendar in this sub-account (calendar_not_found)")}
_STALE = {"412": problem("If-Match names another version (precondition_failed)")}
_PATH = [{"name": "sub_account_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_ONE = [
    *_PATH,
    {"name": "calendar_id", "in": "path", "required": True, "schema": {"type": "string"}},
]
_DOCUMENT = {
    "description": "The calendar",
    "headers": _ETAG,
    "content": json_content("BookingCalendarDocument"),
}
_LIST_PARAMETERS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    {"name": "cursor", "in": "query", "schema": {"type": "string", "maxLength": 200}},
    {"name": "user_id", "in": "query", "description": "Only calendars with this member",
     "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
    {"name": "type", "in": "query", "schema": {"type": "string", "enum": list(CALENDAR_TYPES)}},
]  # fmt: skip

#: OpenAPI path items of this module's routes (merged by openapi.document).
PATHS: dict[str, Any] = {
    BASE: {
        "parameters": _PATH,
        "post": {
            "operationId": "createCalendar",
            "tags": ["calendars"],
            "summary": "Create a booking calendar",
            "requestBody": {"required": True, "content": json_content("CalendarRequest")},
            "responses": {
                "201": {
                    "description": "Created",
                    "headers": {
                        **_ETAG,
                        "Location": {"description": "The calendar", "schema": {"type": "string"}},
                    },
                    "content": json_content("BookingCalendarDocument"),
                },
                **_BODY_ERRORS,
                **_AUTH,
            },
        },
        "get": {
            "operationId": "listCalendars",
            "tags": ["calendars"],
            "summary": "The sub-account's booking calendars, oldest first, a page at a time",
            "parameters": _LIST_PARAMETERS,
            "responses": {
                "200": {"description": "A page", "content": json_content("CalendarList")},
                "400": problem("A NUL character (invalid_characters)"),
                "422": problem("Bad query parameters (invalid_query, invalid_cursor)"),
                **_AUTH,
            },
        },
    },
    ONE: {
        "parameters": _ONE,
        "get": {
            "operationId": "getCalendar",
            "tags": ["calendars"],
            "summary": "One booking calendar",
            "responses": {
                "200": _DOCUMENT,
                "400": problem("A NUL character (invalid_characters)"),
                **_NOT_FOUND,
                **_AUTH,
            },
        },
        "put": {
            "operationId": "replaceCalendar",
            "tags": ["calendars"],
            "summary": "Replace a booking calendar (the whole document)",
            "parameters": [_IF_MATCH],
            "requestBody": {"required": True, "content": json_content("CalendarRequest")},
            "responses": {
                "200": _DOCUMENT,
                **_BODY_ERRORS,
                **_NOT_FOUND,
                **_STALE,
                **_AUTH,
            },
        },
        "delete": {
            "operationId": "deleteCalendar",
            "tags": ["calendars"],
            "summary": "Delete a booking calendar (refused while it has upcoming bookings)",
            "parameters": [_IF_MATCH],
            "responses": {
                "204": {"description": "Deleted"},
                "400": problem("A NUL character (invalid_characters)"),
                "409": problem("Confirmed bookings not ended (calendar_has_upcoming_bookings)"),
                **_NOT_FOUND,
                **_STALE,
                **_AUTH,
            },
        },
    },
}

_PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details with a stable code",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

#: Component schemas the path items refer to (#/components/schemas/...).
SCHEMAS: dict[str, Any] = {
    "Problem": _PROBLEM_SCHEMA,
    **schemas(CalendarRequest, mode="validation"),
    **schemas(BookingCalendarDocument, CalendarList, mode="serialization"),
}
