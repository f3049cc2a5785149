"""The sync-worker's Graph client: tokens from the connector, Outlook's limits, Retry-After,
retries, typed errors, and no token ever sent anywhere but Graph.

Two kinds of Graph here:

* the **Graph emulator** (a real HTTPS process, ``graph_emulator`` in conftest) with a real
  access token, signed in through MSAL as ``test_conformance_msal.py`` does: ``/me``,
  calendarView with ``@odata.nextLink`` paging, an expired delta link (410), its injected
  ``503 serviceNotAvailable`` faults (always ``Retry-After: 1``) and its own per-mailbox
  concurrency limit (``429 ApplicationThrottled``, ``Retry-After: 1``);
* a **fake Graph** (a small aiohttp server in this file) for what the emulator cannot be told to
  send: each ``Retry-After`` form (integer, fractional, HTTP-date), 503 without it, 5xx bodies
  that are not JSON, scripted 401s, and in-flight counting per mailbox.

The connector's token endpoint is always a fake (``FakeConnector``) that verifies the service
JWT the client mints as the connector would (HS256, ``kid``, ``iss``, ``aud``, ``svc``).
Waits are checked from below only (at least what Graph advised, minus timer slack), never
from above.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from calsync_common.transient import RetryLater
from calsync_sync_worker.adapters.graph_client import (
    ConnectionGone,
    ForeignUrl,
    GraphAccessDenied,
    GraphBadRequest,
    GraphClient,
    GraphClientSettings,
    GraphError,
    GraphNotFound,
    GraphThrottled,
    GraphUnavailable,
    ReauthRequired,
    SyncStateGone,
    TokenServiceError,
    TokenServiceUnavailable,
    open_graph_client,
    prefer_header,
)
from calsync_sync_worker.adapters.retry_after import full_jitter, parse_retry_after

from .conftest import (
    DEV_KEY,
    DEV_KID,
    SANDBOX_SECRET,
    Emulator,
    FakeConnector,
    SignedIn,
)

pytestmark = pytest.mark.integration

SLACK_S = 0.05  # timer granularity: asyncio may wake a hair early


@pytest.fixture(scope="module", autouse=True)
def _secrets_known_and_logged(known_secrets: set[str]) -> Iterator[None]:
    """The session's log check looks for these; our loggers speak at DEBUG while we test."""
    import logging

    known_secrets.update({DEV_KEY, SANDBOX_SECRET})
    logger = logging.getLogger("calsync_sync_worker")
    before = logger.level
    logger.setLevel(logging.DEBUG)
    yield
    logger.setLevel(before)


# --- a fake Graph -----------------------------------------------------------------------------

Script = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    at: float  # monotonic
    wall: float


async def ok(request: web.Request, n: int) -> web.StreamResponse:
    return web.json_response({"path": request.path, "n": n})


def graph_error(
    status: int, code: str, message: str = "m", headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"code": code, "message": message, "innerError": {"request-id": "r"}}}
    return web.json_response(body, status=status, headers=headers)


@dataclass
class FakeGraph:
    """``/v1.0/*``: answers with ``script(request, n)`` (n = 1, 2, ... per fake); counts
    requests in flight per mailbox (the connection id inside ``tok-{id}-{n}``)."""

    script: Script = ok
    hold_s: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)
    max_total: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v1.0/{tail:.*}", self.handle)
        app.router.add_route("*", "/{tail:.*}", self.handle)  # so a leak would be seen
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                request.method,
                request.path_qs,
                dict(request.headers),
                time.monotonic(),
                time.time(),
            )
        )
        mailbox = request.headers.get("Authorization", "").removeprefix("Bearer ")
        mailbox = mailbox.removeprefix("tok-").rpartition("-")[0]
        self.in_flight[mailbox] = self.in_flight.get(mailbox, 0) + 1
        self.max_in_flight[mailbox] = max(
            self.max_in_flight.get(mailbox, 0), self.in_flight[mailbox]
        )
        self.max_total = max(self.max_total, sum(self.in_flight.values()))
        try:
            if self.hold_s:
                await asyncio.sleep(self.hold_s)
            return await self.script(request, len(self.seen))
        finally:
            self.in_flight[mailbox] -= 1


@dataclass
class Rig:
    graph: FakeGraph
    connector: FakeConnector
    graph_url: str
    connector_url: str

    def settings(self, **overrides: Any) -> GraphClientSettings:
        base: dict[str, Any] = {
            "graph_url": self.graph_url,
            "ca_bundle": None,
            "connector_url": self.connector_url,
            "backoff_base_s": 0.01,
            "backoff_max_s": 0.05,
        }
        return GraphClientSettings(**{**base, **overrides})

    def client(self, rng: random.Random | None = None, **overrides: Any) -> Any:
        return open_graph_client(self.settings(**overrides), rng=rng)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    graph, connector = FakeGraph(), FakeConnector()
    async with TestServer(graph.app()) as gs, TestServer(connector.app()) as cs:
        yield Rig(graph, connector, str(gs.make_url("/v1.0")), str(cs.make_url("")))


class Ceiling(random.Random):
    """Full jitter at its upper bound, so the backoff schedule is known."""

    def uniform(self, a: float, b: float) -> float:
        return b


def cid() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


# --- Retry-After and backoff, as functions ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("2.128", 2.128),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: now
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("nan", None),
        ("1e3", None),
    ],
)
def test_retry_after_forms(value: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == seconds


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(5.0, 0.5 * 2**attempt)
        waits = [full_jitter(attempt, base_s=0.5, cap_s=5.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
    assert full_jitter(3, base_s=0.5, cap_s=30.0, rng=Ceiling()) == 4.0


def test_prefer_header_keeps_immutable_ids_first_and_joins_the_rest() -> None:
    assert prefer_header(()) == 'IdType="ImmutableId"'
    assert (
        prefer_header(["odata.maxpagesize=50", 'outlook.timezone="UTC"', ' IdType="ImmutableId"'])
        == 'IdType="ImmutableId", odata.maxpagesize=50, outlook.timezone="UTC"'
    )
    with pytest.raises(ValueError, match="Prefer"):
        prefer_header(['IdType="RestId"'])
    with pytest.raises(ValueError, match="Prefer"):
        prefer_header(["a=1\r\nX-Evil: 1"])


def test_settings_default_to_the_connectors_development_key() -> None:
    settings = GraphClientSettings()
    assert settings.service_token_kid == DEV_KID
    assert settings.service_token_secret.get_secret_value() == DEV_KEY
    assert settings.service_token_secret.get_secret_value().startswith("insecure")
    assert DEV_KEY not in repr(settings)
    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        GraphClientSettings(service_token_secret="short")
    with pytest.raises(ValueError, match="http"):
        GraphClientSettings(graph_url="ftp://graph.example/v1.0")


# --- tokens from the connector ----------------------------------------------------------------


async def test_concurrent_calls_share_one_token_fetch(rig: Rig) -> None:
    rig.connector.delay_s = 0.2
    c = cid()
    async with rig.client() as graph:
        results = await asyncio.gather(*(graph.get(c, "/me") for _ in range(10)))
        assert all(r["path"] == "/v1.0/me" for r in results)
        await graph.get(c, "/me")  # cached
    assert rig.connector.fetches == {c: 1}
    assert not rig.connector.refused
    assert {s.headers["Authorization"] for s in rig.graph.seen} == {f"Bearer tok-{c}-1"}


async def test_a_token_close_to_expiry_is_fetched_again(rig: Rig) -> None:
    rig.connector.lifetime_s = 60  # inside the 120 s refresh margin
    c = cid()
    async with rig.client() as graph:
        await graph.get(c, "/me")
        await graph.get(c, "/me")
    assert rig.connector.fetches == {c: 2}


@pytest.mark.parametrize(
    ("prefix", "error"),
    [
        ("reauth", ReauthRequired),
        ("disconnected", ConnectionGone),
        ("unknown", ConnectionGone),
        ("down", TokenServiceUnavailable),
    ],
)
async def test_connector_refusals_are_typed_and_shared(
    rig: Rig, prefix: str, error: type[Exception]
) -> None:
    rig.connector.delay_s = 0.1
    c = f"{prefix}-{uuid.uuid4().hex[:8]}"
    async with rig.client() as graph:
        outcomes = await asyncio.gather(
            *(graph.get(c, "/me") for _ in range(5)), return_exceptions=True
        )
    assert all(type(o) is error for o in outcomes), outcomes
    assert rig.connector.fetches == {c: 1}  # one fetch, its failure shared
    assert rig.graph.seen == []  # Graph never asked without a token
    assert isinstance(outcomes[0], RetryLater) == (error is TokenServiceUnavailable)


async def test_unreachable_connector_is_retryable(rig: Rig) -> None:
    with socketless_port() as port:
        settings = rig.settings(connector_url=f"http://127.0.0.1:{port}", token_timeout_s=2)
        async with open_graph_client(settings) as graph:
            with pytest.raises(TokenServiceUnavailable) as caught:
                await graph.get(cid(), "/me")
    assert isinstance(caught.value, RetryLater)


async def test_a_wrong_service_key_is_refused_by_the_connector(rig: Rig) -> None:
    wrong = "another-key-of-at-least-thirty-two-bytes!"
    async with rig.client(service_token_secret=wrong) as graph:
        with pytest.raises(TokenServiceError):
            await graph.get(cid(), "/me")
    assert rig.connector.refused == ["InvalidSignatureError"]


# --- 401 ------------------------------------------------------------------------------------


async def test_401_refreshes_the_token_once_then_succeeds(rig: Rig) -> None:
    async def first_token_rejected(request: web.Request, n: int) -> web.StreamResponse:
        if request.headers["Authorization"].endswith("-1"):
            return graph_error(401, "InvalidAuthenticationToken", "Access token has expired.")
        return await ok(request, n)

    rig.graph.script = first_token_rejected
    c = cid()
    async with rig.client() as graph:
        assert (await graph.get(c, "/me"))["path"] == "/v1.0/me"
    assert rig.connector.fetches == {c: 2}
    assert [s.headers["Authorization"] for s in rig.graph.seen] == [
        f"Bearer tok-{c}-1",
        f"Bearer tok-{c}-2",
    ]


async def test_a_second_401_means_reauth_required(rig: Rig) -> None:
    async def always_401(request: web.Request, n: int) -> web.StreamResponse:
        return graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed")

    rig.graph.script = always_401
    c = cid()
    async with rig.client() as graph:
        with pytest.raises(ReauthRequired) as caught:
            await graph.get(c, "/me")
    assert rig.connector.fetches == {c: 2}
    assert len(rig.graph.seen) == 2
    assert "tok-" not in str(caught.value)


# --- Retry-After, backoff, bounded retries -----------------------------------------------------


@pytest.mark.parametrize(("status", "value"), [(429, "1"), (429, "1.25"), (503, "1.25")])
async def test_retry_after_seconds_are_honoured(rig: Rig, status: int, value: str) -> None:
    """Fake Graph: the integer and fractional forms, on 429 and 503."""

    async def once(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            return graph_error(status, "TooManyRequests", headers={"Retry-After": value})
        return await ok(request, n)

    rig.graph.script = once
    async with rig.client() as graph:
        await graph.get(cid(), "/me/calendars")
    first, second = rig.graph.seen
    assert second.at - first.at >= float(value) - SLACK_S


async def test_retry_after_http_date_is_honoured(rig: Rig) -> None:
    """Fake Graph: the HTTP-date (IMF-fixdate) form; the retry comes no earlier than the date."""
    until: list[float] = []

    async def once(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            until.append(when.timestamp())
            value = format_datetime(when, usegmt=True)
            return graph_error(429, "TooManyRequests", headers={"Retry-After": value})
        return await ok(request, n)

    rig.graph.script = once
    async with rig.client() as graph:
        await graph.get(cid(), "/me")
    assert rig.graph.seen[1].wall >= until[0] - SLACK_S


async def test_503_without_retry_after_backs_off_exponentially(rig: Rig) -> None:
    async def twice(request: web.Request, n: int) -> web.StreamResponse:
        if n <= 2:
            return graph_error(503, "serviceNotAvailable")
        return await ok(request, n)

    rig.graph.script = twice
    async with rig.client(backoff_base_s=0.2, backoff_max_s=5, rng=Ceiling()) as graph:
        await graph.get(cid(), "/me")
    a, b, c = (s.at for s in rig.graph.seen)
    assert b - a >= 0.2 - SLACK_S
    assert c - b >= 0.4 - SLACK_S


@pytest.mark.parametrize(
    ("status", "retry_after", "error"),
    [
        (429, "0", GraphThrottled),
        (503, None, GraphUnavailable),
        (500, None, GraphUnavailable),
        (502, None, GraphUnavailable),
        (504, None, GraphUnavailable),
    ],
)
async def test_retries_are_bounded_then_typed(
    rig: Rig, status: int, retry_after: str | None, error: type[GraphError]
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else None

    async def failing(request: web.Request, n: int) -> web.StreamResponse:
        return graph_error(status, "Whatever", headers=headers)

    rig.graph.script = failing
    async with rig.client(max_retries=2) as graph:
        with pytest.raises(error) as caught:
            await graph.get(cid(), "/me/calendarView/delta")
    assert len(rig.graph.seen) == 3
    assert caught.value.status == status
    assert isinstance(caught.value, RetryLater)
    if retry_after is not None:
        assert caught.value.retry_after == float(retry_after)  # type: ignore[attr-defined]


async def test_a_retry_after_beyond_the_limit_is_not_waited_for(rig: Rig) -> None:
    async def long_wait(request: web.Request, n: int) -> web.StreamResponse:
        return graph_error(429, "TooManyRequests", headers={"Retry-After": "3600"})

    rig.graph.script = long_wait
    async with rig.client(max_retry_after_s=60) as graph:
        with pytest.raises(GraphThrottled) as caught:
            await graph.get(cid(), "/me")
    assert caught.value.retry_after == 3600.0
    assert len(rig.graph.seen) == 1


async def test_post_is_retried_only_when_idempotent_except_after_429(rig: Rig) -> None:
    answers = itertools.cycle([503, 201])

    async def flaky(request: web.Request, n: int) -> web.StreamResponse:
        status = next(answers)
        if status == 503:
            return graph_error(503, "serviceNotAvailable")
        return web.json_response({"id": "AAMk-1"}, status=201)

    rig.graph.script = flaky
    event = {"subject": "x", "transactionId": str(uuid.uuid4())}
    async with rig.client() as graph:
        with pytest.raises(GraphUnavailable):
            await graph.post(cid(), "/me/events", event, idempotent=False)
        assert len(rig.graph.seen) == 1
        next(answers)  # back to a 503 first
        created = await graph.post(cid(), "/me/events", event, idempotent=True)
        assert created == {"id": "AAMk-1"}
        assert len(rig.graph.seen) == 3

        async def throttled_once(request: web.Request, n: int) -> web.StreamResponse:
            if n == 4:
                return graph_error(429, "ApplicationThrottled", headers={"Retry-After": "0.1"})
            return web.json_response({"id": "AAMk-2"}, status=201)

        rig.graph.script = throttled_once
        assert await graph.post(cid(), "/me/events", event, idempotent=False) == {"id": "AAMk-2"}
    assert [s.method for s in rig.graph.seen] == ["POST"] * 5


async def test_a_dropped_connection_is_retried_for_idempotent_requests(rig: Rig) -> None:
    async def hang_up_first(request: web.Request, n: int) -> web.StreamResponse:
        if n in (1, 3):
            assert request.transport is not None
            request.transport.close()
        return await ok(request, n)

    rig.graph.script = hang_up_first
    async with rig.client() as graph:
        assert (await graph.get(cid(), "/me"))["n"] == 2
        with pytest.raises(GraphUnavailable) as caught:
            await graph.post(cid(), "/me/events", {"subject": "x"}, idempotent=False)
    assert caught.value.status is None


# --- error classification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (410, "syncStateNotFound", SyncStateGone),
        (410, "SyncStateNotFound", SyncStateGone),
        (410, "resyncRequired", SyncStateGone),
        (400, "syncStateNotFound", SyncStateGone),
        (404, "ErrorItemNotFound", GraphNotFound),
        (404, "ResourceNotFound", GraphNotFound),
        (403, "ErrorAccessDenied", GraphAccessDenied),
        (400, "ErrorInvalidRequest", GraphBadRequest),
    ],
)
async def test_graph_errors_are_typed_by_status_and_code(
    rig: Rig, status: int, code: str, error: type[GraphError]
) -> None:
    async def failing(request: web.Request, n: int) -> web.StreamResponse:
        token = request.headers["Authorization"]
        return graph_error(status, code, f"bad things; your header was {token}")

    rig.graph.script = failing
    async with rig.client() as graph:
        with pytest.raises(error) as caught:
            await graph.get(cid(), "/me/calendarView/delta?$deltatoken=secretish")
    assert type(caught.value) is error
    assert (caught.value.status, caught.value.code) == (status, code)
    assert "tok-" not in str(caught.value)
    assert "deltatoken" not in str(caught.value)
    assert len(rig.graph.seen) == 1  # none of these is retried


async def test_410_keeps_graphs_restart_location(rig: Rig) -> None:
    restart = "https://graph.example/v1.0/me/calendarView/delta?$deltatoken="

    async def gone(request: web.Request, n: int) -> web.StreamResponse:
        return graph_error(410, "syncStateNotFound", headers={"Location": restart})

    rig.graph.script = gone
    async with rig.client() as graph:
        with pytest.raises(SyncStateGone) as caught:
            await graph.get(cid(), "/me/calendarView/delta")
    assert caught.value.location == restart


@pytest.mark.parametrize(("status", "error"), [(404, GraphNotFound), (502, GraphUnavailable)])
async def test_non_json_error_bodies_are_typed_by_status(
    rig: Rig, status: int, error: type[GraphError]
) -> None:
    async def html(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(
            status=status, text="<html>Bad Gateway</html>", content_type="text/html"
        )

    rig.graph.script = html
    async with rig.client(max_retries=0) as graph:
        with pytest.raises(error) as caught:
            await graph.get(cid(), "/me")
    assert (caught.value.status, caught.value.code) == (status, None)


# --- per-mailbox limits -----------------------------------------------------------------------


async def test_at_most_four_requests_in_flight_per_mailbox(rig: Rig) -> None:
    rig.graph.hold_s = 0.05
    a, b = cid(), cid()
    async with rig.client() as graph:
        await asyncio.gather(*(graph.get(m, "/me/events") for m in [a, b] * 20))
    assert rig.graph.max_in_flight == {a: 4, b: 4}
    assert rig.graph.max_total > 4  # the limit is per mailbox, not for the whole client


async def test_the_request_budget_makes_requests_wait(rig: Rig) -> None:
    c = cid()
    async with rig.client(mailbox_requests_per_window=3, mailbox_window_s=0.6) as graph:
        for _ in range(6):
            await graph.get(c, "/me")
    at = [s.at for s in rig.graph.seen]
    assert at[3] - at[0] >= 0.6 - SLACK_S
    assert at[5] - at[2] >= 0.6 - SLACK_S


async def test_a_429_pauses_the_whole_mailbox(rig: Rig) -> None:
    async def throttle_first(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            return graph_error(429, "ApplicationThrottled", headers={"Retry-After": "0.5"})
        return await ok(request, n)

    rig.graph.script = throttle_first
    c = cid()
    async with rig.client(mailbox_concurrency=1) as graph:
        first = asyncio.create_task(graph.get(c, "/me"))
        await asyncio.sleep(0.1)  # let the first one be throttled
        await graph.get(c, "/me/calendars")
        await first
    throttled_at = rig.graph.seen[0].at
    assert all(s.at - throttled_at >= 0.5 - SLACK_S for s in rig.graph.seen[1:])


# --- what is sent, and where ------------------------------------------------------------------


async def test_headers_on_every_request(rig: Rig) -> None:
    c = cid()
    async with rig.client() as graph:
        await graph.get(c, "/me/calendarView/delta", prefer=["odata.maxpagesize=50"])
        await graph.patch(c, "/me/events/AAMk-1", {"subject": "y"})
        await graph.delete(c, "/me/events/AAMk-1")
    first, second, third = rig.graph.seen
    assert first.headers["Prefer"] == 'IdType="ImmutableId", odata.maxpagesize=50'
    assert second.headers["Prefer"] == third.headers["Prefer"] == 'IdType="ImmutableId"'
    assert {s.headers["Authorization"] for s in rig.graph.seen} == {f"Bearer tok-{c}-1"}
    ids = [uuid.UUID(s.headers["client-request-id"]) for s in rig.graph.seen]
    assert len(set(ids)) == 3
    assert [s.method for s in rig.graph.seen] == ["GET", "PATCH", "DELETE"]


async def test_graph_links_are_followed_only_to_the_graph_base(rig: Rig) -> None:
    c = cid()
    base = rig.graph_url  # http://127.0.0.1:{port}/v1.0
    origin = base.removesuffix("/v1.0")
    port = int(origin.rpartition(":")[2])
    foreign = [
        "https://graph.microsoft.com/v1.0/me/events?$skiptoken=abc",
        f"http://localhost:{port}/v1.0/me",  # another host name
        f"http://127.0.0.1:{port + 1}/v1.0/me",
        f"https://127.0.0.1:{port}/v1.0/me",
        f"{origin}/beta/me",
        f"{origin}/v1.0/../beta/me",
        f"{origin}/v1.0/%2e%2e/beta/me",
        f"{origin}/v1.0x/me",
        f"http://user:pw@127.0.0.1:{port}/v1.0/me",
    ]
    async with rig.client() as graph:
        for url in foreign:
            with pytest.raises(ForeignUrl):
                await graph.get(c, url)
        with pytest.raises(ValueError, match="must start with"):
            await graph.get(c, "me/events")
        assert rig.connector.total() == 0
        assert rig.graph.seen == []
        link = f"{base}/me/calendarView/delta?$skiptoken=a%2Bb%3D%3D"
        await graph.get(c, link)
    assert rig.graph.seen[0].path_qs == "/v1.0/me/calendarView/delta?$skiptoken=a%2Bb%3D%3D"


async def test_metrics_count_requests_retries_and_token_fetches(rig: Rig) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        value("calsync_graph_requests_total", method="GET", status_class="2xx"),
        value("calsync_graph_requests_total", method="GET", status_class="4xx"),
        value("calsync_graph_retries_total", reason="throttled"),
        value("calsync_graph_token_fetches_total", outcome="ok"),
        value("calsync_graph_throttled_waits_total", reason="retry_after"),
    )

    async def once(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            return graph_error(429, "TooManyRequests", headers={"Retry-After": "0.1"})
        return await ok(request, n)

    rig.graph.script = once
    async with rig.client() as graph:
        await graph.get(cid(), "/me")
    after = (
        value("calsync_graph_requests_total", method="GET", status_class="2xx"),
        value("calsync_graph_requests_total", method="GET", status_class="4xx"),
        value("calsync_graph_retries_total", reason="throttled"),
        value("calsync_graph_token_fetches_total", outcome="ok"),
        value("calsync_graph_throttled_waits_total", reason="retry_after"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1, 1, 1]


async def test_the_session_can_be_the_owners(rig: Rig) -> None:
    async with aiohttp.ClientSession(trust_env=False) as session:
        graph = GraphClient(rig.settings(), session)
        try:
            assert (await graph.get(cid(), "/me"))["path"] == "/v1.0/me"
        finally:
            await graph.close()
        assert not session.closed


# --- against the Graph emulator -----------------------------------------------------------------


@dataclass
class EmulatorRig:
    emulator: Emulator
    user: SignedIn
    connector: FakeConnector
    connector_url: str
    control: aiohttp.ClientSession

    def settings(self, **overrides: Any) -> GraphClientSettings:
        base: dict[str, Any] = {
            "graph_url": self.emulator.graph_url,
            "ca_bundle": self.emulator.ca_path,
            "connector_url": self.connector_url,
        }
        return GraphClientSettings(**{**base, **overrides})

    def connection(self) -> str:
        c = cid()
        self.connector.tokens[c] = self.user.access_token
        return c

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.control.request(
            method, f"{self.emulator.base_url}{path}", json=body
        ) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json(content_type=None)

    async def graph_429s(self) -> float:
        async with self.control.get(f"{self.emulator.base_url}/metrics") as resp:
            text = await resp.text()
        for line in text.splitlines():
            if line.startswith("msgraph_emulator_graph_requests_total{") and 'status="429"' in line:
                return float(line.rpartition(" ")[2])
        return 0.0


@pytest.fixture
async def emu(graph_emulator: Emulator, signed_in: SignedIn) -> AsyncIterator[EmulatorRig]:
    connector = FakeConnector()
    async with (
        TestServer(connector.app()) as cs,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=graph_emulator.ssl())) as http,
    ):
        rig = EmulatorRig(graph_emulator, signed_in, connector, str(cs.make_url("")), http)
        try:
            yield rig
        finally:
            await rig.call("DELETE", f"/_emulator/faults/users/{signed_in.user_id}")


async def test_me_and_calendar_view_pages_from_the_emulator(emu: EmulatorRig) -> None:
    uid = emu.user.user_id
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=2)
    for hour in (9, 11, 13):
        start = day + timedelta(hours=hour)
        await emu.call(
            "POST",
            f"/_emulator/users/{uid}/calendars/default/events",
            {
                "subject": f"gc-{hour}",
                "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "end": {
                    "dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "timeZone": "UTC",
                },
            },
        )
    c = emu.connection()
    async with open_graph_client(emu.settings()) as graph:
        me = await graph.get(c, "/me")
        assert me["id"] == uid
        assert me["userPrincipalName"] == emu.user.upn
        window = {
            "startDateTime": day.isoformat().replace("+00:00", "Z"),
            "endDateTime": (day + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
        }
        page = await graph.get(c, "/me/calendarView", params=window, prefer=["odata.maxpagesize=2"])
        subjects = [e["subject"] for e in page["value"]]
        pages = 1
        while "@odata.nextLink" in page:  # absolute links, accepted because they are Graph's
            page = await graph.get(c, page["@odata.nextLink"], prefer=["odata.maxpagesize=2"])
            subjects += [e["subject"] for e in page["value"]]
            pages += 1
    assert sorted(subjects) == ["gc-11", "gc-13", "gc-9"]
    assert pages >= 2
    assert emu.connector.fetches == {c: 1}


async def test_an_expired_delta_link_is_sync_state_gone(emu: EmulatorRig) -> None:
    c = emu.connection()
    now = datetime.now(UTC).replace(microsecond=0)
    window = {
        "startDateTime": now.isoformat().replace("+00:00", "Z"),
        "endDateTime": (now + timedelta(days=30)).isoformat().replace("+00:00", "Z"),
    }
    async with open_graph_client(emu.settings()) as graph:
        page = await graph.get(c, "/me/calendarView/delta", params=window)
        while "@odata.nextLink" in page:
            page = await graph.get(c, page["@odata.nextLink"])
        delta_link = page["@odata.deltaLink"]
        await graph.get(c, delta_link)  # still good
        await emu.call("POST", f"/_emulator/users/{emu.user.user_id}/delta/expire", {})
        with pytest.raises(SyncStateGone) as caught:
            await graph.get(c, delta_link)
    assert caught.value.status == 410
    assert caught.value.code is not None
    assert caught.value.code.lower() == "syncstatenotfound"
    assert emu.user.access_token not in str(caught.value)


async def test_emulator_503_faults_are_retried_after_retry_after_then_typed(
    emu: EmulatorRig,
) -> None:
    """The emulator's fault injection: every request 503 ``serviceNotAvailable``,
    ``Retry-After: 1``."""
    await emu.call("PUT", f"/_emulator/faults/users/{emu.user.user_id}", {"error_rate": 1.0})
    c = emu.connection()
    started = time.monotonic()
    async with open_graph_client(emu.settings(max_retries=2)) as graph:
        with pytest.raises(GraphUnavailable) as caught:
            await graph.get(c, "/me")
    assert time.monotonic() - started >= 2 * 1.0 - SLACK_S  # two waits of Retry-After: 1
    assert (caught.value.status, caught.value.code) == (503, "serviceNotAvailable")
    assert caught.value.retry_after == 1.0


async def test_four_at_a_time_never_trips_the_emulators_concurrency_limit(
    emu: EmulatorRig,
) -> None:
    await emu.call("PUT", f"/_emulator/faults/users/{emu.user.user_id}", {"latency_ms": 100})
    c = emu.connection()
    before = await emu.graph_429s()
    async with open_graph_client(emu.settings()) as graph:
        results = await asyncio.gather(*(graph.get(c, "/me") for _ in range(16)))
    assert {r["id"] for r in results} == {emu.user.user_id}
    assert await emu.graph_429s() == before


async def test_the_emulators_429_is_honoured_when_the_client_overshoots(emu: EmulatorRig) -> None:
    """Misconfigured at 8 per mailbox: the emulator answers ``429 ApplicationThrottled`` with
    ``Retry-After: 1`` and every request still succeeds after waiting."""
    await emu.call("PUT", f"/_emulator/faults/users/{emu.user.user_id}", {"latency_ms": 300})
    c = emu.connection()
    before = await emu.graph_429s()
    started = time.monotonic()
    async with open_graph_client(emu.settings(mailbox_concurrency=8)) as graph:
        results = await asyncio.gather(*(graph.get(c, "/me") for _ in range(8)))
    assert {r["id"] for r in results} == {emu.user.user_id}
    assert await emu.graph_429s() > before
    assert time.monotonic() - started >= 1.0 - SLACK_S


# --- helpers ----------------------------------------------------------------------------------


class socketless_port:
    """A port nothing listens on, while held."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
