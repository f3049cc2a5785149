"""A series master's occurrences, expanded lazily once and then bisected per window.

Expanding a pattern walks it from its first date, so calendarView on a long-running series would
cost O(occurrences since the series began) per request. Instead each master keeps its expansion
(UTC start/end timestamps in order) and extends it only as far as a window needs; a window is
then two bisections plus the k occurrences it returns. The cache is tied to the master's
recurrence object and its start/end, so any change to the series' time or pattern rebuilds it.
Exceptions and cancellations are applied by the caller (they don't change the pattern).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from msgraph_emulator.mailbox import ids
from msgraph_emulator.mailbox.model import Event
from msgraph_emulator.mailbox.recurrence import occurrences

Span = tuple[datetime, datetime]


@dataclass
class Expansion:
    recurrence: dict[str, Any]
    start: datetime
    end: datetime
    source: Iterator[Span] | None
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    _ids: dict[int, str] = field(default_factory=dict)

    def fits(self, master: Event) -> bool:
        return (
            self.recurrence is master.recurrence
            and self.start == master.start
            and self.end == master.end
        )

    def _fill(self, until: float) -> None:
        """Expand until an occurrence starts at or after ``until`` (or the series ends)."""
        while self.source is not None and (not self.starts or self.starts[-1] < until):
            span = next(self.source, None)
            if span is None:
                self.source = None
                return
            self.starts.append(span[0].timestamp())
            self.ends.append(span[1].timestamp())
            self.spans.append(span)

    def window(self, lo_ts: float, hi_ts: float) -> range:
        """Positions of the occurrences that may overlap ``[lo, hi)``: end >= lo, start < hi."""
        self._fill(hi_ts)
        first = bisect_left(self.ends, lo_ts)
        return range(first, bisect_left(self.starts, hi_ts, lo=first))

    def occurrence_id(self, position: int, master_id: str) -> str:
        """The occurrence's id, encoded once per series (ids derive from the original start)."""
        found = self._ids.get(position)
        if found is None:
            found = self._ids[position] = ids.occurrence_id(master_id, self.spans[position][0])
        return found

    def at(self, stamp: int) -> Span | None:
        """The occurrence whose original start is ``stamp`` (UTC epoch seconds), if any."""
        self._fill(stamp + 1)
        i = bisect_left(self.starts, stamp)
        if i < len(self.starts) and int(self.starts[i]) == stamp:
            return self.spans[i]
        return None


def expansion_of(master: Event) -> Expansion:
    assert master.recurrence is not None
    cached = master.expansion
    if isinstance(cached, Expansion) and cached.fits(master):
        return cached
    source = occurrences(master.recurrence, master.start, master.end)
    fresh = Expansion(master.recurrence, master.start, master.end, source)
    master.expansion = fresh
    return fresh
