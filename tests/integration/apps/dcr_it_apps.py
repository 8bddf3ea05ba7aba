"""Tiny applications the integration servers wrap, named by ``DCR_APP=dcr_it_apps:<attr>``.

``wsgi_app`` and ``asgi_app`` answer every request with :data:`BODY`, so a test can tell the
wrapped app's answer from the middleware's. With ``DCR_IT_LOG_DEBUG=1`` the root logger is
configured at DEBUG on stderr, so the server's captured output holds every library log line
(the log-secrets test reads it). Configuring logging here is the application's business, not
the library's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b"hello from the wrapped app\n"

if os.environ.get("DCR_IT_LOG_DEBUG") == "1":
    logging.basicConfig(
        level=logging.DEBUG, format="%(process)d %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("dcr_middleware").setLevel(logging.DEBUG)


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A plain WSGI app: ``200`` with :data:`BODY` for every request."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


async def _home(request: Request) -> Response:
    return Response(BODY, media_type="text/plain")


asgi_app = Starlette(routes=[Route("/{path:path}", _home, methods=["GET", "POST"])])
