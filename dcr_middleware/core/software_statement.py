"""Software statements (RFC 7591 §2.3, §3.1.1): verified JWS assertions of client metadata.

Theory of operation. The key set (``DCR_SOFTWARE_STATEMENT_JWKS``, inline JSON or a file) is read
and parsed once, when :class:`SoftwareStatements` is built at middleware construction; a request
only looks keys up. Without keys a ``software_statement`` member is ignored, as RFC 7591 §3.1.1
allows ("The authorization server MAY ignore the software statement if it does not support this
feature"). With keys, :meth:`SoftwareStatements.admit`:

1. checks the compact JWS shape itself (three base64url segments, a JSON object header with a
   string ``alg``) so malformed input never reaches joserfc's less guarded paths;
2. refuses any ``alg`` not in ``DCR_SOFTWARE_STATEMENT_ALGS`` (``none`` can never be listed;
   ``HS*`` only with a shared ``oct`` key configured) *before* choosing a key;
3. tries only keys whose type fits the ``alg`` (joserfc's ``check_key`` again on top), so an
   RSA public key can never be used as an HMAC secret: the classic key-confusion attack;
4. checks ``iss`` (required, RFC 7591 §2.3), ``exp``/``nbf``/``iat`` with :data:`LEEWAY`, then the
   issuer allowlist (``unapproved_software_statement``);
5. merges the statement's metadata claims over the JSON body (§3.1.1: they "MUST take precedence")
   and hands the statement back to be stored and echoed unmodified (§3.2.1).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from joserfc import jws
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import Key, KeySet
from joserfc.jwt import JWTClaimsRegistry

from ._statement_keys import load_key_set, strict_object
from .errors import InvalidSoftwareStatementError, UnapprovedSoftwareStatementError

if TYPE_CHECKING:
    from .settings import Settings

#: Default ``DCR_SOFTWARE_STATEMENT_ALGS``: asymmetric signatures only.
DEFAULT_ALGS = ("RS256", "PS256", "ES256", "EdDSA", "Ed25519")
#: Clock-skew allowance for ``exp``/``nbf``/``iat``, in seconds (RFC 7519 §4.1.4: "some small
#: leeway, usually no more than a few minutes").
LEEWAY = 60
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+\Z")
# JWT claims about the statement itself, and fields only the server sets: never client metadata.
_NOT_METADATA = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "client_id",
        "client_secret",
        "client_id_issued_at",
        "client_secret_expires_at",
        "registration_access_token",
        "registration_client_uri",
        "software_statement",
    }
)


def _invalid(problem: str) -> InvalidSoftwareStatementError:
    return InvalidSoftwareStatementError(f"software_statement: {problem}")


class _AllowlistRegistry(jws.JWSRegistry):
    """A JWS registry that answers only the configured algorithms, without joserfc's
    deprecation warning for ``EdDSA`` (allowed on purpose: RFC 8037 issuers still use it)."""

    def get_alg(self, name: str) -> JWSAlgModel:
        if not self.allowed or name not in self.allowed or name not in self.algorithms:
            raise _invalid(f"alg {name[:20]!r} is not accepted")
        return self.algorithms[name]


@dataclass(frozen=True, slots=True)
class Admitted:
    """The request object with the statement's claims merged in, and the statement to store."""

    raw: dict[str, Any]
    statement: str | None


class SoftwareStatements:
    """The software-statement policy of one middleware, with its keys parsed once."""

    def __init__(
        self,
        keys: KeySet | None,
        algs: tuple[str, ...] = DEFAULT_ALGS,
        issuers: tuple[str, ...] = (),
        *,
        required: bool = False,
    ) -> None:
        self.keys = keys
        self.algs = tuple(a for a in algs if a != "none")
        self.issuers = frozenset(issuers)
        self.required = required
        self._registry = _AllowlistRegistry(algorithms=self.algs, strict_check_header=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> SoftwareStatements:
        """Read and parse the configured key set (once, at middleware construction)."""
        raw = settings.software_statement_jwks
        algs = settings.software_statement_algs
        return cls(
            None if raw is None else load_key_set(raw, algs),
            algs,
            settings.software_statement_issuers,
            required=settings.software_statement_required,
        )

    def __repr__(self) -> str:
        count = 0 if self.keys is None else len(self.keys.keys)
        return f"SoftwareStatements(keys={count}, algs={self.algs!r}, required={self.required})"

    @property
    def enabled(self) -> bool:
        """True when statements are verified (a key set is configured)."""
        return self.keys is not None

    def admit(self, raw: dict[str, Any], now: int, stored: str | None = None) -> Admitted:
        """Verify ``raw``'s ``software_statement`` and merge its claims over ``raw``.

        ``stored`` is the statement already accepted for this client (RFC 7592 update): sent
        back byte for byte, it is not re-verified, so an update does not fail because the
        statement has expired since registration.
        """
        statement = raw.get("software_statement")
        if not self.enabled:
            return Admitted(raw, None)
        if statement is None:
            if self.required:
                raise UnapprovedSoftwareStatementError(
                    "software_statement: this server requires a software statement"
                )
            return Admitted(raw, None)
        if stored is not None and statement == stored:
            claims = _stored_claims(stored)
        else:
            claims = self.verify(statement, now)
        merged = dict(raw)
        # RFC 7591 §3.1.1: "client metadata values conveyed in the software statement MUST take
        # precedence over those conveyed using plain JSON elements."
        merged.update((k, v) for k, v in claims.items() if k not in _NOT_METADATA)
        return Admitted(merged, statement)

    def verify(self, statement: Any, now: int) -> dict[str, Any]:
        """The claims of a statement that verifies; else ``invalid_software_statement`` (or
        ``unapproved_software_statement`` for an issuer not in the allowlist)."""
        if not isinstance(statement, str):
            raise _invalid("must be a string (a JWS in compact serialization)")
        try:
            header = strict_object(_b64(_segments(statement)[0]), "the JWS header")
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algs:
            shown = alg[:20] if isinstance(alg, str) else alg
            raise _invalid(f"alg {shown!r} is not accepted; accepted: {', '.join(self.algs)}")
        if "b64" in header:
            raise _invalid("unencoded payloads (RFC 7797 b64) are not accepted")
        payload = self._verified_payload(statement, header, alg)
        try:
            claims = strict_object(payload, "the payload")
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        self._check_claims(claims, now)
        return claims

    def _candidates(self, header: dict[str, Any], alg: str) -> list[Key]:
        model = self._registry.algorithms[alg]
        kid = header.get("kid")
        found = []
        for key in self.keys.keys if self.keys is not None else []:
            if kid is not None and key.kid is not None and key.kid != kid:
                continue
            if key.get("use") not in (None, "sig"):
                continue
            try:
                # Key confusion: an HS256 statement is never checked with an RSA/EC/OKP key.
                model.check_key(key)
            except JoseError:
                continue
            found.append(key)
        return found

    def _verified_payload(self, statement: str, header: dict[str, Any], alg: str) -> bytes:
        candidates = self._candidates(header, alg)
        if not candidates:
            raise _invalid("no configured key can verify it (kid or alg matches no key)")
        for key in candidates:
            try:
                obj = jws.deserialize_compact(statement, key, registry=self._registry)
            except BadSignatureError:
                continue
            except (JoseError, ValueError) as exc:
                raise _invalid(f"cannot be verified ({type(exc).__name__})") from None
            return obj.payload
        raise _invalid("the signature does not verify with the configured keys")

    def _check_claims(self, claims: dict[str, Any], now: int) -> None:
        registry = JWTClaimsRegistry(now=now, leeway=LEEWAY, iss={"essential": True})
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise _invalid("has expired") from None
        except JoseError as exc:
            # RFC 7591 §2.3: a software statement "MUST contain an "iss" (issuer) claim".
            raise _invalid(exc.description or exc.error) from None
        # RFC 7519 §4.1.1: "iss" is a StringOrURI. joserfc 1.8 checks its type, 1.6 does not
        # (found by scripts/test.sh --lowest): checked here whatever the version.
        if not isinstance(claims["iss"], str):
            raise _invalid("its iss claim must be a string")
        if self.issuers and claims["iss"] not in self.issuers:
            raise UnapprovedSoftwareStatementError(
                "software_statement: its issuer is not approved by this server"
            )


def _segments(statement: str) -> list[str]:
    parts = statement.split(".")
    if len(parts) != 3 or not all(_SEGMENT.match(p) for p in parts):
        raise _invalid("is not a JWS in compact serialization (three base64url segments)")
    return parts


def _stored_claims(stored: str) -> dict[str, Any]:
    # Verified when it was registered; only its payload is read again.
    try:
        return strict_object(_b64(_segments(stored)[1]), "the payload")
    except ValueError as exc:
        raise _invalid(str(exc)) from None


def _b64(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError:
        raise _invalid("is not a JWS in compact serialization (bad base64url)") from None
