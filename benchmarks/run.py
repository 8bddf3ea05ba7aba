"""dcr-middleware benchmark: pass-through, registration, anchors, Redis costs, store growth,
a burst.

    .venv/bin/python benchmarks/run.py            # full run (about 10 minutes)
    .venv/bin/python benchmarks/run.py --quick    # a few seconds per case, under 90 s in all

Starts its own redis-server and app servers on loopback, drives them with ``wrk`` (or the bounded
Python load generator ``pyload.py`` when wrk is absent), and prints one table; the same figures go
to ``benchmarks/results/latest.json``. Every figure is the median of interleaved rounds (round 1
runs every case, then round 2 ...), the baselines and anchors measured in the same run. See
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import http.client
import json
import os
import platform
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import inproc
from harness import (
    HOST,
    LoadResult,
    RedisServer,
    Server,
    ServerSpec,
    have_wrk,
    request,
    run_burst,
    run_pyload,
    run_wrk,
    start_server,
    wrk_script,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CONNECTIONS = 32
GENEROUS_LIMIT = "1000000/second"  # checked on every registration, never refuses
CONFIDENTIAL = {
    "redirect_uris": ["http://127.0.0.1:8765/callback"],
    "client_name": "bench client",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic",
}
PUBLIC = {**CONFIDENTIAL, "token_endpoint_auth_method": "none"}
BODY_CONF = json.dumps(CONFIDENTIAL).encode()
BODY_PUBLIC = json.dumps(PUBLIC).encode()


@dataclass(frozen=True)
class Mode:
    """How long and how often."""

    name: str
    rounds: int
    seconds: int
    warmup: int
    batch: int  # registrations per Redis-cost probe
    sizes: tuple[int, ...]  # store growth levels
    micro_seconds: float  # in-process rate-limit loop
    in_process: inproc.Budget  # the in-process extras (inproc.py)


FULL = Mode(
    "full",
    rounds=7,
    seconds=3,
    warmup=1,
    batch=200,
    sizes=(10_000, 100_000, 1_000_000),
    micro_seconds=3.0,
    in_process=inproc.Budget(count=5000, seconds=3.0, runs=5),
)
QUICK = Mode(
    "quick",
    rounds=1,
    seconds=1,
    warmup=0,
    batch=30,
    sizes=(10_000,),
    micro_seconds=0.5,
    in_process=inproc.Budget(count=300, seconds=0.5, runs=1),
)


@dataclass(frozen=True)
class Case:
    """One load run: ``method path`` against server ``server``, expecting ``expect``."""

    name: str
    group: str
    server: str
    method: str
    path: str
    body: bytes | None
    expect: int
    note: str = ""


def server_specs(redis_url: str, growth_url: str) -> list[ServerSpec]:
    """Every server the cases need (started only when a selected case uses it)."""
    dcr = (
        ("DCR_REDIS_URL", redis_url),
        ("DCR_KEY_PREFIX", "dcr"),
        ("DCR_RATE_LIMIT", GENEROUS_LIMIT),
    )
    refusing = (
        ("DCR_REDIS_URL", redis_url),
        ("DCR_KEY_PREFIX", "dcr429"),
        ("DCR_RATE_LIMIT", "1/hour"),
    )
    burst = (
        ("DCR_REDIS_URL", redis_url),
        ("DCR_KEY_PREFIX", "dcrburst"),
        ("DCR_RATE_LIMIT", "off"),
    )
    growth = (
        ("DCR_REDIS_URL", growth_url),
        ("DCR_KEY_PREFIX", "dcr"),
        ("DCR_RATE_LIMIT", GENEROUS_LIMIT),
    )
    return [
        ServerSpec("bare-asgi-uv", "uvicorn", "bench_apps:bare_asgi"),
        ServerSpec("bare-asgi-uv-2", "uvicorn", "bench_apps:bare_asgi"),
        ServerSpec("dcr-asgi-uv", "uvicorn", "dcr_asgi:app", dcr),
        ServerSpec("bare-asgi-gu", "gunicorn-asgi", "bench_apps:bare_asgi"),
        ServerSpec("dcr-asgi-gu", "gunicorn-asgi", "dcr_asgi:app", dcr),
        ServerSpec("bare-wsgi-gt", "gunicorn-gthread", "bench_apps:bare_wsgi"),
        ServerSpec("dcr-wsgi-gt", "gunicorn-gthread", "dcr_wsgi:app", dcr),
        ServerSpec("bare-wsgi-sync", "gunicorn-sync", "bench_apps:bare_wsgi"),
        ServerSpec("dcr-wsgi-sync", "gunicorn-sync", "dcr_wsgi:app", dcr),
        ServerSpec("mcp-memory-uv", "uvicorn", "anchor_mcp:app_memory"),
        ServerSpec("mcp-redis-uv", "uvicorn", "anchor_mcp:app_redis"),
        ServerSpec("minimal-starlette-uv", "uvicorn", "anchor_minimal:app_starlette"),
        ServerSpec("minimal-asgi-uv", "uvicorn", "anchor_minimal:app_asgi"),
        ServerSpec("authlib-flask-sync", "gunicorn-sync", "anchor_authlib:app"),
        ServerSpec("dcr429-asgi-uv", "uvicorn", "dcr_asgi:app", refusing),
        ServerSpec("dcr429-wsgi-gt", "gunicorn-gthread", "dcr_wsgi:app", refusing),
        ServerSpec("growth-asgi-uv", "uvicorn", "dcr_asgi:app", growth),
        # Not used before the burst: their connection pools are cold, as after a deploy.
        ServerSpec("burst-asgi-uv", "uvicorn", "dcr_asgi:app", burst),
        ServerSpec("burst-patient-asgi-uv", "uvicorn", "dcr_asgi:app", (*burst, *PATIENT)),
    ]


SYNC_NOTE = "sync worker: new TCP connection per request"
CASES = [
    Case("pt-bare-asgi-uv", "pass-through", "bare-asgi-uv", "GET", "/", None, 200, "baseline"),
    Case("pt-dcr-asgi-uv", "pass-through", "dcr-asgi-uv", "GET", "/", None, 200),
    Case(
        "pt-bare-asgi-uv-aa",
        "pass-through",
        "bare-asgi-uv-2",
        "GET",
        "/",
        None,
        200,
        "A/A control: a 2nd identical bare server",
    ),
    Case("pt-bare-asgi-gu", "pass-through", "bare-asgi-gu", "GET", "/", None, 200, "baseline"),
    Case("pt-dcr-asgi-gu", "pass-through", "dcr-asgi-gu", "GET", "/", None, 200),
    Case("pt-bare-wsgi-gt", "pass-through", "bare-wsgi-gt", "GET", "/", None, 200, "baseline"),
    Case("pt-dcr-wsgi-gt", "pass-through", "dcr-wsgi-gt", "GET", "/", None, 200),
    Case("pt-bare-wsgi-sync", "pass-through", "bare-wsgi-sync", "GET", "/", None, 200, SYNC_NOTE),
    Case("pt-dcr-wsgi-sync", "pass-through", "dcr-wsgi-sync", "GET", "/", None, 200, SYNC_NOTE),
    Case("reg-asgi-uv-conf", "register", "dcr-asgi-uv", "POST", "/register", BODY_CONF, 201),
    Case("reg-asgi-uv-public", "register", "dcr-asgi-uv", "POST", "/register", BODY_PUBLIC, 201),
    Case("reg-asgi-gu-conf", "register", "dcr-asgi-gu", "POST", "/register", BODY_CONF, 201),
    Case("reg-asgi-gu-public", "register", "dcr-asgi-gu", "POST", "/register", BODY_PUBLIC, 201),
    Case("reg-wsgi-gt-conf", "register", "dcr-wsgi-gt", "POST", "/register", BODY_CONF, 201),
    Case("reg-wsgi-gt-public", "register", "dcr-wsgi-gt", "POST", "/register", BODY_PUBLIC, 201),
    Case(
        "reg-wsgi-sync-conf",
        "register",
        "dcr-wsgi-sync",
        "POST",
        "/register",
        BODY_CONF,
        201,
        SYNC_NOTE,
    ),
    Case(
        "anchor-mcp-memory",
        "anchor",
        "mcp-memory-uv",
        "POST",
        "/register",
        BODY_CONF,
        201,
        "MCP SDK RegistrationHandler, dict provider",
    ),
    Case(
        "anchor-mcp-redis",
        "anchor",
        "mcp-redis-uv",
        "POST",
        "/register",
        BODY_CONF,
        201,
        "MCP SDK RegistrationHandler, redis.asyncio SET NX",
    ),
    Case(
        "anchor-min-starlette",
        "anchor",
        "minimal-starlette-uv",
        "POST",
        "/register",
        BODY_CONF,
        201,
        "Starlette route, 1 pipelined round trip",
    ),
    Case(
        "anchor-min-asgi",
        "anchor",
        "minimal-asgi-uv",
        "POST",
        "/register",
        BODY_CONF,
        201,
        "pure ASGI, 1 pipelined round trip",
    ),
    Case(
        "anchor-authlib-flask",
        "anchor",
        "authlib-flask-sync",
        "POST",
        "/register",
        BODY_CONF,
        201,
        "Authlib endpoint, Flask, SET NX; " + SYNC_NOTE,
    ),
    Case(
        "429-asgi-uv",
        "rate-limited",
        "dcr429-asgi-uv",
        "POST",
        "/register",
        BODY_CONF,
        429,
        "DCR_RATE_LIMIT=1/hour: every request refused",
    ),
    Case(
        "429-wsgi-gt",
        "rate-limited",
        "dcr429-wsgi-gt",
        "POST",
        "/register",
        BODY_CONF,
        429,
        "DCR_RATE_LIMIT=1/hour: every request refused",
    ),
]
EXTRAS = ("redis-costs", "store-growth", "ratelimit-cost", "burst", "hot-path", "registration-cpu")
# The in-process extras (inproc.py): which of its cases each runs.
IN_PROCESS = {"hot-path": inproc.LOOKUPS, "registration-cpu": inproc.REGISTRATION}
# The burst: this many registrations sent at once, one connection each, to one uvicorn worker,
# with the default Redis settings and with generous waits. What the defaults answer 503 beyond
# what the patient server does is load shed by DCR_REDIS_POOL_TIMEOUT (and the connect and
# command timeouts) on a machine too busy to drain the burst in time.
BURST = {"full": 1000, "quick": 200}
PATIENT = (
    ("DCR_REDIS_POOL_TIMEOUT", "10"),
    ("DCR_REDIS_CONNECT_TIMEOUT", "5"),
    ("DCR_REDIS_TIMEOUT", "10"),
)
BURST_SERVERS = {
    "defaults": "burst-asgi-uv",
    "pool wait 10 s, connect 5 s, command 10 s": "burst-patient-asgi-uv",
}

# Redis-cost probes: (label, server, body, key pattern of the stored client).
PROBES = [
    ("dcr ASGI public", "dcr-asgi-uv", BODY_PUBLIC, "dcr:client:*"),
    ("dcr ASGI confidential", "dcr-asgi-uv", BODY_CONF, "dcr:client:*"),
    ("dcr WSGI confidential", "dcr-wsgi-gt", BODY_CONF, "dcr:client:*"),
    ("MCP SDK + Redis", "mcp-redis-uv", BODY_CONF, "mcp:client:*"),
    ("minimal Starlette", "minimal-starlette-uv", BODY_CONF, "min:client:*"),
    ("minimal pure ASGI", "minimal-asgi-uv", BODY_CONF, "min:client:*"),
    ("Authlib + Flask", "authlib-flask-sync", BODY_CONF, "authlib:client:*"),
]

# (what, case, baseline case, target ratio): a MISS is reported, never asserted.
TARGETS = [
    (
        "noise floor (A/A): bare / identical bare, uvicorn 1w",
        "pt-bare-asgi-uv-aa",
        "pt-bare-asgi-uv",
        0.98,
    ),
    ("pass-through ASGI, uvicorn 1w: dcr / bare", "pt-dcr-asgi-uv", "pt-bare-asgi-uv", 0.98),
    ("pass-through ASGI, gunicorn 2w: dcr / bare", "pt-dcr-asgi-gu", "pt-bare-asgi-gu", 0.98),
    ("pass-through WSGI, gunicorn gthread: dcr / bare", "pt-dcr-wsgi-gt", "pt-bare-wsgi-gt", 0.98),
    ("pass-through WSGI, gunicorn sync: dcr / bare", "pt-dcr-wsgi-sync", "pt-bare-wsgi-sync", 0.98),
    (
        "registration, uvicorn 1w: dcr conf / MCP SDK+Redis",
        "reg-asgi-uv-conf",
        "anchor-mcp-redis",
        1.5,
    ),
    (
        "registration, gunicorn 2w sync: dcr WSGI conf / Authlib+Flask",
        "reg-wsgi-sync-conf",
        "anchor-authlib-flask",
        1.3,
    ),
    (
        "registration, uvicorn 1w: dcr conf / minimal pure ASGI",
        "reg-asgi-uv-conf",
        "anchor-min-asgi",
        1.0,
    ),
    (
        "(extra) registration, uvicorn 1w: dcr conf / minimal Starlette",
        "reg-asgi-uv-conf",
        "anchor-min-starlette",
        1.0,
    ),
    (
        "(extra) registration, uvicorn 1w: dcr public / MCP SDK+Redis",
        "reg-asgi-uv-public",
        "anchor-mcp-redis",
        1.5,
    ),
    (
        "(extra) registration: dcr WSGI gunicorn 2w gthread / Authlib+Flask gunicorn 2w sync",
        "reg-wsgi-gt-conf",
        "anchor-authlib-flask",
        1.3,
    ),
]


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe_machine(redis_server: RedisServer, tool: str) -> dict[str, Any]:
    """nproc, CPU, Python, redis-server and the libraries that matter."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk_version = None
    if tool == "wrk":
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        wrk_version = (out.stdout + out.stderr).strip().splitlines()[0]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis_server.version(),
        "load_generator": wrk_version
        or ("pyload.py (Python fallback: " + ("--python-load" if have_wrk() else "no wrk") + ")"),
        "loadavg_at_start": os.getloadavg()[0],
        "packages": {
            name: _version(name)
            for name in (
                "dcr-middleware",
                "uvicorn",
                "uvloop",
                "httptools",
                "gunicorn",
                "uvicorn-worker",
                "redis",
                "hiredis",
                "starlette",
                "mcp",
                "authlib",
                "flask",
            )
        },
        "uvicorn_loop_http": "uvloop + httptools (uvicorn --loop uvloop --http httptools; "
        "UvicornWorker picks them by 'auto')",
    }


@contextlib.contextmanager
def stack(
    specs: list[ServerSpec], base_env: dict[str, str], directory: Path
) -> Iterator[dict[str, Server]]:
    """Start the servers in parallel, wait until ready, stop them all on exit."""
    servers: dict[str, Server] = {}
    try:
        for spec in specs:
            servers[spec.name] = start_server(spec, base_env, directory)
        for server in servers.values():
            try:
                server.wait_ready()
            except Exception as exc:
                raise RuntimeError(
                    f"{server.spec.name} did not start: {exc}\n{server.log_tail()}"
                ) from exc
        yield servers
    finally:
        for server in servers.values():
            server.signal_stop()
        for server in servers.values():
            server.stop()


def check(case: Case, server: Server) -> str | None:
    """One request (two for a 429 case) answered with the expected status, or the problem."""
    try:
        status, body = request(server.url, case.method, case.path, case.body)
        if case.expect == 429 and status != 429:
            status, body = request(server.url, case.method, case.path, case.body)
    except OSError as exc:
        return f"request failed: {exc}"
    if status != case.expect:
        return f"expected {case.expect}, got {status}: {body[:200]!r}"
    return None


def load(
    case: Case, server: Server, seconds: int, tool: str, directory: Path, redis_server: RedisServer
) -> LoadResult:
    """One timed run with the server tree's and redis-server's CPU time around it."""
    url = server.url + case.path
    server_cpu, redis_cpu = server.cpu(), redis_server.cpu()
    if tool == "wrk":
        script = wrk_script(directory, case.name, case.method, case.body)
        result = run_wrk(url, script, seconds, CONNECTIONS)
    else:
        result = run_pyload(url, case.method, case.body, seconds, CONNECTIONS, directory)
    result.server_cpu_s = server.cpu() - server_cpu
    result.redis_cpu_s = redis_server.cpu() - redis_cpu
    return result


def summarize(runs: list[LoadResult]) -> dict[str, Any]:
    """Medians over rounds (CPU per request: median of each round's ratio)."""

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    per_request = [r.server_cpu_s / r.requests * 1e6 for r in runs if r.requests]
    redis_per_request = [r.redis_cpu_s / r.requests * 1e6 for r in runs if r.requests]
    return {
        "rps": round(med([r.rps for r in runs]), 1),
        "p50_ms": round(med([r.p50_ms for r in runs]), 3),
        "p99_ms": round(med([r.p99_ms for r in runs]), 3),
        "server_cpu_us_per_req": round(med(per_request), 1),
        "redis_cpu_us_per_req": round(med(redis_per_request), 1),
        "non_2xx": sum(r.non_2xx for r in runs),
        "errors": sum(r.errors for r in runs),
        "requests": sum(r.requests for r in runs),
        "rounds": [r.as_dict() for r in runs],
    }


def run_rounds(
    cases: list[Case],
    servers: dict[str, Server],
    mode: Mode,
    tool: str,
    directory: Path,
    redis_server: RedisServer,
) -> dict[str, Any]:
    """Check each case, warm it up, then interleaved rounds; medians per case."""
    results: dict[str, Any] = {}
    live: list[Case] = []
    for case in cases:
        problem = check(case, servers[case.server])
        if problem is not None:
            log(f"{case.name}: BROKEN, skipped: {problem}")
            results[case.name] = {"broken": problem}
        else:
            live.append(case)
    if mode.warmup:
        for case in live:
            load(case, servers[case.server], mode.warmup, tool, directory, redis_server)
    runs: dict[str, list[LoadResult]] = {case.name: [] for case in live}
    for number in range(mode.rounds):
        log(f"round {number + 1}/{mode.rounds}: {len(live)} cases x {mode.seconds}s")
        # Rotate the order each round so that no case always follows the same neighbour.
        order = live[number % len(live) :] + live[: number % len(live)] if live else []
        for case in order:
            try:
                runs[case.name].append(
                    load(case, servers[case.server], mode.seconds, tool, directory, redis_server)
                )
            except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
                log(f"{case.name}: run failed: {exc}")
    for case in live:
        if not any(run.requests for run in runs[case.name]):
            results[case.name] = {"broken": "no run completed"}
            continue
        results[case.name] = {
            "group": case.group,
            "server": servers[case.server].spec.label,
            "note": case.note,
            **summarize(runs[case.name]),
        }
    return results


def _monitor_ready(admin: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.get("cmd") == "monitor" for c in admin.client_list()):
            return
        time.sleep(0.02)
    raise RuntimeError("redis-cli monitor did not start")


def _sequential(server: Server, body: bytes, count: int) -> int:
    """``count`` registrations one after the other on a keep-alive connection; 201s."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    created = 0
    try:
        for _ in range(count):
            conn.request(
                "POST", "/register", body=body, headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            response.read()
            created += response.status == 201
    finally:
        conn.close()
    return created


_ADMIN_COMMANDS = {"info", "config|resetstat", "client|list", "monitor", "config", "client"}


def redis_costs(
    servers: dict[str, Server], redis_server: RedisServer, batch: int, directory: Path
) -> dict[str, Any]:
    """Commands, client commands and round trips per registration, and memory per client.

    For each probe, ``batch`` sequential registrations with nothing else talking to Redis:
    - commands: ``INFO commandstats`` delta (commands run inside Lua scripts included);
    - client commands: MONITOR lines not issued from Lua (MONITOR marks script commands "lua");
    - round trips: ``total_reads_processed`` delta (one read event per request the client sends:
      a pipeline of three commands written at once is one read).
    """
    admin = redis_server.client()
    admin_addr = str(admin.client_info()["addr"])
    out: dict[str, Any] = {}
    redis_cli = shutil.which("redis-cli")
    for label, name, body, pattern in PROBES:
        server = servers.get(name)
        if server is None:
            continue
        _sequential(server, body, 5)  # connections open, scripts loaded
        monitor = None
        monitor_log = directory / f"monitor-{name}.log"
        if redis_cli is not None:
            monitor = subprocess.Popen(
                [redis_cli, "-h", HOST, "-p", str(redis_server.port), "monitor"],
                stdout=monitor_log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            _monitor_ready(admin)
        admin.config_resetstat()
        reads_before = int(admin.info("stats")["total_reads_processed"])
        created = _sequential(server, body, batch)
        reads_after = int(admin.info("stats")["total_reads_processed"])
        stats = admin.info("commandstats")
        client_commands: dict[str, int] = {}
        if monitor is not None:
            time.sleep(0.3)
            monitor.terminate()
            monitor.wait(timeout=10)
            for line in monitor_log.read_text(errors="replace").splitlines():
                match = re.match(r'^[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"', line)
                if match is None or match.group(1) in ("lua", admin_addr):
                    continue
                command = match.group(2).lower()
                client_commands[command] = client_commands.get(command, 0) + 1
        commands = {
            key.removeprefix("cmdstat_"): int(value["calls"])
            for key, value in stats.items()
            if key.removeprefix("cmdstat_") not in _ADMIN_COMMANDS
        }
        n = max(created, 1)
        out[label] = {
            "server": name,
            "registrations": created,
            "commands_per_registration": round(sum(commands.values()) / n, 2),
            "commands": {k: round(v / n, 2) for k, v in sorted(commands.items())},
            "client_commands_per_registration": (
                round(sum(client_commands.values()) / n, 2) if monitor is not None else None
            ),
            "client_commands": {k: round(v / n, 2) for k, v in sorted(client_commands.items())},
            # The final INFO's own read is counted before it answers: take it off.
            "round_trips_per_registration": round((reads_after - reads_before - 1) / n, 2),
            **client_memory(admin, pattern),
        }
        log(
            f"redis costs {label}: {out[label]['round_trips_per_registration']} round trips, "
            f"{out[label]['commands_per_registration']} commands"
        )
    return out


def client_memory(admin: Any, pattern: str, sample: int = 100) -> dict[str, Any]:
    """Median ``MEMORY USAGE`` (and value length) over stored clients matching ``pattern``."""
    keys: list[bytes] = []
    for key in admin.scan_iter(match=pattern, count=1000):
        keys.append(key)
        if len(keys) >= sample:
            break
    if not keys:
        return {"memory_bytes_per_client": None}
    usage = [int(admin.memory_usage(key, samples=0) or 0) for key in keys]
    kinds = {admin.type(key).decode() for key in keys[:5]}
    lengths = [int(admin.strlen(key)) for key in keys] if kinds == {"string"} else []
    return {
        "memory_bytes_per_client": int(statistics.median(usage)),
        "record_type": ",".join(sorted(kinds)),
        "record_bytes": int(statistics.median(lengths)) if lengths else None,
    }


def seed(admin: Any, port: int, target: int, template_key: bytes, counter: list[int]) -> str:
    """Write copies of a real record (fresh ids, same key pattern) until ``counter[0]`` (the
    number of keys) reaches ``target``: through ``redis-cli --pipe`` when it is installed,
    pipelined writes otherwise. Returns the method used."""
    key_text = template_key.decode()
    template_id = key_text[key_text.index("{") + 1 : key_text.rindex("}")]
    key_head = key_text[: key_text.index("{")]
    kind = admin.type(template_key).decode()
    value = admin.get(template_key) if kind == "string" else admin.dump(template_key)
    id_bytes = max(8, len(template_id) * 3 // 4)
    missing = target - counter[0]
    if missing <= 0:
        return "none"
    redis_cli = shutil.which("redis-cli")
    if kind == "string" and redis_cli is not None:
        db = int(admin.connection_pool.connection_kwargs.get("db", 0))
        feeder = subprocess.Popen(
            [redis_cli, "-h", HOST, "-p", str(port), "-n", str(db), "--pipe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert feeder.stdin is not None
        old_id = template_id.encode()
        chunk: list[bytes] = []
        for _ in range(missing):
            new_id = secrets.token_urlsafe(id_bytes).encode()
            key = key_head.encode() + b"{" + new_id + b"}"
            record = value.replace(old_id, new_id)
            chunk.append(
                b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                % (len(key), key, len(record), record)
            )
            if len(chunk) == 10_000:
                feeder.stdin.write(b"".join(chunk))
                chunk = []
        feeder.stdin.write(b"".join(chunk))
        feeder.stdin.close()
        output = feeder.stdout.read().decode(errors="replace") if feeder.stdout else ""
        feeder.wait(timeout=300)
        if feeder.returncode != 0 or "errors: 0" not in output:
            raise RuntimeError(f"redis-cli --pipe failed: {output[-300:]}")
        counter[0] += missing
        return "redis-cli --pipe"
    pipe = admin.pipeline(transaction=False)
    for number in range(1, missing + 1):
        fresh = secrets.token_urlsafe(id_bytes)
        name = f"{key_head}{{{fresh}}}"
        if kind == "string":
            pipe.set(name, value.replace(template_id.encode(), fresh.encode()), nx=True)
        else:
            pipe.restore(name, 0, value)
        if number % 5000 == 0:
            pipe.execute()
    pipe.execute()
    counter[0] += missing
    return "pipelined writes"


def store_growth(
    server: Server, redis_server: RedisServer, db: int, mode: Mode, tool: str, directory: Path
) -> dict[str, Any]:
    """Registration rate and latency at each store size (seeded directly, then measured)."""
    admin = redis_server.client(db)
    case = Case("growth", "register", server.spec.name, "POST", "/register", BODY_CONF, 201)
    problem = check(case, server)
    if problem is not None:
        return {"broken": problem}
    template = next(iter(admin.scan_iter(match="dcr:client:*", count=1000)), None)
    if template is None:
        return {"broken": "no stored client to copy"}
    counter = [int(admin.dbsize())]
    levels: dict[str, Any] = {}
    for size in mode.sizes:
        started = time.monotonic()
        memory_before = int(admin.info("memory")["used_memory"])
        seeded_from = counter[0]
        method = seed(admin, redis_server.port, size, template, counter)
        seeded = counter[0] - seeded_from
        memory_after = int(admin.info("memory")["used_memory"])
        stored = int(admin.dbsize())
        log(
            f"store growth: {stored} keys (seeded {seeded} with {method} in "
            f"{time.monotonic() - started:.1f}s)"
        )
        runs = [
            load(case, server, mode.seconds, tool, directory, redis_server)
            for _ in range(min(mode.rounds, 3))
        ]
        levels[str(size)] = {
            "keys_at_start": stored,
            "seeded": seeded,
            "seeded_with": method,
            "used_memory_per_seeded_client": (
                round((memory_after - memory_before) / seeded) if seeded else None
            ),
            **summarize(runs),
        }
        counter[0] = int(admin.dbsize())
    return levels


def ratelimit_cost(redis_server: RedisServer, seconds: float) -> dict[str, Any]:
    """In-process calls/s of the package's sync and async backend ``hit`` against Redis."""
    try:
        from dcr_middleware import Settings
        from dcr_middleware.core.ratelimit import parse_rate_limits
        from dcr_middleware.storage.redis import AsyncRedisBackend, RedisBackend
    except ImportError as exc:
        return {"unavailable": f"import failed: {exc}"}
    settings = Settings.from_env(
        {
            "DCR_REDIS_URL": redis_server.url(2),
            "DCR_KEY_PREFIX": "rl",
            "DCR_RATE_LIMIT": GENEROUS_LIMIT,
        }
    )
    limits = parse_rate_limits(GENEROUS_LIMIT)
    out: dict[str, Any] = {"policy": GENEROUS_LIMIT}

    class Clock:
        """Starts the measurement once the connections are open (``start``)."""

        def __init__(self) -> None:
            self.deadline = 0.0
            self.began = 0.0
            self.cpu = 0.0
            self.redis = 0.0

        def start(self) -> float:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.cpu, self.redis = usage.ru_utime + usage.ru_stime, redis_server.cpu()
            self.began = time.perf_counter()
            self.deadline = self.began + seconds
            return self.deadline

    def timed(label: str, body: Callable[[Clock], int]) -> None:
        clock = Clock()
        calls = body(clock)
        elapsed = time.perf_counter() - clock.began
        usage = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = usage.ru_utime + usage.ru_stime - clock.cpu
        calls = max(calls, 1)
        out[label] = {
            "calls_per_s": round(calls / elapsed, 1),
            "client_cpu_us_per_call": round(client_cpu / calls * 1e6, 1),
            "redis_cpu_us_per_call": round((redis_server.cpu() - clock.redis) / calls * 1e6, 1),
        }

    bucket = "ip:127.0.0.1"
    try:
        backend = RedisBackend(settings)

        def sync_loop(clock: Clock) -> int:
            backend.hit(bucket, limits)
            deadline, calls = clock.start(), 0
            while time.perf_counter() < deadline:
                backend.hit(bucket, limits)
                calls += 1
            return calls

        timed("sync_hit", sync_loop)
        backend.close()

        async def async_loop(clock: Clock, concurrency: int) -> int:
            abackend = AsyncRedisBackend(settings)
            # Open every connection before the clock starts.
            await asyncio.gather(*(abackend.hit(bucket, limits) for _ in range(concurrency)))
            deadline = clock.start()
            counts = [0] * concurrency

            async def one(index: int) -> None:
                while time.perf_counter() < deadline:
                    await abackend.hit(bucket, limits)
                    counts[index] += 1

            await asyncio.gather(*(one(i) for i in range(concurrency)))
            await abackend.close()
            return sum(counts)

        import uvloop

        for concurrency in (1, 32):

            def run_async(clock: Clock, c: int = concurrency) -> int:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    return runner.run(async_loop(clock, c))

            timed(f"async_hit_x{concurrency}", run_async)
    except (AttributeError, TypeError, ImportError) as exc:
        out["unavailable"] = f"backend API changed: {type(exc).__name__}: {exc}"
    return out


def in_process(
    redis_server: RedisServer, names: list[str], budget: inproc.Budget
) -> dict[str, Any]:
    """CPU per call of ``inproc.py``'s cases against the run's Redis (database 3), with this
    process and redis-server on one CPU: a round trip between two CPUs cost this two-core VM
    about 35 us more client CPU, and which one it got changed from run to run."""
    assert redis_server.process is not None
    pids = (0, redis_server.process.pid)
    saved = [os.sched_getaffinity(pid) for pid in pids]
    cpu = min(saved[0])
    try:
        for pid in pids:
            os.sched_setaffinity(pid, {cpu})
        log(f"in process, on CPU {cpu}: {', '.join(names)}")
        return inproc.run_all(redis_server.url(3), budget, names)
    except (ImportError, AttributeError, TypeError, RuntimeError) as exc:
        return {"unavailable": f"{type(exc).__name__}: {exc}"}
    finally:
        for pid, cpus in zip(pids, saved, strict=True):
            os.sched_setaffinity(pid, cpus)


def burst(server: Server, count: int) -> dict[str, Any]:
    """``count`` registrations at once on a cold worker: statuses, p50 and p99 latency."""
    result = run_burst(server.url, "/register", BODY_CONF, count)
    log(
        f"burst of {count}: {result.statuses}, {result.errors} errors, p50 {result.p50_ms:.0f} ms, "
        f"p99 {result.p99_ms:.0f} ms"
    )
    return {"server": server.spec.label, **result.as_dict()}


def _paired(case: dict[str, Any], baseline: dict[str, Any]) -> float | None:
    """Median over rounds of the case's req/s over the baseline's in the same round."""
    pairs = [
        a["rps"] / b["rps"]
        for a, b in zip(case.get("rounds", []), baseline.get("rounds", []), strict=False)
        if a["rps"] and b["rps"]
    ]
    return round(statistics.median(pairs), 3) if pairs else None


def unexpected_answers(row: dict[str, Any], expect: int) -> str | None:
    """Why a case's figures cannot back a verdict, or ``None``: answers the case does not expect
    (non-2xx when it expects a 2xx; 2xx when it expects a refusal such as 429) or failed
    requests, in any round. A server that starts refusing or failing mid-run answers faster, so
    its req/s would count refusals as throughput."""
    requests, non_2xx = row.get("requests", 0), row.get("non_2xx", 0)
    wrong = non_2xx if 200 <= expect < 300 else requests - non_2xx
    problems = [f"{wrong} of {requests} answers not {expect}"] if wrong else []
    if row.get("errors", 0):
        problems.append(f"{row['errors']} failed requests")
    return ", ".join(problems) or None


def ratios(cases: dict[str, Any], costs: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target as a ratio of medians measured in this run; PASS or MISS, never asserted.

    Beside it, two checks on the noise: the median of per-round ratios (each round's pair measured
    minutes apart at most), and the inverse ratio of server CPU per request (baseline / case), which
    moves less than req/s when other load shares the machine. The verdict is on the first. It is
    INVALID when the case or its baseline got answers it does not expect, or failed requests.
    """
    expected = {c.name: c.expect for c in CASES}
    lines = []
    for what, case, baseline, target in TARGETS:
        row, base = cases.get(case, {}), cases.get(baseline, {})
        a, b = row.get("rps"), base.get("rps")
        ratio = round(a / b, 3) if a and b else None
        cpu_a, cpu_b = row.get("server_cpu_us_per_req"), base.get("server_cpu_us_per_req")
        cpu_ratio = round(cpu_b / cpu_a, 3) if cpu_a and cpu_b else None
        verdict = "n/a" if ratio is None else ("PASS" if ratio >= target else "MISS")
        if what.startswith("noise") and ratio is not None:
            verdict = "info"  # how far two identical servers drift: not a target
        invalid = [
            f"{name}: {problem}"
            for name, figures in ((case, row), (baseline, base))
            if (problem := unexpected_answers(figures, expected[name]))
        ]
        if invalid and ratio is not None:
            verdict = "INVALID"
        lines.append(
            {
                "what": what,
                "case": case,
                "baseline": baseline,
                "target": target,
                "ratio": ratio,
                "verdict": verdict,
                "paired_ratio": _paired(row, base),
                "cpu_ratio": cpu_ratio,
                **({"invalid": "; ".join(invalid)} if invalid else {}),
            }
        )
    for label in ("dcr ASGI public", "dcr ASGI confidential", "dcr WSGI confidential"):
        trips = costs.get(label, {}).get("round_trips_per_registration")
        for target, name in ((1.0, "aim"), (2.0, "limit")):
            verdict = "n/a" if trips is None else ("PASS" if trips <= target + 0.05 else "MISS")
            lines.append(
                {
                    "what": f"Redis round trips per registration, {label} ({name})",
                    "case": label,
                    "baseline": None,
                    "target": f"<= {target:g}",
                    "ratio": trips,
                    "verdict": verdict,
                }
            )
    return lines


def render(report: dict[str, Any]) -> str:
    """The printed table."""
    m = report["machine"]
    out = [
        f"dcr-middleware benchmark, {report['mode']} mode, {report['finished_at']}",
        f"machine: {m['nproc']} CPU ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"redis-server {m['redis_server']}",
        f"load: {m['load_generator']}, 1 thread, {CONNECTIONS} connections, "
        f"{report['rounds']} interleaved round(s) x {report['seconds']}s, medians",
        f"uvicorn {m['packages']['uvicorn']} with uvloop {m['packages']['uvloop']} + httptools "
        f"{m['packages']['httptools']}; gunicorn {m['packages']['gunicorn']}; redis-py "
        f"{m['packages']['redis']} + hiredis {m['packages']['hiredis']}",
        f"load average (1 min) at start {m['loadavg_at_start']:.2f}, at end "
        f"{report['loadavg_at_end']:.2f}: the machine is shared, compare ratios, not absolutes",
        f"registration cases: DCR_RATE_LIMIT={GENEROUS_LIMIT} (checked on every request, never "
        "refuses); server CPU = utime+stime of the server process tree; redis CPU separately",
        "",
    ]
    head = (
        f"{'case':<22} {'server':<27} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'srv us/req':>10} {'redis us/req':>12} {'non2xx':>7} {'err':>4}  note"
    )
    out += [head, "-" * len(head)]
    for name, row in report["cases"].items():
        if "broken" in row:
            out.append(f"{name:<22} BROKEN: {row['broken']}")
            continue
        out.append(
            f"{name:<22} {row['server']:<27} {row['rps']:>8.0f} {row['p50_ms']:>7.2f} "
            f"{row['p99_ms']:>7.2f} {row['server_cpu_us_per_req']:>10.0f} "
            f"{row['redis_cpu_us_per_req']:>12.1f} {row['non_2xx']:>7} {row['errors']:>4}  "
            f"{row['note']}"
        )
    if report.get("redis_costs"):
        out += ["", "Redis per registration (sequential batch; commands include those run in Lua):"]
        out.append(
            f"{'anchor/case':<24} {'round trips':>11} {'client cmds':>11} {'commands':>9} "
            f"{'mem B/client':>12} {'record B':>9}  client commands"
        )
        for label, row in report["redis_costs"].items():
            out.append(
                f"{label:<24} {row['round_trips_per_registration']:>11} "
                f"{row['client_commands_per_registration']!s:>11} "
                f"{row['commands_per_registration']:>9} "
                f"{row.get('memory_bytes_per_client')!s:>12} {row.get('record_bytes')!s:>9}  "
                + " ".join(f"{k}={v:g}" for k, v in row["client_commands"].items())
            )
    growth = report.get("store_growth")
    if growth:
        out += ["", "Registration (uvicorn 1w, confidential) while the store grows:"]
        if "broken" in growth:
            out.append(f"BROKEN: {growth['broken']}")
        else:
            out.append(
                f"{'level':>9} {'keys':>9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
                f"{'B/seeded client':>15}"
            )
            for level, row in growth.items():
                out.append(
                    f"{level:>9} {row['keys_at_start']:>9} {row['rps']:>8.0f} "
                    f"{row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} "
                    f"{row['used_memory_per_seeded_client']!s:>15}"
                )
    bursts = report.get("burst")
    if bursts:
        out += ["", "Burst (registrations sent at once, one connection each, DCR_RATE_LIMIT=off):"]
        for label, row in bursts.items():
            if "broken" in row:
                out.append(f"{label}: BROKEN: {row['broken']}")
                continue
            statuses = " ".join(f"{k}x{v}" for k, v in row["statuses"].items())
            out.append(
                f"{row['count']} on {row['server']}, {label}: p50 {row['p50_ms']:.0f} ms, "
                f"p99 {row['p99_ms']:.0f} ms, non-2xx {row['non_2xx']}, errors {row['errors']} "
                f"({statuses}; {row['seconds']:.2f} s in all)"
            )
    rate = report.get("ratelimit_cost")
    if rate:
        out += [
            "",
            f"Rate-limit check alone, in process (backend.hit, policy {rate.get('policy')}):",
        ]
        if "unavailable" in rate:
            out.append(f"unavailable: {rate['unavailable']}")
        for label, row in rate.items():
            if isinstance(row, dict):
                out.append(
                    f"{label:<14} {row['calls_per_s']:>9.0f} calls/s  client CPU "
                    f"{row['client_cpu_us_per_call']:.0f} us/call  redis CPU "
                    f"{row['redis_cpu_us_per_call']:.1f} us/call"
                )
    for extra in IN_PROCESS:
        rows = report.get(extra.replace("-", "_"))
        if rows:
            out += ["", f"In process ({extra}; inproc.py, client CPU per call, medians of runs):"]
            if "unavailable" in rows:
                out.append(f"unavailable: {rows['unavailable']}")
            else:
                out += inproc.render(rows)
    out += [
        "",
        "Targets (ratio of median req/s from this run; the per-round paired median and the "
        "CPU-per-request ratio show the noise):",
    ]
    for line in report["ratios"]:
        ratio = "n/a" if line["ratio"] is None else f"{line['ratio']:g}"
        target = line["target"] if isinstance(line["target"], str) else f">= {line['target']:g}"
        extra = ""
        if line.get("paired_ratio") is not None or line.get("cpu_ratio") is not None:
            extra = (
                f"; per-round paired {line.get('paired_ratio')!s}, "
                f"CPU/request baseline/case {line.get('cpu_ratio')!s}"
            )
        if line.get("invalid"):
            extra += f"; INVALID: {line['invalid']}"
        out.append(f"  {line['verdict']:<4} {line['what']}: {ratio} (target {target}{extra})")
    return "\n".join(out)


def selected(patterns: list[str] | None, name: str) -> bool:
    """Whether ``--only`` selects ``name`` (shell-style patterns; none given: everything)."""
    return not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds per case, one round (CI: keeps the harness working)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="where to write the JSON results (default: benchmarks/results/latest.json, "
        "--quick: benchmarks/results/quick.json)",
    )
    parser.add_argument(
        "--txt",
        type=Path,
        default=None,
        help="also write the printed table here (default: next to --json)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="CASE",
        help="cases to run, shell patterns (e.g. 'reg-*' anchor-mcp-redis); "
        f"extras: {', '.join(EXTRAS)}",
    )
    parser.add_argument("--rounds", type=int, help="override the mode's rounds")
    parser.add_argument("--seconds", type=int, help="override the mode's seconds per run")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="print the table of an earlier run's JSON (ratios recomputed) and exit",
    )
    parser.add_argument(
        "--python-load",
        action="store_true",
        help="use the Python load generator even when wrk is installed",
    )
    args = parser.parse_args()
    if args.render:
        old = json.loads(args.render.read_text())
        old["ratios"] = ratios(old["cases"], old.get("redis_costs", {}))
        print(render(old))
        return 0
    mode = QUICK if args.quick else FULL
    json_path: Path = args.json or RESULTS / ("quick.json" if args.quick else "latest.json")
    if args.rounds or args.seconds:
        mode = Mode(
            mode.name,
            args.rounds or mode.rounds,
            args.seconds or mode.seconds,
            mode.warmup,
            mode.batch,
            mode.sizes,
            mode.micro_seconds,
            mode.in_process,
        )
    tool = "wrk" if have_wrk() and not args.python_load else "pyload"
    if tool == "pyload":
        log("wrk not found (or --python-load): using the bounded Python load generator")
    cases = [case for case in CASES if selected(args.only, case.name)]
    extras = [name for name in EXTRAS if selected(args.only, name)]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dcr-bench-") as tmp:
        directory = Path(tmp)
        redis_server = RedisServer(directory / "redis")
        redis_server.start()
        try:
            specs = {s.name: s for s in server_specs(redis_server.url(0), redis_server.url(1))}
            needed = {case.server for case in cases}
            if "redis-costs" in extras:
                needed |= {name for _, name, _, _ in PROBES}
            if "store-growth" in extras:
                needed.add("growth-asgi-uv")
            if "burst" in extras:
                needed |= set(BURST_SERVERS.values())
            base_env = {
                **os.environ,
                "PYTHONDONTWRITEBYTECODE": "1",
                "BENCH_REDIS_URL": redis_server.url(0),
            }
            base_env = {k: v for k, v in base_env.items() if not k.startswith("DCR_")}
            machine = describe_machine(redis_server, tool)
            log(f"starting {len(needed)} servers")
            with stack([specs[n] for n in specs if n in needed], base_env, directory) as servers:
                log(f"servers ready after {time.monotonic() - started:.1f}s")
                report: dict[str, Any] = {
                    "mode": mode.name,
                    "rounds": mode.rounds,
                    "seconds": mode.seconds,
                    "connections": CONNECTIONS,
                    "rate_limit_during_registration": GENEROUS_LIMIT,
                    "machine": machine,
                    "cases": run_rounds(cases, servers, mode, tool, directory, redis_server),
                }
                if "redis-costs" in extras:
                    report["redis_costs"] = redis_costs(
                        servers, redis_server, mode.batch, directory
                    )
                if "store-growth" in extras:
                    report["store_growth"] = store_growth(
                        servers["growth-asgi-uv"], redis_server, 1, mode, tool, directory
                    )
                if "burst" in extras:
                    report["burst"] = {}
                    for label, name in BURST_SERVERS.items():
                        try:
                            row = burst(servers[name], BURST[mode.name])
                        except (OSError, TimeoutError, RuntimeError) as exc:
                            row = {"broken": repr(exc)}
                        report["burst"][label] = row
            if "ratelimit-cost" in extras:
                report["ratelimit_cost"] = ratelimit_cost(redis_server, mode.micro_seconds)
            for extra, names in IN_PROCESS.items():
                if extra in extras:
                    key = extra.replace("-", "_")
                    report[key] = in_process(redis_server, list(names), mode.in_process)
        finally:
            redis_server.stop()
    report["ratios"] = ratios(report["cases"], report.get("redis_costs", {}))
    report["loadavg_at_end"] = os.getloadavg()[0]
    report["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    text = render(report)
    print(text)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    txt = args.txt or json_path.with_suffix(".txt")
    txt.write_text(text + "\n")
    log(f"done in {report['wall_seconds']}s: {json_path} and {txt}")
    broken = [name for name, row in report["cases"].items() if "broken" in row]
    for label, row in report.get("redis_costs", {}).items():
        if not row["registrations"]:
            broken.append(f"redis-costs ({label})")
    if "broken" in report.get("store_growth", {}):
        broken.append("store-growth")
    for label, row in report.get("burst", {}).items():
        if "broken" in row:
            broken.append(f"burst ({label})")
    for extra in IN_PROCESS:
        if "unavailable" in report.get(extra.replace("-", "_"), {}):
            broken.append(extra)
    if "unavailable" in report.get("ratelimit_cost", {}):
        log(f"ratelimit-cost unavailable: {report['ratelimit_cost']['unavailable']}")
    if broken:
        log(f"broken cases: {', '.join(broken)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
