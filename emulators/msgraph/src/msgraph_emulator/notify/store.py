"""``state.subscriptions``: subscriptions plus the runtime state of notifications and limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from msgraph_emulator.notify.deliveries import DeliveryLog
from msgraph_emulator.notify.etags import EtagCache
from msgraph_emulator.notify.faults import FaultRegistry
from msgraph_emulator.notify.limits import MailboxLimiter
from msgraph_emulator.notify.mailbox_view import MailboxView
from msgraph_emulator.notify.model import Subscription
from msgraph_emulator.settings import EmulatorSettings

LifecycleEvent = Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]
LifecycleListener = Callable[[Subscription, LifecycleEvent], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SubscriptionStore:
    def __init__(self) -> None:
        self.by_id: dict[str, Subscription] = {}
        self.by_user: dict[str, set[str]] = {}
        self.faults = FaultRegistry()
        self.deliveries = DeliveryLog()
        self.limiter = MailboxLimiter(concurrency=4, requests_per_window=10_000)
        self.clock: Callable[[], datetime] = utc_now
        self.mailbox_view: MailboxView | None = None
        self.lifecycle_listeners: list[LifecycleListener] = []
        self.etags = EtagCache()

    def configure(self, settings: EmulatorSettings) -> None:
        self.limiter.concurrency = settings.mailbox_concurrency
        self.limiter.requests_per_window = settings.mailbox_requests_per_10min
        self.deliveries.max_records = settings.deliveries_log_max

    # --- subscriptions -------------------------------------------------------------------
    def add(self, sub: Subscription) -> Subscription:
        self.by_id[sub.id] = sub
        self.by_user.setdefault(sub.user_id, set()).add(sub.id)
        if self.mailbox_view is not None:
            self.etags.prime(sub.user_id, self.mailbox_view)
        return sub

    def get(self, sub_id: str) -> Subscription | None:
        return self.by_id.get(sub_id)

    def remove(self, sub_id: str) -> Subscription | None:
        sub = self.by_id.pop(sub_id, None)
        if sub is not None:
            ids = self.by_user.get(sub.user_id)
            if ids is not None:
                ids.discard(sub_id)
                if not ids:
                    del self.by_user[sub.user_id]
        return sub

    def for_user(self, user_id: str) -> list[Subscription]:
        return [self.by_id[i] for i in self.by_user.get(user_id, ())]

    def for_app(self, application_id: str) -> list[Subscription]:
        return [s for s in self.by_id.values() if s.application_id == application_id]

    def count_for_user(self, user_id: str) -> int:
        return len(self.by_user.get(user_id, ()))

    # --- lifecycle hooks (identity part and control API call these) -----------------------
    def lifecycle(self, sub: Subscription, event: LifecycleEvent) -> None:
        """Ask the delivery engine to send ``event`` for ``sub`` (and act on it)."""
        for listener in self.lifecycle_listeners:
            listener(sub, event)

    def on_user_revoked(self, user_id: str, application_id: str | None = None) -> list[str]:
        """Sessions revoked or consent withdrawn: the mailbox's subscriptions (only those of
        ``application_id`` when given) need reauthorization. Returns their ids."""
        affected = [
            sub
            for sub in self.for_user(user_id)
            if application_id is None or sub.application_id == application_id
        ]
        for sub in affected:
            self.lifecycle(sub, "reauthorizationRequired")
        return [sub.id for sub in affected]

    def on_calendar_removed(self, user_id: str, calendar_id: str) -> list[str]:
        """A calendar left the mailbox (deleted, or a share withdrawn): the subscriptions that
        watched it get ``subscriptionRemoved`` and are deleted. Returns their ids."""
        affected = [sub for sub in self.for_user(user_id) if sub.calendar_id == calendar_id]
        for sub in affected:
            self.lifecycle(sub, "subscriptionRemoved")
        return [sub.id for sub in affected]

    # --- state part protocol -------------------------------------------------------------
    def reset(self) -> None:
        self.by_id.clear()
        self.by_user.clear()
        self.faults.clear()
        self.deliveries.reset()
        self.limiter.reset()
        self.etags.clear()

    def dump(self) -> dict[str, Any]:
        return {
            "subscriptions": [s.dump() for s in self.by_id.values()],
            "faults": self.faults.dump(),
        }

    def load(self, data: dict[str, Any]) -> None:
        for item in data.get("subscriptions", []):
            self.add(Subscription.load(item))
        if "faults" in data:
            self.faults.load(data["faults"])
