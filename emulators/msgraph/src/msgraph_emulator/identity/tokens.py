"""What the token endpoint hands out: ID token, ``client_info`` and the response body."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass

import jwt

from msgraph_emulator.graph.auth import SigningKey, mint_access_token
from msgraph_emulator.identity import scopes as scope_rules
from msgraph_emulator.users import User

ID_TOKEN_LIFETIME_S = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pairwise_sub(user_id: str, client_id: str) -> str:
    """``sub`` differs per application for one user (Entra's pairwise subject)."""
    return b64url(hashlib.sha256(f"{user_id}|{client_id}".encode()).digest())


def client_info(user: User) -> str:
    """base64url JSON ``{"uid", "utid"}``; MSAL derives ``home_account_id`` = ``uid.utid``."""
    return b64url(json.dumps({"uid": user.id, "utid": user.tenant_id}).encode())


def mint_id_token(
    key: SigningKey,
    *,
    issuer_base: str,
    user: User,
    client_id: str,
    nonce: str | None,
    now: int,
) -> str:
    claims: dict[str, object] = {
        "aud": client_id,
        "iss": f"{issuer_base}/{user.tenant_id}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME_S,
        "name": user.display_name,
        "oid": user.id,
        "preferred_username": user.user_principal_name,
        "sub": pairwise_sub(user.id, client_id),
        "tid": user.tenant_id,
        "uti": uuid.uuid4().hex,
        "ver": "2.0",
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


@dataclass(frozen=True)
class Issued:
    """Everything granted by one successful token request."""

    user: User
    client_id: str
    #: Granted scopes: Graph permissions plus the OIDC scopes that were asked for.
    scopes: frozenset[str]
    refresh_token: str | None
    nonce: str | None
    with_client_info: bool


def token_response(
    issued: Issued, *, key: SigningKey, issuer_base: str, lifetime_s: int, now: int
) -> dict[str, object]:
    graph_scopes = scope_rules.resource_scopes(issued.scopes)
    body: dict[str, object] = {
        "token_type": "Bearer",
        "scope": scope_rules.render(issued.scopes),
        "expires_in": lifetime_s,
        "ext_expires_in": lifetime_s,
        "access_token": mint_access_token(
            key,
            issuer_base=issuer_base,
            user_id=issued.user.id,
            tenant_id=issued.user.tenant_id,
            client_id=issued.client_id,
            # Graph access tokens carry the OIDC scopes too (``scp`` "... openid profile").
            scopes=graph_scopes | (issued.scopes & {"openid", "profile", "email"}),
            lifetime_s=lifetime_s,
        ),
    }
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    if "openid" in issued.scopes:
        body["id_token"] = mint_id_token(
            key,
            issuer_base=issuer_base,
            user=issued.user,
            client_id=issued.client_id,
            nonce=issued.nonce,
            now=now,
        )
    if issued.with_client_info:
        body["client_info"] = client_info(issued.user)
    return body
