"""The Outlook connection of one platform user, and the product's rules for its calendars.

Pure Python: no I/O. A :class:`Connection` changes only through the functions below, each of which
returns a new version (the version is the ETag of the settings API and the snapshot's version).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal
from uuid import UUID

from calsync_connector.domain.errors import LinkedCalendarRequiresWriteAccess, UnknownCalendar

ConnectionStatus = Literal["active", "reauth_required", "disconnected"]
AccountKind = Literal["work", "personal"]
Access = Literal["writer", "reader"]
SyncPreference = Literal["one_way", "two_way"]
BlockingShowAs = Literal["busy", "tentative", "oof", "workingElsewhere"]

#: The Microsoft account tenant of every personal account (outlook.com, hotmail.com, ...).
PERSONAL_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


@dataclass(frozen=True)
class MicrosoftAccount:
    """Who signed in. ``object_id`` + ``tenant_id`` identify the account, never the email."""

    tenant_id: str
    object_id: str
    email: str
    display_name: str | None
    time_zone: str | None

    @property
    def kind(self) -> AccountKind:
        return "personal" if self.tenant_id == PERSONAL_TENANT else "work"


@dataclass(frozen=True)
class Calendar:
    id: str
    name: str
    access: Access
    is_default: bool = False
    owner_name: str | None = None
    owner_address: str | None = None


@dataclass(frozen=True)
class CalendarSettings:
    linked_calendar_id: str | None = None
    conflict_calendar_ids: tuple[str, ...] = ()
    sync_preference: SyncPreference = "one_way"
    blocking_show_as: tuple[BlockingShowAs, ...] = ("busy",)


@dataclass(frozen=True)
class Warning:
    """Something the user should know and act on (shown by the API, kept until resolved)."""

    code: str
    calendar_id: str | None = None


@dataclass(frozen=True)
class Connection:
    id: UUID
    sub_account_id: str
    user_id: str
    account: MicrosoftAccount
    status: ConnectionStatus
    calendars: tuple[Calendar, ...]
    settings: CalendarSettings
    version: int
    created_at: datetime
    updated_at: datetime
    warnings: tuple[Warning, ...] = field(default=())

    def calendar(self, calendar_id: str) -> Calendar | None:
        return next((c for c in self.calendars if c.id == calendar_id), None)

    @property
    def writable_linked_calendar_id(self) -> str | None:
        """Where bookings go: the Linked Calendar while it is there and writable."""
        linked = self.settings.linked_calendar_id
        calendar = self.calendar(linked) if linked else None
        return linked if calendar is not None and calendar.access == "writer" else None


def default_settings(calendars: tuple[Calendar, ...]) -> CalendarSettings:
    """A new connection writes to and blocks on the default calendar when it may write there."""
    default = next((c for c in calendars if c.is_default and c.access == "writer"), None)
    if default is None:
        return CalendarSettings()
    return CalendarSettings(linked_calendar_id=default.id, conflict_calendar_ids=(default.id,))


def new_connection(
    connection_id: UUID,
    sub_account_id: str,
    user_id: str,
    account: MicrosoftAccount,
    calendars: tuple[Calendar, ...],
    now: datetime,
) -> Connection:
    return Connection(
        id=connection_id,
        sub_account_id=sub_account_id,
        user_id=user_id,
        account=account,
        status="active",
        calendars=calendars,
        settings=default_settings(calendars),
        version=1,
        created_at=now,
        updated_at=now,
    )


@dataclass(frozen=True)
class SettingsChange:
    connection: Connection
    #: What the service did beyond what was asked (e.g. the Linked Calendar added to conflicts).
    notes: tuple[str, ...]


def change_settings(conn: Connection, wanted: CalendarSettings, now: datetime) -> SettingsChange:
    """Apply the user's choice under the product's rules."""
    asked = {*wanted.conflict_calendar_ids}
    if wanted.linked_calendar_id is not None:
        asked.add(wanted.linked_calendar_id)
    unknown = sorted(i for i in asked if conn.calendar(i) is None)
    if unknown:
        raise UnknownCalendar(tuple(unknown))
    notes: list[str] = []
    conflicts = tuple(dict.fromkeys(wanted.conflict_calendar_ids))
    linked = wanted.linked_calendar_id
    if linked is not None:
        calendar = conn.calendar(linked)
        assert calendar is not None
        if calendar.access != "writer":
            raise LinkedCalendarRequiresWriteAccess(linked)
        if linked not in conflicts:
            conflicts = (linked, *conflicts)
            notes.append("linked_calendar_added_to_conflict_calendars")
    settings = replace(
        wanted,
        conflict_calendar_ids=conflicts,
        blocking_show_as=tuple(dict.fromkeys(wanted.blocking_show_as)),
    )
    warnings = tuple(w for w in conn.warnings if w.code != "linked_calendar_not_writable")
    changed = replace(
        conn, settings=settings, warnings=warnings, version=conn.version + 1, updated_at=now
    )
    return SettingsChange(changed, tuple(notes))


@dataclass(frozen=True)
class CalendarsRefresh:
    connection: Connection
    vanished: tuple[str, ...]
    lost_write_access: tuple[str, ...]


def refresh_calendars(
    conn: Connection, calendars: tuple[Calendar, ...], now: datetime
) -> CalendarsRefresh:
    """Take the calendar list Microsoft now reports. Calendars that vanished leave the settings;
    a Linked Calendar that lost write access stays chosen but receives nothing, with a warning."""
    present = {c.id: c for c in calendars}
    vanished = tuple(c.id for c in conn.calendars if c.id not in present)
    lost = tuple(
        c.id
        for c in conn.calendars
        if c.access == "writer" and c.id in present and present[c.id].access != "writer"
    )
    settings = conn.settings
    linked = settings.linked_calendar_id
    warnings = [w for w in conn.warnings if w.calendar_id in present]
    if linked is not None and linked not in present:
        warnings.append(Warning("linked_calendar_vanished", linked))
        linked = None
    if linked is not None and present[linked].access != "writer":
        if not any(w.code == "linked_calendar_not_writable" for w in warnings):
            warnings.append(Warning("linked_calendar_not_writable", linked))
    elif linked is not None:
        warnings = [w for w in warnings if w.code != "linked_calendar_not_writable"]
    settings = replace(
        settings,
        linked_calendar_id=linked,
        conflict_calendar_ids=tuple(i for i in settings.conflict_calendar_ids if i in present),
    )
    changed = replace(
        conn,
        calendars=calendars,
        settings=settings,
        warnings=tuple(warnings),
        version=conn.version + 1,
        updated_at=now,
    )
    return CalendarsRefresh(changed, vanished, lost)


def reconnect(
    conn: Connection, account: MicrosoftAccount, calendars: tuple[Calendar, ...], now: datetime
) -> Connection:
    """The same account signed in again (a repair): active again, settings kept."""
    refreshed = refresh_calendars(conn, calendars, now).connection
    return replace(refreshed, account=account, status="active")


def require_reauth(conn: Connection, now: datetime) -> Connection:
    if conn.status == "reauth_required":
        return conn
    return replace(conn, status="reauth_required", version=conn.version + 1, updated_at=now)


def disconnect(conn: Connection, now: datetime) -> Connection:
    return replace(conn, status="disconnected", version=conn.version + 1, updated_at=now)
