"""The registration service: pure decisions plus storage calls, in a sync and an async shell
that differ only in ``await``.

Order of work for ``POST P``: headers (415/413, no I/O), rate limit (one storage call, before
any byte of the body is read), body (413 past the cap), validation (400), then the atomic create
(503 when storage fails). Responses after the rate-limit check carry the RateLimit fields.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from ._http import Response, error_response, json_response
from .admission import Admission, RequestHead
from .errors import DCRError
from .ratelimit import RateDecision
from .registration import NewClient, prepare_registration
from .settings import Settings
from .store import AsyncClientStore, ClientStore

logger = logging.getLogger("dcr_middleware")


def _prepare(body: bytes, settings: Settings) -> NewClient:
    return prepare_registration(body, settings, now=int(time.time()), token=secrets.token_urlsafe)


def _created(new: NewClient, extra: list[tuple[str, str]]) -> Response:
    logger.info("client registered: client_id=%s", new.client_id)
    return json_response(201, new.response, extra)


def _refused(error: DCRError, extra: list[tuple[str, str]]) -> Response:
    logger.info("registration refused: %s (%s)", error.error, error.status)
    response = error_response(error)
    names = {name.lower() for name, _ in response.headers}
    response.headers.extend(h for h in extra if h[0].lower() not in names)
    return response


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
        self.admission = Admission(settings)

    def register(self, head: RequestHead, read_body: Callable[[], bytes]) -> Response:
        """Answer ``POST P``; ``read_body`` is called only once the request is admitted."""
        decision: RateDecision | None = None
        try:
            self.admission.check_head(head)
            if self.admission.limits:
                decision = self.store.hit(self.admission.bucket(head), self.admission.limits)
                self.admission.enforce(decision)
            new = _prepare(read_body(), self.settings)
            self.store.create(new.client)
        except DCRError as exc:
            return _refused(exc, self.admission.rate_headers(decision))
        return _created(new, self.admission.rate_headers(decision))


class AsyncRegistrationService:
    """Registers clients through an :class:`AsyncClientStore`."""

    def __init__(self, settings: Settings, store: AsyncClientStore) -> None:
        self.settings = settings
        self.store = store
        self.admission = Admission(settings)

    async def register(
        self, head: RequestHead, read_body: Callable[[], Awaitable[bytes]]
    ) -> Response:
        """Answer ``POST P``; ``read_body`` is called only once the request is admitted."""
        decision: RateDecision | None = None
        try:
            self.admission.check_head(head)
            if self.admission.limits:
                decision = await self.store.hit(self.admission.bucket(head), self.admission.limits)
                self.admission.enforce(decision)
            new = _prepare(await read_body(), self.settings)
            await self.store.create(new.client)
        except DCRError as exc:
            return _refused(exc, self.admission.rate_headers(decision))
        return _created(new, self.admission.rate_headers(decision))
