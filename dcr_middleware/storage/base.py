"""Backend protocols, the per-operation methods, and key naming shared by every store."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..core.ops import OPERATIONS, Attempt, Attempted, Lifetime, Op, Outcome

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


def document_key(prefix: str, key: str) -> str:
    """The key of one cached Client ID Metadata Document (``key``: a digest of its URL)."""
    return f"{prefix}:cimd:{{{key}}}"


def counter_key(prefix: str) -> str:
    """The key counting stored clients, for ``DCR_MAX_CLIENTS``."""
    return f"{prefix}:{{client-count}}"


class SyncBackend(Protocol):
    """Blocking record storage, used by the WSGI middleware and :class:`ClientStore`.

    Every operation of :mod:`dcr_middleware.core.ops` goes through :meth:`run`; the backends
    also have a method per operation (:func:`shorthands`), for tests and interactive use."""

    prefix: str

    def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class AsyncBackend(Protocol):
    """Asynchronous record storage, used by the ASGI middleware and :class:`AsyncClientStore`
    (the same operations as :class:`SyncBackend`, awaited)."""

    prefix: str

    async def run(self, op: Op[T]) -> T:
        """Execute one storage operation (see :mod:`dcr_middleware.core.ops`)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


B = TypeVar("B", bound=type)


def shorthands(cls: B) -> B:
    """Give a backend class one method per storage operation, named after it, that runs it:
    ``backend.hit(bucket, limits)`` is ``backend.run(Hit(bucket, limits))``, awaitable on an
    asyncio backend. Meant for tests and interactive use: the package itself calls ``run``
    with the typed operation (mypy does not see these methods)."""
    for op in OPERATIONS:
        setattr(cls, op.method, _shorthand(cls, op))
    return cls


def _shorthand(cls: type, op: type[Op[Any]]) -> Callable[..., Any]:
    def shorthand(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self.run(op(*args, **kwargs))

    shorthand.__name__ = op.method
    shorthand.__qualname__ = f"{cls.__qualname__}.{op.method}"
    shorthand.__doc__ = f"``run({op.__name__}(...))``: {op.__doc__}"
    return shorthand
