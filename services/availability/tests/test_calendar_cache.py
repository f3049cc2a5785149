"""The booking path's calendar cache: bounded, least recently used first out, keyed by the
sub-account and the calendar's UUID as ``str(UUID)`` spells it. (That a cached calendar never
decides an answer is tested on PostgreSQL in ``test_bookings_api.py``.)"""

from __future__ import annotations

from dataclasses import replace

import pytest

from calsync_availability.adapters.calendar_cache import CalendarCache

from .test_slots import calendar, member


def test_the_least_recently_used_calendar_goes_first() -> None:
    cache = CalendarCache(entries=2)
    a, b, c = (calendar(member("ann", "UTC")) for _ in range(3))
    cache.put(a)
    cache.put(b)
    assert cache.get("sa-1", str(a.id)) is a  # a is now the most recently used
    cache.put(c)
    assert len(cache) == 2
    assert cache.get("sa-1", str(b.id)) is None
    assert cache.get("sa-1", str(a.id)) is a
    assert cache.get("sa-1", str(c.id)) is c


def test_a_calendar_is_kept_per_sub_account_replaced_and_dropped() -> None:
    cache = CalendarCache()
    a = calendar(member("ann", "UTC"))
    cache.put(a)
    assert cache.get("sa-other", str(a.id)) is None
    newer = replace(a, version=2)
    cache.put(newer)
    assert cache.get("sa-1", str(a.id)) is newer
    cache.drop("sa-1", str(a.id))
    assert cache.get("sa-1", str(a.id)) is None
    assert len(cache) == 0


def test_a_cache_holds_at_least_one_calendar() -> None:
    with pytest.raises(ValueError, match="at least one"):
        CalendarCache(entries=0)
