"""Pure identity rules, without HTTP: scopes, authorities, the store's dump/load."""

from __future__ import annotations

import pytest

from msgraph_emulator.identity import scopes, tenants
from msgraph_emulator.identity.errors import IdentityError
from msgraph_emulator.identity.store import IdentityStore
from msgraph_emulator.users import PERSONAL_TENANT_ID, User, UserRegistry


def test_scopes_accept_graph_urls_and_any_case() -> None:
    parsed = scopes.parse(
        "https://graph.microsoft.com/Calendars.ReadWrite user.read OPENID offline_access", "c"
    )
    assert parsed == {"Calendars.ReadWrite", "User.Read", "openid", "offline_access"}
    assert scopes.resource_scopes(parsed) == {"Calendars.ReadWrite", "User.Read"}
    assert scopes.render(parsed) == "Calendars.ReadWrite User.Read openid offline_access"


def test_unknown_scope_is_650053() -> None:
    with pytest.raises(IdentityError) as info:
        scopes.parse("Sites.FullControl.All", "client-1")
    assert (info.value.error, info.value.code) == ("invalid_client", 650053)


def test_authorities_admit_the_right_accounts() -> None:
    users = UserRegistry()
    work = users.add(User("w", "t-1", "w@contoso.example", "W"))
    msa = users.add(User("p", PERSONAL_TENANT_ID, "p@outlook.example", "P"))
    admitted = {
        seg: {u.id for u in (work, msa) if tenants.resolve(seg, users).allows(u)}
        for seg in ("common", "organizations", "consumers", "t-1", "contoso.example")
    }
    assert admitted == {
        "common": {"w", "p"},
        "organizations": {"w"},
        "consumers": {"p"},
        "t-1": {"w"},
        "contoso.example": {"w"},
    }
    with pytest.raises(IdentityError) as info:
        tenants.resolve("outlook.example", users)  # personal domains are not tenants
    assert info.value.code == 90002


def test_store_dump_load_round_trip() -> None:
    store = IdentityStore()
    app = store.apps.register(display_name="A", redirect_uris=["http://localhost/cb"])
    store.grant_consent("u", app.client_id, {"User.Read"})
    token = store.issue_refresh_token(
        user_id="u", client_id=app.client_id, scopes=["User.Read"], auth_time=1.0, now=2.0
    )
    store.revoke_user("u", 3.0)
    copy = IdentityStore()
    copy.load(store.dump())
    assert copy.dump() == store.dump()
    assert copy.refresh_tokens[token.token].family_id == token.family_id
    assert copy.apps.get(app.client_id) is not None
    assert copy.age_user_tokens("u", 10) == 1
    assert copy.refresh_tokens[token.token].issued_at == 2.0 - 10 * 86_400
