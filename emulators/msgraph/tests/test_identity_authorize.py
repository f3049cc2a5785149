"""The authorize endpoint over HTTP: consent page, redirects, automation path, its errors."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from msgraph_emulator.users import PERSONAL_TENANT_ID

ADELE = "adele.vance@contoso.example"
SAM = "sam.personal@outlook.example"
CONTOSO = "2b7e1a4c-6d0f-4e53-9a8b-0c1d2e3f4a5b"


def redirect_params(resp: Any) -> dict[str, str]:
    assert resp.status == 302
    location = resp.headers["Location"]
    assert location.startswith("http://localhost/callback")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'>", html))


async def test_consent_page_lists_allowed_users_and_scopes(idp: Any) -> None:
    resp = await idp.authorize("organizations")
    html = await resp.text()
    assert resp.status == 200
    assert "emulator" in html
    assert ADELE in html
    assert SAM not in html  # organizations refuses personal accounts
    assert "Calendars.ReadWrite" in html
    assert "Accept" in html
    assert "Cancel" in html


async def test_consumers_page_lists_only_personal_accounts(idp: Any) -> None:
    html = await (await idp.authorize("consumers")).text()
    assert SAM in html
    assert ADELE not in html


async def test_accept_on_consent_page_redirects_with_code(idp: Any) -> None:
    page = await (await idp.authorize(client_info="1")).text()
    form = hidden_fields(page)
    form.update({"x-emulator-user": ADELE, "x-emulator-action": "accept"})
    resp = await idp.client.post("/common/oauth2/v2.0/authorize", data=form, allow_redirects=False)
    params = redirect_params(resp)
    assert params["state"] == "st-123"
    assert params["code"]
    assert params["session_state"]
    info = json.loads(base64.urlsafe_b64decode(params["client_info"] + "=="))
    assert info == {"uid": "6e0b9f52-3c4d-4a8e-b1f2-7a9c0d1e2f31", "utid": CONTOSO}


async def test_cancel_redirects_access_denied_65004(idp: Any) -> None:
    page = await (await idp.authorize()).text()
    form = {**hidden_fields(page), "x-emulator-action": "cancel"}
    resp = await idp.client.post("/common/oauth2/v2.0/authorize", data=form, allow_redirects=False)
    params = redirect_params(resp)
    assert params["error"] == "access_denied"
    assert params["error_subcode"] == "cancel"
    assert params["error_description"].startswith("AADSTS65004: User declined")
    assert params["state"] == "st-123"
    assert "code" not in params


async def test_redirect_uri_mismatch_is_an_error_page_not_a_redirect(idp: Any) -> None:
    resp = await idp.authorize(redirect_uri="https://evil.example/cb", **{"x-emulator-user": ADELE})
    assert resp.status == 400
    assert "Location" not in resp.headers
    text = await resp.text()
    assert "AADSTS50011" in text
    assert "https://evil.example/cb" in text


async def test_unknown_client_is_an_error_page_700016(idp: Any) -> None:
    resp = await idp.authorize(client_id="00000000-1111-2222-3333-444444444444")
    assert resp.status == 400
    assert "AADSTS700016" in await resp.text()


async def test_unknown_tenant_is_an_error_page_90002(idp: Any) -> None:
    resp = await idp.authorize("nosuchtenant.example")
    assert resp.status == 400
    assert "AADSTS90002" in await resp.text()


async def test_tenant_domain_name_resolves_to_its_tenant(idp: Any) -> None:
    code, _ = await idp.code(ADELE, tenant="contoso.example")
    assert code


async def test_plain_pkce_is_refused_through_the_redirect(idp: Any) -> None:
    resp = await idp.authorize(
        code_challenge="a" * 43, code_challenge_method="plain", **{"x-emulator-user": ADELE}
    )
    params = redirect_params(resp)
    assert params["error"] == "invalid_request"
    assert params["error_description"].startswith("AADSTS50149")
    assert params["state"] == "st-123"


async def test_short_code_challenge_is_refused(idp: Any) -> None:
    resp = await idp.authorize(code_challenge="abc", code_challenge_method="S256")
    assert redirect_params(resp)["error_description"].startswith("AADSTS501491")


async def test_unknown_scope_is_refused_650053(idp: Any) -> None:
    resp = await idp.authorize(scope="openid Files.Everything")
    params = redirect_params(resp)
    assert params["error"] == "invalid_client"
    assert "AADSTS650053" in params["error_description"]


async def test_response_type_token_is_unsupported(idp: Any) -> None:
    params = redirect_params(await idp.authorize(response_type="token"))
    assert params["error"] == "unsupported_response_type"


async def test_prompt_none_without_user_is_login_required(idp: Any) -> None:
    params = redirect_params(await idp.authorize(prompt="none"))
    assert params["error"] == "login_required"
    assert "AADSTS50058" in params["error_description"]


async def test_error_description_carries_trace_and_correlation(idp: Any) -> None:
    resp = await idp.client.get(
        "/common/oauth2/v2.0/authorize",
        params={
            "client_id": "5f1a0c7e-0b1d-4c4e-9f43-5a6d3e2b7c10",
            "redirect_uri": "http://localhost/callback",
            "response_type": "code",
        },
        headers={"client-request-id": "corr-42"},
        allow_redirects=False,
    )
    description = redirect_params(resp)["error_description"]
    assert description.startswith("AADSTS900144")
    assert "Trace ID: " in description
    assert "Correlation ID: corr-42" in description
    assert re.search(r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", description)


async def test_unknown_automation_user_is_50034(idp: Any) -> None:
    resp = await idp.authorize(**{"x-emulator-user": "nobody@contoso.example"})
    assert resp.status == 400
    assert "AADSTS50034" in await resp.text()


async def test_guid_authority_refuses_user_of_another_tenant(idp: Any) -> None:
    resp = await idp.authorize(PERSONAL_TENANT_ID, **{"x-emulator-user": ADELE})
    assert resp.status == 400
    assert "AADSTS50020" in await resp.text()


async def test_fragment_and_form_post_response_modes(idp: Any) -> None:
    frag = await idp.authorize(response_mode="fragment", **{"x-emulator-user": ADELE})
    assert frag.status == 302
    assert "#code=" in frag.headers["Location"]
    post = await idp.authorize(response_mode="form_post", **{"x-emulator-user": ADELE})
    fields = hidden_fields((await post.text()).replace('"', "'"))
    assert post.status == 200
    assert {"code", "state", "session_state"} <= set(fields)


async def test_preapproval_signs_in_login_hint_without_page(idp: Any) -> None:
    resp = await idp.client.post(
        "/_emulator/identity/preapprove",
        json={
            "userId": ADELE,
            "clientId": "5f1a0c7e-0b1d-4c4e-9f43-5a6d3e2b7c10",
            "scopes": ["Calendars.ReadWrite", "User.Read"],
        },
    )
    assert resp.status == 200
    assert redirect_params(await idp.authorize(login_hint=ADELE))["code"]
    # A wider request than what was pre-approved still needs the page.
    wider = await idp.authorize(login_hint=ADELE, scope="Calendars.ReadWrite.Shared openid")
    assert wider.status == 200
    assert "Permissions requested" in await wider.text()


async def test_app_audience_limits_account_types(idp: Any) -> None:
    resp = await idp.client.post(
        "/_emulator/identity/apps",
        json={
            "displayName": "Work only",
            "redirectUris": ["http://localhost/callback"],
            "signInAudience": "AzureADMultipleOrgs",
        },
    )
    client_id = (await resp.json())["clientId"]
    personal = await idp.authorize(client_id=client_id, **{"x-emulator-user": SAM})
    assert personal.status == 400
    assert "AADSTS50020" in await personal.text()
    work = await idp.authorize(client_id=client_id, **{"x-emulator-user": ADELE})
    assert redirect_params(work)["code"]
