"""Connection lifecycle and calendar settings (topic ``calsync.connections.v1``)."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from calsync_common.contracts.base import ContractModel, EventPayload, register
from calsync_common.contracts.topics import CONNECTIONS

ConnectionStatus = Literal["active", "reauthorization_required", "disconnected"]
SyncPreference = Literal["one_way", "two_way"]


class MicrosoftAccount(ContractModel):
    """Who signed in: ``object_id`` + ``tenant_id`` identify the account (never the username)."""

    tenant_id: str
    object_id: str
    username: str
    is_personal: bool


@register
class ConnectionSnapshot(EventPayload):
    """The whole state of one Outlook connection after a change (compacted by connection).

    The Linked Calendar is written to and, by default, also listed in ``conflict_calendar_ids``.
    Conflict calendars block availability with their BUSY events only.
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
    changed_at: AwareDatetime

    def partition_key(self) -> str:
        return str(self.connection_id)
