"""Clients from the store as the SDK's handlers see them, and the provider's client half."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic

from mcp.server.auth.provider import (
    AccessTokenT,
    AuthorizationCodeT,
    AuthorizationParams,
    AuthorizeError,
    IdentityAssertionParams,
    RefreshTokenT,
    TokenError,
    construct_redirect_uri,
)
from mcp.shared.auth import (
    InvalidRedirectUriError,
    InvalidScopeError,
    OAuthClientInformationFull,
    OAuthToken,
)
from pydantic import AnyUrl, PrivateAttr, ValidationError

from ...core.client import RegisteredClient
from ...store import AsyncClientStore


class StoredClient(OAuthClientInformationFull):
    """A client from the store, as the SDK's handlers expect it, with the store's rules.

    It never carries a secret: the store keeps only a digest, and the SDK's own
    ``ClientAuthenticator`` would compare ``client_secret`` in plaintext, so the token endpoint
    uses :class:`~dcr_middleware.integrations.mcp.StoreClientAuthenticator` instead. Redirect
    URIs are matched by :meth:`RegisteredClient.check_redirect_uri` (exact, plus any port for
    ``http`` loopback URIs, RFC 8252 §7.3) and scopes by :meth:`RegisteredClient.allows_scope`.
    """

    _registered: RegisteredClient = PrivateAttr()

    @classmethod
    def from_registered(cls, registered: RegisteredClient) -> StoredClient:
        """The SDK view of ``registered``: the fields its handlers read, and no secret."""
        client = cls(
            client_id=registered.client_id,
            client_id_issued_at=registered.client_id_issued_at,
            client_secret_expires_at=registered.client_secret_expires_at,
            redirect_uris=_urls(registered.redirect_uris),
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
        """The client as the store holds it (its full metadata, for a consent page)."""
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


def _urls(uris: list[str]) -> list[AnyUrl]:
    # Informational only (StoredClient.validate_redirect_uri reads the registered strings): a URI
    # pydantic cannot parse is left out rather than failing the lookup.
    urls = []
    for uri in uris:
        try:
            urls.append(AnyUrl(uri))
        except ValidationError:
            continue
    return urls


def registered_client(client: OAuthClientInformationFull) -> RegisteredClient:
    """The stored client behind a client the SDK hands to the provider."""
    if not isinstance(client, StoredClient):
        raise TypeError("clients come from ClientStoreProvider.get_client")
    return client.registered


class ClientStoreProvider(ABC, Generic[AuthorizationCodeT, RefreshTokenT, AccessTokenT]):
    """The client half of the SDK's ``OAuthAuthorizationServerProvider``, over the store.

    :meth:`get_client` reads :class:`~dcr_middleware.AsyncClientStore` on every call, so an
    update through RFC 7592 applies at once and a deleted client is unknown at once; the
    client id goes to the store unchanged, whatever its form. :meth:`register_client` is never
    called: ``POST`` on ``DCR_PATH`` is answered by the middleware.

    Subclass it and implement what is yours: :meth:`authorize` (login and consent: show the
    client's name *and* its redirect host, since anyone may register a client) and the
    persistence of codes and tokens. ``issuer`` (default ``DCR_ISSUER``) is the authorization
    server's issuer, sent back with each code by :meth:`code_redirect` (RFC 9207).
    """

    def __init__(self, store: AsyncClientStore, *, issuer: str | None = None) -> None:
        issuer = store.settings.issuer if issuer is None else issuer
        if issuer is None:
            raise ValueError("no issuer: set DCR_ISSUER or pass issuer='https://...'")
        self.store = store
        self.issuer = issuer

    async def get_client(self, client_id: str) -> StoredClient | None:
        """The client from the store, or ``None`` when there is no such client."""
        registered = await self.store.get(client_id)
        return None if registered is None else StoredClient.from_registered(registered)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        """Never called: registration is answered by the middleware."""
        raise NotImplementedError("registration is answered by DCRMiddleware")

    def require_code_flow(self, client: OAuthClientInformationFull) -> RegisteredClient:
        """The stored client, if it registered the authorization code flow; call it first in
        :meth:`authorize` (``AuthorizeError`` ``unauthorized_client`` otherwise)."""
        registered = registered_client(client)
        if not (
            registered.allows_response_type("code")
            and registered.allows_grant_type("authorization_code")
        ):
            raise AuthorizeError("unauthorized_client", "the client did not register the code flow")
        return registered

    def code_redirect(self, params: AuthorizationParams, code: str) -> str:
        """The redirect back to the client with ``code``, its ``state`` and our issuer."""
        # RFC 9207 §2: the issuer goes back with the code (advertised by oauth_metadata).
        return construct_redirect_uri(
            str(params.redirect_uri), code=code, state=params.state, iss=self.issuer
        )

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        """Not supported (SEP-990 identity assertions need a confidential client with a
        secret the SDK can see); override it to support the grant."""
        raise TokenError("unsupported_grant_type", "the JWT bearer grant is not supported")

    @abstractmethod
    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        """Yours: decide (login, consent) and return the URL to redirect the browser to."""

    @abstractmethod
    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCodeT | None:
        """Yours: the code, if it was issued to ``client``."""

    @abstractmethod
    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCodeT
    ) -> OAuthToken:
        """Yours: tokens for a code, which is used up (RFC 6749 §4.1.2: at most once)."""

    @abstractmethod
    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshTokenT | None:
        """Yours: the refresh token, if it was issued to ``client``."""

    @abstractmethod
    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshTokenT, scopes: list[str]
    ) -> OAuthToken:
        """Yours: new tokens for a refresh token."""

    @abstractmethod
    async def load_access_token(self, token: str) -> AccessTokenT | None:
        """Yours: the access token, if this server issued it and it is still valid."""

    @abstractmethod
    async def revoke_token(self, token: AccessTokenT | RefreshTokenT) -> None:
        """Yours: forget the token."""
