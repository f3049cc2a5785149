"""The token endpoint over HTTP: codes, PKCE, client auth, refresh rotation and revocation."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from msgraph_emulator.app import init_app
from msgraph_emulator.settings import EmulatorSettings

ADELE = "adele.vance@contoso.example"
ADELE_ID = "6e0b9f52-3c4d-4a8e-b1f2-7a9c0d1e2f31"
SAM = "sam.personal@outlook.example"
CONTOSO = "2b7e1a4c-6d0f-4e53-9a8b-0c1d2e3f4a5b"
APP_ID = "5f1a0c7e-0b1d-4c4e-9f43-5a6d3e2b7c10"
ERROR_KEYS = {
    "error",
    "error_description",
    "error_codes",
    "timestamp",
    "trace_id",
    "correlation_id",
    "error_uri",
}


async def error_of(resp: Any, status: int = 400) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert set(body) >= ERROR_KEYS
    assert body["error_description"].startswith(f"AADSTS{body['error_codes'][0]}: ")
    assert resp.headers["Cache-Control"].startswith("no-store")
    return body


async def test_code_redemption_returns_entra_shaped_tokens(idp: Any) -> None:
    body = await idp.tokens(ADELE, nonce="n-0S6")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3600
    assert body["scope"] == "Calendars.ReadWrite User.Read openid profile offline_access"
    assert body["refresh_token"].startswith("0.EMU.")
    info = json.loads(base64.urlsafe_b64decode(body["client_info"] + "=="))
    assert info == {"uid": ADELE_ID, "utid": CONTOSO}
    me = await idp.client.get(
        "/v1.0/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert (await me.json())["id"] == ADELE_ID


async def test_id_token_verifies_against_jwks_with_entra_claims(idp: Any) -> None:
    body = await idp.tokens(ADELE, nonce="n-0S6")
    base = str(idp.client.make_url("")).rstrip("/")
    config = await (await idp.client.get("/common/v2.0/.well-known/openid-configuration")).json()
    keys = await (await idp.client.get("/common/discovery/v2.0/keys")).json()
    header = jwt.get_unverified_header(body["id_token"])
    [jwk] = [k for k in keys["keys"] if k["kid"] == header["kid"]]
    claims = jwt.decode(
        body["id_token"],
        jwt.PyJWK(jwk).key,
        algorithms=config["id_token_signing_alg_values_supported"],
        audience=APP_ID,
        issuer=config["issuer"].replace("{tenantid}", CONTOSO),
    )
    assert claims["iss"] == f"{base}/{CONTOSO}/v2.0"
    assert (claims["oid"], claims["tid"], claims["ver"]) == (ADELE_ID, CONTOSO, "2.0")
    assert claims["nonce"] == "n-0S6"
    assert claims["preferred_username"] == ADELE
    assert claims["name"] == "Adele Vance"
    assert claims["sub"] != ADELE_ID  # pairwise, not the object id
    assert claims["nbf"] <= claims["iat"] < claims["exp"]


async def test_sub_is_pairwise_per_application(idp: Any) -> None:
    reg = await (
        await idp.client.post(
            "/_emulator/identity/apps",
            json={"displayName": "Other", "redirectUris": ["http://localhost/callback"]},
        )
    ).json()
    first = jwt.decode((await idp.tokens(ADELE))["id_token"], options={"verify_signature": False})
    code, verifier = await idp.code(ADELE, client_id=reg["clientId"])
    other = await idp.redeem(
        code, verifier, client_id=reg["clientId"], client_secret=reg["clientSecret"]
    )
    second = jwt.decode((await other.json())["id_token"], options={"verify_signature": False})
    assert first["oid"] == second["oid"]
    assert first["sub"] != second["sub"]


async def test_code_is_single_use_54005(idp: Any) -> None:
    code, verifier = await idp.code(ADELE)
    assert (await idp.redeem(code, verifier)).status == 200
    body = await error_of(await idp.redeem(code, verifier))
    assert (body["error"], body["error_codes"]) == ("invalid_grant", [54005])


async def test_wrong_pkce_verifier_is_501481(idp: Any) -> None:
    code, _ = await idp.code(ADELE)
    body = await error_of(await idp.redeem(code, "x" * 43))
    assert (body["error"], body["error_codes"]) == ("invalid_grant", [501481])
    missing = await error_of(await idp.redeem(code, ""))
    assert missing["error_codes"] == [501481]


async def test_redirect_uri_must_match_the_one_of_the_code(idp: Any) -> None:
    code, verifier = await idp.code(ADELE)
    resp = await idp.token(
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri="http://localhost:8081/oauth/callback",
    )
    assert (await error_of(resp))["error_codes"] == [500112]


async def test_wrong_secret_is_401_7000215(idp: Any) -> None:
    code, verifier = await idp.code(ADELE)
    body = await error_of(await idp.redeem(code, verifier, client_secret="nope"), status=401)
    assert (body["error"], body["error_codes"]) == ("invalid_client", [7000215])


async def test_missing_secret_is_401_7000218(idp: Any) -> None:
    resp = await idp.client.post(
        "/common/oauth2/v2.0/token",
        data={"client_id": APP_ID, "grant_type": "authorization_code", "code": "x"},
    )
    assert (await error_of(resp, status=401))["error_codes"] == [7000218]


async def test_unknown_client_is_700016(idp: Any) -> None:
    resp = await idp.token(client_id="00000000-0000-0000-0000-000000000001", grant_type="x")
    body = await error_of(resp)
    assert (body["error"], body["error_codes"]) == ("unauthorized_client", [700016])


async def test_client_secret_basic_is_accepted(idp: Any) -> None:
    code, verifier = await idp.code(ADELE)
    secret = "sandbox-secret~not-a-real-credential-0123456789"
    basic = base64.b64encode(f"{APP_ID}:{secret}".encode()).decode()
    resp = await idp.client.post(
        "/common/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": "http://localhost/callback",
        },
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status == 200, await resp.text()
    assert "access_token" in await resp.json()


async def test_unsupported_and_missing_grant_type(idp: Any) -> None:
    assert (await error_of(await idp.token(grant_type="password")))["error_codes"] == [70003]
    assert (await error_of(await idp.token()))["error_codes"] == [900144]


async def test_error_body_carries_correlation_id_and_error_uri(idp: Any) -> None:
    resp = await idp.client.post(
        "/common/oauth2/v2.0/token",
        data={"client_id": APP_ID, "client_secret": "bad", "grant_type": "refresh_token"},
        headers={"client-request-id": "corr-7"},
    )
    body = await error_of(resp, status=401)
    assert body["correlation_id"] == "corr-7"
    assert "Correlation ID: corr-7" in body["error_description"]
    assert f"Trace ID: {body['trace_id']}" in body["error_description"]
    assert body["error_uri"].endswith("/error?code=7000215")


@pytest.fixture
async def short_codes(tmp_path: Any) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    settings = EmulatorSettings(data_dir=tmp_path, auth_code_lifetime_s=0)
    async with TestClient(TestServer(init_app(settings))) as c:
        yield c


async def test_expired_code_is_70008(short_codes: Any, identity_driver: Any) -> None:
    idp = identity_driver(short_codes)
    code, verifier = await idp.code(ADELE)
    body = await error_of(await idp.redeem(code, verifier))
    assert (body["error"], body["error_codes"]) == ("invalid_grant", [70008])


async def test_refresh_rotates_and_old_token_stays_valid(idp: Any) -> None:
    first = (await idp.tokens(ADELE))["refresh_token"]
    resp = await idp.refresh(first, scope="User.Read openid offline_access", client_info="1")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["refresh_token"] != first
    assert body["scope"] == "User.Read openid offline_access"
    assert "id_token" in body
    assert "client_info" in body
    assert (await idp.refresh(first)).status == 200  # Entra does not revoke the old one


async def test_refresh_with_never_consented_scope_is_65001(idp: Any) -> None:
    rt = (await idp.tokens(ADELE))["refresh_token"]
    body = await error_of(await idp.refresh(rt, scope="Calendars.ReadWrite.Shared openid"))
    assert (body["error"], body["error_codes"], body["suberror"]) == (
        "invalid_grant",
        [65001],
        "consent_required",
    )


async def test_revoked_sessions_break_refresh_but_not_access_tokens(idp: Any) -> None:
    tokens = await idp.tokens(ADELE)
    assert (await idp.client.post(f"/_emulator/users/{ADELE}/revoke-sessions")).status == 200
    body = await error_of(await idp.refresh(tokens["refresh_token"]))
    assert (body["error"], body["error_codes"]) == ("invalid_grant", [50173])
    me = await idp.client.get(
        "/v1.0/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status == 200  # access tokens live until they expire
    fresh = await idp.tokens(ADELE)  # signing in again works
    assert (await idp.refresh(fresh["refresh_token"])).status == 200


async def test_revoking_one_family_leaves_other_sign_ins(idp: Any) -> None:
    one, two = (
        (await idp.tokens(ADELE))["refresh_token"],
        (await idp.tokens(ADELE))["refresh_token"],
    )
    rotated = (await (await idp.refresh(one)).json())["refresh_token"]
    resp = await idp.client.post(
        "/_emulator/identity/refresh-tokens/revoke", json={"refreshToken": one}
    )
    assert resp.status == 200
    assert (await error_of(await idp.refresh(rotated)))["error_codes"] == [50173]
    assert (await idp.refresh(two)).status == 200


async def test_aged_refresh_token_is_700082(idp: Any) -> None:
    rt = (await idp.tokens(SAM, tenant="consumers"))["refresh_token"]
    aged = await idp.client.post(f"/_emulator/users/{SAM}/age-refresh-tokens", json={})
    assert (await aged.json())["aged"] >= 1
    body = await error_of(await idp.refresh(rt, tenant="consumers"))
    assert (body["error"], body["error_codes"]) == ("invalid_grant", [700082])
    assert "inactive for 91.00:00:00" in body["error_description"]


async def test_withdrawn_consent_is_65001(idp: Any) -> None:
    rt = (await idp.tokens(ADELE))["refresh_token"]
    resp = await idp.client.delete(f"/_emulator/users/{ADELE_ID}/consents/{APP_ID}")
    assert (await resp.json()) == {"withdrawn": 1, "reauthorizationRequired": []}
    body = await error_of(await idp.refresh(rt))
    assert (body["error_codes"], body["suberror"]) == ([65001], "consent_required")


async def test_token_endpoint_authority_refuses_other_account_type(idp: Any) -> None:
    rt = (await idp.tokens(SAM))["refresh_token"]
    assert (await error_of(await idp.refresh(rt, tenant="organizations")))["error_codes"] == [50020]
