"""Type checks shared by the metadata validators (:mod:`.metadata`, :mod:`.oidc`): each returns
the checked value or raises :class:`~dcr_middleware.errors.InvalidClientMetadataError` naming the
field."""

from __future__ import annotations

from typing import Any

from .errors import InvalidClientMetadataError


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
