"""Connecting Outlook end to end against the Graph emulator, real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from calsync_connector.entrypoints.keys import CONNECT
from calsync_connector.settings import ConnectorSettings

from .conftest import RETURN_URL, Harness

pytestmark = pytest.mark.integration


def outcome(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == RETURN_URL
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def sa() -> str:
    return f"sa-{uuid.uuid4().hex[:8]}"


async def db(settings: ConnectorSettings) -> asyncpg.Connection:
    return await asyncpg.connect(settings.dsn)


async def test_a_user_connects_outlook_and_the_connection_is_stored_sealed_and_published(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine-wide CA bundle must not replace the configured one (requests would let it).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    user = await harness.new_user()
    sub_account = sa()
    started = await harness.start(sub_account, "user-1")
    assert started["authorization_url"].startswith(harness.emulator.base_url)
    assert "code_challenge_method=S256" in started["authorization_url"]
    location = await harness.callback(
        await harness.consent(started["authorization_url"], user["userPrincipalName"])
    )
    result = outcome(location)
    assert result["status"] == "connected"
    connection_id = result["outlook_connection_id"]

    resp = await harness.get(sub_account, f"/{connection_id}")
    assert resp.status == 200
    assert resp.headers["ETag"] == '"v1"'
    body = await resp.json()
    assert body["status"] == "active"
    assert body["account"] == {
        "email": user["userPrincipalName"],
        "display_name": user["displayName"],
        "tenant_id": user["tenantId"],
        "object_id": user["id"],
        "kind": "work",
        "time_zone": "Europe/Bucharest",
    }
    default = body["default_calendar_id"]
    assert default is not None
    assert {c["id"]: c["access"] for c in body["calendars"]}[default] == "writer"
    assert body["settings"] == {
        "linked_calendar_id": default,
        "conflict_calendar_ids": [default],
        "sync_preference": "one_way",
        "blocking_show_as": ["busy"],
    }

    conn = await db(harness.settings)
    try:
        dump = await conn.fetchval(
            "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM token_caches) t"
        )
        flows = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM oauth_flows t")
    finally:
        await conn.close()
    snapshots = await harness.snapshots(connection_id)
    # The token cache and the PKCE verifier are stored, and only sealed.
    for secret_word in ("refresh_token", "access_token", "secret", "code_verifier"):
        assert secret_word not in dump
        assert secret_word not in flows
    assert snapshots, "no connection snapshot published"
    assert snapshots[-1].value is not None
    published = json.loads(snapshots[-1].value)
    assert published["status"] == "active"
    assert published["linked_calendar_id"] == default
    assert published["time_zone"] == "Europe/Bucharest"


async def test_cancel_replay_forgery_expiry_and_a_bad_code_each_end_clearly(
    harness: Harness,
) -> None:
    user = await harness.new_user()
    sub_account = sa()

    # The user pressed Cancel at Microsoft.
    started = await harness.start(sub_account, "user-1")
    fields = await harness.consent(
        started["authorization_url"], user["userPrincipalName"], **{"x-emulator-action": "cancel"}
    )
    assert outcome(await harness.callback(fields)) == {"error": "access_denied"}

    # A forged state: nothing to send the browser back to, a problem instead.
    resp = await harness.client.post("/oauth/callback", data={"state": "forged", "code": "x"})
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_oauth_state"
    assert resp.content_type == "application/problem+json"

    # A code that does not redeem.
    started = await harness.start(sub_account, "user-1")
    fields = await harness.consent(started["authorization_url"], user["userPrincipalName"])
    assert outcome(await harness.callback({**fields, "code": "tampered"})) == {
        "error": "code_redemption_failed"
    }

    # An expired sign-in.
    started = await harness.start(sub_account, "user-1")
    fields = await harness.consent(started["authorization_url"], user["userPrincipalName"])
    conn = await db(harness.settings)
    try:
        await conn.execute(
            "UPDATE oauth_flows SET expires_at = now() - interval '1 second' WHERE state = $1",
            fields["state"],
        )
    finally:
        await conn.close()
    assert outcome(await harness.callback(fields)) == {"error": "sign_in_expired"}

    # A good one, then its replay.
    started = await harness.start(sub_account, "user-1")
    fields = await harness.consent(started["authorization_url"], user["userPrincipalName"])
    assert outcome(await harness.callback(fields))["status"] == "connected"
    assert outcome(await harness.callback(fields)) == {"error": "sign_in_already_used"}

    listed = await (await harness.get(sub_account, "?user_id=user-1")).json()
    assert len(listed["connections"]) == 1


async def test_a_database_lost_while_storing_sends_the_browser_home_told_so(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sign-in is consumed and its code redeemed when the connection is stored: with the
    database lost at that moment the browser still goes back to the platform, with an error it
    can act on (start again), never a 500 or a page of JSON."""
    user = await harness.new_user()
    sub_account = sa()
    started = await harness.start(sub_account, "user-1")
    fields = await harness.consent(started["authorization_url"], user["userPrincipalName"])
    service = harness.client.app[CONNECT]  # type: ignore[union-attr]

    async def lost(*_: Any) -> None:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")

    monkeypatch.setattr(service, "store", lost)
    assert outcome(await harness.callback(fields)) == {"error": "temporarily_unavailable"}
    monkeypatch.undo()
    listed = await (await harness.get(sub_account, "?user_id=user-1")).json()
    assert listed["connections"] == []
    # Starting again works.
    started = await harness.start(sub_account, "user-1")
    fields = await harness.consent(started["authorization_url"], user["userPrincipalName"])
    assert outcome(await harness.callback(fields))["status"] == "connected"


async def test_return_url_must_be_on_the_allow_list(harness: Harness) -> None:
    sub_account = sa()
    resp = await harness.client.post(
        f"/v1/sub-accounts/{sub_account}/users/u/connections/outlook",
        json={"return_url": "https://evil.example/steal"},
        headers=harness.headers(sub_account),
    )
    assert resp.status == 422
    assert (await resp.json())["code"] == "return_url_not_allowed"


async def test_one_outlook_integration_per_user_and_one_sub_account_per_account(
    harness: Harness,
) -> None:
    first, second = await harness.new_user(), await harness.new_user()
    sub_a, sub_b = sa(), sa()
    connected = outcome(await harness.connect(sub_a, "alice", first["userPrincipalName"]))
    connection_id = connected["outlook_connection_id"]

    # Another Microsoft account for the same user in the same sub-account.
    assert outcome(await harness.connect(sub_a, "alice", second["userPrincipalName"])) == {
        "error": "outlook_already_connected"
    }
    # The same Microsoft account in another sub-account (which is not named).
    assert outcome(await harness.connect(sub_b, "bob", first["userPrincipalName"])) == {
        "error": "microsoft_account_in_use"
    }
    # The same account again for the same user: a repair that keeps the settings.
    body = await (await harness.get(sub_a, f"/{connection_id}")).json()
    resp = await harness.client.put(
        f"/v1/sub-accounts/{sub_a}/connections/{connection_id}/settings",
        json={**body["settings"], "sync_preference": "two_way"},
        headers=harness.headers(sub_a),
    )
    assert resp.status == 200, await resp.text()
    repaired = outcome(await harness.connect(sub_a, "alice", first["userPrincipalName"]))
    assert repaired["outlook_connection_id"] == connection_id
    after = await (await harness.get(sub_a, f"/{connection_id}")).json()
    assert after["settings"]["sync_preference"] == "two_way"
    assert after["version"] > body["version"]


@pytest.mark.parametrize("race", ["one-user-many-accounts", "one-account-many-sub-accounts"])
async def test_twenty_racing_callbacks_have_exactly_one_winner(harness: Harness, race: str) -> None:
    shared_user = await harness.new_user()
    forms: list[dict[str, str]] = []
    sub_accounts = [sa() for _ in range(20)]
    for n in range(20):
        if race == "one-user-many-accounts":
            upn = (await harness.new_user())["userPrincipalName"]
            started = await harness.start(sub_accounts[0], "carol")
        else:
            upn = shared_user["userPrincipalName"]
            started = await harness.start(sub_accounts[n], f"user-{n}")
        forms.append(await harness.consent(started["authorization_url"], upn))

    results = await asyncio.gather(*(harness.callback(f) for f in forms))
    outcomes = [outcome(r) for r in results]
    winners = [o for o in outcomes if o.get("status") == "connected"]
    losers = {o.get("error") for o in outcomes if "error" in o}
    assert len(winners) == 1
    expected = (
        "outlook_already_connected"
        if race == "one-user-many-accounts"
        else "microsoft_account_in_use"
    )
    assert losers == {expected}
    conn = await db(harness.settings)
    try:
        live = await conn.fetchval(
            "SELECT count(*) FROM connections WHERE status <> 'disconnected'"
        )
    finally:
        await conn.close()
    assert live == 1


def _unused(value: Any) -> None:  # keeps the import of Any honest for type-checkers
    del value
