"""The apps under test: one bare app per protocol and the same app behind dcr-middleware.

Imported by uvicorn/gunicorn with ``--app-dir``/``--chdir benchmarks/apps``. The middleware reads
its settings from the ``DCR_*`` environment the harness sets (``DCR_REDIS_URL``, ``DCR_RATE_LIMIT``
...), once, when this module is imported in each worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

BODY = b"hello from the bare app\n"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ASGI_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]
_WSGI_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


async def bare_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """A pure ASGI app: 200 with a fixed body for every HTTP request; lifespan acknowledged."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": _ASGI_HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def bare_wsgi(
    environ: dict[str, Any], start_response: Callable[[str, list[tuple[str, str]]], Any]
) -> Iterable[bytes]:
    """A plain WSGI app: 200 with a fixed body for every request."""
    start_response("200 OK", _WSGI_HEADERS)
    return [BODY]
