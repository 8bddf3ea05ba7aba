"""RFC 7592 client configuration endpoint (``P/{client_id}``): read, update and delete, as pure
decisions over a stored :class:`RegisteredClient`.

The registration access token is stored only as its SHA-256 digest, so a response can carry the
token only when the request did: a read (``GET``) echoes the token the client presented, an update
(``PUT``) returns a fresh one when ``DCR_ROTATE_REGISTRATION_ACCESS_TOKEN`` is on (the default),
else the presented one. Likewise the client secret is never shown by a read (the server keeps its
digest); an update echoes the secret the client sent, or a new one when the update moves the
client to a secret-based auth method.
"""

from __future__ import annotations

import dataclasses
import hmac
from dataclasses import dataclass
from typing import Any

from .client import RegisteredClient
from .client_metadata import validate_client_metadata
from .credentials import (
    PLAINTEXT_SECRET_METHODS,
    REGISTRATION_TOKEN_BYTES,
    SECRET_BYTES,
    SECRET_METHODS,
    TokenFactory,
    hash_secret,
)
from .errors import InvalidClientMetadataError, InvalidRequestError, InvalidTokenError
from .registration import check_record_size, parse_json_object
from .settings import Settings
from .software_statement import SoftwareStatements
from .tokens import TokenPolicy

METHODS = ("GET", "PUT", "DELETE")
# RFC 7592 §2.2: "The client MUST NOT include the registration_access_token,
# registration_client_uri, client_secret_expires_at, or client_id_issued_at fields".
_SERVER_FIELDS = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)
_NO_DIGEST = "0" * 64


def client_id_from_path(path: str, base: str) -> str | None:
    """The ``{client_id}`` of ``P/{client_id}``; ``None`` for any other path."""
    rest = path[len(base) + 1 :] if path.startswith(base + "/") else ""
    return rest if rest and "/" not in rest else None


def unknown_registration_token() -> InvalidTokenError:
    """One answer for a missing, wrong or other client's token and an unknown client."""
    return InvalidTokenError("the registration access token is invalid")


def authorize(client: RegisteredClient | None, token_digest: str | None) -> RegisteredClient:
    """The client when ``token_digest`` is its registration access token, else ``401``.

    The digest comparison runs whether or not the client exists, so the answer's timing does not
    tell an unknown client from a wrong token.
    """
    stored = client.registration_token_hash if client is not None else None
    matches = hmac.compare_digest(token_digest or _NO_DIGEST, stored or _NO_DIGEST)
    if client is None or stored is None or token_digest is None or not matches:
        raise unknown_registration_token()
    return client


def client_information(
    client: RegisteredClient, client_uri: str, access_token: str, secret: str | None = None
) -> dict[str, Any]:
    """RFC 7592 §3 client information response body."""
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": client.client_id_issued_at,
    }
    if secret is not None:
        body["client_secret"] = secret
    if client.client_secret_hash is not None:
        body["client_secret_expires_at"] = client.client_secret_expires_at
    body.update(client.metadata)
    body["registration_client_uri"] = client_uri
    body["registration_access_token"] = access_token
    return body


@dataclass(frozen=True, slots=True)
class Update:
    """The replacement client and the token and secret its response shows."""

    client: RegisteredClient
    access_token: str
    secret: str | None


def prepare_update(
    body: bytes,
    current: RegisteredClient,
    settings: Settings,
    *,
    presented_token: str,
    now: int,
    token: TokenFactory,
    statements: SoftwareStatements | None = None,
) -> Update:
    """Validate a ``PUT`` body and build the replacement (RFC 7592 §2.2).

    The metadata is replaced, not merged: omitted fields are treated as null (so they take their
    defaults or disappear). The same validation and policy as registration apply.
    """
    raw = parse_json_object(body)
    if raw.get("client_id") != current.client_id:
        # RFC 7592 §2.2: "The client MUST include its client_id field in the request, and it
        # MUST be the same as its currently issued client identifier."
        raise InvalidRequestError("client_id: must be present and match the client")
    refused = [name for name in _SERVER_FIELDS if name in raw]
    if refused:
        raise InvalidRequestError(f"{refused[0]}: is set by the server and must not be sent")
    sent_secret = raw.get("client_secret")
    if sent_secret is not None and not (
        isinstance(sent_secret, str) and current.check_secret(sent_secret, now)
    ):
        # RFC 7592 §2.2: the client_secret "MUST match the currently issued client secret".
        raise InvalidClientMetadataError("client_secret: does not match the current secret")
    if current.token_policy is not None:
        # The client registered under an initial access token's policy: updates stay within it.
        settings = TokenPolicy.from_json(current.token_policy).apply(settings)
    if statements is None:
        statements = SoftwareStatements.from_settings(settings)
    # The statement already stored is trusted as is; a new one is verified like at registration.
    admitted = statements.admit(raw, now, stored=current.metadata.get("software_statement"))
    metadata = validate_client_metadata(admitted.raw, settings)
    if admitted.statement is not None:
        metadata["software_statement"] = admitted.statement
    method = metadata["token_endpoint_auth_method"]
    secret_hash, expires_at, shown = None, 0, None
    keep = current.client_secret_hash is not None and not current.secret_expired(now)
    if method in PLAINTEXT_SECRET_METHODS and (sent_secret or current.client_secret) is None:
        keep = False  # client_secret_jwt needs the plaintext, which only a new secret gives
    if method in SECRET_METHODS:
        if keep:
            secret_hash, expires_at = current.client_secret_hash, current.client_secret_expires_at
            shown = sent_secret
        else:
            shown = token(SECRET_BYTES)
            secret_hash = hash_secret(shown)
            expires_at = now + settings.client_secret_ttl if settings.client_secret_ttl else 0
    plaintext = (shown or current.client_secret) if method in PLAINTEXT_SECRET_METHODS else None
    access_token = (
        token(REGISTRATION_TOKEN_BYTES)
        if settings.rotate_registration_access_token
        else presented_token
    )
    client = dataclasses.replace(
        current,
        metadata=metadata,
        client_secret_hash=secret_hash,
        client_secret_expires_at=expires_at,
        client_secret=plaintext,
        registration_token_hash=hash_secret(access_token),
    )
    check_record_size(client, settings)
    return Update(client, access_token, shown)
