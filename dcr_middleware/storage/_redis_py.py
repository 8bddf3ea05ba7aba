"""redis-py subclasses for Redis Cluster and Sentinel: the retry policy, lazy start, the
connection gate of the cluster clients (:mod:`._pools`) and the redis-py defects this package
works around. Built by :mod:`.connect` only.

Each workaround below names the redis-py releases it was seen on and the upstream issue, where
one exists. All of them hold over the whole declared range (redis>=7.1, up to 8.2 when this was
written): ``scripts/test.sh --lowest`` and ``--latest`` run the Cluster and Sentinel suites on
both ends of it, so a release that changes one of these behaviours shows up there.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.connection import SSLConnection
from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError

from ._pools import AsyncGate, Gate

# The cluster client retries these once, after re-reading the slot map. redis-py also retries
# TimeoutError (by design since 4.1, redis/redis-py#1821; still so in 7.1 to 8.2), where a write
# may have happened: not here. (MOVED, ASK and TRYAGAIN are followed
# inside one attempt: the command did not run on the node that answered them.)
_CLUSTER_RETRY = (RedisConnectionError, ClusterDownError, SlotNotCoveredError)


class Cluster(redis.cluster.RedisCluster):
    """redis-py's blocking ``RedisCluster``, built on first use rather than when created.

    ``RedisCluster.__init__`` reads the slot map from the seed node at once (7.1 to 8.2; by
    design, no upstream issue). Here it runs when
    the first command needs an attribute it sets: a worker starts while the cluster is down
    (its requests get ``503`` until a node answers, as with one Redis), and gunicorn
    ``--preload`` opens no socket before the fork. A failed start is tried again by the next
    command.
    """

    ERRORS_ALLOW_RETRY = _CLUSTER_RETRY  # type: ignore[assignment]  # a narrower tuple

    def __init__(self, url: str, *, gate: Gate, **kwargs: Any) -> None:
        # super().__init__ runs in _start.
        self.__dict__.update(
            _lazy=(url, kwargs), _lazy_lock=threading.RLock(), _starter=None, _gate=gate
        )

    def _start(self) -> None:
        with self._lazy_lock:
            if self._lazy is None:
                return
            url, kwargs = self._lazy
            self.__dict__["_starter"] = threading.get_ident()
            try:
                super().__init__(url=url, **kwargs)
            finally:
                self.__dict__["_starter"] = None
            self.__dict__["_lazy"] = None

    def __getattr__(self, name: str) -> Any:
        # Called only for attributes not set yet, that is before the first start (or while
        # it runs, in this thread: then the attribute really is missing).
        starting = self.__dict__.get("_starter") == threading.get_ident()
        if name.startswith("__") or self.__dict__.get("_lazy") is None or starting:
            raise AttributeError(name)
        self._start()
        return object.__getattribute__(self, name)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run a command once the gate lets it in (see :mod:`._pools`)."""
        execute: Any = super().execute_command  # annotated in some redis-py releases only
        with self._gate():
            return execute(*args, **kwargs)

    def get_encoder(self) -> Any:
        """The encoder of ``register_script`` (which must not start the client).

        Taken from a standalone client that is never used (building one opens no socket), so
        that no private redis-py module is imported."""
        kwargs = self._lazy[1] if self._lazy is not None else {}
        decode = bool(kwargs.get("decode_responses"))
        return redis.Redis(decode_responses=decode).get_encoder()

    def close(self) -> None:
        """Close the connections, if the client was ever started."""
        if self._lazy is None:
            super().close()


class AsyncCluster(redis.asyncio.cluster.RedisCluster):
    ERRORS_ALLOW_RETRY = _CLUSTER_RETRY  # type: ignore[assignment]

    def __init__(self, *args: Any, gate: AsyncGate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = gate

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # redis-py picks a command's target node before its lazy first initialize(), which then
        # closes the seed node under the commands already sent to it: concurrent first commands
        # failed with ConnectionError or AttributeError ('NoneType' has no attribute
        # 'writelines'). Seen on 8.1 and 8.2; redis/redis-py#2231 (4.3) fixed an earlier form of
        # this race, no upstream issue for this one was found. Every command waits here for
        # the slot map instead (a no-op once initialized).
        if self._initialize:
            await self.initialize()
        async with self._gate():
            return await super().execute_command(*args, **kwargs)


class SentinelMaster(redis.Redis):
    """The master's client; closing it also closes the connections to the Sentinels."""

    def close(self) -> None:
        try:
            super().close()
        finally:
            for sentinel in getattr(self.connection_pool, "sentinel_manager").sentinels:  # noqa: B009
                sentinel.close()


class AsyncSentinelMaster(redis.asyncio.Redis):
    """The asyncio master's client; closing it also closes the connections to the Sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            for sentinel in getattr(self.connection_pool, "sentinel_manager").sentinels:  # noqa: B009
                await sentinel.aclose()


class SentinelConnection(redis.sentinel.SentinelManagedConnection):
    """A master connection that asks the Sentinels for the master on every reconnect.

    redis-py reconnects a dropped connection inside a command's retry through
    ``connect_check_health``, which reuses the connection's last address: after a failover the
    retry of a write that met the demoted master (``READONLY``) went back to it. Here any
    reconnect goes through the Sentinel-aware ``connect``. Upstream: redis/redis-py#3874 (open,
    fix proposed in #3875); seen on 7.1, 8.1 and 8.2. ``connect_check_health`` with its
    ``retry_socket_connect`` argument exists from redis-py 6.4 on; Sentinel itself fails on 6.4
    to 7.0 (``parse_sentinel_master() got an unexpected keyword argument 'return_responses'``,
    fixed in 7.1), hence the floor of 7.1 in ``pyproject.toml``.
    """

    _to_address = False

    def connect_to(self, address: tuple[str, int]) -> None:
        self._to_address = True
        try:
            super().connect_to(address)  # type: ignore[no-untyped-call]
        finally:
            self._to_address = False

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock is None and not self._to_address and self.connection_pool.is_master:
            self.connect()  # type: ignore[no-untyped-call]
            return
        super().connect_check_health(check_health, retry_socket_connect)


class SentinelSSLConnection(SentinelConnection, SSLConnection):
    """:class:`SentinelConnection` over TLS (``rediss://``)."""


class AsyncSentinelConnection(redis.asyncio.sentinel.SentinelManagedConnection):
    """The asyncio :class:`SentinelConnection`."""

    _to_address = False

    async def connect_to(self, address: tuple[str, int]) -> None:
        self._to_address = True
        try:
            await super().connect_to(address)  # type: ignore[no-untyped-call]
        finally:
            self._to_address = False

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if not self.is_connected and not self._to_address and self.connection_pool.is_master:
            await self.connect()  # type: ignore[no-untyped-call]
            return
        await super().connect_check_health(check_health, retry_socket_connect)


class AsyncSentinelSSLConnection(AsyncSentinelConnection, redis.asyncio.connection.SSLConnection):
    """:class:`AsyncSentinelConnection` over TLS (``rediss://``)."""
