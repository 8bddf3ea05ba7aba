"""Redis round trips per registration, and the client lifetime (``DCR_CLIENT_IDLE_TTL``).

Round trips are counted with MONITOR on the real ``redis-server``: the commands a client sends
(not the ones Lua runs) are the round trips. Lifetimes are read back with PTTL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import anyio
import httpx
import pytest
import redis
from support import CONFIDENTIAL, RedisServer

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    DCRMiddleware,
    DCRWSGIMiddleware,
    InvalidClientError,
    Settings,
)
from dcr_middleware.storage.base import client_key, counter_key, used_key
from dcr_middleware.storage.redis_ops import LOOKUP_SCRIPT, REGISTER_SCRIPT

from .test_management import RedisLog, ScriptCall

pytestmark = [pytest.mark.redis]

BASE = "http://127.0.0.1:8000"
REGISTRATIONS = 5


def unreachable(environ: object, start_response: object) -> list[bytes]:
    raise AssertionError("passed through")


async def unreachable_asgi(scope: object, receive: object, send: object) -> None:
    raise AssertionError("passed through")


def register_wsgi(settings: Settings, count: int) -> list[httpx.Response]:
    store = ClientStore(settings)
    app = DCRWSGIMiddleware(unreachable, settings, store=store)
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE) as http:
            return [http.post("/register", json=CONFIDENTIAL) for _ in range(count)]
    finally:
        store.close()


def register_asgi(settings: Settings, count: int) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        store = AsyncClientStore(settings)
        app = DCRMiddleware(unreachable_asgi, settings, store=store)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
                return [await http.post("/register", json=CONFIDENTIAL) for _ in range(count)]
        finally:
            await store.close()

    return anyio.run(run)


REGISTER = {"wsgi": register_wsgi, "asgi": register_asgi}


# Sent once when a pooled connection opens, not per request; and the MONITOR stop marker.
NOT_PER_REQUEST = {"PING", "HELLO", "CLIENT", "SELECT", "AUTH", "ECHO"}


def sent_by_clients(calls: list[ScriptCall]) -> list[str]:
    """The commands clients sent per request (one round trip each, nothing is pipelined)."""
    names = [c.args[0].upper() for c in calls if c.source != "lua"]
    return [name for name in names if name not in NOT_PER_REQUEST]


def run_in_scripts(calls: list[ScriptCall]) -> list[str]:
    return [c.args[0].upper() for c in calls if c.source == "lua"]


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_registration_with_rate_limit_and_cap_is_one_round_trip(
    kind: str, redis_url: str, redis_db: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(
        redis_url=redis_url, key_prefix=key_prefix, rate_limit="100/minute", max_clients=50
    )
    register: Callable[[Settings, int], list[httpx.Response]] = REGISTER[kind]
    redis_db.script_load(REGISTER_SCRIPT)  # as after the first registration (EVALSHA hits)
    log = RedisLog(redis_url)
    try:
        responses = register(settings, REGISTRATIONS)
    finally:
        calls = log.stop(redis_db)

    assert [r.status_code for r in responses] == [201] * REGISTRATIONS
    assert all("ratelimit" in r.headers for r in responses)
    # One EVALSHA per registration: rate limit, cap and create decided in one script.
    assert sent_by_clients(calls) == ["EVALSHA"] * REGISTRATIONS
    inside = run_in_scripts(calls)
    assert inside.count("SET") == REGISTRATIONS
    assert inside.count("INCR") == REGISTRATIONS
    assert inside.count("HSET") == REGISTRATIONS
    assert redis_db.get(counter_key(key_prefix)) == str(REGISTRATIONS)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_rate_limit_refusal_costs_one_round_trip_then_none(
    kind: str, redis_url: str, redis_db: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix, rate_limit="2/minute")
    redis_db.script_load(REGISTER_SCRIPT)
    log = RedisLog(redis_url)
    try:
        responses = REGISTER[kind](settings, 5)
    finally:
        calls = log.stop(redis_db)

    assert [r.status_code for r in responses] == [201, 201, 429, 429, 429]
    # The store refused the third in its one script call; that refusal is remembered by the
    # process, so the 4th and 5th are answered without a round trip.
    assert sent_by_clients(calls) == ["EVALSHA"] * 3
    assert {r.headers["retry-after"] for r in responses[2:]} <= {str(n) for n in range(1, 31)}
    assert len(redis_db.keys(client_key(key_prefix, "*"))) == 2


# --- DCR_CLIENT_IDLE_TTL ---------------------------------------------------------------------


def registered_id(settings: Settings) -> str:
    (response,) = register_wsgi(settings, 1)
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


def test_idle_client_expires_unless_it_is_used(
    redis_url: str, redis_db: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(
        redis_url=redis_url, key_prefix=key_prefix, client_idle_ttl=2, rate_limit="off"
    )
    kept, dropped = registered_id(settings), registered_id(settings)
    for client_id in (kept, dropped):
        assert 0 < redis_db.pttl(client_key(key_prefix, client_id)) <= 2000

    store = ClientStore(settings)
    try:
        deadline = time.monotonic() + 3.0  # past the TTL, looking up one of the two
        while time.monotonic() < deadline:
            assert store.get(kept) is not None
            time.sleep(0.25)  # more than the refresh interval (a tenth of the TTL)
        assert store.get(kept) is not None
        assert store.get(dropped) is None
        with pytest.raises(InvalidClientError) as refused:
            store.require(dropped)
        assert (refused.value.status, refused.value.error) == (401, "invalid_client")
        assert redis_db.exists(client_key(key_prefix, dropped)) == 0
        # The kept client's record and its last-use key carry a fresh TTL.
        assert 1000 < redis_db.pttl(client_key(key_prefix, kept)) <= 2000
        assert 0 < redis_db.pttl(used_key(key_prefix, kept)) <= 2000
    finally:
        store.close()


def test_lookups_write_at_most_once_per_refresh_interval(
    redis_url: str, redis_db: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(
        redis_url=redis_url, key_prefix=key_prefix, client_idle_ttl=1000, rate_limit="off"
    )
    client_id = registered_id(settings)
    store = ClientStore(settings)
    redis_db.script_load(LOOKUP_SCRIPT)
    log = RedisLog(redis_url)
    try:
        found = [store.get(client_id) for _ in range(20)]
    finally:
        calls = log.stop(redis_db)
        store.close()
    assert all(found)
    inside = run_in_scripts(calls)
    # Refresh interval: a tenth of 1,000 s. 20 lookups, one write of each kind.
    assert inside.count("PEXPIRE") == 1
    assert inside.count("SET") == 1
    assert sent_by_clients(calls) == ["EVALSHA"] * 20
    used = redis_db.get(used_key(key_prefix, client_id))
    assert used is not None and abs(int(used) / 1000 - time.time()) < 60


def test_without_idle_ttl_clients_never_expire_but_use_is_noted(
    redis_url: str, redis_db: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix, rate_limit="off")
    client_id = registered_id(settings)
    assert redis_db.pttl(client_key(key_prefix, client_id)) == -1
    assert redis_db.exists(used_key(key_prefix, client_id)) == 0
    store = ClientStore(settings)
    try:
        assert store.get(client_id) is not None
    finally:
        store.close()
    assert redis_db.pttl(client_key(key_prefix, client_id)) == -1
    assert redis_db.pttl(used_key(key_prefix, client_id)) == -1
    assert redis_db.exists(used_key(key_prefix, client_id)) == 1


@pytest.mark.anyio
async def test_update_renews_the_ttl_and_delete_removes_both_keys(
    redis_url: str, redis_db: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(
        redis_url=redis_url, key_prefix=key_prefix, client_idle_ttl=60, rate_limit="off"
    )
    client_id = registered_id(settings)
    key = client_key(key_prefix, client_id)
    redis_db.pexpire(key, 5_000)  # as if it had gone unused for 55 s
    store = AsyncClientStore(settings)
    try:
        loaded = await store.load(client_id)
        assert loaded is not None
        client, record = loaded
        data = json.loads(record)
        data["metadata"]["client_name"] = "renamed"
        renamed = type(client).from_record(json.dumps(data))
        # load() itself renewed the TTL (first lookup of this client: the last use is unknown).
        assert redis_db.pttl(key) > 50_000
        redis_db.pexpire(key, 5_000)
        await store.replace(client_id, record, renamed)
        assert redis_db.pttl(key) > 50_000
        assert json.loads(str(redis_db.get(key)))["metadata"]["client_name"] == "renamed"

        again = await store.load(client_id)
        assert again is not None
        await store.replace(client_id, again[1], None)
        assert redis_db.exists(key, used_key(key_prefix, client_id)) == 0
        assert await store.get(client_id) is None
    finally:
        await store.close()


def test_purge_keeps_a_client_used_after_it_was_read(
    redis_url: str, redis_db: redis.Redis, key_prefix: str
) -> None:
    from dcr_middleware.storage.redis import RedisBackend

    settings = Settings(redis_url=redis_url, key_prefix=key_prefix, rate_limit="off")
    client_id = registered_id(settings)
    backend = RedisBackend(settings)
    store = ClientStore(settings, backend=backend)
    try:
        record = backend.get(client_id)
        assert record is not None
        assert store.get(client_id) is not None  # used between the purge's read and its delete
        assert backend.purge(client_id, record, None) is False
        used = redis_db.get(used_key(key_prefix, client_id))
        assert used is not None
        assert backend.purge(client_id, record, int(used)) is True
        assert redis_db.exists(client_key(key_prefix, client_id)) == 0
    finally:
        backend.close()


@pytest.mark.parametrize("idle_ttl", [0, 60])
def test_lookups_work_while_redis_refuses_writes(
    idle_ttl: int, own_redis: RedisServer, key_prefix: str
) -> None:
    # maxmemory reached under noeviction (and NOREPLICAS, a replica) make Redis refuse writes:
    # noting a use is skipped, the client is still found; registration answers 503, never 500.
    # (With a TTL the script's first write is PEXPIRE, which Redis allows under OOM, and then
    # lets the rest of the script write; without one the SET of the last use is refused.)
    settings = Settings(
        redis_url=own_redis.url, key_prefix=key_prefix, client_idle_ttl=idle_ttl, rate_limit="off"
    )
    client_id = registered_id(settings)
    admin = own_redis.client()
    store = ClientStore(settings)
    try:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        found = store.get(client_id)
        assert found is not None and found.client_id == client_id
        if not idle_ttl:
            assert admin.exists(used_key(key_prefix, client_id)) == 0  # the write was refused
        (refused,) = register_wsgi(settings, 1)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "temporarily_unavailable"
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
        store.close()
    assert store.get(client_id) is not None


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_refused_requests_do_not_keep_a_client_alive(
    kind: str, redis_url: str, redis_db: redis.Redis, key_prefix: str
) -> None:
    # Client ids are not secret: a wrong registration access token or a wrong secret must not
    # renew the idle TTL (found by the property tests); the right ones do.
    settings = Settings(
        redis_url=redis_url, key_prefix=key_prefix, client_idle_ttl=100, rate_limit="off"
    )
    (created,) = register_wsgi(settings, 1)
    body = created.json()
    client_id, key = body["client_id"], client_key(key_prefix, body["client_id"])

    def age() -> None:
        redis_db.pexpire(key, 5_000)
        redis_db.delete(used_key(key_prefix, client_id))

    def management_get(token: str) -> int:
        path, headers = f"/register/{client_id}", {"authorization": f"Bearer {token}"}
        if kind == "wsgi":
            store = ClientStore(settings)
            app = DCRWSGIMiddleware(unreachable, settings, store=store)
            try:
                with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE) as http:
                    return http.get(path, headers=headers).status_code
            finally:
                store.close()

        async def run() -> int:
            store = AsyncClientStore(settings)
            app = DCRMiddleware(unreachable_asgi, settings, store=store)
            try:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
                    return (await http.get(path, headers=headers)).status_code
            finally:
                await store.close()

        return anyio.run(run)

    age()
    assert management_get("not-the-token") == 401
    assert redis_db.pttl(key) <= 5_000
    assert redis_db.exists(used_key(key_prefix, client_id)) == 0
    assert management_get(body["registration_access_token"]) == 200
    assert redis_db.pttl(key) > 90_000

    age()
    store = ClientStore(settings)
    try:
        assert store.authenticate(client_id, "wrong secret") is None
        with pytest.raises(InvalidClientError):
            store.require(client_id, "wrong secret")
        assert redis_db.pttl(key) <= 5_000
        assert store.authenticate(client_id, body["client_secret"]) is not None
        assert redis_db.pttl(key) > 90_000
    finally:
        store.close()
