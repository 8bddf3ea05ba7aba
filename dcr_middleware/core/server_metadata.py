"""Discovery: the RFC 8414 / OpenID Connect Discovery fields that the registration policy decides.

An authorization server that accepts dynamic registration advertises its
``registration_endpoint`` (RFC 8414 §2) and what a client may register there: grant types,
response types, token endpoint auth methods, scopes, algorithms. Those lists are the
``DCR_ALLOWED_*`` settings, so :func:`authorization_server_metadata` derives them from the same
:class:`~dcr_middleware.Settings` the middleware enforces, and an advertised value is never one
that registration then refuses. The fields only the authorization server knows
(``authorization_endpoint``, ``token_endpoint``, ``jwks_uri``, ...) come from
``DCR_AUTHORIZATION_ENDPOINT`` / ``DCR_TOKEN_ENDPOINT`` or from the caller.

Pure: no I/O, no environment. ``DCR_SERVE_METADATA`` serves the document from the middleware
(:mod:`dcr_middleware.core.metadata_endpoint`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._uris import web_url_problem
from .grant_types import REDIRECT_GRANTS
from .oidc import JWT_AUTH_METHODS

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["WELL_KNOWN_PATH", "authorization_server_metadata", "well_known_path"]

WELL_KNOWN_PATH = "/.well-known/oauth-authorization-server"
CODE_CHALLENGE_METHODS = frozenset({"S256", "plain"})  # RFC 7636 §4.2
_HMAC_PREFIX = "HS"


def authorization_server_metadata(
    settings: Settings, *, issuer: str | None = None, openid: bool | None = None, **fields: Any
) -> dict[str, Any]:
    """The RFC 8414 authorization server metadata that ``settings`` determine, plus ``fields``.

    ``issuer`` defaults to ``DCR_ISSUER``; pass the request's base URL (``https://host``) when
    that is unset. It is used as given for ``issuer`` (RFC 8414 §3.3: identical to the issuer
    the metadata URL was built from) and, without a trailing ``/``, as the base of
    ``registration_endpoint`` (+ ``DCR_PATH``). Derived fields:

    * ``authorization_endpoint`` / ``token_endpoint``: ``DCR_AUTHORIZATION_ENDPOINT`` /
      ``DCR_TOKEN_ENDPOINT``, when set;
    * ``scopes_supported``: ``DCR_ALLOWED_SCOPES``, when set (unset: any scope, not listed);
    * ``response_types_supported``, ``grant_types_supported``,
      ``token_endpoint_auth_methods_supported``: the ``DCR_ALLOWED_*`` lists;
    * ``token_endpoint_auth_signing_alg_values_supported``: when ``private_key_jwt`` or
      ``client_secret_jwt`` is allowed, the ``DCR_ALLOWED_SIGNING_ALGS`` those methods accept
      (asymmetric ones for ``private_key_jwt``, ``HS*`` for ``client_secret_jwt``);
    * ``code_challenge_methods_supported``: ``DCR_CODE_CHALLENGE_METHODS``, when the
      authorization code grant is allowed and the list is not empty;
    * with ``openid`` (default: ``openid`` is in ``DCR_ALLOWED_SCOPES``), the OpenID Connect
      Discovery 1.0 §3 lists: ``subject_types_supported``, the ``*_signing_alg_values_supported``
      of ID tokens, UserInfo and request objects (``DCR_ALLOWED_SIGNING_ALGS``) and their
      ``*_encryption_alg/enc_values_supported`` (``DCR_ALLOWED_ENCRYPTION_ALGS/ENCS``, when
      encryption is on).

    ``fields`` are merged last: a field you pass replaces the derived one, a field you pass as
    ``None`` is left out. Raises ``ValueError`` when there is no issuer or it is not an absolute
    http(s) URL without query and fragment.
    """
    issuer = settings.issuer if issuer is None else issuer
    if issuer is None:
        raise ValueError("no issuer: set DCR_ISSUER or pass issuer='https://...'")
    problem = issuer_problem(issuer)
    if problem:
        raise ValueError(f"issuer {issuer!r} {problem}")
    document: dict[str, Any] = {"issuer": issuer}
    if settings.authorization_endpoint:
        document["authorization_endpoint"] = settings.authorization_endpoint
    if settings.token_endpoint:
        document["token_endpoint"] = settings.token_endpoint
    document["registration_endpoint"] = issuer.rstrip("/") + settings.path
    if settings.allowed_scopes is not None:
        document["scopes_supported"] = list(settings.allowed_scopes)
    document["response_types_supported"] = list(settings.allowed_response_types)
    document["grant_types_supported"] = list(settings.allowed_grant_types)
    document["token_endpoint_auth_methods_supported"] = list(settings.allowed_auth_methods)
    # RFC 8414 §2: "This metadata entry MUST be present if either of these authentication
    # methods are specified in the "token_endpoint_auth_methods_supported" entry."
    signing = auth_signing_algs(settings)
    if signing:
        document["token_endpoint_auth_signing_alg_values_supported"] = signing
    if "authorization_code" in settings.allowed_grant_types and settings.code_challenge_methods:
        document["code_challenge_methods_supported"] = list(settings.code_challenge_methods)
    if settings.cimd:
        # draft-ietf-oauth-client-id-metadata-document: the server says it resolves URL ids.
        document["client_id_metadata_document_supported"] = True
    if openid is None:
        openid = "openid" in (settings.allowed_scopes or ())
    if openid:
        document.update(_openid_fields(settings))
    for name, value in fields.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def auth_signing_algs(settings: Settings) -> list[str]:
    """The ``token_endpoint_auth_signing_alg`` values registration accepts, in settings order.

    Empty unless a JWT auth method is allowed. ``none`` is never listed (RFC 8414 §2: "The
    value "none" MUST NOT be used").
    """
    methods = set(settings.allowed_auth_methods) & set(JWT_AUTH_METHODS)
    return [
        alg
        for alg in settings.allowed_signing_algs
        if alg != "none"
        and (
            "client_secret_jwt" in methods
            if alg.startswith(_HMAC_PREFIX)
            else "private_key_jwt" in methods
        )
    ]


def _openid_fields(settings: Settings) -> dict[str, Any]:
    signing = list(settings.allowed_signing_algs)
    fields: dict[str, Any] = {"subject_types_supported": list(settings.allowed_subject_types)}
    for prefix in ("id_token", "userinfo", "request_object"):
        fields[f"{prefix}_signing_alg_values_supported"] = signing
        if settings.allowed_encryption_algs:
            fields[f"{prefix}_encryption_alg_values_supported"] = list(
                settings.allowed_encryption_algs
            )
            fields[f"{prefix}_encryption_enc_values_supported"] = list(
                settings.allowed_encryption_encs
            )
    return fields


def well_known_path(issuer: str) -> str:
    """The path of the metadata document of ``issuer`` (RFC 8414 §3.1).

    "any terminating "/" MUST be removed before inserting "/.well-known/" and the well-known URI
    suffix between the host component and the path component, if any": ``https://a.example``
    -> ``/.well-known/oauth-authorization-server``, ``https://a.example/tenant1`` ->
    ``/.well-known/oauth-authorization-server/tenant1``.
    """
    return WELL_KNOWN_PATH + urlsplit(issuer).path.rstrip("/")


def issuer_problem(issuer: str) -> str | None:
    """Say what keeps ``issuer`` from being an issuer identifier, or return ``None``."""
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or "#" in issuer:
        return "must be an absolute http(s) URL without query or fragment"
    return None


def settings_problems(s: Settings) -> list[tuple[str, str]]:
    """The discovery settings' problems, as ``(field, message)`` pairs (checked at startup)."""
    problems = []
    for field in ("authorization_endpoint", "token_endpoint"):
        url = getattr(s, field)
        problem = None if url is None else web_url_problem(url)
        if problem:
            problems.append((field, f"{problem}, got {url!r}"))
    unknown = sorted(set(s.code_challenge_methods) - CODE_CHALLENGE_METHODS)
    if unknown:
        problems.append(("code_challenge_methods", f"expected S256 or plain, got {unknown}"))
    if s.serve_metadata:
        problems.extend(_serving_problems(s))
    return problems


def _serving_problems(s: Settings) -> list[tuple[str, str]]:
    # RFC 8414 §2: issuer REQUIRED; authorization_endpoint "REQUIRED unless no grant types are
    # supported that use the authorization endpoint"; token_endpoint "REQUIRED unless only the
    # implicit grant type is supported".
    problems = []
    if s.issuer is None:
        problems.append(("issuer", "required with DCR_SERVE_METADATA (the document's issuer)"))
    elif s.path == well_known_path(s.issuer):
        problems.append(("path", "is the metadata path that DCR_SERVE_METADATA serves"))
    if s.authorization_endpoint is None and REDIRECT_GRANTS & set(s.allowed_grant_types):
        problems.append(
            ("authorization_endpoint", "required with DCR_SERVE_METADATA for redirect grants")
        )
    if s.token_endpoint is None and set(s.allowed_grant_types) - {"implicit"}:
        problems.append(("token_endpoint", "required with DCR_SERVE_METADATA (RFC 8414 §2)"))
    return problems
