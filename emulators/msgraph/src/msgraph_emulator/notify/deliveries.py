"""What the delivery engine did: one record per POST attempt plus dropped and lost notifications."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Attempt:
    url: str
    kind: str  # "change" | "lifecycle" | "validation"
    at: str
    notification_ids: list[str]
    subscription_ids: list[str]
    status: int | None  # None when no HTTP answer (timeout, refused)
    error: str | None
    duration_ms: float
    attempt: int


@dataclass
class DeliveryLog:
    max_records: int = 10_000
    attempts: deque[Attempt] = field(default_factory=deque)
    dropped: deque[dict[str, Any]] = field(default_factory=deque)
    lost: deque[dict[str, Any]] = field(default_factory=deque)
    delivered_count: int = 0
    failed_attempt_count: int = 0
    #: Monotonic counters (until reset) by kind, for ``/metrics``.
    delivered_by_kind: dict[str, int] = field(default_factory=dict)
    failed_by_kind: dict[str, int] = field(default_factory=dict)
    dropped_count: int = 0
    lost_count: int = 0
    #: Called after every record (tests and the control API wait on these).
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def record(self, attempt: Attempt) -> None:
        kind = attempt.kind
        if attempt.status is not None and 200 <= attempt.status < 300:
            self.delivered_count += len(attempt.notification_ids)
            self.delivered_by_kind[kind] = self.delivered_by_kind.get(kind, 0) + len(
                attempt.notification_ids
            )
        else:
            self.failed_attempt_count += 1
            self.failed_by_kind[kind] = self.failed_by_kind.get(kind, 0) + 1
        self._push(self.attempts, attempt)

    def record_dropped(self, item: dict[str, Any]) -> None:
        self.dropped_count += 1
        self._push(self.dropped, item)

    def record_lost(self, item: dict[str, Any]) -> None:
        self.lost_count += 1
        self._push(self.lost, item)

    def _push(self, target: deque[Any], item: Any) -> None:
        target.append(item)
        if len(target) > self.max_records:
            target.popleft()
        for listener in self.listeners:
            listener()

    def reset(self) -> None:
        self.attempts.clear()
        self.dropped.clear()
        self.lost.clear()
        self.delivered_count = 0
        self.failed_attempt_count = 0
        self.delivered_by_kind.clear()
        self.failed_by_kind.clear()
        self.dropped_count = 0
        self.lost_count = 0

    def to_json(self, subscription_id: str | None = None) -> dict[str, Any]:
        attempts = [asdict(a) for a in self.attempts]
        dropped = list(self.dropped)
        lost = list(self.lost)
        if subscription_id is not None:
            attempts = [a for a in attempts if subscription_id in a["subscription_ids"]]
            dropped = [d for d in dropped if d.get("subscriptionId") == subscription_id]
            lost = [d for d in lost if d.get("subscriptionId") == subscription_id]
        return {
            "deliveredNotifications": self.delivered_count,
            "failedAttempts": self.failed_attempt_count,
            "attempts": attempts,
            "dropped": dropped,
            "lost": lost,
        }
