"""Configuration: one frozen :class:`Settings` object, one field per ``DCR_*`` variable.

The environment variable of a field is ``DCR_`` + the field name upper-cased, mechanically.
Precedence: an explicit argument, then the environment, then the default.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints
from urllib.parse import unquote_plus

from . import _env
from . import _settings_checks as _checks
from ._env import env_name as env_name  # public here; in _env so the checks use it too
from .errors import ConfigurationError

logger = logging.getLogger("dcr_middleware")
_DURATION = {"duration": True}


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class Settings:
    """Every setting of the middleware; see ``docs/configuration.md`` for each one's meaning."""

    app: str | None = None
    path: str = "/register"
    redis_url: str | None = None
    # Redis Cluster / Sentinel (dcr_middleware.storage.connect, docs/redis-cluster.md).
    redis_cluster: bool = False
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str | None = None
    redis_wait_replicas: int = 1
    key_prefix: str = "dcr"
    redis_connect_timeout: float = 0.5
    redis_timeout: float = 1.0
    # Connections per process (per node on a cluster) and the wait for a free one (storage/_pools).
    redis_max_connections: int = 50
    redis_pool_timeout: float = 2.0
    redis_check_on_start: bool = False
    max_body_bytes: int = 65536
    allowed_grant_types: tuple[str, ...] = (
        "authorization_code",
        "refresh_token",
        "client_credentials",
    )
    allowed_response_types: tuple[str, ...] = ("code",)
    allowed_auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post", "none")
    allowed_scopes: tuple[str, ...] | None = None
    default_scopes: tuple[str, ...] = ()
    default_grant_types: tuple[str, ...] = ("authorization_code",)
    allowed_redirect_hosts: tuple[str, ...] | None = None
    allow_insecure_redirect_uris: bool = False
    client_secret_ttl: int = field(default=0, metadata=_DURATION)
    client_idle_ttl: int = field(default=0, metadata=_DURATION)
    issuer: str | None = None
    # RFC 8414 discovery (dcr_middleware.core.server_metadata, docs/discovery.md).
    serve_metadata: bool = False
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    code_challenge_methods: tuple[str, ...] = ("S256",)
    rate_limit: str = "20/hour;200/day"
    # The wider IPv6 bucket (docs/protecting.md#ipv6-prefixes): /48 gets 5x the /64 limits.
    rate_limit_ipv6_prefix: int = 48
    rate_limit_ipv6_factor: int = 5
    # Failed credentials per address, and management writes per client (docs/protecting.md).
    failure_rate_limit: str = "20/minute"
    management_rate_limit: str = "20/hour"
    trusted_proxies: tuple[str, ...] = ()
    forwarded_header: str = "x-forwarded-for"
    max_clients: int = 0
    max_redirect_uris: int = 20
    max_contacts: int = 10
    max_string_length: int = 2048
    max_record_bytes: int = 16384
    max_language_tagged_fields: int = 20
    initial_access_tokens: tuple[str, ...] = ()
    require_initial_access_token: bool = False
    token_rate_limit: str = "60/hour"  # noqa: S105 - a rate, not a secret
    cors_origins: tuple[str, ...] = ("*",)
    rotate_registration_access_token: bool = True
    # RFC 7591 §2.3 software statements (dcr_middleware.core.software_statement).
    software_statement_jwks: str | None = None
    software_statement_algs: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA", "Ed25519")
    software_statement_issuers: tuple[str, ...] = ()
    software_statement_required: bool = False
    # OpenID Connect Registration 1.0 §2 (dcr_middleware.core.oidc): what the server supports.
    allowed_signing_algs: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    allowed_encryption_algs: tuple[str, ...] = (
        "RSA-OAEP",
        "RSA-OAEP-256",
        "ECDH-ES",
        "ECDH-ES+A128KW",
        "ECDH-ES+A256KW",
    )
    allowed_encryption_encs: tuple[str, ...] = (
        "A128CBC-HS256",
        "A256CBC-HS512",
        "A128GCM",
        "A256GCM",
    )
    allowed_subject_types: tuple[str, ...] = ("public",)
    # Client ID Metadata Documents (dcr_middleware.core.cimd, docs/cimd.md); off by default:
    # resolving a URL client id makes outbound requests.
    cimd: bool = False
    cimd_private_networks: tuple[str, ...] = ()
    cimd_allowed_hosts: tuple[str, ...] = ()
    cimd_denied_hosts: tuple[str, ...] = ()
    cimd_max_bytes: int = 5120
    cimd_connect_timeout: float = 2.0
    cimd_timeout: float = 5.0
    cimd_cache_min: int = field(default=300, metadata=_DURATION)
    cimd_cache_max: int = field(default=86_400, metadata=_DURATION)
    cimd_negative_ttl: int = field(default=60, metadata=_DURATION)
    cimd_stale: int = field(default=3600, metadata=_DURATION)
    cimd_fetch_rate_limit: str = "10/minute"
    cimd_fetch_total_rate_limit: str = "100/minute"
    # OpenID Connect Registration 1.0 §5 sector_identifier_uri (dcr_middleware.core.sector,
    # docs/oidc.md); off by default: checking one fetches it, within the DCR_CIMD_* bounds.
    sector_identifier_uris: bool = False
    # Observability (dcr_middleware.core.events, docs/observability.md).
    event_hook: str | None = None
    metrics: bool = False
    otel: bool = False

    def __post_init__(self) -> None:
        problems = _checks.check_types(self, _HINTS)
        if not problems:
            problems = _checks.check_values(self)
        if problems:
            raise ConfigurationError(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``DCR_*`` variables of ``environ`` (default ``os.environ``).

        Keyword ``overrides`` win over the environment. Every unparsable or invalid value is
        reported in one :class:`~dcr_middleware.core.errors.ConfigurationError`.
        """
        env = os.environ if environ is None else environ
        _warn_unknown(env)
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in dataclasses.fields(cls):
            name = env_name(f.name)
            if f.name in overrides or name not in env:
                continue
            try:
                values[f.name] = _parser_for(f)(env[name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        values.update(overrides)
        try:
            settings = cls(**values)
        except ConfigurationError as exc:
            problems.extend(exc.problems)
        if problems:
            raise ConfigurationError(problems)
        return settings

    @property
    def uses_redis(self) -> bool:
        """True when clients are stored in Redis (``DCR_REDIS_URL`` or ``DCR_REDIS_SENTINELS``)
        rather than the embedded store."""
        return self.redis_url is not None or bool(self.redis_sentinels)

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "redis_url" and value is not None:
                value = mask_url(value)
            elif f.name == "initial_access_tokens":
                value = tuple(t if t.startswith("sha256:") else "***" for t in value)
            elif f.name == "software_statement_jwks" and value is not None:
                # An inline JWKS is long (and may hold an HS* shared secret): show a marker.
                value = "<inline JWKS>" if value.lstrip().startswith("{") else value
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"


def mask_url(url: str) -> str:
    """Hide the passwords of a URL for logs, ``repr`` and ``dcr-middleware check``: the userinfo's
    (and a bare username used as one), and every query parameter that can hold a secret
    (``?password=...``, which redis-py reads as the password, ``ssl_password``, ...)."""
    if "@" in url:
        scheme, sep, rest = url.partition("://")
        if not sep:
            return "<url with credentials hidden>"
        # The userinfo ends at the last "@": a password with a raw "#", "/" or "?" makes urlsplit
        # end the authority early and would leave the rest of the password in the path or
        # fragment. (An "@" in the query is masked too: hiding too much is the safe side.)
        userinfo, _, location = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        prefix = f"{scheme}://{user if colon else ''}:***@"
    else:
        prefix, location = "", url
    path, question, query = location.partition("?")
    if question:
        # Everything after the "?" is the query, a "#" included: a raw "#" in a password must
        # not end the masked value early.
        query = "&".join(_mask_parameter(p) for p in query.split("&"))
    return f"{prefix}{path}{question}{query}"


_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|auth|key|credential", re.IGNORECASE)


def _mask_parameter(parameter: str) -> str:
    name, equals, value = parameter.partition("=")
    if equals and value and _SECRET_PARAMETER.search(unquote_plus(name)):
        return f"{name}=***"
    return parameter


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """Each ``DCR_*`` variable of ``env`` that names no setting, with the closest setting's name
    when one is close (``DCR_RATE_LIMT (did you mean DCR_RATE_LIMIT?)``)."""
    known = [env_name(f.name) for f in dataclasses.fields(Settings)]
    found = []
    for name in sorted(k for k in env if k.startswith("DCR_") and k not in known):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        found.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return found


def _warn_unknown(env: Mapping[str, str]) -> None:
    unknown = unknown_variables(env)
    if unknown:
        logger.warning("ignoring unknown settings (misspelled?): %s", ", ".join(unknown))


def _parser_for(f: dataclasses.Field[Any]) -> Callable[[str], Any]:
    if f.metadata.get("duration"):
        return _env.parse_duration
    hint = _HINTS[f.name]
    optional = type(None) in get_args(hint) and get_origin(hint) in (Union, types.UnionType)
    base = next(a for a in get_args(hint) if a is not type(None)) if optional else hint
    parser: Callable[[str], Any]
    if base is bool:
        parser = _env.parse_bool
    elif base is int:
        parser = _env.parse_int
    elif base is float:
        parser = _env.parse_float
    elif get_origin(base) is tuple:
        parser = _env.parse_list
    else:
        parser = str
    if not optional:
        return parser
    return lambda raw: parser(raw) if raw.strip() else None


_HINTS = get_type_hints(Settings)
