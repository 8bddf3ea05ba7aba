"""Per-process memory of rate-limit refusals.

A registration is decided by the store in one round trip together with its rate limit, after the
body is read (``storage/lua/register.lua``). To keep a flood from a refused client cheap, each
process remembers every refusal until its retry time and answers that client's next requests
``429`` before reading their body, with no storage call.

This never refuses a request the store would admit: GCRA's theoretical arrival time only moves
forward, so a bucket refused at time *t* with a retry delay *d* refuses every request until
*t + d*; the memory counts *d* from before the storage call was sent, which is no later than
when the store decided. (A bucket reset by hand in Redis stays refused here until then.)
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable

from .ratelimit import Limit, RateDecision

_Key = tuple[str, tuple[Limit, ...]]


class Refusals:
    """Buckets refused recently, each with the monotonic time its refusal ends."""

    def __init__(self, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._until: dict[_Key, tuple[float, RateDecision]] = {}
        self._lock = threading.Lock()

    def recall(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision | None:
        """The refusal still standing for ``bucket``, with its remaining wait, or ``None``."""
        key = (bucket, limits)
        entry = self._until.get(key)
        if entry is None:
            return None
        until, decision = entry
        left_ms = math.ceil((until - self.clock()) * 1000)
        if left_ms <= 0:
            with self._lock:
                if self._until.get(key) == entry:
                    del self._until[key]
            return None
        wait = math.ceil(left_ms / 1000)
        return dataclasses.replace(
            decision, reset_seconds=wait, retry_after_seconds=wait, retry_after_ms=left_ms
        )

    def note(
        self, bucket: str, limits: tuple[Limit, ...], decision: RateDecision, sent_at: float
    ) -> None:
        """Remember a refusal the store made for a call sent at ``sent_at`` (monotonic)."""
        if decision.allowed or decision.retry_after_ms <= 0:
            return
        with self._lock:
            if len(self._until) >= self.size:
                self._prune()
            self._until[(bucket, limits)] = (sent_at + decision.retry_after_ms / 1000, decision)

    def _prune(self) -> None:
        # Lock held: drop the refusals that ended; if none did, the oldest half.
        now = self.clock()
        ended = [key for key, (until, _) in self._until.items() if until <= now]
        for key in ended or list(self._until)[: self.size // 2 + 1]:
            del self._until[key]
