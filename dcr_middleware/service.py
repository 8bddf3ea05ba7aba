"""The registration service: the pure decision plus one storage call, in a sync and an async
shell that differ only in ``await``."""

from __future__ import annotations

import logging
import secrets
import time

from ._http import Response, error_response, json_response
from .errors import DCRError
from .registration import NewClient, prepare_registration
from .settings import Settings
from .store import AsyncClientStore, ClientStore

logger = logging.getLogger("dcr_middleware")


def _prepare(body: bytes, settings: Settings) -> NewClient:
    return prepare_registration(body, settings, now=int(time.time()), token=secrets.token_urlsafe)


def _created(new: NewClient) -> Response:
    logger.info("client registered: client_id=%s", new.client_id)
    return json_response(201, new.response)


def _refused(error: DCRError) -> Response:
    logger.info("registration refused: %s (%s)", error.error, error.status)
    return error_response(error)


def warn_if_embedded(settings: Settings) -> None:
    """Say at startup that the embedded store is per process (SPEC §4)."""
    if not settings.uses_redis:
        logger.warning(
            "DCR_REDIS_URL is not set: clients are kept in this process only (lost on restart, "
            "not shared between workers); set DCR_REDIS_URL for production"
        )


class RegistrationService:
    """Registers clients through a blocking :class:`ClientStore`."""

    def __init__(self, settings: Settings, store: ClientStore) -> None:
        self.settings = settings
        self.store = store

    def register(self, body: bytes) -> Response:
        """Answer a registration request body whose headers were already checked."""
        try:
            new = _prepare(body, self.settings)
            self.store.create(new.client)
        except DCRError as exc:
            return _refused(exc)
        return _created(new)


class AsyncRegistrationService:
    """Registers clients through an :class:`AsyncClientStore`."""

    def __init__(self, settings: Settings, store: AsyncClientStore) -> None:
        self.settings = settings
        self.store = store

    async def register(self, body: bytes) -> Response:
        """Answer a registration request body whose headers were already checked."""
        try:
            new = _prepare(body, self.settings)
            await self.store.create(new.client)
        except DCRError as exc:
            return _refused(exc)
        return _created(new)
