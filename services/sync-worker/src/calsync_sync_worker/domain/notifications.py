"""Graph change and lifecycle notifications: parsed, checked, turned into contract events.

A notification is a hint that a calendar changed, nothing more. It is accepted only when its
subscription is one of ours and its ``clientState`` matches the one we gave that subscription
(compared in constant time, against a hash: the secret is never stored in clear).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from calsync_common.contracts.notifications import (
    ChangeType,
    GraphChangeReceived,
    GraphLifecycleReceived,
    LifecycleEvent,
)


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    subscription_id: str = Field(alias="subscriptionId", min_length=1, max_length=200)
    client_state: str | None = Field(default=None, alias="clientState", max_length=255)
    tenant_id: str = Field(default="", alias="tenantId", max_length=100)
    expires_at: AwareDatetime | None = Field(default=None, alias="subscriptionExpirationDateTime")


class ChangeItem(_Item):
    change_type: ChangeType = Field(alias="changeType")
    resource: str = Field(max_length=1000)
    resource_data: dict[str, Any] | None = Field(default=None, alias="resourceData")


class LifecycleItem(_Item):
    lifecycle_event: LifecycleEvent = Field(alias="lifecycleEvent")


class BadNotification(ValueError):
    """The body is not a Graph notification collection."""


def hash_client_state(client_state: str) -> bytes:
    return hashlib.sha256(client_state.encode()).digest()


def client_state_matches(given: str | None, stored_hash: bytes) -> bool:
    if not given:
        return False
    return hmac.compare_digest(hash_client_state(given), stored_hash)


def parse_changes(body: Any) -> list[ChangeItem]:
    return [ChangeItem.model_validate(v) for v in _values(body)]


def parse_lifecycle(body: Any) -> list[LifecycleItem]:
    return [LifecycleItem.model_validate(v) for v in _values(body)]


def _values(body: Any) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise BadNotification('expected {"value": [...]}')
    return list(body["value"])


def parse_or_none(parse: Any, body: Any) -> list[Any] | None:
    try:
        result: list[Any] = parse(body)
    except (BadNotification, ValidationError):
        return None
    return result


@dataclass(frozen=True)
class Target:
    """The calendar a subscription is for (what the webhook knows of it)."""

    connection_id: Any
    calendar_id: str
    client_state_hash: bytes


def change_event(item: ChangeItem, target: Target, now: datetime) -> GraphChangeReceived:
    data = item.resource_data or {}
    resource_id = data.get("id")
    return GraphChangeReceived(
        subscription_id=item.subscription_id,
        connection_id=target.connection_id,
        calendar_id=target.calendar_id,
        tenant_id=item.tenant_id,
        change_type=item.change_type,
        resource=item.resource,
        resource_id=str(resource_id) if resource_id else None,
        subscription_expires_at=item.expires_at,
        received_at=now,
    )


def lifecycle_event(item: LifecycleItem, target: Target, now: datetime) -> GraphLifecycleReceived:
    return GraphLifecycleReceived(
        subscription_id=item.subscription_id,
        connection_id=target.connection_id,
        calendar_id=target.calendar_id,
        tenant_id=item.tenant_id,
        lifecycle_event=item.lifecycle_event,
        subscription_expires_at=item.expires_at,
        received_at=now,
    )
