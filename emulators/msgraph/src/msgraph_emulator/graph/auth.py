"""Bearer access tokens for Graph: minted by the token endpoint, checked by every Graph route.

Access tokens are RS256 JWTs signed with the emulator's key, shaped like Entra v2 access tokens for
Graph (``aud`` = Graph's app id, ``scp`` space-separated delegated scopes, ``oid``, ``tid``,
``azp``/``appid``). Like the real service, a token stays valid until it expires even after its
refresh token is revoked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from msgraph_emulator.graph.errors import GraphError

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
VERIFIED_CACHE_MAX = 10_000


@dataclass(frozen=True)
class TokenContext:
    """Who is calling Graph, for which app, with which delegated scopes."""

    user_id: str
    tenant_id: str
    client_id: str
    scopes: frozenset[str]


#: Where ``authenticate`` caches the caller on the request (a typed key: aiohttp warns on str).
TOKEN_CONTEXT_KEY = web.RequestKey("msgraph_emulator.token_context", TokenContext)


@dataclass
class SigningKey:
    """The RSA key the identity platform signs ID and access tokens with (published in JWKS)."""

    kid: str
    private_key: rsa.RSAPrivateKey
    #: Tokens already verified with this key -> (context, exp). Verifying an RS256 JWT costs far
    #: more than serving a calendar list, and clients reuse one token for an hour.
    verified: dict[str, tuple[TokenContext, float]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(
            kid=uuid.uuid4().hex,
            private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )


def mint_access_token(
    key: SigningKey,
    *,
    issuer_base: str,
    user_id: str,
    tenant_id: str,
    client_id: str,
    scopes: Iterable[str],
    lifetime_s: int,
) -> str:
    now = int(time.time())
    claims = {
        "aud": GRAPH_APP_ID,
        "iss": f"{issuer_base}/{tenant_id}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_s,
        "oid": user_id,
        "sub": user_id,
        "tid": tenant_id,
        "azp": client_id,
        "appid": client_id,
        "scp": " ".join(sorted(set(scopes))),
        "ver": "2.0",
        "uti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def decode_access_token(key: SigningKey, token: str) -> TokenContext:
    """Verify signature, expiry and audience; raise 401 ``InvalidAuthenticationToken`` otherwise."""
    cached = key.verified.get(token)
    if cached is not None and time.time() < cached[1]:
        return cached[0]
    try:
        claims = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=["RS256"],
            audience=GRAPH_APP_ID,
            options={"require": ["exp", "oid", "tid", "scp"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
        ) from exc
    except jwt.PyJWTError as exc:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        ) from exc
    ctx = TokenContext(
        user_id=str(claims["oid"]),
        tenant_id=str(claims["tid"]),
        client_id=str(claims.get("azp") or claims.get("appid", "")),
        scopes=frozenset(str(claims["scp"]).split()),
    )
    if len(key.verified) >= VERIFIED_CACHE_MAX:
        key.verified.clear()
    key.verified[token] = (ctx, float(claims["exp"]))
    return ctx


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    return token.strip()


def authenticate(request: web.Request, key: SigningKey, *, any_of: Iterable[str]) -> TokenContext:
    """Check the bearer token and that it carries at least one of ``any_of`` scopes.

    The context is cached on the request so middleware (throttling) and handlers decode once.
    """
    ctx = request.get(TOKEN_CONTEXT_KEY)
    if not isinstance(ctx, TokenContext):
        ctx = decode_access_token(key, bearer_token(request))
        request[TOKEN_CONTEXT_KEY] = ctx
    wanted = set(any_of)
    if wanted and not (ctx.scopes & wanted):
        raise GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
    return ctx
