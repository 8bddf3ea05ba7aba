"""Rate limiting: policy syntax, the GCRA decision on explicit clocks, the RateLimit header
fields (draft-ietf-httpapi-ratelimit-headers-10) and the Redis script's argument/reply format.

The explicit-clock cases (tests/support/gcra_cases.py, which states the GCRA semantics they pin)
run here against :func:`decide`, and in tests/integration/test_ratelimit_lua.py against the Lua.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.gcra_cases import CASES, NOW, Case, burst

from dcr_middleware.core.ratelimit import (
    Limit,
    RateDecision,
    decide,
    decision_from_reply,
    parse_rate_limits,
    rate_limit_headers,
    script_args,
)

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Bucket:
    """One bucket driven through :func:`decide` the way the stores drive it."""

    def __init__(self, spec: str) -> None:
        self.limits = parse_rate_limits(spec)
        self.tats: list[int | None] = [None] * len(self.limits)

    def hit(self, now_ms: int) -> RateDecision:
        before = list(self.tats)
        decision, new_tats = decide(self.tats, now_ms, self.limits)
        assert self.tats == before, "decide must not mutate the stored TATs"
        assert (new_tats is not None) == decision.allowed
        if new_tats is not None:
            self.tats = list(new_tats)
        return decision


# --- syntax -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("10/minute;200/day", (Limit(10, 60), Limit(200, 86400)), id="two-limits"),
        pytest.param("10/minutes", (Limit(10, 60),), id="plural-unit"),
        pytest.param("5/15m", (Limit(5, 900),), id="duration-unit"),
        pytest.param("2/90s", (Limit(2, 90),), id="duration-seconds"),
        pytest.param("1/second", (Limit(1, 1),), id="one-per-second"),
        pytest.param("3/hour", (Limit(3, 3600),), id="hour"),
        pytest.param("7/days", (Limit(7, 86400),), id="plural-day"),
        pytest.param(" 3 / Hour ; 9 / DAY ", (Limit(3, 3600), Limit(9, 86400)), id="space-case"),
        pytest.param("off", (), id="off"),
        pytest.param("OFF", (), id="off-upper"),
        pytest.param("none", (), id="none"),
        pytest.param("", (), id="empty"),
        pytest.param("   ", (), id="blank"),
        # The `limits` grammar (Flask-Limiter, slowapi).
        pytest.param("10 per minute", (Limit(10, 60),), id="per"),
        pytest.param("10 PER Minute", (Limit(10, 60),), id="per-case"),
        pytest.param("10/2 minutes", (Limit(10, 120),), id="multiple"),
        pytest.param("1 per 2 hours", (Limit(1, 7200),), id="per-multiple"),
        pytest.param("10/minute,200/day", (Limit(10, 60), Limit(200, 86400)), id="comma-separator"),
        pytest.param("10/minute|200/day", (Limit(10, 60), Limit(200, 86400)), id="pipe-separator"),
        pytest.param(
            "10/hour;100/day;2000 per year",
            (Limit(10, 3600), Limit(100, 86400), Limit(2000, 360 * 86400)),
            id="limits-docs-example",
        ),
        pytest.param("100/day, 500/7days", (Limit(100, 86400), Limit(500, 7 * 86400)), id="7days"),
        pytest.param("3/month", (Limit(3, 30 * 86400),), id="month"),
        pytest.param("2/weeks", (Limit(2, 604800),), id="plural-week"),
        pytest.param("4/mins", (Limit(4, 60),), id="plural-short"),
        pytest.param("3/600", (Limit(3, 600),), id="bare-seconds"),
    ],
)
def test_parse_rate_limits_accepts(raw: str, expected: tuple[Limit, ...]) -> None:
    assert parse_rate_limits(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("10", id="no-period"),
        pytest.param("0/minute", id="zero-count"),
        pytest.param("-1/minute", id="negative-count"),
        pytest.param("10/fortnight", id="unknown-unit"),
        pytest.param("x/minute", id="non-numeric-count"),
        pytest.param("1.5/minute", id="fractional-count"),
        pytest.param("10/0s", id="zero-period"),
        pytest.param("10/minute;", id="trailing-separator"),
        pytest.param("10/minute;;5/day", id="empty-part"),
        pytest.param("10/", id="missing-unit"),
        pytest.param("10/minuet", id="misspelled-unit"),
        pytest.param("10 per", id="per-without-unit"),
        pytest.param("10/2 fortnights", id="multiple-of-unknown-unit"),
        pytest.param("10/0 minutes", id="zero-multiple"),
        pytest.param("10/minute||5/day", id="empty-part-pipe"),
    ],
)
def test_parse_rate_limits_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match=r"limit|duration"):
        parse_rate_limits(raw)


@pytest.mark.parametrize("raw", ["10/minuet", "10/fortnight", "10", "10/minute,x"])
def test_parse_rate_limits_error_lists_the_units(raw: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rate_limits(raw)
    for unit in ("second", "minute", "hour", "day", "month", "year"):
        assert unit in str(caught.value)


@pytest.mark.parametrize(
    ("limit", "interval_ms", "field"),
    [
        pytest.param(Limit(10, 60), 6000, "10/60", id="10-per-minute"),
        pytest.param(Limit(1, 1), 1000, "1/1", id="1-per-second"),
        pytest.param(Limit(7, 60), 8571, "7/60", id="rounded-down"),
        pytest.param(Limit(5000, 1), 1, "5000/1", id="at-least-1ms"),
    ],
)
def test_limit_interval_and_field(limit: Limit, interval_ms: int, field: str) -> None:
    assert limit.interval_ms == interval_ms
    assert limit.field == field


# --- GCRA on an explicit clock ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_decide_explicit_clock(case: Case) -> None:
    case(Bucket)


def test_decide_refused_requests_charge_no_bucket() -> None:
    limits = parse_rate_limits("3/minute;5/hour")
    tats: list[int | None] = [NOW + 60_000, NOW + 720_000]  # minute full, hour has room
    for _ in range(5):
        decision, new_tats = decide(tats, NOW, limits)
        assert not decision.allowed
        assert new_tats is None
    assert tats == [NOW + 60_000, NOW + 720_000]
    decision, new_tats = decide(tats, NOW + 20_000, limits)
    assert decision.allowed
    assert new_tats == [NOW + 80_000, NOW + 1_440_000]


# --- properties ---------------------------------------------------------------------------------

limits_strategy = st.lists(
    st.builds(
        Limit,
        count=st.one_of(
            st.integers(min_value=1, max_value=12), st.integers(min_value=13, max_value=500)
        ),
        period=st.sampled_from([1, 2, 7, 60, 90, 3600]),
    ),
    min_size=1,
    max_size=2,
    unique_by=lambda limit: limit.field,
).map(tuple)


def _times(limits: tuple[Limit, ...]) -> st.SearchStrategy[list[int]]:
    longest = max(limit.period for limit in limits) * 1000
    steps = st.one_of(
        st.just(0),
        st.integers(min_value=0, max_value=max(limit.interval_ms for limit in limits)),
        st.integers(min_value=0, max_value=2 * longest),
    )
    return st.lists(steps, min_size=1, max_size=80).map(
        lambda deltas: [NOW + sum(deltas[: i + 1]) for i in range(len(deltas))]
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[tuple[Limit, ...], list[int]]:
    limits = draw(limits_strategy)
    return limits, draw(_times(limits))


def _run(limits: tuple[Limit, ...], times: list[int]) -> list[RateDecision]:
    tats: list[int | None] = [None] * len(limits)
    decisions = []
    for now in times:
        decision, new_tats = decide(tats, now, limits)
        if new_tats is not None:
            tats = list(new_tats)
        decisions.append(decision)
    return decisions


@PROPERTY
@given(scenarios())
@example(((Limit(48, 1),), [NOW] * 60))  # P / N not whole
@example(((Limit(3, 60),), [NOW] * 4 + [NOW + k * 20_000 for k in range(1, 4)]))  # 2N in P
def test_decide_never_admits_more_than_burst_plus_refill(
    scenario: tuple[tuple[Limit, ...], list[int]],
) -> None:
    limits, times = scenario
    admitted = [t for t, d in zip(times, _run(limits, times), strict=True) if d.allowed]
    for limit in limits:
        for i, start in enumerate(admitted):
            for j in range(i, len(admitted)):
                # Admitted requests i..j span admitted[j] - start ms.
                assert j - i + 1 <= limit.count + (admitted[j] - start) // limit.interval_ms
        if (limit.period * 1000) % limit.count == 0:
            for start in admitted:
                in_window = [t for t in admitted if start <= t <= start + limit.period * 1000]
                assert len(in_window) <= 2 * limit.count


@PROPERTY
@given(limits_strategy, st.integers(min_value=0, max_value=10**13))
@example((Limit(48, 1),), NOW)  # P / N not whole: the window must still hold exactly N
@example((Limit(450, 60),), NOW)
@example((Limit(39, 1), Limit(500, 60)), NOW)
def test_decide_fresh_bucket_burst_is_exactly_the_smallest_count(
    limits: tuple[Limit, ...], now: int
) -> None:
    decisions = _run(limits, [now] * (max(limit.count for limit in limits) + 1))
    admitted = sum(d.allowed for d in decisions)
    assert admitted == min(limit.count for limit in limits)
    assert not decisions[-1].allowed


@PROPERTY
@given(scenarios())
def test_decide_refused_requests_cost_nothing(
    scenario: tuple[tuple[Limit, ...], list[int]],
) -> None:
    limits, times = scenario
    decisions = _run(limits, times)
    admitted = [t for t, d in zip(times, decisions, strict=True) if d.allowed]
    # Replaying only the admitted requests gives the same decisions: refusals left no trace.
    assert _run(limits, admitted) == [d for d in decisions if d.allowed]


@PROPERTY
@given(scenarios())
def test_decide_retry_after_is_honoured(scenario: tuple[tuple[Limit, ...], list[int]]) -> None:
    limits, times = scenario
    tats: list[int | None] = [None] * len(limits)
    for now in times:
        decision, new_tats = decide(tats, now, limits)
        if new_tats is not None:
            tats = list(new_tats)
            assert 0 <= decision.remaining < decision.limit.count
            assert decision.reset_seconds >= 1
            continue
        assert decision.retry_after_seconds >= 1
        later, _ = decide(tats, now + decision.retry_after_seconds * 1000, limits)
        assert later.allowed
        if decision.retry_after_seconds > 1:
            earlier, _ = decide(tats, now + (decision.retry_after_seconds - 1) * 1000, limits)
            assert not earlier.allowed


# --- header fields ------------------------------------------------------------------------------

TWO = (Limit(10, 60), Limit(200, 86400))
POLICY = '"ip-10/60";q=10;w=60, "ip-200/86400";q=200;w=86400'


@pytest.mark.parametrize(
    ("limits", "decision", "scope", "expected"),
    [
        pytest.param(
            TWO,
            RateDecision(True, Limit(10, 60), 9, 6),
            "ip",
            [("RateLimit-Policy", POLICY), ("RateLimit", '"ip-10/60";r=9;t=6')],
            id="allowed",
        ),
        pytest.param(
            TWO,
            RateDecision(False, Limit(10, 60), 0, 20, 20),
            "ip",
            [
                ("RateLimit-Policy", POLICY),
                ("RateLimit", '"ip-10/60";r=0;t=20'),
                ("Retry-After", "20"),
            ],
            id="refused",
        ),
        pytest.param(
            TWO,
            RateDecision(False, Limit(200, 86400), 0, 3600, 3600),
            "ip",
            [
                ("RateLimit-Policy", POLICY),
                ("RateLimit", '"ip-200/86400";r=0;t=3600'),
                ("Retry-After", "3600"),
            ],
            id="refused-by-second-limit",
        ),
        pytest.param(
            (Limit(3, 3600),),
            RateDecision(False, Limit(3, 3600), 0, 0, 0),
            "token",
            [
                ("RateLimit-Policy", '"token-3/3600";q=3;w=3600'),
                ("RateLimit", '"token-3/3600";r=0;t=0'),
                ("Retry-After", "1"),
            ],
            id="retry-after-at-least-1",
        ),
    ],
)
def test_rate_limit_headers_format(
    limits: tuple[Limit, ...], decision: RateDecision, scope: str, expected: list[tuple[str, str]]
) -> None:
    assert rate_limit_headers(limits, decision, scope) == expected


def test_rate_limit_headers_retry_after_rounds_up_end_to_end() -> None:
    bucket = Bucket("3/minute")
    burst(bucket, NOW)
    refused = bucket.hit(NOW + 500)  # due in 19.5 s
    headers = dict(rate_limit_headers(bucket.limits, refused, "ip"))
    assert headers["Retry-After"] == "20"
    assert headers["RateLimit"] == '"ip-3/60";r=0;t=20'


def test_rate_limit_headers_no_retry_after_when_allowed() -> None:
    bucket = Bucket("3/minute")
    names = [name for name, _ in rate_limit_headers(bucket.limits, bucket.hit(NOW), "ip")]
    assert names == ["RateLimit-Policy", "RateLimit"]


# --- the Redis script's interface -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        pytest.param(TWO, [NOW, 2, "10/60", 6000, 60000, "200/86400", 432000, 86400000], id="two"),
        pytest.param((Limit(1, 1),), [NOW, 1, "1/1", 1000, 1000], id="one"),
        # The burst window is N whole intervals, so N at once even when P / N is rounded down.
        pytest.param((Limit(7, 60),), [NOW, 1, "7/60", 8571, 59997], id="uneven"),
        pytest.param((Limit(450, 60),), [NOW, 1, "450/60", 133, 59850], id="uneven-large"),
        pytest.param((), [NOW, 0], id="none"),
    ],
)
def test_script_args_layout(limits: tuple[Limit, ...], expected: list[str | int]) -> None:
    # The caller's clock first: the script decides at the time it is given (see ratelimit.py).
    assert script_args(limits, NOW) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param([1, 1, 9, 6, 0, 0], RateDecision(True, TWO[0], 9, 6, 0), id="allowed-first"),
        pytest.param(
            [1, 2, 5, 30, 0, 0], RateDecision(True, TWO[1], 5, 30, 0), id="allowed-second"
        ),
        pytest.param(
            [0, 2, 0, 120, 120, 119_500],
            RateDecision(False, TWO[1], 0, 120, 120, 119_500),
            id="refused-second",
        ),
    ],
)
def test_decision_from_reply(reply: list[int], expected: RateDecision) -> None:
    assert decision_from_reply(reply, TWO) == expected


@PROPERTY
@given(scenarios())
def test_decision_from_reply_round_trips_decide(
    scenario: tuple[tuple[Limit, ...], list[int]],
) -> None:
    limits, times = scenario
    for decision in _run(limits, times):
        reply = [
            int(decision.allowed),
            limits.index(decision.limit) + 1,  # the script's index is 1-based
            decision.remaining,
            decision.reset_seconds,
            decision.retry_after_seconds,
            decision.retry_after_ms,
        ]
        assert decision_from_reply(reply, limits) == decision
        assert decision.retry_after_seconds == math.ceil(decision.retry_after_ms / 1000)
