"""The client store API for the authorization server: look registered clients up.

:class:`ClientStore` (blocking) and :class:`AsyncClientStore` (asyncio) have the same methods;
each is a thin shell over a storage backend with the decisions in
:class:`~dcr_middleware.client.RegisteredClient`.
"""

from __future__ import annotations

import dataclasses
import re

from .client import RegisteredClient
from .errors import ClientCapError, ConflictError, StorageError
from .ratelimit import Limit, RateDecision
from .settings import Settings
from .storage.base import AsyncBackend, SyncBackend
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


def sync_backend(settings: Settings) -> SyncBackend:
    """The backend ``settings`` selects: Redis when ``DCR_REDIS_URL`` is set, else embedded."""
    if settings.redis_url is None:
        return MemoryBackend.shared(settings.key_prefix)
    from .storage.redis import RedisBackend

    return RedisBackend(settings)


def async_backend(settings: Settings) -> AsyncBackend:
    """The asyncio backend ``settings`` selects (same rule as :func:`sync_backend`)."""
    if settings.redis_url is None:
        return AsyncMemoryBackend(MemoryBackend.shared(settings.key_prefix))
    from .storage.redis import AsyncRedisBackend

    return AsyncRedisBackend(settings)


class ClientStore:
    """Blocking access to registered clients (for WSGI authorization servers)."""

    def __init__(self, settings: Settings | None = None, *, backend: SyncBackend | None = None):
        self.settings = Settings.from_env() if settings is None else settings
        self.backend = sync_backend(self.settings) if backend is None else backend

    def get(self, client_id: str) -> RegisteredClient | None:
        """The registered client, or ``None`` when no such client exists."""
        loaded = self.load(client_id)
        return None if loaded is None else loaded[0]

    def load(self, client_id: str) -> tuple[RegisteredClient, str] | None:
        """The client and its stored record (for compare-and-set), or ``None``."""
        if not _known_shape(client_id):
            return None
        record = self.backend.get(client_id)
        return None if record is None else (RegisteredClient.from_record(record), record)

    def replace(self, client_id: str, record: str, new: RegisteredClient | None) -> None:
        """Replace (``None``: delete) a client if its stored record is still ``record``."""
        if not self.backend.replace(client_id, record, None if new is None else new.to_record()):
            raise _conflict()
        if new is None and _holds_a_place(record):
            self.backend.release()

    def authenticate(self, client_id: str, client_secret: str) -> RegisteredClient | None:
        """The client when ``client_secret`` is its current, unexpired secret; else ``None``."""
        client = self.get(client_id)
        if client is None or not client.check_secret(client_secret):
            return None
        return client

    def create(self, client: RegisteredClient) -> None:
        """Store a new client atomically; never overwrites another client.

        Under ``DCR_MAX_CLIENTS`` a place is taken first, atomically, and given back if the
        create fails.
        """
        cap = self.settings.max_clients
        if cap and not self.backend.reserve(cap):
            raise _cap_reached(cap)
        if cap:
            client = dataclasses.replace(client, counted=True)
        try:
            if not self.backend.create(client.client_id, client.to_record()):
                raise _collision(client.client_id)
        except StorageError:
            if cap:
                self.backend.release()
            raise

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

    async def get(self, client_id: str) -> RegisteredClient | None:
        """The registered client, or ``None`` when no such client exists."""
        loaded = await self.load(client_id)
        return None if loaded is None else loaded[0]

    async def load(self, client_id: str) -> tuple[RegisteredClient, str] | None:
        """The client and its stored record (for compare-and-set), or ``None``."""
        if not _known_shape(client_id):
            return None
        record = await self.backend.get(client_id)
        return None if record is None else (RegisteredClient.from_record(record), record)

    async def replace(self, client_id: str, record: str, new: RegisteredClient | None) -> None:
        """Replace (``None``: delete) a client if its stored record is still ``record``."""
        new_record = None if new is None else new.to_record()
        if not await self.backend.replace(client_id, record, new_record):
            raise _conflict()
        if new is None and _holds_a_place(record):
            await self.backend.release()

    async def authenticate(self, client_id: str, client_secret: str) -> RegisteredClient | None:
        """The client when ``client_secret`` is its current, unexpired secret; else ``None``."""
        client = await self.get(client_id)
        if client is None or not client.check_secret(client_secret):
            return None
        return client

    async def create(self, client: RegisteredClient) -> None:
        """Store a new client atomically; never overwrites another client.

        Under ``DCR_MAX_CLIENTS`` a place is taken first, atomically, and given back if the
        create fails.
        """
        cap = self.settings.max_clients
        if cap and not await self.backend.reserve(cap):
            raise _cap_reached(cap)
        if cap:
            client = dataclasses.replace(client, counted=True)
        try:
            if not await self.backend.create(client.client_id, client.to_record()):
                raise _collision(client.client_id)
        except StorageError:
            if cap:
                await self.backend.release()
            raise

    async def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        """Charge one registration attempt to a rate-limit bucket (used by the middleware)."""
        return await self.backend.hit(bucket, limits)

    async def close(self) -> None:
        """Release the backend's connections."""
        await self.backend.close()
