"""Outlook's per app + mailbox limits, kept on our side so Graph rarely has to throttle us.

Outlook allows one app 4 concurrent requests and 10,000 requests per 10 minutes per mailbox
(microsoft-graph.md §6); a 429 costs the whole mailbox time, and rejected requests keep counting.
So every request to a mailbox passes its :class:`MailboxGate` first:

1. a concurrency slot (``asyncio.Semaphore``),
2. any pause a 429 or 503 ``Retry-After`` put on the whole mailbox (the other requests to it
   would only be rejected too),
3. the request budget: a sliding window set below Outlook's (9,000 per 600 s by default).

Waiting is the answer to every limit here: nothing fails for want of a slot or of budget. Waiting
for 2 and 3 while holding a slot costs nothing, since every request to the mailbox waits for them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from prometheus_client import Counter

THROTTLED_WAITS = Counter(
    "calsync_graph_throttled_waits_total",
    "Graph requests that waited before being sent: for request budget, a mailbox pause, or a "
    "Retry-After",
    ["reason"],
)
THROTTLED_WAIT_SECONDS = Counter(
    "calsync_graph_throttled_wait_seconds_total",
    "Seconds Graph requests spent waiting for throttling",
    ["reason"],
)

Clock = Callable[[], float]


def record_wait(reason: str, seconds: float) -> None:
    THROTTLED_WAITS.labels(reason).inc()
    THROTTLED_WAIT_SECONDS.labels(reason).inc(seconds)


class SlidingWindow:
    """At most ``limit`` admissions in any ``period_s``; callers wait their turn, in order.

    Admissions are counted in ``slots`` buckets over the period rather than one timestamp each,
    so memory stays constant for a busy mailbox. A bucket's admissions are treated as if they all
    happened at its end: that can only overestimate what Graph counts, never underestimate it
    (the cost is waiting up to one bucket, 1/``slots`` of the period, longer than needed).
    """

    def __init__(
        self, limit: int, period_s: float, *, slots: int = 60, clock: Clock = time.monotonic
    ) -> None:
        if limit < 1 or period_s <= 0 or slots < 1:
            raise ValueError("limit and slots must be at least 1 and period_s positive")
        self._limit = limit
        self._period = period_s
        self._width = period_s / slots
        self._clock = clock
        self._buckets: deque[list[int]] = deque()  # [bucket index, admissions], oldest first
        self._total = 0
        self._lock = asyncio.Lock()  # one waiter at a time: the budget is handed out in order

    def _expires(self, bucket: int) -> float:
        return (bucket + 1) * self._width + self._period

    def _drop_expired(self, now: float) -> None:
        while self._buckets and self._expires(self._buckets[0][0]) <= now:
            self._total -= self._buckets.popleft()[1]

    def _admit(self, now: float) -> None:
        bucket = math.floor(now / self._width)
        if self._buckets and self._buckets[-1][0] == bucket:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([bucket, 1])
        self._total += 1

    async def acquire(self) -> float:
        """Take one admission, waiting for one to free up; the seconds waited."""
        waited = 0.0
        async with self._lock:
            while True:
                now = self._clock()
                self._drop_expired(now)
                if self._total < self._limit:
                    self._admit(now)
                    return waited
                delay = self._expires(self._buckets[0][0]) - now
                await asyncio.sleep(delay)
                waited += delay


class MailboxGate:
    """The way to one mailbox: concurrency slots, a shared pause, a request budget."""

    def __init__(
        self, concurrency: int, limit: int, period_s: float, *, clock: Clock = time.monotonic
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._slots = asyncio.Semaphore(concurrency)
        self._budget = SlidingWindow(limit, period_s, clock=clock)
        self._clock = clock
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request to this mailbox for ``seconds`` (Graph said so with Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the mailbox's concurrency slots, past any pause, with budget taken."""
        async with self._slots:
            # A pause may be extended while we sleep (another request got a 429): look again.
            while (delay := self._paused_until - self._clock()) > 0:
                record_wait("mailbox_pause", delay)
                await asyncio.sleep(delay)
            waited = await self._budget.acquire()
            if waited > 0:
                record_wait("budget", waited)
            yield


class Mailboxes:
    """One :class:`MailboxGate` per mailbox key (the connection id), made on first use."""

    def __init__(
        self, concurrency: int, limit: int, period_s: float, *, clock: Clock = time.monotonic
    ) -> None:
        self._concurrency, self._limit, self._period_s = concurrency, limit, period_s
        self._clock = clock
        self._gates: dict[str, MailboxGate] = {}

    def gate(self, key: str) -> MailboxGate:
        gate = self._gates.get(key)
        if gate is None:
            gate = MailboxGate(self._concurrency, self._limit, self._period_s, clock=self._clock)
            self._gates[key] = gate
        return gate

    def forget(self, key: str) -> None:
        """Drop a mailbox's gate (its connection is gone); requests in flight keep theirs."""
        self._gates.pop(key, None)
