"""Defaults that are safe to expose (issue 11) on a real Redis, through both middlewares in
process: a refused registration keeps its token use (in Lua), IPv6 charged per /64 and per /48 in
one script, Lua and Python agreeing over two buckets, failed credentials throttled with the
success path still one round trip, and the measured memory one address can add in a day.

Requests come from the peer ``127.0.0.1``, trusted as a proxy, so ``X-Forwarded-For`` picks the
client address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from secrets import token_urlsafe
from typing import Any

import httpx
import pytest
import redis
from support import CONFIDENTIAL

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    DCRMiddleware,
    DCRWSGIMiddleware,
    InvalidClientMetadataError,
    Settings,
)
from dcr_middleware.core.ratelimit import Limit, RateDecision, decide, parse_rate_limits
from dcr_middleware.core.registration import prepare_registration
from dcr_middleware.core.tokens import TokenPolicy
from dcr_middleware.storage.base import rate_key, token_key
from dcr_middleware.storage.memory import MemoryBackend
from dcr_middleware.storage.redis_ops import RATELIMIT_SCRIPT, REGISTER_SCRIPT

from .test_management import RedisLog
from .test_round_trips_and_lifetime import sent_by_clients

pytestmark = [pytest.mark.redis]

BASE = "http://127.0.0.1:8000"
KINDS = ["asgi", "wsgi"]
TOKEN = "static-Initial-Access-Token_0123456789"
WRONG = "wrong-Initial-Access-Token_000000000000"
MINTED = "minted-Initial-Access-Token_9876543210abc"
JSON_HEADERS = {"Content-Type": "application/json"}
PHASE = "dcr-it-phase"


def never_wsgi(environ: object, start_response: object) -> list[bytes]:
    raise AssertionError("passed through")


async def never_asgi(scope: object, receive: object, send: object) -> None:
    raise AssertionError("passed through")


class InProcess:
    """One middleware (ASGI or WSGI) over a Redis store, driven through httpx's transports."""

    def __init__(self, kind: str, settings: Settings) -> None:
        self.kind = kind
        self.sync_store = ClientStore(settings)  # for reading and minting
        if kind == "wsgi":
            app = DCRWSGIMiddleware(never_wsgi, settings, store=self.sync_store)
            self.http = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE)
        else:
            self.loop = asyncio.new_event_loop()
            self.async_store = AsyncClientStore(settings)
            asgi = DCRMiddleware(never_asgi, settings, store=self.async_store)
            transport = httpx.ASGITransport(app=asgi)
            self.ahttp = httpx.AsyncClient(transport=transport, base_url=BASE)

    def send(
        self,
        method: str = "POST",
        path: str = "/register",
        *,
        body: Any = CONFIDENTIAL,
        headers: dict[str, str] | None = None,
        address: str | None = None,
    ) -> httpx.Response:
        headers = {**JSON_HEADERS, **(headers or {})}
        if address is not None:
            headers["X-Forwarded-For"] = address
        content = None if body is None else json.dumps(body).encode()
        if self.kind == "wsgi":
            return self.http.request(method, path, content=content, headers=headers)
        request = self.ahttp.request(method, path, content=content, headers=headers)
        return self.loop.run_until_complete(request)

    def close(self) -> None:
        if self.kind == "wsgi":
            self.http.close()
        else:
            self.loop.run_until_complete(self.ahttp.aclose())
            self.loop.run_until_complete(self.async_store.close())
            self.loop.close()
        self.sync_store.close()


@pytest.fixture
def middleware() -> Iterator[Callable[[str, Settings], InProcess]]:
    opened: list[InProcess] = []

    def _open(kind: str, settings: Settings) -> InProcess:
        opened.append(InProcess(kind, settings))
        return opened[-1]

    try:
        yield _open
    finally:
        for side in opened:
            side.close()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- a refused registration keeps its token use ----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_registration_refused_at_the_cap_keeps_the_token_use(
    kind: str,
    middleware: Callable[[str, Settings], InProcess],
    redis_url: str,
    redis_db: redis.Redis,
    key_prefix: str,
) -> None:
    # The case: DCR_MAX_CLIENTS=1 and a 3-use minted token gave 201, 403, 403 and 0 left.
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix, max_clients=1)
    side = middleware(kind, settings)
    fields = {"uses": "3", "policy": TokenPolicy().to_json(), "label": "t", "created": "0"}
    side.sync_store.backend.token_put(sha(MINTED), fields, 0)
    bearer = {"Authorization": f"Bearer {MINTED}"}
    assert [side.send(headers=bearer).status_code for _ in range(3)] == [201, 403, 403]
    assert redis_db.hget(token_key(key_prefix, sha(MINTED)), "uses") == "2"


# --- IPv6 per /64 and per /48, in one script -------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_ipv6_slash_64_and_slash_48_charged_in_one_round_trip(
    kind: str,
    middleware: Callable[[str, Settings], InProcess],
    redis_url: str,
    redis_db: redis.Redis,
    key_prefix: str,
) -> None:
    settings = Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        rate_limit="2/minute",
        trusted_proxies=("127.0.0.1",),
    )
    side = middleware(kind, settings)
    redis_db.script_load(REGISTER_SCRIPT)
    log = RedisLog(redis_url)
    try:
        answers = [side.send(address=f"2001:db8:1:{n:x}::1") for n in range(20)]
    finally:
        calls = log.stop(redis_db)
    assert [a.status_code for a in answers] == [201] * 10 + [429] * 10
    # Every request was decided by one EVALSHA (the /64 and the /48 together) until the worker
    # remembered the /48's refusal; the rest were refused without a Redis call.
    assert sent_by_clients(calls) == ["EVALSHA"] * 11
    wide = rate_key(key_prefix, "ip:2001:db8:1::/48")
    assert redis_db.hgetall(wide).keys() == {"10/60", "clock"}
    assert 0 < redis_db.pttl(wide) <= 60_000
    assert redis_db.exists(rate_key(key_prefix, "ip:2001:db8:1:9::/64"))
    assert not redis_db.exists(rate_key(key_prefix, "ip:2001:db8:1:a::/64"))  # refused: free
    assert answers[10].headers["ratelimit"].startswith('"ip/48-10/60";r=0;')


WIDE = "ip:2001:db8:7::/48"


def two_bucket_limits(policy: str, factor: int = 3) -> tuple[Limit, ...]:
    own = parse_rate_limits(policy)
    return own + tuple(Limit(lim.count * factor, lim.period, WIDE) for lim in own)


def views(decisions: list[RateDecision]) -> list[tuple[bool, int, Limit]]:
    return [(d.allowed, d.remaining, d.limit) for d in decisions]


@pytest.mark.parametrize("policy", ["2/minute", "3/hour;4/day", "5/hour;2/day"])
def test_lua_and_python_decide_alike_over_two_buckets(
    policy: str, redis_url: str, redis_db: redis.Redis, key_prefix: str
) -> None:
    limits = two_bucket_limits(policy)
    # Four /64s of one /48 take turns, so the /48 binds before any one /64 does (or not).
    buckets = [f"ip:2001:db8:7:{n % 4}::/64" for n in range(16)]
    store = ClientStore(Settings(redis_url=redis_url, key_prefix=key_prefix))
    try:
        lua = [store.hit(bucket, limits) for bucket in buckets]
    finally:
        store.close()
    memory = MemoryBackend(key_prefix)
    python = [memory.hit(bucket, limits) for bucket in buckets]
    assert views(lua) == views(python)
    assert any(not d.allowed and d.limit.bucket == WIDE for d in lua)
    for a, b in zip(lua, python, strict=True):
        assert abs(a.retry_after_seconds - b.retry_after_seconds) <= 1
    assert redis_db.exists(rate_key(key_prefix, WIDE))


# --- failed credentials: throttled, and the success path stays one round trip ----------------


@pytest.mark.parametrize("kind", KINDS)
def test_failed_tokens_throttled_and_success_stays_one_round_trip(
    kind: str,
    middleware: Callable[[str, Settings], InProcess],
    redis_url: str,
    redis_db: redis.Redis,
    key_prefix: str,
) -> None:
    settings = Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        initial_access_tokens=(TOKEN,),
        trusted_proxies=("127.0.0.1",),
    )
    side = middleware(kind, settings)
    right, wrong = {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": f"Bearer {WRONG}"}
    redis_db.script_load(REGISTER_SCRIPT)
    redis_db.script_load(RATELIMIT_SCRIPT)
    log = RedisLog(redis_url)
    try:
        created = side.send(headers=right, address="198.51.100.1")
        redis_db.echo(PHASE)
        failed = [side.send(headers=wrong, address="198.51.100.2").status_code for _ in range(22)]
        after_refusal = side.send(headers=right, address="198.51.100.2")
    finally:
        calls = log.stop(redis_db)
    marker = next(i for i, c in enumerate(calls) if c.args[-1:] == [PHASE])
    assert created.status_code == 201
    # A success: one EVALSHA (register.lua), nothing about failures.
    assert sent_by_clients(calls[:marker]) == ["EVALSHA"]
    assert failed == [401] * 20 + [429] * 2
    assert after_refusal.status_code == 429
    assert int(after_refusal.headers["retry-after"]) >= 1
    # 21 failures looked up (the minted-token read) and charged (the 21st refused), then
    # refused in memory before the lookup: no more Redis calls.
    assert sent_by_clients(calls[marker + 1 :]) == ["HGETALL", "EVALSHA"] * 21
    assert redis_db.exists(rate_key(key_prefix, "fail:ip:198.51.100.2"))
    assert not redis_db.exists(rate_key(key_prefix, "fail:ip:198.51.100.1"))


@pytest.mark.parametrize("kind", KINDS)
def test_management_failures_and_writes_limited_on_redis(
    kind: str,
    middleware: Callable[[str, Settings], InProcess],
    redis_url: str,
    redis_db: redis.Redis,
    key_prefix: str,
) -> None:
    settings = Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        management_rate_limit="2/hour",
        failure_rate_limit="3/minute",
    )
    side = middleware(kind, settings)
    created = side.send().json()
    path = created["registration_client_uri"].removeprefix(BASE)
    wrong = {"Authorization": f"Bearer {WRONG}"}
    refused = [side.send("GET", path, body=None, headers=wrong).status_code for _ in range(4)]
    assert refused == [401, 401, 401, 429]
    # A new middleware (another worker) with the right token, from another address.
    other = middleware(kind, dataclasses.replace(settings, trusted_proxies=("127.0.0.1",)))
    token = created["registration_access_token"]
    update = {"client_id": created["client_id"], "redirect_uris": created["redirect_uris"]}
    statuses = []
    for _ in range(3):
        bearer = {"Authorization": f"Bearer {token}"}
        answer = other.send("PUT", path, body=update, headers=bearer, address="203.0.113.9")
        statuses.append(answer.status_code)
        token = answer.json().get("registration_access_token", token)
    assert statuses == [200, 200, 429]
    assert redis_db.exists(rate_key(key_prefix, f"client:{created['client_id']}"))


# --- measured: the most memory one address can add in a day ----------------------------------


def maximal_body(settings: Settings) -> dict[str, Any]:
    """A registration whose stored record is as large as ``DCR_MAX_RECORD_BYTES`` allows."""
    tagged = {f"client_name#x-a{i}": "n" * 2000 for i in range(7)}
    base = {**CONFIDENTIAL, **tagged, "client_name": "n"}

    def size(body: dict[str, Any]) -> int:
        raw = json.dumps(body).encode()
        new = prepare_registration(raw, settings, now=int(time.time()), token=token_urlsafe)
        return len(new.client.to_record())

    fill = settings.max_record_bytes - size(base) + 1  # the length of the name that fills it
    assert 0 < fill <= settings.max_string_length
    body = {**base, "client_name": "n" * fill}
    assert size(body) == settings.max_record_bytes
    with pytest.raises(InvalidClientMetadataError):
        size({**base, "client_name": "n" * (fill + 1)})
    return body


def most_in_a_day(limits: tuple[Limit, ...]) -> int:
    """How many requests the GCRA (the arithmetic Lua and Python share) admits in the first 24
    hours to a client that starts idle and retries the moment it may."""
    tats: list[int | None] = [None] * len(limits)
    now, admitted = 0, 0
    while now < 86_400_000:
        decision, new_tats = decide(tats, now, limits)
        if new_tats is None:
            now += max(1, decision.retry_after_ms)
            continue
        tats, admitted = list(new_tats), admitted + 1
    return admitted


def used_memory(admin: redis.Redis) -> int:
    return int(admin.info("memory")["used_memory"])


@pytest.mark.parametrize(
    ("source", "addresses", "burst", "per_day"),
    [
        pytest.param("ipv4", ["198.51.100.77"] * 30, 20, 200, id="one-ipv4-address"),
        pytest.param(
            "ipv6-48", [f"2001:db8:9:{n:x}::1" for n in range(150)], 100, 1000, id="one-ipv6-48"
        ),
    ],
)
def test_measured_memory_one_address_can_add_per_day(
    source: str,
    addresses: list[str],
    burst: int,
    per_day: int,
    middleware: Callable[[str, Settings], InProcess],
    redis_url: str,
    redis_db: redis.Redis,
    key_prefix: str,
    record_figure: Callable[[str, object], None],
) -> None:
    """Register maximal records as fast as the defaults allow; measure what they cost Redis.

    The defaults admit a burst (20 from one IPv4 address; 100 from one /48, five /64s' worth)
    and at most ``per_day`` a day (200; 1,000). The burst is measured; the daily figure is the
    daily allowance times the measured memory per registration."""
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix, trusted_proxies=("127.0.0.1",))
    body = maximal_body(settings)
    side = middleware("asgi", settings)
    before = used_memory(redis_db)
    answers = [side.send(body=body, address=a) for a in addresses]
    after = used_memory(redis_db)
    assert sum(a.status_code == 201 for a in answers) == burst
    assert {a.status_code for a in answers} == {201, 429}
    clients = list(redis_db.scan_iter(match=f"{key_prefix}:client:*", count=1000))
    assert len(clients) == burst
    usage = [int(redis_db.memory_usage(k, samples=0) or 0) for k in clients]
    rates = list(redis_db.scan_iter(match=f"{key_prefix}:rate:*", count=1000))
    rate_usage = sum(int(redis_db.memory_usage(k, samples=0) or 0) for k in rates)
    per_record = max(usage)
    per_registration = (after - before) / burst
    # The record cap holds in Redis: a maximal record costs the cap plus allocator overhead.
    assert settings.max_record_bytes < per_record <= settings.max_record_bytes * 1.3
    # The daily allowance: the wider prefix's limits for a /48 (its /64s rotated), the
    # address's for IPv4. The first day from idle holds the burst plus the refill.
    limits = parse_rate_limits(settings.rate_limit)
    if source != "ipv4":
        factor = settings.rate_limit_ipv6_factor
        limits = tuple(Limit(lim.count * factor, lim.period) for lim in limits)
    first_day = most_in_a_day(limits)
    assert per_day < first_day < 2 * per_day
    # What stays: the records and the rate keys (MEMORY USAGE, exact). used_memory also counts
    # transient client buffers (16 KB arguments), so it is reported, not used.
    cost = (sum(usage) + rate_usage) / burst
    print(
        f"\n[figures] {source}: {burst} maximal registrations admitted at once; MEMORY USAGE "
        f"per record {per_record} B; used_memory +{after - before} B "
        f"({per_registration:.0f} B per registration); {len(rates)} rate keys {rate_usage} B; "
        f"first 24 h at most {first_day} x {cost:.0f} B = {first_day * cost / 1e6:.1f} MB, "
        f"then {per_day} a day = {per_day * cost / 1e6:.1f} MB a day"
    )
    record_figure(f"exposure_{source}_record_bytes", per_record)
    record_figure(f"exposure_{source}_used_memory_per_registration", round(per_registration))
    record_figure(f"exposure_{source}_first_day_registrations", first_day)
    record_figure(f"exposure_{source}_first_day_bytes", round(first_day * cost))
    record_figure(f"exposure_{source}_steady_daily_bytes", round(per_day * cost))
