"""Throughput of the Graph emulator: Graph requests/s per endpoint and notifications/s.

The emulator runs in a child process (its own core), plain HTTP on 127.0.0.1 (TLS is left out of
the measurement). The load generators (``emulator_load.py``) and the receiver run in this process.

* ``GET /v1.0/me/calendars`` (a simple GET) with bearer tokens, ``--users`` mailboxes x 4
  concurrent clients each — Outlook throttling stays ON and is respected (4 in flight per app +
  mailbox; each phase uses its own app id, so no phase eats another's 10-minute budget).
* ``calendarView``: a random 7-day window of 2024 on a default calendar holding ``--events``
  stored events (``--series`` of them recurring, no end), first page (``--view-page``).
* ``calendarView/delta``: full initial rounds over a random ``--delta-days`` window, paged at
  ``--delta-page`` (every nextLink followed until the deltaLink), in requests/s and rounds/s.
* Notifications: one ``/me/events`` subscription per user to a local receiver; the child emits
  ``--changes`` changes (``state.changes.emit``) and we time until the receiver has them all.
* GC: like ``python -m msgraph_emulator``, the child calls ``freeze_startup_heap()`` once seeded
  (``--no-gc-freeze`` leaves it out, for comparison); ``gc`` reports the full (generation 2)
  collections the server ran and their pauses.

    python bench/emulator_bench.py --out bench/results/emulator.json
    BENCH_PROFILE=/tmp/emu.prof python bench/emulator_bench.py ...   # cProfile of the server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import uuid
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from emulator_load import (
    FullGcPauses,
    bench_users,
    delta_load,
    free_port,
    get_load,
    notification_load,
    seed_calendar,
    wait_ready,
    window_query,
)

CLIENT_ID = "bench-app"


def serve(
    port: int,
    key_pem: bytes,
    kid: str,
    users: list[dict[str, str]],
    seed: tuple[int, int],
    gc_freeze: bool,
) -> None:
    """Child process: the emulator app (calendars seeded) plus bench-only change emitter and GC
    pause report."""
    from msgraph_emulator.app import STATE, freeze_startup_heap, init_app
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
        seed_calendar(state, state.users.add(User(**u)), *seed)
    if gc_freeze:
        freeze_startup_heap()
    gc_pauses = FullGcPauses(frozen=gc_freeze)

    async def emit(request: web.Request) -> web.Response:
        n = int(request.query["n"])
        people = state.users.all()
        for i in range(n):
            u = people[i % len(people)]
            cal = state.mailboxes.ensure(u).default_calendar().id
            state.changes.emit(Change(u.id, u.tenant_id, cal, f"ev{i}", "updated"))
        return web.json_response({"emitted": n})

    app.router.add_post("/_bench/emit", emit)
    app.router.add_get("/_bench/gc", gc_pauses.report)
    profile_to = os.environ.get("BENCH_PROFILE")
    if not profile_to:
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
        return
    import cProfile

    with cProfile.Profile() as prof:  # where the server's time goes (BENCH_PROFILE=file)
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    prof.dump_stats(profile_to)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from msgraph_emulator.graph.auth import SigningKey, mint_access_token

    key = SigningKey.generate()
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tenant = str(uuid.uuid4())
    users = bench_users(args.users, tenant)

    def tokens(phase: str) -> list[str]:
        """One app id per phase: each phase gets its own per app + mailbox budget."""
        return [
            mint_access_token(
                key,
                issuer_base="http://bench",
                user_id=u["id"],
                tenant_id=tenant,
                client_id=f"{CLIENT_ID}-{phase}",
                scopes=["Calendars.ReadWrite"],
                lifetime_s=3600,
            )
            for u in users
        ]

    port = free_port()
    seed = (args.events, args.series)
    child_args = (port, pem, key.kid, users, seed, not args.no_gc_freeze)
    child = mp.get_context("spawn").Process(target=serve, args=child_args)
    child.start()
    base = f"http://127.0.0.1:{port}"
    view_prefer = f"odata.maxpagesize={args.view_page}"

    def calendars(_: object) -> str:
        return f"{base}/v1.0/me/calendars"

    def view(rng: Any) -> str:
        return f"{base}/v1.0/me/calendarView?{window_query(rng, 7)}"

    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, f"{base}/healthz")
            warm = tokens("warm-up")
            await get_load(session, warm, 1.0, calendars)
            await get_load(session, warm, 1.0, view, view_prefer)
            graph = await get_load(session, tokens("get"), args.seconds, calendars)
            cal_view = await get_load(session, tokens("view"), args.seconds, view, view_prefer)
            delta = await delta_load(
                session, base, tokens("delta"), args.seconds, args.delta_days, args.delta_page
            )
            notes = await notification_load(session, base, tokens("notify"), args.changes)
            async with session.get(f"{base}/_bench/gc") as r:
                gc_figures = await r.json()
    finally:
        child.terminate()
        child.join()
    cal_view["window_days"], cal_view["page_size"] = 7, args.view_page
    delta["window_days"], delta["page_size"] = args.delta_days, args.delta_page
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
            "events_per_calendar": args.events,
            "recurring_series_per_calendar": args.series,
        },
        "graph": graph,
        "calendar_view": cal_view,
        "delta": delta,
        "notifications": notes,
        "gc": gc_figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/emulator.json")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=2_000, help="stored events per calendar")
    parser.add_argument("--series", type=int, default=40, help="of which recurring (no end)")
    parser.add_argument("--view-page", type=int, default=10, help="calendarView maxpagesize")
    parser.add_argument("--delta-days", type=int, default=30)
    parser.add_argument("--delta-page", type=int, default=50)
    parser.add_argument("--no-gc-freeze", action="store_true", help="leave out gc.freeze()")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    keys = ("graph", "calendar_view", "delta", "notifications", "gc")
    print(json.dumps({k: result[k] for k in keys}, indent=2))


if __name__ == "__main__":
    main()
