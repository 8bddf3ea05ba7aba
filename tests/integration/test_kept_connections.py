"""The connections a Redis backend keeps between its request-path commands (``storage/redis.py``,
``_Kept``): on one plain Redis, a command whose exchange ended cleanly leaves its connection with
the backend instead of the pool, and the next command takes it without the pool's checkout.

What must hold besides the speed: the pool's bound (a burst larger than the pool waits and gets
its connections, none is held back while a command waits), a connection the server closed is
replaced, a forked child never uses its parent's socket, and Sentinel keeps nothing (its pool has
to see each connection come back). That a timed-out connection is never reused is checked in
``test_direct_commands.py``, with one connection and with two (one of them kept)."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from typing import Any

import pytest
import redis
import redis.asyncio
from support import RedisServer
from support.redis_servers import wait_for

from dcr_middleware import AsyncClientStore, ClientStore, Settings
from dcr_middleware.core.client import RegisteredClient
from dcr_middleware.core.credentials import hash_secret
from dcr_middleware.storage.connect import connection_options, pool_options
from dcr_middleware.storage.redis import AsyncRedisBackend, RedisBackend

pytestmark = pytest.mark.redis

SECRET = "s" * 43


class CountingPool(redis.BlockingConnectionPool):
    """redis-py's pool, counting its checkouts."""

    checkouts = 0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.checkouts += 1
        return super().get_connection(*args, **kwargs)


class AsyncCountingPool(redis.asyncio.BlockingConnectionPool):
    """The same for ``redis.asyncio``."""

    checkouts = 0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.checkouts += 1
        return await super().get_connection(*args, **kwargs)


def settings(server: RedisServer, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "redis_url": server.url,
        "redis_timeout": 0.5,
        "redis_max_connections": 4,
        "redis_pool_timeout": 2.0,
        "client_idle_ttl": 86400,
    }
    options.update(overrides)
    return Settings(**options)


def client(client_id: str) -> RegisteredClient:
    return RegisteredClient(
        client_id=client_id,
        client_id_issued_at=int(time.time()),
        metadata={"redirect_uris": ["https://app.example/cb"], "client_name": client_id},
        client_secret_hash=hash_secret(SECRET),
    )


def sync_store(s: Settings) -> tuple[ClientStore, CountingPool]:
    # The store's own pool options (storage/connect.py), in a pool that counts its checkouts.
    pool = CountingPool.from_url(s.redis_url, **connection_options(s), **pool_options(s))
    backend = RedisBackend(s, client=redis.Redis.from_pool(pool))
    return ClientStore(s, backend=backend), pool


def async_store(s: Settings) -> tuple[AsyncClientStore, AsyncCountingPool]:
    pool = AsyncCountingPool.from_url(s.redis_url, **connection_options(s), **pool_options(s))
    client_ = redis.asyncio.Redis.from_pool(pool)
    return AsyncClientStore(s, backend=AsyncRedisBackend(s, client=client_)), pool


def connections_received(admin: redis.Redis) -> int:
    return int(admin.info("stats")["total_connections_received"])


def test_sequential_commands_take_the_kept_connection(own_redis: RedisServer) -> None:
    store, pool = sync_store(settings(own_redis))
    try:
        store.create(client("clientA"))
        for _ in range(20):
            assert store.get("clientA") is not None
            assert store.authenticate("clientA", SECRET) is not None
        assert pool.checkouts == 1  # 41 commands, one checkout
    finally:
        store.close()


@pytest.mark.anyio
async def test_async_sequential_commands_take_the_kept_connection(
    own_redis: RedisServer,
) -> None:
    store, pool = async_store(settings(own_redis))
    try:
        await store.create(client("clientA"))
        for _ in range(20):
            assert await store.get("clientA") is not None
            assert await store.authenticate("clientA", SECRET) is not None
        assert pool.checkouts == 1
    finally:
        await store.close()


def test_a_pool_of_one_keeps_nothing(own_redis: RedisServer) -> None:
    # Half the pool at most is kept, so that redis-py's own commands (scans, pipelines) always
    # find a connection: with one connection in all, every command goes through the pool.
    store, pool = sync_store(settings(own_redis, redis_max_connections=1))
    try:
        store.create(client("clientA"))
        assert store.get("clientA") is not None  # the scripts are loaded by now
        before = pool.checkouts
        for _ in range(5):
            assert store.get("clientA") is not None
        assert pool.checkouts == before + 5
    finally:
        store.close()


def test_connection_closed_by_the_server_is_replaced(own_redis: RedisServer) -> None:
    # The store's own client: its connections retry once after a connection error.
    store = ClientStore(settings(own_redis))
    admin = own_redis.client()
    try:
        store.create(client("clientA"))
        for _ in range(3):
            assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
            found = store.get("clientA")
            assert found is not None and found.client_id == "clientA"
    finally:
        store.close()


@pytest.mark.anyio
async def test_async_connection_closed_by_the_server_is_replaced(
    own_redis: RedisServer,
) -> None:
    store = AsyncClientStore(settings(own_redis))
    admin = own_redis.client()
    try:
        await store.create(client("clientA"))
        for _ in range(3):
            assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
            found = await store.get("clientA")
            assert found is not None and found.client_id == "clientA"
    finally:
        await store.close()


@pytest.mark.anyio
async def test_async_burst_larger_than_the_pool_gets_every_answer(
    own_redis: RedisServer,
) -> None:
    # 300 lookups at once on two connections (one may be kept): a returning connection must go
    # to the waiters, or they would wait out DCR_REDIS_POOL_TIMEOUT and fail.
    store, pool = async_store(settings(own_redis, redis_max_connections=2, redis_pool_timeout=1))
    try:
        await store.create(client("clientA"))
        found = await asyncio.gather(*(store.get("clientA") for _ in range(300)))
        assert all(c is not None and c.client_id == "clientA" for c in found)
        assert pool.checkouts > 1  # they did wait for the pool
        assert await store.get("clientA") is not None
    finally:
        await store.close()


@pytest.mark.anyio
async def test_async_no_connection_is_kept_while_a_command_waits_for_the_pool(
    own_redis: RedisServer,
) -> None:
    # A connection kept while others wait for the pool would serve nobody until the burst ends:
    # half the pool idle, waits up to DCR_REDIS_POOL_TIMEOUT, 503s on a healthy Redis.
    backend = AsyncRedisBackend(settings(own_redis, redis_max_connections=4))
    store = AsyncClientStore(backend=backend)
    kept = backend.kept
    waited = kept_while_waiting = 0
    try:
        await store.create(client("clientA"))
        burst = asyncio.gather(*(store.get("clientA") for _ in range(400)))
        while not burst.done():
            waited += kept.waiting > 0
            kept_while_waiting += kept.waiting > 0 and len(kept.idle) > 0
            await asyncio.sleep(0)
        assert all(found is not None for found in await burst)
        assert waited > 0  # the burst did wait for the pool
        assert kept_while_waiting == 0
        assert len(kept.idle) == 2  # and once it was over, half the pool is kept
    finally:
        await store.close()


def test_no_connection_is_kept_while_a_thread_waits_for_the_pool(own_redis: RedisServer) -> None:
    backend = RedisBackend(settings(own_redis, redis_max_connections=4))
    store = ClientStore(backend=backend)
    kept = backend.kept
    seen = {"waited": 0, "kept while waiting": 0}
    done = threading.Event()

    def lookups() -> None:
        for _ in range(150):
            store.get("clientA")

    def watch() -> None:
        while not done.is_set():
            with kept.lock:
                seen["waited"] += kept.waiting > 0
                seen["kept while waiting"] += kept.waiting > 0 and len(kept.idle) > 0

    try:
        store.create(client("clientA"))
        threads = [threading.Thread(target=lookups) for _ in range(8)]
        watcher = threading.Thread(target=watch)
        watcher.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        done.set()
        watcher.join(timeout=10)
        assert seen["waited"] > 0
        assert seen["kept while waiting"] == 0
    finally:
        done.set()
        store.close()


def test_threads_larger_than_the_pool_get_every_answer(own_redis: RedisServer) -> None:
    store, pool = sync_store(settings(own_redis, redis_max_connections=2, redis_pool_timeout=1))
    failures: list[BaseException] = []

    def lookups() -> None:
        try:
            for _ in range(100):
                found = store.get("clientA")
                assert found is not None and found.client_id == "clientA"
        except BaseException as exc:  # reported below
            failures.append(exc)

    try:
        store.create(client("clientA"))
        threads = [threading.Thread(target=lookups) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert failures == []
        assert pool.checkouts > 1
    finally:
        store.close()


def _child_lookup(store: ClientStore, answers: Any) -> None:
    found = store.get("clientA")
    answers.put(None if found is None else found.client_id)


def test_forked_child_does_not_use_the_parents_connection(own_redis: RedisServer) -> None:
    store, _ = sync_store(settings(own_redis))
    admin = own_redis.client()
    try:
        store.create(client("clientA"))
        assert store.get("clientA") is not None
        before = connections_received(admin)
        context = multiprocessing.get_context("fork")
        answers = context.Queue()
        child = context.Process(target=_child_lookup, args=(store, answers))
        child.start()
        child.join(timeout=30)
        assert child.exitcode == 0
        assert answers.get(timeout=5) == "clientA"
        # The child connected on its own (sharing the parent's socket would interleave replies).
        assert connections_received(admin) == before + 1
        for _ in range(3):
            found = store.get("clientA")
            assert found is not None and found.client_id == "clientA"
    finally:
        store.close()


def test_close_closes_the_kept_connections(own_redis: RedisServer) -> None:
    store = ClientStore(settings(own_redis))
    admin = own_redis.client()
    store.create(client("clientA"))
    assert store.get("clientA") is not None
    assert len(admin.client_list(_type="normal")) == 2  # the store's and this one
    store.close()
    wait_for(lambda: len(admin.client_list(_type="normal")) == 1, "the kept connection closed")


@pytest.mark.anyio
async def test_async_close_closes_the_kept_connections(own_redis: RedisServer) -> None:
    store = AsyncClientStore(settings(own_redis))
    admin = own_redis.client()
    await store.create(client("clientA"))
    assert await store.get("clientA") is not None
    assert len(admin.client_list(_type="normal")) == 2
    await store.close()
    wait_for(lambda: len(admin.client_list(_type="normal")) == 1, "the kept connection closed")


def test_sentinel_backend_keeps_nothing() -> None:
    s = Settings(
        redis_sentinels=["127.0.0.1:1"], redis_sentinel_master="mymaster", redis_timeout=0.5
    )
    assert RedisBackend(s).kept.size == 0
    assert AsyncRedisBackend(s).kept.size == 0
