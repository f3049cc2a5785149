"""Connection lifecycle and calendar settings (topic ``calsync.connections.v1``)."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from calsync_common.contracts.base import ContractModel, EventPayload, register
from calsync_common.contracts.topics import CONNECTIONS

ConnectionStatus = Literal["active", "reauth_required", "disconnected"]
SyncPreference = Literal["one_way", "two_way"]
#: Outlook ``showAs`` values that may block time; ``free`` never does.
BlockingShowAs = Literal["busy", "tentative", "oof", "workingElsewhere"]


class MicrosoftAccount(ContractModel):
    """Who signed in: ``object_id`` + ``tenant_id`` identify the account (never the username)."""

    tenant_id: str
    object_id: str
    username: str
    is_personal: bool
    display_name: str | None = None


@register
class ConnectionSnapshot(EventPayload):
    """The whole state of one Outlook connection after a change (compacted by connection).

    Bookings are written to ``linked_calendar_id`` (None when no Linked Calendar is set, or it lost
    write access); by default it is also listed in ``conflict_calendar_ids``. Events of conflict
    calendars block availability when their ``showAs`` is in ``blocking_show_as``; ``free`` never
    blocks. ``time_zone`` is the mailbox's (IANA or Windows name, as Graph reports it): all-day
    events are the local days of that zone. A ``disconnected`` snapshot is followed by a tombstone
    once nothing needs it.
    """

    event_type: ClassVar[str] = "dev.calsync.connection.snapshot.v1"
    topic: ClassVar[str] = CONNECTIONS.name

    connection_id: UUID
    version: int = Field(ge=1, description="Increases with every change of this connection.")
    sub_account_id: str
    user_id: str
    account: MicrosoftAccount
    status: ConnectionStatus
    sync_preference: SyncPreference = "one_way"
    linked_calendar_id: str | None = None
    conflict_calendar_ids: tuple[str, ...] = ()
    blocking_show_as: tuple[BlockingShowAs, ...] = ("busy",)
    time_zone: str | None = None
    changed_at: AwareDatetime

    def partition_key(self) -> str:
        return str(self.connection_id)
