"""``DCR_SERVE_METADATA``: the RFC 8414 document served by both middlewares, the same way.

Off (the default) the well-known path is the wrapped app's like any other path. On, the
middleware answers ``GET``/``HEAD`` of ``/.well-known/oauth-authorization-server`` (plus the
issuer's path, RFC 8414 §3.1) and ``405`` for other methods; everything else still reaches the
wrapped app, and the document's ``registration_endpoint`` is where registration answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest

from dcr_middleware import Settings, authorization_server_metadata

from .harness import (
    Answer,
    RawASGI,
    Receive,
    Scope,
    Send,
    asgi_request,
    asgi_side,
    http_scope,
    wsgi_request,
    wsgi_side,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

pytestmark = pytest.mark.anyio

SIDES = ("asgi", "wsgi")
WELL_KNOWN = "/.well-known/oauth-authorization-server"
ISSUER = "https://auth.example.com"
ENDPOINTS = {
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
}
SERVING = Settings(serve_metadata=True, issuer=ISSUER, **ENDPOINTS)
JSON = {"Content-Type": "application/json"}
CLIENT = json.dumps({"redirect_uris": ["https://app.example.com/cb"]}).encode()


async def wrapped_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    body = f"wrapped {scope['method']} {scope['path']}".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wrapped_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    body = f"wrapped {environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def send(
    kind: str,
    settings: Settings,
    method: str,
    path: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request to a fresh middleware of ``kind`` over the wrapped app."""
    if kind == "asgi":
        app = asgi_side(settings, app=wrapped_asgi).app
        return await asgi_request(app, method, path, content=content, headers=headers)
    wsgi_app = wsgi_side(settings, app=wrapped_wsgi).app
    return wsgi_request(wsgi_app, method, path, content=content, headers=headers)


def from_app(answer: Answer, method: str, path: str) -> bool:
    return answer.status == 200 and answer.body == f"wrapped {method} {path}".encode()


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
async def test_metadata_endpoint_off_by_default_leaves_the_path_to_the_app(
    kind: str, method: str
) -> None:
    settings = Settings(issuer=ISSUER, **ENDPOINTS)
    answer = await send(kind, settings, method, WELL_KNOWN)
    assert answer.status == 200
    if method != "HEAD":
        assert from_app(answer, method, WELL_KNOWN), answer.body


@pytest.mark.parametrize("kind", SIDES)
async def test_metadata_endpoint_get_serves_the_helper_document(kind: str) -> None:
    answer = await send(kind, SERVING, "GET", WELL_KNOWN)
    assert answer.status == 200, answer.body
    assert answer.json() == authorization_server_metadata(SERVING)
    assert answer.json()["registration_endpoint"] == f"{ISSUER}/register"
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "public, max-age=3600"
    assert answer.headers["content-length"] == str(len(answer.body))
    # DCR_CORS_ORIGINS=* (the default): even without Origin, as a shared cache may reuse it.
    assert answer.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("kind", SIDES)
async def test_metadata_endpoint_head_has_the_get_headers_and_no_body(kind: str) -> None:
    get = await send(kind, SERVING, "GET", WELL_KNOWN)
    head = await send(kind, SERVING, "HEAD", WELL_KNOWN)
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == str(len(get.body))
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["cache-control"] == get.headers["cache-control"]


async def test_metadata_endpoint_asgi_head_sends_no_body() -> None:
    # httpx's ASGITransport drops a HEAD body itself: look at the ASGI messages sent.
    raw = RawASGI(incoming=[{"type": "http.request", "body": b""}])
    app = asgi_side(SERVING, app=wrapped_asgi).app
    await app(http_scope("HEAD", WELL_KNOWN), raw.receive, raw.send)
    answer = raw.answer()
    assert answer.status == 200
    assert answer.body == b""
    assert int(answer.headers["content-length"]) > 100


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_metadata_endpoint_other_methods_get_405_not_the_app(kind: str, method: str) -> None:
    answer = await send(kind, SERVING, method, WELL_KNOWN, content=b"{}", headers=JSON)
    assert answer.status == 405, answer.body
    assert answer.headers["allow"] == "GET, HEAD"
    assert answer.json()["error"] == "invalid_request"


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/", id="root"),
        pytest.param("GET", WELL_KNOWN + "/", id="trailing-slash"),
        pytest.param("GET", WELL_KNOWN + "/tenant1", id="other-issuer-path"),
        pytest.param("GET", "/.well-known/openid-configuration", id="openid-configuration"),
        pytest.param("GET", "/.well-known/oauth-protected-resource", id="protected-resource"),
        pytest.param("GET", "/register", id="get-register"),
        pytest.param("POST", "/authorize", id="post-elsewhere"),
    ],
)
async def test_metadata_endpoint_on_the_app_still_answers_everything_else(
    kind: str, method: str, path: str
) -> None:
    answer = await send(kind, SERVING, method, path)
    assert from_app(answer, method, path), (answer.status, answer.body)


@pytest.mark.parametrize("kind", SIDES)
async def test_metadata_endpoint_query_string_is_ignored(kind: str) -> None:
    answer = await send(kind, SERVING, "GET", WELL_KNOWN + "?x=1")
    assert answer.status == 200
    assert answer.json()["issuer"] == ISSUER


@pytest.mark.parametrize("kind", SIDES)
async def test_metadata_endpoint_issuer_path_moves_the_document(kind: str) -> None:
    # RFC 8414 §3.1: the well-known suffix goes between the host and the issuer's path.
    settings = Settings(serve_metadata=True, issuer=ISSUER + "/tenant1", **ENDPOINTS)
    answer = await send(kind, settings, "GET", WELL_KNOWN + "/tenant1")
    assert answer.json()["issuer"] == ISSUER + "/tenant1"
    assert answer.json()["registration_endpoint"] == ISSUER + "/tenant1/register"
    root = await send(kind, settings, "GET", WELL_KNOWN)
    assert from_app(root, "GET", WELL_KNOWN)


@pytest.mark.parametrize("kind", SIDES)
async def test_metadata_endpoint_registration_still_works_and_matches_the_document(
    kind: str,
) -> None:
    registered = await send(kind, SERVING, "POST", "/register", content=CLIENT, headers=JSON)
    assert registered.status == 201, registered.body
    document = (await send(kind, SERVING, "GET", WELL_KNOWN)).json()
    uri = registered.json()["registration_client_uri"]
    assert uri == f"{document['registration_endpoint']}/{registered.json()['client_id']}"


@pytest.mark.parametrize("kind", SIDES)
async def test_metadata_endpoint_cors_for_a_listed_origin(kind: str) -> None:
    origin = "https://inspector.example.com"
    settings = Settings(serve_metadata=True, issuer=ISSUER, cors_origins=(origin,), **ENDPOINTS)
    answer = await send(kind, settings, "GET", WELL_KNOWN, headers={"Origin": origin})
    assert answer.headers["access-control-allow-origin"] == origin
    assert answer.headers["vary"] == "Origin"
    other = await send(kind, settings, "GET", WELL_KNOWN, headers={"Origin": "https://x.example"})
    assert "access-control-allow-origin" not in other.headers
    assert other.headers["vary"] == "Origin"  # a shared cache must not reuse it for `origin`
    preflight = await send(
        kind,
        settings,
        "OPTIONS",
        WELL_KNOWN,
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-methods"] == "GET, HEAD"


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "OPTIONS"])
async def test_metadata_endpoint_both_sides_answer_alike(method: str) -> None:
    headers = {"Origin": "https://x.example", "Access-Control-Request-Method": "GET"}
    asgi = await send("asgi", SERVING, method, WELL_KNOWN, headers=headers)
    wsgi = await send("wsgi", SERVING, method, WELL_KNOWN, headers=headers)
    assert (asgi.status, asgi.body) == (wsgi.status, wsgi.body)
    for name in ("content-type", "content-length", "cache-control", "allow", "vary"):
        assert asgi.headers.get(name) == wsgi.headers.get(name), name
    assert asgi.headers.get("access-control-allow-origin") == wsgi.headers.get(
        "access-control-allow-origin"
    )
