"""Apps that add the middleware as the README's first snippet does, ``app.add_middleware``,
which Starlette builds on the first ASGI call (the lifespan startup): ``starlette_app`` and
``fastapi_app`` (``DCR_*`` read then). ``signup_wsgi`` is a Flask app with its own sign-up page
at ``/register`` (``GET`` and ``POST``), for ``DCR_APP``."""

from __future__ import annotations

import flask
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dcr_middleware import DCRMiddleware

BODY = "hello from the lazy app\n"


async def _home(request: Request) -> PlainTextResponse:
    return PlainTextResponse(BODY)


starlette_app = Starlette(routes=[Route("/", _home)])
starlette_app.add_middleware(DCRMiddleware)

fastapi_app = FastAPI()
fastapi_app.get("/")(lambda: BODY)
fastapi_app.add_middleware(DCRMiddleware)

signup_wsgi = flask.Flask("signup")


@signup_wsgi.route("/")
def home() -> str:
    return BODY


@signup_wsgi.route("/register", methods=["GET", "POST"])
def signup() -> str:
    return "sign-up form"
