"""The subscription decision table (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from calsync_sync_worker.domain.subscriptions import (
    Action,
    CalendarState,
    Policy,
    decide,
    next_check,
    retry_at,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = Policy()


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (CalendarState(True, False, True, None, None), Action.CREATE),
        (CalendarState(True, False, True, "s", NOW + timedelta(days=2)), Action.NOTHING),
        (CalendarState(True, False, True, "s", NOW + timedelta(hours=35)), Action.RENEW),
        (CalendarState(True, False, True, "s", NOW - timedelta(hours=1)), Action.RENEW),
        (CalendarState(True, True, True, "s", NOW + timedelta(days=2)), Action.DELETE),
        (CalendarState(True, True, True, None, None), Action.NOTHING),
        (CalendarState(True, False, False, "s", NOW + timedelta(days=2)), Action.DELETE),
        (CalendarState(False, False, True, "s", NOW + timedelta(days=2)), Action.RETIRE),
        (CalendarState(False, False, True, None, None), Action.RETIRE),
    ],
    ids=[
        "new",
        "fresh",
        "expiring",
        "expired",
        "paused",
        "paused-gone",
        "connection-unusable",
        "dropped",
        "dropped-unsubscribed",
    ],
)
def test_decide(state: CalendarState, action: Action) -> None:
    assert decide(state, NOW, POLICY) is action


def test_renewal_is_planned_from_the_expiry_graph_returned() -> None:
    granted = NOW + timedelta(minutes=4230)
    assert next_check(granted, NOW, POLICY) == granted - POLICY.renew_when_left


def test_failures_back_off_exponentially_up_to_a_bound() -> None:
    delays = [retry_at(n, NOW, POLICY) - NOW for n in (1, 2, 3, 10)]
    assert delays[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert delays[3] == POLICY.max_backoff
