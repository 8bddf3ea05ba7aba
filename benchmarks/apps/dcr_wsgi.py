"""``bare_wsgi`` behind ``DCRWSGIMiddleware`` (settings from the ``DCR_*`` environment)."""

from __future__ import annotations

from bench_apps import bare_wsgi

from dcr_middleware import DCRWSGIMiddleware

app = DCRWSGIMiddleware(bare_wsgi)
