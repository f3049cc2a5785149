"""problem+json: domain errors, aiohttp errors, bad input and crashes all get a stable code."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from calsync_common.http.problems import PROBLEM_JSON, Problem, problem_middleware, read_json


class SlotTaken(Exception):
    pass


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(
        middlewares=[
            problem_middleware({SlotTaken: lambda e: Problem(409, "slot_taken", "Slot taken")})
        ]
    )

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await read_json(request))

    async def taken(_: web.Request) -> web.Response:
        raise SlotTaken

    async def crash(_: web.Request) -> web.Response:
        raise RuntimeError("password=hunter2")

    async def database(request: web.Request) -> web.Response:
        raise {
            "starting": asyncpg.CannotConnectNowError("the database system is starting up"),
            "refused": ConnectionRefusedError(111, "Connect call failed"),
            "standby": asyncpg.ReadOnlySQLTransactionError("read-only transaction"),
            "bug": asyncpg.UndefinedColumnError("column secret_sauce does not exist"),
        }[request.match_info["kind"]]

    app.router.add_get("/database/{kind}", database)
    app.router.add_post("/echo", echo)
    app.router.add_get("/taken", taken)
    app.router.add_get("/crash", crash)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_domain_error_maps_to_its_problem(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/taken")
    assert resp.status == 409
    assert resp.content_type == PROBLEM_JSON
    body = await resp.json(content_type=PROBLEM_JSON)
    assert body["code"] == "slot_taken"
    assert body["instance"] == "/taken"


async def test_unknown_route_is_not_found_problem(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.json(content_type=PROBLEM_JSON))["code"] == "not_found"


async def test_malformed_json_is_400(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.post("/echo", data=b"{", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json(content_type=PROBLEM_JSON))["code"] == "malformed_json"


async def test_wrong_media_type_is_415(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.post("/echo", data=b"x", headers={"Content-Type": "text/plain"})
    assert resp.status == 415


async def test_crash_is_500_without_leaking(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/crash")
    assert resp.status == 500
    text = await resp.text()
    assert "internal_error" in text
    assert "hunter2" not in text


@pytest.mark.parametrize("kind", ["starting", "refused", "standby"])
async def test_a_dependency_away_is_503_to_retry(client: TestClient, kind: str) -> None:  # type: ignore[type-arg]
    resp = await client.get(f"/database/{kind}")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "2"
    body = await resp.json(content_type=PROBLEM_JSON)
    assert body["code"] == "dependency_unavailable"


async def test_a_statement_the_database_refuses_is_a_bug_not_a_retry(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/database/bug")
    assert resp.status == 500
    text = await resp.text()
    assert "internal_error" in text
    assert "secret_sauce" not in text
