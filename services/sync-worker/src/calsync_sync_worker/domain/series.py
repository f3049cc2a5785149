"""Series masters: what the occurrences of a recurring series in calendarView/delta depend on.

Graph's delta items for plain occurrences are thin: ``id``, ``type``, ``seriesMasterId``, ``start``,
``end`` and ``@odata.etag`` only. Whether such an occurrence blocks time (``showAs``), is
cancelled, is all-day, or is calsync's own booking (``transactionId``) is on the master. The
sync-worker keeps fetched masters in a cache; this module says which masters a batch of items
needs and which of them the cache lacks, so the caller can fetch exactly those before it
normalises the batch. Fetching is I/O, and stays with the caller.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import Any, Protocol

#: One JSON object of a Graph response, as decoded.
GraphItem = Mapping[str, Any]


class MasterLookup(Protocol):
    """Series masters already fetched (an event JSON as ``GET /events/{id}`` returns it)."""

    def master(self, series_master_id: str) -> GraphItem | None: ...


class MappingMasterLookup:
    """A :class:`MasterLookup` over a mapping of master id to master JSON."""

    def __init__(self, masters: Mapping[str, GraphItem]) -> None:
        self._masters = masters

    def master(self, series_master_id: str) -> GraphItem | None:
        return self._masters.get(series_master_id)


def is_removed(item: GraphItem) -> bool:
    return "@removed" in item


def is_series_master(item: GraphItem) -> bool:
    return item.get("type") == "seriesMaster"


def series_master_id_of(item: GraphItem) -> str | None:
    value = item.get("seriesMasterId")
    return value if isinstance(value, str) and value else None


def needs_master(item: GraphItem) -> bool:
    """Whether normalising ``item`` reads its series master.

    Every instance of a series does (occurrences and exceptions alike): an exception carries its
    own showAs, but whether the series is calsync's (its transactionId) and all-day is the
    master's. Removals, masters themselves, and instances that cancel themselves need nothing.
    """
    if is_removed(item) or is_series_master(item) or item.get("isCancelled") is True:
        return False
    return series_master_id_of(item) is not None


def masters_in(items: Iterable[GraphItem]) -> dict[str, GraphItem]:
    """Series masters that came in the batch itself, by id (fresher than any cached copy)."""
    found: dict[str, GraphItem] = {}
    for item in items:
        item_id = item.get("id")
        if is_series_master(item) and not is_removed(item) and isinstance(item_id, str):
            found[item_id] = item
    return found


def master_ids_needed(items: Iterable[GraphItem]) -> list[str]:
    """Ids of the masters the batch's instances depend on, in order of first need, no repeats."""
    needed: dict[str, None] = {}
    for item in items:
        mid = series_master_id_of(item)
        if mid is not None and needs_master(item):
            needed[mid] = None
    return list(needed)


def missing_master_ids(items: Iterable[GraphItem], cached: Container[str]) -> list[str]:
    """Masters the batch needs that are neither in ``cached`` (ids, or a mapping by id) nor in
    the batch itself: the ones to fetch before :func:`~.normalize.normalize_delta_items`."""
    batch = list(items)
    in_batch = masters_in(batch)
    return [mid for mid in master_ids_needed(batch) if mid not in in_batch and mid not in cached]


def stale_master_ids(items: Iterable[GraphItem], cached: Mapping[str, GraphItem]) -> list[str]:
    """Cached masters that a thin occurrence of the batch shows to have changed since fetched.

    A plain occurrence has no state of its own: its ``@odata.etag`` is its master's (the
    emulator, which follows Graph, renders it so), so an etag that is not ``W/"{changeKey}"`` of
    the cached copy means the series changed. Refetch these once per batch, then normalise; never
    loop until the list is empty, as nothing promises every Graph deployment keeps this relation.
    """
    stale: dict[str, None] = {}
    for item in items:
        mid = series_master_id_of(item)
        etag = item.get("@odata.etag")
        if mid is None or item.get("type") != "occurrence" or not isinstance(etag, str):
            continue
        master = cached.get(mid)
        if master is not None and etag != f'W/"{master.get("changeKey")}"':
            stale[mid] = None
    return list(stale)
