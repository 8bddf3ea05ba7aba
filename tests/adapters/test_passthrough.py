"""Everything that is not ``POST <path>`` reaches the wrapped app unchanged, both ways.

An echo app records what it sees; the same request is sent to it bare and wrapped, and the two
records and the two answers must be equal. Raw harnesses check the stronger property that the
wrapped app gets the very scope/environ and callables the server passed in, and that its
(streamed) response is handed on as is.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.util import setup_testing_defaults

import httpx
import pytest

from dcr_middleware import Settings

from .harness import (
    BASE_URL,
    Message,
    RawASGI,
    Receive,
    Scope,
    Send,
    asgi_side,
    body_messages,
    http_scope,
    record_count,
    wsgi_side,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

pytestmark = pytest.mark.anyio

SETTINGS = Settings()
RESPONSE_HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("X-App", "echo"),
    ("Set-Cookie", "a=1"),
    ("Set-Cookie", "b=2"),
]

REQUESTS = [
    pytest.param("GET", "/", None, {}, id="get-root"),
    pytest.param("GET", "/register", None, {}, id="get-register"),
    pytest.param("GET", "/register?a=1&b=%20x&c", None, {}, id="get-register-query"),
    pytest.param(
        "POST",
        "/register/",
        b'{"redirect_uris":["https://app.example.com/cb"]}',
        {"Content-Type": "application/json"},
        id="post-register-trailing-slash",
    ),
    pytest.param(
        "POST",
        "/register/abc/def",
        b'{"redirect_uris":["https://app.example.com/cb"]}',
        {"Content-Type": "application/json", "Authorization": "Bearer t0ken"},
        id="post-register-subpath",
    ),
    pytest.param(
        "POST",
        "/Register",
        b'{"redirect_uris":["https://app.example.com/cb"]}',
        {"Content-Type": "application/json"},
        id="post-register-other-case",
    ),
    pytest.param(
        "POST",
        "/registerx",
        b"{}",
        {"Content-Type": "application/json"},
        id="post-register-prefix",
    ),
    pytest.param(
        "PUT",
        "/register",
        b'{"redirect_uris":["https://app.example.com/cb"]}',
        {"Content-Type": "application/json"},
        id="put-register",
    ),
    pytest.param("DELETE", "/register", None, {"X-Trace": "1"}, id="delete-register"),
    pytest.param(
        "POST",
        "/upload?kind=raw",
        b"\xff\x00not json at all\r\n",
        {"Content-Type": "application/octet-stream", "X-Custom": "a, b"},
        id="post-other-binary",
    ),
    pytest.param(
        "POST",
        "/form",
        b"a=1&b=2",
        {"Content-Type": "application/x-www-form-urlencoded"},
        id="post-other-form",
    ),
    pytest.param(
        "POST",
        "/big",
        b"x" * 200_000,
        {"Content-Type": "application/json"},
        id="post-other-over-body-cap",
    ),
    pytest.param(
        "PUT",
        "/items/1",
        b'{"name": "x"}',
        {"Content-Type": "application/json", "Accept": "application/json"},
        id="put-other",
    ),
]


def asgi_echo(seen: list[dict[str, Any]]) -> Any:
    """An ASGI app that records the request it got and answers with its body."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        seen.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "raw_path": scope.get("raw_path"),
                "query_string": scope["query_string"],
                "headers": list(scope["headers"]),
                "body": body,
            }
        )
        headers = [(k.lower().encode(), v.encode()) for k, v in RESPONSE_HEADERS]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": b"echo:" + body})

    return app


def wsgi_echo(seen: list[dict[str, Any]]) -> WSGIApplication:
    """A WSGI app that records the request it got and answers with its body."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        seen.append(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ["PATH_INFO"],
                "query": environ["QUERY_STRING"],
                "content_type": environ.get("CONTENT_TYPE"),
                "content_length": environ.get("CONTENT_LENGTH"),
                "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
                "body": body,
            }
        )
        start_response("202 Accepted", list(RESPONSE_HEADERS))
        return [b"echo:", body]

    return app


def _answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, response.headers.multi_items(), response.content


@pytest.mark.parametrize(("method", "path", "body", "headers"), REQUESTS)
async def test_asgi_passthrough_request_and_response_unchanged(
    method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> None:
    bare: list[dict[str, Any]] = []
    wrapped: list[dict[str, Any]] = []
    side = asgi_side(SETTINGS, app=asgi_echo(wrapped))
    answers = []
    for app in (asgi_echo(bare), side.app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            response = await client.request(method, path, content=body, headers=headers)
        answers.append(_answer(response))

    assert len(wrapped) == 1
    assert wrapped == bare
    assert wrapped[0]["method"] == method
    assert wrapped[0]["body"] == (body or b"")
    assert answers[1] == answers[0]
    assert answers[1][0] == 202
    assert answers[1][2] == b"echo:" + (body or b"")
    assert record_count(side.backend) == 0


@pytest.mark.parametrize(("method", "path", "body", "headers"), REQUESTS)
def test_wsgi_passthrough_request_and_response_unchanged(
    method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> None:
    from wsgiref.validate import validator

    bare: list[dict[str, Any]] = []
    wrapped: list[dict[str, Any]] = []
    side = wsgi_side(SETTINGS, app=wsgi_echo(wrapped))
    answers = []
    for app in (wsgi_echo(bare), side.app):
        transport = httpx.WSGITransport(app=validator(app))
        with httpx.Client(transport=transport, base_url=BASE_URL) as client:
            response = client.request(method, path, content=body, headers=headers)
        answers.append(_answer(response))

    assert len(wrapped) == 1
    assert wrapped == bare
    assert wrapped[0]["method"] == method
    assert wrapped[0]["body"] == (body or b"")
    assert answers[1] == answers[0]
    assert answers[1][0] == 202
    assert answers[1][2] == b"echo:" + (body or b"")
    assert record_count(side.backend) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/register", id="get-register"),
        pytest.param("POST", "/register/", id="post-register-slash"),
        pytest.param("POST", "/other", id="post-other"),
    ],
)
async def test_asgi_passthrough_gets_same_scope_receive_and_send(method: str, path: str) -> None:
    calls: list[tuple[Scope, Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope, receive, send))

    side = asgi_side(SETTINGS, app=inner)
    scope = http_scope(method, path, [("Content-Type", "application/json")])
    server = RawASGI(body_messages([b"{}"]))
    receive, send = server.receive, server.send

    await side.app(scope, receive, send)

    assert len(calls) == 1
    got_scope, got_receive, got_send = calls[0]
    assert got_scope is scope
    assert got_receive is receive
    assert got_send is send
    # The middleware read nothing and sent nothing on the app's behalf.
    assert server.received == 0
    assert server.sent == []


async def test_asgi_passthrough_streamed_response_messages_unchanged() -> None:
    chunks = [b"first,", b"", b"second,", b"third"]
    start: Message = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/event-stream"), (b"x-stream", b"1")],
    }
    messages: list[Message] = [
        start,
        *({"type": "http.response.body", "body": c, "more_body": True} for c in chunks),
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]

    async def streamer(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    side = asgi_side(SETTINGS, app=streamer)
    bare, wrapped = RawASGI([]), RawASGI([])

    await streamer(http_scope("GET", "/events"), bare.receive, bare.send)
    await side.app(http_scope("GET", "/events"), wrapped.receive, wrapped.send)

    assert wrapped.sent == bare.sent == messages
    transport = httpx.ASGITransport(app=side.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        response = await client.get("/events")
    assert response.status_code == 200
    assert response.headers["x-stream"] == "1"
    assert response.headers["content-type"] == "text/event-stream"
    assert response.content == b"".join(chunks)


async def test_asgi_passthrough_streamed_request_body_reaches_app() -> None:
    seen: list[dict[str, Any]] = []
    side = asgi_side(SETTINGS, app=asgi_echo(seen))
    chunks = [b"part-1;", b"part-2;", b"", b"part-3"]
    scope = http_scope("POST", "/upload", [("Transfer-Encoding", "chunked")])
    server = RawASGI(body_messages(chunks))

    await side.app(scope, server.receive, server.send)

    assert seen[0]["body"] == b"".join(chunks)
    assert server.received == len(chunks)
    assert server.answer().status == 202
    assert server.answer().body == b"echo:" + b"".join(chunks)


def _stream_app(chunks: list[bytes], calls: list[WSGIEnvironment]) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        calls.append(environ)
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Stream", "1")])

        def generate() -> Iterator[bytes]:
            yield from chunks

        return generate()

    return app


def test_wsgi_passthrough_streamed_response_unchanged() -> None:
    from wsgiref.validate import validator

    chunks = [b"first,", b"", b"second,", b"third"]
    calls: list[WSGIEnvironment] = []
    side = wsgi_side(SETTINGS, app=_stream_app(chunks, calls))

    transport = httpx.WSGITransport(app=validator(side.app))
    with (
        httpx.Client(transport=transport, base_url=BASE_URL) as client,
        client.stream("GET", "/events") as response,
    ):
        received = list(response.iter_raw())

    assert response.status_code == 200
    assert response.headers["x-stream"] == "1"
    assert response.headers["content-type"] == "text/plain"
    assert b"".join(received) == b"".join(chunks)
    assert [c for c in received if c] == [c for c in chunks if c]
    assert len(calls) == 1


def test_wsgi_passthrough_same_environ_start_response_and_iterable() -> None:
    returned: list[Iterable[bytes]] = []
    calls: list[tuple[WSGIEnvironment, StartResponse]] = []

    def inner(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        calls.append((environ, start_response))
        start_response("200 OK", [("Content-Type", "text/plain")])
        result = iter([b"a", b"b"])
        returned.append(result)
        return result

    side = wsgi_side(SETTINGS, app=inner)
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    body = io.BytesIO(b"untouched")
    environ.update(
        REQUEST_METHOD="POST",
        PATH_INFO="/register/x/y",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH="9",
    )
    environ["wsgi.input"] = body

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return lambda data: None

    result = side.app(environ, start_response)

    assert calls == [(environ, start_response)]
    assert calls[0][0] is environ
    assert result is returned[0]
    assert body.tell() == 0  # the middleware did not read the app's body


@pytest.mark.parametrize("kind", ["websocket", "lifespan"])
async def test_asgi_passthrough_non_http_scopes_untouched(kind: str) -> None:
    calls: list[tuple[Scope, Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope, receive, send))

    side = asgi_side(SETTINGS, app=inner)
    # A websocket to the registration path itself must still go to the app.
    scope: dict[str, Any] = {"type": kind, "asgi": {"version": "3.0"}, "state": {}}
    if kind == "websocket":
        scope.update(http_scope("GET", "/register"), type="websocket", scheme="ws")
        scope.pop("method")
    server = RawASGI([{"type": f"{kind}.connect" if kind == "websocket" else "lifespan.startup"}])
    receive, send = server.receive, server.send

    await side.app(scope, receive, send)

    assert len(calls) == 1
    assert calls[0][0] is scope
    assert calls[0][1] is receive
    assert calls[0][2] is send
    assert server.received == 0
    assert server.sent == []


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
async def test_passthrough_register_path_follows_settings(kind: str) -> None:
    """With ``path`` changed, ``POST /register`` is the app's and the new path is answered."""
    settings = Settings(path="/oauth/clients")
    body = b'{"redirect_uris":["https://app.example.com/cb"]}'
    headers = {"Content-Type": "application/json"}
    seen: list[dict[str, Any]] = []
    statuses = []
    if kind == "asgi":
        side: Any = asgi_side(settings, app=asgi_echo(seen))
        transport = httpx.ASGITransport(app=side.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            for path in ("/register", "/oauth/clients"):
                response = await client.post(path, content=body, headers=headers)
                statuses.append(response.status_code)
    else:
        from wsgiref.validate import validator

        side = wsgi_side(settings, app=wsgi_echo(seen))
        with httpx.Client(
            transport=httpx.WSGITransport(app=validator(side.app)), base_url=BASE_URL
        ) as sync_client:
            for path in ("/register", "/oauth/clients"):
                statuses.append(sync_client.post(path, content=body, headers=headers).status_code)

    assert statuses == [202, 201]
    assert [s["path"] for s in seen] == ["/register"]
    assert record_count(side.backend) == 1
