"""An MCP server protected by OAuth, whose authorization server reads clients from our store.

Run it from the repository root (``pip install '.[server]' mcp`` for uvicorn and the MCP SDK)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    export DCR_ISSUER=http://127.0.0.1:8000
    uvicorn --no-proxy-headers --app-dir examples mcp_server:app --port 8000

``DCR_ISSUER`` is the server's public base URL: the issuer of its authorization server and the
base of the MCP endpoint ``/mcp`` (default ``http://127.0.0.1:8000``). Then point any MCP client
at ``http://127.0.0.1:8000/mcp``.

How the pieces fit (one process, one ASGI app):

* **MCP endpoint** ``/mcp`` (streamable HTTP), built by the SDK's ``MCPServer``: it answers a
  request without a valid bearer token with ``401`` and ``WWW-Authenticate: Bearer
  resource_metadata=".../.well-known/oauth-protected-resource/mcp"``, and serves that RFC 9728
  protected-resource metadata, naming this server as the authorization server.
* **Authorization server metadata** (RFC 8414, ``/.well-known/oauth-authorization-server``):
  built with the SDK's ``build_metadata``; its ``registration_endpoint`` is our middleware's
  path (``DCR_PATH``, ``/register``).
* **Registration**: ``POST /register`` is answered by :class:`~dcr_middleware.DCRMiddleware`,
  which wraps the whole app and writes the client to Redis. The SDK's own registration route
  is never created: the SDK handlers are mounted one by one (``/authorize``, ``/token``)
  instead of through ``create_auth_routes``.
* **Authorization server** (``/authorize``, ``/token``): the SDK's handlers over
  :class:`StoreProvider`, whose ``get_client`` reads the client from
  :class:`~dcr_middleware.AsyncClientStore` on every call. A client deleted from the store
  (RFC 7592 ``DELETE``, or ``dcr-middleware clients delete``) is unknown at once.

Client secrets: the store keeps only a SHA-256 digest of each secret, and the SDK's
``ClientAuthenticator`` compares ``OAuthClientInformationFull.client_secret`` with the
presented secret in plaintext. So the client objects handed to the SDK carry no secret at all,
and the token endpoint uses :class:`StoreClientAuthenticator` instead, which checks the
presented secret with :meth:`AsyncClientStore.authenticate` (constant time, secret expiry
honoured) and holds the client to its registered ``token_endpoint_auth_method``.

DEMO ONLY: ``/authorize`` approves every request at once for one fixed user (``demo-user``)
with no login and no consent screen, and authorization codes and tokens live in this process's
memory (one worker; lost on restart). A real server puts a login and consent page in
:meth:`StoreProvider.authorize` and keeps codes and tokens in its database. Only the clients
are real: they are in Redis, shared with every other process using the same store.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from urllib.parse import parse_qsl, quote, unquote

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    IdentityAssertionParams,
    ProviderTokenVerifier,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.routes import build_metadata
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from mcp.shared.auth import (
    InvalidRedirectUriError,
    InvalidScopeError,
    OAuthClientInformationFull,
    OAuthMetadata,
    OAuthToken,
)
from pydantic import AnyHttpUrl, AnyUrl, PrivateAttr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import request_response
from starlette.types import Message

from dcr_middleware import AsyncClientStore, DCRMiddleware, RegisteredClient, Settings

DEMO_USER = "demo-user"
SCOPE = "tools"  # the one scope this server's tools require
CODE_TTL = 300  # seconds
ACCESS_TOKEN_TTL = 3600  # seconds
# The token endpoint's grants (the SDK's TokenHandler has no client_credentials grant).
GRANT_TYPES = ["authorization_code", "refresh_token"]


class StoredClient(OAuthClientInformationFull):
    """A client from our store, as the SDK's handlers expect it, with our matching rules.

    It never carries a secret (see the module docstring). Redirect URIs are matched by
    :meth:`RegisteredClient.check_redirect_uri` (exact, plus any port for ``http`` loopback
    URIs, RFC 8252 §7.3) and scopes by :meth:`RegisteredClient.allows_scope`.
    """

    _registered: RegisteredClient = PrivateAttr()

    @classmethod
    def from_registered(cls, registered: RegisteredClient) -> StoredClient:
        """The SDK view of ``registered``: the fields its handlers read, and no secret."""
        client = cls(
            client_id=registered.client_id,
            client_id_issued_at=registered.client_id_issued_at,
            client_secret_expires_at=registered.client_secret_expires_at,
            redirect_uris=[AnyUrl(uri) for uri in registered.redirect_uris],
            grant_types=registered.grant_types,
            response_types=registered.response_types,
            token_endpoint_auth_method=registered.token_endpoint_auth_method,
            scope=registered.scope,
            client_name=registered.metadata.get("client_name"),
        )
        client._registered = registered
        return client

    @property
    def registered(self) -> RegisteredClient:
        """The client as stored by the middleware."""
        return self._registered

    def validate_redirect_uri(self, redirect_uri: AnyUrl | None) -> AnyUrl:
        """The redirect URI to use: the requested one if registered, else the only one."""
        if redirect_uri is not None:
            if not self._registered.check_redirect_uri(str(redirect_uri)):
                raise InvalidRedirectUriError(f"Redirect URI '{redirect_uri}' not registered")
            return redirect_uri
        # RFC 6749 §3.1.2.3: a client with several redirect URIs MUST name one.
        if len(self._registered.redirect_uris) == 1:
            return AnyUrl(self._registered.redirect_uris[0])
        raise InvalidRedirectUriError("redirect_uri is required for this client")

    def validate_scope(self, requested_scope: str | None) -> list[str] | None:
        """The requested scopes, when the client registered them (or registered none)."""
        if requested_scope is None:
            return None
        if not self._registered.allows_scope(requested_scope):
            raise InvalidScopeError(f"Client was not registered with scope {requested_scope}")
        return requested_scope.split()


class StoreProvider:
    """The SDK's ``OAuthAuthorizationServerProvider`` over our client store (demo: see above)."""

    def __init__(self, store: AsyncClientStore, issuer: str, resource: str) -> None:
        self.store = store
        self.issuer = issuer
        self.resource = resource
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}

    async def get_client(self, client_id: str) -> StoredClient | None:
        """Read the client from the store each time: updates and deletions apply at once."""
        registered = await self.store.get(client_id)
        return None if registered is None else StoredClient.from_registered(registered)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        """Never called: ``POST /register`` is answered by :class:`DCRMiddleware`."""
        raise NotImplementedError("registration is answered by DCRMiddleware")

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        """DEMO: approve at once for :data:`DEMO_USER` and redirect back with a code."""
        registered = _registered(client)
        if not (
            registered.allows_response_type("code")
            and registered.allows_grant_type("authorization_code")
        ):
            raise AuthorizeError("unauthorized_client", "the client did not register the code flow")
        # RFC 8707 §2: a resource this server does not serve is refused with invalid_target.
        if params.resource is not None and params.resource.rstrip("/") != self.resource:
            raise AuthorizeError("invalid_target", f"unknown resource {params.resource}")
        code = secrets.token_urlsafe(32)
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes if params.scopes is not None else _scopes(registered.scope),
            expires_at=time.time() + CODE_TTL,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource or self.resource,
            subject=DEMO_USER,
        )
        # RFC 9207 §2: the issuer goes back with the code (advertised in the metadata).
        return construct_redirect_uri(
            str(params.redirect_uri), code=code, state=params.state, iss=self.issuer
        )

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        """The code, if it was issued to ``client``."""
        code = self.codes.get(authorization_code)
        return code if code is not None and code.client_id == client.client_id else None

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        """Tokens for a code, which is used up (RFC 6749 §4.1.2: at most once)."""
        if self.codes.pop(authorization_code.code, None) is None:
            raise TokenError("invalid_grant", "authorization code already used")
        return self._issue(
            client.client_id,
            authorization_code.scopes,
            authorization_code.resource,
            authorization_code.subject,
        )

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        """The refresh token, if it was issued to ``client``."""
        token = self.refresh_tokens.get(refresh_token)
        return token if token is not None and token.client_id == client.client_id else None

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        """New tokens; the refresh token is rotated (used up)."""
        if self.refresh_tokens.pop(refresh_token.token, None) is None:
            raise TokenError("invalid_grant", "refresh token already used")
        return self._issue(client.client_id, scopes, refresh_token.resource, refresh_token.subject)

    async def load_access_token(self, token: str) -> AccessToken | None:
        """The access token, if this server issued it and it has not expired."""
        access = self.access_tokens.get(token)
        if access is None or (access.expires_at is not None and access.expires_at < time.time()):
            return None
        return access

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        """Forget the token (no revocation endpoint is mounted in this example)."""
        self.access_tokens.pop(token.token, None)
        self.refresh_tokens.pop(token.token, None)

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        """Not supported (SEP-990 identity assertions)."""
        raise TokenError("unsupported_grant_type", "the JWT bearer grant is not supported")

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


class StoreClientAuthenticator(ClientAuthenticator):
    """Token-endpoint client authentication against the stored secret digest.

    Replaces the SDK's plaintext comparison (see the module docstring). RFC 6749 §2.3.1: the
    client authenticates with ``client_secret_basic`` (HTTP Basic) or ``client_secret_post``
    (form fields), and must use the method it registered; a public client (``none``) sends no
    secret. The answer never says whether an unknown client exists.
    """

    def __init__(self, provider: StoreProvider) -> None:
        super().__init__(provider)
        self.store = provider.store

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        """The client the request authenticates, or :class:`AuthenticationError`."""
        form = await request.form()
        form_id, form_secret = form.get("client_id"), form.get("client_secret")
        basic = _basic_credentials(request.headers.get("authorization"))
        if basic is not None:
            if form_secret is not None:
                # RFC 6749 §2.3: the client MUST NOT use more than one authentication method.
                raise AuthenticationError("more than one client authentication method")
            client_id, method = basic[0], "client_secret_basic"
            secret: str | None = basic[1]
            if form_id is not None and form_id != client_id:
                raise AuthenticationError("Client ID mismatch in Basic auth")
        elif isinstance(form_id, str) and form_id:
            client_id, method = form_id, "client_secret_post"
            secret = form_secret if isinstance(form_secret, str) else None
        else:
            raise AuthenticationError("Missing client_id")

        if secret is None:
            registered = await self.store.get(client_id)
            if registered is None or not registered.is_public:
                raise AuthenticationError("Invalid client credentials")
        else:
            registered = await self.store.authenticate(client_id, secret)
            if registered is None or registered.token_endpoint_auth_method != method:
                raise AuthenticationError("Invalid client credentials")
        return StoredClient.from_registered(registered)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if header is None or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise AuthenticationError("Invalid Basic authentication header") from error
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise AuthenticationError("Invalid Basic authentication header")
    # RFC 6749 §2.3.1: both are form-urlencoded before going into the Basic header.
    return unquote(client_id), unquote(secret)


class TokenEndpoint:
    """The SDK's ``TokenHandler`` behind our authenticator, for clients that use HTTP Basic.

    The SDK's token request models require ``client_id`` in the form, but RFC 6749 §4.1.3 asks
    for it only "if the client is not authenticating with the authorization server", and
    conforming clients (Authlib's, for one) leave it out when they send Basic credentials. So
    when the form has none, the client identifier from the Basic header is added before the
    SDK reads the form; :class:`StoreClientAuthenticator` still checks the credentials.
    """

    def __init__(self, provider: StoreProvider) -> None:
        self.handler = TokenHandler(provider, StoreClientAuthenticator(provider))

    async def handle(self, request: Request) -> Response:
        """Answer one token request."""
        body = await request.body()  # bounded by RequestBodyLimitMiddleware (see create_app)
        try:
            basic = _basic_credentials(request.headers.get("authorization"))
        except AuthenticationError:
            basic = None  # the authenticator answers 401 for it
        form = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        if basic is not None and not any(name == "client_id" for name, _ in form):
            body += b"&client_id=" + quote(basic[0], safe="").encode()

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        response: Response = await self.handler.handle(Request(request.scope, receive))
        return response


def _registered(client: OAuthClientInformationFull) -> RegisteredClient:
    if not isinstance(client, StoredClient):
        raise TypeError("clients come from StoreProvider.get_client")
    return client.registered


def _scopes(scope: str | None) -> list[str]:
    return scope.split() if scope else []


def authorization_server_metadata(settings: Settings, issuer: AnyHttpUrl) -> OAuthMetadata:
    """RFC 8414 metadata: the SDK's, with our registration endpoint and our auth methods."""
    metadata = build_metadata(
        issuer,
        None,
        ClientRegistrationOptions(enabled=True, valid_scopes=None),
        RevocationOptions(enabled=False),
    )
    metadata.registration_endpoint = AnyHttpUrl(str(issuer).rstrip("/") + settings.path)
    metadata.token_endpoint_auth_methods_supported = list(settings.allowed_auth_methods)
    metadata.grant_types_supported = [g for g in GRANT_TYPES if g in settings.allowed_grant_types]
    metadata.scopes_supported = [SCOPE]
    metadata.authorization_response_iss_parameter_supported = True
    return metadata


def create_app(settings: Settings | None = None) -> DCRMiddleware:
    """The MCP server, its authorization server and the registration middleware, as one app."""
    settings = Settings.from_env() if settings is None else settings
    base = (settings.issuer or "http://127.0.0.1:8000").rstrip("/")
    # Strings, not AnyHttpUrl(...): AuthSettings keeps a path-less issuer without a trailing
    # slash, and RFC 8414 §3.3 / RFC 9207 compare issuers as exact strings.
    auth = AuthSettings.model_validate(
        {
            "issuer_url": base,
            "resource_server_url": base + "/mcp",
            "required_scopes": [SCOPE],
            # Tokens are bound to the resource the client asked for (RFC 8707).
            "validate_token_resource": True,
        }
    )
    provider = StoreProvider(AsyncClientStore(settings), base, base + "/mcp")
    # A token verifier rather than ``auth_server_provider``: the latter would make the SDK
    # mount every route of ``create_auth_routes``, including its own ``/register``.
    server = MCPServer(
        "dcr-middleware MCP example", token_verifier=ProviderTokenVerifier(provider), auth=auth
    )

    @server.tool()
    def whoami() -> str:
        """Who called: the OAuth client and the user its token was issued for."""
        token = get_access_token()
        if token is None:
            return "anonymous"
        return f"client {token.client_id} acting for {token.subject}"

    metadata = authorization_server_metadata(settings, auth.issuer_url)
    server.custom_route("/.well-known/oauth-authorization-server", ["GET"])(
        MetadataHandler(metadata).handle
    )
    server.custom_route("/", ["GET"])(home)
    # Bodies capped as the SDK's create_auth_routes caps them. These endpoints are ASGI apps, not
    # request handlers (Starlette's Route calls an object that is not a function as ASGI).
    for path, methods, handler in (
        ("/authorize", ["GET", "POST"], AuthorizationHandler(provider).handle),
        ("/token", ["POST"], TokenEndpoint(provider).handle),
    ):
        limited = RequestBodyLimitMiddleware(
            request_response(handler), DEFAULT_MAX_REQUEST_BODY_SIZE
        )
        server.custom_route(path, methods)(limited)
    return DCRMiddleware(server.streamable_http_app(), settings=settings)


async def home(request: Request) -> Response:
    """A plain page, so a process manager (or a test) can see the server is up."""
    return JSONResponse({"message": "hello from the MCP example", "mcp": "/mcp"})


app = create_app()
