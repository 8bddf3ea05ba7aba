"""Fixtures: the integration suite's session ``redis-server`` fixture, the very same definition,
so a missing ``redis-server`` skips these tests, and fails them under ``CI=true``."""

from __future__ import annotations

from integration.conftest import redis_server

__all__ = ["redis_server"]
