"""OAuth 2.0 Dynamic Client Registration (RFC 7591) for any WSGI or ASGI app, in one middleware.

Importing this package reads no environment variable and opens no connection.
"""

from .asgi import DCRMiddleware
from .core.client import RegisteredClient
from .core.errors import (
    ConfigurationError,
    ConflictError,
    DCRError,
    InvalidClientError,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
    StorageError,
)
from .core.server_metadata import authorization_server_metadata
from .core.settings import Settings
from .store import AsyncClientStore, ClientStore
from .wsgi import DCRWSGIMiddleware

__version__ = "0.1.0"

__all__ = [
    "AsyncClientStore",
    "ClientStore",
    "ConfigurationError",
    "ConflictError",
    "DCRError",
    "DCRMiddleware",
    "DCRWSGIMiddleware",
    "InvalidClientError",
    "InvalidClientMetadataError",
    "InvalidRedirectURIError",
    "RegisteredClient",
    "Settings",
    "StorageError",
    "__version__",
    "authorization_server_metadata",
]
