"""GCRA cases on an explicit clock, one table run against both implementations.

``tests/unit/test_ratelimit.py`` runs them against :func:`dcr_middleware.core.ratelimit.decide` (the
embedded store's arithmetic) and ``tests/integration/test_ratelimit_lua.py`` against the Redis
scripts (``storage/lua/gcra.lua``), which take their clock from the caller for this reason: with
Redis ``TIME`` a boundary such as "the N-th request of a burst is admitted" is only reached when
the calls land in the same millisecond.

Semantics pinned here, for a limit "N per P" with emission interval ``T = P / N`` (whole
milliseconds, rounded down): a fresh bucket admits exactly N at once, then one more every T; a
refused request costs nothing; a bucket left idle for P admits N at once again. So the tight
bound for any run of admitted requests from time ``a`` to time ``b`` is ``N + (b - a) // T``: a
window of length P can hold up to 2N (N at its start, one per T after), not N.

Each case is a function of a :data:`NewBucket` (a spec such as ``"3/minute"`` to a fresh bucket).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import pytest

from dcr_middleware.core.ratelimit import Limit, RateDecision

NOW = 1_700_000_000_000  # an arbitrary epoch time in ms; every case passes its own clock


class Bucket(Protocol):
    """One rate-limit bucket charged at explicit times."""

    @property
    def limits(self) -> tuple[Limit, ...]: ...

    def hit(self, now_ms: int) -> RateDecision:
        """Charge one request at ``now_ms`` if every limit allows it."""
        ...


NewBucket = Callable[[str], Bucket]
Case = Callable[[NewBucket], None]


def burst(bucket: Bucket, now_ms: int) -> int:
    """How many requests at ``now_ms`` are admitted before the first refusal."""
    admitted = 0
    while bucket.hit(now_ms).allowed:
        admitted += 1
        assert admitted <= 10_000, "a burst never ends"
    return admitted


SPECS = {
    "1-per-second": "1/second",
    "3-per-minute": "3/minute",
    "10-per-minute": "10/minute",
    "7-per-minute-uneven": "7/minute",
    "48-per-second-uneven": "48/second",
    "450-per-minute-uneven": "450/minute",
    "20-per-hour": "20/hour",
    "200-per-day": "200/day",
}


def fresh_bucket_admits_exactly_n_at_once(new: NewBucket, spec: str) -> None:
    bucket = new(spec)
    assert burst(bucket, NOW) == bucket.limits[0].count
    refused = bucket.hit(NOW)
    assert not refused.allowed
    assert refused.remaining == 0


def retry_after_is_ceiling_of_the_wait(
    new: NewBucket, spec: str, offset_ms: int, retry_after: int, next_allowed_ms: int
) -> None:
    bucket = new(spec)
    burst(bucket, NOW)
    refused = bucket.hit(NOW + offset_ms)
    assert not refused.allowed
    assert refused.retry_after_seconds == retry_after
    assert refused.retry_after_seconds == math.ceil((next_allowed_ms - offset_ms) / 1000)
    assert not bucket.hit(NOW + next_allowed_ms - 1).allowed
    assert bucket.hit(NOW + next_allowed_ms).allowed


RETRY_AFTER = {
    # After a burst at NOW the next request is due one interval later, at NOW + T.
    "3-per-minute-at-burst": ("3/minute", 0, 20, 20_000),
    "3-per-minute-rounded-up": ("3/minute", 500, 20, 20_000),
    "3-per-minute-almost-due": ("3/minute", 19_000, 1, 20_000),
    "3-per-minute-1ms-early": ("3/minute", 19_999, 1, 20_000),
    "7-per-minute-ceiling": ("7/minute", 0, 9, 8_571),
    "1-per-second": ("1/second", 0, 1, 1_000),
    "20-per-hour": ("20/hour", 60_000, 120, 180_000),
}


def retry_after_is_never_too_early(new: NewBucket, spec: str) -> None:
    bucket = new(spec)
    burst(bucket, NOW)
    refused = bucket.hit(NOW + 1)
    assert bucket.hit(NOW + 1 + refused.retry_after_seconds * 1000).allowed


def steady_rate_of_one_per_interval_is_allowed_forever(new: NewBucket, spec: str) -> None:
    bucket = new(spec)
    limit = bucket.limits[0]
    for k in range(2000):
        decision = bucket.hit(NOW + k * limit.interval_ms)
        assert decision.allowed, k
        assert decision.remaining == limit.count - 1


def after_a_burst_admits_one_per_interval(new: NewBucket, spec: str) -> None:
    bucket = new(spec)
    limit = bucket.limits[0]
    burst(bucket, NOW)
    for k in range(1, 300):
        now = NOW + k * limit.interval_ms
        assert not bucket.hit(now - 1).allowed, k
        assert bucket.hit(now).allowed, k
        assert not bucket.hit(now).allowed, k


def idle_for_the_period_restores_the_full_burst(new: NewBucket, spec: str) -> None:
    bucket = new(spec)
    limit = bucket.limits[0]
    burst(bucket, NOW)
    assert burst(bucket, NOW + limit.period * 1000) == limit.count


def partial_idle_restores_one_per_interval(
    new: NewBucket, spec: str, idle_ms: int, expected: int
) -> None:
    bucket = new(spec)
    burst(bucket, NOW)
    assert burst(bucket, NOW + idle_ms) == expected


PARTIAL_IDLE = {
    "3-per-minute-1ms-short": ("3/minute", 59_999, 2),
    "3-per-minute-two-intervals": ("3/minute", 40_000, 2),
    "3-per-minute-just-short-of-two": ("3/minute", 39_999, 1),
    "10-per-minute-one-interval": ("10/minute", 6_000, 1),
    "10-per-minute-half-period": ("10/minute", 30_000, 5),
}


def a_window_of_one_period_can_hold_2n(new: NewBucket, spec: str) -> None:
    # The tight bound: N at the window's start, then one every T up to and including its end.
    bucket = new(spec)
    limit = bucket.limits[0]
    admitted = burst(bucket, NOW)
    for k in range(1, limit.count + 1):
        admitted += burst(bucket, NOW + k * limit.interval_ms)
    assert admitted == 2 * limit.count


def with_two_limits_the_stricter_binds(new: NewBucket) -> None:
    bucket = new("3/minute;5/hour")
    minute, hour = bucket.limits
    # First the minute limit binds: 3 at once.
    first = bucket.hit(NOW)
    assert (first.allowed, first.limit, first.remaining, first.reset_seconds) == (
        True,
        minute,
        2,
        20,
    )
    assert burst(bucket, NOW) == 2
    refused = bucket.hit(NOW)
    assert (refused.allowed, refused.limit, refused.retry_after_seconds) == (False, minute, 20)
    # A minute later the minute limit has room for 3 more, but the hour limit for only 2.
    later = NOW + 60_000
    fourth = bucket.hit(later)
    assert (fourth.allowed, fourth.limit, fourth.remaining) == (True, hour, 1)
    assert bucket.hit(later).allowed
    sixth = bucket.hit(later)
    assert not sixth.allowed
    assert sixth.limit == hour
    # Hour TAT is NOW + 5 * 720 s; the sixth is due at NOW + 720 s, 660 s after `later`.
    assert sixth.retry_after_seconds == 660
    assert not bucket.hit(NOW + 720_000 - 1).allowed
    assert bucket.hit(NOW + 720_000).allowed


def remaining_and_reset(
    new: NewBucket, spec: str, times_ms: list[int], remaining: int, reset: int
) -> None:
    bucket = new(spec)
    decisions = [bucket.hit(NOW + t) for t in times_ms]
    last = decisions[-1]
    assert all(d.allowed for d in decisions)
    assert (last.remaining, last.reset_seconds, last.retry_after_seconds) == (remaining, reset, 0)


REMAINING_AND_RESET = {
    "fresh": ("10/minute", [0], 9, 6),
    "second-at-once": ("10/minute", [0, 0], 8, 12),
    "last-of-burst": ("10/minute", [0] * 10, 0, 60),
    "half-interval-later": ("10/minute", [0, 3_000], 8, 9),
    "one-interval-later": ("10/minute", [0, 6_000], 9, 6),
    "long-idle": ("10/minute", [0, 600_000], 9, 6),
    "uneven-reset-rounded-up": ("7/minute", [0], 6, 9),
    "binding-is-least-remaining": ("3/minute;200/day", [0], 2, 20),
}


def refusal_reports_zero_remaining_and_the_wait_as_reset(new: NewBucket) -> None:
    bucket = new("10/minute")
    burst(bucket, NOW)
    refused = bucket.hit(NOW + 1_000)
    # 10/minute: one every 6 s; 1 s after a burst of 10 the 11th waits 5 s (5,000 ms exactly).
    assert refused == RateDecision(False, Limit(10, 60), 0, 5, 5, 5_000)


def _bind(check: Callable[..., None], args: tuple[Any, ...]) -> Case:
    def case(new: NewBucket) -> None:
        check(new, *args)

    return case


def _cases(check: Callable[..., None], table: dict[str, Any]) -> list[Any]:
    name = check.__name__.replace("_", "-")
    return [
        pytest.param(_bind(check, args if isinstance(args, tuple) else (args,)), id=f"{name}-{key}")
        for key, args in table.items()
    ]


#: Every case, as ``pytest.param(case)`` with ``case(new_bucket)`` running it.
CASES = [
    *_cases(fresh_bucket_admits_exactly_n_at_once, SPECS),
    *_cases(retry_after_is_ceiling_of_the_wait, RETRY_AFTER),
    *_cases(retry_after_is_never_too_early, SPECS),
    *_cases(steady_rate_of_one_per_interval_is_allowed_forever, SPECS),
    *_cases(after_a_burst_admits_one_per_interval, SPECS),
    *_cases(idle_for_the_period_restores_the_full_burst, SPECS),
    *_cases(partial_idle_restores_one_per_interval, PARTIAL_IDLE),
    *_cases(
        a_window_of_one_period_can_hold_2n,
        {"3-per-minute": "3/minute", "10-per-minute": "10/minute", "20-per-hour": "20/hour"},
    ),
    *_cases(with_two_limits_the_stricter_binds, {"3-per-minute-5-per-hour": ()}),
    *_cases(remaining_and_reset, REMAINING_AND_RESET),
    *_cases(refusal_reports_zero_remaining_and_the_wait_as_reset, {"10-per-minute": ()}),
]
