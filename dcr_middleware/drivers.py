"""The two drivers that run a flow: one blocking, one asyncio.

A flow (see :mod:`dcr_middleware.core.ops`) is a generator that yields operations and receives
their results; it returns its answer. The drivers only execute what it asks: every ordering
decision is in the flow, once, so the WSGI and ASGI sides cannot drift (httpx's
``Auth.auth_flow`` with ``sync_auth_flow`` / ``async_auth_flow`` is the model).

An operation that raises has its exception thrown into the flow at the ``yield`` that asked for
it, so the flow handles storage errors where it made the call.

The loops themselves are pure and live in :mod:`dcr_middleware.core._drive`, where the Redis
backends (which import no shell) use them too.
"""

from __future__ import annotations

from .core._drive import arun, run

__all__ = ["arun", "run"]
