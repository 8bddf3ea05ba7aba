"""A FastAPI app with dynamic client registration added by ``app.add_middleware``.

Run it from the repository root (``pip install fastapi '.[server]'``)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    uvicorn --no-proxy-headers --app-dir examples fastapi_app:app

``POST /register`` is answered by the middleware before FastAPI routing, so it is not in the
OpenAPI schema at ``/docs``; ``GET /`` and the RFC 8414 metadata at
``/.well-known/oauth-authorization-server`` are FastAPI routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from dcr_middleware import DCRMiddleware, Settings

settings = Settings.from_env()  # the DCR_* variables, read once: a bad one fails at import

app = FastAPI(title="dcr-middleware FastAPI example")
app.add_middleware(DCRMiddleware, settings=settings)


def issuer(request: Request) -> str:
    """``DCR_ISSUER`` when set (do set it in production), else this request's base URL."""
    return (settings.issuer or str(request.base_url)).rstrip("/")


@app.get("/")
def home() -> dict[str, str]:
    return {"message": "hello from the FastAPI app"}


@app.get("/.well-known/oauth-authorization-server")
def metadata(request: Request) -> dict[str, Any]:
    """RFC 8414 authorization server metadata, advertising the registration endpoint."""
    base = issuer(request)
    return {
        "issuer": base,
        "registration_endpoint": base + settings.path,
        "grant_types_supported": list(settings.allowed_grant_types),
        "response_types_supported": list(settings.allowed_response_types),
        "token_endpoint_auth_methods_supported": list(settings.allowed_auth_methods),
    }
