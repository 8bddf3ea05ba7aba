"""Type checks shared by the metadata validators (:mod:`.client_metadata`, :mod:`.oidc`): each
returns the checked value or raises
:class:`~dcr_middleware.core.errors.InvalidClientMetadataError` naming the field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _uris
from .errors import InvalidClientMetadataError, InvalidRedirectURIError

if TYPE_CHECKING:
    from .settings import Settings


def fail(field: str, problem: str) -> InvalidClientMetadataError:
    """The error for ``field``; its description starts with the field name."""
    # Field names can be client-supplied (language-tagged keys): keep the description short.
    return InvalidClientMetadataError(f"{field[:120]}: {problem}")


def string(value: Any, field: str) -> str:
    """A non-empty string of valid Unicode text."""
    if not isinstance(value, str) or not value:
        raise fail(field, "must be a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise fail(field, "must be valid Unicode text") from None
    return value


def string_list(value: Any, field: str) -> list[str]:
    """An array of non-empty strings without repeated values."""
    if not isinstance(value, list):
        raise fail(field, "must be an array of strings")
    items = [string(item, field) for item in value]
    if len(set(items)) != len(items):
        raise fail(field, "must not repeat values")
    return items


def shown(value: str, limit: int = 120) -> str:
    """Quote a client-supplied value for an error description, cut to a readable length."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def redirect_uri_list(field: str, value: Any, settings: Settings) -> list[str]:
    """An array of distinct URIs that each pass the redirect URI rules of :mod:`._uris`
    (``redirect_uris``, ``post_logout_redirect_uris``); else ``invalid_redirect_uri``."""
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        raise InvalidRedirectURIError(f"{field}: must be an array of strings")
    if len(set(value)) != len(value):
        raise InvalidRedirectURIError(f"{field}: must not repeat values")
    for uri in value:
        problem = _uris.redirect_uri_problem(
            uri,
            allow_insecure=settings.allow_insecure_redirect_uris,
            allowed_hosts=settings.allowed_redirect_hosts,
        )
        if problem:
            raise InvalidRedirectURIError(f"{field}: {shown(uri)} {problem}")
    return value
