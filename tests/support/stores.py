"""Client stores over every backend the contract covers, by name: ``memory``, ``redis`` (the
session's ``redis-server``), ``cluster`` (the session's Redis Cluster) and ``sentinel`` (the
session's Sentinel group), each with the sync or the async API (``redis-sync``, ...)."""

from __future__ import annotations

from typing import Any

import pytest

from dcr_middleware import AsyncClientStore, ClientStore, RegisteredClient, Settings

from .redis_servers import SENTINEL_MASTER, Cluster, SentinelGroup


class SyncFacade:
    """A blocking store behind the async method names (it runs on the test's thread)."""

    def __init__(self, store: ClientStore) -> None:
        self.store = store

    async def create(self, client: RegisteredClient) -> None:
        self.store.create(client)

    async def get(self, client_id: Any) -> RegisteredClient | None:
        return self.store.get(client_id)

    async def authenticate(self, client_id: Any, secret: Any) -> RegisteredClient | None:
        return self.store.authenticate(client_id, secret)

    async def close(self) -> None:
        self.store.close()


Store = SyncFacade | AsyncClientStore


def store_settings(kind: str, request: pytest.FixtureRequest, **extra: Any) -> Settings:
    """Settings for the backend ``kind`` names (``redis-sync``, ``cluster``, ...); the Redis
    ones come from the session fixtures, started on first use."""
    backend = kind.split("-")[0]
    if backend == "redis":
        return Settings(redis_url=request.getfixturevalue("redis_url"), **extra)
    if backend == "cluster":
        cluster: Cluster = request.getfixturevalue("redis_cluster")
        return Settings(redis_url=cluster.url, redis_cluster=True, **extra)
    if backend == "sentinel":
        group: SentinelGroup = request.getfixturevalue("sentinel_group")
        return Settings(
            redis_sentinels=tuple(group.addresses.split(",")),
            redis_sentinel_master=SENTINEL_MASTER,
            **extra,
        )
    assert backend == "memory", kind
    return Settings(**extra)


def open_store(kind: str, settings: Settings) -> Store:
    """The sync (behind :class:`SyncFacade`) or async store ``kind`` names."""
    if kind.endswith("-sync"):
        return SyncFacade(ClientStore(settings))
    return AsyncClientStore(settings)
