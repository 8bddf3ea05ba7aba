"""Redis backends: the blocking one (WSGI) and the asyncio one (ASGI), side by side.

Both run the same Lua scripts (``storage/lua/*.lua``, read once at import of this module) and
differ only in ``await``. Connections are opened lazily, on the first command in each worker
process: redis-py's pool opens no socket at construction and resets itself after a fork, so
gunicorn ``--preload`` is safe.

Failure policy (clients built in :mod:`.connect`): explicit connect and command timeouts; a
command is retried once, only after a *connection* error (nothing was written, or the create
script makes the re-send harmless), and never after a timeout, where the write may have happened.
Every Redis exception becomes a :class:`~dcr_middleware.errors.StorageError`, which the
middlewares answer with ``503``.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import RedisError

from ..errors import StorageError
from ..ratelimit import Limit, RateDecision, decision_from_reply, script_args
from ..settings import Settings
from .base import client_key, counter_key, rate_key, token_key
from .connect import async_client, sync_client

logger = logging.getLogger("dcr_middleware")


def _lua(name: str) -> str:
    return resources.files(__package__).joinpath(f"lua/{name}.lua").read_text("utf-8")


CREATE_SCRIPT = _lua("create")
RATELIMIT_SCRIPT = _lua("ratelimit")
RESERVE_SCRIPT = _lua("reserve")
TOKEN_USE_SCRIPT = _lua("token_use")
REPLACE_SCRIPT = _lua("replace")
RELEASE_SCRIPT = _lua("release")


def _text(fields: dict[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in fields.items()}


def _digest_of(key: str) -> str:
    return key[key.index("{") + 1 : key.rindex("}")]


def storage_error(exc: Exception) -> StorageError:
    """Wrap a Redis exception (logged with its type, never returned to clients)."""
    # The exception text can name hosts but never the password; it is logged, not returned.
    logger.warning("redis error: %s: %s", type(exc).__name__, exc)
    return StorageError("the client store is unavailable; try again later")


class RedisBackend:
    """Client records in Redis, through the blocking redis-py client."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        if client is None:
            client = sync_client(settings)
        self.prefix = settings.key_prefix
        self.client = client
        self._create = client.register_script(CREATE_SCRIPT)
        self._ratelimit = client.register_script(RATELIMIT_SCRIPT)
        self._reserve = client.register_script(RESERVE_SCRIPT)
        self._token_use = client.register_script(TOKEN_USE_SCRIPT)
        self._replace = client.register_script(REPLACE_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    def create(self, client_id: str, record: str) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one (one EVALSHA)."""
        try:
            return bool(self._create(keys=[client_key(self.prefix, client_id)], args=[record]))
        except RedisError as exc:
            raise storage_error(exc) from exc

    def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        try:
            value = self.client.get(client_key(self.prefix, client_id))
        except RedisError as exc:
            raise storage_error(exc) from exc
        return None if value is None else str(value)

    def replace(self, client_id: str, expected: str, record: str | None) -> bool:
        """Compare-and-set one record (``None`` deletes it); one EVALSHA."""
        keys, args = [client_key(self.prefix, client_id)], [expected, record or ""]
        try:
            return bool(self._replace(keys=keys, args=args))
        except RedisError as exc:
            raise storage_error(exc) from exc

    def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one request to ``bucket`` if every limit allows it (one EVALSHA)."""
        try:
            reply = self._ratelimit(keys=[rate_key(self.prefix, bucket)], args=script_args(limits))
        except RedisError as exc:
            raise storage_error(exc) from exc
        return decision_from_reply(reply, limits)

    def reserve(self, cap: int) -> bool:
        """Take one place under the client cap (one EVALSHA)."""
        try:
            return bool(self._reserve(keys=[counter_key(self.prefix)], args=[cap]))
        except RedisError as exc:
            raise storage_error(exc) from exc

    def release(self) -> None:
        """Give back a place (a create failed, a client was deleted); never below zero."""
        try:
            self._release(keys=[counter_key(self.prefix)])
        except RedisError as exc:
            raise storage_error(exc) from exc

    def token_get(self, digest: str) -> dict[str, str] | None:
        """A minted token's fields, or ``None``."""
        try:
            fields = _text(self.client.hgetall(token_key(self.prefix, digest)))
        except RedisError as exc:
            raise storage_error(exc) from exc
        return fields or None

    def token_use(self, digest: str) -> bool:
        """Take one use of a minted token atomically (one EVALSHA)."""
        try:
            return bool(self._token_use(keys=[token_key(self.prefix, digest)]))
        except RedisError as exc:
            raise storage_error(exc) from exc

    def token_put(self, digest: str, fields: dict[str, str], expires_at: int) -> None:
        """Store a minted token, expiring with its key."""
        key = token_key(self.prefix, digest)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=dict[Any, Any](fields))
                if expires_at:
                    pipe.expireat(key, expires_at)
                pipe.execute()
        except RedisError as exc:
            raise storage_error(exc) from exc

    def token_list(self) -> list[tuple[str, dict[str, str]]]:
        """Every minted token (SCAN; meant for the CLI, not the request path)."""
        try:
            keys = list(self.client.scan_iter(match=token_key(self.prefix, "*"), count=500))
            found = [(_digest_of(k), _text(self.client.hgetall(k))) for k in keys]
        except RedisError as exc:
            raise storage_error(exc) from exc
        return [(d, fields) for d, fields in found if fields]

    def token_delete(self, digest: str) -> bool:
        """Revoke a minted token."""
        try:
            return bool(self.client.delete(token_key(self.prefix, digest)))
        except RedisError as exc:
            raise storage_error(exc) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class AsyncRedisBackend:
    """Client records in Redis, through ``redis.asyncio``."""

    def __init__(self, settings: Settings, client: redis.asyncio.Redis | None = None) -> None:
        if client is None:
            client = async_client(settings)
        self.prefix = settings.key_prefix
        self.client = client
        self._create = client.register_script(CREATE_SCRIPT)
        self._ratelimit = client.register_script(RATELIMIT_SCRIPT)
        self._reserve = client.register_script(RESERVE_SCRIPT)
        self._token_use = client.register_script(TOKEN_USE_SCRIPT)
        self._replace = client.register_script(REPLACE_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    async def create(self, client_id: str, record: str) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one (one EVALSHA)."""
        try:
            return bool(
                await self._create(keys=[client_key(self.prefix, client_id)], args=[record])
            )
        except RedisError as exc:
            raise storage_error(exc) from exc

    async def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        try:
            value = await self.client.get(client_key(self.prefix, client_id))
        except RedisError as exc:
            raise storage_error(exc) from exc
        return None if value is None else str(value)

    async def replace(self, client_id: str, expected: str, record: str | None) -> bool:
        """Compare-and-set one record (``None`` deletes it); one EVALSHA."""
        keys, args = [client_key(self.prefix, client_id)], [expected, record or ""]
        try:
            return bool(await self._replace(keys=keys, args=args))
        except RedisError as exc:
            raise storage_error(exc) from exc

    async def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one request to ``bucket`` if every limit allows it (one EVALSHA)."""
        try:
            reply = await self._ratelimit(
                keys=[rate_key(self.prefix, bucket)], args=script_args(limits)
            )
        except RedisError as exc:
            raise storage_error(exc) from exc
        return decision_from_reply(reply, limits)

    async def reserve(self, cap: int) -> bool:
        """Take one place under the client cap (one EVALSHA)."""
        try:
            return bool(await self._reserve(keys=[counter_key(self.prefix)], args=[cap]))
        except RedisError as exc:
            raise storage_error(exc) from exc

    async def release(self) -> None:
        """Give back a place (a create failed, a client was deleted); never below zero."""
        try:
            await self._release(keys=[counter_key(self.prefix)])
        except RedisError as exc:
            raise storage_error(exc) from exc

    async def token_get(self, digest: str) -> dict[str, str] | None:
        """A minted token's fields, or ``None``."""
        try:
            fields = _text(await self.client.hgetall(token_key(self.prefix, digest)))
        except RedisError as exc:
            raise storage_error(exc) from exc
        return fields or None

    async def token_use(self, digest: str) -> bool:
        """Take one use of a minted token atomically (one EVALSHA)."""
        try:
            return bool(await self._token_use(keys=[token_key(self.prefix, digest)]))
        except RedisError as exc:
            raise storage_error(exc) from exc

    async def token_put(self, digest: str, fields: dict[str, str], expires_at: int) -> None:
        """Store a minted token, expiring with its key."""
        key = token_key(self.prefix, digest)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=dict[Any, Any](fields))
                if expires_at:
                    pipe.expireat(key, expires_at)
                await pipe.execute()
        except RedisError as exc:
            raise storage_error(exc) from exc

    async def token_list(self) -> list[tuple[str, dict[str, str]]]:
        """Every minted token (SCAN; meant for the CLI, not the request path)."""
        try:
            keys = [k async for k in self.client.scan_iter(match=token_key(self.prefix, "*"))]
            found = [(_digest_of(k), _text(await self.client.hgetall(k))) for k in keys]
        except RedisError as exc:
            raise storage_error(exc) from exc
        return [(d, fields) for d, fields in found if fields]

    async def token_delete(self, digest: str) -> bool:
        """Revoke a minted token."""
        try:
            return bool(await self.client.delete(token_key(self.prefix, digest)))
        except RedisError as exc:
            raise storage_error(exc) from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
