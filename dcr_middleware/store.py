"""The client store API for the authorization server: look registered clients up.

:class:`ClientStore` (blocking) and :class:`AsyncClientStore` (asyncio) have the same methods;
each is a thin shell over a storage backend with the decisions in
:class:`~dcr_middleware.core.client.RegisteredClient`.
"""

from __future__ import annotations

import dataclasses
import re
import time

from .core.client import RegisteredClient
from .core.errors import ClientCapError, ConflictError, InvalidClientError, StorageError
from .core.ratelimit import Limit, RateDecision
from .core.settings import Settings
from .core.tokens import unknown_token
from .storage.base import AsyncBackend, Attempt, Attempted, Lifetime, Outcome, SyncBackend
from .storage.memory import AsyncMemoryBackend, MemoryBackend

# Identifiers this library issues are base64url; anything else cannot name a stored client and is
# answered without a storage round trip (and never reaches a Redis key name).
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")


def _known_shape(client_id: str) -> bool:
    return isinstance(client_id, str) and _CLIENT_ID.match(client_id) is not None


def _collision(client_id: str) -> StorageError:
    return StorageError(f"client id {client_id} is already taken; retry the registration")


def _holds_a_place(record: str) -> bool:
    # Only clients stored while DCR_MAX_CLIENTS was set were counted; only they give one back.
    return RegisteredClient.from_record(record).counted


def _conflict() -> ConflictError:
    return ConflictError("the client was changed by another request; read it and try again")


def _cap_reached(cap: int) -> ClientCapError:
    return ClientCapError(f"this server accepts no more registrations ({cap} clients)")


def _unknown_client() -> InvalidClientError:
    return InvalidClientError("client authentication failed")


def _attempt(
    settings: Settings,
    client: RegisteredClient,
    bucket: str,
    limits: tuple[Limit, ...],
    token: str | None,
) -> Attempt:
    cap = settings.max_clients
    if cap:  # only clients stored under a cap give a place back when deleted
        client = dataclasses.replace(client, counted=True)
    ttl_ms = settings.client_idle_ttl * 1000
    return Attempt(client.client_id, client.to_record(), bucket, limits, token, cap, ttl_ms)


def _settle(attempted: Attempted, attempt: Attempt) -> Attempted:
    """Raise for the outcomes that refuse (the rate-limit refusal is the caller's to answer)."""
    if attempted.outcome is Outcome.CAPPED:
        raise _cap_reached(attempt.cap)
    if attempted.outcome is Outcome.TAKEN:
        raise _collision(attempt.client_id)
    if attempted.outcome is Outcome.TOKEN_SPENT:
        raise unknown_token()
    return attempted


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


class ClientStore:
    """Blocking access to registered clients (for WSGI authorization servers)."""

    def __init__(self, settings: Settings | None = None, *, backend: SyncBackend | None = None):
        self.settings = Settings.from_env() if settings is None else settings
        self.backend = sync_backend(self.settings) if backend is None else backend
        self.lifetime = Lifetime.of(self.settings.client_idle_ttl)

    @staticmethod
    def known_id(client_id: str) -> bool:
        """Whether ``client_id`` has the shape of an id this library issues."""
        return _known_shape(client_id)

    def get(self, client_id: str) -> RegisteredClient | None:
        """The registered client, or ``None`` when no such client exists."""
        loaded = self.load(client_id)
        return None if loaded is None else loaded[0]

    def load(self, client_id: str, *, note_use: bool = True) -> tuple[RegisteredClient, str] | None:
        """The client and its stored record (for compare-and-set), or ``None``.

        The lookup counts as a use of the client (renewing ``DCR_CLIENT_IDLE_TTL``, at most once
        per refresh interval) unless ``note_use`` is false: a caller that still has to check
        who is asking notes the use with :meth:`note_use` once that check passed.
        """
        if not _known_shape(client_id):
            return None
        if note_use:
            record = self.backend.lookup(client_id, self.lifetime)
        else:
            record, _ = self.backend.read(client_id)
        return None if record is None else (RegisteredClient.from_record(record), record)

    def note_use(self, client_id: str) -> None:
        """Note that ``client_id`` was used (renewing its idle TTL when the last note is older
        than the refresh interval; a no-op write otherwise)."""
        if _known_shape(client_id):
            self.backend.lookup(client_id, self.lifetime)

    def replace(self, client_id: str, record: str, new: RegisteredClient | None) -> None:
        """Replace (``None``: delete) a client if its stored record is still ``record``."""
        new_record = None if new is None else new.to_record()
        ttl_ms = self.lifetime.idle_ttl_ms
        if not self.backend.replace(client_id, record, new_record, ttl_ms):
            raise _conflict()
        if new is None and _holds_a_place(record):
            self.backend.release()

    def authenticate(self, client_id: str, client_secret: str) -> RegisteredClient | None:
        """The client when ``client_secret`` is its current, unexpired secret; else ``None``.

        Only a successful authentication counts as a use of the client: a wrong secret cannot
        keep an abandoned client alive. One round trip, two when the use is due to be noted.
        """
        if not _known_shape(client_id):
            return None
        record, used = self.backend.read(client_id)
        client = None if record is None else RegisteredClient.from_record(record)
        if client is None or not client.check_secret(client_secret):
            return None
        if self.lifetime.due(used, int(time.time() * 1000)):
            self.backend.lookup(client_id, self.lifetime)
        return client

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
        raises :class:`ClientCapError`, :class:`StorageError` or ``InvalidTokenError``.
        """
        attempt = _attempt(self.settings, client, bucket, limits, token)
        return _settle(self.backend.register(attempt), attempt)

    def require(self, client_id: str, client_secret: str | None = None) -> RegisteredClient:
        """The client (authenticated when ``client_secret`` is given), or
        :class:`~dcr_middleware.core.errors.InvalidClientError` (``401 invalid_client``)."""
        if client_secret is None:
            client = self.get(client_id)
        else:
            client = self.authenticate(client_id, client_secret)
        if client is None:
            raise _unknown_client()
        return client

    def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one registration attempt to a rate-limit bucket (used by the middleware)."""
        return self.backend.hit(bucket, limits)

    def close(self) -> None:
        """Release the backend's connections."""
        self.backend.close()


class AsyncClientStore:
    """Asyncio access to registered clients (for ASGI authorization servers)."""

    def __init__(self, settings: Settings | None = None, *, backend: AsyncBackend | None = None):
        self.settings = Settings.from_env() if settings is None else settings
        self.backend = async_backend(self.settings) if backend is None else backend
        self.lifetime = Lifetime.of(self.settings.client_idle_ttl)

    async def get(self, client_id: str) -> RegisteredClient | None:
        """The registered client, or ``None`` when no such client exists."""
        loaded = await self.load(client_id)
        return None if loaded is None else loaded[0]

    async def load(
        self, client_id: str, *, note_use: bool = True
    ) -> tuple[RegisteredClient, str] | None:
        """The client and its stored record (for compare-and-set), or ``None``.

        The lookup counts as a use of the client (renewing ``DCR_CLIENT_IDLE_TTL``, at most once
        per refresh interval) unless ``note_use`` is false: a caller that still has to check
        who is asking notes the use with :meth:`note_use` once that check passed.
        """
        if not _known_shape(client_id):
            return None
        if note_use:
            record = await self.backend.lookup(client_id, self.lifetime)
        else:
            record, _ = await self.backend.read(client_id)
        return None if record is None else (RegisteredClient.from_record(record), record)

    async def note_use(self, client_id: str) -> None:
        """Note that ``client_id`` was used (renewing its idle TTL when the last note is older
        than the refresh interval; a no-op write otherwise)."""
        if _known_shape(client_id):
            await self.backend.lookup(client_id, self.lifetime)

    async def replace(self, client_id: str, record: str, new: RegisteredClient | None) -> None:
        """Replace (``None``: delete) a client if its stored record is still ``record``."""
        new_record = None if new is None else new.to_record()
        ttl_ms = self.lifetime.idle_ttl_ms
        if not await self.backend.replace(client_id, record, new_record, ttl_ms):
            raise _conflict()
        if new is None and _holds_a_place(record):
            await self.backend.release()

    async def authenticate(self, client_id: str, client_secret: str) -> RegisteredClient | None:
        """The client when ``client_secret`` is its current, unexpired secret; else ``None``.

        Only a successful authentication counts as a use of the client: a wrong secret cannot
        keep an abandoned client alive. One round trip, two when the use is due to be noted.
        """
        if not _known_shape(client_id):
            return None
        record, used = await self.backend.read(client_id)
        client = None if record is None else RegisteredClient.from_record(record)
        if client is None or not client.check_secret(client_secret):
            return None
        if self.lifetime.due(used, int(time.time() * 1000)):
            await self.backend.lookup(client_id, self.lifetime)
        return client

    async def create(self, client: RegisteredClient) -> None:
        """Store a new client atomically; never overwrites another client (see
        :meth:`ClientStore.create`)."""
        await self.register(client)

    async def register(
        self,
        client: RegisteredClient,
        *,
        bucket: str = "",
        limits: tuple[Limit, ...] = (),
        token: str | None = None,
    ) -> Attempted:
        """The middleware's registration step, in one atomic step (see
        :meth:`ClientStore.register`)."""
        attempt = _attempt(self.settings, client, bucket, limits, token)
        return _settle(await self.backend.register(attempt), attempt)

    async def require(self, client_id: str, client_secret: str | None = None) -> RegisteredClient:
        """The client (authenticated when ``client_secret`` is given), or
        :class:`~dcr_middleware.core.errors.InvalidClientError` (``401 invalid_client``)."""
        if client_secret is None:
            client = await self.get(client_id)
        else:
            client = await self.authenticate(client_id, client_secret)
        if client is None:
            raise _unknown_client()
        return client

    async def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one registration attempt to a rate-limit bucket (used by the middleware)."""
        return await self.backend.hit(bucket, limits)

    async def close(self) -> None:
        """Release the backend's connections."""
        await self.backend.close()
