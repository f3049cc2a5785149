"""The peers' method beside the projection, same data, same run (``make bench``).

Most products of this kind answer "when is this person busy?" by reading ``calendarView`` of each
Conflict Calendar from Microsoft Graph on every availability request. calsync answers from its
busy projection. Both are timed here on the same events, with the same client, the same
concurrency and the same random requests:

* **peers**: for one member over a 7-day window, ``GET /me/calendars/{id}/calendarView`` of each
  of their Conflict Calendars, concurrently, ``$select=showAs,start,end``, times in UTC
  (``Prefer: outlook.timezone``), pages of up to ``--page`` events with every ``nextLink``
  followed; the blocking ``showAs`` kept. Each calendar holds ``--events-per-calendar`` single
  events over 90 days and three recurring series (daily, twice weekly, monthly), which
  calendarView expands on every read. Graph is the emulator in a child process: plain HTTP on
  127.0.0.1, no added latency, Outlook throttling on (4 requests in flight per app and mailbox;
  a peer reading two calendars at once stays inside it).
* **projection**: ``GET /v1/sub-accounts/{sub}/users/{user}/busy`` of the availability service,
  run as in production (``python -m calsync_availability``, ``--replicas`` processes on one port)
  on a throw-away database seeded by COPY with the same instances: every single event and
  occurrence calendarView lists over the 90 days (what the sync-worker would have projected).

Before timing, both methods are asked the same ``--check`` requests and must return the same busy
intervals (start, end, showAs); the bench fails otherwise. Each method is then timed with
``--clients`` concurrent clients for ``--seconds`` (after ``--warmup``), and again with one
client (latency without queueing). Target (issue 9): the projection answers at least 20x faster
at p99.

The machine has 2 cores, shared by the emulator, the service, PostgreSQL, Kafka and this script.
Writes JSON to ``--out``. Needs the local stack's env (``deploy/local/with-env.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import statistics
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from asyncpg import Range
from availability_api_bench import (
    AUTH,
    CONNECTION_COLUMNS,
    EVENT_COLUMNS,
    FRESHNESS_COLUMNS,
    database,
    free_port,
    iso,
    loadavg,
    service,
)
from cryptography.hazmat.primitives import serialization
from emulator_load import bench_users, wait_ready

from calsync_common.http.auth import mint

#: A Monday; events spread over ``SPREAD_DAYS`` from it.
START = datetime(2027, 1, 4, tzinfo=UTC)
SPREAD_DAYS = 90
WINDOW = timedelta(days=7)
SUB = "sub-bench"
CLIENT_ID = "bench-peer-app"
#: What blocks, on both sides (the connection's ``blocking_show_as``; the peer's filter).
BLOCKING = ("busy", "oof")
SHOW_AS = ("busy",) * 6 + ("tentative", "free", "oof", "workingElsewhere")
CALENDARS_PER_USER = 2
TARGET_P99_RATIO = 20.0
FMT = "%Y-%m-%dT%H:%M:%S"

Interval = tuple[datetime, datetime, str]


#: Recurring series of every calendar (a stand-up, a weekly meeting, a monthly review).
SERIES = (
    ({"type": "daily", "interval": 1}, time(9, 0), 15),
    ({"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday", "thursday"]}, time(14, 0), 60),
    ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15}, time(11, 0), 90),
)


def event_bodies(user: int, calendar: int, count: int) -> list[dict[str, Any]]:
    """The Graph bodies of one calendar's events: ``count`` single events and :data:`SERIES`."""
    rng = random.Random(f"{user}/{calendar}")
    out: list[dict[str, Any]] = []
    for _ in range(count):
        start = START + timedelta(minutes=15 * rng.randrange(SPREAD_DAYS * 24 * 4))
        end = start + timedelta(minutes=rng.choice((30, 60, 90)))
        out.append(body(start, end, rng.choice(SHOW_AS)))
    for pattern, at, minutes in SERIES:
        start = datetime.combine(START.date(), at, UTC)
        series = body(start, start + timedelta(minutes=minutes), "busy")
        series["recurrence"] = {
            "pattern": pattern,
            "range": {"type": "noEnd", "startDate": START.date().isoformat()},
        }
        out.append(series)
    return out


def body(start: datetime, end: datetime, show_as: str) -> dict[str, Any]:
    return {
        "subject": "Meeting",
        "showAs": show_as,
        "start": {"dateTime": start.strftime(FMT), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime(FMT), "timeZone": "UTC"},
    }


# --- Graph: the emulator in a child process -----------------------------------------------------


def serve(port: int, key_pem: bytes, kid: str, users: list[dict[str, str]], count: int) -> None:
    """Child process: the emulator with each user's calendars and events, and
    ``/_bench/calendars`` (user id -> calendar ids, default first)."""
    from msgraph_emulator.app import STATE, freeze_startup_heap, init_app
    from msgraph_emulator.graph.auth import SigningKey
    from msgraph_emulator.mailbox.mailboxes import Mailboxes
    from msgraph_emulator.mailbox.parse import parse_event
    from msgraph_emulator.mailbox.writes import create_event
    from msgraph_emulator.settings import EmulatorSettings
    from msgraph_emulator.users import User

    app = init_app(EmulatorSettings(seed_sandbox=False, log_level="WARNING"))
    state = app[STATE]
    private = serialization.load_pem_private_key(key_pem, password=None)
    state.signing_key = SigningKey(kid=kid, private_key=private)  # type: ignore[arg-type]
    calendars: dict[str, list[str]] = {}
    for n, u in enumerate(users):
        user = state.users.add(User(**u))
        mb = state.mailboxes.ensure(user)
        cals = [mb.default_calendar()]
        for c in range(1, CALENDARS_PER_USER):
            cals.append(Mailboxes.add_calendar(mb, f"Team {c}", user.display_name, u["id"]))
        for c, cal in enumerate(cals):
            for event in event_bodies(n, c, count):
                create_event(mb, cal, parse_event(event), lambda *_: None)
        calendars[u["id"]] = [c.id for c in cals]

    async def listed(_: web.Request) -> web.Response:
        return web.json_response(calendars)

    app.router.add_get("/_bench/calendars", listed)
    freeze_startup_heap()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def utc(graph_time: dict[str, str]) -> datetime:
    """A Graph dateTimeTimeZone in UTC ("2027-01-04T09:00:00.0000000") as an aware datetime."""
    return datetime.strptime(graph_time["dateTime"][:19], FMT).replace(tzinfo=UTC)


#: Graph requests the peers' method made (pages included), for requests per answer.
GRAPH_CALLS = [0]


async def peer_busy(
    session: aiohttp.ClientSession,
    graph: str,
    token: str,
    calendar_ids: list[str],
    start: datetime,
    end: datetime,
    page: int,
) -> list[Interval]:
    """The peers' method: calendarView of every Conflict Calendar, read now."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Prefer": f'outlook.timezone="UTC", odata.maxpagesize={page}',
    }
    query = f"startDateTime={iso(start)}&endDateTime={iso(end)}&$select=showAs,start,end"

    async def one(calendar_id: str) -> list[Interval]:
        found: list[Interval] = []
        url: str | None = f"{graph}/v1.0/me/calendars/{calendar_id}/calendarView?{query}"
        while url is not None:
            GRAPH_CALLS[0] += 1
            async with session.get(url, headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"calendarView answered {r.status}: {await r.text()}")
                body = await r.json()
            for item in body["value"]:
                if item["showAs"] in BLOCKING:
                    found.append((utc(item["start"]), utc(item["end"]), item["showAs"]))
            url = body.get("@odata.nextLink")
        return found

    parts = await asyncio.gather(*(one(c) for c in calendar_ids))
    return sorted(i for part in parts for i in part)


async def projection_busy(
    session: aiohttp.ClientSession, url: str, token: str, user: int, start: datetime, end: datetime
) -> list[Interval]:
    path = f"{url}/v1/sub-accounts/{SUB}/users/user-{user}/busy"
    params = {"start": iso(start), "end": iso(end)}
    async with session.get(path, params=params, headers={"Authorization": f"Bearer {token}"}) as r:
        if r.status != 200:
            raise RuntimeError(f"busy answered {r.status}: {await r.text()}")
        body = await r.json()
    return sorted(
        (datetime.fromisoformat(b["start"]), datetime.fromisoformat(b["end"]), b["show_as"])
        for b in body["busy"]
        if b["source"] == "outlook"
    )


# --- the projection's data ----------------------------------------------------------------------


async def occurrences(
    session: aiohttp.ClientSession, graph: str, token: str, calendar_id: str
) -> list[tuple[str, datetime, datetime, str]]:
    """Every instance (singles and occurrences) of a calendar over the spread, as Graph lists
    them: what the sync-worker would have put in the projection."""
    end = START + timedelta(days=SPREAD_DAYS)
    url: str | None = (
        f"{graph}/v1.0/me/calendars/{calendar_id}/calendarView?startDateTime={iso(START)}"
        f"&endDateTime={iso(end)}&$select=showAs,start,end"
    )
    headers = {"Authorization": f"Bearer {token}", "Prefer": 'outlook.timezone="UTC"'}
    found = []
    while url is not None:
        async with session.get(url, headers=headers) as r:
            r.raise_for_status()
            page = await r.json()
        found += [(i["id"], utc(i["start"]), utc(i["end"]), i["showAs"]) for i in page["value"]]
        url = page.get("@odata.nextLink")
    return found


async def seed_projection(
    dsn: str, calendars: list[list[str]], instances: list[list[list[Any]]]
) -> dict[str, Any]:
    """The same events in the projection: one connection per user whose Conflict Calendars are
    that user's emulator calendars, fresh sync statuses, every instance by COPY."""
    now = datetime.now(UTC)
    connections, freshness, sequences, rows = [], [], [], []
    for n, cal_ids in enumerate(calendars):
        cid = uuid.UUID(int=n + 1)
        connections.append(
            (cid, 1, SUB, f"user-{n}", "active", "one_way", cal_ids[0], cal_ids, list(BLOCKING),
             None, START)
        )  # fmt: skip
        for c, cal in enumerate(cal_ids):
            freshness.append((cid, cal, "healthy", "active", now, now))
            sequences.append((cid, cal, len(instances[n][c])))
            for e, (event_id, start, end, show_as) in enumerate(instances[n][c]):
                rows.append((cid, cal, event_id, Range(start, end), show_as, False, None, e + 1))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "outlook_connections",
            columns=CONNECTION_COLUMNS,
            records=connections,
        )
        await conn.copy_records_to_table(
            "outlook_calendar_freshness",
            columns=FRESHNESS_COLUMNS,
            records=freshness,
        )
        await conn.copy_records_to_table("outlook_calendar_sequences", records=sequences)
        await conn.copy_records_to_table(
            "outlook_events",
            columns=EVENT_COLUMNS,
            records=rows,
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return {
        "users": len(calendars),
        "calendars_per_user": CALENDARS_PER_USER,
        "single_events_per_calendar": None,
        "series_per_calendar": len(SERIES),
        "instances": len(rows),
    }


# --- timing ------------------------------------------------------------------------------------

Ask = Callable[[int, datetime], Awaitable[list[Interval]]]


def request_of(rng: random.Random, users: int) -> tuple[int, datetime]:
    return rng.randrange(users), START + timedelta(days=rng.randrange(SPREAD_DAYS - 7))


async def timed(ask: Ask, users: int, clients: int, seconds: float, seed: int) -> dict[str, Any]:
    """``clients`` closed loops of ``ask`` for ``seconds``: rate and latency (ms)."""
    rng = random.Random(seed)
    latencies: list[float] = []
    intervals = 0
    deadline = perf_counter() + seconds

    async def client() -> None:
        nonlocal intervals
        while perf_counter() < deadline:
            user, start = request_of(rng, users)
            began = perf_counter()
            found = await ask(user, start)
            latencies.append((perf_counter() - began) * 1000)
            intervals += len(found)

    load_before = loadavg()
    began = perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = perf_counter() - began
    q = statistics.quantiles(latencies, n=100)
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "busy_intervals_per_answer": round(intervals / len(latencies), 1),
        "latency_ms_p50": round(q[49], 2),
        "latency_ms_p90": round(q[89], 2),
        "latency_ms_p99": round(q[98], 2),
        "load_average_before": load_before,
        "load_average_after": loadavg(),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from msgraph_emulator.graph.auth import SigningKey, mint_access_token

    key = SigningKey.generate()
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tenant = str(uuid.uuid4())
    users = bench_users(args.users, tenant)
    graph_tokens = [
        mint_access_token(
            key,
            issuer_base="http://bench",
            user_id=u["id"],
            tenant_id=tenant,
            client_id=CLIENT_ID,
            scopes=["Calendars.Read"],
            lifetime_s=3600,
        )
        for u in users
    ]
    port = free_port()
    graph = f"http://127.0.0.1:{port}"
    child = mp.get_context("spawn").Process(
        target=serve, args=(port, pem, key.kid, users, args.events_per_calendar)
    )
    child.start()
    token = mint(AUTH, subject="bench", sub_account_id=SUB)
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "2 cores shared by the emulator, the service, PostgreSQL, Kafka and this "
            "script (see load averages)",
        },
        "graph": "the emulator, child process, plain HTTP, no added latency, throttling on",
        "target_p99_ratio": TARGET_P99_RATIO,
    }
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, f"{graph}/_bench/calendars", timeout_s=60)
            async with session.get(f"{graph}/_bench/calendars") as r:
                by_user = await r.json()
            calendars = [by_user[u["id"]] for u in users]
            instances = [
                [await occurrences(session, graph, graph_tokens[n], c) for c in cals]
                for n, cals in enumerate(calendars)
            ]
            with tempfile.TemporaryDirectory(prefix="vs-graph-bench-") as tmp:
                async with database(os.environ["CALSYNC_TEST_DATABASE_URL"]) as dsn:
                    result["dataset"] = await seed_projection(dsn, calendars, instances)
                    result["dataset"]["single_events_per_calendar"] = args.events_per_calendar
                    result["dataset"]["days"] = SPREAD_DAYS
                    async with service(dsn, Path(tmp), args.replicas) as (url, _):

                        async def peers(user: int, start: datetime) -> list[Interval]:
                            return await peer_busy(
                                session, graph, graph_tokens[user], calendars[user], start,
                                start + WINDOW, args.page,
                            )  # fmt: skip

                        async def ours(user: int, start: datetime) -> list[Interval]:
                            return await projection_busy(
                                session, url, token, user, start, start + WINDOW
                            )

                        result["agreement"] = await agree(peers, ours, args)
                        result |= await measure({"peers": peers, "projection": ours}, args)
    finally:
        child.terminate()
        child.join()
    p99 = {m: result[m]["concurrent"]["latency_ms_p99"] for m in ("peers", "projection")}
    alone = {m: result[m]["one_client"]["latency_ms_p99"] for m in ("peers", "projection")}
    result["p99_ratio"] = round(p99["peers"] / p99["projection"], 1)
    result["p99_ratio_one_client"] = round(alone["peers"] / alone["projection"], 1)
    result["verdict"] = {"projection_20x_faster_at_p99": result["p99_ratio"] >= TARGET_P99_RATIO}
    return result


async def agree(peers: Ask, ours: Ask, args: argparse.Namespace) -> dict[str, Any]:
    """Both methods give the same busy intervals for the same requests, or the bench stops."""
    rng = random.Random(11)
    intervals = 0
    for _ in range(args.check):
        user, start = request_of(rng, args.users)
        theirs, mine = await peers(user, start), await ours(user, start)
        if theirs != mine:
            raise RuntimeError(
                f"the methods disagree for user-{user} from {start}: "
                f"{len(theirs)} intervals from Graph, {len(mine)} from the projection"
            )
        intervals += len(mine)
    return {"requests": args.check, "busy_intervals": intervals, "equal": True}


async def measure(methods: dict[str, Ask], args: argparse.Namespace) -> dict[str, Any]:
    """Each method: a warm-up, then ``--clients`` concurrent clients, then one; the same random
    requests for both (same seeds)."""
    out: dict[str, Any] = {}
    for name, ask in methods.items():
        await timed(ask, args.users, args.clients, args.warmup, seed=1)
        calls = GRAPH_CALLS[0]
        out[name] = {
            "concurrent": await timed(ask, args.users, args.clients, args.seconds, seed=2),
            "one_client": await timed(ask, args.users, 1, args.seconds, seed=3),
        }
        answers = out[name]["concurrent"]["requests"] + out[name]["one_client"]["requests"]
        out[name]["graph_requests_per_answer"] = round((GRAPH_CALLS[0] - calls) / answers, 2)
    # Outlook's budget is 10,000 requests per app and mailbox per 10 minutes: how often one
    # member's availability can be asked, sustained, before Graph throttles the peers' method.
    per_answer = out["peers"]["graph_requests_per_answer"]
    out["peers"]["answers_per_member_per_s_within_budget"] = round(10_000 / 600 / per_answer, 1)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--events-per-calendar", type=int, default=250)
    parser.add_argument("--page", type=int, default=100, help="calendarView page size (Prefer)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--check", type=int, default=50, help="requests compared before timing")
    parser.add_argument("--replicas", type=int, default=2)
    arguments = parser.parse_args()
    outcome = asyncio.run(main(arguments))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps({k: outcome[k] for k in ("p99_ratio", "p99_ratio_one_client", "verdict")}))
