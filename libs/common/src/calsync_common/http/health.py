"""``/healthz`` (alive), ``/readyz`` (dependencies reachable) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

ReadinessCheck = Callable[[], Awaitable[None]]
CHECK_TIMEOUT_S = 2.0


async def _run(check: ReadinessCheck) -> str | None:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return f"{type(exc).__name__}: {exc}"[:200] or type(exc).__name__
    return None


def setup_health_routes(
    app: web.Application,
    checks: Callable[[], Mapping[str, ReadinessCheck]],
    *,
    fatal: Callable[[], Sequence[str]] = tuple,
) -> None:
    """``checks`` is called per request so it can read resources made in ``cleanup_ctx``;
    ``fatal`` lists what died for good (a crashed loop): then ``/healthz`` fails too, so a
    supervisor restarts the process."""

    async def healthz(_: web.Request) -> web.Response:
        dead = list(fatal())
        if dead:
            return web.json_response({"status": "failed", "fatal": dead}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        named = checks()
        results = await asyncio.gather(*(_run(c) for c in named.values()))
        failures = {n: r for n, r in zip(named, results, strict=True) if r is not None}
        body = {
            "status": "ready" if not failures else "not_ready",
            "checks": {n: failures.get(n, "ok") for n in named},
        }
        return web.json_response(body, status=200 if not failures else 503)

    async def metrics(_: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(REGISTRY))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
