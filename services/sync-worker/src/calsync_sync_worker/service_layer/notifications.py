"""From Graph's hints (``calsync.graph-notifications.v1``) to due work, never to data.

A change notification makes its calendar's delta round due (however many arrive, one round
reads them all). Lifecycle notifications: ``missed`` makes a round due; ``subscriptionRemoved``
drops the subscription so the upkeep recreates it (unless it was already replaced), and makes a
round due for what was missed;
``reauthorizationRequired`` makes the upkeep renew the subscription at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from uuid import UUID

from calsync_common.contracts.notifications import GraphChangeReceived, GraphLifecycleReceived
from calsync_common.kafka.consumer import ConsumedEvent, Message
from calsync_sync_worker.service_layer.unit_of_work import SyncWork

#: Whether the batch being applied (in this task: the consumer runner applies each partition in
#: a task of its own) holds a lifecycle notification, the only kind that makes subscription work
#: due: after its commit the runner wakes the subscription upkeep only then
#: (:func:`take_subscription_work`), not after every batch of changes.
_SUBSCRIPTION_WORK: ContextVar[bool] = ContextVar("subscription_work", default=False)


def take_subscription_work() -> bool:
    """Whether the batch just committed in this task made subscription work due (and reset)."""
    due = _SUBSCRIPTION_WORK.get()
    _SUBSCRIPTION_WORK.set(False)
    return due


async def on_notification(work: SyncWork, message: Message) -> None:
    if not isinstance(message, ConsumedEvent):
        return  # the topic is not compacted: no tombstones are expected
    data = message.envelope.data
    if isinstance(data, GraphChangeReceived):
        await work.sync.round_due_now(data.connection_id, data.calendar_id)
    elif isinstance(data, GraphLifecycleReceived):
        _SUBSCRIPTION_WORK.set(True)
        if data.lifecycle_event == "subscriptionRemoved":
            # Only the subscription removed: if the upkeep already replaced it (a renewal met
            # Graph's 404 first), the replacement stays; what was missed is read either way.
            if await work.sync.drop_subscription_if_current(
                data.connection_id, data.calendar_id, data.subscription_id
            ):
                await work.sync.subscription_due_now(data.connection_id, data.calendar_id)
            await work.sync.round_due_now(data.connection_id, data.calendar_id)
        elif data.lifecycle_event == "reauthorizationRequired":
            await work.sync.expire_subscription_now(data.subscription_id)
            await work.sync.subscription_due_now(data.connection_id, data.calendar_id)
        else:  # missed: notifications were lost; read the calendar
            await work.sync.round_due_now(data.connection_id, data.calendar_id)


async def on_notifications(work: SyncWork, messages: Sequence[Message]) -> None:
    """A fetched run of notifications: the rounds they make due in one statement (bursts of
    changes to many calendars are the common case); lifecycle notifications one by one."""
    due: list[tuple[UUID, str]] = []
    for message in messages:
        data = message.envelope.data if isinstance(message, ConsumedEvent) else None
        if isinstance(data, GraphChangeReceived):
            due.append((data.connection_id, data.calendar_id))
        elif isinstance(data, GraphLifecycleReceived):
            await on_notification(work, message)
    await work.sync.rounds_due_now(due)
