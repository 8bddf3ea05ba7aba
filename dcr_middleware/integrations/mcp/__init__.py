"""MCP Python SDK integration: an authorization server whose clients are the middleware's.

An MCP server built with the SDK's ``MCPServer`` gets its authorization server from the SDK's
handlers (``/authorize``, ``/token``, the RFC 8414 document) over an
``OAuthAuthorizationServerProvider``. This package supplies the part of that provider and of
those routes that is about clients, so that the clients the middleware registers are the ones
the authorization server knows:

* :class:`ClientStoreProvider`: a base class whose ``get_client`` reads
  :class:`~dcr_middleware.AsyncClientStore` on every call (as :class:`StoredClient`, without
  the secret) and whose ``register_client`` is never used. You subclass it with what is yours:
  the ``authorize`` decision (login, consent) and where codes and tokens live.
* :class:`StoreClientAuthenticator` and :class:`TokenEndpoint`: the token endpoint checks a
  secret against the store's digest, since the SDK's own authenticator compares plaintext.
* :func:`oauth_metadata`: the RFC 8414 document from the :class:`~dcr_middleware.Settings`,
  ``registration_endpoint`` pointing at the middleware.
* :func:`auth_routes` / :func:`mount_auth_routes`: the SDK's routes without its ``/register``.

Wrap the resulting app in :class:`~dcr_middleware.DCRMiddleware` built from the same settings.
Needs the ``mcp`` extra (the MCP Python SDK); docs/mcp.md and ``examples/mcp_server.py`` show a
whole server.
"""

from __future__ import annotations

from ..._extras import install_hint

try:
    import mcp.server.auth.provider  # noqa: F401 - the SDK, or a clear error
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "dcr_middleware.integrations.mcp needs the MCP Python SDK; install it: "
        + install_hint("mcp")
    ) from exc

from ._clients import ClientStoreProvider, StoredClient, registered_client
from ._routes import auth_routes, mount_auth_routes, oauth_metadata
from ._token import StoreClientAuthenticator, TokenEndpoint

__all__ = [
    "ClientStoreProvider",
    "StoreClientAuthenticator",
    "StoredClient",
    "TokenEndpoint",
    "auth_routes",
    "mount_auth_routes",
    "oauth_metadata",
    "registered_client",
]
