"""Base of every event payload and the registry that maps CloudEvents ``type`` to its model.

Writers are strict, readers are tolerant: building a payload in code with a field the model does
not know is an error (a typo never reaches the wire), while decoding a message ignores fields it
does not know, so a producer deployed before its consumers can add an optional field without
sending the stream to the dead-letter topic. ``decode`` opts into tolerance with
:data:`TOLERANT`; the same rule holds for nested models built on :class:`ContractModel`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

EVENT_TYPE_PREFIX = "dev.calsync."
#: Validation context of readers: unknown fields are ignored instead of refused.
TOLERANT: dict[str, bool] = {"tolerant": True}


class ContractModel(BaseModel):
    """A frozen part of a contract: refuses unknown fields unless validated with TOLERANT."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and not (info.context or {}).get("tolerant"):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"unknown field(s) {unknown} for {cls.__name__}")
        return data

    @classmethod
    def read(cls, data: object) -> Any:
        """Validate as a reader: unknown fields are dropped."""
        return cls.model_validate(data, context=TOLERANT)


class EventPayload(ContractModel):
    """The ``data`` of one CloudEvent: frozen and versioned.

    ``event_type`` is the CloudEvents ``type`` (it carries the major version, e.g.
    ``dev.calsync.booking.confirmed.v1``); a breaking change is a new type, so consumers never see
    a shape they were not written for. Adding an optional field is not breaking. ``topic`` names
    the topic it is published on.
    """

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
