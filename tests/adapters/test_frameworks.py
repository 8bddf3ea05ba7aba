"""The middlewares inside real frameworks: Starlette (``add_middleware``, lifespan) and Flask."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from wsgiref.validate import validator

import flask
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    DCRMiddleware,
    DCRWSGIMiddleware,
    Settings,
)
from dcr_middleware.storage.memory import AsyncMemoryBackend, MemoryBackend

from .harness import BASE_URL, Message, RawASGI, record_count

pytestmark = pytest.mark.anyio

REGISTRATION = b'{"redirect_uris":["https://app.example.com/cb"]}'
JSON = {"Content-Type": "application/json"}


def starlette_app(events: list[str]) -> Starlette:
    """A Starlette app whose lifespan records startup and shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("home")

    async def register_page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"app {request.method} {request.url.path}")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/register", register_page, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )


async def run_lifespan(app: Any) -> list[Message]:
    """Drive the ASGI lifespan protocol like a server: startup, then shutdown."""
    server = RawASGI([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    await app(scope, server.receive, server.send)
    return server.sent


def _memory_store(settings: Settings) -> tuple[MemoryBackend, AsyncClientStore]:
    backend = MemoryBackend(settings.key_prefix)
    return backend, AsyncClientStore(settings, backend=AsyncMemoryBackend(backend))


async def test_starlette_add_middleware_lifespan_reaches_app() -> None:
    events: list[str] = []
    app = starlette_app(events)
    settings = Settings()
    _, store = _memory_store(settings)
    app.add_middleware(DCRMiddleware, settings=settings, store=store)

    sent = await run_lifespan(app)

    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert events == ["startup", "shutdown"]


async def test_starlette_wrapped_directly_lifespan_reaches_app() -> None:
    events: list[str] = []
    settings = Settings()
    _, store = _memory_store(settings)
    app = DCRMiddleware(starlette_app(events), settings, store=store)

    sent = await run_lifespan(app)

    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert events == ["startup", "shutdown"]


async def test_starlette_lifespan_failure_still_reported_through_middleware() -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("database is down")
        yield  # pragma: no cover

    settings = Settings()
    _, store = _memory_store(settings)
    app = DCRMiddleware(Starlette(lifespan=lifespan), settings, store=store)
    server = RawASGI([{"type": "lifespan.startup"}])
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    with pytest.raises(RuntimeError, match="database is down"):
        await app(scope, server.receive, server.send)
    assert [m["type"] for m in server.sent] == ["lifespan.startup.failed"]


async def test_starlette_add_middleware_registers_and_passes_through() -> None:
    app = starlette_app([])
    settings = Settings()
    backend, store = _memory_store(settings)
    app.add_middleware(DCRMiddleware, settings=settings, store=store)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        created = await client.post("/register", content=REGISTRATION, headers=JSON)
        page = await client.get("/register")
        home = await client.get("/")
        missing = await client.post("/register/x/y", content=REGISTRATION, headers=JSON)

    assert created.status_code == 201
    client_id = created.json()["client_id"]
    registered = await store.get(client_id)
    assert registered is not None
    assert registered.redirect_uris == ["https://app.example.com/cb"]
    assert (page.status_code, page.text) == (200, "app GET /register")
    assert (home.status_code, home.text) == (200, "home")
    assert missing.status_code == 404
    assert record_count(backend) == 1


async def test_starlette_add_middleware_reads_settings_from_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("DCR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DCR_PATH", "/oauth/register")
    # A prefix of its own: the embedded store is shared per prefix within the process.
    monkeypatch.setenv("DCR_KEY_PREFIX", f"adapters-{uuid.uuid4().hex}")
    monkeypatch.setenv("DCR_ALLOWED_AUTH_METHODS", "none")
    events: list[str] = []
    app = starlette_app(events)
    app.add_middleware(DCRMiddleware)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        moved = await client.post("/register", content=REGISTRATION, headers=JSON)
        refused = await client.post("/oauth/register", content=REGISTRATION, headers=JSON)
        public = await client.post(
            "/oauth/register",
            content=b'{"redirect_uris":["https://app.example.com/cb"],'
            b'"token_endpoint_auth_method":"none"}',
            headers=JSON,
        )
    sent = await run_lifespan(app)

    assert (moved.status_code, moved.text) == (200, "app POST /register")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client_metadata"
    assert public.status_code == 201
    assert "client_secret" not in public.json()
    assert [m["type"] for m in sent][-1] == "lifespan.shutdown.complete"
    assert events == ["startup", "shutdown"]


def flask_app() -> flask.Flask:
    """A Flask app with its own ``/register`` GET page and an echo route."""
    app = flask.Flask("adapters")

    @app.get("/")
    def home() -> str:
        return "home"

    @app.route("/register", methods=["GET"])
    def register_page() -> str:
        return "flask register page"

    @app.post("/echo")
    def echo() -> flask.Response:
        return flask.Response(flask.request.get_data(), content_type="application/octet-stream")

    return app


def test_flask_wsgi_app_wrapped_registers_and_passes_through() -> None:
    app = flask_app()
    settings = Settings()
    backend = MemoryBackend(settings.key_prefix)
    store = ClientStore(settings, backend=backend)
    app.wsgi_app = DCRWSGIMiddleware(app.wsgi_app, settings, store=store)  # type: ignore[method-assign]

    transport = httpx.WSGITransport(app=validator(app))
    with httpx.Client(transport=transport, base_url=BASE_URL) as client:
        created = client.post("/register", content=REGISTRATION, headers=JSON)
        refused = client.post("/register", content=b"[]", headers=JSON)
        page = client.get("/register")
        home = client.get("/")
        echoed = client.post("/echo", content=b"\x00raw\xff", headers={"X-Any": "1"})

    assert created.status_code == 201
    body = created.json()
    assert created.headers["cache-control"] == "no-store"
    assert store.authenticate(body["client_id"], body["client_secret"]) is not None
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client_metadata"
    assert (page.status_code, page.text) == (200, "flask register page")
    assert (home.status_code, home.text) == (200, "home")
    assert (echoed.status_code, echoed.content) == (200, b"\x00raw\xff")
    assert record_count(backend) == 1
