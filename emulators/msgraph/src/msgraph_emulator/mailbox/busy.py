"""Ground truth for availability: what a correct busy projection of a calendar must equal.

Definitions (times are UTC, intervals half-open ``[start, end)``):

* instances: every instance overlapping the window after recurrence expansion, with exceptions
  applied and cancelled (deleted) occurrences removed; events with ``isCancelled`` true are
  listed but never block.
* ``blocking``: merged intervals of instances whose showAs is busy, oof or workingElsewhere.
  Tentative does NOT block here (it is exposed separately); free and unknown never block.
* ``busy``: merged intervals of showAs == busy only (what the product blocks: "BUSY only").
* ``tentative``: merged intervals of showAs == tentative.
* All-day events cover midnight to midnight of their dates in the zone they were created in
  (originalStartTimeZone), although Graph labels their start/end "UTC".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgraph_emulator.mailbox.model import Instance
from msgraph_emulator.mailbox.store import Mailbox
from msgraph_emulator.mailbox.timezones import format_offset

BLOCKING = frozenset({"busy", "oof", "workingElsewhere"})


def instance_show_as(inst: Instance) -> str:
    base = inst.master or inst.source
    return str(inst.source.props.get("showAs", base.prop("showAs")))


def instance_cancelled(inst: Instance) -> bool:
    base = inst.master or inst.source
    return bool(inst.source.props.get("isCancelled", base.prop("isCancelled")))


def merge(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _fmt(intervals: list[tuple[datetime, datetime]]) -> list[dict[str, str]]:
    return [{"start": format_offset(s), "end": format_offset(e)} for s, e in intervals]


def ground_truth(mb: Mailbox, calendar_id: str, lo: datetime, hi: datetime) -> dict[str, Any]:
    instances = mb.instances(calendar_id, lo, hi)
    rows: list[dict[str, Any]] = []
    spans: dict[str, list[tuple[datetime, datetime]]] = {"blocking": [], "busy": [], "tent": []}
    for inst in instances:
        show_as, cancelled = instance_show_as(inst), instance_cancelled(inst)
        span = (max(inst.start_utc, lo), min(inst.end_utc, hi))
        base = inst.master or inst.source
        rows.append(
            {
                "id": inst.id,
                "type": inst.type,
                "seriesMasterId": inst.master.id if inst.master else None,
                "subject": str(inst.source.props.get("subject", base.prop("subject"))),
                "showAs": show_as,
                "isCancelled": cancelled,
                "isAllDay": base.is_all_day,
                "originalStartTimeZone": base.start_tz,
                "start": format_offset(inst.start_utc),
                "end": format_offset(inst.end_utc),
            }
        )
        if cancelled or span[0] >= span[1]:
            continue
        if show_as in BLOCKING:
            spans["blocking"].append(span)
        if show_as == "busy":
            spans["busy"].append(span)
        if show_as == "tentative":
            spans["tent"].append(span)
    return {
        "start": format_offset(lo),
        "end": format_offset(hi),
        "blocking": _fmt(merge(spans["blocking"])),
        "busy": _fmt(merge(spans["busy"])),
        "tentative": _fmt(merge(spans["tent"])),
        "instances": rows,
    }
