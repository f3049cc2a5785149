"""``/v1.0/subscriptions``: creation rules, validation handshake, renewal, deletion."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient

from msgraph_emulator.state import EmulatorState

from .conftest import Webhook

Client = TestClient  # type: ignore[type-arg]


def in_minutes(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def body(hook: Webhook, **overrides: Any) -> dict[str, Any]:
    return {
        "changeType": "created,updated,deleted",
        "notificationUrl": hook.url("/hook?tenant=contoso"),
        "lifecycleNotificationUrl": hook.url("/lifecycle"),
        "resource": "/me/events",
        "expirationDateTime": in_minutes(60),
        "clientState": "secret-state",
        **overrides,
    }


async def test_create_returns_201_with_documented_fields(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    user, headers = auth_headers(client_id="app-1")
    resp = await client.post("/v1.0/subscriptions", json=body(webhook), headers=headers)
    assert resp.status == 201
    sub = await resp.json()
    assert set(sub) == {
        "@odata.context", "id", "resource", "applicationId", "changeType", "clientState",
        "notificationUrl", "notificationQueryOptions", "lifecycleNotificationUrl",
        "expirationDateTime", "creatorId", "includeResourceData", "latestSupportedTlsVersion",
        "encryptionCertificate", "encryptionCertificateId", "notificationUrlAppId",
    }  # fmt: skip
    assert sub["@odata.context"].endswith("/v1.0/$metadata#subscriptions/$entity")
    assert (sub["applicationId"], sub["creatorId"]) == ("app-1", user.id)
    assert sub["changeType"] == "created,updated,deleted"
    assert sub["latestSupportedTlsVersion"] == "v1_2"
    assert sub["expirationDateTime"].endswith("Z")
    assert len(sub["expirationDateTime"]) == 28
    # Both URLs were validated, each with its own request, with the documented content type.
    assert [v[0] for v in webhook.validations] == ["hook", "lifecycle"]
    assert all(v[2] == "text/plain; charset=utf-8" for v in webhook.validations)
    assert " " in webhook.validations[0][1]  # the token is decoded text, not an encoded blob


async def test_validation_failure_is_400_validation_error(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    for path in ("/wrong-echo", "/refuse"):
        resp = await client.post(
            "/v1.0/subscriptions",
            json=body(webhook, notificationUrl=webhook.url(path)),
            headers=headers,
        )
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert error["code"] == "ValidationError"
        assert error["message"].startswith("Subscription validation request failed.")


async def test_lifecycle_url_is_validated_too(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    payload = body(webhook, lifecycleNotificationUrl=webhook.url("/refuse"))
    resp = await client.post("/v1.0/subscriptions", json=payload, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "ValidationError"


async def test_unreachable_endpoint_fails_validation(
    client: Client, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    _, headers = auth_headers()
    payload = {
        "changeType": "created", "notificationUrl": "http://127.0.0.1:9/hook",
        "resource": "me/events", "expirationDateTime": in_minutes(30),
    }  # fmt: skip
    resp = await client.post("/v1.0/subscriptions", json=payload, headers=headers)
    assert resp.status == 400
    assert state.subscriptions.deliveries.attempts[-1].kind == "validation"


async def test_expiration_rules(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    too_far = await client.post(
        "/v1.0/subscriptions",
        json=body(webhook, expirationDateTime=in_minutes(4231)),
        headers=headers,
    )
    assert too_far.status == 400
    assert (await too_far.json())["error"] == {
        **(await too_far.json())["error"],
        "code": "ExtensionError",
        "message": "Subscription expiration can only be 4230 minutes in the future.",
    }
    past = await client.post(
        "/v1.0/subscriptions",
        json=body(webhook, expirationDateTime=in_minutes(-1)),
        headers=headers,
    )
    assert past.status == 400
    missing = body(webhook)
    del missing["expirationDateTime"]
    resp = await client.post("/v1.0/subscriptions", json=missing, headers=headers)
    assert (await resp.json())["error"]["message"] == (
        "expirationDateTime is a required property for subscription creation."
    )
    ok = await client.post(
        "/v1.0/subscriptions",
        json=body(webhook, expirationDateTime=in_minutes(4229)),
        headers=headers,
    )
    assert ok.status == 201


async def test_field_rules(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    user, headers = auth_headers()
    cases = [
        {"changeType": "created,moved"},
        {"clientState": "x" * 129},
        {"notificationUrl": "http://example.com/hook"},  # plain HTTP only to loopback
        {"resource": "/me/events/AAMkAGI2TG93AAA="},  # a single event is not supported
        {"resource": "/me/messages"},
        {"latestSupportedTlsVersion": "v2_0"},
    ]
    for override in cases:
        resp = await client.post(
            "/v1.0/subscriptions", json=body(webhook, **override), headers=headers
        )
        assert resp.status == 400, override
        assert (await resp.json())["error"]["code"] in {"InvalidRequest", "ExtensionError"}
    for resource in (
        "me/events", f"users/{user.id}/events", "/me/calendars/AAMkCal=/events",
        f"users/{user.user_principal_name}/calendars/AAMkCal=/events",
    ):  # fmt: skip
        resp = await client.post(
            "/v1.0/subscriptions", json=body(webhook, resource=resource), headers=headers
        )
        assert resp.status == 201, resource
        assert (await resp.json())["resource"] == resource


async def test_delegated_token_cannot_watch_another_mailbox(
    client: Client,
    webhook: Webhook,
    auth_headers: Callable[..., Any],
    make_user: Callable[..., Any],
) -> None:
    other = make_user()
    _, headers = auth_headers()
    resp = await client.post(
        "/v1.0/subscriptions",
        json=body(webhook, resource=f"users/{other.id}/events"),
        headers=headers,
    )
    assert resp.status == 403


async def test_scopes_required(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers(scopes=["User.Read"])
    resp = await client.post("/v1.0/subscriptions", json=body(webhook), headers=headers)
    assert resp.status == 403
    resp = await client.post("/v1.0/subscriptions", json=body(webhook))
    assert resp.status == 401


async def test_list_get_renew_reauthorize_delete(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    user, headers = auth_headers(client_id="app-a")
    _, other_app = auth_headers(user, client_id="app-b")
    created = await (
        await client.post("/v1.0/subscriptions", json=body(webhook), headers=headers)
    ).json()
    sid = created["id"]
    listed = await (await client.get("/v1.0/subscriptions", headers=headers)).json()
    assert [s["id"] for s in listed["value"]] == [sid]
    assert (await (await client.get("/v1.0/subscriptions", headers=other_app)).json())[
        "value"
    ] == []
    assert (await client.get(f"/v1.0/subscriptions/{sid}", headers=other_app)).status == 404

    new_exp = in_minutes(3000)
    renewed = await client.patch(
        f"/v1.0/subscriptions/{sid}", json={"expirationDateTime": new_exp}, headers=headers
    )
    assert renewed.status == 200
    assert (await renewed.json())["expirationDateTime"][:19] == new_exp[:19]
    too_far = await client.patch(
        f"/v1.0/subscriptions/{sid}",
        json={"expirationDateTime": in_minutes(5000)},
        headers=headers,
    )
    assert too_far.status == 400
    empty = await client.patch(f"/v1.0/subscriptions/{sid}", json={}, headers=headers)
    assert empty.status == 400
    assert (
        await client.post(f"/v1.0/subscriptions/{sid}/reauthorize", headers=headers)
    ).status == 204

    assert (await client.delete(f"/v1.0/subscriptions/{sid}", headers=headers)).status == 204
    gone = await client.patch(
        f"/v1.0/subscriptions/{sid}", json={"expirationDateTime": new_exp}, headers=headers
    )
    assert gone.status == 404
    assert (await gone.json())["error"]["code"] == "ResourceNotFound"


async def test_expired_subscriptions_are_deleted_by_the_sweep(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    _, headers = auth_headers()
    created = await (
        await client.post("/v1.0/subscriptions", json=body(webhook), headers=headers)
    ).json()
    state.subscriptions.clock = lambda: datetime.now(UTC) + timedelta(minutes=61)
    swept = await (await client.post("/_emulator/subscriptions/sweep")).json()
    assert swept["expired"] == [created["id"]]
    resp = await client.get(f"/v1.0/subscriptions/{created['id']}", headers=headers)
    assert resp.status == 404


async def test_state_dump_and_load_round_trip(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    _, headers = auth_headers()
    await client.post("/v1.0/subscriptions", json=body(webhook), headers=headers)
    dumped = state.subscriptions.dump()
    state.subscriptions.reset()
    assert state.subscriptions.by_id == {}
    state.subscriptions.load(dumped)
    assert state.subscriptions.dump() == dumped


def test_validation_token_is_url_encoded_in_the_query() -> None:
    from yarl import URL

    from msgraph_emulator.graph.subscriptions_validation import new_validation_token

    token = new_validation_token()
    url = URL("https://h/hook?a=1").extend_query(validationToken=token)
    assert url.query["a"] == "1"
    assert url.query["validationToken"] == token
    assert quote(":") not in token
