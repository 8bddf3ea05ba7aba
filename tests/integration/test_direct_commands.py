"""The request path's commands sent straight to a pooled connection (``storage/redis.py``): a
command that times out becomes ``StorageError`` and its connection is closed, so the reply that
Redis sends once it runs again is never read as the answer to a later command."""

from __future__ import annotations

import time

import pytest
from support import RedisServer

from dcr_middleware import AsyncClientStore, ClientStore, Settings, StorageError
from dcr_middleware.core.client import RegisteredClient
from dcr_middleware.core.credentials import hash_secret

pytestmark = pytest.mark.redis

SECRET = "s" * 43  # a test client's secret


def client(client_id: str) -> RegisteredClient:
    return RegisteredClient(
        client_id=client_id,
        client_id_issued_at=int(time.time()),
        metadata={"redirect_uris": ["https://app.example/cb"], "client_name": client_id},
        client_secret_hash=hash_secret(SECRET),
    )


@pytest.fixture(params=[1, 2], ids=["one-connection", "one-kept"])
def connections(request: pytest.FixtureRequest) -> int:
    # One connection: the command after the timeout gets the very connection that timed out, or
    # a new one in its place. Two: the store may keep one between commands (storage/redis.py),
    # and must never keep the one that timed out.
    connections: int = request.param
    return connections


def settings(redis: RedisServer, connections: int) -> Settings:
    return Settings(
        redis_url=redis.url,
        redis_timeout=0.3,
        redis_max_connections=connections,
        client_idle_ttl=86400,
    )


def test_store_timed_out_lookup_leaves_no_reply_for_the_next(
    own_redis: RedisServer, connections: int
) -> None:
    store = ClientStore(settings(own_redis, connections))
    try:
        store.create(client("clientA"))
        store.create(client("clientB"))
        own_redis.pause()
        try:
            with pytest.raises(StorageError):
                store.get("clientA")
            with pytest.raises(StorageError):
                store.authenticate("clientA", SECRET)
        finally:
            own_redis.resume()
        found = store.get("clientB")
        assert found is not None and found.client_id == "clientB"
        authenticated = store.authenticate("clientB", SECRET)
        assert authenticated is not None and authenticated.client_id == "clientB"
    finally:
        store.close()


@pytest.mark.anyio
async def test_async_store_timed_out_lookup_leaves_no_reply_for_the_next(
    own_redis: RedisServer, connections: int
) -> None:
    store = AsyncClientStore(settings(own_redis, connections))
    try:
        await store.create(client("clientA"))
        await store.create(client("clientB"))
        own_redis.pause()
        try:
            with pytest.raises(StorageError):
                await store.get("clientA")
            with pytest.raises(StorageError):
                await store.authenticate("clientA", SECRET)
        finally:
            own_redis.resume()
        found = await store.get("clientB")
        assert found is not None and found.client_id == "clientB"
        authenticated = await store.authenticate("clientB", SECRET)
        assert authenticated is not None and authenticated.client_id == "clientB"
        # The connection's own socket timeout is back for redis-py's commands.
        pool = store.backend.client.connection_pool  # type: ignore[attr-defined]
        connection = await pool.get_connection()
        try:
            assert connection.socket_timeout == 0.3
        finally:
            await pool.release(connection)
    finally:
        await store.close()


def test_store_flushed_scripts_are_loaded_again(own_redis: RedisServer, connections: int) -> None:
    store = ClientStore(settings(own_redis, connections))
    admin = own_redis.client()
    try:
        store.create(client("clientA"))
        admin.script_flush()
        found = store.get("clientA")  # NOSCRIPT, SCRIPT LOAD, EVALSHA again
        assert found is not None and found.client_id == "clientA"
    finally:
        admin.close()
        store.close()
