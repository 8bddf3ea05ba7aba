"""The GCRA explicit-clock cases (tests/support/gcra_cases.py) against the Redis scripts.

The scripts take ``now`` from their caller, so these run the same table as the pure
:func:`~dcr_middleware.core.ratelimit.decide` tests, boundaries included, through ``ratelimit.lua``
(a rate-limit check alone) and ``register.lua`` (the check made with a registration), both
starting with ``gcra.lua``, on a real ``redis-server``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis
from support.gcra_cases import CASES, NOW, Case

from dcr_middleware.core.ratelimit import (
    Limit,
    RateDecision,
    decision_from_reply,
    parse_rate_limits,
    script_args,
)
from dcr_middleware.storage.base import Attempt, Outcome
from dcr_middleware.storage.redis_ops import (
    RATELIMIT_SCRIPT,
    REGISTER_SCRIPT,
    attempted_from_reply,
    register_call,
)

pytestmark = pytest.mark.redis

PREFIX = "gcra-test"


class RateLimitScriptBucket:
    """A bucket charged by ``ratelimit.lua`` at the caller's time."""

    def __init__(self, client: redis.Redis, spec: str) -> None:
        self.limits: tuple[Limit, ...] = parse_rate_limits(spec)
        self.key = f"{PREFIX}:rate:{{{uuid.uuid4().hex}}}"
        self.script = client.register_script(RATELIMIT_SCRIPT)

    def hit(self, now_ms: int) -> RateDecision:
        reply = self.script(keys=[self.key], args=script_args(self.limits, now_ms))
        return decision_from_reply(reply, self.limits)


class RegisterScriptBucket:
    """A bucket charged by ``register.lua``: each hit registers a new client at that time."""

    def __init__(self, client: redis.Redis, spec: str) -> None:
        self.limits: tuple[Limit, ...] = parse_rate_limits(spec)
        self.bucket = f"ip:{uuid.uuid4().hex}"
        self.script = client.register_script(REGISTER_SCRIPT)

    def hit(self, now_ms: int) -> RateDecision:
        attempt = Attempt(uuid.uuid4().hex, "{}", self.bucket, self.limits)
        keys, args = register_call(PREFIX, attempt, now_ms)
        attempted = attempted_from_reply(self.script(keys=keys, args=args), self.limits)
        assert attempted.decision is not None
        assert attempted.outcome is (
            Outcome.CREATED if attempted.decision.allowed else Outcome.LIMITED
        )
        return attempted.decision


SCRIPTS: dict[str, Callable[[redis.Redis, str], RateLimitScriptBucket | RegisterScriptBucket]] = {
    "ratelimit.lua": RateLimitScriptBucket,
    "register.lua": RegisterScriptBucket,
}


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.parametrize("case", CASES)
def test_gcra_lua_explicit_clock(redis_db: redis.Redis, script: str, case: Case) -> None:
    case(lambda spec: SCRIPTS[script](redis_db, spec))


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_gcra_lua_time_never_runs_backwards(redis_db: redis.Redis, script: str) -> None:
    # Workers read their clocks before the round trip, so a request stamped earlier can arrive
    # later. The bucket is decided at the latest time it was charged at: a burst still admits N.
    bucket = SCRIPTS[script](redis_db, "10/minute")
    first = bucket.hit(NOW + 5)
    late = [bucket.hit(NOW + 5 - k) for k in range(1, 10)]
    assert [d.remaining for d in [first, *late]] == list(range(9, -1, -1))
    assert all(d.allowed for d in late)
    refused = bucket.hit(NOW)
    assert not refused.allowed
    # Due one interval after the burst's (latest) time, NOW + 5 + 6 s.
    assert refused.retry_after_ms == 6_000
    assert bucket.hit(NOW + 5 + 6_000).allowed
