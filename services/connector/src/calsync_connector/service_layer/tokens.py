"""Access tokens for the sync-worker: from the sealed MSAL cache, one refresh per connection.

A token with more than ``margin`` left is served from memory, after checking that the connection
is still active; that check is itself remembered for ``status_ttl_s`` (a disconnection made
through this process is seen at once, one made through another replica within that time).
Otherwise one refresh per connection is in flight in this process and concurrent callers share
its result. A rotated cache is sealed and stored before the token is returned. ``invalid_grant``
marks the connection ``reauth_required`` and publishes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

from calsync_connector.adapters.identity import (
    AccessToken,
    IdentityError,
    MicrosoftIdentity,
    home_account_id,
)
from calsync_connector.adapters.token_cipher import Sealed, TokenCipher
from calsync_connector.domain.errors import (
    ConnectionDisconnected,
    ConnectionNotFound,
    ReauthRequired,
)
from calsync_connector.domain.model import Connection, require_reauth
from calsync_connector.service_layer.connect import token_context
from calsync_connector.service_layer.unit_of_work import ConnectorUnitOfWork, publish

log = logging.getLogger(__name__)


class AccessTokens:
    def __init__(
        self,
        uow: ConnectorUnitOfWork,
        identity: MicrosoftIdentity,
        cipher: TokenCipher,
        clock: Callable[[], datetime],
        *,
        margin: timedelta = timedelta(minutes=5),
        status_ttl_s: float = 2.0,
    ) -> None:
        self._uow = uow
        self._identity = identity
        self._cipher = cipher
        self._clock = clock
        self._margin = margin
        self._memory: dict[UUID, AccessToken] = {}
        self._status_ttl_s = status_ttl_s
        self._known: dict[UUID, tuple[float, Connection]] = {}
        self._inflight: dict[UUID, asyncio.Task[AccessToken]] = {}

    async def _connection(self, connection_id: UUID) -> Connection | None:
        now = time.monotonic()
        known = self._known.get(connection_id)
        if known is not None and known[0] > now:
            return known[1]
        async with self._uow() as work:
            conn = await work.connections.get(connection_id)
        if conn is not None:
            if len(self._known) > 100_000:
                self._known.clear()
            self._known[connection_id] = (now + self._status_ttl_s, conn)
        return conn

    async def get(self, connection_id: UUID) -> AccessToken:
        conn = await self._connection(connection_id)
        if conn is None:
            raise ConnectionNotFound()
        if conn.status == "disconnected":
            self._memory.pop(connection_id, None)
            raise ConnectionDisconnected()
        if conn.status == "reauth_required":
            self._memory.pop(connection_id, None)
            raise ReauthRequired()
        cached = self._memory.get(connection_id)
        if cached is not None and cached.expires_at - self._clock() > self._margin:
            return cached
        task = self._inflight.get(connection_id)
        if task is None:
            task = asyncio.create_task(self._refresh(conn), name=f"token:{connection_id}")
            self._inflight[connection_id] = task
            task.add_done_callback(lambda _: self._inflight.pop(connection_id, None))
        return await asyncio.shield(task)

    def forget(self, connection_id: UUID) -> None:
        """Drop what this process holds for the connection (reconnected or disconnected)."""
        self._memory.pop(connection_id, None)
        self._known.pop(connection_id, None)

    async def _refresh(self, conn: Connection) -> AccessToken:
        async with self._uow() as work:
            sealed = await work.connections.token_cache(conn.id)
        if sealed is None:
            raise ReauthRequired()
        cache = self._cipher.open(sealed, context=token_context(conn.id)).decode()
        home = home_account_id(conn.account.tenant_id, conn.account.object_id)
        try:
            token, changed = await self._identity.access_token(cache, home)
        except IdentityError as exc:
            if not exc.needs_reauth:
                raise
            log.warning(
                "refresh refused; the user must sign in again",
                extra={"connection_id": str(conn.id), "error_code": exc.aadsts or exc.code},
            )
            await self._require_reauth(conn.id, sealed)
            raise ReauthRequired() from exc
        if changed is not None:
            resealed = self._cipher.seal(changed.encode(), context=token_context(conn.id))
            async with self._uow() as work:
                if not await work.connections.replace_token_cache(conn.id, sealed, resealed):
                    # The user signed in again meanwhile: their new tokens stay, this one is
                    # still valid to hand out (Entra keeps the old refresh token family too).
                    log.info("token cache replaced during a refresh; kept the newer one")
        self._memory[conn.id] = token
        return token

    async def _require_reauth(self, connection_id: UUID, read: Sealed) -> None:
        self.forget(connection_id)
        async with self._uow() as work:
            current = await work.connections.get(connection_id, lock=True)
            if current is None or current.status != "active":
                return
            stored = await work.connections.token_cache(connection_id)
            if stored is None or stored.nonce != read.nonce:
                return  # a new sign-in replaced the refused tokens: nothing to mark
            changed = require_reauth(current, self._clock())
            await work.connections.update(changed, expected_version=current.version)
            await publish(work.outbox, changed)
