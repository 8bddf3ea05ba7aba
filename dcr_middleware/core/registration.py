"""The registration decision, with no I/O: request body in, client record and response out.

Time and randomness are arguments, so the whole decision is a pure function of its inputs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ._json_depth import MAX_DEPTH, too_deep
from .client import RegisteredClient
from .client_metadata import validate_client_metadata
from .credentials import (
    CLIENT_ID_BYTES,
    PLAINTEXT_SECRET_METHODS,
    REGISTRATION_TOKEN_BYTES,
    SECRET_BYTES,
    SECRET_METHODS,
    TokenFactory,
    hash_secret,
)
from .errors import InvalidClientMetadataError
from .settings import Settings
from .software_statement import SoftwareStatements


@dataclass(frozen=True, slots=True)
class NewClient:
    """A validated client ready to be stored, and the body of the ``201`` answer."""

    client: RegisteredClient
    response: dict[str, Any]
    record: str | None = None  # client.to_record(), written once for the size check

    @property
    def client_id(self) -> str:
        """The freshly issued client identifier."""
        return self.client.client_id


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # 1e999 parses to inf, which would be echoed back as the non-JSON token Infinity.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 8259 §4: names SHOULD be unique; parsers disagree on which duplicate wins, so a
    # request that repeats a member is refused instead of guessed at.
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        name = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidClientMetadataError(f"{name[:120]}: repeated in the request body")
    return members


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be one UTF-8 JSON object (RFC 8259), nested at most
    :data:`~dcr_middleware.core._json_depth.MAX_DEPTH` levels deep."""
    value = parse_json(body)
    if not isinstance(value, dict):
        raise InvalidClientMetadataError("the request body must be a JSON object")
    return value


def parse_json(body: bytes) -> Any:
    """Parse one UTF-8 JSON value under the rules of :func:`parse_json_object` (no repeated
    member, no ``NaN`` or infinity, nested at most ``MAX_DEPTH`` levels), whatever its type."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidClientMetadataError("the request body is not valid UTF-8 JSON") from None
    # Before the parser, and so before every recursive step (validation, json.dumps of the
    # record): a deep body used to fail there as a RecursionError, outside any handler.
    if too_deep(text):
        raise InvalidClientMetadataError(
            f"the request body nests JSON arrays and objects more than {MAX_DEPTH} levels deep"
        )
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_members,
        )
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and over-long integers.
        raise InvalidClientMetadataError("the request body is not valid UTF-8 JSON") from None
    return value


def check_record_size(client: RegisteredClient, settings: Settings) -> str:
    """The stored record of ``client``; ``400`` when it would pass ``DCR_MAX_RECORD_BYTES``.

    The size is that of the record the store keeps (ASCII JSON, so one byte per character;
    non-ASCII text counts six bytes per character, as stored). It bounds what one registration
    or update can add to the store, whatever the individual field limits allow together.
    """
    record = client.to_record()
    size = len(record)
    limit = settings.max_record_bytes
    if size > limit:
        sizes = {k: len(json.dumps(v)) for k, v in client.metadata.items()}
        largest = max(sizes, key=sizes.__getitem__) if sizes else "metadata"
        raise InvalidClientMetadataError(
            f"the client would be stored as {size} bytes; this server stores at most {limit} "
            f"(the largest field is {largest[:120]}): send shorter or fewer values"
        )
    return record


def prepare_registration(
    body: bytes,
    settings: Settings,
    *,
    now: int,
    token: TokenFactory,
    endpoint_url: str = "http://localhost/register",
    token_policy: str | None = None,
    statements: SoftwareStatements | None = None,
) -> NewClient:
    """Validate a registration request body and issue the client's credentials.

    ``endpoint_url`` is the absolute URL of the registration endpoint; the client's
    ``registration_client_uri`` (RFC 7592 §3) is ``endpoint_url/{client_id}``. ``statements``
    is the software-statement policy built once by the service (else built from ``settings``).
    """
    if statements is None:
        statements = SoftwareStatements.from_settings(settings)
    admitted = statements.admit(parse_json_object(body), now)
    metadata = validate_client_metadata(admitted.raw, settings)
    if admitted.statement is not None:
        # RFC 7591 §3.2.1: the statement's value "MUST be returned unmodified in the response".
        metadata["software_statement"] = admitted.statement
    client_id = token(CLIENT_ID_BYTES)
    response: dict[str, Any] = {"client_id": client_id, "client_id_issued_at": now}
    method = metadata["token_endpoint_auth_method"]
    secret_hash = plaintext = None
    expires_at = 0
    if method in SECRET_METHODS:
        secret = token(SECRET_BYTES)
        secret_hash = hash_secret(secret)
        plaintext = secret if method in PLAINTEXT_SECRET_METHODS else None
        expires_at = now + settings.client_secret_ttl if settings.client_secret_ttl else 0
        # RFC 7591 §3.2.1: client_secret_expires_at is REQUIRED if client_secret is issued.
        response["client_secret"] = secret
        response["client_secret_expires_at"] = expires_at
    response.update(metadata)
    # RFC 7592 §3: the response carries the client configuration endpoint and its token.
    access_token = token(REGISTRATION_TOKEN_BYTES)
    response["registration_client_uri"] = f"{endpoint_url}/{client_id}"
    response["registration_access_token"] = access_token
    client = RegisteredClient(
        client_id=client_id,
        client_id_issued_at=now,
        metadata=metadata,
        client_secret_expires_at=expires_at,
        client_secret_hash=secret_hash,
        client_secret=plaintext,
        registration_token_hash=hash_secret(access_token),
        token_policy=token_policy,
    )
    record = check_record_size(client, settings)
    return NewClient(client=client, response=response, record=record)
