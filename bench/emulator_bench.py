"""Throughput of the Graph emulator: Graph requests/s and change notifications delivered/s.

The emulator runs in a child process (its own core), plain HTTP on 127.0.0.1 (TLS is left out of
the measurement). The load generator and the notification receiver run in this process.

* Graph: ``GET /v1.0/me/calendars`` with bearer tokens, ``--users`` mailboxes x 4 concurrent
  clients each — Outlook throttling stays ON and is respected (4 in flight per app + mailbox).
* Notifications: one ``/me/events`` subscription per user to a local receiver; the child emits
  ``--changes`` changes (``state.changes.emit``) and we time until the receiver has them all.

    python bench/emulator_bench.py --out bench/results/emulator.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization

CLIENT_ID = "bench-app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int, key_pem: bytes, kid: str, users: list[dict[str, str]]) -> None:
    """Child process: the emulator app plus a bench-only route that emits changes."""
    from msgraph_emulator.app import STATE, init_app
    from msgraph_emulator.changes import Change
    from msgraph_emulator.graph.auth import SigningKey
    from msgraph_emulator.settings import EmulatorSettings
    from msgraph_emulator.users import User

    settings = EmulatorSettings(seed_sandbox=False, log_level="WARNING")
    app = init_app(settings)
    state = app[STATE]
    private = serialization.load_pem_private_key(key_pem, password=None)
    state.signing_key = SigningKey(kid=kid, private_key=private)  # type: ignore[arg-type]
    for u in users:
        user = state.users.add(User(**u))
        state.mailboxes.ensure(user)

    async def emit(request: web.Request) -> web.Response:
        n = int(request.query["n"])
        people = state.users.all()
        for i in range(n):
            u = people[i % len(people)]
            cal = state.mailboxes.ensure(u).default_calendar().id
            state.changes.emit(Change(u.id, u.tenant_id, cal, f"ev{i}", "updated"))
        return web.json_response({"emitted": n})

    app.router.add_post("/_bench/emit", emit)
    profile_to = os.environ.get("BENCH_PROFILE")
    if not profile_to:
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
        return
    import cProfile

    with cProfile.Profile() as prof:  # where the server's time goes (BENCH_PROFILE=file)
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    prof.dump_stats(profile_to)


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(200):
        try:
            async with session.get(f"{base}/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)  # process start-up, not a readiness guess inside a test
    raise RuntimeError("emulator did not start")


async def graph_load(
    session: aiohttp.ClientSession, base: str, tokens: list[str], seconds: float
) -> dict[str, Any]:
    deadline = time.perf_counter() + seconds
    counts: dict[int, int] = {}

    async def worker(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        while time.perf_counter() < deadline:
            async with session.get(f"{base}/v1.0/me/calendars", headers=headers) as r:
                await r.read()
                counts[r.status] = counts.get(r.status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in tokens for _ in range(4)))
    elapsed = time.perf_counter() - started
    total = sum(counts.values())
    return {
        "requests": total,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(total / elapsed, 1),
        "statuses": {str(k): v for k, v in counts.items()},
        "concurrency": len(tokens) * 4,
    }


async def notification_load(
    session: aiohttp.ClientSession, base: str, tokens: list[str], changes: int
) -> dict[str, Any]:
    received = 0
    posts = 0
    done = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        nonlocal received, posts
        token = request.query.get("validationToken")
        if token is not None:
            return web.Response(text=token, content_type="text/plain")
        body = await request.json()
        received += len(body["value"])
        posts += 1
        if received >= changes:
            done.set()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        expiry = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        for token in tokens:
            sub = {
                "changeType": "updated",
                "notificationUrl": f"http://127.0.0.1:{port}/hook",
                "resource": "/me/events",
                "expirationDateTime": expiry,
                "clientState": "b",
            }
            async with session.post(
                f"{base}/v1.0/subscriptions", json=sub, headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == 201, await r.text()
        started = time.perf_counter()
        async with session.post(f"{base}/_bench/emit", params={"n": str(changes)}) as r:
            assert r.status == 200
        await asyncio.wait_for(done.wait(), timeout=120)
        elapsed = time.perf_counter() - started
    finally:
        await runner.cleanup()
    return {
        "notifications": received,
        "posts": posts,
        "seconds": round(elapsed, 3),
        "notifications_per_s": round(received / elapsed, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from msgraph_emulator.graph.auth import SigningKey, mint_access_token

    key = SigningKey.generate()
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tenant = str(uuid.uuid4())
    users = [
        {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant,
            "user_principal_name": f"u{n}@bench.example",
            "display_name": f"User {n}",
        }
        for n in range(args.users)
    ]
    tokens = [
        mint_access_token(
            key,
            issuer_base="http://bench",
            user_id=u["id"],
            tenant_id=tenant,
            client_id=CLIENT_ID,
            scopes=["Calendars.ReadWrite"],
            lifetime_s=3600,
        )
        for u in users
    ]
    port = free_port()
    child = mp.get_context("spawn").Process(target=serve, args=(port, pem, key.kid, users))
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, base)
            await graph_load(session, base, tokens, 1.0)  # warm-up
            graph = await graph_load(session, base, tokens, args.seconds)
            notes = await notification_load(session, base, tokens, args.changes)
    finally:
        child.terminate()
        child.join()
    return {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.processor(),
        },
        "versions": {"aiohttp": version("aiohttp"), "pyjwt": version("pyjwt")},
        "setup": {
            "transport": "plain HTTP on 127.0.0.1 (no TLS)",
            "emulator": "child process",
            "throttling": "on (4 concurrent per app+mailbox respected)",
            "users": args.users,
        },
        "graph": graph,
        "notifications": notes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/emulator.json")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--changes", type=int, default=50_000)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(
        json.dumps({"graph": result["graph"], "notifications": result["notifications"]}, indent=2)
    )


if __name__ == "__main__":
    main()
