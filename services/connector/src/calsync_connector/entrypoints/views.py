"""How connections look over HTTP (JSON), and the request bodies the API accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from calsync_connector.adapters.repository import Freshness
from calsync_connector.domain.model import (
    BlockingShowAs,
    CalendarSettings,
    CalendarsRefresh,
    Connection,
)
from calsync_connector.service_layer.connections import ConnectionView


class StartConnectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    return_url: str = Field(min_length=1, max_length=2048)


class SettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    linked_calendar_id: str | None = None
    conflict_calendar_ids: list[str] = Field(default_factory=list, max_length=100)
    sync_preference: Literal["one_way", "two_way"] = "one_way"
    blocking_show_as: list[BlockingShowAs] = Field(
        default_factory=lambda: list[BlockingShowAs](["busy"]), min_length=1
    )

    def to_domain(self) -> CalendarSettings:
        return CalendarSettings(
            linked_calendar_id=self.linked_calendar_id,
            conflict_calendar_ids=tuple(self.conflict_calendar_ids),
            sync_preference=self.sync_preference,
            blocking_show_as=tuple(self.blocking_show_as),
        )


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _freshness(f: Freshness | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "status": f.status,
        "subscription": f.subscription,
        "last_synced_at": _time(f.last_synced_at),
        "last_error": f.last_error,
        "reported_at": _time(f.changed_at),
    }


def connection_json(view: ConnectionView) -> dict[str, Any]:
    c: Connection = view.connection
    synced = {*c.settings.conflict_calendar_ids}
    if c.settings.linked_calendar_id:
        synced.add(c.settings.linked_calendar_id)
    default = next((cal.id for cal in c.calendars if cal.is_default), None)
    return {
        "id": str(c.id),
        "sub_account_id": c.sub_account_id,
        "user_id": c.user_id,
        "provider": "outlook",
        "status": c.status,
        "version": c.version,
        "account": {
            "email": c.account.email,
            "display_name": c.account.display_name,
            "tenant_id": c.account.tenant_id,
            "object_id": c.account.object_id,
            "kind": c.account.kind,
            "time_zone": c.account.time_zone,
        },
        "default_calendar_id": default,
        "calendars": [
            {
                "id": cal.id,
                "name": cal.name,
                "access": cal.access,
                "is_default": cal.is_default,
                "owner": {"name": cal.owner_name, "address": cal.owner_address},
                "linked": cal.id == c.settings.linked_calendar_id,
                "conflict": cal.id in c.settings.conflict_calendar_ids,
                "freshness": _freshness(view.freshness.get(cal.id)) if cal.id in synced else None,
            }
            for cal in c.calendars
        ],
        "settings": {
            "linked_calendar_id": c.settings.linked_calendar_id,
            "conflict_calendar_ids": list(c.settings.conflict_calendar_ids),
            "sync_preference": c.settings.sync_preference,
            "blocking_show_as": list(c.settings.blocking_show_as),
        },
        "warnings": [{"code": w.code, "calendar_id": w.calendar_id} for w in c.warnings],
        "created_at": _time(c.created_at),
        "updated_at": _time(c.updated_at),
    }


def refresh_json(view: ConnectionView, refresh: CalendarsRefresh) -> dict[str, Any]:
    return {
        "connection": connection_json(view),
        "vanished_calendar_ids": list(refresh.vanished),
        "lost_write_access_calendar_ids": list(refresh.lost_write_access),
    }


def etag(c: Connection) -> str:
    return f'"v{c.version}"'


def parse_if_match(header: str | None) -> int | None:
    """The version an ``If-Match`` names (None when absent; -1 when it names none of ours)."""
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if value.startswith("v") and value[1:].isascii() and value[1:].isdigit() and len(value) < 20:
        return int(value[1:])
    return -1
