"""Subscription upkeep: create, renew, recreate and delete Graph subscriptions per calendar.

Work is divided by database lease: each round leases a few calendars whose subscription is due
for a look (no other replica holds them), talks to Graph outside any transaction, then records
the outcome and when to look again. A replica that dies leaves leases that expire within a
minute; another replica picks the calendars up. Failures back off per calendar and are kept
(``subscription_error``) for the sync status; nothing is silently skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter

from calsync_common.loops import HELD_ELSEWHERE_S, RoundLoop
from calsync_common.ports import UnitOfWork
from calsync_sync_worker.adapters.access_tokens import ConnectionGone, ReauthRequired
from calsync_sync_worker.adapters.graph_client import GraphClient, GraphError, GraphNotFound
from calsync_sync_worker.adapters.repository import ClaimedCalendar, SubscriptionRecord
from calsync_sync_worker.domain.notifications import hash_client_state
from calsync_sync_worker.domain.subscriptions import (
    Action,
    CalendarState,
    Policy,
    decide,
    new_client_state,
    next_check,
    retry_at,
)
from calsync_sync_worker.service_layer.unit_of_work import SyncWork

log = logging.getLogger(__name__)
ACTIONS = Counter(
    "calsync_subscription_actions_total", "Subscription upkeep", ["action", "outcome"]
)
#: When nothing is expected to change, look again after this anyway (cheap, and it heals).
IDLE_RECHECK = timedelta(hours=6)


@dataclass(frozen=True)
class WebhookUrls:
    notifications: str
    lifecycle: str


class SubscriptionManager(RoundLoop):
    def __init__(
        self,
        uow: UnitOfWork[SyncWork],
        graph: GraphClient,
        urls: WebhookUrls,
        clock: Callable[[], datetime],
        *,
        owner: str,
        policy: Policy | None = None,
        every_s: float = 5.0,
        lease_s: float = 60.0,
        batch: int = 20,
        rounds_due: Callable[[], None] | None = None,
    ) -> None:
        super().__init__("subscription upkeep", every_s=every_s, batch=batch)
        #: Called once a created subscription's delta round is committed due (wakes the delta
        #: runner: the first read of a newly connected calendar should not wait for its poll).
        self._rounds_due = rounds_due
        self._uow = uow
        self._graph = graph
        self._urls = urls
        self._clock = clock
        self._owner = owner
        self._policy = policy or Policy()
        self._lease_s = lease_s

    async def round(self) -> int:
        """Lease due calendars and act on each; the number handled."""
        async with self._uow.autocommit() as work:  # one statement
            claims = await work.sync.claim_subscription_work(self._owner, self._lease_s, self.batch)
        if claims.left_due:
            self.look_again_in(HELD_ELSEWHERE_S)
        await asyncio.gather(*(self._handle(c) for c in claims.items))
        return len(claims.items)

    async def _handle(self, c: ClaimedCalendar) -> None:
        now = self._clock()
        state = CalendarState(
            c.wanted, c.paused, c.connection_active, c.subscription_id, c.expires_at
        )
        action = decide(state, now, self._policy)
        try:
            due = await self._act(action, c, now)
        except (ReauthRequired, ConnectionGone) as exc:
            # The connector publishes the connection's new state; the plan then pauses it.
            await self._finish(c, retry_at(c.failures + 1, now, self._policy), c.failures + 1, exc)
            ACTIONS.labels(action.value, "connection_unusable").inc()
            return
        except GraphError as exc:
            log.warning(
                "subscription upkeep failed",
                extra={
                    "connection_id": str(c.connection_id),
                    "action": action.value,
                    "error": type(exc).__name__,
                },
            )
            await self._finish(c, retry_at(c.failures + 1, now, self._policy), c.failures + 1, exc)
            ACTIONS.labels(action.value, "failed").inc()
            return
        ACTIONS.labels(action.value, "done").inc()
        if due is not None:
            await self._finish(c, due, 0, None)

    async def _act(self, action: Action, c: ClaimedCalendar, now: datetime) -> datetime | None:
        """Do it; when to look again (None: the calendar row is gone)."""
        cid = str(c.connection_id)
        if action is Action.CREATE:
            record = await self._create(c, now)
            return next_check(record.expires_at, now, self._policy)
        if action is Action.RENEW:
            assert c.subscription_id is not None
            try:
                body = await self._graph.patch(
                    cid,
                    f"/subscriptions/{c.subscription_id}",
                    {"expirationDateTime": _iso(now + self._policy.lifetime)},
                )
            except GraphNotFound:
                # Graph already deleted it: recreate at once, and read what was missed.
                async with self._uow() as work:
                    await work.sync.drop_subscription(c.connection_id, c.calendar_id)
                record = await self._create(c, now)
                return next_check(record.expires_at, now, self._policy)
            expires_at = _parse(body["expirationDateTime"])
            async with self._uow() as work:
                await work.sync.renewed(c.subscription_id, expires_at)
            return next_check(expires_at, now, self._policy)
        if action in (Action.DELETE, Action.RETIRE):
            if c.subscription_id is not None:
                with contextlib.suppress(GraphNotFound):
                    await self._graph.delete(cid, f"/subscriptions/{c.subscription_id}")
            async with self._uow() as work:
                if action is Action.RETIRE:
                    await work.sync.retire_calendar(c.connection_id, c.calendar_id)
                    return None
                await work.sync.drop_subscription(c.connection_id, c.calendar_id)
            return now + IDLE_RECHECK
        return next_check(c.expires_at, now, self._policy) if c.expires_at else now + IDLE_RECHECK

    async def _create(self, c: ClaimedCalendar, now: datetime) -> SubscriptionRecord:
        resource = f"/me/calendars/{c.calendar_id}/events"
        await self._delete_unrecorded(c, resource)
        client_state = new_client_state()
        body: dict[str, Any] = {
            "changeType": "created,updated,deleted",
            "notificationUrl": self._urls.notifications,
            "lifecycleNotificationUrl": self._urls.lifecycle,
            "resource": resource,
            "expirationDateTime": _iso(now + self._policy.lifetime),
            "clientState": client_state,
        }
        # Not idempotent: a retried create could leave a second subscription, which then
        # expires unrenewed (its notifications are dropped as unknown meanwhile).
        created = await self._graph.post(
            str(c.connection_id), "/subscriptions", body, idempotent=False
        )
        record = SubscriptionRecord(
            subscription_id=str(created["id"]),
            connection_id=c.connection_id,
            calendar_id=c.calendar_id,
            client_state_hash=hash_client_state(client_state),
            expires_at=_parse(created["expirationDateTime"]),  # what Graph granted
        )
        async with self._uow() as work:
            await work.sync.save_subscription(record)
            # A delta round after every create: a change made while the calendar had no
            # subscription (before the first, or after Graph removed one) notified nobody.
            await work.sync.round_due_now(c.connection_id, c.calendar_id)
        if self._rounds_due is not None:
            self._rounds_due()
        return record

    async def _delete_unrecorded(self, c: ClaimedCalendar, resource: str) -> None:
        """Delete our subscriptions to the calendar that no calendar row records: a replica
        killed between Graph's create and its own commit left one, which Graph would keep
        notifying for days (each change twice) and nobody would renew. The lease expires long
        after Graph has answered that create, so it is listed by now."""
        cid = str(c.connection_id)
        listed: list[dict[str, Any]] = []
        try:
            page: dict[str, Any] = await self._graph.get(cid, "/subscriptions")
            while True:
                listed.extend(page.get("value", []))
                if "@odata.nextLink" not in page:
                    break
                page = await self._graph.get(cid, str(page["@odata.nextLink"]))
        except GraphError as exc:  # best effort: never a reason not to subscribe
            log.warning(
                "listing subscriptions failed",
                extra={"connection_id": cid, "error": type(exc).__name__},
            )
        for s in listed:
            ours = (
                str(s.get("resource", "")).lstrip("/").lower() == resource.lstrip("/").lower()
                and s.get("notificationUrl") == self._urls.notifications
            )
            if not ours:
                continue
            async with self._uow() as work:  # another connection of the mailbox may hold it
                recorded = await work.sync.subscription(str(s["id"]))
            if recorded is None:
                with contextlib.suppress(GraphNotFound):
                    await self._graph.delete(cid, f"/subscriptions/{s['id']}")
                ACTIONS.labels("delete_unrecorded", "done").inc()

    async def _finish(
        self, c: ClaimedCalendar, due: datetime, failures: int, error: BaseException | None
    ) -> None:
        async with self._uow() as work:
            await work.sync.finish_subscription_work(
                self._owner,
                c.connection_id,
                c.calendar_id,
                due_at=due,
                failures=failures,
                error=_describe(error),
            )


def _describe(error: BaseException | None) -> str | None:
    if error is None:
        return None
    code = getattr(error, "code", None)
    return f"{type(error).__name__}: {code}" if code else type(error).__name__


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
