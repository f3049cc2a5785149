"""What to do about one calendar's Graph subscription, decided from what is known of it.

One subscription per synced calendar (``/me/calendars/{id}/events``, created, updated, deleted),
always with a lifecycle URL, renewed well before the expiry Graph returned (never an assumed
one), deleted when the calendar stops being synced or the connection cannot be used.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum


class Action(Enum):
    CREATE = "create"
    RENEW = "renew"
    DELETE = "delete"  # unsubscribe, keep the calendar's delta link (paused)
    RETIRE = "retire"  # unsubscribe and forget the calendar (no longer synced)
    NOTHING = "nothing"


@dataclass(frozen=True)
class CalendarState:
    wanted: bool
    paused: bool
    connection_active: bool
    subscription_id: str | None
    expires_at: datetime | None


@dataclass(frozen=True)
class Policy:
    #: Graph's longest lifetime for Outlook events is 4,230 minutes; ask a little less.
    lifetime: timedelta = timedelta(minutes=4200)
    #: Renew when less than this is left of what Graph granted.
    renew_when_left: timedelta = timedelta(hours=36)
    #: First retry after a failure, doubling up to ``max_backoff``.
    backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(minutes=30)


def decide(state: CalendarState, now: datetime, policy: Policy) -> Action:
    if not state.wanted:
        return Action.RETIRE
    if state.paused or not state.connection_active:
        return Action.DELETE if state.subscription_id else Action.NOTHING
    if state.subscription_id is None:
        return Action.CREATE
    if state.expires_at is None or state.expires_at - now < policy.renew_when_left:
        return Action.RENEW
    return Action.NOTHING


def next_check(state_expires_at: datetime | None, now: datetime, policy: Policy) -> datetime:
    """When to look at the calendar again if nothing happens before."""
    if state_expires_at is None:
        return now + policy.backoff
    return max(now, state_expires_at - policy.renew_when_left)


def retry_at(failures: int, now: datetime, policy: Policy) -> datetime:
    delay: timedelta = min(policy.backoff * (2 ** max(failures - 1, 0)), policy.max_backoff)
    return now + delay


def new_client_state() -> str:
    """A random secret per subscription (Graph echoes it; only its hash is stored)."""
    return secrets.token_urlsafe(32)
