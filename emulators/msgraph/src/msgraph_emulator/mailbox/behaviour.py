"""Switchable Graph behaviours (the ``behaviour`` part of the state), for ambiguous cases where
real Graph is known to answer in more than one way and clients must cope with each.

``cancelledOccurrencesInDelta``: how a calendarView/delta round reports an occurrence of a series
cancelled since the client's token. ``"removed"`` (default): an ``@removed`` item. ``"omitted"``:
no item at all, as field reports describe (microsoftgraph/microsoft-graph-docs#4501); calendarView
and first rounds leave the cancelled occurrence out either way.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

CancelledInDelta = Literal["removed", "omitted"]
CANCELLED_IN_DELTA: tuple[str, ...] = get_args(CancelledInDelta)
FIELDS = ("cancelledOccurrencesInDelta",)


class Behaviour:
    def __init__(self) -> None:
        self.cancelled_in_delta: CancelledInDelta = "removed"

    @property
    def omit_cancelled(self) -> bool:
        return self.cancelled_in_delta == "omitted"

    def reset(self) -> None:
        self.cancelled_in_delta = "removed"

    def dump(self) -> dict[str, Any]:
        return {"cancelledOccurrencesInDelta": self.cancelled_in_delta}

    def load(self, data: Any) -> None:
        """Replace the whole configuration: omitted fields take their defaults.

        Raises ``TypeError`` for a non-object, ``ValueError`` for an unknown field or value
        (nothing changes then).
        """
        if not isinstance(data, dict):
            raise TypeError("The behaviour must be a JSON object.")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ValueError(f"Unknown behaviour field(s): {', '.join(unknown)}.")
        value = data.get("cancelledOccurrencesInDelta", "removed")
        if value == "removed":
            self.cancelled_in_delta = "removed"
        elif value == "omitted":
            self.cancelled_in_delta = "omitted"
        else:
            allowed = " or ".join(f'"{v}"' for v in CANCELLED_IN_DELTA)
            raise ValueError(f"cancelledOccurrencesInDelta must be {allowed}.")
