"""The registered client as the authorization server sees it, and its stored record format."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from . import _uris
from .credentials import secret_matches

RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """A client registered through the middleware.

    ``metadata`` holds the registered RFC 7591 metadata (defaults applied). The secret is only
    held as a SHA-256 digest, except for ``client_secret_jwt`` clients, whose HMAC key the server
    must know. ``token_policy`` is the policy of the initial access token the client registered
    with (JSON; updates stay within it); ``counted`` says it holds a ``DCR_MAX_CLIENTS`` place.
    ``from_document`` says the client is described by a Client ID Metadata Document: its
    ``client_id`` is the document's URL, it has no secret, no registration access token and no
    management URI, and it is never stored as a record.
    """

    client_id: str
    client_id_issued_at: int
    metadata: dict[str, Any]
    client_secret_expires_at: int = 0
    client_secret_hash: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    registration_token_hash: str | None = field(default=None, repr=False)
    token_policy: str | None = None
    counted: bool = False
    from_document: bool = False

    @property
    def redirect_uris(self) -> list[str]:
        """Registered redirect URIs (empty for clients without redirect-based flows)."""
        return list(self.metadata.get("redirect_uris", []))

    @property
    def grant_types(self) -> list[str]:
        """Grant types the client registered for."""
        return list(self.metadata.get("grant_types", []))

    @property
    def response_types(self) -> list[str]:
        """Response types the client registered for."""
        return list(self.metadata.get("response_types", []))

    @property
    def token_endpoint_auth_method(self) -> str:
        """How the client authenticates at the token endpoint."""
        return str(self.metadata.get("token_endpoint_auth_method", "client_secret_basic"))

    @property
    def scope(self) -> str | None:
        """The registered space-separated scope string, if any."""
        value = self.metadata.get("scope")
        return value if isinstance(value, str) else None

    @property
    def is_public(self) -> bool:
        """True for public clients (``token_endpoint_auth_method`` ``none``, RFC 6749 §2.1).

        A ``private_key_jwt`` client has no secret but is confidential: it holds a private key.
        """
        return self.token_endpoint_auth_method == "none"  # noqa: S105 - a method name

    def allows_grant_type(self, grant_type: str) -> bool:
        """True when the client registered ``grant_type``."""
        return grant_type in self.grant_types

    def allows_response_type(self, response_type: str) -> bool:
        """True when the client registered ``response_type`` (order of its words ignored)."""
        wanted = set(response_type.split())
        return any(set(registered.split()) == wanted for registered in self.response_types)

    def allows_scope(self, scope: str) -> bool:
        """True when every token of ``scope`` is in the registered scope (or none registered)."""
        if self.scope is None:
            return True
        return set(scope.split()) <= set(self.scope.split())

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Match a redirect URI from an authorization request against the registered ones.

        Exact string comparison (RFC 6749 §3.1.2.3), except that for ``http`` loopback redirect
        URIs any port is accepted (RFC 8252 §7.3: "The authorization server MUST allow any port
        to be specified at the time of the request for loopback IP redirect URIs").
        """
        registered = self.redirect_uris
        if redirect_uri in registered:
            return True
        wanted = _loopback_key(redirect_uri)
        return wanted is not None and any(_loopback_key(uri) == wanted for uri in registered)

    def secret_expired(self, now: float | None = None) -> bool:
        """True when ``client_secret_expires_at`` (RFC 7591 §3.2.1) is set and has passed."""
        expires = self.client_secret_expires_at
        return expires != 0 and (time.time() if now is None else now) >= expires

    def check_secret(self, secret: str, now: float | None = None) -> bool:
        """Constant-time secret check that also honours the secret's expiry."""
        if self.client_secret_hash is None or self.secret_expired(now):
            return False
        return secret_matches(secret, self.client_secret_hash)

    def to_record(self) -> str:
        """Serialize for the store (JSON; ASCII-only so any store can hold it)."""
        record = {
            "v": RECORD_VERSION,
            "client_id": self.client_id,
            "client_id_issued_at": self.client_id_issued_at,
            "client_secret_expires_at": self.client_secret_expires_at,
            "client_secret_hash": self.client_secret_hash,
            "client_secret": self.client_secret,
            "registration_token_hash": self.registration_token_hash,
            "token_policy": self.token_policy,
            "counted": self.counted,
            "metadata": self.metadata,
        }
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def from_record(cls, record: str | bytes) -> RegisteredClient:
        """Load a record written by :meth:`to_record`."""
        data = json.loads(record)
        return cls(
            client_id=data["client_id"],
            client_id_issued_at=data["client_id_issued_at"],
            metadata=data["metadata"],
            client_secret_expires_at=data["client_secret_expires_at"],
            client_secret_hash=data["client_secret_hash"],
            client_secret=data.get("client_secret"),
            registration_token_hash=data.get("registration_token_hash"),
            token_policy=data.get("token_policy"),
            counted=bool(data.get("counted", False)),
        )


def _loopback_key(uri: str) -> tuple[str, str, str] | None:
    parts = _uris.split_absolute(uri)
    if parts is None or parts.scheme.lower() != "http":
        return None
    if not _uris.is_loopback_host(parts.hostname):
        return None
    return ((parts.hostname or "").lower(), parts.path, parts.query)
