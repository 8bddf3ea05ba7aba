"""Grant type / response type consistency (RFC 7591 §2.1) and which flows need redirect URIs."""

from __future__ import annotations

from collections.abc import Sequence

REDIRECT_GRANTS = frozenset({"authorization_code", "implicit"})


def grants_for_response_type(response_type: str) -> set[str]:
    """The grant types a response type implies: ``code`` -> authorization_code, ``token``/
    ``id_token`` -> implicit (RFC 7591 §2.1 table; OIDC hybrid types imply both)."""
    parts = set(response_type.split())
    grants = set()
    if "code" in parts:
        grants.add("authorization_code")
    if parts & {"token", "id_token"}:
        grants.add("implicit")
    return grants


def default_response_types(grant_types: Sequence[str]) -> list[str]:
    """Response types for a client that omitted them, consistent with its grant types.

    RFC 7591 §2 gives ``code`` as the default; it is only meaningful when the client uses the
    authorization code grant, so a client registering only ``client_credentials`` gets none.
    """
    defaults = []
    if "authorization_code" in grant_types:
        defaults.append("code")
    if "implicit" in grant_types:
        defaults.append("token")
    return defaults


def inconsistency(grant_types: Sequence[str], response_types: Sequence[str]) -> str | None:
    """Describe the first §2.1 inconsistency between the two lists, or return ``None``."""
    implied: set[str] = set()
    for response_type in response_types:
        needed = grants_for_response_type(response_type)
        missing = sorted(needed - set(grant_types))
        if missing:
            return f"response type {response_type!r} needs grant type {missing[0]!r}"
        implied |= needed
    for grant in sorted(REDIRECT_GRANTS & set(grant_types)):
        if grant not in implied:
            wanted = "code" if grant == "authorization_code" else "token"
            return f"grant type {grant!r} needs response type {wanted!r}"
    return None


def needs_redirect_uris(grant_types: Sequence[str]) -> bool:
    """RFC 6749 §3.1.2.2 / RFC 7591 §2: redirect-based flows must register redirect URIs."""
    return bool(REDIRECT_GRANTS & set(grant_types))
