"""Drive both middlewares the same way and read their answers in one shape.

The ASGI side goes through ``httpx.ASGITransport`` (or :class:`RawASGI` when the test needs to
control the ASGI messages themselves, e.g. a chunked body or a disconnect); the WSGI side goes
through ``httpx.WSGITransport`` with the app under ``wsgiref.validate.validator``. Each side gets
its own embedded store, so no test sees another test's clients.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from wsgiref.validate import validator

import httpx

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    DCRMiddleware,
    DCRWSGIMiddleware,
    Settings,
    StorageError,
)
from dcr_middleware.core.ratelimit import Limit, RateDecision
from dcr_middleware.storage.base import Attempt, Attempted
from dcr_middleware.storage.memory import AsyncMemoryBackend, MemoryBackend

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BASE_URL = "http://testserver"


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers with lower-cased names, body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def from_httpx(response: httpx.Response) -> Answer:
    """An :class:`Answer` from an httpx response (repeated headers joined with ``, ``)."""
    headers = {name.lower(): value for name, value in response.headers.items()}
    return Answer(response.status_code, headers, response.content)


class DownBackend(MemoryBackend):
    """An embedded store whose service is down: every call fails like Redis being away."""

    def create(self, client_id: str, record: str, idle_ttl_ms: int = 0) -> bool:
        raise StorageError("the client store is unavailable; try again later")

    def register(self, attempt: Attempt) -> Attempted:
        raise StorageError("the client store is unavailable; try again later")

    def hit(self, bucket: str, limits: tuple[Limit, ...]) -> RateDecision:
        raise StorageError("the client store is unavailable; try again later")


def record_count(backend: MemoryBackend) -> int:
    """How many client records the embedded store holds."""
    return len(backend._records)


async def unreachable_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """A wrapped app that must never be called (the middleware answers the request)."""
    raise AssertionError(f"request passed through to the wrapped app: {scope.get('path')}")


def unreachable_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A wrapped WSGI app that must never be called (the middleware answers the request)."""
    raise AssertionError(f"request passed through to the wrapped app: {environ.get('PATH_INFO')}")


@dataclass
class ASGISide:
    """The ASGI middleware with its own store."""

    backend: MemoryBackend
    store: AsyncClientStore
    app: DCRMiddleware


@dataclass
class WSGISide:
    """The WSGI middleware with its own store."""

    backend: MemoryBackend
    store: ClientStore
    app: DCRWSGIMiddleware


def asgi_side(
    settings: Settings,
    backend: MemoryBackend | None = None,
    app: Callable[[Scope, Receive, Send], Awaitable[None]] = unreachable_asgi,
) -> ASGISide:
    """A fresh ASGI middleware over ``app`` with a store of its own."""
    backend = MemoryBackend(settings.key_prefix) if backend is None else backend
    store = AsyncClientStore(settings, backend=AsyncMemoryBackend(backend))
    return ASGISide(backend, store, DCRMiddleware(app, settings, store=store))


def wsgi_side(
    settings: Settings,
    backend: MemoryBackend | None = None,
    app: WSGIApplication = unreachable_wsgi,
) -> WSGISide:
    """A fresh WSGI middleware over ``app`` with a store of its own."""
    backend = MemoryBackend(settings.key_prefix) if backend is None else backend
    store = ClientStore(settings, backend=backend)
    return WSGISide(backend, store, DCRWSGIMiddleware(app, settings, store=store))


async def asgi_request(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    method: str,
    path: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Send one request through ``httpx.ASGITransport``."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        response = await client.request(method, path, content=content, headers=headers)
    return from_httpx(response)


def wsgi_request(
    app: WSGIApplication,
    method: str,
    path: str,
    *,
    content: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
    validate: bool = True,
) -> Answer:
    """Send one request through ``httpx.WSGITransport``, the app under ``wsgiref.validate``."""
    transport = httpx.WSGITransport(app=validator(app) if validate else app)
    with httpx.Client(transport=transport, base_url=BASE_URL) as client:
        response = client.request(method, path, content=content, headers=headers)
    return from_httpx(response)


def input_terminated(app: WSGIApplication) -> WSGIApplication:
    """Mark the request stream as terminated, as gunicorn does for chunked request bodies."""

    def marked(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return marked


def http_scope(
    method: str, path: str, headers: Iterable[tuple[str, str]] = (), query_string: bytes = b""
) -> dict[str, Any]:
    """A minimal ASGI ``http`` scope as a server would build it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "root_path": "",
        "query_string": query_string,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }


@dataclass
class RawASGI:
    """A hand-driven ASGI server: ``receive`` hands out ``incoming``, ``send`` records.

    Once ``incoming`` is exhausted ``receive`` reports a disconnect, as a server does when the
    client has gone.
    """

    incoming: list[Message]
    sent: list[Message] = field(default_factory=list)
    received: int = 0

    async def receive(self) -> Message:
        self.received += 1
        if self.incoming:
            return self.incoming.pop(0)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def answer(self) -> Answer:
        """The recorded response as an :class:`Answer`."""
        start = self.sent[0]
        assert start["type"] == "http.response.start"
        headers: dict[str, str] = {}
        for name, value in start["headers"]:
            key = bytes(name).decode("latin-1").lower()
            text = bytes(value).decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        body = b"".join(m.get("body", b"") for m in self.sent[1:])
        assert all(m["type"] == "http.response.body" for m in self.sent[1:])
        assert not self.sent[-1].get("more_body", False)
        return Answer(start["status"], headers, body)


def body_messages(chunks: Iterable[bytes]) -> list[Message]:
    """``http.request`` messages carrying ``chunks``, the last one without ``more_body``."""
    parts = list(chunks)
    return [
        {"type": "http.request", "body": chunk, "more_body": index < len(parts) - 1}
        for index, chunk in enumerate(parts)
    ]
