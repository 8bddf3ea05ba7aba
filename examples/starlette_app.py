"""A Starlette app with dynamic client registration added by ``app.add_middleware``.

Run it from the repository root (``pip install '.[server]'`` for uvicorn)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    uvicorn --app-dir examples starlette_app:app

``POST /register`` is answered by the middleware; ``GET /`` and the RFC 8414 metadata at
``/.well-known/oauth-authorization-server`` by the app. The same works for FastAPI
(``app = FastAPI()``, the same ``add_middleware`` call).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dcr_middleware import DCRMiddleware, Settings

settings = Settings.from_env()  # the DCR_* variables, read once


def issuer(request: Request) -> str:
    """``DCR_ISSUER`` when set (do set it in production), else this request's base URL."""
    return (settings.issuer or str(request.base_url)).rstrip("/")


async def home(request: Request) -> JSONResponse:
    return JSONResponse({"message": "hello from the Starlette app"})


async def metadata(request: Request) -> JSONResponse:
    """RFC 8414 authorization server metadata, advertising the registration endpoint."""
    base = issuer(request)
    return JSONResponse(
        {
            "issuer": base,
            "registration_endpoint": base + settings.path,
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
app.add_middleware(DCRMiddleware, settings=settings)
