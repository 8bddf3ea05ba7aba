"""Building redis-py clients from :class:`~dcr_middleware.core.settings.Settings`.

One place decides which client a deployment gets (the sync one for WSGI and the CLI, the asyncio
one for ASGI), for which topology, and with which timeouts and retry policy: a command is retried
once, only after a *connection* error, never after a timeout (where a write may have happened).

Topologies:

- one Redis (``DCR_REDIS_URL``): ``redis.Redis`` / ``redis.asyncio.Redis``;
- Redis Cluster (``DCR_REDIS_CLUSTER=true``, ``DCR_REDIS_URL`` names one seed node):
  ``RedisCluster``, which reads the slot map from the seed and routes each command to the node
  holding its key's slot. Every key the middleware writes has a hash tag (see
  :mod:`.base`), so each Lua script touches one slot. The cluster client also follows ``MOVED`` /
  ``ASK`` redirections and ``TRYAGAIN`` by itself; after a connection error or ``CLUSTERDOWN`` it
  re-reads the slot map and retries once (never after a timeout, as above);
- Sentinel (``DCR_REDIS_SENTINELS`` + ``DCR_REDIS_SENTINEL_MASTER``): a client whose connections
  ask the sentinels for the current master; ``DCR_REDIS_URL``, optional, supplies only the
  username, password, database number and TLS (``rediss://``), never the address.

No client opens a socket until its first command (redis-py's blocking ``RedisCluster`` would
read the slot map when built: :class:`._redis_py.Cluster` defers that to the first command).

Every client holds at most ``DCR_REDIS_MAX_CONNECTIONS`` connections (per node on a cluster), and
a command that finds them all in use waits up to ``DCR_REDIS_POOL_TIMEOUT`` for one (see
:mod:`._pools`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from ..core._settings_checks import sentinel_address
from ..core.errors import ConfigurationError
from ..core.settings import Settings
from . import _pools, _redis_py

SyncRedis: TypeAlias = "redis.Redis | redis.cluster.RedisCluster"
AsyncRedis: TypeAlias = "redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster"

# What a Redis call can raise. redis-py's cluster exceptions mostly subclass RedisError
# (ClusterDownError, MovedError, TryAgainError...), but RedisClusterException and its
# SlotNotCoveredError do not: catch this tuple, not RedisError alone.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)

# redis-py annotates these in some releases and not in others (8.2 typed the Sentinel
# constructors and master_for): called through Any (here, and the fields of _Side), so that no
# release needs a "type: ignore" that the next one reports as unused.
_parse_url: Any = parse_url


def connection_options(settings: Settings) -> dict[str, Any]:
    """redis-py keyword arguments shared by the sync and async clients."""
    return {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "health_check_interval": 30,
        "decode_responses": True,
    }


def pool_options(settings: Settings) -> dict[str, Any]:
    """The size of a blocking pool and how long a command waits for one of its connections."""
    return {
        "max_connections": settings.redis_max_connections,
        "timeout": settings.redis_pool_timeout,
    }


def redis_url(settings: Settings) -> str:
    """``DCR_REDIS_URL``, required by every Redis client but the Sentinel one."""
    if settings.redis_url is None:
        raise ConfigurationError(["DCR_REDIS_URL: required by the Redis store"])
    return settings.redis_url


def describe(settings: Settings) -> str:
    """Where the store is, for logs and ``dcr-middleware check`` (never a password)."""
    from ..core.settings import mask_url

    if settings.redis_sentinels:
        sentinels = ",".join(settings.redis_sentinels)
        return f"Sentinel master {settings.redis_sentinel_master!r} via {sentinels}"
    kind = "Redis Cluster seed" if settings.redis_cluster else "Redis at"
    return f"{kind} {mask_url(redis_url(settings))}"


def _sentinel_options(settings: Settings, kinds: tuple[type, type]) -> dict[str, Any]:
    """The master connections' options: credentials, database and TLS from the optional URL
    (``kinds``: the connection classes without and with TLS)."""
    options = connection_options(settings)
    tls = False
    if settings.redis_url is not None:
        parsed: dict[str, Any] = _parse_url(settings.redis_url)
        for name in ("username", "password", "db"):
            if parsed.get(name) is not None:
                options[name] = parsed[name]
        tls = settings.redis_url.startswith("rediss://")
    options["connection_class"] = kinds[tls]
    return options


def _sentinels(settings: Settings) -> list[tuple[str, int]]:
    return [sentinel_address(entry) for entry in settings.redis_sentinels]


def _master(settings: Settings) -> str:
    assert settings.redis_sentinel_master is not None  # noqa: S101 - checked by Settings
    return settings.redis_sentinel_master


@dataclass(frozen=True, slots=True)
class _Side:
    """The redis-py classes a client is built from: the blocking ones or the asyncio ones."""

    retry: Any
    gate: Any
    cluster: Any  # called with the seed node's URL
    sentinel: Any
    master: Any
    sentinel_pool: Any
    pool: Any
    redis: Any
    connections: tuple[type, type]  # a Sentinel master's connections, without and with TLS


_BLOCKING = _Side(
    Retry,
    _pools.Gate,
    _redis_py.Cluster,
    redis.sentinel.Sentinel,
    _redis_py.SentinelMaster,
    _pools.BlockingSentinelPool,
    redis.BlockingConnectionPool,
    redis.Redis,
    (_redis_py.SentinelConnection, _redis_py.SentinelSSLConnection),
)
_ASYNCIO = _Side(
    AsyncRetry,
    _pools.AsyncGate,
    _redis_py.AsyncCluster.from_url,
    redis.asyncio.sentinel.Sentinel,
    _redis_py.AsyncSentinelMaster,
    _pools.AsyncBlockingSentinelPool,
    redis.asyncio.BlockingConnectionPool,
    redis.asyncio.Redis,
    (_redis_py.AsyncSentinelConnection, _redis_py.AsyncSentinelSSLConnection),
)


def _client(settings: Settings, side: _Side) -> Any:
    retry = side.retry(NoBackoff(), 1, (RedisConnectionError,))
    options = connection_options(settings)
    if settings.redis_cluster:
        gate = side.gate(settings.redis_max_connections, settings.redis_pool_timeout)
        url = redis_url(settings)
        return side.cluster(url, gate=gate, retry=retry, max_connections=gate.size, **options)
    if settings.redis_sentinels:
        # The Sentinels are asked with the same socket timeouts (redis-py copies socket_*).
        sentinel = side.sentinel(_sentinels(settings), **options)
        return sentinel.master_for(
            _master(settings),
            redis_class=side.master,
            connection_pool_class=side.sentinel_pool,
            retry=retry,
            **pool_options(settings),
            **_sentinel_options(settings, side.connections),
        )
    pool = side.pool.from_url(redis_url(settings), retry=retry, **pool_options(settings), **options)
    return side.redis.from_pool(pool)


def sync_client(settings: Settings) -> SyncRedis:
    """The blocking client for ``settings`` (no socket is opened until the first command)."""
    client: SyncRedis = _client(settings, _BLOCKING)
    return client


def async_client(settings: Settings) -> AsyncRedis:
    """The asyncio client for ``settings`` (no socket is opened until the first command)."""
    client: AsyncRedis = _client(settings, _ASYNCIO)
    return client


def unreachable_reason(settings: Settings, exc: BaseException) -> str:
    """Why the store's Redis cannot be reached, for startup checks and ``dcr-middleware check``
    (never a password: :func:`describe` masks it)."""
    return f"cannot reach {describe(settings)}: {type(exc).__name__}: {exc}"


def unreachable(settings: Settings) -> str | None:
    """``PING`` the store's Redis once with the configured timeouts (``DCR_REDIS_CHECK_ON_START``,
    ``dcr-middleware check``): why it cannot be reached, or ``None`` when it answered."""
    client: Any = sync_client(settings)
    try:
        client.ping()
    except REDIS_ERRORS as exc:
        return unreachable_reason(settings, exc)
    finally:
        client.close()
    return None


async def async_unreachable(settings: Settings) -> str | None:
    """:func:`unreachable` on the event loop (an ASGI lifespan startup)."""
    client: Any = async_client(settings)
    try:
        await client.ping()
    except REDIS_ERRORS as exc:
        return unreachable_reason(settings, exc)
    finally:
        await client.aclose()
    return None
