"""The connector's speed as real processes (``make bench``): token endpoint, burst, callback.

Everything runs as it does in production: a throw-away database on the local PostgreSQL, the Graph
emulator (``python -m msgraph_emulator``, HTTPS) and the connector (``python -m calsync_connector``)
as child processes, sandbox users signed in through the real flow (start, the emulator's authorize
page with ``x-emulator-user``, its form_post fields posted to ``/oauth/callback``).

* access-token throughput: ``POST /internal/v1/connections/{id}/access-token`` with a sync-worker
  service token, spread over ``--users`` connections whose tokens are cached, driven by ``wrk``
  (another process; an aiohttp load process when wrk is missing) for ``--duration`` seconds after
  a ``--warmup``. Target: >= 2,000 requests/s.
* refresh burst: a fresh connection whose stored access token is expired (and which this
  connector process never served, so it holds no copy in memory) gets ``--burst`` concurrent
  requests over pre-opened connections; the emulator's ``msgraph_emulator_token_requests_total``
  must grow by exactly 1.
* callback overhead: ``--signins`` sign-ins timed at the connector (the callback POST only), each
  interleaved with the same work done directly against the emulator (MSAL redeems the code, then
  ``/me``, ``/me/mailboxSettings/timeZone``, ``/me/calendars``). Target: p99 difference <= 50 ms.

Writes JSON to ``--out``. Needs the local stack's env (``deploy/local/with-env.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import msal
import requests

from calsync_common.http.auth import AuthSettings, mint
from calsync_connector.adapters.token_cipher import Sealed, TokenCipher, TokenCipherSettings
from calsync_connector.service_layer.connect import token_context

RETURN_URL = "http://localhost:3000/settings/calendars"
# The sandbox app registration (the connector's defaults; its redirect URI is registered).
CLIENT_ID = "5f1a0c7e-0b1d-4c4e-9f43-5a6d3e2b7c10"
CLIENT_SECRET = "sandbox-secret~not-a-real-credential-0123456789"  # the emulator's, public
REDIRECT_URI = "http://localhost:8081/oauth/callback"
SCOPES = ["Calendars.ReadWrite", "User.Read"]
AUTH = AuthSettings.development()  # what the child connector verifies with by default
TARGET_RPS = 2000
TARGET_OVERHEAD_MS = 50.0
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores."""
    cpu = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = cpu[3] + cpu[4]
    return sum(cpu) - idle, sum(cpu)


def tail(log: Path, lines: int = 40) -> str:
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class HiddenForm(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[str(a["name"])] = a.get("value") or ""


# --- processes and database ----------------------------------------------------------------


async def stopped(proc: subprocess.Popen[bytes], grace_s: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


async def wait_until(
    ready: Callable[[], Awaitable[bool]], proc: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    """Poll ``ready`` until it holds; fail fast if the process dies, give up after 90 s."""
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail(log)}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            if await ready():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within 90 s (log: {log})")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def throwaway_database(admin_dsn: str) -> AsyncIterator[str]:
    name = f"bench_connector_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield f"{admin_dsn.rpartition('/')[0]}/{name}"
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


class Stack:
    """The emulator and the connector as child processes, and the clients that drive them."""

    def __init__(self, work_dir: Path, dsn: str) -> None:
        self.work_dir = work_dir
        self.dsn = dsn
        self.emu_port = free_port()
        self.emu_url = f"https://127.0.0.1:{self.emu_port}"
        self.emu_dir = work_dir / "msgraph"
        self.ca = self.emu_dir / "ca.pem"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.connector: subprocess.Popen[bytes] | None = None
        self.connector_log = work_dir / "connector.log"
        self.browser: aiohttp.ClientSession

    def spawn(self, module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Stack]:
        async with contextlib.AsyncExitStack() as stack:
            emu_log = self.work_dir / "emulator.log"
            emulator = self.spawn(
                "msgraph_emulator",
                {
                    **os.environ,
                    "MSGRAPH_EMU_PORT": str(self.emu_port),
                    "MSGRAPH_EMU_DATA_DIR": str(self.emu_dir),
                    "MSGRAPH_EMU_LOG_LEVEL": "WARNING",
                },
                emu_log,
            )
            stack.push_async_callback(stopped, emulator)

            async def emulator_ready() -> bool:
                if not self.ca.exists():
                    return False
                ctx = ssl.create_default_context(cafile=str(self.ca))
                async with (
                    aiohttp.ClientSession() as s,
                    s.get(f"{self.emu_url}/metrics", ssl=ctx) as resp,
                ):
                    return resp.status == 200

            await wait_until(emulator_ready, emulator, "emulator", emu_log)
            ctx = ssl.create_default_context(cafile=str(self.ca))
            self.browser = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=0))
            )
            stack.push_async_callback(self.stop_connector)
            await self.start_connector()
            yield self

    async def start_connector(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
        env |= {
            "CALSYNC_ENVIRONMENT": "development",  # the development keys this bench signs with
            "CONNECTOR_DATABASE_URL": self.dsn,
            "CONNECTOR_HTTP__PORT": str(self.port),
            "CONNECTOR_MICROSOFT__AUTHORITY": f"{self.emu_url}/common",
            "CONNECTOR_MICROSOFT__GRAPH_URL": f"{self.emu_url}/v1.0",
            "CONNECTOR_MICROSOFT__CA_BUNDLE": str(self.ca),
        }
        self.connector = self.spawn("calsync_connector", env, self.connector_log)

        async def ready() -> bool:
            async with self.browser.get(f"{self.url}/readyz") as resp:
                return resp.status == 200

        await wait_until(ready, self.connector, "connector", self.connector_log)

    async def stop_connector(self) -> None:
        if self.connector is not None:
            await stopped(self.connector)

    # --- the platform and the browser ------------------------------------------------------

    async def new_user(self) -> str:
        name = uuid.uuid4().hex[:10]
        body = {
            "kind": "work",
            "userPrincipalName": f"bench{name}@fabrikam.example",
            "displayName": f"Bench {name}",
            "timeZone": "Europe/Bucharest",
        }
        async with self.browser.post(f"{self.emu_url}/_emulator/users", json=body) as resp:
            assert resp.status == 201, await resp.text()
        return body["userPrincipalName"]

    async def consent(self, authorization_url: str, upn: str) -> dict[str, str]:
        async with self.browser.get(
            authorization_url, params={"x-emulator-user": upn}, allow_redirects=False
        ) as resp:
            assert resp.status == 200, await resp.text()
            return HiddenForm(await resp.text()).fields

    async def sign_in(self) -> tuple[str, float]:
        """A new sandbox user connected through the real flow: (connection id, callback ms)."""
        upn = await self.new_user()
        sub_account = f"sa-{uuid.uuid4().hex[:8]}"
        token = mint(AUTH, subject="platform-user", sub_account_id=sub_account)
        async with self.browser.post(
            f"{self.url}/v1/sub-accounts/{sub_account}/users/user-1/connections/outlook",
            json={"return_url": RETURN_URL},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            started = await resp.json()
        fields = await self.consent(started["authorization_url"], upn)
        t0 = time.perf_counter()
        async with self.browser.post(
            f"{self.url}/oauth/callback", data=fields, allow_redirects=False
        ) as resp:
            await resp.read()
            elapsed = (time.perf_counter() - t0) * 1000
            assert resp.status == 303, await resp.text()
            location = resp.headers["Location"]
        query = parse_qs(urlsplit(location).query)
        assert "outlook_connection_id" in query, location
        return query["outlook_connection_id"][0], elapsed

    async def token_requests(self) -> float:
        async with self.browser.get(f"{self.emu_url}/metrics") as resp:
            text = await resp.text()
        pattern = r"^msgraph_emulator_token_requests_total\{[^}]*\} (\S+)$"
        return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


# --- 1. access-token throughput ----------------------------------------------------------------

WRK_SCRIPT = """
local ids = {%(ids)s}
local headers = {["Authorization"] = "Bearer %(token)s"}
local n = 0
request = function()
  n = n + 1
  local path = "/internal/v1/connections/" .. ids[(n %% #ids) + 1] .. "/access-token"
  return wrk.format("POST", path, headers, "")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


async def run_wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    found = re.search(r"^WRK_JSON (\{.*\})$", text, re.M)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text}")
    raw = json.loads(found.group(1))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "latency_ms_p50": round(raw["p50_us"] / 1000, 2),
        "latency_ms_p90": round(raw["p90_us"] / 1000, 2),
        "latency_ms_p99": round(raw["p99_us"] / 1000, 2),
        "latency_ms_max": round(raw["max_us"] / 1000, 2),
        "errors": errors,
        "errors_by_kind": {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")},
    }


def aiohttp_load(
    url: str, ids: list[str], token: str, connections: int, seconds: float, out: Any
) -> None:
    """Child process (when wrk is missing): ``connections`` keep-alive clients for ``seconds``."""

    async def load() -> dict[str, Any]:
        latencies: list[float] = []
        errors = 0
        headers = {"Authorization": f"Bearer {token}"}
        stop_at = time.perf_counter() + seconds
        conn = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(url, connector=conn) as session:

            async def client(k: int) -> None:
                nonlocal errors
                n = k
                while time.perf_counter() < stop_at:
                    path = f"/internal/v1/connections/{ids[n % len(ids)]}/access-token"
                    n += connections
                    t0 = time.perf_counter()
                    try:
                        async with session.post(path, headers=headers) as resp:
                            await resp.read()
                            ok = resp.status == 200
                    except aiohttp.ClientError:
                        ok = False
                    latencies.append((time.perf_counter() - t0) * 1000)
                    errors += not ok

            started = time.perf_counter()
            await asyncio.gather(*(client(k) for k in range(connections)))
            elapsed = time.perf_counter() - started
        return {
            "requests": len(latencies),
            "requests_per_s": round(len(latencies) / elapsed, 1),
            "latency_ms_p50": pct(latencies, 50),
            "latency_ms_p90": pct(latencies, 90),
            "latency_ms_p99": pct(latencies, 99),
            "latency_ms_max": round(max(latencies), 2),
            "errors": errors,
        }

    out.put(asyncio.run(load()))


async def run_aiohttp_load(
    url: str, ids: list[str], token: str, connections: int, seconds: float
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=aiohttp_load, args=(url, ids, token, connections, seconds, queue))
    proc.start()
    try:
        return await asyncio.to_thread(queue.get, True, seconds + 60)
    finally:
        await asyncio.to_thread(proc.join, 30)
        if proc.is_alive():
            proc.kill()


async def start_profiler(
    pid: int, seconds: float, out: Path | None
) -> asyncio.subprocess.Process | None:
    """``py-spy record`` of the connector during the timed run (``--profile``; py-spy from PATH
    or ``PY_SPY``). Its own samples cost the connector a little CPU: a profiled run's figures are
    for finding the hot spots, not for the report."""
    if out is None:
        return None
    py_spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy; or PY_SPY=/path/to/py-spy)")
    fmt = "speedscope" if out.suffix == ".json" else "raw" if out.suffix == ".txt" else "flamegraph"
    args = ["record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200"]
    return await asyncio.create_subprocess_exec(
        py_spy,
        *args,
        "-f",
        fmt,
        "-o",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def throughput(stack: Stack, ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    token = mint(AUTH, subject="sync-worker", service="sync-worker")
    use_wrk = args.load == "wrk" or (args.load == "auto" and shutil.which("wrk") is not None)
    if use_wrk:
        script = stack.work_dir / "access_token.lua"
        quoted = ",".join(f'"{i}"' for i in ids)
        script.write_text(WRK_SCRIPT % {"ids": quoted, "token": token})

        async def load(seconds: float) -> dict[str, Any]:
            return await run_wrk(stack.url, script, args.connections, seconds)

        wrk_v = await asyncio.create_subprocess_exec(
            "wrk", "-v", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        first_line = (await wrk_v.communicate())[0].decode().partition("\n")[0].strip()
        generator = f"{first_line}, 1 thread, Lua request()"
    else:

        async def load(seconds: float) -> dict[str, Any]:
            return await run_aiohttp_load(stack.url, ids, token, args.connections, seconds)

        missing = " (wrk not installed)" if args.load == "auto" else ""
        generator = f"aiohttp client in a spawned process{missing}"
    assert stack.connector is not None
    # Other work on the machine (while this stack idles) skews every figure: measure it.
    idle0 = machine_busy()
    await asyncio.sleep(1)
    idle1 = machine_busy()
    background = round(100 * (idle1[0] - idle0[0]) / max(1, idle1[1] - idle0[1]))
    warmup = await load(args.warmup)
    cpu0, (busy0, total0) = cpu_seconds(stack.connector.pid), machine_busy()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    profiler = await start_profiler(stack.connector.pid, args.duration, args.profile)
    try:
        result = await load(args.duration)
    finally:
        if profiler is not None and profiler.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(profiler.wait(), timeout=args.duration + 30)
            if profiler.returncode is None:
                profiler.kill()
                await profiler.wait()
    if profiler is not None and profiler.returncode != 0:
        err = await profiler.stderr.read() if profiler.stderr else b""
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')}")
    cpu1, (busy1, total1) = cpu_seconds(stack.connector.pid), machine_busy()
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    gen_cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    return {
        "load_generator": generator,
        "connections": args.connections,
        "distinct_connection_ids": len(ids),
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "warmup_requests": warmup["requests"],
        "warmup_errors": warmup["errors"],
        **result,
        "connector_cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / args.duration),
        "load_generator_cpu_pct_of_one_core": round(100 * gen_cpu / args.duration),
        "background_busy_pct_all_cores_before": background,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "machine_busy_pct_all_cores": round(100 * (busy1 - busy0) / max(1, total1 - total0)),
        "profiled_with_py_spy": args.profile is not None,
        "target_requests_per_s": TARGET_RPS,
        "met": result["requests_per_s"] >= TARGET_RPS and result["errors"] == 0,
    }


# --- 2. refresh burst ----------------------------------------------------------------------


async def expire_cached_access_tokens(dsn: str, connection_id: str) -> str:
    """Mark every access token of the stored MSAL cache expired; the old token's secret."""
    cipher = TokenCipher(TokenCipherSettings.development())  # the child connector's default
    cid = uuid.UUID(connection_id)
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT key_id, nonce, ciphertext FROM token_caches WHERE connection_id = $1", cid
        )
        sealed = Sealed(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"]))
        cache = json.loads(cipher.open(sealed, context=token_context(cid)))
        past = str(int(time.time()) - 60)
        old = ""
        for entry in cache.get("AccessToken", {}).values():
            entry["expires_on"] = past
            entry["extended_expires_on"] = past
            old = entry["secret"]
        resealed = cipher.seal(json.dumps(cache).encode(), context=token_context(cid))
        await conn.execute(
            "UPDATE token_caches SET key_id = $2, nonce = $3, ciphertext = $4"
            " WHERE connection_id = $1",
            cid,
            resealed.key_id,
            resealed.nonce,
            resealed.ciphertext,
        )
    finally:
        await conn.close()
    return old


async def burst(stack: Stack, callers: int) -> dict[str, Any]:
    # Never served by this connector process, so it holds no in-memory copy of the token.
    connection_id, _ = await stack.sign_in()
    old_token = await expire_cached_access_tokens(stack.dsn, connection_id)
    token = mint(AUTH, subject="sync-worker", service="sync-worker")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{stack.url}/internal/v1/connections/{connection_id}/access-token"
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def healthz() -> None:
            async with session.get(f"{stack.url}/healthz") as resp:
                await resp.read()

        # Open every caller's connection first: the burst then measures the endpoint, not the
        # listen backlog (aiohttp's is 128).
        await asyncio.gather(*(healthz() for _ in range(callers)))

        async def call() -> tuple[int, str | None, float]:
            t0 = time.perf_counter()
            async with session.post(url, headers=headers) as resp:
                body = await resp.json(content_type=None)
                return resp.status, body.get("access_token"), time.perf_counter() - t0

        before = await stack.token_requests()
        t0 = time.perf_counter()
        answers = await asyncio.gather(*(call() for _ in range(callers)))
        wall = time.perf_counter() - t0
        after = await stack.token_requests()
    statuses: dict[str, int] = {}
    for status, _, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    tokens = {token for _, token, _ in answers if token}
    latencies = [s * 1000 for _, _, s in answers]
    delta = after - before
    return {
        "callers": callers,
        "connections_pre_opened": True,
        "token_requests_to_emulator": delta,
        "wall_ms": round(wall * 1000, 1),
        "latency_ms_p50": pct(latencies, 50),
        "latency_ms_p99": pct(latencies, 99),
        "status_codes": statuses,
        "distinct_access_tokens": len(tokens),
        "new_token_differs_from_expired": old_token not in tokens,
        "met": delta == 1 and statuses == {"200": callers} and len(tokens) == 1,
    }


# --- 3. callback overhead ----------------------------------------------------------------------


class DirectClient:
    """The connector's identity and Graph work done straight against the emulator (MSAL and
    requests with keep-alive, like the connector), timed from the form fields to the last
    Graph answer."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(stack.ca)
        self.http_cache: dict[str, Any] = {}  # shared discovery documents, as the connector

    def app(self, cache: msal.SerializableTokenCache | None = None) -> Any:
        return msal.ConfidentialClientApplication(
            CLIENT_ID,
            client_credential=CLIENT_SECRET,
            authority=f"{self.stack.emu_url}/common",
            http_client=self.session,
            instance_discovery=False,
            token_cache=cache,
            http_cache=self.http_cache,
        )

    def sign_in(self, upn: str) -> float:
        flow = self.app().initiate_auth_code_flow(
            SCOPES, redirect_uri=REDIRECT_URI, response_mode="form_post"
        )
        page = self.session.get(
            flow["auth_uri"], params={"x-emulator-user": upn}, allow_redirects=False, timeout=10
        )
        assert page.status_code == 200, page.text
        fields = HiddenForm(page.text).fields
        t0 = time.perf_counter()
        result = self.app(msal.SerializableTokenCache()).acquire_token_by_auth_code_flow(
            flow, fields
        )
        assert "access_token" in result, result
        headers = {"Authorization": f"Bearer {result['access_token']}"}
        graph = f"{self.stack.emu_url}/v1.0"
        for path in (
            "/me?$select=id,displayName,mail,userPrincipalName",
            "/me/mailboxSettings/timeZone",
            "/me/calendars?$select=id,name,canEdit,isDefaultCalendar,owner&$top=100",
        ):
            resp = self.session.get(graph + path, headers=headers, timeout=10)
            assert resp.status_code == 200, resp.text
        return (time.perf_counter() - t0) * 1000


async def callback_overhead(stack: Stack, n: int) -> dict[str, Any]:
    direct = DirectClient(stack)
    connector_ms: list[float] = []
    direct_ms: list[float] = []
    try:
        for _ in range(5):  # warm both paths (discovery documents, pools, first imports)
            await stack.sign_in()
            await asyncio.to_thread(direct.sign_in, await stack.new_user())
        for _ in range(n):  # interleaved, so drift in the emulator hits both alike
            connector_ms.append((await stack.sign_in())[1])
            upn = await stack.new_user()
            direct_ms.append(await asyncio.to_thread(direct.sign_in, upn))
    finally:
        direct.session.close()
    overhead = pct(connector_ms, 99) - pct(direct_ms, 99)
    return {
        "signins": n,
        "connector_callback_ms_p50": pct(connector_ms, 50),
        "connector_callback_ms_p99": pct(connector_ms, 99),
        "connector_callback_ms_max": round(max(connector_ms), 2),
        "emulator_direct_ms_p50": pct(direct_ms, 50),
        "emulator_direct_ms_p99": pct(direct_ms, 99),
        "emulator_direct_ms_max": round(max(direct_ms), 2),
        "overhead_ms_p50": round(pct(connector_ms, 50) - pct(direct_ms, 50), 2),
        "overhead_ms_p99": round(overhead, 2),
        "target_overhead_ms_p99": TARGET_OVERHEAD_MS,
        "met": overhead <= TARGET_OVERHEAD_MS,
    }


# --- main ------------------------------------------------------------------------------------

METHOD = {
    "processes": "throw-away PostgreSQL database; Graph emulator and connector as child "
    "processes (python -m ...); load generator in its own process; all on the same machine",
    "cpu_sharing": "2 cores shared by connector, PostgreSQL, the emulator (idle during the "
    "throughput phase) and the load generator; figures are lower bounds for a dedicated core",
    "throughput": "wrk -t1 -c<connections>, POST with a sync-worker service JWT, ids round-robin "
    "over connected users whose access tokens are cached; warm-up run, then the timed run",
    "burst": "fresh connection, stored MSAL access token expired in the database before this "
    "connector process ever served it; callers' connections pre-opened, then all fired at once; "
    "refreshes counted by the emulator's msgraph_emulator_token_requests_total",
    "callback": "callback POST timed at the client (form fields to 303); emulator-direct = "
    "MSAL acquire_token_by_auth_code_flow + GET /me, /me/mailboxSettings/timeZone, "
    "/me/calendars (what the callback asks of the emulator), both after an untimed "
    "start/authorize; runs interleaved one by one; overhead = connector p99 - direct p99",
}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    admin_dsn = os.environ["CALSYNC_TEST_DATABASE_URL"]
    if "CALSYNC_KAFKA_BOOTSTRAP" not in os.environ:  # the connector needs it: fail early
        raise SystemExit("CALSYNC_KAFKA_BOOTSTRAP is not set: run under deploy/local/with-env.sh")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp:
        async with throwaway_database(admin_dsn) as dsn:
            stack = Stack(Path(tmp), dsn)
            try:
                async with stack.running():
                    ids: list[str] = []
                    for _ in range(0, args.users, 5):  # a few sign-ins at a time
                        batch = min(5, args.users - len(ids))
                        signed = await asyncio.gather(*(stack.sign_in() for _ in range(batch)))
                        ids += [cid for cid, _ in signed]
                    results["access_token_throughput"] = await throughput(stack, ids, args)
                    results["refresh_burst"] = await burst(stack, args.burst)
                    results["callback_overhead"] = await callback_overhead(stack, args.signins)
            except BaseException:
                print("connector log (tail):", tail(stack.connector_log), sep="\n", file=sys.stderr)
                raise
    return {
        "benchmark": "connector",
        "at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "every process of the benchmark shares these cores",
        },
        "versions": {p: version(p) for p in ("aiohttp", "asyncpg", "msal")},
        "method": METHOD,
        "results": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--users", type=int, default=20, help="connections the load spreads over")
    parser.add_argument("--connections", type=int, default=32, help="load generator's sockets")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--signins", type=int, default=200)
    parser.add_argument("--load", choices=("auto", "wrk", "aiohttp"), default="auto")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the connector during the timed throughput run: .svg flame graph, "
        ".json speedscope, .txt collapsed stacks",
    )
    cli = parser.parse_args()
    report = asyncio.run(main(cli))
    cli.out.parent.mkdir(parents=True, exist_ok=True)
    cli.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
