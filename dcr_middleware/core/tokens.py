"""Initial access tokens (RFC 7591 §3): who may register, decided before the body is read.

Two sources. Static tokens come from ``DCR_INITIAL_ACCESS_TOKENS`` (plaintext, or
``sha256:<hex>`` so the plaintext need not sit in the environment); they never run out. Minted
tokens are made by ``dcr-middleware tokens create`` and live in the store, hashed, with a use
count, an expiry and optionally a policy of their own (allowed scopes, redirect hosts, rate
limit). A use is taken atomically only once the request's metadata is valid, so a rejected
request does not burn a use, and two requests racing for the last use cannot both win.

Tokens are only ever handled as SHA-256 digests after parsing: key names, logs and listings
carry the digest (or its first 16 hex digits as the token id), never the token.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidTokenError
from .settings import Settings

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
# (\Z, not $: $ also matches before a trailing newline.)
_BEARER = re.compile(r"^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *\Z")
_DIGEST = re.compile(r"^sha256:([0-9a-fA-F]{64})\Z")
TOKEN_BYTES = 32
ID_LENGTH = 16


def digest(token: str) -> str:
    """The SHA-256 hex digest a token is known by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_static_tokens(entries: tuple[str, ...]) -> tuple[str, ...]:
    """Digests of ``DCR_INITIAL_ACCESS_TOKENS`` entries (plaintext or ``sha256:<hex>``)."""
    digests = []
    for entry in entries:
        match = _DIGEST.match(entry)
        digests.append(match.group(1).lower() if match else digest(entry))
    return tuple(digests)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; ``None`` when absent.

    A header that is present but not a well-formed Bearer credential is an invalid token.
    """
    if authorization is None:
        return None
    match = _BEARER.match(authorization)
    if match is None:
        raise InvalidTokenError("the Authorization header is not a Bearer token")
    return match.group(1)


def matches_static(token_digest: str, static: tuple[str, ...]) -> bool:
    """Compare with every static digest in constant time (no early exit)."""
    found = False
    for candidate in static:
        found |= hmac.compare_digest(token_digest, candidate)
    return found


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What a minted token lets its holder register; ``None`` fields inherit the settings."""

    allowed_scopes: tuple[str, ...] | None = None
    allowed_redirect_hosts: tuple[str, ...] | None = None
    rate_limit: str | None = None

    def apply(self, settings: Settings) -> Settings:
        """The settings a registration with this token is validated under."""
        changes: dict[str, Any] = {
            k: v
            for k, v in (
                ("allowed_scopes", self.allowed_scopes),
                ("allowed_redirect_hosts", self.allowed_redirect_hosts),
            )
            if v is not None
        }
        if "allowed_scopes" in changes and settings.default_scopes:
            allowed = set(changes["allowed_scopes"])
            changes["default_scopes"] = tuple(s for s in settings.default_scopes if s in allowed)
        return dataclasses.replace(settings, **changes) if changes else settings

    def to_json(self) -> str:
        """Serialize for the token record."""
        return json.dumps({k: v for k, v in dataclasses.asdict(self).items() if v is not None})

    @classmethod
    def from_json(cls, text: str | None) -> TokenPolicy:
        """Read :meth:`to_json` output (empty policy for ``None``)."""
        data = json.loads(text) if text else {}
        return cls(
            allowed_scopes=_tuple(data.get("allowed_scopes")),
            allowed_redirect_hosts=_tuple(data.get("allowed_redirect_hosts")),
            rate_limit=data.get("rate_limit"),
        )


def _tuple(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@dataclass(frozen=True, slots=True)
class Grant:
    """A token that was accepted: its digest, whether it is minted, and its policy."""

    digest: str
    minted: bool
    policy: TokenPolicy

    @property
    def bucket(self) -> str:
        """Its rate-limit bucket (the digest prefix: the token itself never appears)."""
        return f"token:{self.digest[:32]}"


def unknown_token() -> InvalidTokenError:
    """The one answer for every bad token, so callers learn nothing about which check failed."""
    return InvalidTokenError("the initial access token is invalid, used up or expired")


def missing_token() -> InvalidTokenError:
    """The answer when a token is required and none was sent."""
    return InvalidTokenError("this server requires an initial access token (Bearer)")
