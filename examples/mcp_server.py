"""An MCP server protected by OAuth, whose authorization server reads clients from our store.

Run it from the repository root (``pip install '.[server,mcp]'`` for uvicorn and the MCP SDK)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    export DCR_ISSUER=http://127.0.0.1:8000
    uvicorn --no-proxy-headers --app-dir examples mcp_server:app --port 8000

``DCR_ISSUER`` is the server's public base URL: the issuer of its authorization server and the
base of the MCP endpoint ``/mcp`` (default ``http://127.0.0.1:8000``). Then point any MCP client
at ``http://127.0.0.1:8000/mcp``.

With ``export DCR_CIMD=true`` (``pip install '.[cimd]'``), a client may also skip registration
and use the ``https://`` URL of its Client ID Metadata Document as its ``client_id`` (the MCP
SDK's client does, given a ``client_metadata_url``): the metadata says
``client_id_metadata_document_supported``, and the store fetches, checks and caches the document
(docs/cimd.md).

How the pieces fit (one process, one ASGI app; docs/mcp.md has the details):

* **MCP endpoint** ``/mcp``, built by the SDK's ``MCPServer``: ``401`` without a valid bearer
  token, naming its RFC 9728 protected-resource metadata, which names this server as the
  authorization server.
* **Registration**: ``POST /register`` is answered by :class:`~dcr_middleware.DCRMiddleware`,
  which wraps the whole app and writes the client to Redis.
* **Authorization server**: ``/.well-known/oauth-authorization-server``, ``/authorize`` and
  ``/token``, mounted by :func:`~dcr_middleware.integrations.mcp.mount_auth_routes` (the SDK's
  handlers, without the SDK's own ``/register``), over :class:`DemoProvider`, whose clients come
  from the store (:class:`~dcr_middleware.integrations.mcp.ClientStoreProvider`). The token
  endpoint checks secrets against the store's digests.

DEMO ONLY: :class:`DemoProvider` approves every request at once for one fixed user
(``demo-user``) with no login and no consent screen, and keeps authorization codes and tokens in
this process's memory (one worker; lost on restart). A real server puts its login and consent
page in ``authorize`` and keeps codes and tokens in its database. Only the clients are real: they
are in Redis, shared with every other process using the same store.
"""

from __future__ import annotations

import secrets
import time

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    ProviderTokenVerifier,
    RefreshToken,
    TokenError,
)
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dcr_middleware import AsyncClientStore, DCRMiddleware, Settings
from dcr_middleware.integrations.mcp import ClientStoreProvider, mount_auth_routes, oauth_metadata

SCOPE = "tools"  # the one scope this server's tools require


def create_app(settings: Settings | None = None) -> DCRMiddleware:
    """The MCP server, its authorization server and the registration middleware, as one app."""
    settings = Settings.from_env() if settings is None else settings
    base = (settings.issuer or "http://127.0.0.1:8000").rstrip("/")
    provider = DemoProvider(AsyncClientStore(settings), issuer=base, resource=base + "/mcp")
    # A token verifier rather than ``auth_server_provider``: the latter would make the SDK
    # mount every route of ``create_auth_routes``, including its own ``/register``.
    server = MCPServer(
        "dcr-middleware MCP example",
        token_verifier=ProviderTokenVerifier(provider),
        # Strings, not AnyHttpUrl(...): issuers compare as exact strings (RFC 8414 §3.3).
        auth=AuthSettings.model_validate(
            {
                "issuer_url": base,
                "resource_server_url": base + "/mcp",
                "required_scopes": [SCOPE],
                "validate_token_resource": True,  # tokens are bound to a resource (RFC 8707)
            }
        ),
    )
    mount_auth_routes(
        server, provider, oauth_metadata(settings, issuer=base, scopes_supported=[SCOPE])
    )

    @server.tool()
    def whoami() -> str:
        """Who called: the OAuth client and the user its token was issued for."""
        token = get_access_token()
        if token is None:
            return "anonymous"
        return f"client {token.client_id} acting for {token.subject}"

    server.custom_route("/", ["GET"])(home)
    return DCRMiddleware(server.streamable_http_app(), settings=settings)


async def home(request: Request) -> Response:
    """A plain page, so a process manager (or a test) can see the server is up."""
    return JSONResponse({"message": "hello from the MCP example", "mcp": "/mcp"})


# --- DEMO ONLY from here: approve everyone, keep codes and tokens in memory ---

DEMO_USER = "demo-user"
CODE_TTL = 300  # seconds
ACCESS_TOKEN_TTL = 3600  # seconds


class DemoProvider(ClientStoreProvider[AuthorizationCode, RefreshToken, AccessToken]):
    """DEMO: clients from the store; every authorization approved for :data:`DEMO_USER`."""

    def __init__(self, store: AsyncClientStore, *, issuer: str, resource: str) -> None:
        super().__init__(store, issuer=issuer)
        self.resource = resource
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        """DEMO: approve at once (a real server shows its login and consent page here)."""
        registered = self.require_code_flow(client)
        # RFC 8707 §2: a resource this server does not serve is refused with invalid_target.
        if params.resource is not None and params.resource.rstrip("/") != self.resource:
            raise AuthorizeError("invalid_target", f"unknown resource {params.resource}")
        code = secrets.token_urlsafe(32)
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes if params.scopes is not None else (registered.scope or "").split(),
            expires_at=time.time() + CODE_TTL,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource or self.resource,
            subject=DEMO_USER,
        )
        return self.code_redirect(params, code)

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        code = self.codes.get(authorization_code)
        return code if code is not None and code.client_id == client.client_id else None

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        if self.codes.pop(authorization_code.code, None) is None:
            raise TokenError("invalid_grant", "authorization code already used")
        code = authorization_code
        return self._issue(client.client_id, code.scopes, code.resource, code.subject)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        token = self.refresh_tokens.get(refresh_token)
        return token if token is not None and token.client_id == client.client_id else None

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        # Rotated: the refresh token is used up.
        if self.refresh_tokens.pop(refresh_token.token, None) is None:
            raise TokenError("invalid_grant", "refresh token already used")
        return self._issue(client.client_id, scopes, refresh_token.resource, refresh_token.subject)

    async def load_access_token(self, token: str) -> AccessToken | None:
        access = self.access_tokens.get(token)
        if access is None or (access.expires_at is not None and access.expires_at < time.time()):
            return None
        return access

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        self.access_tokens.pop(token.token, None)
        self.refresh_tokens.pop(token.token, None)

    def _issue(
        self, client_id: str, scopes: list[str], resource: str | None, subject: str | None
    ) -> OAuthToken:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires_at = int(time.time()) + ACCESS_TOKEN_TTL
        self.access_tokens[access] = AccessToken(
            token=access,
            client_id=client_id,
            scopes=scopes,
            expires_at=expires_at,
            resource=resource,
            subject=subject,
        )
        self.refresh_tokens[refresh] = RefreshToken(
            token=refresh, client_id=client_id, scopes=scopes, resource=resource, subject=subject
        )
        return OAuthToken(
            access_token=access,
            expires_in=ACCESS_TOKEN_TTL,
            scope=" ".join(scopes) or None,
            refresh_token=refresh,
        )


app = create_app()
