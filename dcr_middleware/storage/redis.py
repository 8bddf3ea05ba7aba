"""Redis backends: the blocking one (WSGI, the CLI) and the asyncio one (ASGI).

Every operation is described once, in :mod:`.redis_ops`, as the Redis commands it sends and how
it reads their replies; the same Lua scripts (``storage/lua/*.lua``, read once at import) serve
both backends. Each backend only executes those commands, in a loop of a few lines: so the two
cannot drift. Connections are opened lazily, on the first command in each worker process:
redis-py's pool opens no socket at construction and resets itself after a fork, so gunicorn
``--preload`` is safe.

Failure policy (clients built in :mod:`.connect`): explicit connect and command timeouts; a
command is retried once, only after a *connection* error (nothing was written, or the create
script makes the re-send harmless), and never after a timeout, where the write may have happened.
Every Redis exception becomes a :class:`~dcr_middleware.core.errors.StorageError`, which the
middlewares answer with ``503``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..core._drive import arun, run
from ..core.ops import Op
from ..core.settings import Settings
from .base import shorthands
from .connect import AsyncRedis, SyncRedis, async_client, sync_client
from .redis_ops import Command, RedisOperations, Scan

T = TypeVar("T")


@shorthands
class RedisBackend:
    """Client records in Redis, through the blocking redis-py client."""

    def __init__(self, settings: Settings, client: SyncRedis | None = None) -> None:
        self.client = sync_client(settings) if client is None else client
        self.ops = RedisOperations(settings, self.client)
        self.prefix = self.ops.prefix

    def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        result: T = run(self.ops.flow(op), self._send)
        return result

    def _send(self, command: Command) -> Any:
        reply = command.send(self.client)
        return list(reply) if isinstance(command, Scan) else reply

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


@shorthands
class AsyncRedisBackend:
    """Client records in Redis, through ``redis.asyncio``."""

    def __init__(self, settings: Settings, client: AsyncRedis | None = None) -> None:
        self.client = async_client(settings) if client is None else client
        self.ops = RedisOperations(settings, self.client)
        self.prefix = self.ops.prefix

    async def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        result: T = await arun(self.ops.flow(op), self._send)
        return result

    async def _send(self, command: Command) -> Any:
        reply = command.send(self.client)
        return [key async for key in reply] if isinstance(command, Scan) else await reply

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
