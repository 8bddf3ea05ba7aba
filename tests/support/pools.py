"""Holding Redis connections from many callers at once: the checks of the bounded wait for a
connection (``DCR_REDIS_MAX_CONNECTIONS``, ``DCR_REDIS_POOL_TIMEOUT``), shared by the one-Redis
tests (``tests/integration/test_bursts.py``) and the Cluster and Sentinel ones
(``tests/cluster/test_pool_wait.py``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import redis

from dcr_middleware import Settings
from dcr_middleware.storage.connect import REDIS_ERRORS, async_client, sync_client

# In-process: each command (BLPOP on an empty list) holds its connection this long.
HOLD = 0.3

Outcome = tuple[BaseException | None, float]


def hold_concurrently(settings: Settings, api: str, count: int, hold: float) -> list[Outcome]:
    """``count`` commands at once, each holding a connection for ``hold`` seconds (``BLPOP`` on
    an empty list), through the ``api`` ("sync": threads, "async": tasks) client of
    ``settings``; each command's Redis error (or ``None``) and how long it took."""
    key = f"{{{settings.key_prefix}}}:nothing"

    def timed(call: Callable[[], Any]) -> Outcome:
        started = time.perf_counter()
        try:
            call()
        except REDIS_ERRORS as exc:
            return exc, time.perf_counter() - started
        return None, time.perf_counter() - started

    if api == "sync":
        client = sync_client(settings)
        try:
            with concurrent.futures.ThreadPoolExecutor(count) as threads:
                futures = [
                    threads.submit(timed, lambda: client.blpop([key], timeout=hold))
                    for _ in range(count)
                ]
                return [f.result(timeout=60) for f in futures]
        finally:
            client.close()

    async def run() -> list[Outcome]:
        aclient = async_client(settings)

        async def one() -> Outcome:
            started = time.perf_counter()
            try:
                await aclient.blpop([key], timeout=hold)
            except REDIS_ERRORS as exc:
                return exc, time.perf_counter() - started
            return None, time.perf_counter() - started

        try:
            return list(await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), 60))
        finally:
            await aclient.aclose()

    return asyncio.run(run())


def assert_all_waited(outcomes: list[Outcome], size: int, hold: float) -> None:
    """Every command succeeded, and the slowest waited for others: ``size`` connections serve
    ``len(outcomes)`` holds of ``hold`` s in no less than ``len / size`` rounds."""
    assert [error for error, _ in outcomes] == [None] * len(outcomes)
    rounds = -(-len(outcomes) // size)
    assert max(seconds for _, seconds in outcomes) >= (rounds - 0.5) * hold


def assert_wait_bounded(outcomes: list[Outcome], size: int, hold: float, wait: float) -> None:
    """``size`` commands got a connection and finished; every other one failed after about
    ``wait`` s, well before a connection came free."""
    failed = [(error, seconds) for error, seconds in outcomes if error is not None]
    assert len(failed) == len(outcomes) - size, outcomes
    for error, seconds in failed:
        assert isinstance(error, redis.ConnectionError), error
        assert "No connection available" in str(error)
        assert wait * 0.9 <= seconds < hold - 0.2, (error, seconds)
