"""Event contracts: CloudEvents binary round trip, registry coverage, generated docs up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from calsync_common.contracts.calendar_events import CalendarEventUpserted
from calsync_common.contracts.catalogue import CATALOGUE, registered_models
from calsync_common.contracts.envelope import ContractError, decode, encode
from calsync_common.contracts.examples import NOW, examples
from calsync_common.contracts.render import stale_files

ROOT = Path(__file__).resolve().parents[3]


def test_every_registered_model_has_an_example() -> None:
    assert {type(s) for s in examples()} == set(registered_models())


@pytest.mark.parametrize("payload", examples(), ids=lambda p: p.event_type)
def test_round_trip_through_cloudevents_headers(payload: object) -> None:
    from calsync_common.contracts.base import EventPayload

    assert isinstance(payload, EventPayload)
    message = encode(payload, source="/calsync/test", subject="s-1")
    headers = dict(message.headers)
    assert headers["ce_type"] == payload.event_type.encode()
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_source"] == b"/calsync/test"
    assert headers["content-type"] == b"application/json"
    assert message.key == payload.partition_key()
    envelope = decode(list(message.headers.items()), None, message.value)
    assert envelope.data == payload
    assert envelope.type == payload.event_type
    assert envelope.subject == "s-1"


def test_every_topic_of_a_model_is_in_the_catalogue() -> None:
    names = {t.name for t in CATALOGUE}
    assert {m.topic for m in registered_models()} <= names


def test_unknown_type_is_a_contract_error() -> None:
    message = encode(examples()[0], source="/t")
    headers = dict(message.headers)
    headers["ce_type"] = b"dev.calsync.nope.v1"
    with pytest.raises(ContractError, match="unknown event type"):
        decode(list(headers.items()), None, message.value)


def test_invalid_data_is_a_contract_error() -> None:
    message = encode(examples()[0], source="/t")
    with pytest.raises(ContractError, match="data invalid"):
        decode(list(message.headers.items()), None, b'{"connection_id": "not-a-uuid"}')


def test_missing_headers_are_a_contract_error() -> None:
    with pytest.raises(ContractError):
        decode([], None, b"{}")


def test_payloads_are_frozen_and_closed() -> None:
    with pytest.raises(ValidationError):
        CalendarEventUpserted(
            connection_id=examples()[0].connection_id,  # type: ignore[attr-defined]
            calendar_id="c",
            event_id="e",
            start=NOW,
            end=NOW,
            show_as="busy",
            observed_at=NOW,
            surprise=1,  # type: ignore[call-arg]
        )


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ValidationError, match="end must not be before start"):
        CalendarEventUpserted(
            connection_id=examples()[0].connection_id,  # type: ignore[attr-defined]
            calendar_id="c",
            event_id="e",
            start=NOW,
            end=NOW.replace(hour=8),
            show_as="busy",
            observed_at=NOW,
        )


def test_generated_docs_and_schemas_are_current() -> None:
    stale = stale_files(ROOT)
    assert stale == [], f"run `make schemas`: {stale}"


def test_our_own_messages_are_encoded_as_the_sdk_encodes_them() -> None:
    """``encode`` writes the message directly; the SDK's ``to_binary`` is the reference: the same
    headers (and their order), key and value bytes, for every example and attribute mix."""
    from datetime import UTC, datetime, timedelta, timezone

    from calsync_common.contracts import envelope

    times = [
        datetime(2026, 12, 2, 9, 30, tzinfo=UTC),
        datetime(2026, 12, 2, 9, 30, 1, 250, tzinfo=UTC),
        datetime(2026, 12, 2, 11, 30, tzinfo=timezone(timedelta(hours=2))),
    ]
    for example in examples():
        for n, at in enumerate(times):
            variants: list[dict[str, Any]] = [
                {"event_id": f"id-{n}", "sequence": n, "subject": "s"},
                {"event_id": f"id-{n}"},
                {"sequence": 0},
                {},
            ]
            for attrs in variants:
                ours = envelope.encode(example, source="/calsync/test", time=at, **attrs)
                sdk = envelope.encode_with_sdk(example, source="/calsync/test", time=at, **attrs)
                if "event_id" not in attrs:  # both draw a random one
                    assert len(ours.headers.pop("ce_id")) == len(sdk.headers.pop("ce_id")) == 36
                assert list(ours.headers.items()) == list(sdk.headers.items())
                assert (ours.key, ours.value) == (sdk.key, sdk.value)


def test_an_event_without_a_source_or_an_aware_time_is_refused() -> None:
    from datetime import datetime

    from calsync_common.contracts import envelope

    example = examples()[0]
    with pytest.raises(envelope.ContractError):
        envelope.encode(example, source="")
    with pytest.raises(envelope.ContractError):
        envelope.encode(example, source="/calsync/test", time=datetime(2026, 12, 2, 9, 30))


def test_our_own_messages_decode_the_same_without_the_sdk() -> None:
    """``decode`` reads calsync's own shape directly; it must agree with the SDK's reading."""
    from cloudevents.core.bindings.kafka import KafkaMessage, from_binary

    from calsync_common.contracts import envelope

    for example in examples():
        message = envelope.encode(example, source="/calsync/test", subject="s", sequence=7)
        headers = list(message.headers.items())
        key = message.key.encode() if isinstance(message.key, str) else message.key
        ours = envelope.decode(headers, key, message.value)
        sdk = from_binary(
            KafkaMessage(headers=dict(headers), key=key, value=message.value), envelope._FORMAT
        )
        assert (ours.id, ours.source, ours.type, ours.time, ours.subject, ours.sequence) == (
            sdk.get_id(),
            sdk.get_source(),
            sdk.get_type(),
            sdk.get_time(),
            sdk.get_subject(),
            7,
        )
        assert ours.data == example
