"""The embedded in-process store, used when ``DCR_REDIS_URL`` is unset.

It lives in one process: clients are lost on restart and are not shared between gunicorn or
uvicorn workers. It is meant for the demo, tests and single-process development servers.
Stores with the same key prefix in one process share their records, so an authorization server
in the same process sees the clients its middleware registered.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar

from ..ratelimit import Limit, RateDecision, decide
from .base import client_key

_PRUNE_AT = 10_000  # buckets held before idle ones are dropped


class MemoryBackend:
    """Thread-safe dict of records (the same contract as the Redis backends)."""

    _shared: ClassVar[dict[str, MemoryBackend]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, prefix: str = "dcr") -> None:
        self.prefix = prefix
        self._records: dict[str, str] = {}
        self._buckets: dict[str, dict[str, int]] = {}
        self._reserved = 0
        self._tokens: dict[str, tuple[dict[str, str], int]] = {}
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, prefix: str) -> MemoryBackend:
        """The process-wide store for ``prefix``."""
        with cls._shared_lock:
            return cls._shared.setdefault(prefix, cls(prefix))

    def create(self, client_id: str, record: str) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one."""
        key = client_key(self.prefix, client_id)
        with self._lock:
            current = self._records.setdefault(key, record)
        return current == record

    def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        return self._records.get(client_key(self.prefix, client_id))

    def replace(self, client_id: str, expected: str, record: str | None) -> bool:
        """Compare-and-set one record (``None`` deletes it)."""
        key = client_key(self.prefix, client_id)
        with self._lock:
            if self._records.get(key) != expected:
                return False
            if record is None:
                del self._records[key]
            else:
                self._records[key] = record
            return True

    def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one request to ``bucket`` if every limit allows it (GCRA)."""
        now_ms = int(time.time() * 1000)
        with self._lock:
            tats = self._buckets.get(bucket, {})
            decision, new_tats = decide([tats.get(lim.field) for lim in limits], now_ms, limits)
            if new_tats is not None:
                if len(self._buckets) >= _PRUNE_AT:
                    self._prune(now_ms)
                self._buckets[bucket] = {
                    lim.field: tat for lim, tat in zip(limits, new_tats, strict=True)
                }
        return decision

    def _prune(self, now_ms: int) -> None:
        # A bucket whose every TAT has passed is the same as no bucket (what Redis's PEXPIRE
        # does for the Redis store): drop those, so memory tracks active clients only.
        idle = [b for b, tats in self._buckets.items() if max(tats.values()) <= now_ms]
        for bucket in idle:
            del self._buckets[bucket]

    def reserve(self, cap: int) -> bool:
        """Take one place under the client cap."""
        with self._lock:
            if self._reserved >= cap:
                return False
            self._reserved += 1
            return True

    def release(self) -> None:
        """Give back a place (a create failed, a client was deleted); never below zero."""
        with self._lock:
            self._reserved = max(0, self._reserved - 1)

    def token_get(self, digest: str) -> dict[str, str] | None:
        """A minted token's fields, or ``None`` (also once expired)."""
        with self._lock:
            entry = self._live_token(digest)
            return dict(entry[0]) if entry else None

    def token_use(self, digest: str) -> bool:
        """Take one use of a minted token atomically."""
        with self._lock:
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

    def close(self) -> None:
        """Nothing to release."""


class AsyncMemoryBackend:
    """The embedded store behind the async interface; operations never block."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend

    async def create(self, client_id: str, record: str) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one."""
        return self.backend.create(client_id, record)

    async def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        return self.backend.get(client_id)

    async def replace(self, client_id: str, expected: str, record: str | None) -> bool:
        """Compare-and-set one record (``None`` deletes it)."""
        return self.backend.replace(client_id, expected, record)

    async def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one request to ``bucket`` if every limit allows it (GCRA)."""
        return self.backend.hit(bucket, limits)

    async def reserve(self, cap: int) -> bool:
        """Take one place under the client cap."""
        return self.backend.reserve(cap)

    async def release(self) -> None:
        """Give back a place (a create failed, a client was deleted); never below zero."""
        self.backend.release()

    async def token_get(self, digest: str) -> dict[str, str] | None:
        """A minted token's fields, or ``None``."""
        return self.backend.token_get(digest)

    async def token_use(self, digest: str) -> bool:
        """Take one use of a minted token atomically."""
        return self.backend.token_use(digest)

    async def token_put(self, digest: str, fields: dict[str, str], expires_at: int) -> None:
        """Store a minted token."""
        self.backend.token_put(digest, fields, expires_at)

    async def token_list(self) -> list[tuple[str, dict[str, str]]]:
        """Every live minted token."""
        return self.backend.token_list()

    async def token_delete(self, digest: str) -> bool:
        """Revoke a minted token."""
        return self.backend.token_delete(digest)

    async def close(self) -> None:
        """Nothing to release."""
