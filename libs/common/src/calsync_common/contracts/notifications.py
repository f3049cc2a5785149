"""Raw Microsoft Graph notifications as the webhook stored them (graph-notifications topic).

The webhook publishes only notifications whose ``clientState`` matched a subscription it holds;
the secret itself never travels further. Keyed per calendar (the subscription's), so every hint
about one calendar lands in one partition, in order, and coalesces into one delta round.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime

from calsync_common.contracts.base import EventPayload, register
from calsync_common.contracts.calendar_events import calendar_key
from calsync_common.contracts.topics import GRAPH_NOTIFICATIONS

ChangeType = Literal["created", "updated", "deleted"]
LifecycleEvent = Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]


@register
class GraphChangeReceived(EventPayload):
    event_type: ClassVar[str] = "dev.calsync.graph.change_received.v1"
    topic: ClassVar[str] = GRAPH_NOTIFICATIONS.name

    subscription_id: str
    connection_id: UUID
    calendar_id: str
    tenant_id: str
    change_type: ChangeType
    resource: str
    resource_id: str | None
    subscription_expires_at: AwareDatetime | None
    received_at: AwareDatetime

    def partition_key(self) -> str:
        return calendar_key(self.connection_id, self.calendar_id)


@register
class GraphLifecycleReceived(EventPayload):
    event_type: ClassVar[str] = "dev.calsync.graph.lifecycle_received.v1"
    topic: ClassVar[str] = GRAPH_NOTIFICATIONS.name

    subscription_id: str
    connection_id: UUID
    calendar_id: str
    tenant_id: str
    lifecycle_event: LifecycleEvent
    subscription_expires_at: AwareDatetime | None
    received_at: AwareDatetime

    def partition_key(self) -> str:
        return calendar_key(self.connection_id, self.calendar_id)
