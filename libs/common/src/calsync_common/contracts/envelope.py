"""CloudEvents 1.0 in Kafka binary content mode: ``ce_*`` headers, JSON data, key from payload."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.catalogue import payload_model

_FORMAT = JSONFormat()
SCHEMA_BASE = "https://calsync.dev/schemas/"


class ContractError(ValueError):
    """A message that is not a valid calsync CloudEvent (a poison message, never retried)."""


@dataclass(frozen=True)
class Envelope:
    id: str
    source: str
    type: str
    time: datetime | None
    subject: str | None
    data: EventPayload


def encode(payload: EventPayload, *, source: str, subject: str | None = None) -> KafkaMessage:
    attributes: dict[str, object] = {
        "type": payload.event_type,
        "source": source,
        "time": datetime.now(UTC),
        "datacontenttype": "application/json",
        "dataschema": f"{SCHEMA_BASE}{payload.event_type}.json",
        "partitionkey": payload.partition_key(),
    }
    if subject:
        attributes["subject"] = subject
    event = CloudEvent(attributes=attributes, data=payload.model_dump(mode="json"))
    return to_binary(event, _FORMAT)


def decode(
    headers: Iterable[tuple[str, bytes]], key: bytes | None, value: bytes | None
) -> Envelope:
    """Parse and validate; raise :class:`ContractError` for anything a consumer cannot apply."""
    if value is None:
        raise ContractError("message has no value (tombstones carry no event)")
    ce_headers = {k: v for k, v in headers if k.startswith("ce_") or k == "content-type"}
    try:
        event = from_binary(KafkaMessage(headers=ce_headers, key=key, value=value), _FORMAT)
    except Exception as exc:  # the SDK raises several unrelated types for malformed input
        raise ContractError(f"not a CloudEvent in binary mode: {exc}") from exc
    model = payload_model(event.get_type())
    if model is None:
        raise ContractError(f"unknown event type {event.get_type()!r}")
    try:
        data = model.model_validate(event.get_data())
    except ValidationError as exc:
        raise ContractError(
            f"{event.get_type()} data invalid: {exc.error_count()} error(s)"
        ) from exc
    return Envelope(
        id=event.get_id(),
        source=event.get_source(),
        type=event.get_type(),
        time=event.get_time(),
        subject=event.get_subject(),
        data=data,
    )
