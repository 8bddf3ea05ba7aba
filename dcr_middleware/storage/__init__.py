"""Storage backends for client records: the embedded in-process store and Redis.

Backends store opaque serialized records by client id; :mod:`dcr_middleware.store` turns them
into :class:`~dcr_middleware.core.client.RegisteredClient` objects. Every backend honours the same
contract, checked by one test suite: ``create`` never overwrites another client and is safe to
retry with the same record, ``get`` returns the stored record or ``None``, and every failure of
the storage service surfaces as :class:`~dcr_middleware.core.errors.StorageError`.
"""

from .base import AsyncBackend, SyncBackend, client_key

__all__ = ["AsyncBackend", "SyncBackend", "client_key"]
