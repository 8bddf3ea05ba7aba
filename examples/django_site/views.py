"""The project's views: a home page and the RFC 8414 authorization server metadata."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from dcr_middleware import Settings

# The same DCR_* variables the middleware in wsgi.py / asgi.py reads, for the metadata below.
dcr_settings = Settings.from_env()


@require_safe
def home(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"message": "hello from the Django app"})


@require_safe
def metadata(request: HttpRequest) -> JsonResponse:
    """RFC 8414 authorization server metadata, advertising the registration endpoint."""
    # DCR_ISSUER when set (do set it in production), else this request's scheme and host,
    # which Django checks against ALLOWED_HOSTS.
    base = (dcr_settings.issuer or request.build_absolute_uri("/")).rstrip("/")
    return JsonResponse(
        {
            "issuer": base,
            "registration_endpoint": base + dcr_settings.path,
            "grant_types_supported": list(dcr_settings.allowed_grant_types),
            "response_types_supported": list(dcr_settings.allowed_response_types),
            "token_endpoint_auth_methods_supported": list(dcr_settings.allowed_auth_methods),
        }
    )
