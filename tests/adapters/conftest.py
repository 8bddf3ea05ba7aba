"""Fixtures shared by the adapter tests."""

from __future__ import annotations

import warnings

import pytest

# WebOb 1.8 imports the stdlib ``cgi`` module, deprecated since Python 3.11; with warnings as
# errors, importing ``dcr_middleware`` (which imports the WSGI adapter) would fail during
# collection. Silence that one warning for that one import (its proper home is pyproject's
# ``filterwarnings``).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    import webob  # noqa: F401


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only (the adapters target asyncio servers)."""
    return "asyncio"
