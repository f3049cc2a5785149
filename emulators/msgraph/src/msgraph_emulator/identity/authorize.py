"""The authorize endpoint's rules: validate the request, pick the user, issue a code.

Errors before the redirect URI is known to be registered are shown as a page (Entra never
redirects to an unverified URI); later errors go back to the client through the redirect.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from msgraph_emulator.identity import aadsts, scopes, tenants
from msgraph_emulator.identity.apps import AppRegistration
from msgraph_emulator.identity.errors import IdentityError
from msgraph_emulator.identity.store import AuthCode, IdentityStore
from msgraph_emulator.identity.tokens import client_info
from msgraph_emulator.users import User, UserRegistry

#: Emulator-only parameter: sign in as this user (UPN or object id) and consent at once.
AUTOMATION_PARAM = "x-emulator-user"
RESPONSE_MODES = frozenset({"query", "fragment", "form_post"})


@dataclass(frozen=True)
class RedirectTarget:
    redirect_uri: str
    response_mode: str
    state: str | None

    def params(self, values: Mapping[str, str]) -> dict[str, str]:
        out = dict(values)
        if self.state is not None:
            out["state"] = self.state
        return out


class AuthorizeFailure(Exception):
    """An authorize error plus where (if anywhere) it may be redirected."""

    def __init__(self, error: IdentityError, target: RedirectTarget | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.target = target if not error.page_only else None


@dataclass(frozen=True)
class AuthorizeRequest:
    authority: tenants.Authority
    app: AppRegistration
    target: RedirectTarget
    scopes: frozenset[str]
    nonce: str | None
    code_challenge: str | None
    wants_client_info: bool
    login_hint: str | None
    prompt: str | None


def parse_request(
    segment: str, params: Mapping[str, str], store: IdentityStore, users: UserRegistry
) -> AuthorizeRequest:
    try:
        authority = tenants.resolve(segment, users)
        client_id = params.get("client_id", "")
        app = store.apps.get(client_id)
        if app is None:
            raise aadsts.unknown_client(client_id, segment)
        redirect_uri = params.get("redirect_uri") or (app.redirect_uris or [""])[0]
        if not app.allows_redirect(redirect_uri):
            raise aadsts.redirect_mismatch(redirect_uri, client_id)
    except IdentityError as err:
        raise AuthorizeFailure(err, None) from err
    mode = params.get("response_mode", "query")
    target = RedirectTarget(
        redirect_uri, mode if mode in RESPONSE_MODES else "query", params.get("state")
    )
    try:
        if params.get("response_type", "") != "code":
            raise aadsts.unsupported_response_type(params.get("response_type", ""))
        if not params.get("scope"):
            raise aadsts.missing_parameter("scope")
        requested = scopes.parse(params.get("scope"), client_id)
        challenge = params.get("code_challenge")
        if challenge is not None:
            method = params.get("code_challenge_method", "plain")
            if method != "S256":
                # "plain" leaks the verifier to anyone who sees the authorize URL.
                raise aadsts.bad_challenge_method(method)
            if not 43 <= len(challenge) <= 128:
                raise aadsts.bad_challenge_size()
    except IdentityError as err:
        raise AuthorizeFailure(err, target) from err
    return AuthorizeRequest(
        authority=authority,
        app=app,
        target=target,
        scopes=requested,
        nonce=params.get("nonce"),
        code_challenge=challenge,
        wants_client_info=params.get("client_info") == "1",
        login_hint=params.get("login_hint"),
        prompt=params.get("prompt"),
    )


def find_user(login: str, users: UserRegistry) -> User | None:
    return users.get(login) or users.by_upn(login)


def automatic_user(
    req: AuthorizeRequest, params: Mapping[str, str], store: IdentityStore, users: UserRegistry
) -> User | None:
    """The user the automation path signs in, if any (see README, "Automation")."""
    login = params.get(AUTOMATION_PARAM)
    if login:
        user = find_user(login, users)
        if user is None:
            raise AuthorizeFailure(aadsts.unknown_user(login, req.authority.segment), None)
        return user
    if req.login_hint:
        user = users.by_upn(req.login_hint)
        wanted = scopes.resource_scopes(req.scopes)
        if user is not None and wanted <= store.preapprovals.get(
            (user.id, req.app.client_id), set()
        ):
            return user
    if req.prompt == "none":
        raise AuthorizeFailure(aadsts.login_required(), req.target)
    return None


def approve(
    req: AuthorizeRequest, user: User, store: IdentityStore, *, now: float, code_lifetime_s: int
) -> dict[str, str]:
    """The user accepted: record consent, issue a code; returns the redirect parameters."""
    if not req.authority.allows(user) or not req.app.admits(user):
        raise AuthorizeFailure(req.authority.refusal(user), None)
    store.grant_consent(user.id, req.app.client_id, set(scopes.resource_scopes(req.scopes)))
    code = store.issue_code(
        AuthCode(
            code=f"1.EMU.{secrets.token_urlsafe(48)}",
            client_id=req.app.client_id,
            redirect_uri=req.target.redirect_uri,
            user_id=user.id,
            scopes=sorted(req.scopes),
            issued_at=now,
            expires_at=now + code_lifetime_s,
            nonce=req.nonce,
            code_challenge=req.code_challenge,
        )
    )
    values = {"code": code.code, "session_state": str(uuid.uuid4())}
    if req.wants_client_info:
        values["client_info"] = client_info(user)
    return req.target.params(values)


def decline(req: AuthorizeRequest) -> dict[str, str]:
    err = aadsts.user_declined()
    return req.target.params(
        {"error": err.error, "error_subcode": "cancel", "error_description": str(err)}
    )
