"""The free-slot computation alone (pure domain, no I/O): how long ``free_slots`` takes for the
issue's case, a 5-member round-robin calendar over 14 days, members in five zones, with busy time
as dense as the busy-query benchmark's (500 intervals per member over about two months).

The HTTP endpoint adds the reads of the calendar and the busy time to this; its budget is p99
25 ms, so this part should stay a small share of it. Writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from calsync_availability.domain.booking_calendars import BookingCalendar, Member, WorkingSpan
from calsync_availability.domain.slots import Busy, free_slots

ZONES = ["Europe/Bucharest", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC"]
START = datetime(2026, 3, 2, tzinfo=UTC)  # a fortnight across the US switch (8 March)
DAYS = 14


def calendar(slot_minutes: int) -> BookingCalendar:
    hours = tuple(WorkingSpan(d, 9 * 60, 17 * 60) for d in range(5))
    return BookingCalendar(
        id=uuid4(),
        sub_account_id="bench",
        name="bench",
        type="round_robin",
        members=tuple(Member(f"m{i}", zone, hours) for i, zone in enumerate(ZONES)),
        slot_length=timedelta(minutes=slot_minutes),
        buffer_before=timedelta(minutes=10),
        buffer_after=timedelta(minutes=10),
        minimum_notice=timedelta(hours=2),
        outlook_conflicts=True,
        on_stale="fail_closed",
        stale_after=timedelta(minutes=15),
        version=1,
        created_at=START,
        updated_at=START,
    )


def busy(rng: random.Random, per_member: int) -> dict[str, list[Busy]]:
    out: dict[str, list[Busy]] = {}
    for i in range(len(ZONES)):
        intervals = []
        for _ in range(per_member):
            at = START - timedelta(days=14) + timedelta(minutes=rng.randrange(0, 60 * 24 * 60))
            intervals.append(Busy(at, at + timedelta(minutes=rng.choice([15, 30, 60, 90])), True))
        out[f"m{i}"] = intervals
    return out


def measure(slot_minutes: int, per_member: int, runs: int) -> dict[str, object]:
    rng = random.Random(7)
    cal = calendar(slot_minutes)
    times: list[float] = []
    count = 0
    for _ in range(runs):
        member_busy = busy(rng, per_member)
        began = time.perf_counter()
        slots = free_slots(
            cal, member_busy, start=START, end=START + timedelta(days=DAYS), now=START
        )
        times.append((time.perf_counter() - began) * 1000)
        count = len(slots)
    times.sort()
    return {
        "slot_minutes": slot_minutes,
        "busy_per_member": per_member,
        "runs": runs,
        "slots_returned": count,
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[int(0.99 * (len(times) - 1))], 3),
        "max_ms": round(times[-1], 3),
    }


def main(out: Path, runs: int) -> None:
    report = {
        "what": "free_slots, 5-member round robin, 14 days, pure domain",
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(),
        "cases": [measure(m, b, runs) for m in (15, 30, 60) for b in (0, 500)],
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results/free_slots.json"))
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    main(args.out, args.runs)
