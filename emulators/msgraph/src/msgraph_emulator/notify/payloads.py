"""JSON items of a ``changeNotificationCollection`` (change and lifecycle notifications)."""

from __future__ import annotations

import base64
import os
from typing import Any

from msgraph_emulator.changes import Change
from msgraph_emulator.notify.model import Subscription, format_utc


def _opaque(n: int) -> str:
    return base64.urlsafe_b64encode(os.urandom(n)).decode().rstrip("=")


def change_item(sub: Subscription, change: Change, etag: str | None = None) -> dict[str, Any]:
    """One change notification as Outlook sends it for an event (no resource data).

    ``etag`` is the event's ``@odata.etag`` (its last one for ``deleted``); None leaves it out.
    """
    path = f"Users/{change.user_id}/Events/{change.event_id}"
    resource_data: dict[str, Any] = {
        "@odata.type": "#Microsoft.Graph.Event",
        "@odata.id": path,
        "@odata.etag": etag,
        "id": change.event_id,
    }
    if etag is None:
        del resource_data["@odata.etag"]
    return {
        "id": _opaque(9),
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": format_utc(sub.expiration),
        "changeType": change.change_type,
        "resource": path,
        "resourceData": resource_data,
        "clientState": sub.client_state,
        "tenantId": sub.tenant_id,
    }


def lifecycle_item(sub: Subscription, event: str) -> dict[str, Any]:
    return {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": format_utc(sub.expiration),
        "tenantId": sub.tenant_id,
        "clientState": sub.client_state,
        "lifecycleEvent": event,
    }
