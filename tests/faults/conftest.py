"""Fixtures of the fault harness: a Redis (or a Sentinel group) per test that the test may break,
real servers, and the invariant table printed at the end of the session (``-s``).

Without ``redis-server`` the tests are skipped; under ``CI=true`` they fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import (
    SentinelGroup,
    Server,
    gunicorn_ready_hook,
    redis_executable,
    start_server,
    wait_workers_ready,
)
from support.reaper import COSTLY_FIXTURES

from .harness import SERVER_KINDS, FaultRedis, server_env
from .invariants import Row, table

# A test using these fixtures starts a Redis or a server and breaks it: it must say so
# (support.reaper).
COSTLY_FIXTURES.update(
    fault_redis=("redis", "slow"),
    fault_sentinels=("redis", "slow"),
    fault_server=("server", "slow"),
)


@pytest.fixture(scope="module")
def fault_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRedis]:
    """A persistent ``redis-server`` (see :class:`FaultRedis`) shared by the module's fault
    tests, which break it; :func:`clean_redis` empties it before each."""
    server = FaultRedis(redis_executable(), tmp_path_factory.mktemp("fault-redis"))
    server.start()
    try:
        yield server
    finally:
        server.thaw()  # harmless when it is not frozen
        server.stop()


@pytest.fixture
def clean_redis(fault_redis: FaultRedis) -> FaultRedis:
    """:func:`fault_redis`, running, answering and empty (``FLUSHALL``)."""
    fault_redis.thaw()
    if fault_redis.process is None:
        fault_redis.start()
    admin = fault_redis.client()
    try:
        admin.flushall()
    finally:
        admin.close()
    return fault_redis


@pytest.fixture(scope="module", params=SERVER_KINDS)
def fault_server(
    request: pytest.FixtureRequest,
    fault_redis: FaultRedis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """One server per kind on :func:`fault_redis`, kept through every fault of the module: it is
    never restarted, so each fault also shows that service resumes without a restart."""
    kind: str = request.param
    directory = tmp_path_factory.mktemp(kind)
    server = _start(kind, directory, fault_redis.url, server_env())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_sentinels(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A Sentinel group (master, replica, three Sentinels) for this test alone, settled: every
    Sentinel knows the replica, so it can be failed over."""
    group = SentinelGroup(redis_executable(), tmp_path / "sentinel")
    try:
        group.start()
        group.wait_settled()
        yield group
    finally:
        group.stop()


def _start(kind: str, directory: Path, redis_url: str | None, env: dict[str, str]) -> Server:
    args = gunicorn_ready_hook(directory) if kind == "gunicorn" else []
    server = start_server(kind, directory, redis_url, env=env, log_level="warning", args=args)
    try:
        if kind == "gunicorn":
            wait_workers_ready(server, 2)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``serve(kind, redis_url, env)``: a real uvicorn (1 worker) or gunicorn (2 sync workers,
    both loaded before it returns); stopped when the test ends."""
    started: list[Server] = []

    def _serve(kind: str, redis_url: str | None, env: dict[str, str]) -> Server:
        server = _start(kind, tmp_path, redis_url, env)
        started.append(server)
        return server

    try:
        yield _serve
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def fault_rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Row]]:
    """Every fault's row; the whole table is printed (``-s``) and written as JSON at the end."""
    rows: list[Row] = []
    yield rows
    if rows:
        print("\n\nFault invariants (all runs of this session)\n" + table(rows))
        path = tmp_path_factory.getbasetemp() / "fault-figures.json"
        path.write_text(json.dumps([row.cells() for row in rows], indent=2))


@pytest.fixture
def record_figure(record_property: Callable[[str, object], None]) -> Callable[[str, Any], None]:
    """Keep a measured figure as a test property (JUnit XML)."""
    return record_property
