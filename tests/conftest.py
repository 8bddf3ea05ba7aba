"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only (the servers we target run asyncio)."""
    return "asyncio"
