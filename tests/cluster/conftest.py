"""Fixtures: a real 3-primary Redis Cluster and a real Sentinel group, one of each per session.

Both are ``redis-server`` processes on free loopback ports (see :mod:`.topology`). Without
``redis-server`` the tests are skipped; under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration.helpers import redis_server_path

from .topology import Cluster, SentinelGroup


def redis_executable() -> str:
    """``redis-server`` (with ``redis-cli`` for ``--cluster create``), or skip; under
    ``CI=true`` a missing binary fails the tests instead."""
    path = redis_server_path()
    missing = [
        package
        for package, found in (("redis-server", path), ("redis-tools", shutil.which("redis-cli")))
        if found is None
    ]
    if path is None or missing:
        message = f"not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The session's Redis Cluster (3 primaries, every slot covered); tests use own prefixes."""
    cluster = Cluster(redis_executable(), tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A Redis Cluster for this test alone, which it may break (kill a node)."""
    cluster = Cluster(redis_executable(), tmp_path / "own-cluster")
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
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:16]}"


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
