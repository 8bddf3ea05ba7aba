"""One contract, every store: the embedded store, Redis, Redis Cluster and Sentinel, each through
the sync and the async client store API.

The async stores run on anyio's event loop; the sync ones are called from the same async test
through a thin facade, so every case is written once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot
from support.records import new_client
from support.stores import Store, open_store, store_settings

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    RegisteredClient,
    Settings,
    StorageError,
)

pytestmark = pytest.mark.anyio


STORES = [
    pytest.param("memory-sync", id="memory-sync"),
    pytest.param("memory-async", id="memory-async"),
    pytest.param("redis-sync", id="redis-sync", marks=pytest.mark.redis),
    pytest.param("redis-async", id="redis-async", marks=pytest.mark.redis),
    pytest.param("cluster-sync", id="cluster-sync", marks=pytest.mark.redis),
    pytest.param("cluster-async", id="cluster-async", marks=pytest.mark.redis),
    pytest.param("sentinel-sync", id="sentinel-sync", marks=pytest.mark.redis),
    pytest.param("sentinel-async", id="sentinel-async", marks=pytest.mark.redis),
]
BACKENDS = [
    "memory",
    *(pytest.param(b, marks=pytest.mark.redis) for b in ("redis", "cluster", "sentinel")),
]


def _settings(kind: str, request: pytest.FixtureRequest, prefix: str, **extra: Any) -> Settings:
    return store_settings(kind, request, key_prefix=prefix, **extra)


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Store]:
    opened = open_store(request.param, _settings(request.param, request, key_prefix))
    try:
        yield opened
    finally:
        await opened.close()


async def test_store_create_then_get_returns_equal_client(store: Store) -> None:
    client, _ = new_client(
        {
            "redirect_uris": ["https://app.example.com/cb", "http://127.0.0.1/cb"],
            "client_name": "Contract ✓",
            "client_name#ja-Jpan-JP": "クライアント",
            "scope": "read write",
        }
    )
    await store.create(client)
    loaded = await store.get(client.client_id)
    assert loaded == client
    assert loaded is not None
    assert loaded.metadata["client_name#ja-Jpan-JP"] == "クライアント"


async def test_store_create_never_overwrites_other_client(store: Store) -> None:
    first, first_secret = new_client()
    other, _ = new_client({"redirect_uris": ["https://other.example.com/cb"]})
    impostor = dataclasses.replace(other, client_id=first.client_id)
    await store.create(first)
    with pytest.raises(StorageError) as raised:
        await store.create(impostor)
    assert_lost_race(raised.value, first.client_id)
    assert await store.get(first.client_id) == first
    assert first_secret is not None
    assert await store.authenticate(first.client_id, first_secret) == first


async def test_store_create_is_idempotent_for_identical_record(store: Store) -> None:
    client, _ = new_client()
    await store.create(client)
    await store.create(client)  # a retry after a lost reply must succeed
    assert await store.get(client.client_id) == client


async def test_store_get_unknown_id_returns_none(store: Store) -> None:
    assert await store.get(secrets.token_urlsafe(16)) is None


@pytest.mark.parametrize(
    "client_id",
    [
        pytest.param("a}b", id="brace"),
        pytest.param("{a}", id="hash-tag"),
        pytest.param("../x", id="dot-dot"),
        pytest.param("", id="empty"),
        pytest.param("x" * 10_000, id="very-long"),
        pytest.param("a b", id="space"),
        pytest.param("a\nb", id="newline"),
        pytest.param("é", id="non-ascii"),
        pytest.param("*", id="glob"),
        pytest.param("\x00", id="nul"),
        pytest.param("\udcff", id="lone-surrogate"),
    ],
)
async def test_store_get_odd_id_returns_none(store: Store, client_id: str) -> None:
    client, _ = new_client()
    await store.create(client)
    assert await store.get(client_id) is None
    assert await store.authenticate(client_id, "secret") is None


async def test_store_authenticate_right_secret_returns_client(store: Store) -> None:
    client, secret = new_client()
    await store.create(client)
    assert secret is not None
    assert await store.authenticate(client.client_id, secret) == client


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"], ids=lambda m: m)
async def test_store_authenticate_wrong_secret_returns_none(store: Store, method: str) -> None:
    client, secret = new_client(
        {"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": method}
    )
    await store.create(client)
    assert secret is not None
    for wrong in ("", "x", secret[:-1], secret + "x", secret.upper(), client.client_secret_hash):
        assert await store.authenticate(client.client_id, wrong) is None
    assert await store.authenticate(secrets.token_urlsafe(16), secret) is None


async def test_store_authenticate_expired_secret_returns_none(store: Store) -> None:
    issued = int(time.time()) - 3600
    client, secret = new_client(now=issued, client_secret_ttl=60)
    assert 0 < client.client_secret_expires_at < time.time()
    await store.create(client)
    assert secret is not None
    assert await store.get(client.client_id) == client
    assert await store.authenticate(client.client_id, secret) is None


async def test_store_authenticate_unexpired_secret_with_ttl_returns_client(store: Store) -> None:
    client, secret = new_client(now=int(time.time()), client_secret_ttl=3600)
    await store.create(client)
    assert secret is not None
    assert await store.authenticate(client.client_id, secret) == client


async def test_store_authenticate_public_client_returns_none(store: Store) -> None:
    client, secret = new_client(
        {"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}
    )
    assert secret is None
    await store.create(client)
    loaded = await store.get(client.client_id)
    assert loaded == client
    assert loaded is not None and loaded.is_public
    for attempt in ("", "anything", secrets.token_urlsafe(32)):
        assert await store.authenticate(client.client_id, attempt) is None


@pytest.mark.parametrize("kind", STORES)
async def test_store_concurrent_creates_of_one_id_have_one_winner(
    request: pytest.FixtureRequest, key_prefix: str, kind: str
) -> None:
    """Atomic create: of 20 different records racing for one id exactly one is stored."""
    await assert_one_winner(
        _settings(kind, request, key_prefix), asynchronous=kind.endswith("-async")
    )


def assert_lost_race(error: Exception | None, client_id: str) -> None:
    """A create that lost the race for ``client_id``: the collision, not an outage (both are
    ``StorageError``; an outage during the race must not pass for a lost race)."""
    assert type(error) is StorageError, repr(error)
    assert str(error) == f"client id {client_id} is already taken; retry the registration"


async def assert_one_winner(settings: Settings, *, asynchronous: bool) -> None:
    """20 different records race for one client id (all at once, through the asyncio or the
    blocking store): exactly one create succeeds, every other one fails as a collision, and the
    record stored is the winner's."""
    base, _ = new_client()
    rivals = [
        dataclasses.replace(base, metadata={**base.metadata, "client_name": f"rival {n}"})
        for n in range(20)
    ]
    # Each rival and what its create raised (None: it was stored).
    outcomes: list[tuple[RegisteredClient, Exception | None]] = []
    if asynchronous:
        async_store = AsyncClientStore(settings)
        try:

            async def attempt(
                client: RegisteredClient,
            ) -> tuple[RegisteredClient, Exception | None]:
                try:
                    await async_store.create(client)
                except StorageError as exc:
                    return client, exc
                return client, None

            outcomes = list(await asyncio.gather(*(attempt(c) for c in rivals)))
            stored = await async_store.get(base.client_id)
        finally:
            await async_store.close()
    else:
        sync_store = ClientStore(settings)
        lock = threading.Lock()
        barrier = threading.Barrier(len(rivals), timeout=30)

        def run(client: RegisteredClient) -> None:
            barrier.wait()
            error: Exception | None = None
            try:
                sync_store.create(client)
            except StorageError as exc:
                error = exc
            with lock:
                outcomes.append((client, error))

        threads = [threading.Thread(target=run, args=(c,)) for c in rivals]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        try:
            stored = sync_store.get(base.client_id)
        finally:
            sync_store.close()
    assert len(outcomes) == len(rivals)
    winners = [client for client, error in outcomes if error is None]
    assert len(winners) == 1, f"{len(winners)} creates succeeded"
    for _, error in outcomes:
        if error is not None:
            assert_lost_race(error, base.client_id)
    assert stored == winners[0]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_store_sync_and_async_see_each_other(
    request: pytest.FixtureRequest, key_prefix: str, kind: str
) -> None:
    settings = _settings(kind, request, key_prefix)
    sync_store = ClientStore(settings)
    async_store = AsyncClientStore(settings)
    try:
        written_sync, secret_sync = new_client()
        written_async, secret_async = new_client()
        sync_store.create(written_sync)
        await async_store.create(written_async)
        assert await async_store.get(written_sync.client_id) == written_sync
        assert sync_store.get(written_async.client_id) == written_async
        assert secret_sync is not None and secret_async is not None
        assert await async_store.authenticate(written_sync.client_id, secret_sync) == written_sync
        assert sync_store.authenticate(written_async.client_id, secret_async) == written_async
        # Same id, different record, across the two APIs: still no overwrite.
        with pytest.raises(StorageError):
            await async_store.create(
                dataclasses.replace(written_async, client_id=written_sync.client_id)
            )
        assert sync_store.get(written_sync.client_id) == written_sync
    finally:
        sync_store.close()
        await async_store.close()


@pytest.mark.redis
@pytest.mark.parametrize("api", ["sync", "async"])
async def test_store_redis_key_has_prefix_and_hash_tag(
    redis_url: str, key_prefix: str, api: str
) -> None:
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix)
    client, _ = new_client()
    if api == "sync":
        sync_store = ClientStore(settings)
        try:
            sync_store.create(client)
        finally:
            sync_store.close()
    else:
        async_store = AsyncClientStore(settings)
        try:
            await async_store.create(client)
        finally:
            await async_store.close()
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = list(admin.scan_iter(match=f"{key_prefix}:*"))
        assert keys == [f"{key_prefix}:client:{{{client.client_id}}}"]
        # Redis Cluster: the slot is the hash tag's, so all of one client's keys share it.
        assert key_slot(keys[0].encode()) == key_slot(client.client_id.encode())
        assert admin.type(keys[0]) == "string"
        assert admin.ttl(keys[0]) == -1
        assert RegisteredClient.from_record(admin.get(keys[0])) == client
    finally:
        admin.close()
