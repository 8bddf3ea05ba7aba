"""HTTP for the server tests: registration bodies, ``POST /register`` through httpx, and a small
HTTP/1.1 client on asyncio streams for bursts, per-request headers and source addresses."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .processes import HOST

CONFIDENTIAL = {"redirect_uris": ["https://app.example.com/cb"]}
PUBLIC = {
    "redirect_uris": ["http://127.0.0.1/cb"],
    "token_endpoint_auth_method": "none",
}
JSON = {"Content-Type": "application/json"}


def register(client: httpx.Client, body: Mapping[str, Any] = CONFIDENTIAL) -> httpx.Response:
    """``POST /register`` with a JSON body."""
    return client.post("/register", content=json.dumps(body), headers=JSON)


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> RawResponse:
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection before answering")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    # Both servers answer these requests with a Content-Length (no chunked bodies).
    body = await reader.readexactly(int(headers["content-length"]))
    return RawResponse(status, headers, body)


async def post_many(
    port: int, path: str, body: bytes, count: int, in_flight: int, deadline: float
) -> list[RawResponse]:
    """POST ``body`` ``count`` times with ``in_flight`` keep-alive connections at once.

    A deliberately small HTTP/1.1 client on asyncio streams: httpx's async pool costs several
    milliseconds of client CPU per request at 50 connections, so on two cores it, not the
    server, would set the measured rate. A request is never re-sent (that could register a
    client twice); a connection the server closes (gunicorn sync workers answer
    ``Connection: close``) is reopened for the next one. Bounded by ``deadline`` seconds.
    """
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    remaining = iter(range(count))
    responses: list[RawResponse] = []

    async def worker() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            for _ in remaining:
                if connection is None:
                    connection = await asyncio.open_connection(HOST, port)
                response = await exchange(*connection, request)
                responses.append(response)
                if response.headers.get("connection", "").lower() == "close":
                    connection[1].close()
                    await connection[1].wait_closed()
                    connection = None
        finally:
            if connection is not None:
                connection[1].close()
                with contextlib.suppress(OSError):
                    await connection[1].wait_closed()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(in_flight))), deadline)
    return responses


def raw_post(
    path: str, body: bytes, headers: Mapping[str, str] | None = None, host: str = HOST
) -> bytes:
    """One HTTP/1.1 ``POST`` with a JSON body and extra ``headers``, as bytes on the wire
    (``host`` is the ``Host`` header's value)."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def send_concurrently(
    port: int,
    requests: Sequence[bytes],
    deadline: float,
    host: str = HOST,
    sources: Sequence[str] | None = None,
) -> list[RawResponse]:
    """Open one connection per request (from ``sources[i]`` when given, e.g. ``127.0.0.2``:
    every 127/8 address is loopback), and once all are open send every request at once; the
    answers come back in request order. Nothing is re-sent; bounded by ``deadline`` seconds."""
    connected = 0

    async def one(index: int, request: bytes) -> RawResponse:
        nonlocal connected
        local = (sources[index], 0) if sources is not None else None
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        try:
            connected += 1
            if connected == len(requests):
                opened.set()
            await opened.wait()
            return await exchange(reader, writer, request)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def run() -> list[RawResponse]:
        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))

    opened = asyncio.Event()
    return await asyncio.wait_for(run(), deadline)
