"""Who is calling a service, and may they: bearer JWTs (HS256) checked at the HTTP edge.

Shared by every service with a public API (the connector, the availability service): one set
of token rules, each service with its own ``audience``.

Two kinds of token, told apart by one claim (exactly one of them must be present):

- a *sub-account token* (``sub_account_id``) may act on that sub-account only;
- a *service token* (``svc``, the calling service's name) may act on any sub-account when the
  service is one of ``AuthSettings.platform_services``, and on the internal endpoints that name it.

The header's ``kid`` selects the key, so keys rotate by configuring the new one next to the old,
signing with the new one, and removing the old one once its tokens have expired.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self, TypeGuard

import jwt
from aiohttp import hdrs, web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from calsync_common.http.problems import Problem

ALGORITHMS = ["HS256"]  # fixed: never "none", never an algorithm named by the token
_MIN_KEY_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


class AuthSettings(BaseModel):
    """Verification keys and token rules (``<SERVICE>_AUTH__*`` in a service's settings)."""

    # Validation errors must not print the secrets they were given.
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    issuer: str = "https://platform.calsync.dev"
    audience: str = "calsync-connector"
    #: Key id (the token header's ``kid``) → HS256 secret. Several while keys rotate.
    keys: dict[str, SecretStr]
    #: The key that ``mint`` signs with (the service itself only verifies).
    signing_key_id: str
    #: Clock skew tolerated on ``exp``, ``iat`` and ``nbf``.
    leeway_s: int = Field(default=30, ge=0)
    #: Tokens whose ``exp - iat`` exceeds this are refused, however they were signed.
    max_lifetime_s: int = Field(default=24 * 3600, gt=0)
    #: Services whose tokens may act on any sub-account (public ``/v1/sub-accounts/...`` API).
    #: Internal endpoints name their callers themselves (see ``authorize_service``).
    platform_services: frozenset[str] = frozenset({"platform", "sync-worker", "availability"})

    @model_validator(mode="after")
    def _check_keys(self) -> Self:
        if not self.keys:
            raise ValueError("at least one key is required")
        for kid, secret in self.keys.items():
            if not kid:
                raise ValueError("key ids must not be empty")
            if len(secret.get_secret_value().encode()) < _MIN_KEY_BYTES:
                raise ValueError(f"key {kid!r} is shorter than {_MIN_KEY_BYTES} bytes")
        if self.signing_key_id not in self.keys:
            raise ValueError(f"signing_key_id {self.signing_key_id!r} is not one of the keys")
        return self

    @classmethod
    def development(cls, audience: str = "calsync-connector") -> AuthSettings:
        """A well-known key for local use: the settings base refuses it outside development."""
        key = SecretStr("insecure-development-key-do-not-use-outside-development")
        return cls(keys={"development": key}, signing_key_id="development", audience=audience)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: exactly one of ``sub_account_id`` and ``service`` is set."""

    subject: str
    sub_account_id: str | None
    service: str | None
    #: A service of ``AuthSettings.platform_services``: acts on any sub-account. Decided when the
    #: token is authenticated; False by default so a hand-built Caller is not privileged.
    platform: bool = False

    def __post_init__(self) -> None:
        if (self.sub_account_id is None) == (self.service is None):
            raise ValueError("a caller has exactly one of sub_account_id and service")
        if self.platform and self.service is None:
            raise ValueError("only a service can be a platform service")

    @classmethod
    def for_sub_account(cls, sub_account_id: str, subject: str) -> Caller:
        return cls(subject=subject, sub_account_id=sub_account_id, service=None)

    @classmethod
    def for_service(cls, service: str, subject: str | None = None, *, platform: bool) -> Caller:
        return cls(
            subject=subject or service, sub_account_id=None, service=service, platform=platform
        )

    @property
    def is_service(self) -> bool:
        return self.service is not None

    def may_act_on(self, sub_account_id: str) -> bool:
        return self.platform or self.sub_account_id == sub_account_id


class Unauthenticated(Problem):
    """401 with the RFC 6750 challenge a client should see in ``WWW-Authenticate``."""

    def __init__(self, detail: str, *, challenge: str) -> None:
        super().__init__(401, "unauthenticated", "Unauthenticated", detail)
        self.challenge = challenge
        # Read by problem_response once Problem carries headers; until then setup_auth's
        # response hook copies the challenge onto the response.
        self.headers = {hdrs.WWW_AUTHENTICATE: challenge}


def forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Forbidden", detail)


# PyJWT's exceptions, most specific first, mapped to details that never quote the token.
_REFUSALS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidIssuerError, "the token's issuer is not accepted"),
    (jwt.InvalidAudienceError, "the token's audience is not accepted"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
    (jwt.InvalidSignatureError, "the token's signature is invalid"),
    (jwt.InvalidKeyError, "the token's signature is invalid"),
    (jwt.exceptions.InvalidSubjectError, "the token's subject is invalid"),
    (jwt.InvalidIssuedAtError, "the token's issue time is invalid"),
    (jwt.DecodeError, "the token is malformed"),
]


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Caller`, or raises 401."""

    #: Verified tokens kept (callers reuse a token for many requests; checking its signature
    #: and claims each time was a tenth of a request's CPU). Bounded; least recently used go.
    CACHE_SIZE = 4096

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._keys = {kid: s.get_secret_value().encode() for kid, s in settings.keys.items()}
        realm = f'Bearer realm="{settings.audience}"'
        self._challenge = realm
        self._invalid_token = f'{realm}, error="invalid_token"'
        self._clock = clock
        # token → (caller, the instant after which it is refused: exp plus the leeway)
        self._verified: OrderedDict[str, tuple[Caller, float]] = OrderedDict()

    def authenticate(self, authorization_header: str | None) -> Caller:
        if not authorization_header:
            # RFC 6750 §3.1: no error code when the request carried no credentials.
            raise Unauthenticated("missing Authorization header", challenge=self._challenge)
        scheme, _, token = authorization_header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated(
                "the Authorization scheme must be Bearer", challenge=self._challenge
            )
        token = token.strip()
        if len(token.split(None, 1)) != 1:  # empty, or whitespace inside (split is in C)
            raise self.refuse("the token is malformed")
        now = self._clock()
        cached = self._verified.get(token)
        if cached is not None:
            found, until = cached
            if now <= until:
                self._verified.move_to_end(token)
                return found
            del self._verified[token]  # expired: decoding it again says so
        claims = self._decode(token)
        found = self._caller(claims)
        self._verified[token] = (found, float(claims["exp"]) + self.settings.leeway_s)
        if len(self._verified) > self.CACHE_SIZE:
            self._verified.popitem(last=False)
        return found

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise self.refuse("the token is malformed") from None
        if not isinstance(kid, str):
            raise self.refuse("the token names no key (kid)")
        key = self._keys.get(kid)
        if key is None:
            raise self.refuse("the token is signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise self.refuse(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            detail = next((d for t, d in _REFUSALS if isinstance(exc, t)), "the token is invalid")
            raise self.refuse(detail) from None
        # PyJWT has checked that both are integers. A token that claims too long a life is refused
        # even within it: whoever holds a key must not mint long-lived access.
        if int(claims["exp"]) - int(claims["iat"]) > self.settings.max_lifetime_s:
            raise self.refuse(
                f"the token's lifetime exceeds {self.settings.max_lifetime_s} seconds"
            )
        return claims

    def _caller(self, claims: dict[str, Any]) -> Caller:
        subject, sub_account_id, service = (claims.get(c) for c in ("sub", "sub_account_id", "svc"))
        if not _nonempty(subject):
            raise self.refuse("the token's subject is invalid")
        if (sub_account_id is None) == (service is None):
            raise self.refuse("the token must carry exactly one of sub_account_id and svc")
        if service is not None:
            if not _nonempty(service):
                raise self.refuse("the token's svc claim is invalid")
            platform = service in self.settings.platform_services
            return Caller(subject=subject, sub_account_id=None, service=service, platform=platform)
        if not _nonempty(sub_account_id):
            raise self.refuse("the token's sub_account_id claim is invalid")
        return Caller.for_sub_account(sub_account_id, subject)

    def refuse(self, detail: str) -> Unauthenticated:
        """A 401 for credentials that were presented but are not acceptable."""
        return Unauthenticated(detail, challenge=self._invalid_token)


def _nonempty(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def authorize_sub_account(caller: Caller, sub_account_id: str) -> None:
    """403 unless ``caller`` may act on ``sub_account_id`` (its own, or a platform service)."""
    if not caller.may_act_on(sub_account_id):
        raise forbidden("the token does not grant access to this sub-account")


def authorize_service(caller: Caller, allowed: frozenset[str]) -> None:
    """403 unless ``caller`` is a service token of one of the ``allowed`` services."""
    if caller.service is None or caller.service not in allowed:
        raise forbidden("this endpoint accepts only tokens of specific services")


def mint(
    settings: AuthSettings,
    *,
    subject: str,
    sub_account_id: str | None = None,
    service: str | None = None,
    lifetime_s: int = 3600,
    now: datetime | None = None,
) -> str:
    """A token the service of ``settings`` accepts, signed with its ``signing_key_id``."""
    if (sub_account_id is None) == (service is None):
        raise ValueError("give exactly one of sub_account_id and service")
    if not subject or not (sub_account_id or service):
        raise ValueError("subject, sub_account_id and service must not be empty")
    if not 0 < lifetime_s <= settings.max_lifetime_s:
        raise ValueError(f"lifetime_s must be in 1..{settings.max_lifetime_s}")
    issued = now or datetime.now(UTC)
    if issued.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    iat = int(issued.timestamp())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": subject,
        "iat": iat,
        "exp": iat + lifetime_s,
    }
    if sub_account_id is not None:
        claims["sub_account_id"] = sub_account_id
    else:
        claims["svc"] = service
    key = settings.keys[settings.signing_key_id].get_secret_value()
    return jwt.encode(
        claims, key, algorithm=ALGORITHMS[0], headers={"kid": settings.signing_key_id}
    )


# --- aiohttp ------------------------------------------------------------------------------

AUTHENTICATOR = web.AppKey("AUTHENTICATOR", Authenticator)
CALLER = web.RequestKey("CALLER", Caller)
_CHALLENGE = web.RequestKey("_CHALLENGE", str)


def setup_auth(app: web.Application, authenticator: Authenticator) -> None:
    """Put ``authenticator`` on the app and make every 401 carry a ``WWW-Authenticate``."""
    app[AUTHENTICATOR] = authenticator
    app.on_response_prepare.append(_add_challenge)


async def _add_challenge(request: web.Request, response: web.StreamResponse) -> None:
    # RFC 9110 §15.5.2: a 401 MUST carry a challenge; problem_response cannot set headers.
    if response.status == 401 and hdrs.WWW_AUTHENTICATE not in response.headers:
        response.headers[hdrs.WWW_AUTHENTICATE] = request.get(_CHALLENGE, "Bearer")


def caller(request: web.Request) -> Caller:
    """The authenticated caller of ``request`` (computed once per request), or a 401 problem."""
    if CALLER in request:
        return request[CALLER]
    authenticator = request.config_dict[AUTHENTICATOR]
    headers = request.headers.getall(hdrs.AUTHORIZATION, [])
    try:
        if len(headers) > 1:  # which one would a proxy have checked? refuse the ambiguity
            raise authenticator.refuse("several Authorization headers")
        found = authenticator.authenticate(headers[0] if headers else None)
    except Unauthenticated as exc:
        request[_CHALLENGE] = exc.challenge
        raise
    request[CALLER] = found
    return found


def sub_account_caller(request: web.Request) -> Caller:
    """The caller, authorized for the ``{sub_account_id}`` of the matched route."""
    found = caller(request)
    authorize_sub_account(found, request.match_info["sub_account_id"])
    return found


def service_caller(request: web.Request, allowed: frozenset[str]) -> Caller:
    """The caller, authorized as one of the ``allowed`` services (internal endpoints)."""
    found = caller(request)
    authorize_service(found, allowed)
    return found
