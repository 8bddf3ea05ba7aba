"""The embedded in-process store, used when ``DCR_REDIS_URL`` is unset.

It lives in one process: clients are lost on restart and are not shared between gunicorn or
uvicorn workers. It is meant for the demo, tests and single-process development servers.
Stores with the same key prefix in one process share their records, so an authorization server
in the same process sees the clients its middleware registered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import ClassVar, TypeVar

from ..core.ops import Op
from ..core.ratelimit import Limit, RateDecision, decide
from .base import Attempt, Attempted, Lifetime, Outcome, client_key, shorthands

T = TypeVar("T")
_PRUNE_AT = 10_000  # buckets held before idle ones are dropped


def _now_ms() -> int:
    return int(time.time() * 1000)


class MemoryBackend:
    """Thread-safe dict of records (the same contract as the Redis backends)."""

    def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        result: T = getattr(self, op.method)(*op.args())
        return result

    _shared: ClassVar[dict[str, MemoryBackend]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, prefix: str = "dcr") -> None:
        self.prefix = prefix
        self._records: dict[str, str] = {}
        self._expiry: dict[str, int] = {}  # key -> epoch ms, for clients with an idle TTL
        self._used: dict[str, int] = {}  # key -> epoch ms of the last noted lookup
        self._buckets: dict[str, dict[str, int]] = {}
        self._reserved = 0
        self._tokens: dict[str, tuple[dict[str, str], int]] = {}
        self._documents: dict[str, tuple[str, int]] = {}  # key -> (entry, expiry in epoch ms)
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, prefix: str) -> MemoryBackend:
        """The process-wide store for ``prefix``."""
        with cls._shared_lock:
            return cls._shared.setdefault(prefix, cls(prefix))

    def create(self, client_id: str, record: str, idle_ttl_ms: int = 0) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one."""
        with self._lock:
            return self._create(client_key(self.prefix, client_id), record, idle_ttl_ms)

    def _create(self, key: str, record: str, idle_ttl_ms: int) -> bool:
        current = self._live(key)
        if current is not None:
            return current == record
        self._records[key] = record
        if idle_ttl_ms:
            self._expiry[key] = _now_ms() + idle_ttl_ms
        return True

    def _live(self, key: str) -> str | None:
        # Called with the lock held: an expired record is dropped, as Redis does on access.
        expiry = self._expiry.get(key)
        if expiry is not None and expiry <= _now_ms():
            self._drop(key)
        return self._records.get(key)

    def _drop(self, key: str) -> None:
        self._records.pop(key, None)
        self._expiry.pop(key, None)
        self._used.pop(key, None)

    def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        with self._lock:
            return self._live(client_key(self.prefix, client_id))

    def lookup(self, client_id: str, lifetime: Lifetime) -> str | None:
        """The stored record, noting the use at most once per refresh interval."""
        key = client_key(self.prefix, client_id)
        now = _now_ms()
        with self._lock:
            record = self._live(key)
            if record is not None and now - self._used.get(key, 0) >= lifetime.refresh_ms:
                self._used[key] = now
                if lifetime.idle_ttl_ms:
                    self._expiry[key] = now + lifetime.idle_ttl_ms
            return record

    def read(self, client_id: str) -> tuple[str | None, int | None]:
        """The stored record and its last noted use, without noting one."""
        key = client_key(self.prefix, client_id)
        with self._lock:
            return self._live(key), self._used.get(key)

    def replace(
        self, client_id: str, expected: str, record: str | None, idle_ttl_ms: int = 0
    ) -> bool:
        """Compare-and-set one record (``None`` deletes it)."""
        key = client_key(self.prefix, client_id)
        with self._lock:
            if self._live(key) != expected:
                return False
            if record is None:
                self._drop(key)
                return True
            self._records[key] = record
            self._used[key] = now = _now_ms()
            if idle_ttl_ms:
                self._expiry[key] = now + idle_ttl_ms
            else:
                self._expiry.pop(key, None)
            return True

    def purge(self, client_id: str, record: str, used: int | None) -> bool:
        """Delete an idle client if neither its record nor its last use changed since read."""
        key = client_key(self.prefix, client_id)
        with self._lock:
            if self._live(key) != record or self._used.get(key) != used:
                return False
            self._drop(key)
            return True

    def register(self, attempt: Attempt) -> Attempted:
        """Decide and store one registration under the lock (``register.lua``'s semantics)."""
        key = client_key(self.prefix, attempt.client_id)
        with self._lock:
            decision, commit = None, None
            if attempt.limits:
                decision, commit = self._check(attempt.bucket, attempt.limits)
                if commit is None:
                    return Attempted(Outcome.LIMITED, decision)
            current = self._live(key)
            if current is not None:
                same = current == attempt.record
                return Attempted(Outcome.CREATED if same else Outcome.TAKEN, decision)
            # As register.lua: check the token, then take the place, and only then the use, so
            # a registration refused at the cap keeps its token use.
            outcome = Outcome.CREATED
            if attempt.token and not self._token_usable(attempt.token):
                outcome = Outcome.TOKEN_SPENT
            elif attempt.cap and not self._reserve(attempt.cap):
                outcome = Outcome.CAPPED
            else:
                if attempt.token:
                    self._use_token(attempt.token)
                self._create(key, attempt.record, attempt.idle_ttl_ms)
            if commit is not None:
                commit()
            return Attempted(outcome, decision)

    def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one request to ``bucket`` if every limit allows it (GCRA)."""
        with self._lock:
            decision, commit = self._check(bucket, limits)
            if commit is not None:
                commit()
        return decision

    def _check(
        self, bucket: str, limits: tuple[Limit, ...]
    ) -> tuple[RateDecision, Callable[[], None] | None]:
        # With the lock held: the decision, and when allowed the charge to apply.
        # A limit naming another bucket (the wider IPv6 prefix) reads and charges that one:
        # decide() over the TATs of both is what gcra_pair.lua decides.
        now_ms = _now_ms()
        names = [lim.bucket or bucket for lim in limits]
        stored = [
            self._buckets.get(name, {}).get(lim.field)
            for name, lim in zip(names, limits, strict=True)
        ]
        decision, new_tats = decide(stored, now_ms, limits)
        if new_tats is None:
            return decision, None

        def commit() -> None:
            if len(self._buckets) >= _PRUNE_AT:
                self._prune(now_ms)
            charged: dict[str, dict[str, int]] = {}
            for name, lim, tat in zip(names, limits, new_tats, strict=True):
                charged.setdefault(name, {})[lim.field] = tat
            self._buckets.update(charged)

        return decision, commit

    def _prune(self, now_ms: int) -> None:
        # A bucket whose every TAT has passed is the same as no bucket (what Redis's PEXPIRE
        # does for the Redis store): drop those, so memory tracks active clients only.
        idle = [b for b, tats in self._buckets.items() if max(tats.values()) <= now_ms]
        for bucket in idle:
            del self._buckets[bucket]

    def reserve(self, cap: int) -> bool:
        """Take one place under the client cap."""
        with self._lock:
            return self._reserve(cap)

    def _reserve(self, cap: int) -> bool:
        if self._reserved >= cap:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        """Give back a place (a create failed, a client was deleted); never below zero."""
        with self._lock:
            self._reserved = max(0, self._reserved - 1)

    def client_count(self) -> int:
        """Places taken under the client cap (the metrics' stored client count)."""
        with self._lock:
            return self._reserved

    def token_get(self, digest: str) -> dict[str, str] | None:
        """A minted token's fields, or ``None`` (also once expired)."""
        with self._lock:
            entry = self._live_token(digest)
            return dict(entry[0]) if entry else None

    def token_use(self, digest: str) -> bool:
        """Take one use of a minted token atomically."""
        with self._lock:
            return self._use_token(digest)

    def _token_usable(self, digest: str) -> bool:
        entry = self._live_token(digest)
        return entry is not None and entry[0]["uses"] != "0"

    def _use_token(self, digest: str) -> bool:
        entry = self._live_token(digest)
        if entry is None:
            return False
        uses = int(entry[0]["uses"])
        if uses > 0:
            entry[0]["uses"] = str(uses - 1)
        return uses != 0

    def token_put(self, digest: str, fields: dict[str, str], expires_at: int) -> None:
        """Store a minted token."""
        with self._lock:
            self._tokens[digest] = (dict(fields), expires_at)

    def token_list(self) -> list[tuple[str, dict[str, str]]]:
        """Every live minted token."""
        with self._lock:
            live = [(d, self._live_token(d)) for d in list(self._tokens)]
            return [(d, dict(entry[0])) for d, entry in live if entry]

    def token_delete(self, digest: str) -> bool:
        """Revoke a minted token."""
        with self._lock:
            return self._tokens.pop(digest, None) is not None

    def _live_token(self, digest: str) -> tuple[dict[str, str], int] | None:
        entry = self._tokens.get(digest)
        if entry is not None and entry[1] and entry[1] <= time.time():
            del self._tokens[digest]
            return None
        return entry

    def document_get(self, key: str) -> str | None:
        """A cached document entry, or ``None`` (also once expired)."""
        with self._lock:
            entry = self._documents.get(key)
            if entry is not None and entry[1] <= _now_ms():
                del self._documents[key]
                return None
            return None if entry is None else entry[0]

    def document_put(self, key: str, entry: str, ttl_ms: int) -> None:
        """Cache a document entry for ``ttl_ms``."""
        with self._lock:
            if len(self._documents) >= _PRUNE_AT:
                now = _now_ms()
                for stale in [k for k, (_, until) in self._documents.items() if until <= now]:
                    del self._documents[stale]
            self._documents[key] = (entry, _now_ms() + ttl_ms)

    def document_delete(self, key: str) -> bool:
        """Evict a cached document entry."""
        with self._lock:
            return self._documents.pop(key, None) is not None

    def document_list(self) -> list[tuple[str, str]]:
        """Every live cached document entry."""
        with self._lock:
            now = _now_ms()
            return [(k, entry) for k, (entry, until) in self._documents.items() if until > now]

    def client_records(
        self, progress: Callable[[int], object] | None = None
    ) -> list[tuple[str, int | None]]:
        """Every live client record with its last noted use, without noting one."""
        with self._lock:
            live = [(self._live(key), self._used.get(key)) for key in list(self._records)]
        found = [(record, used) for record, used in live if record is not None]
        if progress is not None:
            progress(len(found))
        return found

    def close(self) -> None:
        """Nothing to release."""


@shorthands
class AsyncMemoryBackend:
    """The embedded store behind the async interface; operations never block."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        self.prefix = backend.prefix

    async def run(self, op: Op[T]) -> T:
        """Execute one storage operation on the embedded store."""
        return self.backend.run(op)

    async def close(self) -> None:
        """Nothing to release."""
