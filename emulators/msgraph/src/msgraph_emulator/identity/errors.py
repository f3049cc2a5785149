"""Errors of the identity platform, shaped like Entra's token endpoint and authorize redirects.

The token endpoint answers ``{"error", "error_description", "error_codes", "timestamp",
"trace_id", "correlation_id", "error_uri"}`` (plus ``suberror`` for consent/interaction cases);
``error_description`` starts with ``AADSTSnnnn:`` and ends with the trace/correlation ids and a
timestamp, which is what clients (and MSAL) surface to people.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class IdentityError(Exception):
    """An OAuth error with its AADSTS code; ``status`` applies to the token endpoint only."""

    error: str
    code: int
    message: str
    status: int = 400
    suberror: str | None = None
    #: Authorize errors Entra renders as its own error page instead of redirecting (it cannot
    #: trust the redirect URI yet, or the user cannot continue).
    page_only: bool = False

    def __str__(self) -> str:
        return f"AADSTS{self.code}: {self.message}"


@dataclass(frozen=True)
class Trace:
    trace_id: str
    correlation_id: str
    timestamp: datetime

    @classmethod
    def new(cls, correlation_id: str | None) -> Trace:
        return cls(str(uuid.uuid4()), correlation_id or str(uuid.uuid4()), datetime.now(UTC))

    @property
    def stamp(self) -> str:
        return self.timestamp.strftime("%Y-%m-%d %H:%M:%SZ")


def description(err: IdentityError, trace: Trace) -> str:
    return (
        f"{err}\r\nTrace ID: {trace.trace_id}\r\nCorrelation ID: {trace.correlation_id}"
        f"\r\nTimestamp: {trace.stamp}"
    )


def token_error_body(err: IdentityError, trace: Trace, base_url: str) -> dict[str, object]:
    body: dict[str, object] = {
        "error": err.error,
        "error_description": description(err, trace),
        "error_codes": [err.code],
        "timestamp": trace.stamp,
        "trace_id": trace.trace_id,
        "correlation_id": trace.correlation_id,
        "error_uri": f"{base_url}/error?code={err.code}",
    }
    if err.suberror:
        body["suberror"] = err.suberror
    return body
