"""Bearer-token checks shared by every Graph route."""

from __future__ import annotations

import pytest

from msgraph_emulator.graph.auth import SigningKey, decode_access_token, mint_access_token
from msgraph_emulator.graph.errors import GraphError


def test_token_round_trips_claims() -> None:
    key = SigningKey.generate()
    token = mint_access_token(
        key,
        issuer_base="https://localhost",
        user_id="u1",
        tenant_id="t1",
        client_id="c1",
        scopes=["Calendars.Read", "User.Read"],
        lifetime_s=60,
    )
    ctx = decode_access_token(key, token)
    assert (ctx.user_id, ctx.tenant_id, ctx.client_id) == ("u1", "t1", "c1")
    assert ctx.scopes == {"Calendars.Read", "User.Read"}


def test_expired_token_is_invalid_authentication_token() -> None:
    key = SigningKey.generate()
    token = mint_access_token(
        key,
        issuer_base="x",
        user_id="u",
        tenant_id="t",
        client_id="c",
        scopes=["User.Read"],
        lifetime_s=-120,
    )
    with pytest.raises(GraphError) as info:
        decode_access_token(key, token)
    assert (info.value.status, info.value.code) == (401, "InvalidAuthenticationToken")


def test_token_from_another_key_is_rejected() -> None:
    token = mint_access_token(
        SigningKey.generate(),
        issuer_base="x",
        user_id="u",
        tenant_id="t",
        client_id="c",
        scopes=["User.Read"],
        lifetime_s=60,
    )
    with pytest.raises(GraphError) as info:
        decode_access_token(SigningKey.generate(), token)
    assert info.value.status == 401
