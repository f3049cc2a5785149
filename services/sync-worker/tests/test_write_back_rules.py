"""The write-back's pure rules: which Graph call a booking needs, and echo versus user change."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from calsync_sync_worker.domain.write_back import (
    Step,
    Target,
    Wanted,
    decide,
    event_body,
    outlook_change,
)

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
CONN = uuid.uuid4()
WANTED = Wanted(
    booking_id=uuid.uuid4(),
    version=1,
    cancelled=False,
    start=T0,
    end=T0 + timedelta(minutes=30),
    title="Intro",
    connection_id=None,
    calendar_id=None,
    event_id=None,
    written_version=None,
    written_start=None,
    written_end=None,
    written_at=None,
    failures=0,
)
ACTIVE = Target(CONN, "active", "cal-linked")
WRITTEN = replace(
    WANTED,
    connection_id=CONN,
    calendar_id="cal-linked",
    event_id="AAMk-1",
    written_version=1,
    written_start=T0,
    written_end=T0 + timedelta(minutes=30),
    written_at=T0 - timedelta(days=1),
)


@pytest.mark.parametrize(
    ("wanted", "target", "step", "reason"),
    [
        (WANTED, ACTIVE, Step.CREATE, None),
        (WANTED, None, Step.SKIP, "no_connection"),
        (WANTED, Target(CONN, "reauth_required", "cal-linked"), Step.SKIP, "connection_not_active"),
        (WANTED, Target(CONN, "active", None), Step.SKIP, "no_linked_calendar"),
        (WRITTEN, ACTIVE, Step.UPDATE, None),
        # Reconnected as a new connection: the old event is out of reach, place it anew.
        (WRITTEN, Target(uuid.uuid4(), "active", "cal-2"), Step.CREATE, None),
        (replace(WRITTEN, cancelled=True), ACTIVE, Step.DELETE, None),
        (replace(WANTED, cancelled=True), ACTIVE, Step.NOTHING_TO_REMOVE, None),
        (replace(WRITTEN, cancelled=True), None, Step.SKIP, "no_connection"),
    ],
)
def test_decide(wanted: Wanted, target: Target | None, step: Step, reason: str | None) -> None:
    decision = decide(wanted, target)
    assert (decision.step, decision.reason) == (step, reason)


def test_a_create_is_idempotent_tagged_and_in_utc() -> None:
    body = event_body(replace(WANTED, start=T0.astimezone(), end=WANTED.end), create=True)
    assert body["transactionId"] == f"calsync-{WANTED.booking_id}"
    assert body["singleValueExtendedProperties"][0]["value"] == str(WANTED.booking_id)
    assert body["start"] == {"dateTime": "2026-12-07T09:00:00", "timeZone": "UTC"}
    assert "transactionId" not in event_body(WANTED, create=False)


def test_the_echo_of_what_calsync_wrote_is_no_change() -> None:
    after = WRITTEN.written_at + timedelta(minutes=1)  # type: ignore[operator]
    assert (
        outlook_change(
            WRITTEN, observed_at=after, deleted=False, start=T0, end=T0 + timedelta(minutes=30)
        )
        is None
    )


def test_other_times_or_a_deletion_seen_after_the_write_are_the_users() -> None:
    after = WRITTEN.written_at + timedelta(minutes=1)  # type: ignore[operator]
    moved = outlook_change(
        WRITTEN, observed_at=after, deleted=False, start=T0 + timedelta(hours=1), end=T0
    )
    assert moved == "moved"
    assert outlook_change(WRITTEN, observed_at=after, deleted=True) == "deleted"


def test_what_was_read_before_calsync_last_wrote_is_outdated_not_a_change() -> None:
    before = WRITTEN.written_at - timedelta(seconds=1)  # type: ignore[operator]
    assert outlook_change(WRITTEN, observed_at=before, deleted=True) is None
    assert (
        outlook_change(
            WRITTEN, observed_at=before, deleted=False, start=T0 - timedelta(hours=1), end=T0
        )
        is None
    )


def test_a_cancelled_bookings_event_going_away_is_calsyncs_own_delete() -> None:
    after = WRITTEN.written_at + timedelta(minutes=1)  # type: ignore[operator]
    assert outlook_change(replace(WRITTEN, cancelled=True), observed_at=after, deleted=True) is None
