"""Authlib integration: registered clients as Authlib ``ClientMixin`` objects.

An Authlib ``AuthorizationServer`` (Flask or Django) needs a ``query_client`` function returning
client objects; :func:`query_client` builds one over a :class:`~dcr_middleware.ClientStore`.
Every lookup reads the store, so updates made through RFC 7592 ``PUT`` apply at once and a
deleted client is unknown (the server answers ``invalid_client``).
"""

from __future__ import annotations

from collections.abc import Callable

from authlib.oauth2.rfc6749 import ClientMixin

from ..client import RegisteredClient
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
