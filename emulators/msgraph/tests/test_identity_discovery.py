"""Metadata endpoints: OpenID configuration per authority, JWKS, MSAL instance discovery."""

from __future__ import annotations

from typing import Any

import pytest

from msgraph_emulator.users import PERSONAL_TENANT_ID

CONTOSO = "2b7e1a4c-6d0f-4e53-9a8b-0c1d2e3f4a5b"


@pytest.mark.parametrize(
    ("segment", "issuer_tenant"),
    [
        ("common", "{tenantid}"),
        ("organizations", "{tenantid}"),
        ("consumers", PERSONAL_TENANT_ID),
        (CONTOSO, CONTOSO),
        ("contoso.example", CONTOSO),
        (PERSONAL_TENANT_ID, PERSONAL_TENANT_ID),
    ],
)
async def test_openid_configuration_per_authority(
    sandbox_client: Any, segment: str, issuer_tenant: str
) -> None:
    resp = await sandbox_client.get(f"/{segment}/v2.0/.well-known/openid-configuration")
    doc = await resp.json()
    base = str(sandbox_client.make_url("")).rstrip("/")
    assert resp.status == 200
    assert doc["issuer"] == f"{base}/{issuer_tenant}/v2.0"
    assert doc["authorization_endpoint"] == f"{base}/{segment}/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == f"{base}/{segment}/oauth2/v2.0/token"
    assert doc["jwks_uri"] == f"{base}/{segment}/discovery/v2.0/keys"
    assert "form_post" in doc["response_modes_supported"]


async def test_unknown_tenant_discovery_is_400_90002(sandbox_client: Any) -> None:
    resp = await sandbox_client.get("/fabrikam.invalid/v2.0/.well-known/openid-configuration")
    body = await resp.json()
    assert resp.status == 400
    assert body["error_codes"] == [90002]


async def test_jwks_publishes_the_signing_key(sandbox_client: Any) -> None:
    keys = (await (await sandbox_client.get("/common/discovery/v2.0/keys")).json())["keys"]
    [key] = keys
    assert (key["kty"], key["use"], key["e"]) == ("RSA", "sig", "AQAB")
    assert key["kid"]
    assert len(key["n"]) > 300  # a 2048-bit modulus


async def test_instance_discovery_answers_for_this_host_only(sandbox_client: Any) -> None:
    host = sandbox_client.make_url("").host
    base = str(sandbox_client.make_url("")).rstrip("/")
    ours = await sandbox_client.get(
        "/common/discovery/instance",
        params={
            "api-version": "1.1",
            "authorization_endpoint": f"{base}/organizations/oauth2/v2.0/authorize",
        },
    )
    body = await ours.json()
    assert body["tenant_discovery_endpoint"] == (
        f"{base}/organizations/v2.0/.well-known/openid-configuration"
    )
    assert body["metadata"][0]["aliases"] == [host]
    other = await sandbox_client.get(
        "/common/discovery/instance",
        params={"authorization_endpoint": "https://login.example.org/common/oauth2/authorize"},
    )
    assert other.status == 400
    assert (await other.json())["error"] == "invalid_instance"
