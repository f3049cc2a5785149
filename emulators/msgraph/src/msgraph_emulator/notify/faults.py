"""Injected faults (control API ``/_emulator/faults``): global, or per user (mailbox).

A per-user configuration replaces the global one for that user. Random choices come from a
``random.Random`` seeded with ``seed`` when given, so a test run is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any


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
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("error_rate", "duplicate_rate", "loss_rate"):
            _rate(name, getattr(self, name))
        if self.latency_ms < 0 or self.delay_ms < 0:
            raise ValueError("latency_ms and delay_ms must not be negative")
        self.rng = random.Random(self.seed)  # noqa: S311 (fault injection, not crypto)

    def chance(self, rate: float) -> bool:
        return rate > 0.0 and self.rng.random() < rate

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
