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

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

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
    """Encode as a binary-mode message; without ``event_id`` a random one (uuid4).

    Written directly, byte for byte what the SDK's ``to_binary`` writes for these attributes
    (``test_contracts`` compares them for every example): building the SDK's ``CloudEvent``
    validated attributes this function already controls, a sixth of a webhook's CPU.
    """
    at = time or datetime.now(UTC)
    if not source or at.tzinfo is None or at.utcoffset() is None:
        raise ContractError("an event needs a source and a time with a time zone")
    key = payload.partition_key()
    headers: dict[str, bytes] = {
        "ce_type": payload.event_type.encode(),
        "ce_source": source.encode(),
        "ce_time": _header_time(at),
        "content-type": b"application/json",
        "ce_dataschema": f"{SCHEMA_BASE}{payload.event_type}.json".encode(),
        "ce_partitionkey": key.encode(),
    }
    if event_id is not None:
        headers["ce_id"] = event_id.encode()
    if subject:
        headers["ce_subject"] = subject.encode()
    if sequence is not None:
        headers["ce_sequence"] = format_sequence(sequence).encode()
    headers["ce_specversion"] = b"1.0"
    if event_id is None:
        headers["ce_id"] = str(uuid4()).encode()
    value = json.dumps(payload.model_dump(mode="json")).encode()
    return KafkaMessage(headers=headers, key=key, value=value)


def _header_time(at: datetime) -> bytes:
    text = at.isoformat()
    return (text[:-6] + "Z" if text.endswith("+00:00") else text).encode()


def encode_with_sdk(
    payload: EventPayload,
    *,
    source: str,
    subject: str | None = None,
    event_id: str | None = None,
    sequence: int | None = None,
    time: datetime | None = None,
) -> KafkaMessage:
    """:func:`encode` through the CloudEvents SDK: the reference it is tested against."""
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
    named = dict(headers)  # the others (traceparent) are never read as CloudEvent attributes
    ours = _decode_ours(named, value)
    if ours is not None:
        return ours
    ce_headers = {k: v for k, v in named.items() if k.startswith("ce_") or k == "content-type"}
    try:
        event = from_binary(KafkaMessage(headers=ce_headers, key=key, value=value), _FORMAT)
    except Exception as exc:  # the SDK raises several unrelated types for malformed input
        raise ContractError(f"not a CloudEvent in binary mode: {exc}") from exc
    data = _payload(event.get_type(), event.get_data())
    return Envelope(
        id=event.get_id(),
        source=event.get_source(),
        type=event.get_type(),
        time=event.get_time(),
        subject=event.get_subject(),
        data=data,
        sequence=parse_sequence(event.get_extension("sequence")),
    )


_OURS_REQUIRED = ("ce_id", "ce_source", "ce_type")


def _decode_ours(headers: dict[str, bytes], value: bytes) -> Envelope | None:
    """The shape every calsync producer writes (:func:`encode`), read without the SDK (whose
    attribute validation cost ~70 µs a record, most of a projection's time); None for anything
    else, which the SDK's path then reads or refuses. The payload rules are the same, except
    that data which is not JSON is refused as invalid data rather than by the SDK."""
    if headers.get("ce_specversion") != b"1.0" or headers.get("content-type") not in (
        b"application/json",
        None,
    ):
        return None
    try:
        event_id, source, event_type = (headers[h].decode() for h in _OURS_REQUIRED)
        raw_time = headers.get("ce_time")
        time = datetime.fromisoformat(raw_time.decode()) if raw_time is not None else None
        raw_subject = headers.get("ce_subject")
        subject = raw_subject.decode() if raw_subject is not None else None
    except (KeyError, UnicodeDecodeError, ValueError):
        return None
    if not (event_id and source and event_type) or (time is not None and time.tzinfo is None):
        return None
    return Envelope(
        id=event_id,
        source=source,
        type=event_type,
        time=time,
        subject=subject,
        data=_payload_json(event_type, value),
        sequence=parse_sequence(headers.get("ce_sequence")),
    )


def _payload_json(event_type: str, value: bytes) -> EventPayload:
    """:func:`_payload` straight from the bytes: pydantic parses and validates in one pass
    (json.loads then model_validate was a quarter of a projection's decoding)."""
    model = payload_model(event_type)
    if model is None:
        raise ContractError(f"unknown event type {event_type!r}")
    try:
        return model.model_validate_json(value, context=TOLERANT)
    except ValidationError as exc:
        raise ContractError(f"{event_type} data invalid: {exc.error_count()} error(s)") from exc


def _payload(event_type: str, body: object) -> EventPayload:
    model = payload_model(event_type)
    if model is None:
        raise ContractError(f"unknown event type {event_type!r}")
    try:
        return model.model_validate(body, context=TOLERANT)
    except ValidationError as exc:
        raise ContractError(f"{event_type} data invalid: {exc.error_count()} error(s)") from exc
