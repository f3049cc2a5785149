"""``POST /v1.0/$batch``: JSON batching over the app's own HTTP endpoint.

Inner requests are sent to the listening socket the batch arrived on (loopback, TLS not verified:
it is this very server) with the caller's ``Authorization``, so each passes through routing,
auth and throttling individually. At most ``mailbox_concurrency`` run at once (Graph sends 4 at a
time to a mailbox); ``dependsOn`` orders them and a failed dependency yields ``424``. Responses
are listed in completion order — correlate by ``id``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from msgraph_emulator.graph.auth import bearer_token
from msgraph_emulator.graph.batch_parse import BatchItem, parse_batch
from msgraph_emulator.graph.errors import GraphError, error_body
from msgraph_emulator.graph.notifications_engine import NOTIFIER

LOOPBACK = web.AppKey("batch_loopback", aiohttp.ClientSession)
KEPT_HEADERS = ("Content-Type", "Retry-After", "Location", "ETag", "Preference-Applied")


def _base_url(request: web.Request) -> str:
    host, port = request.transport.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if request.transport.get_extra_info("sslcontext") else "http"  # type: ignore[union-attr]
    return f"{scheme}://{host}:{port}"


def _inner_error(status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "status": status,
        "headers": {"Content-Type": "application/json"},
        "body": error_body(code, message),
    }


async def _send(
    session: aiohttp.ClientSession, base: str, outer: web.Request, item: BatchItem
) -> dict[str, Any]:
    if "://" in item.url:
        return _inner_error(400, "BadRequest", "Batch request urls must be relative.")
    headers = dict(item.headers)
    headers["Authorization"] = outer.headers.get("Authorization", "")
    headers["Host"] = outer.headers.get("Host", "")
    data: bytes | None = None
    if item.has_body:
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if ctype is None:
            return _inner_error(
                400, "BadRequest", "Content-Type header must be specified when body is present."
            )
        data = (
            json.dumps(item.body).encode()
            if "json" in ctype.lower() or not isinstance(item.body, str)
            else item.body.encode()
        )
    url = base + "/v1.0/" + item.url.lstrip("/")
    async with session.request(
        item.method, url, data=data, headers=headers, allow_redirects=False
    ) as response:
        raw = await response.read()
        answer: dict[str, Any] = {
            "status": response.status,
            "headers": {k: response.headers[k] for k in KEPT_HEADERS if k in response.headers},
        }
        if raw:
            is_json = response.content_type.endswith("json")
            answer["body"] = json.loads(raw) if is_json else raw.decode(errors="replace")
        return answer


async def handle_batch(request: web.Request) -> web.Response:
    engine = request.app[NOTIFIER]
    bearer_token(request)  # 401 for the whole batch without a token, as Graph does
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GraphError(400, "BadRequest", "Invalid batch payload format.") from exc
    items = parse_batch(body, engine.settings.batch_max_requests)
    session, base = request.app[LOOPBACK], _base_url(request)
    gate = asyncio.Semaphore(engine.settings.mailbox_concurrency)
    done: dict[str, asyncio.Future[int]] = {
        i.id: asyncio.get_running_loop().create_future() for i in items
    }
    responses: list[dict[str, Any]] = []

    async def run(item: BatchItem) -> None:
        statuses = [await done[d] for d in item.depends_on]
        if any(not 200 <= s < 300 for s in statuses):
            answer = _inner_error(424, "FailedDependency", "Failed dependency.")
        else:
            async with gate:
                try:
                    answer = await _send(session, base, request, item)
                except aiohttp.ClientError as exc:
                    answer = _inner_error(500, "generalException", str(exc))
        responses.append({"id": item.id, **answer})
        done[item.id].set_result(answer["status"])

    await asyncio.gather(*(run(i) for i in items))
    return web.json_response({"responses": responses})


async def _loopback(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(ssl=False, limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[LOOPBACK] = session
        yield


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1.0/$batch", handle_batch)
    app.cleanup_ctx.append(_loopback)
