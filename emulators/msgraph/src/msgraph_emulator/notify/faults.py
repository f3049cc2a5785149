"""Injected faults (control API ``/_emulator/faults``): global, or per user (mailbox).

A per-user configuration replaces the global one for that user. Random choices come from a
``random.Random`` seeded with ``seed`` when given, so a test run is reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

RETRY_AFTER_FORMS = frozenset({"seconds", "fractional", "http-date"})


def _rate(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1")
    return value


@dataclass
class FaultConfig:
    #: Outlook's per app+mailbox limits (429); off lets benchmarks and bulk seeding through.
    throttling: bool = True
    #: Added to every Graph request of the user.
    latency_ms: float = 0.0
    #: Share of Graph requests answered ``503 serviceNotAvailable``.
    error_rate: float = 0.0
    #: Share of change notifications delivered twice.
    duplicate_rate: float = 0.0
    #: Shuffle each delivery batch (and hold items back for a later batch).
    reorder: bool = False
    #: Added before a change notification is queued for delivery.
    delay_ms: float = 0.0
    #: Share of change notifications silently lost (recorded as ``lost``).
    loss_rate: float = 0.0
    #: Share of Graph requests answered ``429 TooManyRequests`` (after the real limits).
    throttle_rate: float = 0.0
    #: The wait injected 429 and 503 answers advise, and how ``Retry-After`` says it: integer
    #: seconds (rounded up), fractional seconds, or an HTTP date (all three seen from Graph).
    retry_after_s: float = 1.0
    retry_after_form: str = "seconds"
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("error_rate", "duplicate_rate", "loss_rate", "throttle_rate"):
            _rate(name, getattr(self, name))
        if self.latency_ms < 0 or self.delay_ms < 0 or self.retry_after_s < 0:
            raise ValueError("latency_ms, delay_ms and retry_after_s must not be negative")
        if self.retry_after_form not in RETRY_AFTER_FORMS:
            raise ValueError(f"retry_after_form must be one of {sorted(RETRY_AFTER_FORMS)}")
        self.rng = random.Random(self.seed)  # noqa: S311 (fault injection, not crypto)

    def chance(self, rate: float) -> bool:
        return rate > 0.0 and self.rng.random() < rate

    def retry_after(self, now: datetime | None = None) -> str:
        """The ``Retry-After`` value of an injected 429 or 503."""
        if self.retry_after_form == "fractional":
            return f"{self.retry_after_s:g}"
        seconds = math.ceil(self.retry_after_s)
        if self.retry_after_form == "http-date":
            at = (now or datetime.now(UTC)) + timedelta(seconds=seconds)
            return format_datetime(at, usegmt=True)
        return str(seconds)

    def dump(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("rng")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)} - {"rng"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)


class FaultRegistry:
    def __init__(self) -> None:
        self.global_config = FaultConfig()
        self.per_user: dict[str, FaultConfig] = {}

    def for_user(self, user_id: str | None) -> FaultConfig:
        if user_id is not None:
            config = self.per_user.get(user_id)
            if config is not None:
                return config
        return self.global_config

    def set(self, config: FaultConfig, user_id: str | None = None) -> None:
        if user_id is None:
            self.global_config = config
        else:
            self.per_user[user_id] = config

    def clear(self, user_id: str | None = None) -> None:
        if user_id is None:
            self.global_config = FaultConfig()
            self.per_user.clear()
        else:
            self.per_user.pop(user_id, None)

    def dump(self) -> dict[str, Any]:
        return {
            "global": self.global_config.dump(),
            "users": {uid: c.dump() for uid, c in self.per_user.items()},
        }

    def load(self, data: dict[str, Any]) -> None:
        self.global_config = FaultConfig.from_json(data.get("global", {}))
        self.per_user = {u: FaultConfig.from_json(c) for u, c in data.get("users", {}).items()}
