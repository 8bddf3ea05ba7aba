"""The registration service: pure decisions plus storage calls, in a sync and an async shell
that differ only in ``await``.

Order of work for ``POST P``: headers (415/413, no I/O), the initial access token (401; a
storage read for minted tokens), the rate limit (one storage call, before any byte of the body
is read; 429), body (413 past the cap), validation (400), taking a use of a minted token (401
when another request took the last one), then the atomic create (403 at the client cap, 503 when
storage fails). Responses after the rate-limit check carry the RateLimit fields.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from ._http import Response, error_response, json_response
from .admission import Admission, RatePlan, RequestHead
from .cors import CORS
from .errors import DCRError
from .ratelimit import RateDecision
from .registration import NewClient, prepare_registration
from .settings import Settings
from .store import AsyncClientStore, ClientStore
from .tokens import Grant, TokenPolicy, unknown_token

logger = logging.getLogger("dcr_middleware")


def _prepare(
    body: bytes, settings: Settings, gate: Admission, head: RequestHead, grant: Grant | None
) -> NewClient:
    policy = None if grant is None else grant.policy
    return prepare_registration(
        body,
        settings if policy is None else policy.apply(settings),
        now=int(time.time()),
        token=secrets.token_urlsafe,
        endpoint_url=gate.endpoint_url(head),
        token_policy=None if policy is None or policy == TokenPolicy() else policy.to_json(),
        statements=gate.statements,
    )


def _created(new: NewClient, extra: list[tuple[str, str]]) -> Response:
    logger.info("client registered: client_id=%s", new.client_id)
    return json_response(201, new.response, extra)


def refused(error: DCRError, extra: list[tuple[str, str]]) -> Response:
    logger.info("request refused: %s (%s)", error.error, error.status)
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
        self.cors = CORS(settings)

    def register(self, head: RequestHead, read_body: Callable[[], bytes]) -> Response:
        """Answer ``POST P``; ``read_body`` is called only once the request is admitted."""
        gate, backend = self.admission, self.store.backend
        plan: RatePlan | None = None
        decision: RateDecision | None = None
        try:
            gate.check_head(head)
            grant = None
            digest = gate.token_digest(head)
            if digest is not None:
                grant = gate.static_grant(digest) or gate.minted_grant(
                    digest, backend.token_get(digest)
                )
            plan = gate.rate_plan(head, grant)
            if plan.limits:
                decision = self.store.hit(plan.bucket, plan.limits)
                gate.enforce(plan, decision)
            new = _prepare(read_body(), self.settings, gate, head, grant)
            if grant is not None and grant.minted and not backend.token_use(grant.digest):
                raise unknown_token()
            self.store.create(new.client)
        except DCRError as exc:
            response = refused(exc, gate.rate_headers(plan, decision))
        else:
            response = _created(new, gate.rate_headers(plan, decision))
        return self.cors.apply(head, response)


class AsyncRegistrationService:
    """Registers clients through an :class:`AsyncClientStore`."""

    def __init__(self, settings: Settings, store: AsyncClientStore) -> None:
        self.settings = settings
        self.store = store
        self.admission = Admission(settings)
        self.cors = CORS(settings)

    async def register(
        self, head: RequestHead, read_body: Callable[[], Awaitable[bytes]]
    ) -> Response:
        """Answer ``POST P``; ``read_body`` is called only once the request is admitted."""
        gate, backend = self.admission, self.store.backend
        plan: RatePlan | None = None
        decision: RateDecision | None = None
        try:
            gate.check_head(head)
            grant = None
            digest = gate.token_digest(head)
            if digest is not None:
                grant = gate.static_grant(digest) or gate.minted_grant(
                    digest, await backend.token_get(digest)
                )
            plan = gate.rate_plan(head, grant)
            if plan.limits:
                decision = await self.store.hit(plan.bucket, plan.limits)
                gate.enforce(plan, decision)
            new = _prepare(await read_body(), self.settings, gate, head, grant)
            if grant is not None and grant.minted and not await backend.token_use(grant.digest):
                raise unknown_token()
            await self.store.create(new.client)
        except DCRError as exc:
            response = refused(exc, gate.rate_headers(plan, decision))
        else:
            response = _created(new, gate.rate_headers(plan, decision))
        return self.cors.apply(head, response)
