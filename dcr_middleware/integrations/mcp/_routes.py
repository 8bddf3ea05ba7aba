"""RFC 8414 metadata from the settings, and the SDK's ``/authorize`` and ``/token`` routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from mcp.shared.auth import OAuthMetadata
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp

from ...core.errors import DCRError
from ...core.server_metadata import authorization_server_metadata, well_known_path
from ...core.settings import Settings
from ._clients import ClientStoreProvider
from ._token import AUTH_METHODS, TokenEndpoint, store_error

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

# The grants the SDK's TokenHandler serves (its jwt-bearer grant needs a secret it can see).
GRANT_TYPES = ("authorization_code", "refresh_token")
# Browser-based MCP clients (the MCP Inspector) send this header, as the SDK's routes allow.
_CORS_HEADERS = ["mcp-protocol-version"]


def oauth_metadata(
    settings: Settings, *, issuer: str | None = None, **fields: Any
) -> OAuthMetadata:
    """The RFC 8414 metadata of an MCP authorization server built on the SDK's handlers.

    :func:`dcr_middleware.authorization_server_metadata` (``registration_endpoint`` = issuer +
    ``DCR_PATH``, ``DCR_ALLOWED_SCOPES`` as ``scopes_supported``, and any field the settings
    add), narrowed to what the SDK's handlers and
    :class:`~dcr_middleware.integrations.mcp.StoreClientAuthenticator` do: the allowed auth
    methods among ``client_secret_basic``, ``client_secret_post`` and ``none``; the allowed
    grants among ``authorization_code`` and ``refresh_token``; response type ``code``, PKCE
    ``S256``; ``authorization_endpoint`` / ``token_endpoint`` at ``/authorize`` / ``/token`` of
    the issuer unless ``DCR_AUTHORIZATION_ENDPOINT`` / ``DCR_TOKEN_ENDPOINT`` say otherwise;
    ``authorization_response_iss_parameter_supported`` (RFC 9207:
    :meth:`ClientStoreProvider.code_redirect` sends ``iss``). With ``DCR_CIMD`` on it also says
    ``client_id_metadata_document_supported``, so that the SDK's client uses its
    ``client_metadata_url`` as its client id (the store resolves it) instead of registering.
    ``issuer`` defaults to ``DCR_ISSUER``; pass it as a string, since issuers compare as exact
    strings (RFC 8414 §3.3).
    ``fields`` are merged last (``scopes_supported=["tools"]``; ``None`` leaves one out).
    """
    issuer = settings.issuer if issuer is None else issuer
    base = (issuer or "").rstrip("/")
    derived: dict[str, Any] = {
        "authorization_endpoint": settings.authorization_endpoint or base + "/authorize",
        "token_endpoint": settings.token_endpoint or base + "/token",
        "response_types_supported": ["code"],
        "grant_types_supported": [g for g in settings.allowed_grant_types if g in GRANT_TYPES],
        "token_endpoint_auth_methods_supported": [
            m for m in settings.allowed_auth_methods if m in AUTH_METHODS
        ],
        "token_endpoint_auth_signing_alg_values_supported": None,
        # The SDK's handlers require a code_challenge and check it with S256, always.
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }
    document = authorization_server_metadata(
        settings, issuer=issuer, openid=False, **{**derived, **fields}
    )
    return OAuthMetadata.model_validate(document)


def auth_routes(
    provider: ClientStoreProvider[Any, Any, Any], metadata: OAuthMetadata
) -> list[Route]:
    """The metadata document, ``/authorize`` and ``/token``, and no ``/register``.

    What the SDK's ``create_auth_routes`` mounts (bodies capped, CORS on the metadata and the
    token endpoint for browser-based clients), without its registration route: ``POST`` on
    ``DCR_PATH`` must reach the middleware. The paths are those of ``metadata``'s issuer
    (RFC 8414 §3.1) and endpoints. The token endpoint authenticates clients with
    :class:`~dcr_middleware.integrations.mcp.StoreClientAuthenticator`.
    """
    authorize = _answer_store_errors(AuthorizationHandler(provider).handle)
    token = TokenEndpoint(provider).handle
    return [
        Route(
            well_known_path(str(metadata.issuer)),
            _cors(request_response(MetadataHandler(metadata).handle), ["GET", "OPTIONS"]),
            methods=["GET", "OPTIONS"],
        ),
        Route(
            _path(metadata.authorization_endpoint),
            _limited(request_response(authorize)),
            methods=["GET", "POST"],
        ),
        Route(
            _path(metadata.token_endpoint),
            _cors(_limited(request_response(token)), ["POST", "OPTIONS"]),
            methods=["POST", "OPTIONS"],
        ),
    ]


def mount_auth_routes(
    server: MCPServer,
    provider: ClientStoreProvider[Any, Any, Any],
    metadata: OAuthMetadata | None = None,
) -> None:
    """Add :func:`auth_routes` to an ``MCPServer`` (``metadata`` by default:
    :func:`oauth_metadata` of the provider's store settings and issuer).

    Build the server with ``token_verifier=ProviderTokenVerifier(provider)``, not
    ``auth_server_provider=provider``: the latter makes the SDK mount its own ``/register``.
    """
    if metadata is None:
        metadata = oauth_metadata(provider.store.settings, issuer=provider.issuer)
    for route in auth_routes(provider, metadata):
        # Starlette's Route runs an endpoint that is not a function as an ASGI app.
        server.custom_route(route.path, sorted(route.methods or ()))(route.endpoint)


def _path(url: Any) -> str:
    return urlsplit(str(url)).path or "/"


def _limited(app: ASGIApp) -> ASGIApp:
    return RequestBodyLimitMiddleware(app, DEFAULT_MAX_REQUEST_BODY_SIZE)


def _cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    return CORSMiddleware(
        app, allow_origins=["*"], allow_methods=methods, allow_headers=_CORS_HEADERS
    )


def _answer_store_errors(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except DCRError as error:
            return store_error(error)

    return answer
