"""Fixtures shared by every test folder.

The shared process fixtures and the reaper are plugins in ``tests/support`` (see
``support/__init__.py``): every folder gets them from here, none imports another's conftest.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["support.reaper", "support.fixtures"]


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only (the servers we target run asyncio)."""
    return "asyncio"
