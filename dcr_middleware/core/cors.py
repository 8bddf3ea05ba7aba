"""CORS for the registration endpoint, so browser-based clients (e.g. the MCP Inspector) can
register with ``fetch()``.

``DCR_CORS_ORIGINS`` is ``*`` (any origin; the default), a list of origins, or ``off``. The
registration endpoint uses no cookies, so ``Access-Control-Allow-Credentials`` is never sent
(and never with ``*``, which browsers would reject anyway). Responses expose the RateLimit fields,
``Retry-After`` and ``WWW-Authenticate`` so a script can back off and see why it was refused.
Preflights for origins, methods or headers that are not allowed get ``403`` without CORS headers,
which the browser reports as a CORS failure.
"""

from __future__ import annotations

from ._http import Response, json_response
from .admission import RequestHead
from .settings import Settings

EXPOSED = "RateLimit, RateLimit-Policy, Retry-After, WWW-Authenticate"
ALLOWED_HEADERS = frozenset({"content-type", "authorization"})
# Fetch's CORS-safelisted request headers need no permission.
_SAFELISTED = frozenset({"accept", "accept-language", "content-language"})
MAX_AGE = "600"


class CORS:
    """The CORS policy of ``settings``, parsed once."""

    def __init__(self, settings: Settings, methods: str = "POST") -> None:
        origins = settings.cors_origins
        self.enabled = origins != ("off",) and bool(origins)
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)
        self.methods = methods

    def is_preflight(self, method: str, head: RequestHead) -> bool:
        """An ``OPTIONS`` request with ``Origin`` and ``Access-Control-Request-Method``."""
        return (
            self.enabled
            and method == "OPTIONS"
            and "origin" in head.headers
            and "access-control-request-method" in head.headers
        )

    def allowed_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or ``None``."""
        if not self.enabled or origin is None:
            return None
        if self.any_origin:
            return "*"
        return origin if origin in self.origins else None

    def preflight(self, head: RequestHead) -> Response:
        """Answer a preflight: ``204`` with permissions, or ``403`` when anything is refused."""
        allowed = self.allowed_origin(head.headers.get("origin"))
        method = head.headers.get("access-control-request-method", "").strip()
        requested = {
            h.strip().lower()
            for h in head.headers.get("access-control-request-headers", "").split(",")
            if h.strip()
        }
        if (
            allowed is None
            or method not in self.methods.split(", ")
            or not (requested <= ALLOWED_HEADERS | _SAFELISTED)
        ):
            return json_response(
                403, {"error": "access_denied", "error_description": "CORS preflight refused"}
            )
        headers = [
            ("Access-Control-Allow-Origin", allowed),
            ("Access-Control-Allow-Methods", self.methods),
            ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
            ("Access-Control-Max-Age", MAX_AGE),
        ]
        if allowed != "*":
            headers.append(("Vary", "Origin"))
        return Response(204, headers, b"")

    def apply(self, head: RequestHead, response: Response) -> Response:
        """Add the CORS fields to a response of the endpoint when the origin is allowed."""
        allowed = self.allowed_origin(head.headers.get("origin"))
        if allowed is not None:
            response.headers.append(("Access-Control-Allow-Origin", allowed))
            response.headers.append(("Access-Control-Expose-Headers", EXPOSED))
            if allowed != "*":
                response.headers.append(("Vary", "Origin"))
        return response
