"""Authlib integration: registered clients as Authlib ``ClientMixin`` objects.

An Authlib ``AuthorizationServer`` (Flask or Django) needs a ``query_client`` function returning
client objects; :func:`query_client` builds one over a :class:`~dcr_middleware.ClientStore`.
Every lookup reads the store, so updates made through RFC 7592 ``PUT`` apply at once and a
deleted client is unknown (the server answers ``invalid_client``).

The grant classes and the PKCE extension below close the gaps between Authlib's defaults and
what registered clients need: public clients at the token endpoint, ``client_secret_post`` for
client credentials, ``S256`` only. ``examples/flask_authlib_server.py`` wires them together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import ClientMixin, InvalidRequestError, InvalidScopeError, grants
from authlib.oauth2.rfc7636 import CodeChallenge

from ..core.client import RegisteredClient
from ..store import ClientStore


class AuthlibClient(ClientMixin):  # type: ignore[misc]
    """A :class:`RegisteredClient` behind Authlib's ``ClientMixin`` interface."""

    def __init__(self, client: RegisteredClient) -> None:
        self.client = client
        self.client_id = client.client_id

    def get_client_id(self) -> str:
        """The client identifier."""
        return self.client.client_id

    def get_default_redirect_uri(self) -> str | None:
        """The first registered redirect URI (used when a request names none)."""
        uris = self.client.redirect_uris
        return uris[0] if uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes the client registered (all of them when it registered none)."""
        if not scope:
            return ""
        registered = self.client.scope
        if registered is None:
            return " ".join(scope.split())
        allowed = set(registered.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact match, plus any port for loopback ``http`` URIs (RFC 8252 §7.3)."""
        return self.client.check_redirect_uri(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        """Constant-time check against the stored digest, honouring the secret's expiry."""
        return self.client.check_secret(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """At the token endpoint, only the registered ``token_endpoint_auth_method``."""
        if endpoint == "token":
            return method == self.client.token_endpoint_auth_method
        return True

    def check_response_type(self, response_type: str) -> bool:
        """True when the client registered ``response_type``."""
        return self.client.allows_response_type(response_type)

    def check_grant_type(self, grant_type: str) -> bool:
        """True when the client registered ``grant_type``."""
        return self.client.allows_grant_type(grant_type)


def query_client(store: ClientStore) -> Callable[[str], AuthlibClient | None]:
    """A ``query_client`` for Authlib's ``AuthorizationServer`` reading ``store`` each time."""

    def query(client_id: str) -> AuthlibClient | None:
        client = store.get(client_id)
        return None if client is None else AuthlibClient(client)

    return query


# The client authentication methods Authlib's AuthorizationServer handles without extra setup.
# ``client_secret_jwt`` and ``private_key_jwt`` need Authlib's RFC 7523 extension.
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
TOKEN_ENDPOINT_AUTH_METHODS = (*SECRET_METHODS, "none")


def _is_public(client: ClientMixin) -> bool:
    # Authlib's own test for "public": the client may use no authentication at the token endpoint.
    return bool(client.check_endpoint_auth_method("none", "token"))


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE (RFC 7636) with ``S256`` only, required of public clients.

    Register it with the authorization code grant:
    ``server.register_grant(MyAuthorizationCodeGrant, [S256CodeChallenge()])``. Authlib's
    ``CodeChallenge`` accepts ``plain`` (the default method when none is sent) and lets a public
    client's authorization request through without a challenge, refusing it only at the token
    endpoint; this one refuses both at the authorization endpoint, so the client learns at once.
    A confidential client may use PKCE (``S256``) or not. The authorization code object must
    answer ``code_challenge`` and ``code_challenge_method`` (see ``CodeChallenge``).
    """

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def __init__(self) -> None:
        super().__init__(required=True)  # public clients MUST send a code_verifier

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        """Authorization endpoint: a public client must send an ``S256`` challenge."""
        request = grant.request
        challenge = request.payload.data.get("code_challenge")
        method = request.payload.data.get("code_challenge_method")
        # RFC 9700 §2.1.1: "Public clients MUST use PKCE".
        if not challenge and _is_public(request.client):
            raise InvalidRequestError("public clients must send a PKCE code_challenge (S256)")
        # RFC 7636 §4.3: without code_challenge_method the method is "plain", which we refuse.
        if challenge and method != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """Authlib's authorization code grant, accepting public clients at the token endpoint.

    Subclass it and implement the code storage (``save_authorization_code``,
    ``query_authorization_code``, ``delete_authorization_code``, ``authenticate_user``), then
    register it with :class:`S256CodeChallenge`. Each client may only use the method it
    registered (:meth:`AuthlibClient.check_endpoint_auth_method`).
    """

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(TOKEN_ENDPOINT_AUTH_METHODS)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """Authlib's client credentials grant, for clients that registered it.

    Both secret methods are accepted (each client only its registered one; Authlib's grant
    accepts only ``client_secret_basic``), public clients are refused (they have no secret), and
    a requested ``scope`` must be within the client's registered scope (``invalid_scope``):
    no user consents here, so the registration is the only grant of scope.
    """

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(SECRET_METHODS)

    def validate_requested_scope(self) -> None:
        """The server's ``scopes_supported``, then the client's registered scope."""
        super().validate_requested_scope()
        scope = self.request.payload.scope
        client = self.request.client
        if scope and isinstance(client, AuthlibClient) and not client.client.allows_scope(scope):
            raise InvalidScopeError("the requested scope exceeds the client's registered scope")
