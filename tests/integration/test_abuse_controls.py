"""Abuse controls on real servers and a real Redis: the per-IP rate limit, client-IP resolution
behind proxies (and against spoofing), the global client cap, failing closed, and the Lua and
Python rate-limit arithmetic agreeing.

Which address the middleware sees depends on the server (SPEC §3): gunicorn's sync workers
never rewrite ``REMOTE_ADDR``, while uvicorn and gunicorn's ``UvicornWorker`` rewrite
``scope["client"]`` from ``X-Forwarded-For`` when the peer is in ``--forwarded-allow-ips``
(default ``127.0.0.1,::1``, or ``$FORWARDED_ALLOW_IPS``) before any middleware runs. Every server
here is started with explicit flags:

* :data:`PEER_FLAGS` turn the server's own proxy handling off, so the middleware sees the socket
  peer under every server and resolves forwarding headers itself (``DCR_TRUSTED_PROXIES``):
  uvicorn ``--no-proxy-headers`` (or ``--forwarded-allow-ips ''``), gunicorn + UvicornWorker
  ``--forwarded-allow-ips ''`` (or ``FORWARDED_ALLOW_IPS=''`` in its environment; the worker
  offers no way to turn ``proxy_headers`` off), gunicorn sync workers nothing.
* :data:`DEFAULT_FLAGS` are the servers' defaults; the tests using them pin down what uvicorn's
  default does to the address the middleware sees.

The buckets the middleware charged are read back from Redis (``dcr:rate:{ip:...}``): that is
what it resolved the client address to. Figures are printed and kept with ``record_figure``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from support import (
    CONFIDENTIAL,
    KINDS,
    HostServer,
    RawResponse,
    RedisServer,
    Server,
    assert_complete,
    gunicorn_ready_hook,
    ipv6_loopback_available,
    raw_post,
    send_concurrently,
    start_server_on,
    stored_records,
    wait_workers_ready,
)

from dcr_middleware import AsyncClientStore, ClientStore, Settings
from dcr_middleware.core.ratelimit import Limit, RateDecision, parse_rate_limits
from dcr_middleware.storage.base import rate_key
from dcr_middleware.storage.memory import AsyncMemoryBackend, MemoryBackend

BURST = 60
LIMIT = "10/minute"
ALLOWED = 10
INTERVAL_S = 6.0  # the GCRA emission interval of 10/minute: a burst longer than this may refill
POLICY = '"ip-10/60";q=10;w=60'
CURRENT = re.compile(r'^"ip-10/60";r=(\d+);t=(\d+)$')
LOAD_DEADLINE = 30.0
BODYLESS_DEADLINE = 5.0  # a server waiting for the body would exceed this
PAYLOAD = json.dumps(CONFIDENTIAL).encode()

# Server flags under which the middleware sees the socket peer (see the module docstring).
PEER_FLAGS: dict[str, list[str]] = {
    "gunicorn": ["-w", "4"],  # sync workers: REMOTE_ADDR is always the peer
    "gunicorn-uvicorn": ["-w", "4", "--forwarded-allow-ips", ""],
    "uvicorn": ["--no-proxy-headers"],
}
# The servers' defaults: uvicorn and UvicornWorker trust X-Forwarded-For from 127.0.0.1 and ::1.
DEFAULT_FLAGS: dict[str, list[str]] = {
    "gunicorn": ["-w", "4"],
    "gunicorn-uvicorn": ["-w", "4"],
    "uvicorn": [],
}
SERVER_KINDS = list(PEER_FLAGS)


# --- helpers ---------------------------------------------------------------------------------


def worker_count(kind: str, args: Sequence[str]) -> int:
    """How many workers gunicorn runs with ``args`` (the last ``-w`` wins, as in gunicorn)."""
    argv = [*KINDS[kind], *args]
    return int([argv[i + 1] for i, a in enumerate(argv) if a == "-w"][-1])


def ready_hook(kind: str, args: Sequence[str], directory: Path) -> list[str]:
    return [*args, *gunicorn_ready_hook(directory)] if kind.startswith("gunicorn") else list(args)


@pytest.fixture
def start(serve: Callable[..., Server], tmp_path: Path) -> Callable[..., Server]:
    """``serve``, then wait until every gunicorn worker has loaded the app, so a burst meets
    ready workers rather than CPU contention from the ones still importing."""

    def _start(kind: str, redis_url: str, *, args: Sequence[str], **kwargs: object) -> Server:
        server = serve(kind, redis_url, args=ready_hook(kind, args, tmp_path), **kwargs)
        if kind.startswith("gunicorn"):
            wait_workers_ready(server, worker_count(kind, args))
        return server

    return _start


def burst(
    server: Server, requests: Sequence[bytes], sources: Sequence[str] | None = None
) -> tuple[list[RawResponse], float]:
    """Send ``requests`` all at once (one connection each, from ``sources`` when given); the
    answers and the elapsed time."""
    started = time.perf_counter()
    responses = asyncio.run(
        send_concurrently(server.port, requests, LOAD_DEADLINE, sources=sources)
    )
    return responses, time.perf_counter() - started


def statuses(responses: Sequence[RawResponse]) -> dict[int, int]:
    return dict(Counter(r.status for r in responses))


def rate_buckets(admin: redis.Redis, prefix: str = "dcr") -> set[str]:
    """The rate-limit buckets the middleware charged: what it resolved client addresses to."""
    return {str(key) for key in admin.scan_iter(match=f"{prefix}:rate:*", count=500)}


def ip_key(address: str) -> str:
    return rate_key("dcr", f"ip:{address}")


def remaining_of(response: RawResponse) -> int:
    match = CURRENT.match(response.headers["ratelimit"])
    assert match is not None, response.headers["ratelimit"]
    return int(match.group(1))


def assert_created_with_headers(response: RawResponse) -> None:
    assert response.status == 201, response.body
    assert response.headers["content-type"] == "application/json"
    assert response.headers["ratelimit-policy"] == POLICY
    assert CURRENT.match(response.headers["ratelimit"]), response.headers["ratelimit"]
    assert "retry-after" not in response.headers


def assert_limited(response: RawResponse) -> int:
    """A proper ``429``; returns its ``Retry-After``."""
    assert response.status == 429, response.body
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= INTERVAL_S
    assert response.headers["ratelimit-policy"] == POLICY
    assert remaining_of(response) == 0
    assert response.headers["content-type"] == "application/json"
    error = json.loads(response.body)
    assert error["error"] == "too_many_requests"
    assert isinstance(error["error_description"], str)
    return int(retry_after)


def assert_exactly_limited(
    responses: Sequence[RawResponse], admin: redis.Redis, elapsed: float
) -> int:
    """Exactly :data:`ALLOWED` of the burst created (RateLimit remaining 9..0, each once), every
    other one a proper ``429``, and only the created clients stored. Returns the largest
    ``Retry-After``."""
    assert elapsed < INTERVAL_S, f"the burst took {elapsed:.1f} s: the bucket may have refilled"
    assert statuses(responses) == {201: ALLOWED, 429: BURST - ALLOWED}
    created = [r for r in responses if r.status == 201]
    for response in created:
        assert_created_with_headers(response)
    assert sorted(remaining_of(r) for r in created) == list(range(ALLOWED))
    retry_afters = [assert_limited(r) for r in responses if r.status == 429]
    ids = {json.loads(r.body)["client_id"] for r in created}
    assert {key.split("{")[1].rstrip("}") for key in stored_records(admin)} == ids
    return max(retry_afters)


def case_id(request: pytest.FixtureRequest) -> str:
    """The parametrized case's id, for figure names."""
    return str(request.node.callspec.id)


def figures(
    record_figure: Callable[[str, object], None], name: str, elapsed: float, **counts: object
) -> None:
    described = ", ".join(f"{key}={value}" for key, value in counts.items())
    print(f"\n[figures] {name}: {elapsed * 1000:.0f} ms, {described}")
    record_figure(f"abuse_{name}_elapsed_s", round(elapsed, 3))
    for key, value in counts.items():
        record_figure(f"abuse_{name}_{key}", value)


# --- 1. one IP: exactly 10 of 60 -------------------------------------------------------------


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_rate_limit_admits_exactly_the_limit_from_one_address(
    kind: str,
    start: Callable[..., Server],
    redis_url: str,
    redis_db: redis.Redis,
    record_figure: Callable[[str, object], None],
) -> None:
    server = start(
        kind, redis_url, env={"DCR_RATE_LIMIT": LIMIT}, args=PEER_FLAGS[kind], log_level="warning"
    )
    responses, elapsed = burst(server, [raw_post("/register", PAYLOAD)] * BURST)
    longest_wait = assert_exactly_limited(responses, redis_db, elapsed)
    assert rate_buckets(redis_db) == {ip_key("127.0.0.1")}
    bucket = ip_key("127.0.0.1")
    assert redis_db.type(bucket) == "hash"
    assert set(redis_db.hkeys(bucket)) == {"10/60", "clock"}
    assert 0 < redis_db.pttl(bucket) <= 60_000

    # A refusal the process remembers is answered before the body is read: headers announcing
    # a body that never comes get a 429. (Each worker remembers its own refusals, so this is
    # checked on the one-process server; tests/adapters covers both middlewares.)
    if kind == "uvicorn":
        head_only = raw_post("/register", b"").replace(
            b"Content-Length: 0", b"Content-Length: 1000"
        )
        (refused,) = asyncio.run(send_concurrently(server.port, [head_only], BODYLESS_DEADLINE))
        assert_limited(refused)
    assert len(stored_records(redis_db)) == ALLOWED
    figures(
        record_figure,
        f"one_ip_{kind}",
        elapsed,
        created=ALLOWED,
        refused=BURST - ALLOWED,
        max_retry_after_s=longest_wait,
    )

    # Six other peers (127.0.0.2-7, real socket addresses, no headers) are not held back by
    # the full bucket of 127.0.0.1: 10 each, 60 in all.
    peers = [f"127.0.0.{2 + i % 6}" for i in range(BURST)]
    responses, elapsed = burst(server, [raw_post("/register", PAYLOAD)] * BURST, sources=peers)
    assert elapsed < INTERVAL_S, elapsed
    assert statuses(responses) == {201: BURST}
    by_peer: dict[str, list[int]] = {}
    for peer, response in zip(peers, responses, strict=True):
        assert_created_with_headers(response)
        by_peer.setdefault(peer, []).append(remaining_of(response))
    assert {p: sorted(r) for p, r in by_peer.items()} == {
        f"127.0.0.{n}": list(range(ALLOWED)) for n in range(2, 8)
    }
    assert rate_buckets(redis_db) == {ip_key(f"127.0.0.{n}") for n in range(1, 8)}
    assert len(stored_records(redis_db)) == ALLOWED + BURST
    assert "Traceback" not in server.output()
    figures(record_figure, f"six_peers_{kind}", elapsed, created=BURST)


# --- 2. six forwarded addresses behind a trusted proxy: 60 of 60 -----------------------------

FORWARDED_CASES = [
    *(
        pytest.param(kind, PEER_FLAGS[kind], header, id=f"{kind}-peer-flags-{header}")
        for kind in SERVER_KINDS
        for header in ("x-forwarded-for", "forwarded")
    ),
    # uvicorn's defaults rewrite the client from X-Forwarded-For before the middleware runs; when
    # they trust the same proxy the outcome is the same. (Forwarded under uvicorn's defaults:
    # see test_forwarded_deployment_ignores_a_client_supplied_x_forwarded_for.)
    *(
        pytest.param(kind, DEFAULT_FLAGS[kind], "x-forwarded-for", id=f"{kind}-default-flags")
        for kind in ("gunicorn-uvicorn", "uvicorn")
    ),
]


def forwarded_request(header: str, address: str) -> bytes:
    if header == "forwarded":
        return raw_post("/register", PAYLOAD, {"Forwarded": f"for={address}"})
    return raw_post("/register", PAYLOAD, {"X-Forwarded-For": address})


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize(("kind", "flags", "header"), FORWARDED_CASES)
def test_trusted_proxy_forwarded_addresses_get_their_own_buckets(
    kind: str,
    flags: list[str],
    header: str,
    request: pytest.FixtureRequest,
    start: Callable[..., Server],
    redis_url: str,
    redis_db: redis.Redis,
    record_figure: Callable[[str, object], None],
) -> None:
    env = {
        "DCR_RATE_LIMIT": LIMIT,
        "DCR_TRUSTED_PROXIES": "127.0.0.1/32",
        "DCR_FORWARDED_HEADER": header,
    }
    server = start(kind, redis_url, env=env, args=flags, log_level="warning")
    addresses = [f"203.0.113.{1 + i % 6}" for i in range(BURST)]
    responses, elapsed = burst(server, [forwarded_request(header, a) for a in addresses])
    assert elapsed < INTERVAL_S, elapsed
    assert statuses(responses) == {201: BURST}
    by_address: dict[str, list[int]] = {}
    for address, response in zip(addresses, responses, strict=True):
        assert_created_with_headers(response)
        by_address.setdefault(address, []).append(remaining_of(response))
    # Each forwarded address had a bucket of its own, and used all of it.
    assert {a: sorted(r) for a, r in by_address.items()} == {
        f"203.0.113.{n}": list(range(ALLOWED)) for n in range(1, 7)
    }
    assert rate_buckets(redis_db) == {ip_key(f"203.0.113.{n}") for n in range(1, 7)}
    assert len(stored_records(redis_db)) == BURST
    # One more from each address is refused: the buckets really are full.
    more, _ = burst(server, [forwarded_request(header, f"203.0.113.{n}") for n in range(1, 7)])
    for response in more:
        assert_limited(response)
    assert len(stored_records(redis_db)) == BURST
    figures(record_figure, f"six_ips_{case_id(request)}", elapsed)


# --- 3. spoofing from an untrusted peer changes nothing --------------------------------------

SPOOFED = [
    *(f"198.51.100.{i}" for i in range(1, 30)),
    *(f"10.{i}.0.1, 198.51.100.{i}" for i in range(1, 10)),
    *(f"2001:db8::{i:x}" for i in range(1, 10)),
    *(f"[2001:db8::{i:x}]:443" for i in range(1, 6)),
    "unknown",
    "*",
    "garbage",
    "",
    "127.0.0.1, ",
    "203.0.113.7:80",
    "::ffff:192.0.2.1",
    "203.0.113.1, 203.0.113.2",
]
assert len(SPOOFED) == BURST

SPOOF_CASES = [
    pytest.param("gunicorn", PEER_FLAGS["gunicorn"], {}, "", id="gunicorn-sync"),
    pytest.param(
        "gunicorn", PEER_FLAGS["gunicorn"], {}, "10.0.0.0/8", id="gunicorn-sync-other-proxy"
    ),
    pytest.param(
        "gunicorn-uvicorn",
        ["-w", "4", "--forwarded-allow-ips", ""],
        {},
        "",
        id="gunicorn-uvicorn-forwarded-allow-ips-empty",
    ),
    pytest.param(
        "gunicorn-uvicorn",
        ["-w", "4"],
        {"FORWARDED_ALLOW_IPS": ""},
        "",
        id="gunicorn-uvicorn-env-FORWARDED_ALLOW_IPS-empty",
    ),
    pytest.param("uvicorn", ["--no-proxy-headers"], {}, "", id="uvicorn-no-proxy-headers"),
    pytest.param(
        "uvicorn", ["--forwarded-allow-ips", ""], {}, "", id="uvicorn-forwarded-allow-ips-empty"
    ),
]


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize(("kind", "flags", "extra_env", "trusted"), SPOOF_CASES)
def test_spoofed_forwarded_for_from_untrusted_peer_changes_nothing(
    kind: str,
    flags: list[str],
    extra_env: dict[str, str],
    trusted: str,
    request: pytest.FixtureRequest,
    start: Callable[..., Server],
    redis_url: str,
    redis_db: redis.Redis,
    record_figure: Callable[[str, object], None],
) -> None:
    env = {"DCR_RATE_LIMIT": LIMIT, **extra_env}
    if trusted:
        env["DCR_TRUSTED_PROXIES"] = trusted
    server = start(kind, redis_url, env=env, args=flags, log_level="warning")
    requests = [
        raw_post("/register", PAYLOAD, {"X-Forwarded-For": value, "Forwarded": f"for={value}"})
        for value in SPOOFED
    ]
    responses, elapsed = burst(server, requests)
    assert_exactly_limited(responses, redis_db, elapsed)
    assert rate_buckets(redis_db) == {ip_key("127.0.0.1")}
    figures(record_figure, f"spoof_{case_id(request)}", elapsed)


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn-uvicorn"])
def test_uvicorn_default_flags_let_a_loopback_peer_choose_its_bucket(
    kind: str,
    start: Callable[..., Server],
    redis_url: str,
    redis_db: redis.Redis,
    record_figure: Callable[[str, object], None],
) -> None:
    """Deployment fact, pinned: with uvicorn's default ``--forwarded-allow-ips`` (127.0.0.1,::1)
    the server rewrites ``scope["client"]`` from ``X-Forwarded-For`` before the middleware runs,
    so a peer on loopback picks its rate-limit bucket even with no ``DCR_TRUSTED_PROXIES``.
    The docs must tell uvicorn users to turn that off (:data:`PEER_FLAGS`) or to front the
    server with a proxy that overwrites the header."""
    server = start(
        kind,
        redis_url,
        env={"DCR_RATE_LIMIT": LIMIT},
        args=DEFAULT_FLAGS[kind],
        log_level="warning",
    )
    addresses = [f"198.51.100.{i}" for i in range(1, BURST + 1)]
    requests = [raw_post("/register", PAYLOAD, {"X-Forwarded-For": a}) for a in addresses]
    responses, elapsed = burst(server, requests)
    assert statuses(responses) == {201: BURST}  # not 10: the header chose the bucket
    assert rate_buckets(redis_db) == {ip_key(a) for a in addresses}
    # A value uvicorn cannot parse becomes the "client" as is; the middleware then knows no
    # address and charges the shared "ip:unknown" bucket (gunicorn sync: the peer's).
    garbage, _ = burst(server, [raw_post("/register", PAYLOAD, {"X-Forwarded-For": "garbage"})])
    assert garbage[0].status == 201
    assert ip_key("unknown") in rate_buckets(redis_db)
    figures(record_figure, f"uvicorn_default_spoof_{kind}", elapsed, created=BURST)


MIXED_CASES = [
    pytest.param("uvicorn", ["--no-proxy-headers"], True, id="uvicorn-no-proxy-headers"),
    pytest.param(
        "gunicorn-uvicorn",
        ["-w", "4", "--forwarded-allow-ips", ""],
        True,
        id="gunicorn-uvicorn-forwarded-allow-ips-empty",
    ),
    pytest.param("gunicorn", ["-w", "4"], True, id="gunicorn-sync"),
    pytest.param("uvicorn", [], False, id="uvicorn-defaults"),
]


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize(("kind", "flags", "consistent"), MIXED_CASES)
def test_forwarded_deployment_ignores_a_client_supplied_x_forwarded_for(
    kind: str,
    flags: list[str],
    consistent: bool,
    request: pytest.FixtureRequest,
    start: Callable[..., Server],
    redis_url: str,
    redis_db: redis.Redis,
    record_figure: Callable[[str, object], None],
) -> None:
    """Behind a trusted proxy that writes ``Forwarded`` (``DCR_FORWARDED_HEADER=forwarded``)
    but passes a client's own ``X-Forwarded-For`` through: with the server's proxy handling off
    the middleware reads ``Forwarded`` and the client's header changes nothing; with uvicorn's
    defaults the server takes the client's ``X-Forwarded-For`` first, and the client picks its
    bucket, ``DCR_TRUSTED_PROXIES`` notwithstanding."""
    env = {
        "DCR_RATE_LIMIT": LIMIT,
        "DCR_TRUSTED_PROXIES": "127.0.0.1/32",
        "DCR_FORWARDED_HEADER": "forwarded",
    }
    server = start(kind, redis_url, env=env, args=flags, log_level="warning")
    spoofed = [f"198.51.100.{i}" for i in range(1, BURST + 1)]
    requests = [
        raw_post("/register", PAYLOAD, {"Forwarded": "for=203.0.113.1", "X-Forwarded-For": a})
        for a in spoofed
    ]
    responses, elapsed = burst(server, requests)
    if consistent:
        assert_exactly_limited(responses, redis_db, elapsed)
        assert rate_buckets(redis_db) == {ip_key("203.0.113.1")}
    else:
        assert statuses(responses) == {201: BURST}
        assert rate_buckets(redis_db) == {ip_key(a) for a in spoofed}
    figures(record_figure, f"forwarded_vs_xff_{case_id(request)}", elapsed)


# --- 4. DCR_MAX_CLIENTS ----------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", ["gunicorn", "gunicorn-uvicorn"])
def test_client_cap_admits_exactly_the_cap(
    kind: str,
    start: Callable[..., Server],
    redis_url: str,
    redis_db: redis.Redis,
    record_figure: Callable[[str, object], None],
) -> None:
    cap, attempts = 5, 20
    server = start(
        kind,
        redis_url,
        env={"DCR_MAX_CLIENTS": str(cap)},  # DCR_RATE_LIMIT=off (helpers.server_env)
        args=PEER_FLAGS[kind],
        log_level="warning",
    )
    responses, elapsed = burst(server, [raw_post("/register", PAYLOAD)] * attempts)
    assert statuses(responses) == {201: cap, 403: attempts - cap}
    for response in responses:
        assert response.headers["content-type"] == "application/json"
        assert "ratelimit" not in response.headers  # rate limiting is off
        if response.status == 403:
            error = json.loads(response.body)
            assert error["error"] == "access_denied"
            assert str(cap) in error["error_description"]
    ids = {json.loads(r.body)["client_id"] for r in responses if r.status == 201}
    records = stored_records(redis_db)
    assert len(records) == cap
    assert {key.split("{")[1].rstrip("}") for key in records} == ids
    assert redis_db.get("dcr:{client-count}") == str(cap)
    assert "Traceback" not in server.output()
    figures(record_figure, f"cap_{kind}", elapsed, created=cap, refused=attempts - cap)


# --- 5. fail closed --------------------------------------------------------------------------


def assert_unavailable(response: RawResponse) -> None:
    assert response.status == 503, (response.status, response.body)
    assert response.headers["retry-after"].isdigit()
    assert int(response.headers["retry-after"]) >= 1
    assert json.loads(response.body)["error"] == "temporarily_unavailable"


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_rate_limiter_fails_closed_when_redis_is_down(
    kind: str,
    start: Callable[..., Server],
    own_redis: RedisServer,
    record_figure: Callable[[str, object], None],
) -> None:
    env = {
        "DCR_RATE_LIMIT": LIMIT,
        "DCR_REDIS_TIMEOUT": "0.5",
        "DCR_REDIS_CONNECT_TIMEOUT": "0.5",
    }
    server = start(kind, own_redis.url, env=env, args=PEER_FLAGS[kind], log_level="warning")
    one = [raw_post("/register", PAYLOAD)]
    healthy, _ = burst(server, one)
    assert_created_with_headers(healthy[0])

    # Frozen Redis: the registration script times out (it may still run once Redis resumes).
    own_redis.pause()
    try:
        hung, hung_elapsed = burst(server, one * 2)
    finally:
        own_redis.resume()
    for response in hung:
        assert_unavailable(response)

    # Stopped Redis: connection refused.
    own_redis.stop()
    down, down_elapsed = burst(server, one * 4)
    for response in down:
        assert_unavailable(response)

    own_redis.start()  # service comes back without restarting the app
    back, _ = burst(server, one)
    assert_created_with_headers(back[0])
    admin = own_redis.client()
    try:
        created = {json.loads(r.body)["client_id"] for r in (*healthy, *back)}
        stored = stored_records(admin)
        stored_ids = {key.split("{")[1].rstrip("}") for key in stored}
        assert created <= stored_ids
        # A 503 after a timeout leaves the outcome unknown: the script queued in the frozen
        # Redis may have run on resume. Such a client is complete, never partial; the
        # connection-refused requests stored nothing.
        assert len(stored_ids - created) <= len(hung)
        for key, value in stored.items():
            assert_complete(key, value)
    finally:
        admin.close()
    assert "Traceback" not in server.output()
    figures(record_figure, f"fail_closed_{kind}_paused", hung_elapsed, answered_503=len(hung))
    figures(record_figure, f"fail_closed_{kind}_stopped", down_elapsed, answered_503=len(down))


# --- 6. Lua and Python agree ----------------------------------------------------------------

PARITY_POLICIES = ["5/hour;8/day", "10/hour;3/day", "3/minute;3/hour"]


def view(decision: RateDecision) -> tuple[bool, int, Limit]:
    return decision.allowed, decision.remaining, decision.limit


def expected_views(limits: tuple[Limit, ...], hits: int) -> list[tuple[bool, int, Limit]]:
    """GCRA on an idle bucket hit ``hits`` times at (nearly) the same instant."""
    out = []
    charged = 0
    for _ in range(hits):
        left = [lim.count - charged - 1 for lim in limits]
        if min(left) >= 0:
            charged += 1
            binding = min(range(len(limits)), key=lambda i: left[i])
            out.append((True, left[binding], limits[binding]))
        else:
            # The refusing limit reported is the one with the longest wait.
            waits = [(charged + 1) * lim.interval_ms - lim.period * 1000 for lim in limits]
            worst = max(range(len(limits)), key=lambda i: waits[i])
            out.append((False, 0, limits[worst]))
    return out


async def _async_hits(
    store: AsyncClientStore, bucket: str, limits: tuple[Limit, ...], n: int
) -> list[RateDecision]:
    try:
        return [await store.hit(bucket, limits) for _ in range(n)]
    finally:
        await store.close()


@pytest.mark.redis
@pytest.mark.parametrize("policy", PARITY_POLICIES)
def test_lua_and_python_rate_limits_decide_alike(
    policy: str,
    redis_url: str,
    redis_db: redis.Redis,
    key_prefix: str,
    record_figure: Callable[[str, object], None],
) -> None:
    limits = parse_rate_limits(policy)
    hits = 12
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix)
    store = ClientStore(settings)
    started = time.perf_counter()
    try:
        lua_sync = [store.hit("ip:198.51.100.1", limits) for _ in range(hits)]
    finally:
        store.close()
    elapsed = time.perf_counter() - started
    lua_async = asyncio.run(
        _async_hits(AsyncClientStore(settings), "ip:198.51.100.2", limits, hits)
    )
    memory = MemoryBackend(key_prefix)
    python_sync = [memory.hit("ip:198.51.100.1", limits) for _ in range(hits)]
    python_async = asyncio.run(
        _async_hits(
            AsyncClientStore(Settings(), backend=AsyncMemoryBackend(MemoryBackend())),
            "ip:198.51.100.1",
            limits,
            hits,
        )
    )
    expected = expected_views(limits, hits)
    for sequence in (lua_sync, lua_async, python_sync, python_async):
        assert [view(d) for d in sequence] == expected
    # Reset and Retry-After agree too, to within the second a slow machine may cross.
    for lua, python in zip(lua_sync, python_sync, strict=True):
        assert abs(lua.reset_seconds - python.reset_seconds) <= 1, (lua, python)
        assert abs(lua.retry_after_seconds - python.retry_after_seconds) <= 1, (lua, python)
        if not lua.allowed:
            assert lua.retry_after_seconds >= 1

    # The buckets: hashes under <prefix>:rate:{ip:...}, one field per limit and the time it was
    # last charged at (the script keeps each bucket's time monotonic), expiring.
    longest_ms = max(lim.period for lim in limits) * 1000
    for bucket in ("ip:198.51.100.1", "ip:198.51.100.2"):
        key = f"{key_prefix}:rate:{{{bucket}}}"
        assert key == rate_key(key_prefix, bucket)
        assert redis_db.type(key) == "hash"
        assert set(redis_db.hkeys(key)) == {lim.field for lim in limits} | {"clock"}
        assert 0 < redis_db.pttl(key) <= longest_ms
    assert rate_buckets(redis_db, key_prefix) == {
        rate_key(key_prefix, "ip:198.51.100.1"),
        rate_key(key_prefix, "ip:198.51.100.2"),
    }
    print(f"\n[figures] parity {policy}: {hits} Lua hits in {elapsed * 1000:.1f} ms")
    record_figure(f"abuse_parity_{policy}_lua_hits_ms", round(elapsed * 1000, 2))


# --- IPv6: bucketed by /64 (and /48) -------------------------------------------------------


@pytest.fixture
def serve_on(tmp_path: Path) -> Iterator[Callable[..., HostServer]]:
    started: list[HostServer] = []

    def _serve(
        kind: str, redis_url: str, host: str, *, args: Sequence[str], **kwargs: Any
    ) -> HostServer:
        server = start_server_on(
            kind,
            tmp_path,
            redis_url,
            host,
            args=ready_hook(kind, args, tmp_path),
            **kwargs,
        )
        started.append(server)
        if kind.startswith("gunicorn"):
            wait_workers_ready(server, worker_count(kind, args))
        return server

    try:
        yield _serve
    finally:
        for server in started:
            server.stop()


@pytest.mark.server
def require_ipv6_loopback(available: bool, environ: Mapping[str, str]) -> None:
    """Skip when ``::1`` cannot be used, and fail instead under ``CI=true`` (as the Redis
    fixtures do when ``redis-server`` is missing): CI must not pass without the IPv6 case."""
    if available:
        return
    message = "IPv6 loopback (::1) is not available"
    if environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize(
    ("available", "environ", "outcome"),
    [
        pytest.param(True, {"CI": "true"}, None, id="available"),
        pytest.param(False, {}, pytest.skip.Exception, id="missing-skips"),
        pytest.param(False, {"CI": "false"}, pytest.skip.Exception, id="missing-skips-ci-false"),
        pytest.param(False, {"CI": "true"}, pytest.fail.Exception, id="missing-fails-under-ci"),
    ],
)
def test_require_ipv6_loopback_fails_under_ci(
    available: bool, environ: dict[str, str], outcome: type[BaseException] | None
) -> None:
    if outcome is None:
        require_ipv6_loopback(available, environ)
        return
    # Both caught, so a skip where a failure is due fails this test instead of skipping it.
    with pytest.raises((pytest.skip.Exception, pytest.fail.Exception), match="IPv6") as raised:
        require_ipv6_loopback(available, environ)
    assert raised.type is outcome


@pytest.mark.redis
@pytest.mark.server
@pytest.mark.parametrize(
    ("kind", "flags"),
    [("gunicorn", ["-w", "2"]), ("uvicorn", ["--no-proxy-headers"])],
    ids=["gunicorn-sync", "uvicorn-no-proxy-headers"],
)
def test_ipv6_clients_are_bucketed_by_slash_64(
    kind: str,
    flags: list[str],
    serve_on: Callable[..., HostServer],
    redis_url: str,
    redis_db: redis.Redis,
) -> None:
    require_ipv6_loopback(ipv6_loopback_available(), os.environ)
    env = {"DCR_RATE_LIMIT": "3/minute", "DCR_TRUSTED_PROXIES": "::1/128"}
    server = serve_on(kind, redis_url, "::1", env=env, args=flags, log_level="warning")
    host = f"[::1]:{server.port}"

    def send(values: Sequence[str | None]) -> list[RawResponse]:
        requests = [
            raw_post("/register", PAYLOAD, {"X-Forwarded-For": v} if v else {}, host=host)
            for v in values
        ]
        return asyncio.run(send_concurrently(server.port, requests, LOAD_DEADLINE, "::1"))

    # The peer itself (::1): its /64 is ::/64.
    assert sorted(r.status for r in send([None] * 4)) == [201, 201, 201, 429]
    # Four addresses of one /64 share one bucket; another /64 has its own.
    same_64 = [f"2001:db8:1:2::{x}" for x in "abcd"]
    assert sorted(r.status for r in send(same_64)) == [201, 201, 201, 429]
    assert [r.status for r in send(["2001:db8:1:3::1", "::ffff:203.0.113.9"])] == [201, 201]
    assert rate_buckets(redis_db) == {
        ip_key("::/64"),
        ip_key("2001:db8:1:2::/64"),
        ip_key("2001:db8:1:3::/64"),
        ip_key("203.0.113.9"),  # IPv4-mapped counts as the IPv4 address
        # Each /64's /48 is charged with it (DCR_RATE_LIMIT_IPV6_PREFIX), 5 times the limit.
        ip_key("::/48"),
        ip_key("2001:db8:1::/48"),
    }
    assert set(redis_db.hkeys(ip_key("2001:db8:1::/48"))) == {"15/60", "clock"}
    assert len(stored_records(redis_db)) == 3 + 3 + 2
