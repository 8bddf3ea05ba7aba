"""Backend protocols and key naming shared by every store."""

from __future__ import annotations

import time
from typing import Protocol, TypeVar

from ..core.ops import Attempt, Attempted, Lifetime, Op, Outcome
from ..core.ratelimit import Limit, RateDecision

__all__ = ["Attempt", "Attempted", "Lifetime", "Outcome"]  # described in core.ops

T = TypeVar("T")


def now_ms() -> int:
    """The app server's wall clock, in epoch ms: the time the Redis scripts decide rate limits
    at, as the embedded store does (``ratelimit.py`` says why not Redis ``TIME``)."""
    return int(time.time() * 1000)


def client_key(prefix: str, client_id: str) -> str:
    """The key of one client's record.

    The client id is the Redis Cluster hash tag (``{...}``), so every key about one client lives
    in one slot and a script may touch them together.
    """
    return f"{prefix}:client:{{{client_id}}}"


def used_key(prefix: str, client_id: str) -> str:
    """The key holding when a client was last looked up (epoch ms), in its record's slot."""
    return f"{prefix}:used:{{{client_id}}}"


def rate_key(prefix: str, bucket: str) -> str:
    """The key of one rate-limit bucket (``ip:...`` or ``token:...``), its own hash tag."""
    return f"{prefix}:rate:{{{bucket}}}"


def token_key(prefix: str, digest: str) -> str:
    """The key of one minted initial access token, named by its SHA-256 digest."""
    return f"{prefix}:token:{{{digest}}}"


def counter_key(prefix: str) -> str:
    """The key counting stored clients, for ``DCR_MAX_CLIENTS``."""
    return f"{prefix}:{{client-count}}"


class SyncBackend(Protocol):
    """Blocking record storage, used by the WSGI middleware and :class:`ClientStore`."""

    prefix: str

    def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        ...

    def create(self, client_id: str, record: str, idle_ttl_ms: int = 0) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one; True when stored."""
        ...

    def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        ...

    def lookup(self, client_id: str, lifetime: Lifetime) -> str | None:
        """The stored record, noting the use (renewing its idle TTL) at most once per
        ``lifetime.refresh_ms``."""
        ...

    def read(self, client_id: str) -> tuple[str | None, int | None]:
        """The stored record and its last noted use (epoch ms), without noting a use."""
        ...

    def replace(
        self, client_id: str, expected: str, record: str | None, idle_ttl_ms: int = 0
    ) -> bool:
        """Compare-and-set: replace (``None``: delete) only if ``expected`` is still stored."""
        ...

    def register(self, attempt: Attempt) -> Attempted:
        """Decide and store one registration atomically (see :class:`Attempt`)."""
        ...

    def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one request to ``bucket`` if every limit allows it (GCRA, atomically)."""
        ...

    def reserve(self, cap: int) -> bool:
        """Take one place under the client cap; False when ``cap`` places are taken."""
        ...

    def release(self) -> None:
        """Give back a place (a create failed, a client was deleted); never below zero."""
        ...

    def token_get(self, digest: str) -> dict[str, str] | None:
        """A minted token's fields (``uses``, ``policy``, ``label``...), or ``None``."""
        ...

    def token_use(self, digest: str) -> bool:
        """Take one use of a minted token atomically; False when used up, expired or unknown."""
        ...

    def token_put(self, digest: str, fields: dict[str, str], expires_at: int) -> None:
        """Store a minted token (``expires_at`` in epoch seconds, 0 for never)."""
        ...

    def token_list(self) -> list[tuple[str, dict[str, str]]]:
        """Every minted token as (digest, fields)."""
        ...

    def token_delete(self, digest: str) -> bool:
        """Revoke a minted token; False when there was none."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class AsyncBackend(Protocol):
    """Asynchronous record storage, used by the ASGI middleware and :class:`AsyncClientStore`."""

    prefix: str

    async def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        ...

    async def create(self, client_id: str, record: str, idle_ttl_ms: int = 0) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one; True when stored."""
        ...

    async def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        ...

    async def lookup(self, client_id: str, lifetime: Lifetime) -> str | None:
        """The stored record, noting the use (renewing its idle TTL) at most once per
        ``lifetime.refresh_ms``."""
        ...

    async def read(self, client_id: str) -> tuple[str | None, int | None]:
        """The stored record and its last noted use (epoch ms), without noting a use."""
        ...

    async def replace(
        self, client_id: str, expected: str, record: str | None, idle_ttl_ms: int = 0
    ) -> bool:
        """Compare-and-set: replace (``None``: delete) only if ``expected`` is still stored."""
        ...

    async def register(self, attempt: Attempt) -> Attempted:
        """Decide and store one registration atomically (see :class:`Attempt`)."""
        ...

    async def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one request to ``bucket`` if every limit allows it (GCRA, atomically)."""
        ...

    async def reserve(self, cap: int) -> bool:
        """Take one place under the client cap; False when ``cap`` places are taken."""
        ...

    async def release(self) -> None:
        """Give back a place (a create failed, a client was deleted); never below zero."""
        ...

    async def token_get(self, digest: str) -> dict[str, str] | None:
        """A minted token's fields (``uses``, ``policy``, ``label``...), or ``None``."""
        ...

    async def token_use(self, digest: str) -> bool:
        """Take one use of a minted token atomically; False when used up, expired or unknown."""
        ...

    async def token_put(self, digest: str, fields: dict[str, str], expires_at: int) -> None:
        """Store a minted token (``expires_at`` in epoch seconds, 0 for never)."""
        ...

    async def token_list(self) -> list[tuple[str, dict[str, str]]]:
        """Every minted token as (digest, fields)."""
        ...

    async def token_delete(self, digest: str) -> bool:
        """Revoke a minted token; False when there was none."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
