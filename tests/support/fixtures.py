"""The shared fixtures (a pytest plugin, loaded by ``tests/conftest.py``): real Redis servers,
topologies and HTTP servers, each stopped by the fixture that started it, whatever the outcome.

Session-scoped where no test changes the configuration (the session's Redis, cluster, Sentinel
group, and :func:`shared_server`); function-scoped where a test may break what it gets
(``own_*``) or reads the whole output of its server (:func:`serve`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from .redis_servers import Cluster, RedisServer, SentinelGroup, redis_executable
from .servers import Server, start_server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's ``redis-server``; tests that share it clean it with ``redis_db`` or use
    their own ``key_prefix``."""
    server = RedisServer(redis_executable(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """An admin client on the session Redis, emptied (``FLUSHALL``) before the test."""
    client = redis_server.client()
    try:
        client.flushall()
        yield client
    finally:
        client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A ``redis-server`` for this test alone, which the test may stop, start and pause.

    It persists to an append-only file, so clients written before a stop are there after the
    restart, as with a production Redis.
    """
    server = RedisServer(redis_executable(), tmp_path / "own-redis", persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.resume()  # harmless when it is not stopped
        server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:16]}"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start real servers (``serve(kind, redis_url, env=..., log_level=..., args=...)``) for this
    test alone; all are stopped when the test ends, whatever its outcome."""
    started: list[Server] = []

    def _serve(kind: str, redis_url: str | None, **kwargs: Any) -> Server:
        server = start_server(kind, tmp_path, redis_url, **kwargs)
        started.append(server)
        return server

    try:
        yield _serve
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Server]]:
    """``shared_server(kind, redis_url, env=..., log_level=..., args=...)``: a server that every
    test asking for the same configuration shares; started by the first, stopped at the end of
    the session. For tests that neither reconfigure nor break the server nor read its output
    (other tests write to it too); one that does uses :func:`serve`."""
    started: dict[tuple[object, ...], Server] = {}

    def _serve(
        kind: str,
        redis_url: str | None,
        env: Mapping[str, str] | None = None,
        log_level: str = "info",
        args: Sequence[str] = (),
    ) -> Server:
        key = (kind, redis_url, tuple(sorted((env or {}).items())), log_level, tuple(args))
        server = started.get(key)
        if server is None or server.process.poll() is not None:
            directory = tmp_path_factory.mktemp(f"shared-{kind}")
            server = start_server(kind, directory, redis_url, env, log_level, args)
            started[key] = server
        return server

    try:
        yield _serve
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The session's Redis Cluster (3 primaries, every slot covered); tests use own prefixes."""
    cluster = Cluster(redis_executable(cli=True), tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A Redis Cluster for this test alone, which it may break (kill a node)."""
    cluster = Cluster(redis_executable(cli=True), tmp_path / "own-cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """The session's Sentinel group: one master, one replica, three Sentinels (quorum 2)."""
    group = SentinelGroup(redis_executable(), tmp_path_factory.mktemp("sentinel"))
    try:
        group.start()
        group.wait_settled()
        yield group
    finally:
        group.stop()


@pytest.fixture
def own_sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A Sentinel group for this test alone, which it may fail over."""
    group = SentinelGroup(redis_executable(), tmp_path / "own-sentinel")
    try:
        group.start()
        group.wait_settled()
        yield group
    finally:
        group.stop()
