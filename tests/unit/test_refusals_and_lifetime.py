"""The per-process refusal memory, and the embedded store's registration step and lifetimes."""

from __future__ import annotations

import pytest

from dcr_middleware.core.ratelimit import Limit, RateDecision
from dcr_middleware.core.refusals import Refusals
from dcr_middleware.storage import memory
from dcr_middleware.storage.base import Attempt, Lifetime, Outcome

LIMITS = (Limit(2, 60),)
REFUSED = RateDecision(False, LIMITS[0], 0, 30, 30, 29_500)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_refusal_is_remembered_until_its_retry_time_counted_from_the_send() -> None:
    clock = Clock()
    refusals = Refusals(clock=clock)
    refusals.note("ip:a", LIMITS, REFUSED, sent_at=99.0)  # sent 1 s ago: 28.5 s left
    recalled = refusals.recall("ip:a", LIMITS)
    assert recalled is not None
    assert (recalled.allowed, recalled.retry_after_ms, recalled.retry_after_seconds) == (
        False,
        28_500,
        29,
    )
    assert recalled.reset_seconds == 29
    assert refusals.recall("ip:b", LIMITS) is None  # another bucket
    assert refusals.recall("ip:a", (Limit(3, 60),)) is None  # other limits (a token policy)
    clock.now = 99.0 + 29.5  # the refusal has ended exactly
    assert refusals.recall("ip:a", LIMITS) is None


def test_allowed_decisions_are_not_remembered() -> None:
    refusals = Refusals(clock=Clock())
    refusals.note("ip:a", LIMITS, RateDecision(True, LIMITS[0], 1, 30), sent_at=100.0)
    assert refusals.recall("ip:a", LIMITS) is None


def test_refusal_memory_is_bounded() -> None:
    clock = Clock()
    refusals = Refusals(size=4, clock=clock)
    for n in range(10):
        refusals.note(f"ip:{n}", LIMITS, REFUSED, sent_at=clock.now)
    assert len(refusals._until) <= 4
    assert refusals.recall("ip:9", LIMITS) is not None  # the newest is kept


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1_000_000.0]
    monkeypatch.setattr(memory.time, "time", lambda: now[0])
    return now


def attempt(client_id: str = "c1", record: str = "r1", **kw: object) -> Attempt:
    return Attempt(client_id, record, **kw)  # type: ignore[arg-type]


def test_memory_register_refused_by_rate_limit_charges_nothing(clock: list[float]) -> None:
    backend = memory.MemoryBackend()
    outcomes = [
        backend.register(attempt(f"c{n}", f"r{n}", bucket="ip:a", limits=LIMITS)).outcome
        for n in range(3)
    ]
    assert outcomes == [Outcome.CREATED, Outcome.CREATED, Outcome.LIMITED]
    assert backend.get("c2") is None


def test_memory_register_is_retry_safe_and_never_overwrites(clock: list[float]) -> None:
    backend = memory.MemoryBackend()
    first = backend.register(attempt(bucket="ip:a", limits=LIMITS, cap=1))
    again = backend.register(attempt(bucket="ip:a", limits=LIMITS, cap=1))
    other = backend.register(attempt(record="another", cap=1))
    assert (first.outcome, again.outcome, other.outcome) == (
        Outcome.CREATED,
        Outcome.CREATED,
        Outcome.TAKEN,
    )
    # The retry charged nothing: one more request still fits in the 2-request burst.
    assert backend.hit("ip:a", LIMITS).allowed
    assert backend.reserve(2)  # one place taken by the first create only


def test_memory_register_token_and_cap(clock: list[float]) -> None:
    backend = memory.MemoryBackend()
    backend.token_put("d", {"uses": "1"}, 0)
    assert backend.register(attempt("a", "ra", token="d", cap=5)).outcome is Outcome.CREATED
    assert backend.register(attempt("b", "rb", token="d", cap=5)).outcome is Outcome.TOKEN_SPENT
    assert backend.register(attempt("c", "rc", cap=1)).outcome is Outcome.CAPPED
    assert backend.get("b") is None and backend.get("c") is None


def test_memory_idle_ttl_expires_unused_clients_and_lookups_renew(clock: list[float]) -> None:
    backend = memory.MemoryBackend()
    lifetime = Lifetime.of(100)  # refresh at most every 10 s
    assert lifetime == Lifetime(100_000, 10_000)
    backend.register(attempt("used", "r1", idle_ttl_ms=100_000))
    backend.register(attempt("idle", "r2", idle_ttl_ms=100_000))
    for _ in range(15):  # 150 s, a lookup every 10 s
        clock[0] += 10
        assert backend.lookup("used", lifetime) == "r1"
    assert backend.get("idle") is None
    assert backend.lookup("idle", lifetime) is None
    clock[0] += 99
    assert backend.get("used") == "r1"
    clock[0] += 2
    assert backend.get("used") is None


def test_lifetime_refresh_interval() -> None:
    assert Lifetime.of(0) == Lifetime(0, 86_400_000)
    assert Lifetime.of(90 * 86400).refresh_ms == 86_400_000  # at most daily
    assert Lifetime.of(3600).refresh_ms == 360_000  # a tenth of the TTL
