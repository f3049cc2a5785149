"""Base of every event payload and the registry that maps CloudEvents ``type`` to its model."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

EVENT_TYPE_PREFIX = "dev.calsync."


class EventPayload(BaseModel):
    """The ``data`` of one CloudEvent: frozen, versioned, closed to unknown fields.

    ``event_type`` is the CloudEvents ``type`` (it carries the major version, e.g.
    ``dev.calsync.booking.confirmed.v1``); a breaking change is a new type, so consumers never see
    a shape they were not written for. ``topic`` names the topic it is published on.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    topic: ClassVar[str]

    def partition_key(self) -> str:
        """The Kafka key: all events that must stay ordered share it."""
        raise NotImplementedError


_REGISTRY: dict[str, type[EventPayload]] = {}


def register(model: type[EventPayload]) -> type[EventPayload]:
    """Class decorator adding a payload model to the registry (one model per CloudEvents type)."""
    if not model.event_type.startswith(EVENT_TYPE_PREFIX):
        raise ValueError(f"event type {model.event_type!r} must start with {EVENT_TYPE_PREFIX!r}")
    if model.event_type in _REGISTRY and _REGISTRY[model.event_type] is not model:
        raise ValueError(f"event type {model.event_type!r} registered twice")
    _REGISTRY[model.event_type] = model
    return model


def payload_model(event_type: str) -> type[EventPayload] | None:
    return _REGISTRY.get(event_type)


def registered_models() -> list[type[EventPayload]]:
    return sorted(_REGISTRY.values(), key=lambda m: m.event_type)
