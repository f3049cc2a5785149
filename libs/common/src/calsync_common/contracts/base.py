"""Base of every event payload and the registry that maps CloudEvents ``type`` to its model.

Writers are strict, readers are tolerant: building a payload in code with a field the model does
not know is an error (a typo never reaches the wire), while decoding a message ignores fields it
does not know, so a producer deployed before its consumers can add an optional field without
sending the stream to the dead-letter topic. The same holds for nested parts built on
:class:`ContractModel` when they are built by calling their class (a nested part handed over as
a plain dict is read, so its unknown fields are ignored).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

EVENT_TYPE_PREFIX = "dev.calsync."
#: Validation context of readers (kept for callers; reading ignores unknown fields anyway).
TOLERANT: dict[str, bool] = {"tolerant": True}


class ContractModel(BaseModel):
    """A frozen part of a contract: built in code, it refuses fields it does not know; read
    (``read``, ``envelope.decode``), it ignores them.

    The refusal sits in ``__new__``, which only a call of the class (a writer) runs with
    fields, rather than in a "before" model validator: such a validator made pydantic turn
    every message into a Python dict and call back into Python before validating it (4.6
    instead of 3.7 us a calendar event; consumers decode with ``model_validate_json``, straight
    from the bytes). An ``__init__`` would not do: pydantic then runs it for every validation
    too."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def __new__(cls, /, *args: Any, **data: Any) -> Self:
        # pydantic also calls it, without arguments, for each instance it validates.
        unknown = sorted(data.keys() - cls.model_fields.keys()) if data else None
        if unknown:
            raise ValidationError.from_exception_data(
                cls.__name__,
                [{"type": "extra_forbidden", "loc": (n,), "input": data[n]} for n in unknown],
            )
        return super().__new__(cls)

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
