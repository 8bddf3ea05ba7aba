"""Redis backends: the blocking one (WSGI) and the asyncio one (ASGI), side by side.

Both run the same Lua scripts (``storage/lua/*.lua``, read once at import of this module) and
differ only in ``await``. Connections are opened lazily, on the first command in each worker
process: redis-py's pool opens no socket at construction and resets itself after a fork, so
gunicorn ``--preload`` is safe.

Failure policy (clients built in :mod:`.connect`): explicit connect and command timeouts; a
command is retried once, only after a *connection* error (nothing was written, or the create
script makes the re-send harmless), and never after a timeout, where the write may have happened.
Every Redis exception becomes a :class:`~dcr_middleware.core.errors.StorageError`, which the
middlewares answer with ``503``.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import NoScriptError

from ..core.errors import StorageError
from ..core.ops import Op
from ..core.ratelimit import (
    Limit,
    RateDecision,
    attached,
    combine,
    decision_from_reply,
    detached,
    own_part,
    script_args,
    wide_part,
)
from ..core.settings import Settings
from .base import (
    Attempt,
    Attempted,
    Lifetime,
    Outcome,
    client_key,
    counter_key,
    now_ms,
    rate_key,
    token_key,
    used_key,
)
from .connect import REDIS_ERRORS, AsyncRedis, SyncRedis, async_client, sync_client

T = TypeVar("T")
logger = logging.getLogger("dcr_middleware")


def _lua(name: str) -> str:
    return resources.files(__package__).joinpath(f"lua/{name}.lua").read_text("utf-8")


_GCRA = _lua("gcra") + _lua("gcra_pair")
CREATE_SCRIPT = _lua("create")
RATELIMIT_SCRIPT = _GCRA + _lua("ratelimit")
REGISTER_SCRIPT = _GCRA + _lua("register")
LOOKUP_SCRIPT = _lua("lookup")
PURGE_SCRIPT = _lua("purge")
RESERVE_SCRIPT = _lua("reserve")
TOKEN_USE_SCRIPT = _lua("token_use")
TOKEN_REFUND_SCRIPT = _lua("token_refund")
REPLACE_SCRIPT = _lua("replace")
RELEASE_SCRIPT = _lua("release")


def _text(fields: dict[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in fields.items()}


def _digest_of(key: str) -> str:
    return key[key.index("{") + 1 : key.rindex("}")]


def register_call(prefix: str, attempt: Attempt, now: int) -> tuple[list[str], list[str | int]]:
    """The KEYS and ARGV of ``register.lua`` for ``attempt``, rate-limited at ``now`` (ms)."""
    keys = [
        client_key(prefix, attempt.client_id),
        rate_key(prefix, attempt.bucket),
        counter_key(prefix),
        token_key(prefix, attempt.token or ""),
        *rate_keys(prefix, "", attempt.limits)[1:],
    ]
    args: list[str | int] = [
        attempt.record,
        attempt.idle_ttl_ms,
        attempt.cap,
        1 if attempt.token else 0,
        *script_args(attempt.limits, now),
    ]
    return keys, args


def rate_keys(prefix: str, bucket: str, limits: tuple[Limit, ...]) -> list[str]:
    """The keys a rate-limit script charges: the bucket's, then the wider bucket's if any."""
    wide, _ = wide_part(limits)
    return [rate_key(prefix, bucket), *([rate_key(prefix, wide)] if wide else [])]


def attempted_from_reply(reply: list[int], limits: tuple[Limit, ...]) -> Attempted:
    """Read the reply of ``register.lua``."""
    decision = decision_from_reply(reply[1:], limits) if limits else None
    return Attempted(Outcome(int(reply[0])), decision)


def _read_reply(record: Any, used: Any) -> tuple[str | None, int | None]:
    return (
        None if record is None else str(record),
        int(used) if used is not None and str(used).isdigit() else None,
    )


def _replication(settings: Settings) -> tuple[int, int]:
    """How many replicas must acknowledge a registration, and how long WAIT may block (ms):
    with Sentinel only, and well inside the command timeout."""
    if not settings.redis_sentinels:
        return 0, 0
    return settings.redis_wait_replicas, max(10, int(settings.redis_timeout * 800))


def _replicated(reply: Any, acknowledged: Any, wanted: int) -> Any:
    """The script's reply, once enough replicas acknowledged it (else ``StorageError``)."""
    if int(reply[0]) == Outcome.CREATED.value and int(acknowledged) < wanted:
        # Written on the master, not (yet) on a replica: a failover could lose it. The outcome
        # is unknown to the client (503): absent or complete, never partial.
        logger.warning("registration not acknowledged by %d replica(s) in time", wanted)
        raise StorageError("the client store is unavailable; try again later")
    return reply


def _one_node(client: Any) -> bool:
    # On Redis Cluster the keys of one registration hash to different slots, so register.lua
    # cannot run; the backend makes the same decisions in separate calls.
    return not isinstance(client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster)


def storage_error(exc: Exception) -> StorageError:
    """Wrap a Redis exception (logged with its type, never returned to clients)."""
    # The exception text can name hosts but never the password; it is logged, not returned.
    logger.warning("redis error: %s: %s", type(exc).__name__, exc)
    return StorageError("the client store is unavailable; try again later")


class RedisBackend:
    """Client records in Redis, through the blocking redis-py client."""

    def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        result: T = getattr(self, op.method)(*op.args())
        return result

    def __init__(self, settings: Settings, client: SyncRedis | None = None) -> None:
        if client is None:
            client = sync_client(settings)
        self.prefix = settings.key_prefix
        self.client = client
        self.one_node = _one_node(client)
        self.wait_replicas, self.wait_ms = _replication(settings)
        self._create = client.register_script(CREATE_SCRIPT)
        self._ratelimit = client.register_script(RATELIMIT_SCRIPT)
        self._register = client.register_script(REGISTER_SCRIPT)
        self._lookup = client.register_script(LOOKUP_SCRIPT)
        self._purge = client.register_script(PURGE_SCRIPT)
        self._reserve = client.register_script(RESERVE_SCRIPT)
        self._token_use = client.register_script(TOKEN_USE_SCRIPT)
        self._token_refund = client.register_script(TOKEN_REFUND_SCRIPT)
        self._replace = client.register_script(REPLACE_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    def create(self, client_id: str, record: str, idle_ttl_ms: int = 0) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one (one EVALSHA)."""
        keys = [client_key(self.prefix, client_id)]
        args: list[str | int] = [record, idle_ttl_ms]
        try:
            return bool(self._create(keys=keys, args=args))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    def register(self, attempt: Attempt) -> Attempted:
        """Decide and store one registration: one EVALSHA, or separate calls on a cluster."""
        if not self.one_node:
            return self._register_in_steps(attempt)
        keys, args = register_call(self.prefix, attempt, now_ms())
        try:
            if not self.wait_replicas:
                reply = self._register(keys=keys, args=args)
            else:
                reply = self._register_replicated(keys, args)
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return attempted_from_reply(reply, attempt.limits)

    def _register_replicated(self, keys: list[str], args: list[str | int]) -> Any:
        # The script and WAIT in one pipelined round trip (EVALSHA directly: a Script in a
        # pipeline costs a SCRIPT EXISTS first). NOSCRIPT: load it and send both again.
        for attempt in (1, 2):
            with self.client.pipeline(transaction=False) as pipe:
                pipe.evalsha(self._register.sha, len(keys), *keys, *args)
                pipe.execute_command("WAIT", self.wait_replicas, self.wait_ms)
                try:
                    reply, acknowledged = pipe.execute()
                except NoScriptError:
                    if attempt == 2:
                        raise
                    self.client.script_load(REGISTER_SCRIPT)
                    continue
            return _replicated(reply, acknowledged, self.wait_replicas)
        raise AssertionError("unreachable")  # pragma: no cover

    def _register_in_steps(self, attempt: Attempt) -> Attempted:
        decision = None
        if attempt.limits:
            decision = self.hit(attempt.bucket, attempt.limits)
            if not decision.allowed:
                return Attempted(Outcome.LIMITED, decision)
        if attempt.token and not self.token_use(attempt.token):
            return Attempted(Outcome.TOKEN_SPENT, decision)
        # Separate calls here: a use taken for a registration refused next is given back.
        if attempt.cap and not self.reserve(attempt.cap):
            self._refund(attempt)
            return Attempted(Outcome.CAPPED, decision)
        try:
            created = self.create(attempt.client_id, attempt.record, attempt.idle_ttl_ms)
        except StorageError:
            if attempt.cap:
                self.release()
            raise
        if not created:
            self._refund(attempt)
            if attempt.cap:
                self.release()
        return Attempted(Outcome.CREATED if created else Outcome.TAKEN, decision)

    def _refund(self, attempt: Attempt) -> None:
        if attempt.token:
            try:
                self._token_refund(keys=[token_key(self.prefix, attempt.token)])
            except REDIS_ERRORS as exc:
                raise storage_error(exc) from exc

    def read(self, client_id: str) -> tuple[str | None, int | None]:
        """The record and its last noted use, without noting one (one MGET, one slot)."""
        keys = [client_key(self.prefix, client_id), used_key(self.prefix, client_id)]
        try:
            record, used = self.client.mget(keys)
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return _read_reply(record, used)

    def lookup(self, client_id: str, lifetime: Lifetime) -> str | None:
        """The stored record, noting the use at most once per refresh interval (one EVALSHA)."""
        keys = [client_key(self.prefix, client_id), used_key(self.prefix, client_id)]
        try:
            value = self._lookup(keys=keys, args=[lifetime.idle_ttl_ms, lifetime.refresh_ms])
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return None if value is None else str(value)

    def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        try:
            value = self.client.get(client_key(self.prefix, client_id))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return None if value is None else str(value)

    def purge(self, client_id: str, record: str, used: int | None) -> bool:
        """Delete an idle client if neither its record nor its last use changed since read."""
        keys = [client_key(self.prefix, client_id), used_key(self.prefix, client_id)]
        args: list[str | int] = [record, "" if used is None else used]
        try:
            return bool(self._purge(keys=keys, args=args))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    def replace(
        self, client_id: str, expected: str, record: str | None, idle_ttl_ms: int = 0
    ) -> bool:
        """Compare-and-set one record (``None`` deletes it); one EVALSHA."""
        keys = [client_key(self.prefix, client_id), used_key(self.prefix, client_id)]
        args: list[str | int] = [expected, record or "", idle_ttl_ms]
        try:
            return bool(self._replace(keys=keys, args=args))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one request to ``bucket`` if every limit allows it (one EVALSHA; on a cluster
        with a wider bucket, one per bucket, in different slots: the own bucket stays charged
        when the wider one then refuses)."""
        wide, wide_limits = wide_part(limits)
        if wide and not self.one_node:
            own = self.hit(bucket, own_part(limits))
            if not own.allowed:
                return own
            return combine(own, attached(self.hit(wide, detached(wide_limits)), wide))
        try:
            keys = rate_keys(self.prefix, bucket, limits)
            reply = self._ratelimit(keys=keys, args=script_args(limits, now_ms()))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return decision_from_reply(reply, limits)

    def reserve(self, cap: int) -> bool:
        """Take one place under the client cap (one EVALSHA)."""
        try:
            return bool(self._reserve(keys=[counter_key(self.prefix)], args=[cap]))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    def release(self) -> None:
        """Give back a place (a create failed, a client was deleted); never below zero."""
        try:
            self._release(keys=[counter_key(self.prefix)])
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    def token_get(self, digest: str) -> dict[str, str] | None:
        """A minted token's fields, or ``None``."""
        try:
            fields = _text(self.client.hgetall(token_key(self.prefix, digest)))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return fields or None

    def token_use(self, digest: str) -> bool:
        """Take one use of a minted token atomically (one EVALSHA)."""
        try:
            return bool(self._token_use(keys=[token_key(self.prefix, digest)]))
        except REDIS_ERRORS as exc:
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
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    def token_list(self) -> list[tuple[str, dict[str, str]]]:
        """Every minted token (SCAN; meant for the CLI, not the request path)."""
        try:
            keys = list(self.client.scan_iter(match=token_key(self.prefix, "*"), count=500))
            found = [(_digest_of(k), _text(self.client.hgetall(k))) for k in keys]
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return [(d, fields) for d, fields in found if fields]

    def token_delete(self, digest: str) -> bool:
        """Revoke a minted token."""
        try:
            return bool(self.client.delete(token_key(self.prefix, digest)))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class AsyncRedisBackend:
    """Client records in Redis, through ``redis.asyncio``."""

    async def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        result: T = await getattr(self, op.method)(*op.args())
        return result

    def __init__(self, settings: Settings, client: AsyncRedis | None = None) -> None:
        if client is None:
            client = async_client(settings)
        self.prefix = settings.key_prefix
        self.client = client
        self.one_node = _one_node(client)
        self.wait_replicas, self.wait_ms = _replication(settings)
        self._create = client.register_script(CREATE_SCRIPT)
        self._ratelimit = client.register_script(RATELIMIT_SCRIPT)
        self._register = client.register_script(REGISTER_SCRIPT)
        self._lookup = client.register_script(LOOKUP_SCRIPT)
        self._reserve = client.register_script(RESERVE_SCRIPT)
        self._token_use = client.register_script(TOKEN_USE_SCRIPT)
        self._token_refund = client.register_script(TOKEN_REFUND_SCRIPT)
        self._replace = client.register_script(REPLACE_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    async def create(self, client_id: str, record: str, idle_ttl_ms: int = 0) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one (one EVALSHA)."""
        keys = [client_key(self.prefix, client_id)]
        args: list[str | int] = [record, idle_ttl_ms]
        try:
            return bool(await self._create(keys=keys, args=args))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    async def register(self, attempt: Attempt) -> Attempted:
        """Decide and store one registration: one EVALSHA, or separate calls on a cluster."""
        if not self.one_node:
            return await self._register_in_steps(attempt)
        keys, args = register_call(self.prefix, attempt, now_ms())
        try:
            if not self.wait_replicas:
                reply = await self._register(keys=keys, args=args)
            else:
                reply = await self._register_replicated(keys, args)
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return attempted_from_reply(reply, attempt.limits)

    async def _register_replicated(self, keys: list[str], args: list[str | int]) -> Any:
        # As in RedisBackend: the script and WAIT in one pipelined round trip.
        for attempt in (1, 2):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.evalsha(self._register.sha, len(keys), *keys, *args)
                pipe.execute_command("WAIT", self.wait_replicas, self.wait_ms)
                try:
                    reply, acknowledged = await pipe.execute()
                except NoScriptError:
                    if attempt == 2:
                        raise
                    await self.client.script_load(REGISTER_SCRIPT)
                    continue
            return _replicated(reply, acknowledged, self.wait_replicas)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _register_in_steps(self, attempt: Attempt) -> Attempted:
        decision = None
        if attempt.limits:
            decision = await self.hit(attempt.bucket, attempt.limits)
            if not decision.allowed:
                return Attempted(Outcome.LIMITED, decision)
        if attempt.token and not await self.token_use(attempt.token):
            return Attempted(Outcome.TOKEN_SPENT, decision)
        # Separate calls here: a use taken for a registration refused next is given back.
        if attempt.cap and not await self.reserve(attempt.cap):
            await self._refund(attempt)
            return Attempted(Outcome.CAPPED, decision)
        try:
            created = await self.create(attempt.client_id, attempt.record, attempt.idle_ttl_ms)
        except StorageError:
            if attempt.cap:
                await self.release()
            raise
        if not created:
            await self._refund(attempt)
            if attempt.cap:
                await self.release()
        return Attempted(Outcome.CREATED if created else Outcome.TAKEN, decision)

    async def _refund(self, attempt: Attempt) -> None:
        if attempt.token:
            try:
                await self._token_refund(keys=[token_key(self.prefix, attempt.token)])
            except REDIS_ERRORS as exc:
                raise storage_error(exc) from exc

    async def read(self, client_id: str) -> tuple[str | None, int | None]:
        """The record and its last noted use, without noting one (one MGET, one slot)."""
        keys = [client_key(self.prefix, client_id), used_key(self.prefix, client_id)]
        try:
            record, used = await self.client.mget(keys)
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return _read_reply(record, used)

    async def lookup(self, client_id: str, lifetime: Lifetime) -> str | None:
        """The stored record, noting the use at most once per refresh interval (one EVALSHA)."""
        keys = [client_key(self.prefix, client_id), used_key(self.prefix, client_id)]
        try:
            value = await self._lookup(keys=keys, args=[lifetime.idle_ttl_ms, lifetime.refresh_ms])
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return None if value is None else str(value)

    async def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        try:
            value = await self.client.get(client_key(self.prefix, client_id))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return None if value is None else str(value)

    async def replace(
        self, client_id: str, expected: str, record: str | None, idle_ttl_ms: int = 0
    ) -> bool:
        """Compare-and-set one record (``None`` deletes it); one EVALSHA."""
        keys = [client_key(self.prefix, client_id), used_key(self.prefix, client_id)]
        args: list[str | int] = [expected, record or "", idle_ttl_ms]
        try:
            return bool(await self._replace(keys=keys, args=args))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    async def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one request to ``bucket`` if every limit allows it (one EVALSHA; on a cluster
        with a wider bucket, one per bucket)."""
        wide, wide_limits = wide_part(limits)
        if wide and not self.one_node:
            own = await self.hit(bucket, own_part(limits))
            if not own.allowed:
                return own
            return combine(own, attached(await self.hit(wide, detached(wide_limits)), wide))
        try:
            keys = rate_keys(self.prefix, bucket, limits)
            reply = await self._ratelimit(keys=keys, args=script_args(limits, now_ms()))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return decision_from_reply(reply, limits)

    async def reserve(self, cap: int) -> bool:
        """Take one place under the client cap (one EVALSHA)."""
        try:
            return bool(await self._reserve(keys=[counter_key(self.prefix)], args=[cap]))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    async def release(self) -> None:
        """Give back a place (a create failed, a client was deleted); never below zero."""
        try:
            await self._release(keys=[counter_key(self.prefix)])
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    async def token_get(self, digest: str) -> dict[str, str] | None:
        """A minted token's fields, or ``None``."""
        try:
            fields = _text(await self.client.hgetall(token_key(self.prefix, digest)))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return fields or None

    async def token_use(self, digest: str) -> bool:
        """Take one use of a minted token atomically (one EVALSHA)."""
        try:
            return bool(await self._token_use(keys=[token_key(self.prefix, digest)]))
        except REDIS_ERRORS as exc:
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
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    async def token_list(self) -> list[tuple[str, dict[str, str]]]:
        """Every minted token (SCAN; meant for the CLI, not the request path)."""
        try:
            keys = [k async for k in self.client.scan_iter(match=token_key(self.prefix, "*"))]
            found = [(_digest_of(k), _text(await self.client.hgetall(k))) for k in keys]
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc
        return [(d, fields) for d, fields in found if fields]

    async def token_delete(self, digest: str) -> bool:
        """Revoke a minted token."""
        try:
            return bool(await self.client.delete(token_key(self.prefix, digest)))
        except REDIS_ERRORS as exc:
            raise storage_error(exc) from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
