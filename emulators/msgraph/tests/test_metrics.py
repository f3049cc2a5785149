"""``GET /metrics``: Prometheus text with Graph request and notification counters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from msgraph_emulator.state import EmulatorState

from .conftest import Webhook, wait_until
from .test_notifications import EVENT, subscribe

Client = TestClient  # type: ignore[type-arg]


async def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_graph_requests_are_counted_by_method_and_status(
    client: Client, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    assert (await client.get("/v1.0/me", headers=headers)).status == 200
    assert (await client.get("/v1.0/me", headers=headers)).status == 200
    assert (await client.get("/v1.0/me")).status == 401
    assert (await client.get("/v1.0/me/events/not-an-id", headers=headers)).status in (400, 404)
    await client.get("/_emulator/users")  # not Graph: not counted
    metrics = await scrape(client)
    graph = {
        labels: value
        for (name, labels), value in metrics.items()
        if name == "msgraph_emulator_graph_requests_total"
    }
    assert graph[(("method", "GET"), ("status", "200"))] == 2
    assert graph[(("method", "GET"), ("status", "401"))] == 1
    assert sum(graph.values()) == 4
    assert ("process_cpu_seconds_total", ()) in metrics  # process collector, as elsewhere


async def test_notifications_delivered_failed_and_dropped(
    client: Client,
    webhook: Webhook,
    auth_headers: Callable[..., Any],
    fast_delivery: EmulatorState,
) -> None:
    state = fast_delivery
    user, headers = auth_headers()
    sub = await subscribe(client, webhook, headers)
    assert (await client.post("/v1.0/me/events", json=EVENT, headers=headers)).status == 201
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    await client.post(f"/_emulator/subscriptions/{sub['id']}/missed")
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 1)

    # One failing POST with no retry window left: the item is dropped.
    state.settings.notification_retry_for_s = 0
    webhook.fail_next = 1
    base = f"/_emulator/users/{user.id}/calendars/default/events"
    assert (await client.post(base, json=EVENT)).status == 201
    await wait_until(state, lambda: state.subscriptions.deliveries.dropped_count == 1)

    metrics = await scrape(client)
    emu = "msgraph_emulator"
    assert metrics[(f"{emu}_notifications_delivered_total", (("kind", "change"),))] == 1
    assert metrics[(f"{emu}_notifications_delivered_total", (("kind", "lifecycle"),))] == 1
    assert metrics[(f"{emu}_notification_posts_failed_total", (("kind", "change"),))] == 1
    assert metrics[(f"{emu}_notifications_dropped_total", ())] == 1
    assert metrics[(f"{emu}_notifications_lost_total", ())] == 0
    assert metrics[(f"{emu}_subscriptions", ())] == 1
    created = (("method", "POST"), ("status", "201"))  # the subscription and the event
    assert metrics[(f"{emu}_graph_requests_total", created)] == 2


async def test_token_requests_are_counted(idp: Any) -> None:
    await idp.tokens("adele.vance@contoso.example")
    assert (await idp.refresh("not-a-refresh-token")).status == 400
    metrics = await scrape(idp.client)
    assert metrics[("msgraph_emulator_token_requests_total", (("status", "200"),))] == 1
    assert metrics[("msgraph_emulator_token_requests_total", (("status", "400"),))] == 1
