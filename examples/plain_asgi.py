"""An ASGI app that knows nothing of the middleware: it is wrapped by naming it in ``DCR_APP``.

Run it from the repository root (``pip install '.[server]'``)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    DCR_APP=plain_asgi:app uvicorn --no-proxy-headers --app-dir examples dcr_middleware.asgi:app

``dcr_middleware.asgi:app`` imports ``plain_asgi:app`` at server start and wraps it: ``POST
/register`` is answered by the middleware, everything else by this app. Under gunicorn, serve
it with uvicorn workers: ``-k uvicorn_worker.UvicornWorker`` (see ``gunicorn.conf.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

BODY = b"hello from the plain ASGI app\n"

Message = MutableMapping[str, Any]


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})
