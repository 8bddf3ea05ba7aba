"""The operations a flow asks for, each described once: what it is called, what it takes and what
it returns.

A *flow* is a generator that yields operations and receives their results (``x = yield op``);
it returns its answer. :mod:`dcr_middleware.drivers` runs flows: one blocking driver, one
asyncio driver, each a few lines. Storage operations are executed by a backend's ``run``
(:mod:`dcr_middleware.storage`): the embedded store under a lock, Redis as one Lua script where
the operation must be atomic. :class:`ReadBody` is answered by the middleware that runs the flow.

Nothing here does I/O: these are the descriptions, and the data that crosses the storage
boundary (:class:`Attempt`, :class:`Attempted`, :class:`Lifetime`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from .ratelimit import Limit, RateDecision

T = TypeVar("T")

Flow = Generator[Any, Any, T]
"""A generator that yields operations, receives their results and returns a ``T``."""


class Op(Generic[T]):
    """A storage operation whose result is a ``T``; ``method`` names the backend method that
    executes it, called with the operation's fields in order."""

    __slots__ = ()
    method: ClassVar[str]
    __match_args__: ClassVar[tuple[str, ...]] = ()  # the dataclass's field names, in order

    def args(self) -> tuple[Any, ...]:
        """The fields, in declaration order: the arguments of ``method``."""
        return tuple([getattr(self, name) for name in self.__match_args__])


def ask(op: Op[T]) -> Generator[Op[T], Any, T]:
    """Yield ``op`` and return its result, typed: ``decision = yield from ask(Hit(...))``."""
    result: T = yield op
    return result


@dataclass(frozen=True, slots=True)
class ReadBody:
    """Read the request body (answered by the middleware: capped at ``DCR_MAX_BODY_BYTES``).

    A flow asks for it only once the request is admitted, so a refused request's body is never
    read."""


READ_BODY = ReadBody()


def read_body() -> Generator[ReadBody, Any, bytes]:
    """Ask for the request body: ``body = yield from read_body()``."""
    body: bytes = yield READ_BODY
    return body


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long an unused client lives, and how often a lookup may write to say it was used."""

    idle_ttl_ms: int = 0  # 0: clients never expire
    refresh_ms: int = 86_400_000

    def due(self, used_ms: int | None, now_ms: int) -> bool:
        """Whether a use seen at ``now_ms`` should be noted (the last one is old enough)."""
        return used_ms is None or now_ms - used_ms >= self.refresh_ms

    @classmethod
    def of(cls, idle_ttl_seconds: int) -> Lifetime:
        """Refresh at most every tenth of the TTL, and at least daily (see docs/storage.md)."""
        ttl_ms = idle_ttl_seconds * 1000
        return cls(ttl_ms, min(ttl_ms // 10, 86_400_000) if ttl_ms else 86_400_000)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One registration, decided atomically: the rate limit (``limits`` on ``bucket``), a use of
    the minted token ``token`` (a digest), a place under ``cap``, then the create."""

    client_id: str
    record: str
    bucket: str = ""
    limits: tuple[Limit, ...] = ()
    token: str | None = None
    cap: int = 0
    idle_ttl_ms: int = 0


class Outcome(enum.Enum):
    """How an :class:`Attempt` ended (the numbers are ``register.lua``'s replies)."""

    CREATED = 1
    LIMITED = 2
    CAPPED = 3
    TAKEN = 4  # the id holds another client
    TOKEN_SPENT = 5


@dataclass(frozen=True, slots=True)
class Attempted:
    """The outcome of an :class:`Attempt` and the rate decision, when a limit was checked."""

    outcome: Outcome
    decision: RateDecision | None = None


# The storage operations. Every backend executes each of them with the same meaning; the
# contract suite (tests/integration/test_store_contract.py) runs them on every store.


@dataclass(frozen=True, slots=True)
class Create(Op[bool]):
    """Store ``record`` unless ``client_id`` holds a different one; True when stored (also when
    it already holds this very record: a retried create is harmless)."""

    method: ClassVar[str] = "create"
    client_id: str
    record: str
    idle_ttl_ms: int = 0


@dataclass(frozen=True, slots=True)
class Get(Op["str | None"]):
    """The stored record, or ``None``; notes no use."""

    method: ClassVar[str] = "get"
    client_id: str


@dataclass(frozen=True, slots=True)
class Lookup(Op["str | None"]):
    """The stored record, noting the use (renewing its idle TTL) at most once per
    ``lifetime.refresh_ms``."""

    method: ClassVar[str] = "lookup"
    client_id: str
    lifetime: Lifetime


@dataclass(frozen=True, slots=True)
class Read(Op["tuple[str | None, int | None]"]):
    """The stored record and its last noted use (epoch ms), without noting a use."""

    method: ClassVar[str] = "read"
    client_id: str


@dataclass(frozen=True, slots=True)
class Replace(Op[bool]):
    """Compare-and-set: replace (``record=None``: delete) only if ``expected`` is still stored."""

    method: ClassVar[str] = "replace"
    client_id: str
    expected: str
    record: str | None
    idle_ttl_ms: int = 0


@dataclass(frozen=True, slots=True)
class Purge(Op[bool]):
    """Delete an idle client if neither its record nor its last use (``used``, epoch ms) changed
    since they were read."""

    method: ClassVar[str] = "purge"
    client_id: str
    record: str
    used: int | None


@dataclass(frozen=True, slots=True)
class Register(Op[Attempted]):
    """Decide and store one registration atomically (see :class:`Attempt`)."""

    method: ClassVar[str] = "register"
    attempt: Attempt


@dataclass(frozen=True, slots=True)
class Hit(Op[RateDecision]):
    """Charge one request to ``bucket`` if every limit allows it (GCRA, atomically)."""

    method: ClassVar[str] = "hit"
    bucket: str
    limits: tuple[Limit, ...]


@dataclass(frozen=True, slots=True)
class Reserve(Op[bool]):
    """Take one place under the client cap; False when ``cap`` places are taken."""

    method: ClassVar[str] = "reserve"
    cap: int


@dataclass(frozen=True, slots=True)
class Release(Op[None]):
    """Give back a place (a create failed, a client was deleted); never below zero."""

    method: ClassVar[str] = "release"


@dataclass(frozen=True, slots=True)
class TokenGet(Op["dict[str, str] | None"]):
    """A minted token's fields (``uses``, ``policy``, ``label``...), or ``None``."""

    method: ClassVar[str] = "token_get"
    digest: str


@dataclass(frozen=True, slots=True)
class TokenUse(Op[bool]):
    """Take one use of a minted token atomically; False when used up, expired or unknown."""

    method: ClassVar[str] = "token_use"
    digest: str


@dataclass(frozen=True, slots=True)
class TokenPut(Op[None]):
    """Store a minted token (``expires_at`` in epoch seconds, 0 for never)."""

    method: ClassVar[str] = "token_put"
    digest: str
    fields: dict[str, str]
    expires_at: int


@dataclass(frozen=True, slots=True)
class TokenList(Op["list[tuple[str, dict[str, str]]]"]):
    """Every minted token as (digest, fields)."""

    method: ClassVar[str] = "token_list"


@dataclass(frozen=True, slots=True)
class TokenDelete(Op[bool]):
    """Revoke a minted token; False when there was none."""

    method: ClassVar[str] = "token_delete"
    digest: str


@dataclass(frozen=True, slots=True)
class ClientRecords(Op["list[tuple[str, int | None]]"]):
    """Every stored client record with its last noted use (epoch ms, ``None`` when never),
    without noting a use: for the operator (``clients list``, ``clients purge``), not the
    request path. ``progress``, when given, is called with the number read so far after each
    batch."""

    method: ClassVar[str] = "client_records"
    progress: Callable[[int], object] | None = None


@dataclass(frozen=True, slots=True)
class ClientCount(Op[int]):
    """The places taken under the client cap (the ``DCR_MAX_CLIENTS`` counter): the stored
    client count of the metrics."""

    method: ClassVar[str] = "client_count"


@dataclass(frozen=True, slots=True)
class DocumentGet(Op["str | None"]):
    """A cached Client ID Metadata Document entry (JSON, see :mod:`.cimd`), or ``None``.

    ``key`` names the entry (a digest of the document's URL)."""

    method: ClassVar[str] = "document_get"
    key: str


@dataclass(frozen=True, slots=True)
class DocumentPut(Op[None]):
    """Cache a document entry for ``ttl_ms`` milliseconds (replacing the one there)."""

    method: ClassVar[str] = "document_put"
    key: str
    entry: str
    ttl_ms: int


@dataclass(frozen=True, slots=True)
class DocumentDelete(Op[bool]):
    """Evict a cached document entry; False when there was none."""

    method: ClassVar[str] = "document_delete"
    key: str


@dataclass(frozen=True, slots=True)
class DocumentList(Op["list[tuple[str, str]]"]):
    """Every cached document entry as (key, entry) (a SCAN: for the CLI, not the request path)."""

    method: ClassVar[str] = "document_list"


OPERATIONS: tuple[type[Op[Any]], ...] = (
    Create, Get, Lookup, Read, Replace, Purge, Register, Hit, Reserve, Release,
    TokenGet, TokenUse, TokenPut, TokenList, TokenDelete, ClientRecords, ClientCount,
    DocumentGet, DocumentPut, DocumentDelete, DocumentList,
)  # fmt: skip
"""Every storage operation, in the order the backends document them."""
