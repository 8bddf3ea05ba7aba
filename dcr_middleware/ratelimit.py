"""Rate limiting: the policy syntax, the GCRA decision, and the RateLimit header fields.

Theory of operation. Each limit "N per P seconds" is a generic cell rate algorithm (GCRA) bucket:
requests are spaced by the emission interval ``T = P / N``, and a burst of up to ``N`` requests is
tolerated. The bucket stores one number, the theoretical arrival time ``TAT``. For a request at
``now``::

    new_tat = max(TAT, now) + T
    allowed  = new_tat - now <= W          # at most N requests "ahead" of the steady rate
    remaining = floor((W - (new_tat - now)) / T)      (after this request)
    retry_after = new_tat - now - W        (when refused)

where ``W = N * T`` is the burst window. ``T`` is whole milliseconds, rounded down, so ``W`` is
``P`` or a little less; comparing with ``P`` itself would admit more than N at once whenever
``P / N`` is not whole (450/minute would admit 451, 48/second 50).

So a fresh client may make N requests at once, then one more every T; a client idle for P is
back to a full burst. With several limits (``10/minute;200/day``) every one must allow, and only
then are they all charged, so refused requests cost nothing. The same arithmetic runs in Redis
(``storage/lua/gcra.lua``, in milliseconds) and in the embedded store (:func:`decide`).

Both take ``now`` from their caller: the app server's wall clock, passed to the script as an
argument, so the explicit-clock tests run against the Lua too. Redis ``TIME`` would give every
worker one timeline, but only until a Sentinel failover moves the bucket to another host's clock;
workers on one host share a clock anyway. Two consequences, and their bounds:

* A worker reads its clock before the round trip, so requests can reach Redis in another order
  than their times. The script keeps each bucket's time monotonic (``now`` is at least the time
  it was last charged at), so a burst of N at once still admits exactly N. The embedded store
  reads the clock under its lock, so its times already arrive in order.
* Between hosts, if the workers' clocks differ by at most ``D`` ms, every admitted run from ``a``
  to ``b`` still obeys ``N + (b - a + D) // T``: skew admits at most ``ceil(D / T)`` extra
  requests, or makes a refused client wait up to ``D`` longer. NTP keeps ``D`` to milliseconds and
  the default limits' ``T`` is minutes, so skew changes nothing there; only a limit whose interval
  nears the skew (thousands per second) would notice. A clock grossly ahead fails closed: the
  buckets it charges refuse everyone until that time, and at most for the bucket's longest window
  after its last admission, when Redis (on its own clock) expires the key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ._env import parse_duration

_UNITS = {
    "second": 1,
    "sec": 1,
    "s": 1,
    "minute": 60,
    "min": 60,
    "m": 60,
    "hour": 3600,
    "h": 3600,
    "day": 86400,
    "d": 86400,
    "week": 604800,
    "w": 604800,
}
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*([a-z0-9]+)\s*\Z")
_PLURALS = frozenset({"seconds", "secs", "minutes", "mins", "hours", "days", "weeks"})


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``count`` requests per ``period`` seconds (with a burst of ``count``)."""

    count: int
    period: int

    @property
    def interval_ms(self) -> int:
        """The GCRA emission interval, in milliseconds (at least 1)."""
        return max(1, self.period * 1000 // self.count)

    @property
    def field(self) -> str:
        """The bucket field that stores this limit's TAT."""
        return f"{self.count}/{self.period}"

    @property
    def window_ms(self) -> int:
        """The GCRA burst window, in ms: ``count`` emission intervals, so exactly ``count``
        requests fit in a burst (the period, or a little less when it is not a multiple)."""
        return self.count * self.interval_ms


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Outcome of one rate-limit check, reported on the most restrictive limit."""

    allowed: bool
    limit: Limit
    remaining: int
    reset_seconds: int
    retry_after_seconds: int = 0
    retry_after_ms: int = 0  # exact, for the in-process refusal memory (admission.Refusals)


def parse_rate_limits(raw: str) -> tuple[Limit, ...]:
    """Parse ``"10/minute;200/day"`` (units: second, minute, hour, day, or a duration such as
    ``15m``); ``"off"`` (or empty) means no limit."""
    text = raw.strip().lower()
    if text in ("", "off", "none"):
        return ()
    limits = []
    for part in text.split(";"):
        match = _LIMIT.match(part)
        if match is None:
            raise ValueError(f"expected limits like 10/minute;200/day, got {part.strip()!r}")
        count, unit = int(match.group(1)), match.group(2)
        unit = unit[:-1] if unit in _PLURALS else unit
        period = _UNITS[unit] if unit in _UNITS else parse_duration(unit)
        if count < 1 or period < 1:
            raise ValueError(f"a limit needs at least 1 request per 1 second, got {part!r}")
        limits.append(Limit(count, period))
    return tuple(limits)


def decide(
    tats: list[int | None], now_ms: int, limits: tuple[Limit, ...]
) -> tuple[RateDecision, list[int] | None]:
    """The GCRA decision over stored TATs (ms, ``None`` for a fresh bucket).

    Returns the decision and, when allowed, the TATs to store (``None`` when refused).
    """
    new_tats = [
        max(tat or 0, now_ms) + limit.interval_ms for tat, limit in zip(tats, limits, strict=True)
    ]
    ahead = [new_tat - now_ms for new_tat in new_tats]
    retry = [a - limit.window_ms for a, limit in zip(ahead, limits, strict=True)]
    if max(retry) > 0:
        worst = max(range(len(limits)), key=lambda i: retry[i])
        wait = math.ceil(retry[worst] / 1000)
        return RateDecision(False, limits[worst], 0, wait, wait, retry[worst]), None
    remaining = [
        (limit.window_ms - a) // limit.interval_ms for a, limit in zip(ahead, limits, strict=True)
    ]
    binding = min(range(len(limits)), key=lambda i: remaining[i])
    reset = math.ceil(ahead[binding] / 1000)
    return RateDecision(True, limits[binding], remaining[binding], reset), new_tats


def rate_limit_headers(
    limits: tuple[Limit, ...], decision: RateDecision, scope: str
) -> list[tuple[str, str]]:
    """``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers-10),
    plus ``Retry-After`` in whole seconds, rounded up, when refused."""
    policies = ", ".join(f'"{scope}-{lim.field}";q={lim.count};w={lim.period}' for lim in limits)
    current = f'"{scope}-{decision.limit.field}";r={decision.remaining};t={decision.reset_seconds}'
    headers = [("RateLimit-Policy", policies), ("RateLimit", current)]
    if not decision.allowed:
        headers.append(("Retry-After", str(max(1, decision.retry_after_seconds))))
    return headers


def script_args(limits: tuple[Limit, ...], now_ms: int) -> list[str | int]:
    """The ARGV of ``storage/lua/ratelimit.lua`` for ``limits``, checked at ``now_ms`` (epoch
    ms, the caller's clock)."""
    args: list[str | int] = [now_ms, len(limits)]
    for limit in limits:
        args += [limit.field, limit.interval_ms, limit.window_ms]
    return args


def decision_from_reply(reply: list[int], limits: tuple[Limit, ...]) -> RateDecision:
    """Read the reply of ``gcra()`` in ``storage/lua/gcra.lua``."""
    allowed, index, remaining, reset, retry, retry_ms = (int(x) for x in reply)
    return RateDecision(bool(allowed), limits[index - 1], remaining, reset, retry, retry_ms)
