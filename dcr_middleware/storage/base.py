"""Backend protocols and key naming shared by every store."""

from __future__ import annotations

from typing import Protocol


def client_key(prefix: str, client_id: str) -> str:
    """The key of one client's record.

    The client id is the Redis Cluster hash tag (``{...}``), so every key about one client lives
    in one slot and a script may touch them together.
    """
    return f"{prefix}:client:{{{client_id}}}"


class SyncBackend(Protocol):
    """Blocking record storage, used by the WSGI middleware and :class:`ClientStore`."""

    def create(self, client_id: str, record: str) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one; True when stored."""
        ...

    def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class AsyncBackend(Protocol):
    """Asynchronous record storage, used by the ASGI middleware and :class:`AsyncClientStore`."""

    async def create(self, client_id: str, record: str) -> bool:
        """Store ``record`` unless ``client_id`` holds a different one; True when stored."""
        ...

    async def get(self, client_id: str) -> str | None:
        """The stored record, or ``None``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
