"""Connecting Outlook: start the sign-in, complete it on the callback, apply the limits.

The MSAL flow (with the PKCE verifier) is kept server-side, sealed, keyed by its ``state``, single
use and short-lived. The callback consumes it in a transaction of its own before anything else,
so a replayed ``state`` can never create a second connection. The limits are enforced by the
database: an insert that loses a race is told so by the unique indexes, never by a prior read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit
from uuid import UUID, uuid4

from calsync_common.transient import TRANSIENT
from calsync_connector.adapters.graph import GraphClient, GraphRefused, GraphUnavailable
from calsync_connector.adapters.identity import (
    IdentityError,
    IdentityUnavailable,
    MicrosoftIdentity,
    dumps_flow,
    loads_flow,
)
from calsync_connector.adapters.repository import ConnectionRepository
from calsync_connector.adapters.token_cipher import TokenCipher
from calsync_connector.domain.errors import (
    ConnectorError,
    MicrosoftAccountInUse,
    OutlookAlreadyConnected,
)
from calsync_connector.domain.model import (
    Calendar,
    Connection,
    MicrosoftAccount,
    new_connection,
    reconnect,
)
from calsync_connector.service_layer.unit_of_work import ConnectorUnitOfWork, publish

log = logging.getLogger(__name__)


class ReturnUrlNotAllowed(ConnectorError):
    code = "return_url_not_allowed"
    status = 422
    title = "return_url is not on the allow-list"


class InvalidOAuthState(ConnectorError):
    code = "invalid_oauth_state"
    status = 400
    title = "Unknown or missing sign-in state (forged, or from another installation)"


@dataclass(frozen=True)
class ConnectConfig:
    redirect_uri: str
    #: A return URL must start with one of these (scheme, host, port and path prefix).
    return_url_prefixes: tuple[str, ...]
    flow_ttl: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class ConnectStarted:
    authorization_url: str
    expires_at: datetime


@dataclass(frozen=True)
class CallbackOutcome:
    """Where the browser goes back to, with a connection id or an error code."""

    return_url: str
    connection_id: UUID | None = None
    error: str | None = None

    @property
    def location(self) -> str:
        params = (
            {"outlook_connection_id": str(self.connection_id), "status": "connected"}
            if self.connection_id is not None
            else {"error": self.error or "unknown_error"}
        )
        separator = "&" if urlsplit(self.return_url).query else "?"
        return f"{self.return_url}{separator}{urlencode(params)}"


def flow_context(state: str) -> bytes:
    return b"oauth-flow:" + state.encode()


def token_context(connection_id: UUID) -> bytes:
    return b"token-cache:" + str(connection_id).encode()


class ConnectService:
    def __init__(
        self,
        uow: ConnectorUnitOfWork,
        identity: MicrosoftIdentity,
        graph: GraphClient,
        cipher: TokenCipher,
        config: ConnectConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._identity = identity
        self._graph = graph
        self._cipher = cipher
        self._config = config
        self._clock = clock

    def _check_return_url(self, return_url: str) -> None:
        parts = urlsplit(return_url)
        if parts.scheme not in ("http", "https") or parts.username or parts.password:
            raise ReturnUrlNotAllowed()
        if not any(return_url.startswith(p) for p in self._config.return_url_prefixes):
            raise ReturnUrlNotAllowed()

    async def start(self, sub_account_id: str, user_id: str, return_url: str) -> ConnectStarted:
        self._check_return_url(return_url)
        flow = await self._identity.begin(self._config.redirect_uri)
        state = str(flow["state"])
        expires_at = self._clock() + self._config.flow_ttl
        sealed = self._cipher.seal(dumps_flow(flow), context=flow_context(state))
        async with self._uow() as work:
            await work.connections.save_flow(
                state, sub_account_id, user_id, return_url, sealed, expires_at
            )
        return ConnectStarted(str(flow["auth_uri"]), expires_at)

    async def complete(self, response: Mapping[str, str]) -> CallbackOutcome:
        """Finish the sign-in the browser came back from (query or form_post)."""
        state = response.get("state")
        if not state or any("\x00" in v for v in response.values()):
            raise InvalidOAuthState()
        now = self._clock()
        async with self._uow() as work:  # consumed for good, whatever happens next
            record = await work.connections.consume_flow(state, now)
        if record is None:
            raise InvalidOAuthState()

        def back(error: str) -> CallbackOutcome:
            log.info("outlook sign-in not completed", extra={"error_code": error})
            return CallbackOutcome(record.return_url, error=error)

        if not record.first_use:
            return back("sign_in_already_used")
        if record.expires_at <= now:
            return back("sign_in_expired")
        if "error" in response:
            return back(
                "access_denied" if response["error"] == "access_denied" else "sign_in_failed"
            )
        flow = loads_flow(self._cipher.open(record.sealed, context=flow_context(state)))
        try:
            sign_in = await self._identity.redeem(flow, dict(response))
        except IdentityError as exc:
            log.warning("code redemption refused", extra={"error_code": exc.code})
            return back("code_redemption_failed")
        except IdentityUnavailable:
            return back("identity_platform_unavailable")
        try:
            me = await self._graph.me(sign_in.access_token)
            time_zone = await self._graph.time_zone(sign_in.access_token)
            calendars = await self._graph.calendars(sign_in.access_token)
        except (GraphUnavailable, GraphRefused):
            return back("graph_unavailable")
        account = MicrosoftAccount(
            tenant_id=sign_in.tenant_id,
            object_id=sign_in.object_id,
            email=str(me.get("mail") or me.get("userPrincipalName") or sign_in.username),
            display_name=me.get("displayName") or sign_in.name,
            time_zone=time_zone,
        )
        try:
            connection = await self.store(
                record.sub_account_id, record.user_id, account, calendars, sign_in.token_cache
            )
        except (OutlookAlreadyConnected, MicrosoftAccountInUse) as exc:
            return back(exc.code)
        except TRANSIENT as exc:
            # The sign-in is consumed and its code redeemed: nothing to retry here, but the
            # platform can start a new one. The browser still goes home, told why.
            log.warning("database away while storing a connection", extra={"error": repr(exc)})
            return back("temporarily_unavailable")
        return CallbackOutcome(record.return_url, connection_id=connection.id)

    async def store(
        self,
        sub_account_id: str,
        user_id: str,
        account: MicrosoftAccount,
        calendars: tuple[Calendar, ...],
        token_cache: str,
    ) -> Connection:
        """Insert, or repair the same account's connection; the database picks one winner."""
        for _ in range(3):
            now = self._clock()
            async with self._uow() as work:
                repo = work.connections
                fresh = new_connection(uuid4(), sub_account_id, user_id, account, calendars, now)
                if await repo.insert_if_free(fresh):
                    await self._keep_tokens(work.connections, fresh.id, token_cache)
                    await publish(work.outbox, fresh)
                    return fresh
                mine = await repo.live_for_user(sub_account_id, user_id)
                if mine is not None:
                    same = (mine.account.tenant_id, mine.account.object_id) == (
                        account.tenant_id,
                        account.object_id,
                    )
                    if not same:
                        raise OutlookAlreadyConnected()
                    repaired = reconnect(mine, account, calendars, now)
                    await repo.update(repaired, expected_version=mine.version)
                    await self._keep_tokens(work.connections, repaired.id, token_cache)
                    await publish(work.outbox, repaired)
                    return repaired
                if await repo.live_for_account(account.tenant_id, account.object_id):
                    raise MicrosoftAccountInUse()
            # The connection in the way was disconnected meanwhile: try again.
        raise OutlookAlreadyConnected()

    async def _keep_tokens(
        self, repo: ConnectionRepository, connection_id: UUID, token_cache: str
    ) -> None:
        sealed = self._cipher.seal(token_cache.encode(), context=token_context(connection_id))
        await repo.save_token_cache(connection_id, sealed)
