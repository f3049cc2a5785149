"""Golden tests: subscription and notification bodies have the keys and JSON types of Microsoft's
documented samples (``golden/README.md`` says where each comes from)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from .conftest import Webhook
from .test_events_golden import golden
from .test_notifications import EVENT, subscribe

Client = TestClient  # type: ignore[type-arg]

#: Documented type of properties the samples show as null (subscription resource docs).
NULLABLE = {
    "notificationQueryOptions": str,
    "lifecycleNotificationUrl": str,
    "includeResourceData": bool,
    "encryptionCertificate": str,
    "encryptionCertificateId": str,
    "notificationUrlAppId": str,
}
#: Documented optional keys the emulator sends and the sample omits (see golden/README.md).
OPTIONAL = {"id"}
#: Keys of a sample that v1.0 does not define (msgraph-sdk's v1.0 models reject them).
NOT_V1 = {"notificationContentType"}


def assert_like(
    ours: Any, sample: Any, path: str = "$", optional: frozenset[str] = frozenset()
) -> None:
    """Same keys (``optional`` ones may be extra) and the same JSON type at every key."""
    if sample is None:
        wanted = NULLABLE.get(path.rsplit(".", 1)[-1])
        assert wanted is not None, f"{path}: null in the sample but no documented type"
        assert ours is None or isinstance(ours, wanted), f"{path}: {ours!r}"
        return
    assert type(ours) is type(sample), f"{path}: {type(ours).__name__} != {type(sample).__name__}"
    if isinstance(sample, dict):
        theirs = set(sample) - NOT_V1
        extra, missing = set(ours) - theirs - optional, theirs - set(ours)
        assert not extra and not missing, f"{path}: extra {extra}, missing {missing}"
        for key, value in sample.items():
            if key in NOT_V1:
                continue
            assert_like(ours[key], value, f"{path}.{key}", optional)
    elif isinstance(sample, list):
        assert ours, f"{path}: empty"
        for item in ours:
            assert_like(item, sample[0], f"{path}[]", optional)


async def test_subscription_create_response_matches_the_docs_sample(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    sub = await subscribe(client, webhook, headers)
    assert_like(sub, golden("subscription_create_response.json"))
    assert sub["includeResourceData"] is None  # null unless requested, as in the sample


async def test_change_notification_collection_matches_the_docs_sample(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    user, headers = auth_headers()
    await subscribe(client, webhook, headers)
    created = await client.post("/v1.0/me/events", json=EVENT, headers=headers)
    event = await created.json()
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    body = next(p["body"] for p in webhook.posts if p["path"] == "hook")
    sample = golden("change_notification_collection.json")
    assert_like(body, sample, optional=frozenset(OPTIONAL))
    item, theirs = body["value"][0], sample["value"][0]
    # Same shape of values, for an event instead of the sample's message.
    assert item["resource"] == f"Users/{user.id}/Events/{event['id']}"
    assert theirs["resource"].split("/")[2] == "Messages"
    assert item["resourceData"]["@odata.type"] == theirs["resourceData"]["@odata.type"].replace(
        "Message", "Event"
    )
    assert item["resourceData"]["@odata.etag"].startswith('W/"')
    assert theirs["resourceData"]["@odata.etag"].startswith('W/"')


async def test_lifecycle_notification_matches_the_docs_sample(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    sub = await subscribe(client, webhook, headers)
    assert (await client.post(f"/_emulator/subscriptions/{sub['id']}/missed")).status == 202
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 1)
    body = next(p["body"] for p in webhook.posts if p["path"] == "lifecycle")
    sample = golden("lifecycle_notification.json")
    assert_like(body, sample)
    assert body["value"][0]["lifecycleEvent"] in sample["value"][0]["lifecycleEvent"].split(" or ")
