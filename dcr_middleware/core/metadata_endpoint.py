"""The RFC 8414 metadata endpoint the middleware serves with ``DCR_SERVE_METADATA``.

The document is built and serialized once, at construction: settings never change while the
middleware runs, and the issuer comes from ``DCR_ISSUER``, never from the request, so the answer
is the same for everyone and can be cached by shared caches (``Cache-Control: public``).
"""

from __future__ import annotations

import json

from ._http import Response, error_response
from .admission import RequestHead
from .cors import CORS
from .errors import MethodNotAllowedError
from .server_metadata import authorization_server_metadata, well_known_path
from .settings import Settings

METHODS = ("GET", "HEAD")
MAX_AGE = 3600


class MetadataEndpoint:
    """``GET``/``HEAD`` of ``/.well-known/oauth-authorization-server[/issuer path]``."""

    def __init__(self, settings: Settings) -> None:
        if settings.issuer is None:  # Settings refuses this combination; a guard for mypy
            raise ValueError("DCR_SERVE_METADATA needs DCR_ISSUER")
        self.path = well_known_path(settings.issuer)
        document = authorization_server_metadata(settings)
        self.body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        self.cors = CORS(settings, methods=", ".join(METHODS))
        # The answer depends on Origin unless every origin (or none) gets the same one: a shared
        # cache must then key it on Origin, allowed or not.
        self.vary = self.cors.enabled and not self.cors.any_origin

    def handle(self, head: RequestHead) -> Response:
        """The document (its full body for ``HEAD`` too: the adapters send none), a CORS
        preflight answer, or ``405`` for any other method."""
        if self.cors.is_preflight(head.method, head):
            return self.cors.preflight(head)
        if head.method not in METHODS:
            allow = ", ".join(METHODS)
            return error_response(MethodNotAllowedError(f"{head.method} is not supported", allow))
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(self.body))),
            ("Cache-Control", f"public, max-age={MAX_AGE}"),
        ]
        # With "*" every answer carries the header, Origin or not: a shared cache may hand an
        # answer fetched without Origin to a browser.
        origin = "*" if self.cors.any_origin else head.headers.get("origin")
        allowed = self.cors.allowed_origin(origin)
        if allowed is not None:
            headers.append(("Access-Control-Allow-Origin", allowed))
        if self.vary:
            headers.append(("Vary", "Origin"))
        return Response(200, headers, self.body)
