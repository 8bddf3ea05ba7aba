"""The demo: a tiny Starlette app wrapped in :class:`DCRMiddleware` (``dcr-middleware serve``).

``GET /`` answers from the wrapped app, ``POST /register`` from the middleware, and
``/.well-known/oauth-authorization-server`` advertises the registration endpoint (RFC 8414).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .asgi import DCRMiddleware
from .core.settings import Settings


def _issuer(request: Request, settings: Settings) -> str:
    if settings.issuer:
        return settings.issuer.rstrip("/")
    return str(request.base_url).rstrip("/")


def create_demo_app(settings: Settings | None = None) -> DCRMiddleware:
    """Build the demo application from ``settings`` (default: the ``DCR_*`` environment)."""
    settings = Settings.from_env() if settings is None else settings

    async def home(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "app": "dcr-middleware demo",
                "message": "this response comes from the wrapped app",
                "registration_endpoint": _issuer(request, settings) + settings.path,
            }
        )

    async def metadata(request: Request) -> JSONResponse:
        issuer = _issuer(request, settings)
        return JSONResponse(
            {
                "issuer": issuer,
                "registration_endpoint": issuer + settings.path,
                "grant_types_supported": list(settings.allowed_grant_types),
                "response_types_supported": list(settings.allowed_response_types),
                "token_endpoint_auth_methods_supported": list(settings.allowed_auth_methods),
            }
        )

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/.well-known/oauth-authorization-server", metadata),
        ]
    )
    return DCRMiddleware(app, settings)
