"""A Starlette app with dynamic client registration added by ``app.add_middleware``.

Run it from the repository root (``pip install '.[server]'`` for uvicorn)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    uvicorn --no-proxy-headers --app-dir examples starlette_app:app

``POST /register`` is answered by the middleware; ``GET /`` and the RFC 8414 metadata at
``/.well-known/oauth-authorization-server`` by the app. The same works for FastAPI
(``app = FastAPI()``, the same ``add_middleware`` call): see ``fastapi_app.py``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dcr_middleware import DCRMiddleware, Settings, authorization_server_metadata

settings = Settings.from_env()  # the DCR_* variables, read once


def issuer(request: Request) -> str:
    """``DCR_ISSUER`` when set (do set it in production), else this request's base URL."""
    return (settings.issuer or str(request.base_url)).rstrip("/")


async def home(request: Request) -> JSONResponse:
    return JSONResponse({"message": "hello from the Starlette app"})


async def metadata(request: Request) -> JSONResponse:
    """RFC 8414 authorization server metadata: ``registration_endpoint`` and the lists the
    registration policy allows come from the settings; add your server's own fields as keyword
    arguments (``jwks_uri=...``), or set ``DCR_SERVE_METADATA`` and drop this route."""
    return JSONResponse(authorization_server_metadata(settings, issuer=issuer(request)))


app = Starlette(
    routes=[
        Route("/", home),
        Route("/.well-known/oauth-authorization-server", metadata),
    ]
)
app.add_middleware(DCRMiddleware, settings=settings)
