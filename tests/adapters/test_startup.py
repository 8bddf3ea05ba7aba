"""Startup checks in process: the lazily built Starlette stack reports a bad configuration at the
lifespan startup; ``DCR_REDIS_CHECK_ON_START`` refuses an unreachable Redis; the middlewares say
when the wrapped app serves ``DCR_PATH`` itself; the WSGI/ASGI interface of an app is told apart.

Real servers doing the same are in tests/integration/test_startup_failures.py.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import types
from collections.abc import Iterable
from typing import Any

import flask
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from dcr_middleware import (
    ConfigurationError,
    DCRMiddleware,
    DCRWSGIMiddleware,
    Settings,
    _loader,
    _routes,
)

pytestmark = pytest.mark.anyio

BAD_HOOK = Settings(event_hook="no_such_module_xyz:hook", rate_limit="off")
OK = Settings(rate_limit="off")


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _page(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the app's page")


def _signup_app() -> Starlette:
    return Starlette(routes=[Route("/register", _page, methods=["GET", "POST"])])


async def _lifespan(app: Any) -> list[dict[str, Any]]:
    """Run a lifespan startup then shutdown through ``app``; the messages it sent."""
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


# --- the lazily built stack (app.add_middleware) -------------------------------------------------


def test_startup_middleware_built_outside_a_loop_raises_at_once() -> None:
    with pytest.raises(ConfigurationError, match="DCR_EVENT_HOOK"):
        DCRMiddleware(_signup_app(), BAD_HOOK)


async def test_startup_add_middleware_error_fails_the_lifespan_startup() -> None:
    app = _signup_app()
    app.add_middleware(DCRMiddleware, settings=BAD_HOOK)  # built on the first call, in the loop
    sent = await _lifespan(app)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "invalid dcr-middleware configuration" in sent[0]["message"]
    assert "DCR_EVENT_HOOK" in sent[0]["message"]


async def test_startup_add_middleware_error_still_refuses_requests_without_lifespan() -> None:
    app = _signup_app()
    app.add_middleware(DCRMiddleware, settings=BAD_HOOK)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/register",
        "headers": [],
        "query_string": b"",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    with pytest.raises(ConfigurationError, match="DCR_EVENT_HOOK"):
        await app(scope, receive, send)
    # Starlette's ServerErrorMiddleware answers 500 and re-raises; the app's page is not served.
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [500]
    assert b"the app's page" not in b"".join(m.get("body", b"") for m in sent)


async def test_startup_good_configuration_leaves_the_lifespan_to_the_app() -> None:
    started: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            started.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    sent = await _lifespan(DCRMiddleware(inner, OK))
    assert started == ["lifespan.startup", "lifespan.shutdown"]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# --- DCR_REDIS_CHECK_ON_START ---------------------------------------------------------------------


async def test_startup_redis_check_fails_the_lifespan_startup_before_the_app_starts() -> None:
    started: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        started.append((await receive())["type"])

    url = f"redis://127.0.0.1:{_unused_port()}/0"
    settings = Settings(redis_url=url, redis_check_on_start=True, rate_limit="off")
    sent = await _lifespan(DCRMiddleware(inner, settings))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert sent[0]["message"].startswith(f"DCR_REDIS_CHECK_ON_START: cannot reach Redis at {url}")
    assert started == []


async def test_startup_redis_check_off_starts_with_an_unreachable_redis() -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})

    settings = Settings(redis_url=f"redis://127.0.0.1:{_unused_port()}/0", rate_limit="off")
    middleware = DCRMiddleware(inner, settings)
    sent = await _lifespan(middleware)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete"]
    await middleware.store.close()


def test_startup_redis_check_refuses_to_build_the_wsgi_middleware() -> None:
    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        return [b""]

    url = f"redis://127.0.0.1:{_unused_port()}/0"
    with pytest.raises(ConfigurationError, match="DCR_REDIS_CHECK_ON_START: cannot reach Redis"):
        DCRWSGIMiddleware(app, Settings(redis_url=url, redis_check_on_start=True))


# --- the wrapped app's interface ------------------------------------------------------------------


def _wsgi(environ: Any, start_response: Any) -> Iterable[bytes]:
    return [b""]


async def _asgi(scope: Any, receive: Any, send: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("app", "interface"),
    [
        pytest.param(_wsgi, "wsgi", id="wsgi-function"),
        pytest.param(_asgi, "asgi", id="asgi-function"),
        pytest.param(flask.Flask("t"), "wsgi", id="flask"),
        pytest.param(flask.Flask("t").wsgi_app, "wsgi", id="flask-wsgi_app"),
        pytest.param(Starlette(), "asgi", id="starlette"),
        pytest.param(FastAPI(), "asgi", id="fastapi"),
        pytest.param(lambda *args: None, None, id="cannot-tell"),
    ],
)
def test_startup_app_interface(app: Any, interface: str | None) -> None:
    assert _loader.app_interface(app) == interface


@pytest.mark.parametrize("gone", [True, False], ids=["first-reaped", "wait-ran-out"])
def test_startup_wait_for_the_first_failure_gives_sigterm_back(gone: bool) -> None:
    # A later gunicorn worker that fails to boot waits for the first one to be reaped, exiting 0
    # on the arbiter's SIGTERM meanwhile. Its handler must not outlive the wait: the SIGTERM
    # often lands while the interpreter shuts down, where a SystemExit prints a traceback.
    previous = signal.getsignal(signal.SIGTERM)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        if gone:
            with pytest.raises(SystemExit) as exited:
                _loader._await_reaped(dead.pid, 5)
            assert exited.value.code == 0
        else:
            _loader._await_reaped(os.getpid(), 0.1)  # never gone: the wait runs out
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_startup_entry_point_refuses_the_other_interface_naming_the_right_one() -> None:
    settings = Settings(app="plain:app")
    asgi = _loader.mismatch(settings, _wsgi, "asgi")
    assert asgi is not None
    assert "WSGI" in asgi
    assert "serve it with dcr_middleware.wsgi:app" in asgi
    wsgi = _loader.mismatch(settings, Starlette(), "wsgi")
    assert wsgi is not None
    assert "serve it with dcr_middleware.asgi:app" in wsgi
    assert _loader.mismatch(settings, _wsgi, "wsgi") is None


# --- DCR_PATH served by the app -------------------------------------------------------------------


class _Signup(HTTPEndpoint):
    async def get(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("form")

    async def post(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("signed up")


def _fastapi_signup() -> FastAPI:
    app = FastAPI()
    app.get("/register")(lambda: "form")
    app.post("/register")(lambda: "signed up")
    return app


def _flask_signup() -> flask.Flask:
    app = flask.Flask("signup")
    app.route("/register", methods=["GET", "POST"])(lambda: "form")
    return app


def _flask_page_only() -> flask.Flask:
    app = flask.Flask("page")
    app.route("/register")(lambda: "about registration")
    return app


@pytest.mark.parametrize(
    ("app", "methods"),
    [
        pytest.param(_signup_app(), ("GET", "HEAD", "POST"), id="starlette"),
        pytest.param(
            Starlette(routes=[Route("/register", _Signup)]), ("GET", "POST"), id="endpoint"
        ),
        pytest.param(
            Starlette(routes=[Mount("/", routes=[Route("/register", _page, methods=["POST"])])]),
            ("POST",),
            id="mount",
        ),
        pytest.param(_fastapi_signup(), ("GET", "POST"), id="fastapi"),
        pytest.param(_flask_signup(), ("GET", "HEAD", "POST", "OPTIONS"), id="flask"),
        pytest.param(
            _flask_signup().wsgi_app, ("GET", "HEAD", "POST", "OPTIONS"), id="flask-bound"
        ),
        pytest.param(_flask_page_only(), ("GET", "HEAD", "OPTIONS"), id="flask-get-only"),
        pytest.param(Starlette(routes=[Route("/other", _page)]), None, id="elsewhere"),
        pytest.param(_wsgi, None, id="opaque"),
    ],
)
def test_startup_served_methods(app: Any, methods: tuple[str, ...] | None) -> None:
    assert _routes.served_methods(app, "/register") == methods


def test_startup_served_methods_through_the_built_stack() -> None:
    app = _signup_app()
    app.add_middleware(DCRMiddleware, settings=OK)
    assert _routes.served_methods(app.build_middleware_stack(), "/register") == (
        "GET",
        "HEAD",
        "POST",
    )


def test_startup_served_methods_django_resolver() -> None:
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.urls import path, set_urlconf
    from django.views import View

    if not settings.configured:
        settings.configure()

    class Signup(View):
        def get(self, request: Any) -> HttpResponse:
            return HttpResponse("form")

        def post(self, request: Any) -> HttpResponse:
            return HttpResponse("signed up")

    urls = types.ModuleType("signup_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("register", Signup.as_view()),
        path("hello", lambda request: HttpResponse("hi")),
    ]
    set_urlconf(urls)
    try:
        handler = WSGIHandler()
        assert _routes.served_methods(handler, "/register") == ("GET", "HEAD", "POST", "OPTIONS")
        assert _routes.served_methods(handler, "/hello") == _routes.ANY
        assert _routes.served_methods(handler, "/nowhere") is None
    finally:
        set_urlconf(None)


def test_startup_collision_names_methods_and_what_the_middleware_takes() -> None:
    message = _routes.collision(_flask_signup(), Settings())
    assert message is not None
    assert "serves /register itself (GET, HEAD, POST, OPTIONS)" in message
    assert "answers POST /register (client registration) and its CORS preflights" in message
    assert "the app still gets GET, HEAD" in message
    assert "DCR_PATH=/oauth/register" in message
    without_cors = _routes.collision(_flask_signup(), Settings(cors_origins=("off",)))
    assert without_cors is not None
    assert "preflights" not in without_cors


@pytest.mark.parametrize(
    ("app", "settings"),
    [
        pytest.param(_flask_page_only(), Settings(), id="get-only"),
        pytest.param(_flask_signup(), Settings(path="/oauth/register"), id="other-path"),
    ],
)
def test_startup_no_collision(app: Any, settings: Settings) -> None:
    assert _routes.collision(app, settings) is None


def test_startup_log_warns_when_the_app_serves_the_path(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dcr_middleware"):
        DCRWSGIMiddleware(_flask_signup().wsgi_app, OK)
        DCRMiddleware(_fastapi_signup(), OK)
        DCRMiddleware(_fastapi_signup(), Settings(rate_limit="off", path="/oauth/register"))
    warned = [r.getMessage() for r in caplog.records if "serves /register itself" in r.getMessage()]
    assert len(warned) == 2


def test_startup_flask_routes_added_after_wrapping_are_seen_at_the_first_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import httpx

    app = flask.Flask("late")
    with caplog.at_level(logging.WARNING, logger="dcr_middleware"):
        app.wsgi_app = DCRWSGIMiddleware(app.wsgi_app, OK)  # type: ignore[method-assign]
        assert "serves /register itself" not in caplog.text  # no route yet
        app.route("/register", methods=["GET", "POST"])(lambda: "sign-up form")
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
            assert client.get("/").status_code == 404  # elsewhere: not looked at
            assert "serves /register itself" not in caplog.text
            assert client.get("/register").text == "sign-up form"
            client.get("/register")
    warned = [r for r in caplog.records if "serves /register itself" in r.getMessage()]
    assert len(warned) == 1


async def test_startup_asgi_routes_added_after_wrapping_are_seen_at_the_first_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import httpx

    inner = FastAPI()
    with caplog.at_level(logging.WARNING, logger="dcr_middleware"):
        middleware = DCRMiddleware(inner, OK)
        inner.post("/register")(lambda: "signed up")
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/register")
            await client.get("/register")
    warned = [r for r in caplog.records if "serves /register itself (POST)" in r.getMessage()]
    assert len(warned) == 1


# --- gunicorn workers failing together elect one reporter ----------------------------------------


def test_startup_first_failure_is_elected_once_per_arbiter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import os
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    arbiter = os.getppid()
    assert _loader._first_failure(arbiter) is None  # the first: it reports and exits 3
    assert _loader._first_failure(arbiter) == os.getpid()  # the others wait for that one
    mark = tmp_path / f"dcr-middleware-{arbiter}.startup-failed"
    mark.write_text(f"{arbiter} an-older-start 12345")  # a reused pid: an old arbiter's mark
    assert _loader._first_failure(arbiter) is None


def test_startup_await_reaped_exits_0_once_the_first_is_gone() -> None:
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: kill(pid, 0) fails
    with pytest.raises(SystemExit) as exited:
        _loader._await_reaped(gone.pid, 10.0)
    assert exited.value.code == 0


def test_startup_entry_app_reports_and_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    def build() -> Any:
        raise ConfigurationError(["DCR_PATH: expected an absolute path"])

    with pytest.raises(SystemExit) as exited:
        _loader.entry_app(build)
    assert exited.value.code == _loader.STARTUP_FAILURE == 3
    assert capsys.readouterr().err == (
        "invalid dcr-middleware configuration:\n  - DCR_PATH: expected an absolute path\n"
    )
