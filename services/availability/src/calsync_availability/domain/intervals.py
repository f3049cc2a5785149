"""Half-open time intervals ``[start, end)`` (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple


class Interval(NamedTuple):
    """``[start, end)``; both ends timezone-aware."""

    start: datetime
    end: datetime


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint intervals covering the same time; touching intervals are joined and
    empty ones dropped."""
    out: list[Interval] = []
    for start, end in sorted(i for i in intervals if i.start < i.end):
        if out and start <= out[-1].end:
            if end > out[-1].end:
                out[-1] = Interval(out[-1].start, end)
        else:
            out.append(Interval(start, end))
    return out
