"""Throttles besides the registration rate limit: failed credentials per client address, and a
token holder's writes to its own registration. Pure decisions; the services do the storage call.

Theory of operation. A failed credential (a missing, malformed or wrong initial access token at
``POST P``; a missing or wrong registration access token at ``P/{client_id}``) is charged to the
address's failure bucket (``DCR_FAILURE_RATE_LIMIT``, GCRA as in :mod:`.ratelimit`): one storage
call, on the failure path only. When that bucket refuses, the answer is ``429`` instead of
``401`` and the process remembers the refusal until its retry time (:class:`.refusals.Refusals`).
While it stands, every request from that address that would present a credential is answered
``429`` *before* the credential is looked at: no token lookup, no storage call, so a guess made
then is never evaluated, right or wrong.

So a successful request costs nothing more: no storage call and no read of the failure bucket
(a check in memory). The price is that a worker that has not yet seen an address refused
evaluates one more guess from it: with ``W`` worker processes an address gets at most the limit
plus ``W`` evaluated guesses per retry period (docs/protecting.md#failed-credentials).

A write (``PUT``, ``DELETE``) to a client's registration is charged to that client's bucket
(``DCR_MANAGEMENT_RATE_LIMIT``) once its registration access token is verified, never before:
a stranger without the token cannot use up a client's budget.
"""

from __future__ import annotations

from .errors import DCRError, RateLimitedError
from .ratelimit import Limit, RateDecision, parse_rate_limits, rate_limit_headers
from .refusals import Refusals
from .settings import Settings

FAILURE_SCOPE = "auth"
WRITE_SCOPE = "client"


def _refusal(
    description: str, limits: tuple[Limit, ...], decision: RateDecision, scope: str
) -> RateLimitedError:
    wait = decision.retry_after_seconds
    return RateLimitedError(
        f"{description}; retry in {wait} s", rate_limit_headers(limits, decision, scope), scope
    )


class Throttle:
    """The failure and write limits of the settings, parsed once, and the failures this process
    saw refused."""

    def __init__(self, settings: Settings) -> None:
        self.failure_limits = parse_rate_limits(settings.failure_rate_limit)
        self.write_limits = parse_rate_limits(settings.management_rate_limit)
        self.refusals = Refusals()

    def failure_bucket(self, address_bucket: str) -> str | None:
        """The failure bucket of a client address's bucket; ``None`` when failures are not
        limited."""
        return f"fail:{address_bucket}" if self.failure_limits else None

    def recall(self, bucket: str | None) -> None:
        """``429`` when this process saw ``bucket`` refused and the refusal still stands."""
        if bucket is not None:
            known = self.refusals.recall(bucket, self.failure_limits)
            if known is not None:
                raise self._too_many_failures(known)

    def failed(
        self, bucket: str, decision: RateDecision, sent_at: float, error: DCRError
    ) -> DCRError:
        """The answer to a failed credential once charged: ``error``, or ``429`` when the
        failure bucket refused (remembered, so the next ones are refused before evaluation)."""
        if decision.allowed:
            return error
        self.refusals.note(bucket, self.failure_limits, decision, sent_at)
        return self._too_many_failures(decision)

    def _too_many_failures(self, decision: RateDecision) -> RateLimitedError:
        return _refusal(
            "too many failed credentials from this address",
            self.failure_limits,
            decision,
            FAILURE_SCOPE,
        )

    @staticmethod
    def write_bucket(client_id: str) -> str:
        """The bucket a client's management writes are charged to."""
        return f"client:{client_id}"

    def write_headers(self, decision: RateDecision) -> list[tuple[str, str]]:
        """The RateLimit fields of a write's answer."""
        return rate_limit_headers(self.write_limits, decision, WRITE_SCOPE)

    def enforce_write(self, decision: RateDecision) -> None:
        """``429`` when the client's write bucket refused."""
        if not decision.allowed:
            raise _refusal(
                "too many changes to this client", self.write_limits, decision, WRITE_SCOPE
            )
