"""The token endpoint's rules: client authentication and the two delegated grants."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from msgraph_emulator.identity import aadsts, scopes
from msgraph_emulator.identity.apps import AppRegistration
from msgraph_emulator.identity.store import DAY_S, IdentityStore
from msgraph_emulator.identity.tenants import Authority
from msgraph_emulator.identity.tokens import Issued, b64url
from msgraph_emulator.users import UserRegistry


@dataclass(frozen=True)
class GrantContext:
    store: IdentityStore
    users: UserRegistry
    #: The ``{tenant}`` of the token endpoint; it must admit the user like authorize did.
    authority: Authority
    now: float
    inactivity_days: int


def client_credentials(
    form: Mapping[str, str], authorization: str | None
) -> tuple[str, str | None]:
    """``client_secret_post`` or ``client_secret_basic`` (both advertised in discovery)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() == "basic" and encoded:
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        return unquote_plus(user), unquote_plus(password)
    return form.get("client_id", ""), form.get("client_secret")


def authenticate_client(
    client_id: str, secret: str | None, store: IdentityStore, tenant: str
) -> AppRegistration:
    if not client_id:
        raise aadsts.missing_parameter("client_id")
    app = store.apps.get(client_id)
    if app is None:
        raise aadsts.unknown_client(client_id, tenant)
    if secret is None:
        raise aadsts.missing_secret()
    if not app.check_secret(secret):
        raise aadsts.bad_secret(client_id)
    return app


def _pkce_ok(challenge: str, verifier: str) -> bool:
    expected = b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
    return hmac.compare_digest(expected, challenge)


def redeem_code(form: Mapping[str, str], app: AppRegistration, ctx: GrantContext) -> Issued:
    raw = form.get("code")
    if not raw:
        raise aadsts.missing_parameter("code")
    code = ctx.store.codes.get(raw)
    if code is None or code.client_id != app.client_id:
        raise aadsts.invalid_grant("Request is malformed or invalid.")
    if code.redeemed:
        raise aadsts.code_redeemed()
    if ctx.now >= code.expires_at:
        raise aadsts.grant_expired()
    if form.get("redirect_uri", code.redirect_uri) != code.redirect_uri:
        raise aadsts.reply_address_mismatch()
    if code.code_challenge is not None and not _pkce_ok(
        code.code_challenge, form.get("code_verifier", "")
    ):
        raise aadsts.verifier_mismatch()
    user = ctx.users.get(code.user_id)
    if user is None:
        raise aadsts.invalid_grant("The user no longer exists.")
    if not ctx.authority.allows(user):
        raise ctx.authority.refusal(user)
    code.redeemed = True
    granted = frozenset(code.scopes) - {scopes.DEFAULT}
    if scopes.DEFAULT in code.scopes:
        # ".default" means "whatever this app was already granted".
        granted |= ctx.store.consented(user.id, app.client_id)
    refresh = None
    if "offline_access" in granted:
        refresh = ctx.store.issue_refresh_token(
            user_id=user.id,
            client_id=app.client_id,
            scopes=sorted(granted),
            auth_time=code.issued_at,
            now=ctx.now,
        ).token
    return Issued(
        user=user,
        client_id=app.client_id,
        scopes=granted,
        refresh_token=refresh,
        nonce=code.nonce,
        with_client_info=form.get("client_info") == "1",
    )


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def redeem_refresh_token(
    form: Mapping[str, str], app: AppRegistration, ctx: GrantContext
) -> Issued:
    raw = form.get("refresh_token")
    if not raw:
        raise aadsts.missing_parameter("refresh_token")
    token = ctx.store.refresh_tokens.get(raw)
    if token is None or token.client_id != app.client_id:
        raise aadsts.invalid_grant("Request is malformed or invalid.")
    valid_from = ctx.store.tokens_valid_from.get(token.user_id)
    if token.family_id in ctx.store.revoked_families:
        raise aadsts.tokens_revoked(_when(token.auth_time), _when(ctx.now))
    if valid_from is not None and token.auth_time < valid_from:
        raise aadsts.tokens_revoked(_when(token.auth_time), _when(valid_from))
    idle_days = (ctx.now - token.issued_at) / DAY_S
    if idle_days > ctx.inactivity_days:
        raise aadsts.inactive_token(_when(token.issued_at), idle_days)
    user = ctx.users.get(token.user_id)
    if user is None:
        raise aadsts.invalid_grant("The user no longer exists.")
    if not ctx.authority.allows(user):
        raise ctx.authority.refusal(user)
    requested = (
        scopes.parse(form["scope"], app.client_id) if form.get("scope") else frozenset(token.scopes)
    )
    consented = ctx.store.consented(user.id, app.client_id)
    wanted = scopes.resource_scopes(requested)
    if scopes.DEFAULT in requested:
        wanted = consented
    if not consented or not wanted <= consented:
        raise aadsts.consent_required(app.client_id, app.display_name)
    granted = (requested - {scopes.DEFAULT}) | wanted
    # Refresh tokens rotate on every use; the old one stays valid (Entra does not revoke it).
    new = ctx.store.issue_refresh_token(
        user_id=user.id,
        client_id=app.client_id,
        scopes=sorted(granted | {"offline_access"}),
        auth_time=token.auth_time,
        now=ctx.now,
        family_id=token.family_id,
    )
    return Issued(
        user=user,
        client_id=app.client_id,
        scopes=granted,
        refresh_token=new.token,
        nonce=None,
        with_client_info=form.get("client_info") == "1",
    )
