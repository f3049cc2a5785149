"""Conformance with the real MSAL Python against the emulator over HTTPS.

Only what a deployment changes differs from real Microsoft: the authority URL, the CA bundle
and ``instance_discovery=False`` (or ``validate_authority=False``), since MSAL would otherwise ask
Microsoft's own host which authorities exist. The user's browser step is the emulator's
automation path (``x-emulator-user`` on the authorize URL, or a pre-approval + ``login_hint``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msal
import pytest
import requests

from msgraph_emulator.users import PERSONAL_TENANT_ID

SCOPES = ["Calendars.ReadWrite", "User.Read"]
REDIRECT = "http://localhost/callback"


class Sandbox:
    """Drives the emulator's control API over HTTPS, like a test of another service would."""

    def __init__(self, emulator: Any) -> None:
        self.base = emulator.base_url
        self.http = requests.Session()
        self.http.verify = str(emulator.ca_path)
        self.ca = str(emulator.ca_path)
        self.apps: list[msal.ConfidentialClientApplication] = []

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = self.http.post(f"{self.base}{path}", json=body or {})
        assert resp.ok, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def user(self, kind: str = "work", tenant_id: str | None = None) -> dict[str, Any]:
        name = uuid.uuid4().hex[:8]
        domain = "outlook.example" if kind == "personal" else "fabrikam.example"
        body = {"kind": kind, "userPrincipalName": f"u{name}@{domain}", "displayName": f"U {name}"}
        if tenant_id:
            body["tenantId"] = tenant_id
        return self.post("/_emulator/users", body)

    def register(self) -> dict[str, Any]:
        return self.post(
            "/_emulator/identity/apps", {"displayName": "MSAL test", "redirectUris": [REDIRECT]}
        )

    def msal_app(self, reg: dict[str, Any], tenant: str, **kw: Any) -> Any:
        kw.setdefault("instance_discovery", False)
        app = msal.ConfidentialClientApplication(
            reg["clientId"],
            client_credential=reg["clientSecret"],
            authority=f"{self.base}/{tenant}",
            verify=self.ca,
            **kw,
        )
        self.apps.append(app)
        return app

    def browse(self, url: str, **extra: str) -> requests.Response:
        """The browser leg: GET the authorize URL; no redirect is followed (localhost app)."""
        return self.http.get(url, params=extra, allow_redirects=False)

    def sign_in(self, app: Any, user: dict[str, Any]) -> dict[str, Any]:
        # form_post: what MSAL recommends (it warns for any other response_mode).
        flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, response_mode="form_post")
        resp = self.browse(flow["auth_uri"], **{"x-emulator-user": user["userPrincipalName"]})
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, posted_form(resp))
        return result

    def close(self) -> None:
        for app in self.apps:
            app.http_client.close()
        self.http.close()


def query_of(resp: requests.Response) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(resp.headers["Location"]).query))


def posted_form(resp: requests.Response) -> dict[str, str]:
    """What the browser would POST to the redirect URI from a form_post page."""
    form = _Form()
    form.feed(resp.text)
    return form.fields


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[str(a["name"])] = a.get("value") or ""


@pytest.fixture
def sandbox(https_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    # requests lets these variables override a session's ``verify`` (MSAL passes ``verify=`` to
    # its session), so a machine-wide bundle would hide the emulator's CA: unset them here.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    box = Sandbox(https_emulator)
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def signed_in(sandbox: Sandbox) -> Callable[..., tuple[Any, dict[str, Any], dict[str, Any]]]:
    """``(kind, authority) -> (msal app, user, result)`` after a successful sign-in."""

    def _go(kind: str = "work", authority: str = "common") -> tuple[Any, Any, Any]:
        user = sandbox.user(kind)
        tenant = user["tenantId"] if authority == "tenant" else authority
        app = sandbox.msal_app(sandbox.register(), tenant)
        result = sandbox.sign_in(app, user)
        assert "access_token" in result, result
        return app, user, result

    return _go


@pytest.mark.parametrize(
    ("kind", "authority"),
    [
        ("work", "common"),
        ("work", "organizations"),
        ("work", "tenant"),
        ("personal", "common"),
        ("personal", "consumers"),
        ("personal", "tenant"),
    ],
)
def test_sign_in_builds_account_and_refreshes(
    signed_in: Callable[..., Any], sandbox: Sandbox, kind: str, authority: str
) -> None:
    app, user, result = signed_in(kind, authority)
    claims = result["id_token_claims"]
    assert (claims["oid"], claims["tid"]) == (user["id"], user["tenantId"])
    assert claims["preferred_username"] == user["userPrincipalName"]
    if kind == "personal":
        assert claims["tid"] == PERSONAL_TENANT_ID
    assert set(result["scope"].split()) >= {"Calendars.ReadWrite", "User.Read"}

    [account] = app.get_accounts()
    assert account["home_account_id"] == f"{user['id']}.{user['tenantId']}"
    assert account["username"] == user["userPrincipalName"]
    assert account["local_account_id"] == user["id"]

    me = sandbox.http.get(
        f"{sandbox.base}/v1.0/me", headers={"Authorization": f"Bearer {result['access_token']}"}
    )
    assert me.json()["userPrincipalName"] == user["userPrincipalName"]

    again = app.acquire_token_silent_with_error(SCOPES, account, force_refresh=True)
    assert again is not None
    assert "access_token" in again, again
    assert again["access_token"] != result["access_token"]


def _silent_error(app: Any) -> dict[str, Any]:
    [account] = app.get_accounts()
    result = app.acquire_token_silent_with_error(SCOPES, account, force_refresh=True)
    assert result is not None
    assert "error" in result, result
    return dict(result)


@pytest.mark.parametrize("kind", ["work", "personal"])
def test_revoked_sessions_fail_refresh_with_50173(
    signed_in: Callable[..., Any], sandbox: Sandbox, kind: str
) -> None:
    app, user, _ = signed_in(kind)
    sandbox.post(f"/_emulator/users/{user['id']}/revoke-sessions")
    error = _silent_error(app)
    assert error["error"] == "invalid_grant"
    assert error["error_codes"] == [50173]
    assert error["error_description"].startswith("AADSTS50173:")


def test_idle_refresh_token_fails_with_700082(
    signed_in: Callable[..., Any], sandbox: Sandbox
) -> None:
    app, user, _ = signed_in()
    assert sandbox.post(f"/_emulator/users/{user['id']}/age-refresh-tokens", {"days": 91})["aged"]
    error = _silent_error(app)
    assert (error["error"], error["error_codes"]) == ("invalid_grant", [700082])
    assert "inactive for 91.00:00:00" in error["error_description"]


def test_withdrawn_consent_fails_with_65001(
    signed_in: Callable[..., Any], sandbox: Sandbox
) -> None:
    app, user, _ = signed_in("personal", "consumers")
    resp = sandbox.http.delete(f"{sandbox.base}/_emulator/users/{user['id']}/consents")
    assert resp.json() == {"withdrawn": 1, "reauthorizationRequired": []}
    error = _silent_error(app)
    assert (error["error"], error["error_codes"]) == ("invalid_grant", [65001])
    assert error["suberror"] == "consent_required"
    assert error["classification"] == "consent_required"


def test_validate_authority_false_and_custom_discovery_endpoint(sandbox: Sandbox) -> None:
    user, reg = sandbox.user(), sandbox.register()
    for kw in (
        {"validate_authority": False, "instance_discovery": None},
        {"instance_discovery": f"{sandbox.base}/common/discovery/instance"},
    ):
        app = sandbox.msal_app(reg, "organizations", **kw)
        assert "access_token" in sandbox.sign_in(app, user)


def test_login_hint_with_preapproval_needs_no_page(sandbox: Sandbox) -> None:
    user, reg = sandbox.user(), sandbox.register()
    sandbox.post(
        "/_emulator/identity/preapprove",
        {"userId": user["userPrincipalName"], "clientId": reg["clientId"], "scopes": SCOPES},
    )
    app = sandbox.msal_app(reg, user["tenantId"])
    flow = app.initiate_auth_code_flow(
        SCOPES,
        redirect_uri=REDIRECT,
        login_hint=user["userPrincipalName"],
        response_mode="form_post",
    )
    resp = sandbox.browse(flow["auth_uri"])
    assert resp.status_code == 200
    result = app.acquire_token_by_auth_code_flow(flow, posted_form(resp))
    assert result["id_token_claims"]["oid"] == user["id"]


def test_query_response_mode(sandbox: Sandbox) -> None:
    user, reg = sandbox.user(), sandbox.register()
    app = sandbox.msal_app(reg, "common")
    with pytest.warns(UserWarning, match="form_post"):
        flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT)
    resp = sandbox.browse(flow["auth_uri"], **{"x-emulator-user": user["id"]})
    assert resp.status_code == 302
    params = query_of(resp)
    assert {"code", "state", "session_state", "client_info"} <= set(params)
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert result["id_token_claims"]["oid"] == user["id"]


@pytest.mark.parametrize(
    ("kind", "authority"), [("personal", "organizations"), ("work", "consumers")]
)
def test_authority_refuses_other_account_type(sandbox: Sandbox, kind: str, authority: str) -> None:
    user, reg = sandbox.user(kind), sandbox.register()
    app = sandbox.msal_app(reg, authority)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, response_mode="form_post")
    resp = sandbox.browse(flow["auth_uri"], **{"x-emulator-user": user["userPrincipalName"]})
    assert resp.status_code == 400
    assert "AADSTS50020" in resp.text


def test_user_cancel_reaches_msal_as_error(sandbox: Sandbox) -> None:
    reg = sandbox.register()
    app = sandbox.msal_app(reg, PERSONAL_TENANT_ID)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, response_mode="form_post")
    resp = sandbox.browse(flow["auth_uri"], **{"x-emulator-action": "cancel"})
    result = app.acquire_token_by_auth_code_flow(flow, posted_form(resp))
    assert result["error"] == "access_denied"
    assert result["error_description"].startswith("AADSTS65004")
