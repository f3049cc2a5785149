"""Outlook's per app + mailbox limits: concurrent requests and requests per 10 minutes.

Both checks are O(1) amortized: a counter for concurrency and a deque of admission times per
(app, mailbox) whose expired head is trimmed on each request. Like Graph, rejected requests still
count towards the 10-minute budget ("usage continues to accrue while throttled").
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 600.0

Key = tuple[str, str]  # (client_id, user id of the mailbox addressed)


@dataclass(frozen=True)
class Verdict:
    code: str  # "" when admitted
    retry_after_s: int = 0

    @property
    def admitted(self) -> bool:
        return not self.code


ADMITTED = Verdict("")


@dataclass
class MailboxLimiter:
    concurrency: int
    requests_per_window: int
    clock: Callable[[], float] = time.monotonic
    active: dict[Key, int] = field(default_factory=dict)
    recent: dict[Key, deque[float]] = field(default_factory=dict)

    def acquire(self, key: Key) -> Verdict:
        """Admit one request (caller must ``release`` it) or say why not."""
        now = self.clock()
        times = self.recent.get(key)
        if times is None:
            times = self.recent[key] = deque()
        horizon = now - WINDOW_S
        while times and times[0] <= horizon:
            times.popleft()
        times.append(now)
        if len(times) > self.requests_per_window:
            # A retry is admitted once enough entries aged out to leave room for it.
            oldest_blocking = times[len(times) - self.requests_per_window]
            wait = max(1, math.ceil(oldest_blocking + WINDOW_S - now))
            return Verdict("TooManyRequests", wait)
        running = self.active.get(key, 0)
        if running >= self.concurrency:
            return Verdict("ApplicationThrottled", 1)
        self.active[key] = running + 1
        return ADMITTED

    def release(self, key: Key) -> None:
        running = self.active.get(key, 0) - 1
        if running > 0:
            self.active[key] = running
        else:
            self.active.pop(key, None)

    def reset(self) -> None:
        self.active.clear()
        self.recent.clear()
