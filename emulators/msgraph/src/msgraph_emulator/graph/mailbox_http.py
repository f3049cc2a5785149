"""HTTP plumbing shared by the calendar routes: caller's mailbox, Prefer headers, OData output."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from msgraph_emulator.graph.auth import authenticate
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.graph.mailbox_access import Grant, delegate_grant, resolve_user
from msgraph_emulator.mailbox.errors import MailboxError, access_denied
from msgraph_emulator.mailbox.mailboxes import Mailboxes
from msgraph_emulator.mailbox.model import Calendar
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


def _prefer(request: web.Request) -> str:
    return ",".join(request.headers.getall("Prefer", []))


def graph_handler(fn: Handler) -> Handler:
    """Answer domain errors (MailboxError) with Graph's error body; echo ``IdType`` preferences."""

    @functools.wraps(fn)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response = await fn(request)
        except MailboxError as err:
            raise GraphError(err.status, err.code, err.message) from err
        if _PREFER_ID.search(_prefer(request)):
            # Ids here never change (they are immutable already); Graph echoes the preference.
            applied = response.headers.get("Preference-Applied")
            echo = 'IdType="ImmutableId"'
            response.headers["Preference-Applied"] = f"{applied},{echo}" if applied else echo
        return response

    return wrapped


@dataclass(frozen=True)
class Caller:
    """The signed-in user (``me``) and the mailbox the route addresses (``user``'s).

    ``grant`` is "owner" for the caller's own mailbox, else the share ("read"/"write") that lets
    a delegate in (see ``mailbox_access``); ``ref`` is the ``/users/{ref}`` segment as sent.
    """

    state: EmulatorState
    user: User
    mailbox: Mailbox
    me: User
    grant: Grant = "owner"
    ref: str | None = None

    @property
    def mailboxes(self) -> Mailboxes:
        return self.state.mailboxes

    @property
    def owner(self) -> Owner:
        return Owner(self.user.display_name, self.user.user_principal_name, self.user.is_personal)

    @property
    def delegate(self) -> bool:
        return self.grant != "owner"

    def check_calendar(self, calendar: Calendar) -> Calendar:
        """A delegate reaches the owner's default calendar only (403 otherwise)."""
        if self.delegate and not calendar.is_default:
            raise access_denied()
        return calendar

    def as_seen(self, calendar: Calendar) -> Calendar:
        """The calendar as the caller sees it: a delegate can't share it, edits per the share."""
        return replace(calendar, access=self.grant) if self.delegate else calendar


def caller(request: web.Request, scopes: tuple[str, ...] = READ) -> Caller:
    state = request.app[EMU]
    ctx = authenticate(request, state.signing_key, any_of=scopes)
    me = state.users.get(ctx.user_id)
    if me is None or me.tenant_id != ctx.tenant_id:
        raise GraphError(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    mine = state.mailboxes.ensure(me)
    ref = request.match_info.get("user_ref")
    if ref is None:
        return Caller(state, me, mine, me)
    target = resolve_user(state.users, me, ref)
    if target is me:
        return Caller(state, me, mine, me, ref=ref)
    grant = delegate_grant(mine, target, ctx.scopes, writing=scopes == WRITE)
    return Caller(state, target, state.mailboxes.ensure(target), me, grant, ref)


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
    header = _prefer(request)
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
    return Prefs(View(zone, label, select, expand_ext), size, tuple(applied))


def origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def context_url(request: web.Request, who: Caller, suffix: str) -> str:
    """``$metadata#users('{id}')/...``: the user id for /me, the path segment as sent otherwise."""
    ref = who.user.id if who.ref is None else quote(who.ref, safe="")
    return f"{origin(request)}/v1.0/$metadata#users('{ref}')/{suffix}"


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
