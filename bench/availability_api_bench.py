"""The availability API's speed as a real process (``make bench``): busy query, free slots, booking.

The service runs as it does in production (``python -m calsync_availability``, ``--replicas`` child
processes sharing one port with SO_REUSEPORT, default 2: one per core, as a 2-core host would run
it), on a throw-away database of the local PostgreSQL and a fresh topic prefix on the local
Kafka. The projection tables are seeded directly by COPY: ``--users`` members (one connection,
one Conflict Calendar, a fresh sync status each) with ``--events-per-user`` busy rows over 90
days. Load comes from ``wrk`` (another process, Lua scripts below); every figure is taken after a
``--warmup``.

* busy: ``GET .../users/{user}/busy`` for a random member over 7 days, ``--busy-clients``
  connections. Targets: p99 <= 10 ms at >= 3,000 requests/s, and >= 35 % of the raw-SQL rate:
  the projection's busy statement (``busy_queries.outlook_busy``) alone, run by as many asyncpg
  clients in this process, same data, same run.
* free slots: ``GET .../calendars/{id}/free-slots`` of a 5-member round-robin calendar (members in
  five zones, 30-minute slots, buffers) over 14 days, ``--slots-clients`` connections, then one
  (latency without queueing). Target: p99 <= 25 ms.
* booking: ``POST .../bookings`` with a fresh Idempotency-Key each, on 10 hot calendars (personal,
  round robin, collective; hourly slots over 14 days, so most attempts meet a taken slot and get
  409), ``--booking-clients`` connections. Targets: >= 2,000 attempts/s, p99 <= 50 ms, and zero
  overlapping confirmed bookings (the self-join at the end, not the service's word).

The machine has 2 cores shared by the service, PostgreSQL, Kafka, wrk and this script (and, when
other work runs, by that too): the JSON records the load average around each phase. Writes JSON to
``--out``. Needs the local stack's env (``deploy/local/with-env.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from asyncpg import Range

from calsync_availability.adapters import busy_queries
from calsync_availability.bootstrap import MIGRATIONS, SERVICE, SESSION
from calsync_common.http.auth import AuthSettings, mint
from calsync_common.postgres.migrations import upgrade

#: A Monday well ahead of any run, so minimum notice never bites; busy rows span 90 days from it.
START = datetime(2027, 1, 4, tzinfo=UTC)
SPREAD_DAYS = 90
CALENDAR = "AAMk-bench"
SUB = "sub-bench"
AUTH = AuthSettings.development(audience="calsync-availability")  # the child's default
ZONES = ["Europe/Bucharest", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC"]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
ALL_DAYS = (*WEEKDAYS, "saturday", "sunday")
BOOKING_DAYS = 14
TARGETS = {
    "busy_p99_ms": 10.0,
    "busy_requests_per_s": 3000,
    "busy_share_of_raw_sql": 0.35,
    "free_slots_p99_ms": 25.0,
    "booking_attempts_per_s": 2000,
    "booking_p99_ms": 50.0,
}
PHASES = ("busy", "free_slots", "booking")
#: Columns of the projection tables as the seeds COPY them (records in this order).
CONNECTION_COLUMNS = [
    "connection_id", "version", "sub_account_id", "user_id", "status", "sync_preference",
    "linked_calendar_id", "conflict_calendar_ids", "blocking_show_as", "time_zone", "changed_at",
]  # fmt: skip
FRESHNESS_COLUMNS = [
    "connection_id", "calendar_id", "status", "subscription", "last_synced_at", "changed_at",
]  # fmt: skip
EVENT_COLUMNS = [
    "connection_id", "calendar_id", "event_id", "during", "show_as", "is_all_day", "booking_id",
    "ce_sequence",
]  # fmt: skip
OVERLAPS = """
SELECT count(*) FROM bookings a JOIN bookings b
  ON a.sub_account_id = b.sub_account_id AND a.user_id = b.user_id
 AND a.booking_id < b.booking_id AND a.during && b.during
WHERE a.status = 'confirmed' AND b.status = 'confirmed'
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def connection_id(user: int) -> uuid.UUID:
    return uuid.UUID(int=user + 1)


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- database ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database(admin_dsn: str) -> AsyncIterator[str]:
    name = f"bench_availability_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = f"{admin_dsn.rpartition('/')[0]}/{name}"
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        finally:
            await conn.close()
        await upgrade(dsn, SERVICE, MIGRATIONS)
        yield dsn
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def seed(dsn: str, users: int, per_user: int) -> dict[str, Any]:
    """Connections, fresh sync statuses and busy rows, by COPY into the indexed tables."""
    rng = random.Random(1)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "outlook_connections",
            columns=CONNECTION_COLUMNS,
            records=[
                (connection_id(u), 1, SUB, f"user-{u}", "active", "one_way", CALENDAR,
                 [CALENDAR], ["busy"], None, START)
                for u in range(users)
            ],
        )  # fmt: skip
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "outlook_calendar_freshness",
            columns=FRESHNESS_COLUMNS,
            records=[(connection_id(u), CALENDAR, "healthy", "active", now, now)
                     for u in range(users)],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "outlook_calendar_sequences",
            records=[(connection_id(u), CALENDAR, per_user) for u in range(users)],
        )
        rows = []
        for u in range(users):
            for n in range(per_user):
                start = START + timedelta(minutes=15 * rng.randrange(SPREAD_DAYS * 24 * 4))
                length = timedelta(minutes=rng.choice((30, 60, 90)))
                rows.append(
                    (connection_id(u), CALENDAR, f"e{n}", Range(start, start + length), "busy",
                     False, None, n + 1)
                )  # fmt: skip
        started = time.perf_counter()
        for first in range(0, len(rows), 10_000):
            await conn.copy_records_to_table(
                "outlook_events",
                columns=EVENT_COLUMNS,
                records=rows[first : first + 10_000],
            )
        elapsed = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return {"busy_rows": len(rows), "users": users, "copy_rows_per_s": round(len(rows) / elapsed)}


# --- the service ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def service(dsn: str, work_dir: Path, replicas: int = 1) -> AsyncIterator[tuple[str, int]]:
    """The service as ``replicas`` child processes sharing one port (SO_REUSEPORT, as replicas
    on one host would), one topic prefix and one database: (the URL, the first one's pid) once
    each answers ``/readyz`` 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVAILABILITY_")}
    env |= {
        "CALSYNC_ENVIRONMENT": "development",  # the development keys this bench signs with
        "CALSYNC_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:8]}.",
        "CALSYNC_LOG_LEVEL": "WARNING",
        "AVAILABILITY_DATABASE_URL": dsn,
        "AVAILABILITY_HTTP__PORT": str(port),
        "AVAILABILITY_HTTP__REUSE_PORT": "true",
    }
    # Settings under test (e.g. AVAILABILITY_DATABASE_POOL_SIZE) pass through as BENCH_*.
    env |= {
        k.removeprefix("BENCH_"): v
        for k, v in os.environ.items()
        if k.startswith("BENCH_AVAILABILITY_")
    }
    url = f"http://127.0.0.1:{port}"
    procs: list[asyncio.subprocess.Process] = []
    try:
        for n in range(replicas):
            log = work_dir / f"availability-{n}.log"
            with log.open("ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "calsync_availability", env=env, stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
            procs.append(proc)
            await _ready(url, proc, log)
        yield url, procs[0].pid
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _ready(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    """Until this replica listens on the shared port (it binds once started) and ``/readyz``
    answers 200."""
    port = int(url.rpartition(":")[2])
    deadline = time.monotonic() + 90
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"the service exited: {_tail(log)}")
        if listens(proc.pid, port):
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{url}/readyz") as resp,
                ):
                    if resp.status == 200:
                        return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service was not ready in 90 s: {log}")
        await asyncio.sleep(0.2)


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


def listens(pid: int, port: int) -> bool:
    """Whether the process holds a listening TCP socket on the port (Linux ``/proc``)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "0A":  # LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        return any(os.readlink(fd) in inodes for fd in fds.iterdir())
    return False


def member(user: str, zone: str, days: tuple[str, ...], start: str, end: str) -> dict[str, Any]:
    return {
        "user_id": user,
        "time_zone": zone,
        "working_hours": [{"day": d, "start": start, "end": end} for d in days],
    }


async def create_calendar(url: str, token: str, body: dict[str, Any]) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/v1/sub-accounts/{SUB}/calendars",
            json={"on_stale": "fail_closed", "stale_after_seconds": 7 * 24 * 3600, **body},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp,
    ):
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])


async def booking_calendars(url: str, token: str) -> list[str]:
    """10 hot calendars on users 0-11: 7 personal, 2 round robin, 1 collective; hourly slots."""

    def cal(type_: str, users: list[int]) -> dict[str, Any]:
        return {
            "name": f"hot {type_}",
            "type": type_,
            "members": [member(f"user-{u}", "UTC", ALL_DAYS, "00:00", "24:00") for u in users],
            "slot_minutes": 60,
        }

    bodies = [cal("personal", [u]) for u in range(7)]
    bodies += [cal("round_robin", [7, 8, 9]), cal("round_robin", [9, 10])]
    bodies.append(cal("collective", [10, 11]))
    return [await create_calendar(url, token, b) for b in bodies]


# --- load: wrk --------------------------------------------------------------------------------

WRK_COMMON = """
local threads = {}
counts = {}
setup = function(thread) table.insert(threads, thread) end
response = function(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
done = function(summary, latency, requests)
  local statuses = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do
      statuses[#statuses + 1] = string.format('"%d":%d', status, n)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"statuses":{%s}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(statuses, ",")))
end
"""

WRK_BUSY = """
math.randomseed(%(seed)d)
local headers = {["Authorization"] = "Bearer %(token)s"}
local days = {%(days)s}
request = function()
  local d = math.random(1, #days - 7)
  local path = "/v1/sub-accounts/%(sub)s/users/user-" .. math.random(0, %(users)d - 1) ..
    "/busy?start=" .. days[d] .. "&end=" .. days[d + 7]
  return wrk.format("GET", path, headers)
end
"""

WRK_SLOTS = """
math.randomseed(%(seed)d)
local headers = {["Authorization"] = "Bearer %(token)s"}
local days = {%(days)s}
request = function()
  local d = math.random(1, #days - 14)
  local path = "/v1/sub-accounts/%(sub)s/calendars/%(calendar)s/free-slots?start=" .. days[d] ..
    "&end=" .. days[d + 14] .. "&timezone=Europe/Bucharest"
  return wrk.format("GET", path, headers)
end
"""

WRK_BOOK = """
math.randomseed(%(seed)d)
local calendars = {%(calendars)s}
local hours = {%(hours)s}
local n = 0
request = function()
  n = n + 1
  local h = math.random(1, #hours - 1)
  local body = '{"booking_calendar_id":"' .. calendars[math.random(1, #calendars)] ..
    '","start":"' .. hours[h] .. '","end":"' .. hours[h + 1] .. '","title":"bench"}'
  local headers = {
    ["Authorization"] = "Bearer %(token)s",
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "bench-%(seed)d-" .. n,
  }
  return wrk.format("POST", "/v1/sub-accounts/%(sub)s/bookings", headers, body)
end
"""


def lua_list(values: list[str]) -> str:
    return ",".join(f'"{v}"' for v in values)


async def wrk(
    url: str, script: str, connections: int, seconds: float, work_dir: Path
) -> dict[str, Any]:
    path = work_dir / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    path.write_text(script + WRK_COMMON)
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
        "-s", str(path), url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    found = re.search(r"^WRK_JSON (\{.*\})$", text, re.M)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text}")
    raw = json.loads(found.group(1))
    return {
        "connections": connections,
        "seconds": seconds,
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "latency_ms_p50": round(raw["p50_us"] / 1000, 2),
        "latency_ms_p90": round(raw["p90_us"] / 1000, 2),
        "latency_ms_p99": round(raw["p99_us"] / 1000, 2),
        "latency_ms_max": round(raw["max_us"] / 1000, 2),
        "statuses": raw["statuses"],
        "socket_errors": raw["socket_errors"],
        "load_average_after": loadavg(),
    }


async def measured(
    phase: str,
    target: tuple[str, int],
    script: str,
    connections: int,
    args: argparse.Namespace,
    work_dir: Path,
) -> dict[str, Any]:
    """A warm-up run, then the measured one (sampled by py-spy with ``--profile``: such a run's
    figures are for finding hot spots, not for the report)."""
    url, pid = target
    if args.warmup > 0:
        await wrk(url, script, connections, args.warmup, work_dir)
    profiler = None
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        py_spy = os.environ.get("PY_SPY", "py-spy")
        profiler = await asyncio.create_subprocess_exec(
            py_spy, "record", "-p", str(pid), "-d", str(int(args.seconds)), "-r", "250",
            "-f", "raw", "-o", str(args.profile / f"{phase}.txt"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    before = {"load_average_before": loadavg()}
    result = before | await wrk(url, script, connections, args.seconds, work_dir)
    if profiler is not None:
        await profiler.wait()
    return result


# --- the raw-SQL baseline ---------------------------------------------------------------------


async def raw_busy_sql(dsn: str, users: int, clients: int, seconds: float) -> dict[str, Any]:
    """The projection's busy statement alone, ``clients`` asyncpg connections in this process,
    with the service's session parameters (generic plans, as the service runs it: planned once
    per connection, not on every call)."""
    latencies: list[float] = []
    rng = random.Random(3)
    async with asyncpg.create_pool(
        dsn, min_size=clients, max_size=clients, server_settings=SESSION
    ) as pool:

        async def client(until: float, record: bool) -> None:
            async with pool.acquire() as conn:
                while time.perf_counter() < until:
                    user = f"user-{rng.randrange(users)}"
                    start = START + timedelta(days=rng.randrange(SPREAD_DAYS - 7))
                    began = time.perf_counter()
                    await busy_queries.outlook_busy(
                        conn, SUB, [user], start, start + timedelta(days=7)
                    )
                    if record:
                        latencies.append((time.perf_counter() - began) * 1000)

        warm = time.perf_counter() + 2
        await asyncio.gather(*(client(warm, False) for _ in range(clients)))
        before = loadavg()
        began = time.perf_counter()
        until = began + seconds
        await asyncio.gather(*(client(until, True) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "clients": clients,
        "queries": len(latencies),
        "queries_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms_p50": round(q[49], 2),
        "latency_ms_p99": round(q[98], 2),
        "load_average_before": before,
        "load_average_after": loadavg(),
    }


# --- the run ----------------------------------------------------------------------------------


async def free_slots_phase(
    target: tuple[str, int],
    token: str,
    common: dict[str, Any],
    args: argparse.Namespace,
    work_dir: Path,
) -> dict[str, Any]:
    slots_calendar = await create_calendar(
        target[0],
        token,
        {
            "name": "round robin of five",
            "type": "round_robin",
            "members": [
                member(f"user-{100 + i}", zone, WEEKDAYS, "09:00", "17:00")
                for i, zone in enumerate(ZONES)
            ],
            "slot_minutes": 30,
            "buffer_before_minutes": 10,
            "buffer_after_minutes": 10,
        },
    )
    slots = WRK_SLOTS % {**common, "calendar": slots_calendar}
    result = await measured("free_slots", target, slots, args.slots_clients, args, work_dir)
    # The same with one connection: the latency of a request that waits for none.
    result["one_connection"] = await measured("free_slots_one", target, slots, 1, args, work_dir)
    return result


async def booking_phase(
    target: tuple[str, int],
    dsn: str,
    token: str,
    common: dict[str, Any],
    hours: list[str],
    args: argparse.Namespace,
    work_dir: Path,
) -> dict[str, Any]:
    calendars = await booking_calendars(target[0], token)
    book = WRK_BOOK % {**common, "calendars": lua_list(calendars), "hours": lua_list(hours)}
    args.warmup = 0  # bookings fill the slots: every attempt of the run counts
    booking = await measured("booking", target, book, args.booking_clients, args, work_dir)
    conn = await asyncpg.connect(dsn)
    try:
        overlaps = await conn.fetchval(OVERLAPS)
        confirmed = await conn.fetchval("SELECT count(*) FROM bookings WHERE status = 'confirmed'")
    finally:
        await conn.close()
    return booking | {
        "hot_calendars": len(calendars),
        "slots_per_calendar": BOOKING_DAYS * 24,
        "confirmed_bookings": confirmed,
        "overlapping_pairs": overlaps,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    admin_dsn = os.environ["CALSYNC_TEST_DATABASE_URL"]
    token = mint(AUTH, subject="bench", sub_account_id=SUB)
    days = [iso(START + timedelta(days=d)) for d in range(SPREAD_DAYS)]
    hours = [iso(START + timedelta(hours=h)) for h in range(BOOKING_DAYS * 24 + 1)]
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": loadavg(),
            "note": "2 cores shared by the service, PostgreSQL, Kafka, wrk and this script, and "
            "by whatever else runs on the machine at the time (see load averages)",
        },
        "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory(prefix="availability-bench-") as tmp:
        work_dir = Path(tmp)
        async with database(admin_dsn) as dsn:
            result["dataset"] = await seed(dsn, args.users, args.events_per_user)
            result["replicas"] = args.replicas
            async with service(dsn, work_dir, args.replicas) as target:
                common = {"token": token, "sub": SUB, "days": lua_list(days), "seed": 7}
                if "busy" in args.only:
                    busy_script = WRK_BUSY % {**common, "users": args.users}
                    busy = await measured(
                        "busy", target, busy_script, args.busy_clients, args, work_dir
                    )
                    raw = await raw_busy_sql(dsn, args.users, args.busy_clients, args.seconds)
                    result["busy"] = {
                        "http": busy,
                        "raw_sql": raw,
                        "share_of_raw_sql": round(busy["requests_per_s"] / raw["queries_per_s"], 3),
                    }
                if "free_slots" in args.only:
                    result["free_slots"] = await free_slots_phase(
                        target, token, common, args, work_dir
                    )
                if "booking" in args.only:
                    result["booking"] = await booking_phase(
                        target, dsn, token, common, hours, args, work_dir
                    )
    verdict: dict[str, bool] = {}
    if "busy" in result:
        busy_http = result["busy"]["http"]
        verdict["busy_p99"] = busy_http["latency_ms_p99"] <= TARGETS["busy_p99_ms"]
        verdict["busy_rate"] = busy_http["requests_per_s"] >= TARGETS["busy_requests_per_s"]
        verdict["busy_share"] = (
            result["busy"]["share_of_raw_sql"] >= TARGETS["busy_share_of_raw_sql"]
        )
    if "free_slots" in result:
        verdict["free_slots_p99"] = (
            result["free_slots"]["latency_ms_p99"] <= TARGETS["free_slots_p99_ms"]
        )
    if "booking" in result:
        booking = result["booking"]
        verdict["booking_rate"] = booking["requests_per_s"] >= TARGETS["booking_attempts_per_s"]
        verdict["booking_p99"] = booking["latency_ms_p99"] <= TARGETS["booking_p99_ms"]
        verdict["zero_overlaps"] = booking["overlapping_pairs"] == 0
    result["verdict"] = verdict
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--events-per-user", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--busy-clients", type=int, default=16)
    parser.add_argument("--slots-clients", type=int, default=8)
    parser.add_argument("--booking-clients", type=int, default=32)
    parser.add_argument(
        "--replicas", type=int, default=2, help="service processes sharing the port (one a core)"
    )
    parser.add_argument(
        "--only",
        choices=PHASES,
        action="append",
        help="run this phase (repeat; default: all)",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy each measured phase into this folder (PY_SPY=path)"
    )
    args = parser.parse_args()
    args.only = args.only or list(PHASES)
    return args


if __name__ == "__main__":
    arguments = parse_args()
    outcome = asyncio.run(main(arguments))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome["verdict"]))
