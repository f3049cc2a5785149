"""Calendar settings, tenancy and disconnection over the HTTP API (real stack, Graph emulator)."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from .conftest import Harness

pytestmark = pytest.mark.integration


async def connected(harness: Harness, *, shared_read_only: bool = False) -> tuple[str, str, Any]:
    """A new sandbox user connected in a new sub-account: (sub-account, connection id, user)."""
    user = await harness.new_user()
    if shared_read_only:
        await harness.control(
            "POST",
            f"/_emulator/users/{user['id']}/calendars",
            {
                "name": "Team (read only)",
                "access": "read",
                "owner": {"name": "Team Lead", "address": "lead@fabrikam.example"},
            },
        )
    sub_account = f"sa-{uuid.uuid4().hex[:8]}"
    location = await harness.connect(sub_account, "user-1", user["userPrincipalName"])
    query = parse_qs(urlsplit(location).query)
    return sub_account, query["outlook_connection_id"][0], user


async def put_settings(
    harness: Harness, sub_account: str, connection_id: str, body: Any, **headers: str
) -> Any:
    return await harness.client.put(
        f"/v1/sub-accounts/{sub_account}/connections/{connection_id}/settings",
        json=body,
        headers={**harness.headers(sub_account), **headers},
    )


async def test_settings_follow_the_product_rules(harness: Harness) -> None:
    sub_account, connection_id, _ = await connected(harness, shared_read_only=True)
    body = await (await harness.get(sub_account, f"/{connection_id}")).json()
    by_name = {c["name"]: c for c in body["calendars"]}
    read_only = by_name["Team (read only)"]
    assert read_only["access"] == "reader"
    assert read_only["owner"] == {"name": "Team Lead", "address": "lead@fabrikam.example"}
    default = body["default_calendar_id"]

    resp = await put_settings(
        harness, sub_account, connection_id, {"linked_calendar_id": read_only["id"]}
    )
    assert resp.status == 422
    assert (await resp.json())["code"] == "linked_calendar_requires_write_access"

    resp = await put_settings(
        harness, sub_account, connection_id, {"conflict_calendar_ids": ["AAMk-nope"]}
    )
    assert resp.status == 422
    assert (await resp.json())["code"] == "unknown_calendar"

    resp = await put_settings(
        harness, sub_account, connection_id, {"linked_calendar_id": default, "colour": "red"}
    )
    assert resp.status == 422
    problem = await resp.json()
    assert problem["code"] == "invalid_request"
    assert problem["errors"][0]["field"] == "colour"

    # The Linked Calendar is also a Conflict Calendar: added when missing, and said so.
    resp = await put_settings(
        harness,
        sub_account,
        connection_id,
        {
            "linked_calendar_id": default,
            "conflict_calendar_ids": [read_only["id"]],
            "sync_preference": "two_way",
            "blocking_show_as": ["busy", "oof"],
        },
        **{"If-Match": '"v1"'},
    )
    assert resp.status == 200, await resp.text()
    changed = await resp.json()
    assert changed["notes"] == ["linked_calendar_added_to_conflict_calendars"]
    assert changed["settings"]["conflict_calendar_ids"] == [default, read_only["id"]]
    assert resp.headers["ETag"] == '"v2"'

    # A write based on what was read before that change is stale.
    resp = await put_settings(
        harness, sub_account, connection_id, {"linked_calendar_id": None}, **{"If-Match": '"v1"'}
    )
    assert resp.status == 412
    assert (await resp.json())["code"] == "precondition_failed"

    rows = await harness.snapshots(connection_id)
    snapshots = [json.loads(r.value or b"null") for r in rows]
    assert [s["version"] for s in snapshots] == [1, 2]
    assert [r.sequence for r in rows] == [1, 2]
    assert snapshots[-1]["sync_preference"] == "two_way"
    assert snapshots[-1]["blocking_show_as"] == ["busy", "oof"]


async def test_no_answer_reveals_another_sub_accounts_connection(harness: Harness) -> None:
    sub_a, connection_a, _ = await connected(harness)
    sub_b, _, _ = await connected(harness)

    # A token for B on A's path: forbidden, whatever the id.
    resp = await harness.client.get(
        f"/v1/sub-accounts/{sub_a}/connections/{connection_a}", headers=harness.headers(sub_b)
    )
    assert resp.status == 403
    # B's own path with A's id: the id does not exist there.
    resp = await harness.get(sub_b, f"/{connection_a}")
    assert resp.status == 404
    assert (await resp.json())["code"] == "connection_not_found"
    resp = await harness.get(sub_b, "/not-a-uuid")
    assert resp.status == 404
    listed = await (await harness.get(sub_b)).json()
    assert connection_a not in {c["id"] for c in listed["connections"]}
    # No token at all.
    resp = await harness.client.get(f"/v1/sub-accounts/{sub_a}/connections")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # A platform service may act on any sub-account.
    resp = await harness.client.get(
        f"/v1/sub-accounts/{sub_a}/connections/{connection_a}",
        headers=harness.service_headers("platform"),
    )
    assert resp.status == 200


async def test_disconnecting_destroys_the_tokens_and_publishes_it(harness: Harness) -> None:
    sub_account, connection_id, _ = await connected(harness)
    path = f"/v1/sub-accounts/{sub_account}/connections/{connection_id}"
    resp = await harness.client.delete(path, headers=harness.headers(sub_account))
    assert resp.status == 200
    assert (await resp.json())["status"] == "disconnected"
    again = await harness.client.delete(path, headers=harness.headers(sub_account))
    assert again.status == 200  # idempotent

    token = await harness.client.post(
        f"/internal/v1/connections/{connection_id}/access-token",
        headers=harness.service_headers("sync-worker"),
    )
    assert token.status == 409
    assert (await token.json())["code"] == "connection_disconnected"
    conn = await asyncpg.connect(harness.settings.dsn)
    try:
        caches = await conn.fetchval(
            "SELECT count(*) FROM token_caches WHERE connection_id = $1", uuid.UUID(connection_id)
        )
    finally:
        await conn.close()
    assert caches == 0
    last = (await harness.snapshots(connection_id))[-1].value
    assert last is not None
    assert json.loads(last)["status"] == "disconnected"


async def test_a_refresh_reports_vanished_calendars_and_a_linked_calendar_gone_read_only(
    harness: Harness,
) -> None:
    user = await harness.new_user()
    shared = await harness.control(
        "POST",
        f"/_emulator/users/{user['id']}/calendars",
        {
            "name": "Clinic",
            "access": "write",
            "owner": {"name": "Clinic", "address": "c@x.example"},
        },
    )
    extra = await harness.control(
        "POST", f"/_emulator/users/{user['id']}/calendars", {"name": "Side", "access": "owner"}
    )
    sub_account = f"sa-{uuid.uuid4().hex[:8]}"
    location = await harness.connect(sub_account, "user-1", user["userPrincipalName"])
    connection_id = parse_qs(urlsplit(location).query)["outlook_connection_id"][0]
    resp = await put_settings(
        harness,
        sub_account,
        connection_id,
        {"linked_calendar_id": shared["id"], "conflict_calendar_ids": [extra["id"]]},
    )
    assert resp.status == 200, await resp.text()

    await harness.control(
        "PATCH", f"/_emulator/users/{user['id']}/calendars/{shared['id']}", {"access": "read"}
    )
    await harness.control("DELETE", f"/_emulator/users/{user['id']}/calendars/{extra['id']}")
    resp = await harness.client.post(
        f"/v1/sub-accounts/{sub_account}/connections/{connection_id}/calendars:refresh",
        headers=harness.headers(sub_account),
    )
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["vanished_calendar_ids"] == [extra["id"]]
    assert report["lost_write_access_calendar_ids"] == [shared["id"]]
    after = report["connection"]
    assert after["settings"]["linked_calendar_id"] == shared["id"]  # the choice stays visible
    assert after["settings"]["conflict_calendar_ids"] == [shared["id"]]
    assert {"code": "linked_calendar_not_writable", "calendar_id": shared["id"]} in after[
        "warnings"
    ]
    last = (await harness.snapshots(connection_id))[-1].value
    assert last is not None
    snapshot = json.loads(last)
    assert snapshot["linked_calendar_id"] is None  # nothing is written to it any more
    assert snapshot["conflict_calendar_ids"] == [shared["id"]]  # its events still block

    # Write access back: the warning goes, and bookings go there again.
    await harness.control(
        "PATCH", f"/_emulator/users/{user['id']}/calendars/{shared['id']}", {"access": "write"}
    )
    resp = await harness.client.post(
        f"/v1/sub-accounts/{sub_account}/connections/{connection_id}/calendars:refresh",
        headers=harness.headers(sub_account),
    )
    healed = (await resp.json())["connection"]
    assert healed["warnings"] == []
