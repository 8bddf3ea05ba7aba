"""Fixtures: a real ``redis-server`` per session (and one per outage test), real servers.

No fakes: Redis is the ``redis-server`` binary started on a free loopback port in a temporary
directory (the session one without persistence). When it is missing the Redis tests are skipped and
under ``CI=true`` they fail.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from .helpers import RedisServer, Server, redis_server_path, start_server


def _redis_executable() -> str:
    path = redis_server_path()
    if path is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's ``redis-server``; tests that share it clean it with ``redis_db``."""
    server = RedisServer(_redis_executable(), tmp_path_factory.mktemp("redis"))
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
    server = RedisServer(_redis_executable(), tmp_path / "own-redis", persistent=True)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.resume()  # harmless when it is not stopped
        server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:16]}"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start real servers (``serve(kind, redis_url, env=..., log_level=...)``); all are
    terminated when the test ends, whatever its outcome."""
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
def _figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    collected: dict[str, object] = {}
    yield collected
    if collected:
        path = tmp_path_factory.getbasetemp() / "integration-figures.json"
        path.write_text(json.dumps(collected, indent=2, sort_keys=True))
        print(f"\n[figures] written to {path}")


@pytest.fixture
def record_figure(
    _figures: dict[str, object], record_property: Callable[[str, object], None]
) -> Callable[[str, object], None]:
    """Keep a measured figure: a test property (JUnit XML) and one JSON file per session
    (``<basetemp>/integration-figures.json``)."""

    def _record(name: str, value: object) -> None:
        record_property(name, value)
        _figures[name] = value

    return _record
