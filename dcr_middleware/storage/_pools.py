"""Waiting for a Redis connection: a burst queues for a bounded time instead of failing.

Theory of operation. redis-py's default pools open at most ``max_connections`` connections (100
in redis-py 8) and raise ``MaxConnectionsError`` when all are in use: one uvicorn worker given
1,000 registrations at once answered most of them ``503`` on a healthy Redis. A larger pool is no
cure: hundreds of simultaneous connects per worker overran the connect timeout (Redis'
``tcp-backlog`` is 511). So each client keeps at most ``DCR_REDIS_MAX_CONNECTIONS`` connections,
and a command that finds them all in use waits up to ``DCR_REDIS_POOL_TIMEOUT`` for one, then
fails like any other Redis error (``503``). The wait is bounded, so a stalled Redis never turns
into an ever longer queue of hanging requests: a request's ``503`` comes at the latest after the
pool timeout + the connect timeout + the command timeout.

- One Redis: redis-py's ``BlockingConnectionPool`` (sync and asyncio).
- Sentinel: the same mixed into redis-py's ``SentinelConnectionPool``
  (:class:`BlockingSentinelPool`, :class:`AsyncBlockingSentinelPool`).
- Redis Cluster: redis-py keeps one pool per node and cannot make the asyncio one wait (its
  ``ClusterNode`` raises ``MaxConnectionsError``), so each cluster client has a gate instead
  (:class:`Gate`, :class:`AsyncGate`): at most ``max_connections`` commands in flight, the next
  waiting up to the pool timeout for a place. Every node's pool has the same size, so it never
  has to refuse. Pipelines do not pass the gate (no request sends one to a cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.exceptions import ConnectionError as RedisConnectionError


class PoolTimeoutError(RedisConnectionError):
    """Every connection stayed in use for the whole wait (the gate of a cluster client)."""

    def __init__(self, size: int, timeout: float) -> None:
        super().__init__(
            f"No connection available: all {size} in use for {timeout:g} s "
            "(DCR_REDIS_MAX_CONNECTIONS, DCR_REDIS_POOL_TIMEOUT)"
        )


class Gate:
    """At most ``size`` callers inside at once; the next waits up to ``timeout`` seconds.

    Re-entrant per thread: redis-py's cluster client runs commands of its own (``COMMAND`` when
    it starts) inside the command that needed them, and must not wait for itself.
    """

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(size)
        self._inside = threading.local()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if getattr(self._inside, "held", False):
            yield
            return
        if not self._slots.acquire(timeout=self.timeout):
            raise PoolTimeoutError(self.size, self.timeout)
        self._inside.held = True
        try:
            yield
        finally:
            self._inside.held = False
            self._slots.release()


class AsyncGate:
    """:class:`Gate` for one event loop's tasks (re-entrant per task)."""

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.timeout = timeout
        self._slots = asyncio.BoundedSemaphore(size)
        self._inside = contextvars.ContextVar(f"dcr_gate_{id(self)}", default=False)

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        if self._inside.get():
            yield
            return
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolTimeoutError(self.size, self.timeout) from None
        else:
            await self._slots.acquire()  # a free place: returns at once
        token = self._inside.set(True)
        try:
            yield
        finally:
            self._inside.reset(token)
            self._slots.release()


class BlockingSentinelPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """The Sentinel master's pool, waiting for a free connection as ``BlockingConnectionPool``."""


class AsyncBlockingSentinelPool(
    redis.asyncio.sentinel.SentinelConnectionPool, redis.asyncio.BlockingConnectionPool
):
    """:class:`BlockingSentinelPool` for ``redis.asyncio``."""
