"""Graph's errors, typed by status and code; messages never carry a token."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from calsync_common.transient import RetryLater


class GraphError(Exception):
    """Graph answered with an error (or not at all: ``status`` None). ``code`` is Graph's
    ``error.code`` when the body had one; the message never quotes a token or a query string."""

    def __init__(
        self, status: int | None, code: str | None, message: str, *, method: str, path: str
    ) -> None:
        what = " ".join(str(x) for x in (status or "no answer", code) if x)
        super().__init__(f"{method} {path}: {what}: {message}")
        self.status = status
        self.code = code
        self.graph_message = message


class GraphBadRequest(GraphError):
    """400: the request is wrong (a bug, or a window Graph refuses); retrying will not help."""


class GraphAccessDenied(GraphError):
    """403: the grant does not cover this (e.g. a calendar shared read-only)."""


class GraphNotFound(GraphError):
    """404: ``ErrorItemNotFound`` / ``ResourceNotFound`` — the event, calendar or subscription."""


class GraphConflict(GraphError):
    """409 or 412: the item changed or exists in another state."""


class SyncStateGone(GraphError):
    """410 (or ``syncStateNotFound``/``resyncRequired``): the delta link is dead; resync the
    window from scratch. ``location`` is Graph's restart URL when it sent one."""

    def __init__(self, *args: Any, location: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.location = location


class GraphRetryable(GraphError, RetryLater):
    """Nothing was learned; try again later. ``retry_after``: Graph's advice in seconds."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class GraphThrottled(GraphRetryable):
    """429 (still, after the retries): the mailbox is over a limit."""


class GraphUnavailable(GraphRetryable):
    """5xx or no answer (connection error, timeout), after the retries."""


class ForeignUrl(ValueError):
    """A link that does not point at the configured Graph base: no token is sent to it."""


_SYNC_STATE_CODES = frozenset({"syncstatenotfound", "resyncrequired"})
_BY_STATUS: dict[int, type[GraphError]] = {
    400: GraphBadRequest,
    403: GraphAccessDenied,
    404: GraphNotFound,
    409: GraphConflict,
    412: GraphConflict,
    429: GraphThrottled,
}
_JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+")
_BEARER = re.compile(r"(?i)bearer\s+\S+")
_MAX_MESSAGE = 300


def classify(
    status: int,
    body: bytes,
    *,
    method: str,
    path: str,
    retry_after: float | None = None,
    location: str | None = None,
    secrets: Iterable[str] = (),
) -> GraphError:
    """The typed error for a Graph error answer (``{"error": {"code", "message"}}``, or any
    body at all: then by status alone)."""
    code, message = _error_of(body)
    text = scrub(message or f"HTTP {status}", secrets)
    where = {"method": method, "path": path}
    if status == 410 or (code or "").lower() in _SYNC_STATE_CODES:
        return SyncStateGone(status, code, text, location=location, **where)
    if status == 429:
        return GraphThrottled(status, code, text, retry_after=retry_after, **where)
    if status >= 500:
        return GraphUnavailable(status, code, text, retry_after=retry_after, **where)
    return _BY_STATUS.get(status, GraphError)(status, code, text, **where)


def _error_of(body: bytes) -> tuple[str | None, str | None]:
    try:
        data = json.loads(body)
    except ValueError:
        return None, None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (
        code if isinstance(code, str) and code else None,
        message if isinstance(message, str) and message else None,
    )


def scrub(message: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    message = _BEARER.sub("Bearer [redacted]", _JWT.sub("[redacted]", message))
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"
