"""Unit tests of the pure core: no I/O, no environment, milliseconds each."""

from __future__ import annotations

import warnings

# WebOb 1.8 imports the stdlib ``cgi`` module, deprecated since Python 3.11; with warnings as
# errors, importing ``dcr_middleware`` (which imports the WSGI adapter) would fail during
# collection. Silence that one warning for that one import (its proper home is pyproject's
# ``filterwarnings``).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    import webob  # noqa: F401
