"""The client store's flows: looking clients up, authenticating them, replacing and registering
them, each written once as a generator of storage operations (:mod:`.ops`).

:class:`~dcr_middleware.store.ClientStore` drives them with the blocking driver and
:class:`~dcr_middleware.store.AsyncClientStore` with the asyncio one; the middlewares' flows
(:mod:`.registration_flow`, :mod:`.management_flow`) call them with ``yield from``.
"""

from __future__ import annotations

import dataclasses
import re
import time

from .cimd import Documents, is_document_url, resolve_document
from .client import RegisteredClient
from .errors import ClientCapError, ConflictError, InvalidClientError, StorageError
from .ops import (
    Attempt,
    Attempted,
    Flow,
    Lifetime,
    Lookup,
    Outcome,
    Read,
    Register,
    Release,
    Replace,
    ask,
)
from .ratelimit import Limit
from .settings import Settings
from .tokens import unknown_token

# Identifiers this library issues are base64url; anything else cannot name a stored client and is
# answered without a storage round trip (and never reaches a Redis key name).
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")


def known_id(client_id: str) -> bool:
    """Whether ``client_id`` has the shape of an id this library issues."""
    return isinstance(client_id, str) and _CLIENT_ID.match(client_id) is not None


def load(
    client_id: str, lifetime: Lifetime, *, note_use: bool = True
) -> Flow[tuple[RegisteredClient, str] | None]:
    """The client and its stored record (for compare-and-set), or ``None``; the lookup notes a
    use of the client unless ``note_use`` is false."""
    if not known_id(client_id):
        return None
    if note_use:
        record = yield from ask(Lookup(client_id, lifetime))
    else:
        record, _ = yield from ask(Read(client_id))
    return None if record is None else (RegisteredClient.from_record(record), record)


def get(
    client_id: str, lifetime: Lifetime, documents: Documents | None = None
) -> Flow[RegisteredClient | None]:
    """The registered client (noting a use), or ``None``. With ``documents`` (``DCR_CIMD``),
    an HTTPS-URL client id is resolved from its Client ID Metadata Document."""
    if documents is not None and is_document_url(client_id):
        return (yield from resolve_document(client_id, documents))
    loaded = yield from load(client_id, lifetime)
    return None if loaded is None else loaded[0]


def note_use(client_id: str, lifetime: Lifetime) -> Flow[None]:
    """Note a use of ``client_id`` (renewing its idle TTL when due; a no-op write otherwise)."""
    if known_id(client_id):
        yield from ask(Lookup(client_id, lifetime))


def replace(
    client_id: str, record: str, new: RegisteredClient | None, lifetime: Lifetime
) -> Flow[None]:
    """Replace (``None``: delete) a client if its stored record is still ``record``; a deleted
    client that held a place under ``DCR_MAX_CLIENTS`` gives it back."""
    new_record = None if new is None else new.to_record()
    replaced = yield from ask(Replace(client_id, record, new_record, lifetime.idle_ttl_ms))
    if not replaced:
        raise ConflictError("the client was changed by another request; read it and try again")
    # Only clients stored while DCR_MAX_CLIENTS was set were counted; only they give one back.
    if new is None and RegisteredClient.from_record(record).counted:
        yield from ask(Release())


def authenticate(
    client_id: str, client_secret: str, lifetime: Lifetime
) -> Flow[RegisteredClient | None]:
    """The client when ``client_secret`` is its current, unexpired secret; else ``None``.

    Only a successful authentication notes a use: a wrong secret cannot keep an abandoned client
    alive. One round trip, two when the use is due to be noted. A client described by a
    metadata document has no secret: a URL client id is ``None`` here, without a fetch."""
    if not known_id(client_id):
        return None
    record, used = yield from ask(Read(client_id))
    client = None if record is None else RegisteredClient.from_record(record)
    if client is None or not client.check_secret(client_secret):
        return None
    if lifetime.due(used, int(time.time() * 1000)):
        yield from ask(Lookup(client_id, lifetime))
    return client


def require(
    client_id: str,
    client_secret: str | None,
    lifetime: Lifetime,
    documents: Documents | None = None,
) -> Flow[RegisteredClient]:
    """The client (authenticated when ``client_secret`` is given), or
    :class:`~dcr_middleware.core.errors.InvalidClientError` (``401 invalid_client``)."""
    if client_secret is None:
        client = yield from get(client_id, lifetime, documents)
    else:
        client = yield from authenticate(client_id, client_secret, lifetime)
    if client is None:
        raise InvalidClientError("client authentication failed")
    return client


def register(
    settings: Settings,
    client: RegisteredClient,
    *,
    bucket: str = "",
    limits: tuple[Limit, ...] = (),
    token: str | None = None,
    record: str | None = None,
) -> Flow[Attempted]:
    """Charge ``bucket`` under ``limits``, take a use of the minted token ``token`` (a digest), a
    place under ``DCR_MAX_CLIENTS``, and store ``client``, in one atomic step. ``record``:
    ``client.to_record()`` when the caller wrote it already (the registration's size check).

    Returns the outcome (``Outcome.LIMITED`` with the refusing decision, or ``CREATED``); raises
    :class:`ClientCapError`, :class:`StorageError` or ``InvalidTokenError``."""
    cap = settings.max_clients
    if cap and not client.counted:  # only clients stored under a cap give a place back
        client, record = dataclasses.replace(client, counted=True), None
    record = client.to_record() if record is None else record
    ttl_ms = settings.client_idle_ttl * 1000
    attempt = Attempt(client.client_id, record, bucket, limits, token, cap, ttl_ms)
    attempted = yield from ask(Register(attempt))
    if attempted.outcome is Outcome.CAPPED:
        raise ClientCapError(f"this server accepts no more registrations ({cap} clients)")
    if attempted.outcome is Outcome.TAKEN:
        raise StorageError(f"client id {client.client_id} is already taken; retry the registration")
    if attempted.outcome is Outcome.TOKEN_SPENT:
        raise unknown_token()
    return attempted
