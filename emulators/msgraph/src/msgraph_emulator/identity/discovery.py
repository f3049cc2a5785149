"""Metadata documents: OpenID configuration, JWKS, and MSAL's instance discovery."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from jwt.algorithms import RSAAlgorithm

from msgraph_emulator.graph.auth import SigningKey
from msgraph_emulator.identity.tenants import Authority


def openid_configuration(base_url: str, authority: Authority) -> dict[str, Any]:
    """Entra's v2.0 document; endpoints keep the segment the client used (``common`` etc.)."""
    root = f"{base_url}/{authority.segment}"
    host = urlsplit(base_url).netloc
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base_url}/{authority.issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base_url}/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "oid",
        ],
        "tenant_region_scope": None,
        "cloud_instance_name": "emulator.local",
        "cloud_graph_host_name": host,
        "msgraph_host": host,
    }


def jwks(key: SigningKey, base_url: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.private_key.public_key()))
    jwk.update({"use": "sig", "kid": key.kid, "issuer": f"{base_url}/{{tenantid}}/v2.0"})
    return {"keys": [jwk]}


def instance_discovery(base_url: str, authorization_endpoint: str | None) -> dict[str, Any]:
    """``/common/discovery/instance``: tells MSAL where the tenant's OIDC document is.

    Only authorities on this emulator are "known"; anything else is ``invalid_instance`` as
    Entra answers for a host it does not serve.
    """
    ours = urlsplit(base_url)
    asked = urlsplit(authorization_endpoint or "")
    if asked.hostname != ours.hostname:
        return {
            "error": "invalid_instance",
            "error_description": "AADSTS50049: Unknown or invalid instance.",
            "error_codes": [50049],
        }
    tenant = asked.path.strip("/").split("/")[0] or "common"
    host = ours.hostname or "localhost"
    return {
        "tenant_discovery_endpoint": f"{base_url}/{tenant}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }
