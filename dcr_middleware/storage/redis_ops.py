"""Each storage operation described once for Redis: the commands it sends and how it reads the
replies.

Theory of operation. :class:`RedisOperations` has one method per operation of
:mod:`dcr_middleware.core.ops`, with the operation's name and arguments. Each is a generator:
it yields *commands* (:class:`Call`, :class:`Raw`, :class:`Eval`, :class:`Pipeline`,
:class:`Scan`), receives their replies and returns the operation's result. It does no I/O: the
blocking and the asyncio backend of :mod:`.redis` execute the commands, so the sequences of
several commands (a registration in steps on a cluster, the replicated registration with
``WAIT``, the wider bucket on a cluster, the scans) are written once.

Each command is yielded through :func:`ask`: a Redis exception comes back out of the ``yield``
as :class:`~dcr_middleware.core.errors.StorageError` (logged once, by :func:`storage_error`),
except ``NoScriptError``, which the replicated registration answers by loading its script.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import NoScriptError

from ..core.errors import StorageError
from ..core.ops import Attempt, Attempted, Flow, Lifetime, Op, Outcome
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
    client_key,
    counter_key,
    document_key,
    now_ms,
    rate_key,
    token_key,
    used_key,
)
from .connect import REDIS_ERRORS

logger = logging.getLogger("dcr_middleware")

BATCH = 500  # keys per SCAN step, and per pipeline of GETs, when listing


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
TOKEN_PUT_SCRIPT = _lua("token_put")
TOKEN_REFUND_SCRIPT = _lua("token_refund")
REPLACE_SCRIPT = _lua("replace")
RELEASE_SCRIPT = _lua("release")


# --- commands ------------------------------------------------------------------------------------
# ``send`` issues a command on a client: the reply from a blocking client, an awaitable of it from
# an asyncio one (a Scan gives an iterator of keys, or an async one).


@dataclass(frozen=True, slots=True)
class Call:
    """``client.<name>(*args, **kwargs)``: one Redis command (``get``, ``mget``, ``hgetall``...)."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def send(self, client: Any) -> Any:
        """Issue the command on ``client`` (a client or a pipeline)."""
        return getattr(client, self.name)(*self.args, **self.kwargs)


@dataclass(frozen=True, slots=True)
class Raw:
    """One Redis command as sent on the wire (``("GET", key)``), whose reply needs no parsing:
    a backend of one Redis sends it straight on a pooled connection (see :mod:`.redis`)."""

    words: tuple[Any, ...]

    def send(self, client: Any) -> Any:
        """Issue the command through the client (a cluster routes it by its key)."""
        return client.execute_command(*self.words)


@dataclass(frozen=True, slots=True)
class Eval:
    """One Lua script through redis-py's ``Script`` (on a cluster, which routes it by its keys;
    the ``Script`` loads it again after ``NOSCRIPT``)."""

    script: Any  # the Script that the backend's client registered
    keys: Sequence[str]
    args: Sequence[str | int] = ()

    def send(self, client: Any) -> Any:
        """Run the script (on the client it was registered with)."""
        return self.script(keys=self.keys, args=self.args)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Several calls in one round trip, not a transaction (atomic work is a Lua script)."""

    calls: tuple[Call, ...]

    def send(self, client: Any) -> Any:
        """Queue the calls and execute them (``execute`` resets the pipeline, even on error)."""
        pipe = client.pipeline(transaction=False)
        for call in self.calls:
            call.send(pipe)
        return pipe.execute()


@dataclass(frozen=True, slots=True)
class Scan:
    """Every key matching ``match`` (``SCAN``; on every primary of a cluster)."""

    match: str
    count: int = BATCH

    def send(self, client: Any) -> Any:
        """The iterator of keys (async for an asyncio client)."""
        return client.scan_iter(match=self.match, count=self.count)


Command = Call | Raw | Eval | Pipeline | Scan


def storage_error(exc: Exception) -> StorageError:
    """Wrap a Redis exception (logged with its type, never returned to clients)."""
    # The exception text can name hosts but never the password; it is logged, not returned.
    logger.warning("redis error: %s: %s", type(exc).__name__, exc)
    return StorageError("the client store is unavailable; try again later")


def ask(command: Command) -> Generator[Command, Any, Any]:
    """Yield ``command`` and return its reply: ``reply = yield from ask(Call("get", (key,)))``.

    A Redis exception raised by the command is raised here as :class:`StorageError`;
    ``NoScriptError`` as it is (only a pipelined ``EVALSHA`` meets it)."""
    try:
        return (yield command)
    except NoScriptError:
        raise
    except REDIS_ERRORS as exc:
        raise storage_error(exc) from exc


# --- replies -------------------------------------------------------------------------------------


def _text(fields: dict[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in fields.items()}


def _tagged(key: str) -> str:
    # The hash tag of a key: the client id or the token digest it names.
    return key[key.index("{") + 1 : key.rindex("}")]


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _string(value: Any) -> str | None:
    return None if value is None else str(value)


def _used(value: Any) -> int | None:
    return int(value) if value is not None and str(value).isdigit() else None


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


def _replication(settings: Settings) -> tuple[int, int]:
    """How many replicas must acknowledge a registration, and how long WAIT may block (ms):
    with Sentinel only, and well inside the command timeout."""
    if not settings.redis_sentinels:
        return 0, 0
    return settings.redis_wait_replicas, max(10, int(settings.redis_timeout * 800))


class RedisOperations:
    """The commands of every storage operation, for one key prefix and the scripts registered
    with one client (blocking or asyncio: the commands are the same)."""

    def __init__(self, settings: Settings, client: Any) -> None:
        self.prefix = settings.key_prefix
        # On Redis Cluster the keys of one registration hash to different slots, so register.lua
        # cannot run; the same decisions are made in separate calls.
        cluster = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)
        self.one_node = not isinstance(client, cluster)
        self.wait_replicas, self.wait_ms = _replication(settings)
        script: Callable[[str], Any] = client.register_script
        self.create_script = script(CREATE_SCRIPT)
        self.ratelimit_script = script(RATELIMIT_SCRIPT)
        self.register_script = script(REGISTER_SCRIPT)
        self.lookup_script = script(LOOKUP_SCRIPT)
        self.purge_script = script(PURGE_SCRIPT)
        self.reserve_script = script(RESERVE_SCRIPT)
        self.token_use_script = script(TOKEN_USE_SCRIPT)
        self.token_put_script = script(TOKEN_PUT_SCRIPT)
        self.token_refund_script = script(TOKEN_REFUND_SCRIPT)
        self.replace_script = script(REPLACE_SCRIPT)
        self.release_script = script(RELEASE_SCRIPT)

    def _script(self, script: Any, keys: list[str], args: Sequence[str | int] = ()) -> Flow[Any]:
        """Run a registered script: ``EVALSHA``, and after ``NOSCRIPT`` (a restarted or flushed
        Redis) ``SCRIPT LOAD`` and ``EVALSHA`` again, as redis-py's ``Script`` does; on a
        cluster through the ``Script``, which routes it."""
        if not self.one_node:
            return (yield from ask(Eval(script, keys, args)))
        evalsha = Raw(("EVALSHA", script.sha, len(keys), *keys, *args))
        try:
            return (yield from ask(evalsha))
        except NoScriptError:
            pass
        yield from ask(Raw(("SCRIPT", "LOAD", script.script)))
        try:
            return (yield from ask(evalsha))
        except NoScriptError as exc:  # flushed again in between
            raise storage_error(exc) from exc

    def flow(self, op: Op[Any]) -> Flow[Any]:
        """The commands of ``op``; the flow returns the operation's result."""
        flow: Flow[Any] = getattr(self, op.method)(*op.args())
        return flow

    def _client_keys(self, client_id: str) -> list[str]:
        return [client_key(self.prefix, client_id), used_key(self.prefix, client_id)]

    def create(self, client_id: str, record: str, idle_ttl_ms: int = 0) -> Flow[bool]:
        """Store ``record`` unless ``client_id`` holds a different one (one EVALSHA)."""
        keys = [client_key(self.prefix, client_id)]
        return bool((yield from self._script(self.create_script, keys, [record, idle_ttl_ms])))

    def get(self, client_id: str) -> Flow[str | None]:
        """The stored record, or ``None`` (one GET)."""
        return _string((yield from ask(Raw(("GET", client_key(self.prefix, client_id))))))

    def lookup(self, client_id: str, lifetime: Lifetime) -> Flow[str | None]:
        """The stored record, noting the use at most once per refresh interval (one EVALSHA)."""
        keys, args = self._client_keys(client_id), [lifetime.idle_ttl_ms, lifetime.refresh_ms]
        return _string((yield from self._script(self.lookup_script, keys, args)))

    def read(self, client_id: str) -> Flow[tuple[str | None, int | None]]:
        """The record and its last noted use, without noting one (one MGET, one slot)."""
        record, used = yield from ask(Raw(("MGET", *self._client_keys(client_id))))
        return _string(record), _used(used)

    def replace(
        self, client_id: str, expected: str, record: str | None, idle_ttl_ms: int = 0
    ) -> Flow[bool]:
        """Compare-and-set one record (``None`` deletes it); one EVALSHA."""
        args: list[str | int] = [expected, record or "", idle_ttl_ms]
        return bool(
            (yield from self._script(self.replace_script, self._client_keys(client_id), args))
        )

    def purge(self, client_id: str, record: str, used: int | None) -> Flow[bool]:
        """Delete an idle client if neither its record nor its last use changed since read."""
        args: list[str | int] = [record, "" if used is None else used]
        return bool(
            (yield from self._script(self.purge_script, self._client_keys(client_id), args))
        )

    def register(self, attempt: Attempt) -> Flow[Attempted]:
        """Decide and store one registration: one EVALSHA (with WAIT under Sentinel), or
        separate calls on a cluster."""
        if not self.one_node:
            return (yield from self._register_in_steps(attempt))
        keys, args = register_call(self.prefix, attempt, now_ms())
        if self.wait_replicas:
            reply = yield from self._register_replicated(keys, args)
        else:
            reply = yield from self._script(self.register_script, keys, args)
        return attempted_from_reply(reply, attempt.limits)

    def _register_replicated(self, keys: list[str], args: list[str | int]) -> Flow[Any]:
        # The script and WAIT in one pipelined round trip (EVALSHA directly: a Script in a
        # pipeline costs a SCRIPT EXISTS first). NOSCRIPT: load it and send both again.
        evalsha = Call("evalsha", (self.register_script.sha, len(keys), *keys, *args))
        wait = Call("execute_command", ("WAIT", self.wait_replicas, self.wait_ms))
        try:
            reply, acknowledged = yield from ask(Pipeline((evalsha, wait)))
        except NoScriptError:
            yield from ask(Call("script_load", (REGISTER_SCRIPT,)))
            try:
                reply, acknowledged = yield from ask(Pipeline((evalsha, wait)))
            except NoScriptError as exc:
                raise storage_error(exc) from exc
        if int(reply[0]) == Outcome.CREATED.value and int(acknowledged) < self.wait_replicas:
            # Written on the master, not (yet) on a replica: a failover could lose it. The
            # outcome is unknown to the client (503): absent or complete, never partial.
            logger.warning(
                "registration not acknowledged by %d replica(s) in time", self.wait_replicas
            )
            raise StorageError("the client store is unavailable; try again later")
        return reply

    def _register_in_steps(self, attempt: Attempt) -> Flow[Attempted]:
        decision = None
        if attempt.limits:
            decision = yield from self.hit(attempt.bucket, attempt.limits)
            if not decision.allowed:
                return Attempted(Outcome.LIMITED, decision)
        if attempt.token and not (yield from self.token_use(attempt.token)):
            return Attempted(Outcome.TOKEN_SPENT, decision)
        # Separate calls here: a use taken for a registration refused next is given back.
        if attempt.cap and not (yield from self.reserve(attempt.cap)):
            yield from self._refund(attempt)
            return Attempted(Outcome.CAPPED, decision)
        try:
            created = yield from self.create(attempt.client_id, attempt.record, attempt.idle_ttl_ms)
        except StorageError:
            if attempt.cap:
                yield from self.release()
            raise
        if not created:
            yield from self._refund(attempt)
            if attempt.cap:
                yield from self.release()
        return Attempted(Outcome.CREATED if created else Outcome.TAKEN, decision)

    def _refund(self, attempt: Attempt) -> Flow[None]:
        if attempt.token:
            keys = [token_key(self.prefix, attempt.token)]
            yield from self._script(self.token_refund_script, keys)

    def hit(self, bucket: str, limits: tuple[Limit, ...]) -> Flow[RateDecision]:
        """Charge one request to ``bucket`` if every limit allows it (one EVALSHA; on a cluster
        with a wider bucket, one per bucket, in different slots: the own bucket stays charged
        when the wider one then refuses)."""
        wide, wide_limits = wide_part(limits)
        if wide and not self.one_node:
            own = yield from self.hit(bucket, own_part(limits))
            if not own.allowed:
                return own
            other = yield from self.hit(wide, detached(wide_limits))
            return combine(own, attached(other, wide))
        keys = rate_keys(self.prefix, bucket, limits)
        reply = yield from self._script(self.ratelimit_script, keys, script_args(limits, now_ms()))
        return decision_from_reply(reply, limits)

    def reserve(self, cap: int) -> Flow[bool]:
        """Take one place under the client cap (one EVALSHA)."""
        return bool(
            (yield from self._script(self.reserve_script, [counter_key(self.prefix)], [cap]))
        )

    def release(self) -> Flow[None]:
        """Give back a place (a create failed, a client was deleted); never below zero."""
        yield from self._script(self.release_script, [counter_key(self.prefix)])

    def token_get(self, digest: str) -> Flow[dict[str, str] | None]:
        """A minted token's fields, or ``None`` (one HGETALL)."""
        fields = yield from ask(Call("hgetall", (token_key(self.prefix, digest),)))
        return _text(fields) or None

    def token_use(self, digest: str) -> Flow[bool]:
        """Take one use of a minted token atomically (one EVALSHA)."""
        keys = [token_key(self.prefix, digest)]
        return bool((yield from self._script(self.token_use_script, keys)))

    def token_put(self, digest: str, fields: dict[str, str], expires_at: int) -> Flow[None]:
        """Store a minted token, expiring with its key (one EVALSHA)."""
        if not fields:
            raise ValueError("a minted token has fields")
        pairs = [word for field in fields.items() for word in field]
        keys = [token_key(self.prefix, digest)]
        yield from self._script(self.token_put_script, keys, [expires_at, *pairs])

    def token_list(self) -> Flow[list[tuple[str, dict[str, str]]]]:
        """Every minted token (SCAN, then one HGETALL each; for the CLI, not the request path)."""
        found: list[tuple[str, dict[str, str]]] = []
        for key in (yield from ask(Scan(token_key(self.prefix, "*")))):
            fields = _text((yield from ask(Call("hgetall", (key,)))))
            if fields:  # expired or revoked since the SCAN saw it
                found.append((_tagged(key), fields))
        return found

    def token_delete(self, digest: str) -> Flow[bool]:
        """Revoke a minted token (one DEL)."""
        return bool((yield from ask(Call("delete", (token_key(self.prefix, digest),)))))

    def client_records(
        self, progress: Callable[[int], object] | None = None
    ) -> Flow[list[tuple[str, int | None]]]:
        """Every client record with its last noted use: SCAN over ``<prefix>:client:{*}``, then
        both values of each client in pipelined batches (plain reads: no use is noted)."""
        keys = yield from ask(Scan(client_key(_glob_escape(self.prefix), "*")))
        found: list[tuple[str, int | None]] = []
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            # GET, GET (not MGET: redis-py refuses it in a cluster pipeline).
            calls = [Call("get", (k,)) for key in batch for k in self._client_keys(_tagged(key))]
            values = yield from ask(Pipeline(tuple(calls)))
            for record, used in zip(values[::2], values[1::2], strict=True):
                if record is not None:  # deleted since the SCAN saw it
                    found.append((str(record), _used(used)))
            if progress is not None:
                progress(start + len(batch))
        return found

    def document_get(self, key: str) -> Flow[str | None]:
        """A cached document entry, or ``None`` (one GET)."""
        return _string((yield from ask(Raw(("GET", document_key(self.prefix, key))))))

    def document_put(self, key: str, entry: str, ttl_ms: int) -> Flow[None]:
        """Cache a document entry for ``ttl_ms`` (one SET PX)."""
        yield from ask(Call("set", (document_key(self.prefix, key), entry), {"px": ttl_ms}))

    def document_delete(self, key: str) -> Flow[bool]:
        """Evict a cached document entry (one DEL)."""
        return bool((yield from ask(Call("delete", (document_key(self.prefix, key),)))))

    def document_list(self) -> Flow[list[tuple[str, str]]]:
        """Every cached document entry (SCAN, then one GET each; for the CLI)."""
        found: list[tuple[str, str]] = []
        for key in (yield from ask(Scan(document_key(_glob_escape(self.prefix), "*")))):
            value = yield from ask(Call("get", (key,)))
            if value is not None:  # expired or evicted since the SCAN saw it
                found.append((_tagged(key), str(value)))
        return found

    def client_count(self) -> Flow[int]:
        """The ``DCR_MAX_CLIENTS`` counter (one GET)."""
        return int((yield from ask(Call("get", (counter_key(self.prefix),)))) or 0)
