"""The registration flow (``POST P``), written once: a generator of operations (:mod:`.ops`) that
the WSGI middleware runs with the blocking driver and the ASGI middleware with the asyncio one.

Order of work: headers (415/413, no I/O), the initial access token (401; a storage read for
minted tokens), a refusal this process remembers for the client's rate-limit bucket (429 before
any byte of the body is read, no I/O; :mod:`.refusals`), body (413 past the cap), validation
(400), the ``sector_identifier_uri`` when there is one (a fetch, :mod:`.sector`; 400), then
one atomic storage step that decides the rate limit (429), takes a use of a minted
token (401 when another request took the last one), a place under the client cap (403) and
creates the client: one Redis round trip on one node (503 when storage fails). A request refused
before that step is still charged to its bucket (one storage call), and answered 429 if the
bucket is exhausted. Responses after a rate-limit check carry the RateLimit fields.
"""

from __future__ import annotations

import secrets
import time

from . import client_flows, sector
from ._http import Response, error_response, json_response
from .admission import Admission, RatePlan, RequestHead
from .cors import CORS
from .errors import DCRError, InvalidTokenError, RateLimitedError
from .events import ClientRegistered, Observer, Seen
from .ops import Flow, Hit, TokenGet, ask, read_body
from .ratelimit import RateDecision, wide_part
from .refusals import Refusals
from .registration import NewClient, prepare_registration
from .settings import Settings
from .tokens import Grant, TokenPolicy


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


def refused(error: DCRError, extra: list[tuple[str, str]]) -> Response:
    """The error answer for ``error``, with the ``extra`` headers it does not set itself."""
    response = error_response(error)
    names = {name.lower() for name, _ in response.headers}
    response.headers.extend(h for h in extra if h[0].lower() not in names)
    return response


def refused_scope(error: DCRError) -> str | None:
    """The kind of bucket that refused a ``429`` (for its event); ``None`` for other errors."""
    return error.scope if isinstance(error, RateLimitedError) else None


def _seen(gate: Admission, head: RequestHead) -> Seen:
    return Seen("registration", head.method, gate.path, gate.address(head), time.monotonic())


def _minted(grant: Grant | None) -> str | None:
    """The digest of a minted token whose use the registration takes, if any."""
    return grant.digest if grant is not None and grant.minted else None


def _refuse_if_known(refusals: Refusals, gate: Admission, plan: RatePlan) -> None:
    """``429`` before the body is read when this process saw the bucket refused and the
    refusal still stands (see :mod:`.refusals`)."""
    if plan.limits:
        known = refusals.recall(plan.bucket, plan.limits)
        wide, wide_limits = wide_part(plan.limits)
        if known is None and wide:
            # Another /64 of the same wider prefix may have seen that prefix refused.
            known = refusals.recall(wide, wide_limits)
        if known is not None:
            gate.enforce(plan, known)


def _note(refusals: Refusals, plan: RatePlan, decision: RateDecision, sent_at: float) -> None:
    refusals.note(plan.bucket, plan.limits, decision, sent_at)
    if decision.limit.bucket:  # refused by the wider IPv6 prefix: remember it for all its /64s
        refusals.note(decision.limit.bucket, wide_part(plan.limits)[1], decision, sent_at)


def charge_failure(
    gate: Admission, failures: str | None, error: InvalidTokenError
) -> Flow[DCRError]:
    """Charge a failed credential to the address (``429`` once too many failed, see
    :mod:`.throttle`); returns the error to raise."""
    if failures is None:
        return error
    sent_at = time.monotonic()
    decision = yield from ask(Hit(failures, gate.throttle.failure_limits))
    return gate.throttle.failed(failures, decision, sent_at, error)


class RegistrationFlow:
    """Registers clients: :meth:`register` is the flow of one ``POST P``.

    ``store_settings`` are those of the store the flow runs against (the client cap and idle
    TTL of the records it writes), when they differ from the middleware's ``settings``.
    """

    def __init__(
        self,
        settings: Settings,
        observer: Observer | None = None,
        *,
        store_settings: Settings | None = None,
    ) -> None:
        self.settings = settings
        self.store_settings = settings if store_settings is None else store_settings
        sector.check_fetcher(settings, self.store_settings)
        self.sector = sector.SectorPolicy.from_settings(settings)
        self.admission = Admission(settings)
        self.cors = CORS(settings)
        self.refusals = Refusals()
        self.observer = Observer() if observer is None else observer

    def register(self, head: RequestHead) -> Flow[Response]:
        """Answer ``POST P``; the body is asked for (:class:`~.ops.ReadBody`) only once the
        request is admitted."""
        gate = self.admission
        seen = _seen(gate, head)
        plan: RatePlan | None = None
        decision: RateDecision | None = None
        try:
            gate.check_head(head)
            grant = yield from self._grant(head)
            plan = gate.rate_plan(head, grant)
            _refuse_if_known(self.refusals, gate, plan)
            try:
                body = yield from read_body()
                new = _prepare(body, self.settings, gate, head, grant)
                yield from sector.verify(new.client.metadata, self.sector)
            except DCRError:
                if plan.limits:  # a refused request is charged too, and 429 comes first
                    sent_at = time.monotonic()
                    decision = yield from ask(Hit(plan.bucket, plan.limits))
                    self._enforce(plan, decision, sent_at)
                raise
            sent_at = time.monotonic()
            attempted = yield from client_flows.register(
                self.store_settings,
                new.client,
                bucket=plan.bucket,
                limits=plan.limits,
                token=_minted(grant),
                record=new.record,
            )
            decision = attempted.decision
            if decision is not None:
                self._enforce(plan, decision, sent_at)
        except DCRError as exc:
            response = refused(exc, gate.rate_headers(plan, decision))
            self.observer.refused(seen, exc, scope=refused_scope(exc))
        else:
            response = json_response(201, new.response, gate.rate_headers(plan, decision))
            self.observer.done(seen, ClientRegistered, new.client)
        return self.cors.apply(head, response)

    def _grant(self, head: RequestHead) -> Flow[Grant | None]:
        """The request's token grant (``None``: no token, none needed); a failed credential is
        charged to the address."""
        gate = self.admission
        if not gate.checks_token(head):
            return None
        failures = gate.failure_bucket(head)
        gate.throttle.recall(failures)
        try:
            digest = gate.token_digest(head)
            if digest is None:
                return None
            static = gate.static_grant(digest)
            if static is not None:
                return static
            fields = yield from ask(TokenGet(digest))
            return gate.minted_grant(digest, fields)
        except InvalidTokenError as exc:
            raise (yield from charge_failure(gate, failures, exc)) from None

    def _enforce(self, plan: RatePlan, decision: RateDecision, sent_at: float) -> None:
        _note(self.refusals, plan, decision, sent_at)
        self.admission.enforce(plan, decision)
