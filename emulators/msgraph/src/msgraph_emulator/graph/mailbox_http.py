"""HTTP plumbing shared by the calendar routes: caller's mailbox, Prefer headers, OData output."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from msgraph_emulator.graph.auth import authenticate
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.mailbox.errors import MailboxError
from msgraph_emulator.mailbox.mailboxes import Mailboxes
from msgraph_emulator.mailbox.render import Owner, View
from msgraph_emulator.mailbox.store import Mailbox
from msgraph_emulator.mailbox.timezones import is_known_zone, resolve_zone
from msgraph_emulator.state import EmulatorState
from msgraph_emulator.users import User

EMU = web.AppKey("msgraph_emulator.mailbox_state", EmulatorState)
READ = (
    "Calendars.Read",
    "Calendars.ReadWrite",
    "Calendars.Read.Shared",
    "Calendars.ReadWrite.Shared",
)
WRITE = ("Calendars.ReadWrite", "Calendars.ReadWrite.Shared")
ODATA_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
_PREFER_TZ = re.compile(r'outlook\.timezone\s*=\s*"?([^",]+)"?', re.IGNORECASE)
_PREFER_PAGE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)
_PREFER_ID = re.compile(r'IdType\s*=\s*"?ImmutableId"?', re.IGNORECASE)
MAX_PAGE = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def graph_handler(fn: Handler) -> Handler:
    """Answer domain errors (MailboxError) with Graph's error body."""

    @functools.wraps(fn)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except MailboxError as err:
            raise GraphError(err.status, err.code, err.message) from err

    return wrapped


@dataclass(frozen=True)
class Caller:
    state: EmulatorState
    user: User
    mailbox: Mailbox

    @property
    def mailboxes(self) -> Mailboxes:
        return self.state.mailboxes

    @property
    def owner(self) -> Owner:
        return Owner(self.user.display_name, self.user.user_principal_name, self.user.is_personal)


def caller(request: web.Request, scopes: tuple[str, ...] = READ) -> Caller:
    state = request.app[EMU]
    ctx = authenticate(request, state.signing_key, any_of=scopes)
    user = state.users.get(ctx.user_id)
    if user is None or user.tenant_id != ctx.tenant_id:
        raise GraphError(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    return Caller(state, user, state.mailboxes.ensure(user))


@dataclass(frozen=True)
class Prefs:
    view: View
    page_size: int | None
    applied: tuple[str, ...]


def prefs(
    request: web.Request,
    *,
    select: frozenset[str] | None = None,
    expand_ext: frozenset[str] | None = None,
) -> Prefs:
    header = ",".join(request.headers.getall("Prefer", []))
    applied: list[str] = []
    zone, label = None, "UTC"
    if m := _PREFER_TZ.search(header):
        name = m.group(1).strip()
        if is_known_zone(name):
            zone, label = resolve_zone(name), name
            applied.append(f'outlook.timezone="{name}"')
    size = None
    if m := _PREFER_PAGE.search(header):
        size = max(1, min(int(m.group(1)), MAX_PAGE))
        applied.append(f"odata.maxpagesize={size}")
    if _PREFER_ID.search(header):
        applied.append('IdType="ImmutableId"')
    return Prefs(View(zone, label, select, expand_ext), size, tuple(applied))


def origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def context_url(request: web.Request, user: User, suffix: str) -> str:
    return f"{origin(request)}/v1.0/$metadata#users('{user.id}')/{suffix}"


def link(request: web.Request, params: dict[str, str]) -> str:
    return f"{origin(request)}{request.path}?{urlencode(params, safe='$:')}"


def respond(body: Any, *, status: int = 200, applied: tuple[str, ...] = ()) -> web.Response:
    headers = {"Content-Type": ODATA_JSON}
    if applied:
        headers["Preference-Applied"] = ",".join(applied)
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)


def bad_query(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


async def read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GraphError(400, "RequestBodyRead", "Invalid JSON in the request body.") from exc
