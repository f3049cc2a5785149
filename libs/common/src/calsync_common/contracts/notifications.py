"""Raw Microsoft Graph notifications as the webhook stored them (graph-notifications topic).

The webhook publishes only notifications whose ``clientState`` matched; the secret itself never
travels further.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime

from calsync_common.contracts.base import EventPayload, register
from calsync_common.contracts.topics import GRAPH_NOTIFICATIONS

ChangeType = Literal["created", "updated", "deleted"]
LifecycleEvent = Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]


@register
class GraphChangeReceived(EventPayload):
    event_type: ClassVar[str] = "dev.calsync.graph.change_received.v1"
    topic: ClassVar[str] = GRAPH_NOTIFICATIONS.name

    subscription_id: str
    tenant_id: str
    change_type: ChangeType
    resource: str
    resource_id: str | None
    subscription_expires_at: AwareDatetime | None
    received_at: AwareDatetime

    def partition_key(self) -> str:
        return self.subscription_id


@register
class GraphLifecycleReceived(EventPayload):
    event_type: ClassVar[str] = "dev.calsync.graph.lifecycle_received.v1"
    topic: ClassVar[str] = GRAPH_NOTIFICATIONS.name

    subscription_id: str
    tenant_id: str
    lifecycle_event: LifecycleEvent
    subscription_expires_at: AwareDatetime | None
    received_at: AwareDatetime

    def partition_key(self) -> str:
        return self.subscription_id
