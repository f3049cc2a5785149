"""CloudEvents 1.0 in Kafka binary content mode: ``ce_*`` headers, JSON data, key from payload.

Identity and order travel with every event:

* ``ce_id`` is deterministic when the producer derives it from the state change (the outbox does:
  source, topic, key and sequence), so a relayed duplicate carries the same id;
* ``ce_sequence`` (the CloudEvents *sequence* extension) is the per-key sequence the producer
  assigned, zero-padded so that string order is numeric order as the extension requires.
  Consumers drop an event whose sequence is not above the last one they applied for the key.

A tombstone (``value`` null) on a compacted topic deletes its key; it carries the same identity
headers but no data, and decodes to :class:`Tombstone`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from calsync_common.contracts.base import TOLERANT, EventPayload
from calsync_common.contracts.catalogue import payload_model

_FORMAT = JSONFormat()
SCHEMA_BASE = "https://calsync.dev/schemas/"
SEQUENCE_DIGITS = 20  # fits any non-negative bigint


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
    #: Per-key sequence assigned by the producer (None: the producer assigns none).
    sequence: int | None = None


@dataclass(frozen=True)
class Tombstone:
    """A null-value record: the key's state is deleted (compacted topics)."""

    key: str
    id: str | None
    source: str | None
    sequence: int | None


def format_sequence(sequence: int) -> str:
    if sequence < 0:
        raise ValueError("sequence must not be negative")
    return str(sequence).zfill(SEQUENCE_DIGITS)


def parse_sequence(raw: str | bytes | None) -> int | None:
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not text.isdigit():
        raise ContractError(f"sequence {text[:40]!r} is not a non-negative integer")
    return int(text)


def encode(
    payload: EventPayload,
    *,
    source: str,
    subject: str | None = None,
    event_id: str | None = None,
    sequence: int | None = None,
    time: datetime | None = None,
) -> KafkaMessage:
    """Encode as a binary-mode message; without ``event_id`` the SDK draws a random one."""
    attributes: dict[str, object] = {
        "type": payload.event_type,
        "source": source,
        "time": time or datetime.now(UTC),
        "datacontenttype": "application/json",
        "dataschema": f"{SCHEMA_BASE}{payload.event_type}.json",
        "partitionkey": payload.partition_key(),
    }
    if event_id is not None:
        attributes["id"] = event_id
    if subject:
        attributes["subject"] = subject
    if sequence is not None:
        attributes["sequence"] = format_sequence(sequence)
    event = CloudEvent(attributes=attributes, data=payload.model_dump(mode="json"))
    return to_binary(event, _FORMAT)


def tombstone_headers(*, event_id: str, source: str, sequence: int | None) -> dict[str, bytes]:
    headers = {"ce_id": event_id.encode(), "ce_source": source.encode()}
    if sequence is not None:
        headers["ce_sequence"] = format_sequence(sequence).encode()
    return headers


def decode_record(
    headers: Iterable[tuple[str, bytes]], key: bytes | None, value: bytes | None
) -> Envelope | Tombstone:
    """An event or, for a null value with a key, a tombstone."""
    if value is None:
        if key is None:
            raise ContractError("a tombstone needs a key")
        named = dict(headers)
        source = named.get("ce_source")
        event_id = named.get("ce_id")
        return Tombstone(
            key=key.decode(),
            id=event_id.decode() if event_id is not None else None,
            source=source.decode() if source is not None else None,
            sequence=parse_sequence(named.get("ce_sequence")),
        )
    return decode(headers, key, value)


def decode(
    headers: Iterable[tuple[str, bytes]], key: bytes | None, value: bytes | None
) -> Envelope:
    """Parse and validate as a tolerant reader (unknown fields are ignored); raise
    :class:`ContractError` for anything a consumer cannot apply."""
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
        data = model.model_validate(event.get_data(), context=TOLERANT)
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
        sequence=parse_sequence(event.get_extension("sequence")),
    )
