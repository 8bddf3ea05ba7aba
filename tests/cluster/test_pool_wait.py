"""On Redis Cluster and Sentinel too, commands wait (a bounded time) for a connection.

The same checks as ``tests/integration/test_bursts.py`` for one Redis: more concurrent commands
than ``DCR_REDIS_MAX_CONNECTIONS`` all complete, and a wait that runs out fails promptly with a
Redis connection error (a ``503`` in the middlewares). Sync clients run on threads, asyncio
clients on tasks.
"""

from __future__ import annotations

import pytest
from support.pools import HOLD, assert_all_waited, assert_wait_bounded, hold_concurrently
from support.stores import store_settings

TOPOLOGIES = ["cluster", "sentinel"]

pytestmark = pytest.mark.redis

APIS = ["sync", "async"]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_topology_more_commands_than_connections_wait_for_one(
    topology: str, api: str, request: pytest.FixtureRequest, key_prefix: str
) -> None:
    settings = store_settings(
        topology, request, key_prefix=key_prefix, redis_max_connections=2, redis_pool_timeout=10
    )
    outcomes = hold_concurrently(settings, api, 8, HOLD)
    assert_all_waited(outcomes, 2, HOLD)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_topology_wait_for_a_connection_ends_at_the_pool_timeout(
    topology: str, api: str, request: pytest.FixtureRequest, key_prefix: str
) -> None:
    settings = store_settings(
        topology,
        request,
        key_prefix=key_prefix,
        redis_max_connections=1,
        redis_pool_timeout=0.2,
        redis_timeout=5,
    )
    outcomes = hold_concurrently(settings, api, 4, 2.0)
    assert_wait_bounded(outcomes, 1, 2.0, 0.2)
