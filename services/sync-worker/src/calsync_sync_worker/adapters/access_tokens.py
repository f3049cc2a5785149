"""Graph access tokens for a connection, from the connector's internal endpoint, cached.

The connector owns the refresh tokens (ARCHITECTURE.md: nothing secret leaves it but the short
access token). The sync-worker asks ``POST {connector}/internal/v1/connections/{id}/access-token``
with its own service token: an HS256 JWT with the claims the connector's ``Authenticator``
requires (``iss``, ``aud`` = ``calsync-connector``, ``sub``, ``iat``, ``exp``) and ``svc`` =
``sync-worker``, the key named by the ``kid`` header. The minting is repeated here on purpose:
services never import each other.

Tokens are cached per connection until ``refresh_margin_s`` before their ``expires_at``; at most
one fetch per connection is in flight, and every concurrent caller shares its outcome (a failure
too, so a connection that needs a new sign-in costs one call, not one per waiting request).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from prometheus_client import Counter
from pydantic import SecretStr

from calsync_common.http.auth import AuthSettings, mint
from calsync_common.transient import RetryLater

log = logging.getLogger(__name__)

TOKEN_FETCHES = Counter(
    "calsync_graph_token_fetches_total",
    "Access tokens fetched from the connector, by outcome",
    ["outcome"],
)


class ConnectionTokenError(Exception):
    """No access token for this connection. Messages name the connection, never a token."""

    def __init__(self, connection_id: str, message: str) -> None:
        super().__init__(f"connection {connection_id}: {message}")
        self.connection_id = connection_id


class ReauthRequired(ConnectionTokenError):
    """The user must sign in again (the connector says so, or Graph refused a fresh token)."""


class ConnectionGone(ConnectionTokenError):
    """The connection was disconnected or never existed: stop working on it."""


class TokenServiceUnavailable(ConnectionTokenError, RetryLater):
    """The connector did not answer usefully (5xx, timeout, refused connection): retry later."""


class TokenServiceError(ConnectionTokenError):
    """The connector refused us (401/403: our service key) or answered nonsense: a setup bug."""


class ServiceTokenMinter:
    """Signs the sync-worker's short-lived bearer tokens for the connector, reusing each for
    most of its life."""

    def __init__(
        self,
        *,
        kid: str,
        secret: SecretStr,
        issuer: str,
        audience: str,
        service: str,
        lifetime_s: int = 300,
    ) -> None:
        # The connector's own token rules (calsync_common.http.auth), signed with our key.
        self._auth = AuthSettings(
            keys={kid: secret}, signing_key_id=kid, issuer=issuer, audience=audience
        )
        self._service = service
        self._lifetime_s = lifetime_s
        self._current: tuple[str, float] | None = None  # (token, wall-clock expiry)

    def token(self, now: float | None = None) -> str:
        issued = time.time() if now is None else now
        if self._current is not None and self._current[1] - issued > self._lifetime_s / 4:
            return self._current[0]
        value = mint(
            self._auth,
            subject=self._service,
            service=self._service,
            lifetime_s=self._lifetime_s,
            now=datetime.fromtimestamp(issued, UTC),
        )
        self._current = (value, float(int(issued) + self._lifetime_s))
        return value


@dataclass(frozen=True)
class _Cached:
    token: str = field(repr=False)
    #: Monotonic time after which the token is not handed out any more.
    use_until: float


class AccessTokens:
    """Per-connection access tokens: cached, fetched once at a time, dropped when Graph says 401.

    ``session`` belongs to the caller. :meth:`close` cancels fetches still in flight.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        connector_url: str,
        minter: ServiceTokenMinter,
        refresh_margin_s: float = 120.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._base = connector_url.rstrip("/")
        self._minter = minter
        self._margin = refresh_margin_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Task[_Cached]] = {}

    async def get(self, connection_id: str) -> str:
        """A usable access token for the connection (cached, or fetched now)."""
        cached = self._cache.get(connection_id)
        if cached is not None and self._clock() < cached.use_until:
            return cached.token
        task = self._inflight.get(connection_id)
        if task is None:
            task = asyncio.create_task(self._fetch(connection_id))
            self._inflight[connection_id] = task
            task.add_done_callback(lambda t: self._settled(connection_id, t))
        # Shielded: a caller that gives up must not cancel the fetch the others are waiting for.
        return (await asyncio.shield(task)).token

    def invalidate(self, connection_id: str, token: str) -> None:
        """Graph refused ``token``: forget it, unless a newer one has replaced it already."""
        cached = self._cache.get(connection_id)
        if cached is not None and cached.token == token:
            del self._cache[connection_id]

    def forget(self, connection_id: str) -> None:
        self._cache.pop(connection_id, None)

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._cache.clear()

    def _settled(self, connection_id: str, task: asyncio.Task[_Cached]) -> None:
        if self._inflight.get(connection_id) is task:
            del self._inflight[connection_id]
        if not task.cancelled():
            task.exception()  # retrieved: every caller may have given up before it failed

    async def _fetch(self, connection_id: str) -> _Cached:
        url = f"{self._base}/internal/v1/connections/{quote(connection_id, safe='')}/access-token"
        headers = {"Authorization": f"Bearer {self._minter.token()}"}
        try:
            async with self._session.post(
                url, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                status = resp.status
                body = await _json_or_none(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            TOKEN_FETCHES.labels("unavailable").inc()
            raise TokenServiceUnavailable(
                connection_id, f"connector unreachable ({type(exc).__name__})"
            ) from None
        if status == 200:
            cached = self._accept(connection_id, body)
            TOKEN_FETCHES.labels("ok").inc()
            # Handed to the waiting callers either way; cached only while it is fresh enough.
            if self._clock() < cached.use_until:
                self._cache[connection_id] = cached
            return cached
        error = self._refusal(connection_id, status, body)
        TOKEN_FETCHES.labels(_OUTCOMES[type(error)]).inc()
        log.info(
            "access token refused",
            extra={"connection_id": connection_id, "status": status, "error": type(error).__name__},
        )
        raise error

    def _accept(self, connection_id: str, body: dict[str, Any] | None) -> _Cached:
        value = (body or {}).get("access_token")
        try:
            expires_at = datetime.fromisoformat(str((body or {}).get("expires_at")))
        except ValueError:
            expires_at = None
        if not isinstance(value, str) or not value or expires_at is None:
            TOKEN_FETCHES.labels("malformed").inc()
            raise TokenServiceError(connection_id, "connector answered 200 without a token")
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        # Kept on the monotonic clock: a wall-clock step must not make a token look fresh.
        remaining = (expires_at - datetime.now(UTC)).total_seconds()
        return _Cached(value, self._clock() + remaining - self._margin)

    def _refusal(
        self, connection_id: str, status: int, body: dict[str, Any] | None
    ) -> ConnectionTokenError:
        code = str((body or {}).get("code") or "")
        if status == 404:
            return ConnectionGone(connection_id, "unknown to the connector")
        if status == 409 and code == "reauth_required":
            return ReauthRequired(connection_id, "the user must sign in again")
        if status == 409 and code == "connection_disconnected":
            return ConnectionGone(connection_id, "disconnected")
        if status >= 500 or status == 429:
            return TokenServiceUnavailable(connection_id, f"connector answered {status}")
        return TokenServiceError(connection_id, f"connector refused: {status} {code}".strip())


_OUTCOMES: dict[type[ConnectionTokenError], str] = {
    ReauthRequired: "reauth_required",
    ConnectionGone: "gone",
    TokenServiceUnavailable: "unavailable",
    TokenServiceError: "refused",
}


async def _json_or_none(resp: aiohttp.ClientResponse) -> dict[str, Any] | None:
    try:
        data = await resp.json(content_type=None)
    except ValueError:  # not JSON (json.JSONDecodeError, UnicodeDecodeError)
        return None
    return data if isinstance(data, dict) else None
