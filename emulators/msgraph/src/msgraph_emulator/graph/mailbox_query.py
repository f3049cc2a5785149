"""OData query options of the calendar routes: $select, $expand, $top/$skip paging."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from aiohttp import web

from msgraph_emulator.graph.mailbox_http import MAX_PAGE, Prefs, bad_query, link

_EXPAND = re.compile(r"^singleValueExtendedProperties(?:\(\$filter=(.*)\))?$", re.IGNORECASE)
_ID_EQ = re.compile(r"id\s+eq\s+'((?:[^']|'')*)'", re.IGNORECASE)
DEFAULT_PAGE = 10
T = TypeVar("T")


def select(request: web.Request) -> frozenset[str] | None:
    raw = request.query.get("$select")
    if raw is None:
        return None
    return frozenset(p.strip() for p in raw.split(",") if p.strip())


def expand_ext(request: web.Request) -> frozenset[str] | None:
    """``$expand=singleValueExtendedProperties($filter=id eq '...')``: the ids to include."""
    raw = request.query.get("$expand")
    if raw is None:
        return None
    m = _EXPAND.match(raw.strip())
    if m is None:
        raise bad_query(f"Parsing OData Select and Expand failed: could not expand '{raw}'.")
    if m.group(1) is None:
        return frozenset()
    return frozenset(v.replace("''", "'").casefold() for v in _ID_EQ.findall(m.group(1)))


def refuse(request: web.Request, *names: str) -> None:
    for name in names:
        if name in request.query:
            raise bad_query(f"The query parameter '{name}' is not supported with this request.")


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise bad_query(f"Invalid value '{raw}' for query option '{name}'.")
    return int(raw)


def page(
    request: web.Request, prefs: Prefs, items: Sequence[T], default: int = DEFAULT_PAGE
) -> tuple[Sequence[T], str | None]:
    """Slice ``items`` by $skip and $top (else Prefer: odata.maxpagesize); next link uses $skip."""
    skip = _int(request, "$skip") or 0
    top = _int(request, "$top")
    size = min(top or prefs.page_size or default, MAX_PAGE)
    chunk = items[skip : skip + size]
    if skip + size >= len(items):
        return chunk, None
    params = {k: v for k, v in request.query.items() if k != "$skip"}
    params["$skip"] = str(skip + size)
    return chunk, link(request, params)
