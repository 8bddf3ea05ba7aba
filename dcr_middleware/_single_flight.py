"""One run of a piece of work per key at a time, in this process: concurrent callers with the
same key wait for the first one's result instead of doing the work again.

Used for Client ID Metadata Documents: a burst of lookups of one unknown URL client id reads
the cache, charges the fetch budgets and fetches once per worker, not once per request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Blocking: the first caller of a key runs the work, the others wait for its result (or
    its exception); the wait is as bounded as the work is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Future[T]] = {}

    def do(self, key: str, work: Callable[[], T]) -> T:
        """``work()``'s result, shared with every concurrent caller of ``key``."""
        with self._lock:
            running = self._running.get(key)
            leader = running is None
            if running is None:
                running = self._running[key] = Future()
        if leader:
            try:
                running.set_result(work())
            except BaseException as exc:  # handed to every caller waiting on this key
                running.set_exception(exc)
            finally:
                with self._lock:
                    del self._running[key]
        return running.result()


class AsyncSingleFlight(Generic[T]):
    """asyncio: the first caller of a key starts the work as a task, every caller awaits it;
    a caller that is cancelled leaves the work running for the others."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[T]] = {}

    async def do(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """``await work()``'s result, shared with every concurrent caller of ``key``."""
        task = self._running.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have been cancelled
