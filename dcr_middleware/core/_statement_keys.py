"""The software-statement key set and settings (``DCR_SOFTWARE_STATEMENT_*``): read and checked
once, at startup. The per-request verification is in :mod:`.software_statement`."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ._json_depth import MAX_DEPTH, too_deep

if TYPE_CHECKING:
    from .settings import Settings

SYMMETRIC_ALGS = frozenset({"HS256", "HS384", "HS512"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_ASYMMETRIC_KTY = frozenset({"RSA", "EC", "OKP"})


def strict_object(text: bytes | str, what: str) -> dict[str, Any]:
    """Parse one JSON object; repeated members, NaN/Infinity and nesting deeper than
    :data:`~dcr_middleware.core._json_depth.MAX_DEPTH` are errors (``ValueError``)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("repeated member")
        return dict(items)

    def constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        decoded = text.decode("utf-8") if isinstance(text, bytes) else text
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not valid JSON") from None
    if too_deep(decoded):
        raise ValueError(f"{what} nests more than {MAX_DEPTH} levels deep")
    try:
        value = json.loads(decoded, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError):
        raise ValueError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


@functools.lru_cache(maxsize=8)
def load_key_set(raw: str, algs: tuple[str, ...]) -> KeySet:
    """Parse ``DCR_SOFTWARE_STATEMENT_JWKS`` (inline JSON, else a file path) into a key set.

    Asymmetric keys must be public; ``oct`` (shared secret) keys are accepted only when an
    ``HS*`` algorithm is allowed. Raises ``ValueError`` with an operator-readable message.
    Cached: every ``Settings`` built from the same values (``dataclasses.replace`` for a token
    policy, on the request path) reuses the parsed set instead of reading the file again.
    """
    text = raw.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the JWKS file {raw.strip()!r}: {exc}") from None
    data = strict_object(text, "the JWKS")
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
