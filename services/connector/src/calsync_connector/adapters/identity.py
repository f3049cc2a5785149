"""The Microsoft identity platform through MSAL: auth-code flow with PKCE, silent refreshes.

MSAL is synchronous (requests); every call runs in a worker thread. Its HTTP session is ours:
``trust_env`` off, so ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` (and proxy variables) can never
silently replace the configured CA bundle, which is the emulator's in the sandbox. Against an
authority that is not Microsoft's, instance discovery is off (it would call Microsoft's host).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msal
import requests
from pydantic import BaseModel, ConfigDict, SecretStr

T = TypeVar("T")
#: What calsync asks for; MSAL adds the reserved scopes (openid, profile, offline_access).
SCOPES = ("Calendars.ReadWrite", "User.Read")
#: AADSTS codes of an ``invalid_grant`` that only a new sign-in repairs.
REAUTH_CODES = frozenset({50173, 700082, 65001, 70000, 70008, 50076, 50079, 53003})


class MicrosoftSettings(BaseModel):
    """The app registration and where the identity platform and Graph are (the sandbox's
    emulator by default)."""

    model_config = ConfigDict(frozen=True)

    authority: str = "https://localhost:8443/common"
    graph_url: str = "https://localhost:8443/v1.0"
    client_id: str = "5f1a0c7e-0b1d-4c4e-9f43-5a6d3e2b7c10"
    client_secret: SecretStr = SecretStr("sandbox-secret~not-a-real-credential-0123456789")
    #: CA bundle for the authority and Graph; None: the system store.
    ca_bundle: Path | None = Path(".run/msgraph/ca.pem")
    #: True only for login.microsoftonline.com (MSAL asks Microsoft's host for aliases).
    instance_discovery: bool = False
    timeout_s: float = 10.0


class IdentityError(Exception):
    """The identity platform refused (``code`` is its ``error``, ``aadsts`` its first code)."""

    def __init__(self, code: str, aadsts: int | None) -> None:
        super().__init__(f"{code} (AADSTS{aadsts})" if aadsts else code)
        self.code = code
        self.aadsts = aadsts

    @property
    def needs_reauth(self) -> bool:
        return self.code in ("invalid_grant", "interaction_required") or (
            self.aadsts in REAUTH_CODES
        )


class IdentityUnavailable(Exception):
    """The identity platform could not be reached or answered 5xx: retry later."""


@dataclass(frozen=True)
class SignIn:
    """A redeemed authorization code: who signed in, and the cache holding their tokens."""

    tenant_id: str
    object_id: str
    username: str
    name: str | None
    access_token: str
    token_cache: str


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: datetime


def _error(result: dict[str, Any]) -> IdentityError:
    codes = result.get("error_codes") or []
    return IdentityError(str(result.get("error", "unknown_error")), codes[0] if codes else None)


class MicrosoftIdentity:
    def __init__(self, settings: MicrosoftSettings) -> None:
        self.settings = settings
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.verify = str(settings.ca_bundle) if settings.ca_bundle else True
        # Shared by every app instance: MSAL caches the authority's discovery documents here.
        self._http_cache: dict[str, Any] = {}

    def close(self) -> None:
        self._session.close()

    def _app(self, cache: msal.SerializableTokenCache | None = None) -> msal.ClientApplication:
        return msal.ConfidentialClientApplication(
            self.settings.client_id,
            client_credential=self.settings.client_secret.get_secret_value(),
            authority=self.settings.authority,
            http_client=self._session,
            instance_discovery=self.settings.instance_discovery,
            token_cache=cache,
            http_cache=self._http_cache,
            timeout=self.settings.timeout_s,
        )

    async def begin(self, redirect_uri: str, *, login_hint: str | None = None) -> dict[str, Any]:
        """A new auth-code flow with PKCE: ``auth_uri`` for the browser, the rest kept secret."""

        def start() -> dict[str, Any]:
            flow: dict[str, Any] = self._app().initiate_auth_code_flow(
                list(SCOPES),
                redirect_uri=redirect_uri,
                login_hint=login_hint,
                response_mode="form_post",
            )
            return flow

        return await self._call(start)

    async def redeem(self, flow: dict[str, Any], response: dict[str, str]) -> SignIn:
        """Redeem the code of the browser's ``response`` for tokens (MSAL checks the state)."""

        def redeem() -> SignIn:
            cache = msal.SerializableTokenCache()
            result = self._app(cache).acquire_token_by_auth_code_flow(flow, response)
            if "error" in result:
                raise _error(result)
            claims = result.get("id_token_claims") or {}
            return SignIn(
                tenant_id=str(claims["tid"]),
                object_id=str(claims["oid"]),
                username=str(claims.get("preferred_username") or ""),
                name=claims.get("name"),
                access_token=str(result["access_token"]),
                token_cache=cache.serialize(),
            )

        return await self._call(redeem)

    async def access_token(
        self, token_cache: str, home_account_id: str
    ) -> tuple[AccessToken, str | None]:
        """A valid access token from the cache (refreshed when needed) and the new cache when
        MSAL changed it (a rotated refresh token must be stored), else None."""

        def acquire() -> tuple[AccessToken, str | None]:
            cache = msal.SerializableTokenCache()
            cache.deserialize(token_cache)
            app = self._app(cache)
            account = next(
                (a for a in app.get_accounts() if a.get("home_account_id") == home_account_id),
                None,
            )
            if account is None:
                raise IdentityError("no_account_in_cache", None)
            result = app.acquire_token_silent_with_error(list(SCOPES), account)
            if result is None:
                raise IdentityError("interaction_required", None)
            if "error" in result:
                raise _error(result)
            expires_at = datetime.now(UTC) + timedelta(seconds=int(result["expires_in"]))
            changed = cache.serialize() if cache.has_state_changed else None
            return AccessToken(str(result["access_token"]), expires_at), changed

        return await self._call(acquire)

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            result = await asyncio.to_thread(fn)
        except (requests.RequestException, OSError) as exc:  # OSError: no CA bundle yet
            raise IdentityUnavailable(type(exc).__name__) from exc
        except ValueError as exc:  # MSAL: state mismatch, malformed response
            raise IdentityError("invalid_response", None) from exc
        return result


def home_account_id(tenant_id: str, object_id: str) -> str:
    """MSAL's key for an account in its cache."""
    return f"{object_id}.{tenant_id}"


def dumps_flow(flow: dict[str, Any]) -> bytes:
    return json.dumps(flow, separators=(",", ":")).encode()


def loads_flow(raw: bytes) -> dict[str, Any]:
    flow: dict[str, Any] = json.loads(raw)
    return flow
