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
then are they all charged, so refused requests cost nothing; that holds across two buckets too
(an IPv6 address's /64 and its wider prefix, charged together). The same arithmetic runs in Redis
(``storage/lua/gcra.lua``, in milliseconds) and in the embedded store
(:func:`decide`).

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

import dataclasses
import math
import re
from dataclasses import dataclass

from ._env import parse_duration

# The units of the ``limits`` grammar (Flask-Limiter, slowapi), with its month (30 days) and year
# (12 such months), plus this library's older week and short forms (s, m, h, d, w, sec, min).
_UNITS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 604800,
    "month": 2592000,
    "year": 31104000,
}
_SHORT = {"sec": "second", "s": "second", "min": "minute", "m": "minute", "h": "hour"}
_SHORT |= {"d": "day", "w": "week"}
UNIT_NAMES = ", ".join(_UNITS)
# `N/unit`, `N per unit`, `N/M units` (`10/2 minutes`), `N/15m` (a duration, the older form).
_LIMIT = re.compile(r"^\s*(\d+)\s*(?:/|\s+per\s+)\s*(\d+)?\s*([a-z]+)\s*\Z")
_DURATION_ONLY = re.compile(r"^\s*(\d+)\s*/\s*(\d+\s*[a-z]?)\s*\Z")
_SEPARATORS = re.compile(r"[;,|]")
_EXPECTED = (
    "expected limits like 10/minute, 10 per hour or 10/2 minutes, separated by ';', ',' or '|' "
    f"(units: {UNIT_NAMES}, or a duration such as 15m)"
)


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``count`` requests per ``period`` seconds (with a burst of ``count``).

    ``bucket`` is empty for a limit on the request's own bucket; a limit charged to another
    bucket at the same time (the wider IPv6 prefix of an address) names it. Such limits come
    after the own ones in a tuple of limits, and every limit in the tuple must allow.
    """

    count: int
    period: int
    bucket: str = ""

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
    """Parse limits in the ``limits`` grammar (Flask-Limiter, slowapi): ``10/minute``,
    ``10 per hour``, ``10/2 minutes``, several separated by ``;``, ``,`` or ``|``
    (``10/minute;200/day``). Units: second, minute, hour, day, week, month (30 days), year
    (360 days), singular or plural, or a duration such as ``15m``; ``"off"`` (or empty) means
    no limit."""
    text = raw.strip().lower()
    if text in ("", "off", "none"):
        return ()
    return tuple(_parse_one(part) for part in _SEPARATORS.split(text))


def _parse_one(part: str) -> Limit:
    match = _LIMIT.match(part)
    if match is not None:
        count, multiple, unit = match.groups()
        name = _unit_name(unit)
        if name is None:
            raise ValueError(f"unknown unit {unit!r} in {part.strip()!r}; {_EXPECTED}")
        period = int(multiple or 1) * _UNITS[name]
    else:
        older = _DURATION_ONLY.match(part)  # 5/15m, 2/90s, 3/600
        if older is None:
            raise ValueError(f"{_EXPECTED}, got {part.strip()!r}")
        count, period = older.group(1), parse_duration(older.group(2))
    if int(count) < 1 or period < 1:
        raise ValueError(f"a limit needs at least 1 request per 1 second, got {part.strip()!r}")
    return Limit(int(count), period)


def _unit_name(unit: str) -> str | None:
    if unit in _UNITS:
        return unit
    if unit in _SHORT:
        return _SHORT[unit]
    singular = unit[:-1] if unit.endswith("s") else None
    if singular in _UNITS:
        return singular
    return _SHORT.get(singular) if singular in ("sec", "min") else None


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


def wide_part(limits: tuple[Limit, ...]) -> tuple[str, tuple[Limit, ...]]:
    """The other bucket the limits charge (``""`` when none) and its limits."""
    wide = tuple(limit for limit in limits if limit.bucket)
    return (wide[0].bucket if wide else ""), wide


def own_part(limits: tuple[Limit, ...]) -> tuple[Limit, ...]:
    """The limits on the request's own bucket."""
    return tuple(limit for limit in limits if not limit.bucket)


def detached(limits: tuple[Limit, ...]) -> tuple[Limit, ...]:
    """The other bucket's limits as limits of their own bucket (to charge it alone)."""
    return tuple(dataclasses.replace(limit, bucket="") for limit in limits)


def attached(decision: RateDecision, bucket: str) -> RateDecision:
    """A decision made on ``bucket`` alone, reported on the limit that names it."""
    return dataclasses.replace(decision, limit=dataclasses.replace(decision.limit, bucket=bucket))


def combine(own: RateDecision, wide: RateDecision) -> RateDecision:
    """The decision over both buckets from each one's decision, as :func:`decide` makes it over
    the concatenated limits: a refusal wins (the longer wait; the own bucket's on a tie), else
    the limit with the fewest requests left (the own bucket's on a tie)."""
    if not own.allowed or not wide.allowed:
        if own.allowed or (not wide.allowed and wide.retry_after_ms > own.retry_after_ms):
            return wide
        return own
    return wide if wide.remaining < own.remaining else own


def _name(scope: str, limit: Limit) -> str:
    # The wider IPv6 bucket's limits are named by its prefix length: "ip/48-100/3600".
    wide = f"/{limit.bucket.rsplit('/', 1)[-1]}" if limit.bucket else ""
    return f"{scope}{wide}-{limit.field}"


def rate_limit_headers(
    limits: tuple[Limit, ...], decision: RateDecision, scope: str
) -> list[tuple[str, str]]:
    """``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers-10),
    plus ``Retry-After`` in whole seconds, rounded up, when refused."""
    policies = ", ".join(f'"{_name(scope, lim)}";q={lim.count};w={lim.period}' for lim in limits)
    current = f'"{_name(scope, decision.limit)}";r={decision.remaining};t={decision.reset_seconds}'
    headers = [("RateLimit-Policy", policies), ("RateLimit", current)]
    if not decision.allowed:
        headers.append(("Retry-After", str(max(1, decision.retry_after_seconds))))
    return headers


def script_args(limits: tuple[Limit, ...], now_ms: int) -> list[str | int]:
    """The ARGV of ``storage/lua/ratelimit.lua`` for ``limits``, checked at ``now_ms`` (epoch ms,
    the caller's clock): the own bucket's group, then the other bucket's when there is one (each:
    now, n, then field, interval, window per limit)."""
    args: list[str | int] = []
    for group in (own_part(limits), wide_part(limits)[1]):
        if group or not args:
            args += [now_ms, len(group)]
            for limit in group:
                args += [limit.field, limit.interval_ms, limit.window_ms]
    return args


def decision_from_reply(reply: list[int], limits: tuple[Limit, ...]) -> RateDecision:
    """Read the reply of ``gcra()`` in ``storage/lua/gcra.lua``."""
    allowed, index, remaining, reset, retry, retry_ms = (int(x) for x in reply)
    return RateDecision(bool(allowed), limits[index - 1], remaining, reset, retry, retry_ms)
