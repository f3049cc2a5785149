"""The change-notification engine: matches changes to subscriptions, sends lifecycle events and
expires subscriptions. Started and stopped with the app (``cleanup_ctx``).

Scope decision: ``/me/events`` and ``/users/{id}/events`` watch the mailbox's **default calendar**
only (the list-events docs define ``/me/events`` as the default calendar's events and field
reports confirm notifications behave that way); ``.../calendars/{id}/events`` watches that calendar,
and is removed (``subscriptionRemoved``) when that calendar leaves the mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from aiohttp import web

from msgraph_emulator.changes import CalendarRemoved, Change
from msgraph_emulator.graph.notifications import Dispatcher, Pending
from msgraph_emulator.notify.model import Subscription
from msgraph_emulator.notify.payloads import change_item, lifecycle_item
from msgraph_emulator.notify.store import LifecycleEvent
from msgraph_emulator.settings import EmulatorSettings
from msgraph_emulator.state import EmulatorState

HELD_MAX = 10_000


class NotificationEngine:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.store = state.subscriptions
        self.settings: EmulatorSettings = state.settings
        self.dispatcher = Dispatcher(self.store, self.settings)
        #: Notifications held while a subscription awaits reauthorization.
        self.held: dict[str, deque[Pending]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # --- lifecycle of the engine itself -----------------------------------------------------
    async def start(self) -> None:
        await self.dispatcher.open()
        self.state.changes.subscribe(self.on_change)
        self.state.changes.subscribe_removals(self.on_calendar_removed)
        self.store.lifecycle_listeners.append(self.on_lifecycle)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.state.changes.listeners.remove(self.on_change)
        with contextlib.suppress(ValueError):
            self.state.changes.removal_listeners.remove(self.on_calendar_removed)
        with contextlib.suppress(ValueError):
            self.store.lifecycle_listeners.remove(self.on_lifecycle)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.dispatcher.close()

    # --- change notifications ----------------------------------------------------------------
    def matches(self, sub: Subscription, change: Change) -> bool:
        if change.change_type not in sub.change_types:
            return False
        if sub.expiration <= self.store.clock():
            return False
        if sub.calendar_id is not None:
            return sub.calendar_id == change.calendar_id
        view = self.store.mailbox_view
        if view is None:
            return True
        return view.default_calendar_id(change.user_id) == change.calendar_id

    def on_change(self, change: Change) -> None:
        ids = self.store.by_user.get(change.user_id)
        if not ids:
            self.store.etags.forget(change.user_id)
            return
        etag = self.store.etags.for_change(change, self.store.mailbox_view)
        faults = self.store.faults.for_user(change.user_id)
        for sub_id in list(ids):
            sub = self.store.by_id[sub_id]
            if not self.matches(sub, change):
                continue
            item = change_item(sub, change, etag)
            if faults.chance(faults.loss_rate):
                self.store.deliveries.record_lost({**item, "url": sub.notification_url})
                continue
            copies = 2 if faults.chance(faults.duplicate_rate) else 1
            for _ in range(copies):
                pending = Pending(item, sub.id)
                if faults.delay_ms > 0:
                    self.dispatcher.later(faults.delay_ms / 1000, self._submit, sub.id, pending)
                else:
                    self._submit(sub.id, pending)

    def on_calendar_removed(self, removed: CalendarRemoved) -> None:
        """Subscriptions on a calendar that left the mailbox: ``subscriptionRemoved``."""
        self.store.on_calendar_removed(removed.user_id, removed.calendar_id)

    def _submit(self, sub_id: str, pending: Pending) -> None:
        sub = self.store.get(sub_id)
        if sub is None:
            return
        if sub.needs_reauthorization:
            held = self.held.setdefault(sub_id, deque(maxlen=HELD_MAX))
            held.append(pending)
            return
        faults = self.store.faults.for_user(sub.user_id)
        self.dispatcher.enqueue("change", sub.notification_url, pending, faults)

    # --- lifecycle notifications -------------------------------------------------------------
    def on_lifecycle(self, sub: Subscription, event: LifecycleEvent) -> None:
        if sub.lifecycle_notification_url:
            self.dispatcher.enqueue(
                "lifecycle",
                sub.lifecycle_notification_url,
                Pending(lifecycle_item(sub, event), sub.id),
                None,
            )
        if event == "reauthorizationRequired":
            sub.needs_reauthorization = True
        elif event == "subscriptionRemoved":
            self.store.remove(sub.id)
            self.held.pop(sub.id, None)

    def reauthorized(self, sub: Subscription, *, renewed: bool) -> None:
        """After ``/reauthorize`` or a renewal PATCH: resume delivery, release held items."""
        sub.needs_reauthorization = False
        if renewed:
            sub.reauthorization_notice_sent = False
        for pending in self.held.pop(sub.id, ()):
            self._submit(sub.id, pending)

    def removed(self, sub_id: str) -> None:
        self.held.pop(sub_id, None)

    # --- expiry ------------------------------------------------------------------------------
    def sweep(self) -> None:
        """Delete expired subscriptions; warn (``reauthorizationRequired``) before expiry."""
        now = self.store.clock()
        notice = self.settings.reauthorization_notice_s
        for sub in list(self.store.by_id.values()):
            left = (sub.expiration - now).total_seconds()
            if left <= 0:
                self.store.remove(sub.id)
                self.held.pop(sub.id, None)
            elif (
                left <= notice
                and sub.lifecycle_notification_url
                and not sub.reauthorization_notice_sent
            ):
                sub.reauthorization_notice_sent = True
                self.store.lifecycle(sub, "reauthorizationRequired")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.subscription_sweep_interval_s)
            self.sweep()


NOTIFIER = web.AppKey("notifier", NotificationEngine)
