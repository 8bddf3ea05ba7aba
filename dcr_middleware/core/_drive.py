"""The two loops that run a flow: one blocking, one asyncio (re-exported by
:mod:`dcr_middleware.drivers`, and used by the Redis backends to run their command flows).

A flow (see :mod:`.ops`) is a generator that yields requests and receives their results; it
returns its answer. The loops only execute what it asks: every ordering decision is in the
flow, once (httpx's ``Auth.auth_flow`` with ``sync_auth_flow`` / ``async_auth_flow`` is the
model). A request whose execution raises has its exception thrown into the flow at the
``yield`` that asked for it, so the flow handles the error where it made the call.

Pure: ``execute`` does the I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .ops import Flow

T = TypeVar("T")


def run(flow: Flow[T], execute: Callable[[Any], Any]) -> T:
    """Run ``flow`` to its answer, executing each request it yields with ``execute``."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            result, error = execute(request), None
        except Exception as exc:
            result, error = None, exc


async def arun(flow: Flow[T], execute: Callable[[Any], Awaitable[Any]]) -> T:
    """Run ``flow`` to its answer, awaiting each request it yields with ``execute``."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            result, error = await execute(request), None
        except Exception as exc:
            result, error = None, exc
