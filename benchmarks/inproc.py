"""In-process CPU cost of the hot paths, against a real Redis: registration through both
middlewares (beside the anchors of ``run.py`` called the same way), and the authorization
server's lookups (``ClientStore.get`` / ``authenticate``, sync and async, and the cached lookup
of a Client ID Metadata Document) beside a raw redis-py ``GET`` + ``json.loads`` of the same
record.

    .venv/bin/python benchmarks/inproc.py --redis redis://127.0.0.1:6379/0
    .venv/bin/python benchmarks/inproc.py --redis URL --only 'register-*' 'anchor-*'
    .venv/bin/python benchmarks/inproc.py --redis URL --profile register-asgi

No HTTP server and no load generator: each case drives an app (a scope and ``receive`` /
``send`` for ASGI, an environ for WSGI) or the store directly in a loop, one call at a time, and
reads this process's CPU time (``time.process_time``) around the loop: CPU per call of *this*
process, the client side only (Redis's own CPU is not in it). That is the steadier figure for an
A/B on a shared machine; the servers of ``run.py`` add the HTTP server's cost on top. Every loop is
bounded in count and in time, and the runs of the cases are interleaved (run 1 of every case,
then run 2 ...); figures are medians. The asyncio cases run on uvloop when it is installed, as
uvicorn does.

``run.py`` runs the lookup cases as its ``hot-path`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import fnmatch
import io
import json
import logging
import os
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APPS = str(Path(__file__).resolve().parent / "apps")
# The registration body of run.py's cases (confidential client).
CONFIDENTIAL = {
    "redirect_uris": ["http://127.0.0.1:8765/callback"],
    "client_name": "bench client",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic",
}
BODY = json.dumps(CONFIDENTIAL).encode()
RATE_LIMIT = "1000000/second"  # checked on every registration, never refuses
IDLE_TTL = "30d"  # lookups note uses (lookup.lua), as with DCR_CLIENT_IDLE_TTL on
SECRET = "s" * 43
CLIENT_ID = "inprocBenchClient0000w"
# A Client ID Metadata Document client (DCR_CIMD): its document is fetched once, by a stand-in
# fetcher (no HTTPS server needed), then every lookup is a cache hit.
DOCUMENT_URL = "https://client.example/oauth/metadata.json"
DOCUMENT = {
    "client_id": DOCUMENT_URL,
    "client_name": "bench document client",
    "redirect_uris": ["https://client.example/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}
WARMUP = 200

Measure = Callable[["Budget", "cProfile.Profile | None"], tuple[float, float]]
AsyncMeasure = Callable[["Budget", "cProfile.Profile | None"], Awaitable[tuple[float, float]]]


@dataclass(frozen=True)
class Budget:
    """At most ``count`` calls and about ``seconds`` of wall time per run; ``runs`` runs."""

    count: int = 5000
    seconds: float = 3.0
    runs: int = 3


@dataclass
class Figure:
    """One case: CPU µs per call and calls per second, one of each per run."""

    cpu_us: list[float] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cpu_us_per_call": round(statistics.median(self.cpu_us), 1),
            "calls_per_s": round(statistics.median(self.rate)),
            "runs_cpu_us": [round(x, 1) for x in self.cpu_us],
        }


def _settings(redis_url: str, prefix: str, **extra: str) -> Any:
    from dcr_middleware import Settings

    env = {"DCR_REDIS_URL": redis_url, "DCR_KEY_PREFIX": prefix, "DCR_RATE_LIMIT": RATE_LIMIT}
    return Settings.from_env({**env, **extra})


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


@contextmanager
def _profiled(profile: cProfile.Profile | None) -> Iterator[None]:
    if profile is not None:
        profile.enable()
    try:
        yield
    finally:
        if profile is not None:
            profile.disable()


def timed_sync(
    call: Callable[[], object], budget: Budget, profile: cProfile.Profile | None = None
) -> tuple[float, float]:
    """CPU µs per call and calls per second of ``call`` in a bounded loop."""
    for _ in range(WARMUP):
        call()
    deadline = time.perf_counter() + budget.seconds
    calls = 0
    cpu, wall = time.process_time(), time.perf_counter()
    with _profiled(profile):
        while calls < budget.count and time.perf_counter() < deadline:
            call()
            calls += 1
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / calls * 1e6, calls / wall


async def timed_async(
    call: Callable[[], Awaitable[object]], budget: Budget, profile: cProfile.Profile | None = None
) -> tuple[float, float]:
    """:func:`timed_sync` for a coroutine function, one call at a time."""
    for _ in range(WARMUP):
        await call()
    deadline = time.perf_counter() + budget.seconds
    calls = 0
    cpu, wall = time.process_time(), time.perf_counter()
    with _profiled(profile):
        while calls < budget.count and time.perf_counter() < deadline:
            await call()
            calls += 1
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / calls * 1e6, calls / wall


# --- registration: the middlewares and the anchors, called in process ----------------------------

SCOPE = {
    "type": "http",
    "http_version": "1.1",
    "method": "POST",
    "path": "/register",
    "raw_path": b"/register",
    "root_path": "",
    "query_string": b"",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ],
    "client": ("127.0.0.1", 50000),
    "scheme": "http",
    "server": ("127.0.0.1", 8000),
}
ENVIRON = {
    "REQUEST_METHOD": "POST",
    "PATH_INFO": "/register",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "CONTENT_TYPE": "application/json",
    "CONTENT_LENGTH": str(len(BODY)),
    "REMOTE_ADDR": "127.0.0.1",
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
    "wsgi.version": (1, 0),
    "HTTP_HOST": "127.0.0.1:8000",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
}


def _asgi_measure(app: Any, name: str, close: Callable[[], Awaitable[object]]) -> AsyncMeasure:
    message = {"type": "http.request", "body": BODY, "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def one() -> None:
        await app(dict(SCOPE), receive, send)

    async def measure(budget: Budget, profile: cProfile.Profile | None) -> tuple[float, float]:
        try:
            figures = await timed_async(one, budget, profile)
        finally:
            await close()
        if set(statuses) != {201}:
            raise RuntimeError(f"{name} answered {sorted(set(statuses))}")
        return figures

    return measure


def _wsgi_measure(app: Any, name: str, close: Callable[[], object]) -> Measure:
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)

    def one() -> None:
        answer = app({**ENVIRON, "wsgi.input": io.BytesIO(BODY)}, start_response)
        b"".join(answer)
        getattr(answer, "close", lambda: None)()

    def measure(budget: Budget, profile: cProfile.Profile | None) -> tuple[float, float]:
        try:
            figures = timed_sync(one, budget, profile)
        finally:
            close()
        if any(not status.startswith("201") for status in statuses):
            raise RuntimeError(f"{name} answered {sorted(set(statuses))}")
        return figures

    return measure


def _passed_through(*args: Any) -> Any:
    raise AssertionError("the request was passed through")


def register_asgi(redis_url: str) -> AsyncMeasure:
    """``POST /register`` through :class:`DCRMiddleware`, confidential client."""
    from dcr_middleware import DCRMiddleware

    app = DCRMiddleware(_passed_through, _settings(redis_url, "inproc"))
    return _asgi_measure(app, "register-asgi", app.store.close)


def register_wsgi(redis_url: str) -> Measure:
    """``POST /register`` through :class:`DCRWSGIMiddleware`, confidential client."""
    from dcr_middleware import DCRWSGIMiddleware

    app = DCRWSGIMiddleware(_passed_through, _settings(redis_url, "inproc"))
    return _wsgi_measure(app, "register-wsgi", app.store.close)


def _apps(redis_url: str) -> None:
    """Make the anchors of ``apps/`` importable, writing to ``redis_url``."""
    os.environ["BENCH_REDIS_URL"] = redis_url
    if APPS not in sys.path:
        sys.path.insert(0, APPS)


def anchor_asgi(redis_url: str, name: str) -> AsyncMeasure:
    """An ASGI anchor of ``run.py``, called in process like :func:`register_asgi`."""
    _apps(redis_url)
    if name == "anchor-min-asgi":
        import anchor_minimal

        return _asgi_measure(anchor_minimal.app_asgi, name, anchor_minimal.REDIS.aclose)
    import anchor_mcp

    return _asgi_measure(anchor_mcp.app_redis, name, anchor_mcp.REDIS_PROVIDER.redis.aclose)


def anchor_wsgi(redis_url: str) -> Measure:
    """Authlib + Flask, called in process like :func:`register_wsgi`."""
    _apps(redis_url)
    import anchor_authlib

    return _wsgi_measure(anchor_authlib.app, "anchor-authlib-flask", lambda: None)


# --- the authorization server's lookups ----------------------------------------------------------


def _stored_client() -> Any:
    """A confidential client as a registration stores it, with the known :data:`SECRET`."""
    from dcr_middleware.core.client import RegisteredClient
    from dcr_middleware.core.credentials import hash_secret

    return RegisteredClient(
        client_id=CLIENT_ID,
        client_id_issued_at=int(time.time()),
        metadata={**CONFIDENTIAL},
        client_secret_hash=hash_secret(SECRET),
        registration_token_hash=hash_secret("t" * 43),
    )


def _lookup_settings(redis_url: str) -> Any:
    return _settings(redis_url, "inproc", DCR_CLIENT_IDLE_TTL=IDLE_TTL)


def _document_settings(redis_url: str) -> Any:
    # The fetch budgets off: every run begins with one miss, and runs follow each other fast.
    return _settings(
        redis_url,
        "inproc",
        DCR_CIMD="true",
        DCR_CIMD_FETCH_RATE_LIMIT="off",
        DCR_CIMD_FETCH_TOTAL_RATE_LIMIT="off",
    )


class _StandInFetcher:
    """Answers the one ``Fetch`` of :data:`DOCUMENT_URL` (a cache miss), counting the calls: the
    case checks that its loop was only cache hits."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, op: Any) -> Any:
        from dcr_middleware.core.fetching import Fetched

        self.calls += 1
        return Fetched(op.url, dict(DOCUMENT), max_age=86400, fetched_at=time.time())

    async def asynchronous(self, op: Any) -> Any:
        return self(op)


def _only_hits(fetcher: _StandInFetcher) -> None:
    if fetcher.calls > 1:
        raise RuntimeError(f"the document was fetched {fetcher.calls} times, not cached")


def _key(settings: Any) -> str:
    from dcr_middleware.storage.base import client_key

    return client_key(settings.key_prefix, CLIENT_ID)


def lookups_sync(redis_url: str, name: str) -> Measure:
    """``ClientStore.get`` / ``authenticate`` (idle TTL on), or a raw redis-py GET + loads."""
    import redis

    from dcr_middleware import ClientStore
    from dcr_middleware.core.cimd import document_key
    from dcr_middleware.core.ops import DocumentDelete

    settings = _lookup_settings(redis_url)
    store = ClientStore(settings)
    if store.get(CLIENT_ID) is None:
        store.create(_stored_client())
    raw = redis.Redis.from_url(redis_url)
    key = _key(settings)
    fetcher = _StandInFetcher()
    call: Callable[[], object]
    if name == "cimd-get-sync":
        store.close()
        store = ClientStore(_document_settings(redis_url))
        store.fetcher = fetcher
        store.backend.run(DocumentDelete(document_key(DOCUMENT_URL)))  # one miss, then hits

        def call() -> object:
            return store.get(DOCUMENT_URL) or _missing()

    elif name == "get-sync":

        def call() -> object:
            return store.get(CLIENT_ID) or _missing()

    elif name == "authenticate-sync":

        def call() -> object:
            return store.authenticate(CLIENT_ID, SECRET) or _missing()

    else:

        def call() -> object:
            return json.loads(raw.get(key))  # type: ignore[arg-type]

    def measure(budget: Budget, profile: cProfile.Profile | None) -> tuple[float, float]:
        try:
            return timed_sync(call, budget, profile)
        finally:
            store.close()
            raw.close()
            _only_hits(fetcher)

    return measure


def lookups_async(redis_url: str, name: str) -> AsyncMeasure:
    """The asyncio siblings of :func:`lookups_sync`."""
    import redis.asyncio

    from dcr_middleware import AsyncClientStore
    from dcr_middleware.core.cimd import document_key
    from dcr_middleware.core.ops import DocumentDelete

    settings = _lookup_settings(redis_url)
    key = _key(settings)

    async def measure(budget: Budget, profile: cProfile.Profile | None) -> tuple[float, float]:
        store = AsyncClientStore(settings)
        raw = redis.asyncio.Redis.from_url(redis_url)
        if await store.get(CLIENT_ID) is None:
            await store.create(_stored_client())
        fetcher = _StandInFetcher()
        call: Callable[[], Awaitable[object]]
        if name == "cimd-get-async":
            await store.close()
            store = AsyncClientStore(_document_settings(redis_url))
            store.fetcher = fetcher.asynchronous
            await store.backend.run(DocumentDelete(document_key(DOCUMENT_URL)))

            async def call() -> object:
                return await store.get(DOCUMENT_URL) or _missing()

        elif name == "get-async":

            async def call() -> object:
                return await store.get(CLIENT_ID) or _missing()

        elif name == "authenticate-async":

            async def call() -> object:
                return await store.authenticate(CLIENT_ID, SECRET) or _missing()

        else:

            async def call() -> object:
                return json.loads(await raw.get(key))

        try:
            return await timed_async(call, budget, profile)
        finally:
            await store.close()
            await raw.aclose()
            _only_hits(fetcher)

    return measure


def _missing() -> object:
    raise RuntimeError("the benchmark client was not found")


REGISTRATION = (
    "register-asgi",
    "anchor-min-asgi",
    "anchor-mcp-redis",
    "register-wsgi",
    "anchor-authlib-flask",
)
LOOKUPS = (
    "get-sync",
    "authenticate-sync",
    "raw-get-sync",
    "get-async",
    "authenticate-async",
    "raw-get-async",
    "cimd-get-sync",
    "cimd-get-async",
)
CASES = REGISTRATION + LOOKUPS
# Each case against its reference, CPU per call (reference / case), and the target.
RATIOS = (
    ("get-sync", "raw-get-sync", 0.8),
    ("authenticate-sync", "raw-get-sync", 0.8),
    ("get-async", "raw-get-async", 0.8),
    ("authenticate-async", "raw-get-async", 0.8),
    ("cimd-get-sync", "raw-get-sync", 0.8),
    ("cimd-get-async", "raw-get-async", 0.8),
    ("register-asgi", "anchor-min-asgi", 1.0),
    ("register-asgi", "anchor-mcp-redis", 1.5),
    ("register-wsgi", "anchor-authlib-flask", 1.3),
)


def run_case(
    name: str, redis_url: str, budget: Budget, profile: cProfile.Profile | None = None
) -> tuple[float, float]:
    """One run of case ``name``: (CPU µs per call, calls per second)."""
    measure: Measure | None = None
    ameasure: AsyncMeasure | None = None
    if name == "register-wsgi":
        measure = register_wsgi(redis_url)
    elif name == "anchor-authlib-flask":
        measure = anchor_wsgi(redis_url)
    elif name.endswith("-sync"):
        measure = lookups_sync(redis_url, name)
    elif name == "register-asgi":
        ameasure = register_asgi(redis_url)
    elif name.startswith("anchor-"):
        ameasure = anchor_asgi(redis_url, name)
    else:
        ameasure = lookups_async(redis_url, name)
    if measure is not None:
        return measure(budget, profile)
    assert ameasure is not None
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(ameasure(budget, profile))


def run_all(redis_url: str, budget: Budget, names: list[str]) -> dict[str, Any]:
    """Every case in ``names``, runs interleaved; medians, and the ratios of :data:`RATIOS`
    whose two cases ran."""
    logging.disable(logging.WARNING)  # a benchmark, not a log test
    figures = {name: Figure() for name in names}
    for _ in range(budget.runs):
        for name in names:
            cpu, rate = run_case(name, redis_url, budget)
            figures[name].cpu_us.append(cpu)
            figures[name].rate.append(rate)
    cases = {name: figure.as_dict() for name, figure in figures.items()}
    ratios = []
    for case, reference, target in RATIOS:
        if case in cases and reference in cases:
            ratio = cases[reference]["cpu_us_per_call"] / cases[case]["cpu_us_per_call"]
            verdict = "PASS" if ratio >= target else "MISS"
            ratios.append(
                {
                    "case": case,
                    "reference": reference,
                    "target": target,
                    "ratio": round(ratio, 3),
                    "verdict": verdict,
                }
            )
    return {"budget": vars(budget), "cases": cases, "ratios": ratios}


def render(results: dict[str, Any]) -> list[str]:
    """The rows of the table, then the ratios."""
    lines = [f"{'case':<22} {'CPU us/call':>11} {'calls/s':>8}  runs (CPU us/call)"]
    for name, row in results["cases"].items():
        runs = " ".join(f"{x:g}" for x in row["runs_cpu_us"])
        lines.append(f"{name:<22} {row['cpu_us_per_call']:>11.1f} {row['calls_per_s']:>8}  {runs}")
    for line in results["ratios"]:
        lines.append(
            f"  {line['verdict']:<4} {line['case']} / {line['reference']} (CPU per call, "
            f"reference / case): {line['ratio']:g} (target >= {line['target']:g})"
        )
    return lines


# Where a profile's own time goes, by the module each function is in (first match wins).
AREAS = (
    ("metadata validation", ("client_metadata", "_metadata_plan", "oidc", "_uris", "_values",
                             "grant_types", "authlib", "joserfc", "urllib/parse")),
    ("JSON (body, record, answer)", ("json/", "_json_depth", ":_unique_members",
                                     ":parse_json_object", ":_finite_float")),
    ("redis-py (pool, connection, parser)", ("redis/",)),
    ("storage: backend, operations, scripts' arguments", ("storage/", "ratelimit.py")),
    ("credentials (random, SHA-256)", ("secrets", "hashlib", "base64", "credentials", "random")),
    ("admission, rate plan, headers, CORS", ("admission", "client_ip", "refusals", "throttle",
                                             "cors", "ipaddress", "_http", "_addresses")),
    ("events and metrics", ("core/events", "observe", "_metrics", "_otel", "logging")),
    ("flows, drivers, the registration's own code", ("registration", "client_flows", "ops.py",
                                                     "_drive", "client.py", "software_statement",
                                                     "tokens.py", "dataclasses")),
    ("ASGI / WSGI adapter", ("asgi.py", "wsgi.py", "webob")),
    ("event loop (asyncio, uvloop, sockets)", ("asyncio/", "uvloop", "selectors", "socket")),
    ("built-in functions and methods, whoever calls them", ("~:",)),
    ("the rest", ("",)),
)  # fmt: skip


def areas(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Each area's share of the profile's own time (:data:`AREAS`)."""
    totals = dict.fromkeys((name for name, _ in AREAS), 0.0)
    raw: Any = stats.stats  # type: ignore[attr-defined]
    for (filename, _, function), (_, _, own, _, _) in raw.items():
        where = f"{filename}:{function}"
        for name, needles in AREAS:
            if any(needle in where for needle in needles):
                totals[name] += own
                break
    whole = sum(totals.values()) or 1.0
    return [(name, own / whole) for name, own in totals.items()]


def main() -> int:
    """Command line: run the cases, or profile one."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", required=True, help="a Redis URL this may write to")
    parser.add_argument("--only", nargs="+", metavar="CASE", help="shell patterns of cases")
    parser.add_argument("--count", type=int, default=Budget.count, help="calls per run, at most")
    parser.add_argument("--seconds", type=float, default=Budget.seconds, help="per run, at most")
    parser.add_argument("--runs", type=int, default=Budget.runs, help="runs per case")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", metavar="CASE", help="cProfile one run of CASE instead")
    parser.add_argument("--top", type=int, default=30, help="profile entries shown")
    args = parser.parse_args()
    budget = Budget(args.count, args.seconds, args.runs)
    if args.profile:
        logging.disable(logging.WARNING)
        profile = cProfile.Profile(time.process_time)  # CPU time: not Redis's turn
        cpu, _ = run_case(args.profile, args.redis, budget, profile)
        print(f"{args.profile}: {cpu:.1f} us/call (under the profiler)")
        print("share of own CPU time by area:")
        for name, share in areas(pstats.Stats(profile)):
            print(f"  {share:6.1%}  {name}")
        for order in ("tottime", "cumulative"):
            pstats.Stats(profile).strip_dirs().sort_stats(order).print_stats(args.top)
        return 0
    names = [n for n in CASES if not args.only or any(fnmatch.fnmatch(n, p) for p in args.only)]
    results = run_all(args.redis, budget, names)
    for line in render(results):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
