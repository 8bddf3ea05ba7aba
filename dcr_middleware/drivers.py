"""The two drivers that run a flow: one blocking, one asyncio.

A flow (see :mod:`dcr_middleware.core.ops`) is a generator that yields operations and receives
their results; it returns its answer. The drivers only execute what it asks: every ordering
decision is in the flow, once, so the WSGI and ASGI sides cannot drift (httpx's
``Auth.auth_flow`` with ``sync_auth_flow`` / ``async_auth_flow`` is the model).

An operation that raises has its exception thrown into the flow at the ``yield`` that asked for
it, so the flow handles storage errors where it made the call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .core.ops import Flow

T = TypeVar("T")


def run(flow: Flow[T], execute: Callable[[Any], Any]) -> T:
    """Run ``flow`` to its answer, executing each operation it yields with ``execute``."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            result, error = execute(op), None
        except Exception as exc:
            result, error = None, exc


async def arun(flow: Flow[T], execute: Callable[[Any], Awaitable[Any]]) -> T:
    """Run ``flow`` to its answer, awaiting each operation it yields with ``execute``."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            result, error = await execute(op), None
        except Exception as exc:
            result, error = None, exc
