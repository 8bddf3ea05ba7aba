"""Client credentials: identifiers, secrets, and how secrets are stored and compared.

Randomness is passed in as a :data:`TokenFactory` so the pure core stays deterministic in tests;
production code passes :func:`secrets.token_urlsafe`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

TokenFactory = Callable[[int], str]
"""Returns a URL-safe text token made of the given number of random bytes."""

CLIENT_ID_BYTES = 16  # 128 bits
SECRET_BYTES = 32  # 256 bits
REGISTRATION_TOKEN_BYTES = 32  # 256-bit RFC 7592 registration access tokens

# Auth methods that authenticate with a client secret (RFC 7591 §2, OIDC Core §9).
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"})
# client_secret_jwt signs with the secret itself (HMAC), so the server must keep it in plaintext.
PLAINTEXT_SECRET_METHODS = frozenset({"client_secret_jwt"})


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret, hex-encoded (SPEC §5: secrets are stored hashed)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    """Compare a presented secret with a stored digest in constant time."""
    return hmac.compare_digest(hash_secret(secret), digest)
