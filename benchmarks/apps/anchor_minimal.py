"""Anchor: the practical limit, a minimal hand-written registration handler on redis.asyncio.

Parse the JSON body, check it is an object with ``redirect_uris``, generate the id (and a secret
for confidential clients) with :mod:`secrets`, and write in ONE pipelined round trip: a fixed-window
rate-limit counter for the peer (``INCR`` + ``EXPIRE NX``, never refusing here) and the client
(``SET NX``). No metadata validation beyond that: this is the floor a real implementation sits on.

``app_starlette`` is a Starlette route; ``app_asgi`` the same logic as a pure ASGI callable.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REDIS = redis.asyncio.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _client(metadata: Any) -> dict[str, Any] | None:
    """The client to store, or None when the metadata is unusable."""
    if not isinstance(metadata, dict):
        return None
    uris = metadata.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        return None
    now = int(time.time())
    client = {**metadata, "client_id": secrets.token_urlsafe(16), "client_id_issued_at": now}
    if metadata.get("token_endpoint_auth_method", "client_secret_basic") != "none":
        client["client_secret"] = secrets.token_urlsafe(32)
        client["client_secret_expires_at"] = 0
    return client


async def _store(client: dict[str, Any], peer: str) -> bool:
    """One round trip: rate counter (INCR, EXPIRE NX) and the client (SET NX)."""
    bucket = f"min:rate:{{{peer}}}:{int(time.time()) // 3600}"
    async with REDIS.pipeline(transaction=False) as pipe:
        pipe.incr(bucket)
        pipe.expire(bucket, 3600, nx=True)
        pipe.set(f"min:client:{{{client['client_id']}}}", json.dumps(client), nx=True)
        _count, _expire, stored = await pipe.execute()
    return bool(stored)


async def register(request: Request) -> Response:
    """The Starlette endpoint."""
    try:
        client = _client(await request.json())
    except ValueError:
        client = None
    if client is None:
        return JSONResponse({"error": "invalid_client_metadata"}, status_code=400)
    peer = request.client.host if request.client else "unknown"
    if not await _store(client, peer):
        return JSONResponse({"error": "server_error"}, status_code=500)
    return JSONResponse(client, status_code=201, headers=NO_STORE)


app_starlette = Starlette(routes=[Route("/register", register, methods=["POST"])])

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """The same handler as a pure ASGI app (POST /register only; 404 otherwise)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["method"] != "POST" or scope["path"] != "/register":
        await _answer(send, 404, {"error": "not_found"})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    try:
        client = _client(json.loads(b"".join(chunks)))
    except ValueError:
        client = None
    if client is None:
        await _answer(send, 400, {"error": "invalid_client_metadata"})
        return
    peer = scope["client"][0] if scope.get("client") else "unknown"
    if not await _store(client, peer):
        await _answer(send, 500, {"error": "server_error"})
        return
    await _answer(send, 201, client)
