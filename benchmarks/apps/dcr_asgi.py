"""``bare_asgi`` behind ``DCRMiddleware`` (settings from the ``DCR_*`` environment)."""

from __future__ import annotations

from bench_apps import bare_asgi

from dcr_middleware import DCRMiddleware

app = DCRMiddleware(bare_asgi)
