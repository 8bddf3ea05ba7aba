"""Redis backends: the blocking one (WSGI, the CLI) and the asyncio one (ASGI).

Every operation is described once, in :mod:`.redis_ops`, as the Redis commands it sends and how
it reads their replies; the same Lua scripts (``storage/lua/*.lua``, read once at import) serve
both backends. Each backend only executes those commands: so the two cannot drift. Connections
are opened lazily, on the first command in each worker process: redis-py's pool opens no socket
at construction and resets itself after a fork, so gunicorn ``--preload`` is safe.

Failure policy (clients built in :mod:`.connect`): explicit connect and command timeouts; a
command is retried once, only after a *connection* error (nothing was written, or the create
script makes the re-send harmless), and never after a timeout, where the write may have happened.
Every Redis exception becomes a :class:`~dcr_middleware.core.errors.StorageError`, which the
middlewares answer with ``503``.

On one Redis (plain or Sentinel) the request path's commands (the scripts' ``EVALSHA``, ``GET``,
``MGET``: :class:`~.redis_ops.Raw`) go straight to a connection of the client's pool: take a
connection (waiting at most ``DCR_REDIS_POOL_TIMEOUT``), send, read the reply, give the
connection back, under the connection's own retry policy. That is what redis-py's
``execute_command`` does, without its per-command bookkeeping (observability hooks, response
callbacks these replies do not need), which cost more CPU than the round trip itself
(docs/performance.md). On the asyncio side the send and the read are bounded together by one
``asyncio.timeout(DCR_REDIS_TIMEOUT)`` instead of redis-py's ``asyncio.wait_for`` on the write
(a task per command) and a second timeout on the read. A connection is closed on any failure
while sending or reading, so it never goes back half-written or half-read. On one plain Redis a
backend keeps up to half the pool's connections between commands (:class:`_Kept`) instead of
giving each back after its command: the pool's checkout cost more CPU than the exchange.
Everything else (pipelines, scans, hash reads, Redis Cluster) goes through the
redis-py client.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis.asyncio.sentinel
import redis.sentinel
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core._drive import arun, run
from ..core.ops import Op
from ..core.settings import Settings
from .base import shorthands
from .connect import AsyncRedis, SyncRedis, async_client, sync_client
from .redis_ops import Command, Raw, RedisOperations, Scan

T = TypeVar("T")


def _direct_pool(client: Any, ops: RedisOperations) -> Any:
    """The pool whose connections :class:`Raw` commands use directly: that of a client of one
    Redis; ``None`` on a cluster (its client routes them) and for a client that keeps one
    connection of its own (``single_connection_client``)."""
    if not ops.one_node or getattr(client, "connection", None) is not None:
        return None
    return client.connection_pool


def _packer(pool: Any) -> Callable[[tuple[Any, ...]], bytes] | None:
    """hiredis's ``pack_command`` where it writes what the connections' encoder would (UTF-8,
    strict): several times cheaper than redis-py's per-argument encoding. ``None`` (no pool, no
    hiredis, another encoding): let the connection pack."""
    try:
        from hiredis import pack_command
    except ImportError:  # the hiredis extra is not installed
        return None
    if pool is None:
        return None
    options = pool.connection_kwargs
    utf8 = codecs.lookup(options.get("encoding") or "utf-8").name == "utf-8"
    strict = options.get("encoding_errors", "strict") == "strict"
    return pack_command if utf8 and strict else None


_SENTINEL_POOLS = (
    redis.sentinel.SentinelConnectionPool,
    redis.asyncio.sentinel.SentinelConnectionPool,
)


class _Kept:
    """The pool's connections a backend keeps checked out between its :class:`Raw` commands.

    A connection comes back here, not to the pool, after its command: the next command takes it
    at once, without the pool's checkout (locks, a timeout, and a read of the socket to see that
    nothing is left in it: more CPU than the exchange itself). Nothing is ever left in a kept
    connection: every failure while sending or reading closes the connection (redis-py's
    connections do it themselves, ``_exchange`` between the two, the asyncio backend around the
    whole exchange), and a closed connection reconnects on its next command. A socket the server
    closed in between fails like any other connection error: reconnect and send again, once (the
    connection's retry policy); the health check (a ``PING`` after 30 idle seconds) still runs
    before a send.

    The bound of the pool holds: kept connections count as in use, at most half the pool is kept
    (redis-py's own commands, scans and pipelines, always find the rest), and none while a command
    of this backend waits for the pool (a returning connection goes to the pool, where the waiter
    gets it). After a fork the child keeps nothing of its parent's (redis-py's pool resets itself
    the same way). Not used with Sentinel: its pool closes the connections to a former master when
    they come back, and that check has to run.
    """

    def __init__(self, pool: Any) -> None:
        size = pool.max_connections // 2 if pool is not None else 0
        self.size = 0 if isinstance(pool, _SENTINEL_POOLS) else size
        self.idle: list[Any] = []
        self.waiting = 0
        self.pid = os.getpid()
        self.lock = threading.Lock()

    def take(self) -> Any:
        """A kept connection; or ``None``, and the caller counts as waiting for the pool until it
        leaves :meth:`waiting_for_pool`."""
        with self.lock:
            if self.pid != os.getpid():
                self.idle, self.pid = [], os.getpid()
            if self.idle:
                return self.idle.pop()
            self.waiting += 1
            return None

    @contextlib.contextmanager
    def waiting_for_pool(self) -> Iterator[None]:
        """Around the pool's checkout after :meth:`take` answered ``None``."""
        try:
            yield
        finally:
            with self.lock:
                self.waiting -= 1

    def keep(self, connection: Any) -> bool:
        """Keep a connection after its command; ``False``: the caller gives it to the pool."""
        with self.lock:
            if self.waiting or len(self.idle) >= self.size or self.pid != os.getpid():
                return False
            self.idle.append(connection)
            return True


def _send(connection: Any, words: tuple[Any, ...], pack: Any) -> Any:
    if pack is None:
        return connection.send_command(*words)
    return connection.send_packed_command([pack(words)])


def _exchange(connection: Any, words: tuple[Any, ...], pack: Any) -> Any:
    try:
        _send(connection, words, pack)
        return connection.read_response()
    except ResponseError:
        raise  # an error reply, read whole: the connection stays usable
    except BaseException:
        connection.disconnect()  # say, a signal between the two: never keep a reply unread
        raise


class _Redis:
    """What both backends hold: the client, its operations, the pool of :class:`Raw` commands."""

    def __init__(self, settings: Settings, client: Any) -> None:
        self.client = client
        self.ops = RedisOperations(settings, client)
        self.prefix = self.ops.prefix
        self.pool = _direct_pool(client, self.ops)
        self.pack = _packer(self.pool)
        self.timeout = settings.redis_timeout
        self.kept = _Kept(self.pool)


@shorthands
class RedisBackend(_Redis):
    """Client records in Redis, through the blocking redis-py client."""

    client: SyncRedis

    def __init__(self, settings: Settings, client: SyncRedis | None = None) -> None:
        super().__init__(settings, sync_client(settings) if client is None else client)

    def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        result: T = run(self.ops.flow(op), self._send)
        return result

    def _send(self, command: Command) -> Any:
        if self.pool is None or type(command) is not Raw:
            reply = command.send(self.client)
            return list(reply) if isinstance(command, Scan) else reply
        # A Raw command, straight to a connection; the socket timeouts (DCR_REDIS_TIMEOUT) bound
        # the send and the read.
        connection = self.kept.take()
        if connection is None:
            with self.kept.waiting_for_pool():
                connection = self.pool.get_connection()
        try:
            return connection.retry.call_with_retry(
                lambda: _exchange(connection, command.words, self.pack),
                lambda error: connection.disconnect(),
            )
        finally:
            if not self.kept.keep(connection):
                self.pool.release(connection)

    def close(self) -> None:
        """Close the connection pool (the kept connections too: the pool counts them in use)."""
        self.client.close()


@shorthands
class AsyncRedisBackend(_Redis):
    """Client records in Redis, through ``redis.asyncio``."""

    client: AsyncRedis

    def __init__(self, settings: Settings, client: AsyncRedis | None = None) -> None:
        super().__init__(settings, async_client(settings) if client is None else client)

    async def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        result: T = await arun(self.ops.flow(op), self._send)
        return result

    async def _send(self, command: Command) -> Any:
        pool = self.pool
        if pool is None or type(command) is not Raw:
            reply = command.send(self.client)
            return [key async for key in reply] if isinstance(command, Scan) else await reply
        # A Raw command, straight to a connection.
        connection = self.kept.take()
        if connection is None:
            with self.kept.waiting_for_pool():
                connection = await pool.get_connection()  # connected, under its socket timeouts
        # One asyncio.timeout bounds the exchange (a reconnect after a connection error too):
        # with a socket timeout, redis-py would also wrap the write in asyncio.wait_for (a task
        # per command). Set back before the connection goes back to the pool.
        socket_timeout, connection.socket_timeout = connection.socket_timeout, None
        try:
            return await connection.retry.call_with_retry(
                lambda: self._bounded(connection, command.words),
                lambda error: connection.disconnect(),
            )
        except ResponseError:
            raise  # an error reply, read whole: the connection stays usable
        except BaseException as exc:
            await connection.disconnect(nowait=True)  # whatever else happened, never reuse it
            if isinstance(exc, TimeoutError):
                raise RedisTimeoutError(f"no reply within {self.timeout:g} s") from None
            raise
        finally:
            connection.socket_timeout = socket_timeout
            if not self.kept.keep(connection):
                await pool.release(connection)

    async def _bounded(self, connection: Any, words: tuple[Any, ...]) -> Any:
        async with asyncio.timeout(self.timeout):
            await _send(connection, words, self.pack)
            return await connection.read_response()

    async def close(self) -> None:
        """Close the connection pool (the kept connections too)."""
        await self.client.aclose()
