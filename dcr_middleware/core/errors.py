"""The library's error hierarchy.

Every error a request can end in is a :class:`DCRError`: it carries the RFC ``error`` code and
the HTTP status it is answered with, so the adapters need one ``except`` clause and one renderer
(:func:`dcr_middleware.core._http.error_response`). Anything else escaping the core is a bug.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# RFC 6749 §5.2: "Values for the error_description parameter MUST NOT include characters
# outside the set %x20-21 / %x23-5B / %x5D-7E."
_NOT_DESCRIPTION_CHAR = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


class ConfigurationError(ValueError):
    """Raised at construction when settings are invalid; lists every bad variable at once."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid dcr-middleware configuration:\n{lines}")


class DCRError(Exception):
    """Base class of the errors answered over HTTP as an RFC-style JSON error object."""

    error = "invalid_request"
    status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def headers(self) -> list[tuple[str, str]]:
        """Extra response headers this error requires (e.g. ``Retry-After``)."""
        return []

    @property
    def public_description(self) -> str:
        """The ``error_description`` as sent: descriptions quote client input, so every
        character outside the RFC 6749 §5.2 set (controls included) becomes ``?``."""
        return _NOT_DESCRIPTION_CHAR.sub("?", self.description)


class InvalidClientMetadataError(DCRError):
    """RFC 7591 §3.2.2: the value of one of the client metadata fields is invalid."""

    error = "invalid_client_metadata"


class InvalidRedirectURIError(InvalidClientMetadataError):
    """RFC 7591 §3.2.2: the value of one or more redirection URIs is invalid."""

    error = "invalid_redirect_uri"


class InvalidSoftwareStatementError(DCRError):
    """RFC 7591 §3.2.2: the software statement presented is invalid (signature, time, form)."""

    error = "invalid_software_statement"


class UnapprovedSoftwareStatementError(DCRError):
    """RFC 7591 §3.2.2: the software statement is not approved for use by this server."""

    error = "unapproved_software_statement"


class InvalidRequestError(DCRError):
    """The HTTP request itself is malformed (RFC 6749 ``invalid_request``)."""

    error = "invalid_request"


class UnsupportedMediaTypeError(InvalidRequestError):
    """The request body is not ``application/json``."""

    status = 415


class LengthRequiredError(InvalidRequestError):
    """A chunked body the WSGI server does not terminate (no ``wsgi.input_terminated``)."""

    status = 411


class PayloadTooLargeError(InvalidRequestError):
    """The request body is larger than ``DCR_MAX_BODY_BYTES``."""

    status = 413


class StorageError(DCRError):
    """The client store could not be reached or did not answer in time.

    Redis exceptions are wrapped into this error; it is answered with ``503`` and a
    ``Retry-After`` header, and never leaves a partial client behind.
    """

    error = "temporarily_unavailable"
    status = 503
    retry_after_seconds = 1

    def headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", str(self.retry_after_seconds))]


class RateLimitedError(DCRError):
    """Too many attempts from one client address or token, too many failed credentials from
    one address, or too many writes to one client (``429``)."""

    error = "too_many_requests"
    status = 429

    def __init__(self, description: str, headers: list[tuple[str, str]], scope: str = "ip") -> None:
        super().__init__(description)
        self._headers = headers
        self.scope = scope  # the bucket's kind: ip, token, auth (failures) or client (writes)

    def headers(self) -> list[tuple[str, str]]:
        return list(self._headers)


class ClientCapError(DCRError):
    """``DCR_MAX_CLIENTS`` clients are registered: the server accepts no more (``403``)."""

    error = "access_denied"
    status = 403


class InvalidTokenError(DCRError):
    """RFC 6750 §3.1: the initial access token is missing, malformed, unknown or used up."""

    error = "invalid_token"
    status = 401

    def headers(self) -> list[tuple[str, str]]:
        # RFC 6750 §3: the 401 carries a Bearer challenge naming the error.
        return [("WWW-Authenticate", 'Bearer error="invalid_token"')]


class InvalidClientError(DCRError):
    """RFC 6749 §5.2: the client is unknown (never registered, deleted, or expired after
    ``DCR_CLIENT_IDLE_TTL``) or its secret is wrong: ``401``, so a well-behaved client registers
    again. Raised by :meth:`ClientStore.require` for the authorization server's token endpoint."""

    error = "invalid_client"
    status = 401


class ConflictError(InvalidRequestError):
    """The client changed between reading and writing it (a concurrent update): ``409``."""

    status = 409


class MethodNotAllowedError(InvalidRequestError):
    """A method the client configuration endpoint does not serve: ``405`` with ``Allow``."""

    status = 405

    def __init__(self, description: str, allow: str) -> None:
        super().__init__(description)
        self.allow = allow

    def headers(self) -> list[tuple[str, str]]:
        return [("Allow", self.allow)]
