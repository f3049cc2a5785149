"""Delivery engine core: per-URL outboxes POSTing ``{"value": [...]}`` batches, with retries.

Each (kind, URL) outbox runs up to ``notification_senders_per_url`` sender tasks that take up to
``notification_batch_max`` pending items per POST (items of several subscriptions may share a POST,
as in Graph). A POST succeeds on any 2xx within ``notification_timeout_s``; otherwise each item is
retried with exponential backoff until ``notification_retry_for_s`` has passed since its first
attempt, then dropped and recorded. Order is not preserved (Graph promises none).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from msgraph_emulator.notify.deliveries import Attempt
from msgraph_emulator.notify.faults import FaultConfig
from msgraph_emulator.notify.model import format_utc
from msgraph_emulator.notify.store import SubscriptionStore, utc_now
from msgraph_emulator.settings import EmulatorSettings

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


@dataclass
class Pending:
    item: dict[str, Any]
    subscription_id: str
    first_at: float = field(default_factory=time.monotonic)
    attempts: int = 0


@dataclass
class Outbox:
    kind: str
    url: str
    pending: deque[Pending] = field(default_factory=deque)
    senders: int = 0


class Dispatcher:
    """Owns the HTTP session, the outboxes and their sender tasks and retry timers."""

    def __init__(self, store: SubscriptionStore, settings: EmulatorSettings) -> None:
        self.store = store
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None
        self.outboxes: dict[tuple[str, str], Outbox] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.timers: set[asyncio.TimerHandle] = set()
        self.closed = False

    async def open(self) -> None:
        ssl_ctx: ssl.SSLContext | bool = True
        if self.settings.notification_ca_file is not None:
            ssl_ctx = ssl.create_default_context(cafile=str(self.settings.notification_ca_file))
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_ctx, limit=256),
            headers={"User-Agent": "Microsoft-Graph-Notifications-Emulator"},
        )
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.outboxes.clear()
        if self.session is not None:
            await self.session.close()
            self.session = None

    def later(self, delay_s: float, callback: Any, *args: Any) -> None:
        """``loop.call_later`` whose handle is cancelled on close."""
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def run() -> None:
            self.timers.discard(handle)
            if not self.closed:
                callback(*args)

        handle = loop.call_later(delay_s, run)
        self.timers.add(handle)

    def enqueue(self, kind: str, url: str, pending: Pending, faults: FaultConfig | None) -> None:
        if self.closed:
            return
        box = self.outboxes.get((kind, url))
        if box is None:
            box = self.outboxes[(kind, url)] = Outbox(kind, url)
        if faults is not None and faults.reorder and box.pending:
            box.pending.insert(faults.rng.randint(0, len(box.pending)), pending)
        else:
            box.pending.append(pending)
        if box.senders < self.settings.notification_senders_per_url:
            box.senders += 1
            task = asyncio.get_running_loop().create_task(self._drain(box))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _drain(self, box: Outbox) -> None:
        try:
            limit = self.settings.notification_batch_max
            while box.pending and not self.closed:
                batch = [box.pending.popleft() for _ in range(min(limit, len(box.pending)))]
                await self._post(box, batch)
        finally:
            box.senders -= 1

    async def _post(self, box: Outbox, batch: list[Pending]) -> None:
        assert self.session is not None
        for p in batch:
            p.attempts += 1
        body = json.dumps({"value": [p.item for p in batch]}, separators=(",", ":"))
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with self.session.post(
                box.url,
                data=body.encode(),
                headers=JSON_HEADERS,
                timeout=aiohttp.ClientTimeout(total=self.settings.notification_timeout_s),
                allow_redirects=False,
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        self.store.deliveries.record(
            Attempt(
                url=box.url,
                kind=box.kind,
                at=format_utc(utc_now()),
                notification_ids=[
                    str(p.item.get("id") or p.item.get("lifecycleEvent")) for p in batch
                ],
                subscription_ids=sorted({p.subscription_id for p in batch}),
                status=status,
                error=error if ok or error else f"HTTP {status}",
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                attempt=max(p.attempts for p in batch),
            )
        )
        if not ok:
            for p in batch:
                self._retry_or_drop(box, p)

    def _retry_or_drop(self, box: Outbox, pending: Pending) -> None:
        s = self.settings
        delay = min(
            s.notification_backoff_initial_s * 2 ** (pending.attempts - 1),
            s.notification_backoff_max_s,
        )
        if time.monotonic() + delay - pending.first_at > s.notification_retry_for_s:
            self.store.deliveries.record_dropped(
                {**pending.item, "attempts": pending.attempts, "url": box.url}
            )
            return
        self.later(delay, self.enqueue, box.kind, box.url, pending, None)
