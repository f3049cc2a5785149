"""The validation handshake Graph performs on ``notificationUrl`` and ``lifecycleNotificationUrl``.

Graph POSTs ``{url}?validationToken={token}`` (``Content-Type: text/plain; charset=utf-8``, empty
body) and needs, within 10 seconds, ``200 OK`` with a ``text/plain`` body equal to the
URL-decoded token.
"""

from __future__ import annotations

import time
import uuid

import aiohttp
from yarl import URL

from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.notify.deliveries import Attempt, DeliveryLog
from msgraph_emulator.notify.model import format_utc
from msgraph_emulator.notify.store import utc_now


def validation_failed() -> GraphError:
    return GraphError(
        400,
        "ValidationError",
        "Subscription validation request failed. "
        "Notification endpoint must respond with 200 OK to validation request.",
    )


def new_validation_token() -> str:
    # Real tokens are opaque text with spaces and colons, which catches receivers that echo the
    # still-encoded query value.
    return (
        "Validation: Testing client application reachability for subscription "
        f"Request-Id: {uuid.uuid4()}"
    )


async def _probe(session: aiohttp.ClientSession, url: str, timeout_s: float) -> tuple[int, str]:
    token = new_validation_token()
    target = URL(url).extend_query(validationToken=token)
    async with session.post(
        target,
        data=b"",
        headers={"Content-Type": "text/plain; charset=utf-8"},
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        allow_redirects=False,
    ) as response:
        text = await response.text()
        ok = response.status == 200 and response.content_type == "text/plain" and text == token
        return response.status, "" if ok else f"unexpected answer (status {response.status})"


async def validate_endpoint(
    session: aiohttp.ClientSession, url: str, timeout_s: float, log: DeliveryLog
) -> None:
    """Raise the 400 ``ValidationError`` Graph gives unless the endpoint echoes the token."""
    started = time.perf_counter()
    status: int | None = None
    try:
        status, error = await _probe(session, url, timeout_s)
    except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    log.record(
        Attempt(
            url=url,
            kind="validation",
            at=format_utc(utc_now()),
            notification_ids=[],
            subscription_ids=[],
            status=status,
            error=error or None,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            attempt=1,
        )
    )
    if error:
        raise validation_failed()
