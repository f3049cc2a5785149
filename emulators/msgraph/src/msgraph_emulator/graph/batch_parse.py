"""Validation of a JSON batch body (``POST /v1.0/$batch``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msgraph_emulator.graph.errors import GraphError

METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class BatchItem:
    id: str
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    has_body: bool
    depends_on: tuple[str, ...]


def _bad(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _item(raw: object) -> BatchItem:
    if not isinstance(raw, dict):
        raise _bad("Invalid batch payload format.")
    rid, method, url = raw.get("id"), raw.get("method"), raw.get("url")
    if not isinstance(rid, str) or not rid:
        raise _bad("Each request in a batch must have an id.")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _bad(f"Invalid method '{method}' for request '{rid}'.")
    if not isinstance(url, str) or not url:
        raise _bad(f"Request '{rid}' has no url.")
    headers = raw.get("headers") or {}
    depends = raw.get("dependsOn") or []
    if not isinstance(headers, dict) or not isinstance(depends, list):
        raise _bad("Invalid batch payload format.")
    return BatchItem(
        id=rid,
        method=method.upper(),
        url=url,
        headers={str(k): str(v) for k, v in headers.items()},
        body=raw.get("body"),
        has_body="body" in raw and raw["body"] is not None,
        depends_on=tuple(str(d) for d in depends),
    )


def _check_graph(items: list[BatchItem]) -> None:
    ids = {i.id for i in items}
    by_id = {i.id: i for i in items}
    for item in items:
        for dep in item.depends_on:
            if dep not in ids:
                raise _bad(f"Request '{item.id}' depends on unknown request '{dep}'.")
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(rid: str) -> None:
        if state.get(rid) == 2:
            return
        if state.get(rid) == 1:
            raise _bad("Batch requests have a circular dependency.")
        state[rid] = 1
        for dep in by_id[rid].depends_on:
            visit(dep)
        state[rid] = 2

    for rid in ids:
        visit(rid)


def parse_batch(body: object, max_requests: int) -> list[BatchItem]:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise _bad("Invalid batch payload format.")
    raw_items = body["requests"]
    if not raw_items:
        raise _bad("Batch request must contain at least one request.")
    if len(raw_items) > max_requests:
        raise _bad(
            f"Too many requests in batch. The maximum number of requests allowed is {max_requests}."
        )
    items = [_item(r) for r in raw_items]
    if len({i.id for i in items}) != len(items):
        raise _bad("Batch request ids must be unique.")
    _check_graph(items)
    return items
