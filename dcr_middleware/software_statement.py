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
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joserfc import jws
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import Key, KeySet
from joserfc.jwt import JWTClaimsRegistry

from .errors import InvalidSoftwareStatementError, UnapprovedSoftwareStatementError

if TYPE_CHECKING:
    from .settings import Settings

#: Default ``DCR_SOFTWARE_STATEMENT_ALGS``: asymmetric signatures only.
DEFAULT_ALGS = ("RS256", "PS256", "ES256", "EdDSA", "Ed25519")
#: Clock-skew allowance for ``exp``/``nbf``/``iat``, in seconds (RFC 7519 §4.1.4: "some small
#: leeway, usually no more than a few minutes").
LEEWAY = 60
SYMMETRIC_ALGS = frozenset({"HS256", "HS384", "HS512"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_ASYMMETRIC_KTY = frozenset({"RSA", "EC", "OKP"})
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


def _strict_object(text: bytes | str, what: str) -> dict[str, Any]:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("repeated member")
        return dict(items)

    def constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError):
        raise ValueError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


def load_key_set(raw: str, algs: tuple[str, ...]) -> KeySet:
    """Parse ``DCR_SOFTWARE_STATEMENT_JWKS`` (inline JSON, else a file path) into a key set.

    Asymmetric keys must be public; ``oct`` (shared secret) keys are accepted only when an
    ``HS*`` algorithm is allowed. Raises ``ValueError`` with an operator-readable message.
    """
    text = raw.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the JWKS file {raw.strip()!r}: {exc}") from None
    data = _strict_object(text, "the JWKS")
    keys = data.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
        raise ValueError("expected a JWK Set with a non-empty 'keys' array")
    symmetric_ok = bool(SYMMETRIC_ALGS & set(algs))
    for key in keys:
        kty = key.get("kty")
        if kty in _ASYMMETRIC_KTY:
            if _PRIVATE_MEMBERS & key.keys():
                raise ValueError("contains a private key; configure public keys only")
        elif kty == "oct":
            if not symmetric_ok:
                raise ValueError(
                    "contains a shared-secret (oct) key but DCR_SOFTWARE_STATEMENT_ALGS lists no "
                    "HS256/HS384/HS512 algorithm"
                )
        else:
            raise ValueError(f"unsupported key type {str(kty)[:20]!r}; expected RSA, EC or OKP")
    try:
        key_set = KeySet.import_key_set(data)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a valid JWK Set: {exc}") from None
    if len(key_set.keys) != len(keys):
        raise ValueError("not every key of the JWK Set could be imported")
    if symmetric_ok and not any(k.key_type == "oct" for k in key_set.keys):
        raise ValueError("an HS* algorithm is allowed but the JWKS holds no oct key to verify it")
    return key_set


def settings_problems(s: Settings) -> list[tuple[str, str]]:
    """``(field, message)`` for each invalid software-statement setting."""
    problems: list[tuple[str, str]] = []
    known = set(jws.JWSRegistry.algorithms) - {"none"}
    if "none" in s.software_statement_algs:
        problems.append(("software_statement_algs", "'none' can never be accepted"))
    unknown = sorted(set(s.software_statement_algs) - known - {"none"})
    if unknown:
        problems.append(("software_statement_algs", f"unknown algorithms {unknown}"))
    if not s.software_statement_algs:
        problems.append(("software_statement_algs", "at least one algorithm is needed"))
    if s.software_statement_jwks is None:
        for field, value in (
            ("software_statement_required", s.software_statement_required),
            ("software_statement_issuers", s.software_statement_issuers),
        ):
            if value:
                problems.append((field, "needs DCR_SOFTWARE_STATEMENT_JWKS to verify statements"))
    elif not problems:  # the key set is checked against valid algorithms only
        try:
            load_key_set(s.software_statement_jwks, s.software_statement_algs)
        except ValueError as exc:
            problems.append(("software_statement_jwks", str(exc)))
    return problems


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
            header = _strict_object(_b64(_segments(statement)[0]), "the JWS header")
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
            claims = _strict_object(payload, "the payload")
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
        return _strict_object(_b64(_segments(stored)[1]), "the payload")
    except ValueError as exc:
        raise _invalid(str(exc)) from None


def _b64(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError:
        raise _invalid("is not a JWS in compact serialization (bad base64url)") from None
