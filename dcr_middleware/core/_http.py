"""The neutral HTTP layer both adapters translate to and from: checks made before the body is
read, and the JSON responses of the registration endpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import (
    DCRError,
    InvalidRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

# SPEC §3: every response that carries a secret or token is not to be cached.
_NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response: status, header list and body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_response(
    status: int, payload: dict[str, Any], headers: list[tuple[str, str]] | None = None
) -> Response:
    """Serialize ``payload`` as a UTF-8 JSON response that must not be cached.

    Lone surrogates (possible only in echoed error text) are escaped, so encoding cannot fail.
    """
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    body = text.encode("utf-8", "backslashreplace")
    return Response(
        status,
        [("Content-Type", "application/json"), *_NO_STORE, *(headers or [])],
        body,
    )


def error_response(error: DCRError) -> Response:
    """RFC 6749 §5.2 / RFC 7591 §3.2.2 error object for one of the library's errors."""
    payload = {"error": error.error, "error_description": error.public_description}
    return json_response(error.status, payload, error.headers())


def check_content_type(value: str | None) -> None:
    """RFC 7591 §3.1: the request body is ``application/json`` (charset, if any, UTF-8)."""
    media_type, _, params = (value or "").partition(";")
    if media_type.strip().lower() != "application/json":
        raise UnsupportedMediaTypeError("Content-Type must be application/json")
    for param in params.split(";"):
        name, _, charset = param.partition("=")
        if name.strip().lower() == "charset" and charset.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise UnsupportedMediaTypeError("application/json bodies must be UTF-8")


def check_declared_length(value: str | None, limit: int) -> int | None:
    """Check a ``Content-Length`` header against ``limit`` before any byte is read.

    Returns the declared length, or ``None`` when the body is chunked (no length given).
    """
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()):
        raise InvalidRequestError("Content-Length is not a number")
    length = int(value)
    if length > limit:
        raise too_large(limit)
    return length


def too_large(limit: int) -> PayloadTooLargeError:
    """The error for a body over ``DCR_MAX_BODY_BYTES``."""
    return PayloadTooLargeError(f"the request body is larger than {limit} bytes")
