"""The sync-worker's Microsoft Graph client: one place for Graph's rules of the road.

Every request, whatever calls it (delta runner, subscriptions, write-back):

* carries ``Prefer: IdType="ImmutableId"`` (ids must not change when an event moves folders),
  ``Authorization: Bearer`` with the connection's access token (``access_tokens``) and a fresh
  ``client-request-id`` for correlation with Graph's logs;
* passes the mailbox's gate (``throttle``): ≤ 4 in flight, a request budget under Outlook's
  10,000 per 10 minutes, and any pause a ``Retry-After`` put on the mailbox;
* goes only to the configured Graph base: absolute ``@odata.nextLink``/``deltaLink`` URLs are
  checked before a token is even fetched, and redirects are not followed;
* is retried, boundedly, on 429 and 503 after ``Retry-After`` (``retry_after``), on 500/502/504
  and transport failures after backoff with full jitter. A POST is retried only when the caller
  says it is idempotent (creates carry ``transactionId``), except after a 429: Graph rejected
  that request unprocessed, so sending it again cannot duplicate anything;
* on 401 drops the token, fetches a fresh one once and retries once; a second 401 means the
  grant no longer works: :class:`ReauthRequired`.

Failures are typed (:class:`GraphError` and subclasses); the retryable ones are also
``RetryLater``, so a consumer batch is re-read later. No message ever contains a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import ssl
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client import Counter
from yarl import URL

from calsync_sync_worker.adapters.access_tokens import (
    AccessTokens,
    ConnectionGone,
    ConnectionTokenError,
    ReauthRequired,
    ServiceTokenMinter,
    TokenServiceError,
    TokenServiceUnavailable,
)
from calsync_sync_worker.adapters.graph_errors import (
    ForeignUrl,
    GraphAccessDenied,
    GraphBadRequest,
    GraphConflict,
    GraphError,
    GraphNotFound,
    GraphRetryable,
    GraphThrottled,
    GraphUnavailable,
    SyncStateGone,
    classify,
)
from calsync_sync_worker.adapters.graph_settings import GraphClientSettings
from calsync_sync_worker.adapters.retry_after import full_jitter, parse_retry_after
from calsync_sync_worker.adapters.throttle import Mailboxes, record_wait

__all__ = [
    "ConnectionGone",
    "ConnectionTokenError",
    "ForeignUrl",
    "GraphAccessDenied",
    "GraphBadRequest",
    "GraphClient",
    "GraphClientSettings",
    "GraphConflict",
    "GraphError",
    "GraphNotFound",
    "GraphRetryable",
    "GraphThrottled",
    "GraphUnavailable",
    "ReauthRequired",
    "SyncStateGone",
    "TokenServiceError",
    "TokenServiceUnavailable",
    "open_graph_client",
    "prefer_header",
]

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "calsync_graph_requests_total",
    "Graph requests sent, by method and status class (error: no HTTP answer)",
    ["method", "status_class"],
)
RETRIES = Counter("calsync_graph_retries_total", "Graph requests sent again, by reason", ["reason"])

IMMUTABLE_IDS = 'IdType="ImmutableId"'


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    retry_after: str | None
    location: str | None


class GraphClient:
    """Graph for many connections over one aiohttp session, which its owner opens and closes."""

    def __init__(
        self,
        settings: GraphClientSettings,
        session: aiohttp.ClientSession,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._base = URL(settings.graph_url)
        # Built on first use: in the sandbox the emulator writes its CA when it starts, which
        # may be after this process (a missing bundle then fails that request, not the start).
        self._ssl_context: ssl.SSLContext | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout_s, connect=settings.connect_timeout_s
        )
        self._rng = rng or random.Random()  # noqa: S311 (retry jitter, not cryptography)
        self._mailboxes = Mailboxes(
            settings.mailbox_concurrency,
            settings.mailbox_requests_per_window,
            settings.mailbox_window_s,
        )
        minter = ServiceTokenMinter(
            kid=settings.service_token_kid,
            secret=settings.service_token_secret,
            issuer=settings.service_token_issuer,
            audience=settings.service_token_audience,
            service=settings.service_name,
            lifetime_s=settings.service_token_lifetime_s,
        )
        self.tokens = AccessTokens(
            session,
            connector_url=settings.connector_url,
            minter=minter,
            refresh_margin_s=settings.token_refresh_margin_s,
            timeout_s=settings.token_timeout_s,
        )

    def _ssl(self) -> ssl.SSLContext | bool:
        if self._base.scheme != "https":
            return True
        if self._ssl_context is None:
            self._ssl_context = self._settings.ssl_context()
        return self._ssl_context

    async def close(self) -> None:
        """Cancel token fetches in flight (the session stays its owner's to close)."""
        await self.tokens.close()

    def forget(self, connection_id: str) -> None:
        """The connection is gone: drop its cached token and mailbox gate."""
        self.tokens.forget(connection_id)
        self._mailboxes.forget(connection_id)

    async def get(
        self,
        connection_id: str,
        path_or_url: str,
        *,
        prefer: Iterable[str] = (),
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """GET a path under the Graph base (``/me/calendars``) or a Graph link
        (``@odata.nextLink``/``deltaLink``, which must point at the base)."""
        return await self._call("GET", connection_id, path_or_url, None, prefer, params, True)

    async def post(
        self,
        connection_id: str,
        path: str,
        body: Mapping[str, Any],
        *,
        idempotent: bool,
        prefer: Iterable[str] = (),
    ) -> dict[str, Any]:
        """POST; retried after failures only when ``idempotent`` (e.g. ``transactionId``)."""
        return await self._call("POST", connection_id, path, body, prefer, None, idempotent)

    async def patch(
        self,
        connection_id: str,
        path: str,
        body: Mapping[str, Any],
        *,
        prefer: Iterable[str] = (),
    ) -> dict[str, Any]:
        """PATCH (setting the same properties twice is harmless, so it is retried)."""
        return await self._call("PATCH", connection_id, path, body, prefer, None, True)

    async def delete(self, connection_id: str, path: str) -> None:
        """DELETE. A retry after a lost answer may see 404 :class:`GraphNotFound`: already gone."""
        await self._call("DELETE", connection_id, path, None, (), None, True)

    # --- the request loop ---------------------------------------------------------------

    async def _call(
        self,
        method: str,
        connection_id: str,
        target: str,
        body: Mapping[str, Any] | None,
        prefer: Iterable[str],
        params: Mapping[str, str] | None,
        idempotent: bool,
    ) -> dict[str, Any]:
        url = self._resolve(target, params)  # before any token exists for it
        headers = {"Accept": "application/json", "Prefer": prefer_header(prefer)}
        gate = self._mailboxes.gate(connection_id)
        settings = self._settings
        retries, refreshed = 0, False
        while True:
            token = await self.tokens.get(connection_id)
            request_id = str(uuid.uuid4())
            failure: GraphRetryable
            try:
                async with gate.slot():
                    reply = await self._send(method, url, body, headers, token, request_id)
            except (aiohttp.ClientError, TimeoutError) as exc:
                REQUESTS.labels(method, "error").inc()
                failure = GraphUnavailable(
                    None, None, f"no answer ({type(exc).__name__})", method=method, path=url.path
                )
                may_retry = idempotent
            else:
                REQUESTS.labels(method, f"{reply.status // 100}xx").inc()
                if 200 <= reply.status < 300:
                    return _success(reply, method, url.path)
                if reply.status == 401:
                    self.tokens.invalidate(connection_id, token)
                    if refreshed:
                        raise ReauthRequired(connection_id, "Graph refused a fresh access token")
                    refreshed = True
                    RETRIES.labels("unauthorized").inc()
                    continue
                error = classify(
                    reply.status,
                    reply.body,
                    method=method,
                    path=url.path,
                    retry_after=parse_retry_after(reply.retry_after),
                    location=reply.location,
                    secrets=(token,),
                )
                if not isinstance(error, GraphRetryable):
                    raise error
                failure, may_retry = error, idempotent or reply.status == 429
            wait = failure.retry_after
            if not may_retry or retries >= settings.max_retries:
                raise failure
            if wait is not None and wait > settings.max_retry_after_s:
                raise failure
            if wait is None:
                wait = full_jitter(
                    retries,
                    base_s=settings.backoff_base_s,
                    cap_s=settings.backoff_max_s,
                    rng=self._rng,
                )
            else:
                gate.pause(wait)  # the mailbox's other requests would only be refused too
                if wait > 0:
                    record_wait("retry_after", wait)
            retries += 1
            RETRIES.labels(_retry_reason(failure)).inc()
            log.info(
                "graph request retried",
                extra={
                    "connection_id": connection_id,
                    "method": method,
                    "path": url.path,
                    "status": failure.status,
                    "code": failure.code,
                    "attempt": retries,
                    "wait_s": round(wait, 3),
                    "client_request_id": request_id,
                },
            )
            await asyncio.sleep(wait)

    async def _send(
        self,
        method: str,
        url: URL,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        token: str,
        request_id: str,
    ) -> _Reply:
        async with self._session.request(
            method,
            url,
            json=None if body is None else dict(body),
            headers={
                **headers,
                "Authorization": f"Bearer {token}",
                "client-request-id": request_id,
            },
            timeout=self._timeout,
            ssl=self._ssl(),
            allow_redirects=False,  # a redirect could carry the token to another host
        ) as resp:
            return _Reply(
                resp.status,
                await resp.read(),
                resp.headers.get("Retry-After"),
                resp.headers.get("Location"),
            )

    def _resolve(self, target: str, params: Mapping[str, str] | None) -> URL:
        if target.startswith("/"):
            url = URL(f"{self._base}{target}")
        elif target.startswith(("https://", "http://")):
            url = URL(target, encoded=True)  # Graph's links are encoded already: keep them as-is
        else:
            raise ValueError("a Graph path must start with '/' or be a Graph URL")
        if not self._is_graph(url):
            raise ForeignUrl(f"refusing to send a Graph token to {url.scheme}://{url.host}")
        return url.update_query(params) if params else url

    def _is_graph(self, url: URL) -> bool:
        base = self._base
        if (url.scheme, (url.host or "").lower(), url.port) != (
            base.scheme,
            (base.host or "").lower(),
            base.port,
        ):
            return False
        if url.user is not None or url.password is not None:
            return False
        segments = url.raw_path.split("/") + url.path.split("/")
        if any(
            s in (".", "..") or s.lower() in ("%2e", "%2e%2e", ".%2e", "%2e.") for s in segments
        ):
            return False
        root = base.path.rstrip("/")
        return url.path == root or url.path.startswith(f"{root}/")


def prefer_header(extra: Iterable[str]) -> str:
    """``IdType="ImmutableId"`` first, then the caller's preferences (RFC 7240: comma-joined)."""
    values = [IMMUTABLE_IDS]
    seen = {_norm(IMMUTABLE_IDS)}
    for value in extra:
        text = value.strip()
        if not text or _norm(text) in seen:
            continue
        if any(c in text for c in "\r\n,") or _norm(text).startswith("idtype="):
            raise ValueError(f"not a single Prefer value this client may send: {text!r}")
        seen.add(_norm(text))
        values.append(text)
    return ", ".join(values)


def _retry_reason(failure: GraphError) -> str:
    if failure.status is None:
        return "transport"
    return "throttled" if isinstance(failure, GraphThrottled) else "unavailable"


def _norm(value: str) -> str:
    return re.sub(r"\s+", "", value).lower()


def _success(reply: _Reply, method: str, path: str) -> dict[str, Any]:
    if not reply.body.strip():
        return {}  # 202/204
    try:
        data = json.loads(reply.body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise GraphError(
            reply.status, None, "answer is not a JSON object", method=method, path=path
        )
    return data


# --- errors ---------------------------------------------------------------------------------


@asynccontextmanager
async def open_graph_client(
    settings: GraphClientSettings, *, rng: random.Random | None = None
) -> AsyncIterator[GraphClient]:
    """A client with its own session (``trust_env=False``: no proxy from the environment sees
    tokens), closed on the way out. For ``cleanup_ctx`` or a test."""
    pool = aiohttp.TCPConnector(limit=settings.max_connections)
    async with aiohttp.ClientSession(connector=pool, trust_env=False) as session:
        client = GraphClient(settings, session, rng=rng)
        try:
            yield client
        finally:
            await client.close()
