"""The client store API for the authorization server: look registered clients up.

:class:`ClientStore` (blocking) and :class:`AsyncClientStore` (asyncio) have the same methods.
Each method drives one flow of :mod:`dcr_middleware.core.client_flows` (written once) over a
storage backend; the decisions are in :class:`~dcr_middleware.core.client.RegisteredClient`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from ._single_flight import AsyncSingleFlight, SingleFlight
from .core import client_flows
from .core.cimd import Documents, Fetch, ResolveDocument
from .core.client import RegisteredClient
from .core.errors import ConfigurationError
from .core.events import Observer
from .core.ops import Attempted, Flow, Hit, Lifetime
from .core.ratelimit import Limit, RateDecision
from .core.settings import Settings
from .drivers import arun, run
from .storage.base import AsyncBackend, SyncBackend
from .storage.memory import AsyncMemoryBackend, MemoryBackend

T = TypeVar("T")
B = TypeVar("B", SyncBackend, AsyncBackend)

logger = logging.getLogger("dcr_middleware")


def sync_backend(settings: Settings) -> SyncBackend:
    """The backend ``settings`` selects: Redis when ``DCR_REDIS_URL`` is set, else embedded."""
    if not settings.uses_redis:
        return MemoryBackend.shared(settings.key_prefix)
    from .storage.redis import RedisBackend

    return RedisBackend(settings)


def async_backend(settings: Settings) -> AsyncBackend:
    """The asyncio backend ``settings`` selects (same rule as :func:`sync_backend`)."""
    if not settings.uses_redis:
        return AsyncMemoryBackend(MemoryBackend.shared(settings.key_prefix))
    from .storage.redis import AsyncRedisBackend

    return AsyncRedisBackend(settings)


def warn_if_embedded(settings: Settings) -> None:
    """Say at startup that the embedded store is per process (SPEC §4)."""
    if not settings.uses_redis:
        logger.warning(
            "DCR_REDIS_URL is not set: clients are kept in this process only (lost on restart, "
            "not shared between workers); set DCR_REDIS_URL for production"
        )


def _fetcher(settings: Settings, blocking: bool) -> Any:
    """The executor of the ``Fetch`` operation (``DCR_CIMD`` or ``DCR_SECTOR_IDENTIFIER_URIS``;
    imports httpx, extra ``cimd``)."""
    try:
        from . import fetch
    except ImportError as exc:
        name = "DCR_CIMD" if settings.cimd else "DCR_SECTOR_IDENTIFIER_URIS"
        raise ConfigurationError([f"{name}: {exc}"]) from exc
    if blocking:
        return lambda op: fetch.fetch_json(op.url, op.policy)
    return lambda op: fetch.afetch_json(op.url, op.policy)


class _Store(Generic[B]):
    """What both stores share: settings, backend, the clients' lifetime and, with ``DCR_CIMD``,
    the resolution of URL client ids (``observer`` hears its outcomes)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: B | None = None,
        observer: Observer | None = None,
    ) -> None:
        settings = Settings.from_env() if settings is None else settings
        self.settings = settings
        self.backend: B = self._backend_for(settings) if backend is None else backend
        self.lifetime = Lifetime.of(settings.client_idle_ttl)
        self.documents = Documents.from_settings(settings, observer) if settings.cimd else None
        blocking = isinstance(self, ClientStore)
        self.fetcher: Any = (
            _fetcher(settings, blocking)
            if settings.cimd or settings.sector_identifier_uris
            else None
        )
        self._shared: Any = SingleFlight() if blocking else AsyncSingleFlight()
        # What executes a flow's operations: the backend, or with DCR_CIMD also the document
        # resolutions and fetches (the middlewares run their flows with it too).
        self.execute: Callable[[Any], Any] = (
            self.backend.run if self.fetcher is None else self._execute
        )

    def _execute(self, op: Any) -> Any:
        # With DCR_CIMD a lookup also asks for a document (once per URL at a time, see
        # _resolve) and its fetch, beside the storage operations.
        if isinstance(op, ResolveDocument):
            return self._resolve(op.url)
        return self.fetcher(op) if isinstance(op, Fetch) else self.backend.run(op)

    def _resolve(self, url: str) -> Any:
        # The result, or for the asyncio store the awaitable the driver awaits.
        documents = cast(Documents, self.documents)
        return self._shared.do(url, lambda: self._run(documents.resolve(url)))

    def _run(self, flow: Flow[T]) -> Any:
        raise NotImplementedError

    @staticmethod
    def _backend_for(settings: Settings) -> B:
        raise NotImplementedError

    @staticmethod
    def known_id(client_id: str) -> bool:
        """Whether ``client_id`` has the shape of an id this library issues."""
        return client_flows.known_id(client_id)


class ClientStore(_Store[SyncBackend]):
    """Blocking access to registered clients (for WSGI authorization servers)."""

    @staticmethod
    def _backend_for(settings: Settings) -> SyncBackend:
        return sync_backend(settings)

    def _run(self, flow: Flow[T]) -> T:
        return run(flow, self.execute)

    def get(self, client_id: str) -> RegisteredClient | None:
        """The registered client, or ``None`` when no such client exists.

        The lookup counts as a use of the client (renewing ``DCR_CLIENT_IDLE_TTL``, at most once
        per refresh interval)."""
        return self._run(client_flows.get(client_id, self.lifetime, self.documents))

    def load(self, client_id: str, *, note_use: bool = True) -> tuple[RegisteredClient, str] | None:
        """The client and its stored record (for compare-and-set), or ``None``.

        The lookup counts as a use of the client unless ``note_use`` is false: a caller that
        still has to check who is asking notes the use with :meth:`note_use` once that check
        passed."""
        return self._run(client_flows.load(client_id, self.lifetime, note_use=note_use))

    def note_use(self, client_id: str) -> None:
        """Note that ``client_id`` was used (renewing its idle TTL when the last note is older
        than the refresh interval; a no-op write otherwise)."""
        self._run(client_flows.note_use(client_id, self.lifetime))

    def replace(self, client_id: str, record: str, new: RegisteredClient | None) -> None:
        """Replace (``None``: delete) a client if its stored record is still ``record``
        (:class:`~dcr_middleware.core.errors.ConflictError` otherwise)."""
        self._run(client_flows.replace(client_id, record, new, self.lifetime))

    def authenticate(self, client_id: str, client_secret: str) -> RegisteredClient | None:
        """The client when ``client_secret`` is its current, unexpired secret; else ``None``.

        Only a successful authentication counts as a use of the client: a wrong secret cannot
        keep an abandoned client alive. One round trip, two when the use is due to be noted.
        """
        return self._run(client_flows.authenticate(client_id, client_secret, self.lifetime))

    def require(self, client_id: str, client_secret: str | None = None) -> RegisteredClient:
        """The client (authenticated when ``client_secret`` is given), or
        :class:`~dcr_middleware.core.errors.InvalidClientError` (``401 invalid_client``)."""
        return self._run(
            client_flows.require(client_id, client_secret, self.lifetime, self.documents)
        )

    def create(self, client: RegisteredClient) -> None:
        """Store a new client atomically; never overwrites another client.

        Under ``DCR_MAX_CLIENTS`` a place is taken in the same atomic step (``403`` when none is
        left); with ``DCR_CLIENT_IDLE_TTL`` the record expires unless it is used.
        """
        self.register(client)

    def register(
        self,
        client: RegisteredClient,
        *,
        bucket: str = "",
        limits: tuple[Limit, ...] = (),
        token: str | None = None,
    ) -> Attempted:
        """The middleware's registration step: charge ``bucket`` under ``limits``, take a use of
        the minted token ``token`` (a digest), a place under the cap, and store ``client``, all
        in one atomic step (one Redis round trip where the keys share a node).

        Returns the outcome (``Outcome.LIMITED`` with the refusing decision, or ``CREATED``);
        raises :class:`~dcr_middleware.core.errors.ClientCapError`,
        :class:`~dcr_middleware.core.errors.StorageError` or ``InvalidTokenError``.
        """
        flow = client_flows.register(
            self.settings, client, bucket=bucket, limits=limits, token=token
        )
        return self._run(flow)

    def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one registration attempt to a rate-limit bucket (used by the middleware)."""
        return self.backend.run(Hit(bucket, limits))

    def close(self) -> None:
        """Release the backend's connections."""
        self.backend.close()


class AsyncClientStore(_Store[AsyncBackend]):
    """Asyncio access to registered clients (for ASGI authorization servers): the methods of
    :class:`ClientStore`, awaited."""

    @staticmethod
    def _backend_for(settings: Settings) -> AsyncBackend:
        return async_backend(settings)

    async def _run(self, flow: Flow[T]) -> T:
        return await arun(flow, self.execute)

    async def get(self, client_id: str) -> RegisteredClient | None:
        """See :meth:`ClientStore.get`."""
        return await self._run(client_flows.get(client_id, self.lifetime, self.documents))

    async def load(
        self, client_id: str, *, note_use: bool = True
    ) -> tuple[RegisteredClient, str] | None:
        """See :meth:`ClientStore.load`."""
        return await self._run(client_flows.load(client_id, self.lifetime, note_use=note_use))

    async def note_use(self, client_id: str) -> None:
        """See :meth:`ClientStore.note_use`."""
        await self._run(client_flows.note_use(client_id, self.lifetime))

    async def replace(self, client_id: str, record: str, new: RegisteredClient | None) -> None:
        """See :meth:`ClientStore.replace`."""
        await self._run(client_flows.replace(client_id, record, new, self.lifetime))

    async def authenticate(self, client_id: str, client_secret: str) -> RegisteredClient | None:
        """See :meth:`ClientStore.authenticate`."""
        return await self._run(client_flows.authenticate(client_id, client_secret, self.lifetime))

    async def require(self, client_id: str, client_secret: str | None = None) -> RegisteredClient:
        """See :meth:`ClientStore.require`."""
        return await self._run(
            client_flows.require(client_id, client_secret, self.lifetime, self.documents)
        )

    async def create(self, client: RegisteredClient) -> None:
        """See :meth:`ClientStore.create`."""
        await self.register(client)

    async def register(
        self,
        client: RegisteredClient,
        *,
        bucket: str = "",
        limits: tuple[Limit, ...] = (),
        token: str | None = None,
    ) -> Attempted:
        """See :meth:`ClientStore.register`."""
        flow = client_flows.register(
            self.settings, client, bucket=bucket, limits=limits, token=token
        )
        return await self._run(flow)

    async def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """See :meth:`ClientStore.hit`."""
        return await self.backend.run(Hit(bucket, limits))

    async def close(self) -> None:
        """Release the backend's connections."""
        await self.backend.close()
