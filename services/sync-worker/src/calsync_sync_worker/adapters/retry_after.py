"""How long to wait before retrying Graph: its ``Retry-After`` header, else exponential backoff.

Graph sends ``Retry-After`` on 429 and 503 as integer seconds (``"1"``), fractional seconds
(``"2.128"``, the throttling docs' own example) or an HTTP-date (RFC 9110 §10.2.3; IMF-fixdate
``Sun, 06 Nov 1994 08:49:37 GMT``). Anything else is ignored rather than guessed at: the caller
then backs off as if the header were missing.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Digits only: float() would also take "nan", "inf", "1e9", "-3" and "1_000".
_SECONDS = re.compile(r"\d{1,10}(?:\.\d{1,9})?")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value; ``None`` when absent or unreadable.

    A date in the past means "now" (0.0). ``now`` (timezone-aware) is for tests.
    """
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: HTTP-dates are always UTC ("GMT")
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def full_jitter(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)].

    ``attempt`` counts from 0 (the wait before the first retry). Full jitter spreads the retries
    of many workers hit by the same outage instead of having them return in lockstep.
    """
    ceiling = min(cap_s, base_s * (2 ** min(attempt, 32)))
    return rng.uniform(0.0, ceiling)
