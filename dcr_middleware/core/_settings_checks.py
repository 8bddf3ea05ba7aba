"""Validation of :class:`~dcr_middleware.core.settings.Settings`: every problem is collected, so one
``ConfigurationError`` can name every bad variable at startup."""

from __future__ import annotations

import ipaddress
import re
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

from . import _statement_keys, client_ip, ratelimit
from . import server_metadata as discovery
from ._env import env_name
from .grant_types import default_response_types
from .oidc import DEFAULT_ENC, DEFAULT_ID_TOKEN_ALG, SUBJECT_TYPES

if TYPE_CHECKING:
    from .settings import Settings

AUTH_METHODS = frozenset(
    {"none", "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"}
)
_TOKEN = re.compile(r"^[\x21-\x7e]+(?: [\x21-\x7e]+)*\Z")
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+\Z")
_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]+\Z")
_APP = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\Z")
_SCHEME_ENTRY = re.compile(r"^[a-z][a-z0-9+.-]*:\Z")
_SHA256 = re.compile(r"^sha256:[0-9a-fA-F]{64}\Z")
_TOKEN68 = re.compile(r"^[A-Za-z0-9\-._~+/]+=*\Z")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+\Z")
# JWA algorithm names (RFC 7518 §3.1, §4.1, §5.1): RS256, ECDH-ES+A128KW, A128CBC-HS256...
_JOSE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+_.-]*\Z")

Problem = Callable[[str, str], None]


def _type_problem(value: Any, hint: Any) -> str | None:
    args = get_args(hint)
    if get_origin(hint) in (Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "expected an integer"
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "expected a number"
    if get_origin(hint) is tuple:
        ok = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        return None if ok else "expected a list of strings"
    return None if isinstance(value, str) else "expected a string"


def check_types(settings: Settings, hints: dict[str, Any]) -> list[str]:
    """Check each field against its annotation; lists given as ``list`` become tuples first."""
    problems = []
    for field, hint in hints.items():
        value = getattr(settings, field)
        if isinstance(value, list):
            value = tuple(value)
            object.__setattr__(settings, field, value)
        problem = _type_problem(value, hint)
        if problem:
            problems.append(f"{env_name(field)}: {problem}, got {type(value).__name__}")
    return problems


def check_values(s: Settings) -> list[str]:
    """Check every value and the relations between values; return one line per problem."""
    problems: list[str] = []

    def bad(field: str, message: str) -> None:
        problems.append(f"{env_name(field)}: {message}")

    if s.app is not None and not _APP.match(s.app):
        bad("app", f"expected 'module.path:attribute', got {s.app!r}")
    if s.event_hook is not None and not _APP.match(s.event_hook):
        bad("event_hook", f"expected 'module.path:callable', got {s.event_hook!r}")
    if not s.path.startswith("/") or s.path == "/" or s.path.endswith("/") or "?" in s.path:
        bad("path", f"expected an absolute path like /register, got {s.path!r}")
    _check_redis(bad, s)
    if not _PREFIX.match(s.key_prefix):
        bad("key_prefix", "use letters, digits and _.:- only (no braces: they form hash tags)")
    for field in ("redis_connect_timeout", "redis_timeout", "redis_pool_timeout"):
        if not 0 < getattr(s, field) <= 60:
            bad(field, "expected seconds between 0 and 60")
    if not 1 <= s.redis_max_connections <= 10000:
        bad("redis_max_connections", "expected a number of connections between 1 and 10000")
    if not 0 < s.max_body_bytes <= 16 * 1024 * 1024:
        bad("max_body_bytes", "expected a size between 1 and 16777216 bytes")
    _check_abuse_controls(bad, s)
    _check_flows(bad, s)
    _check_scopes(bad, s)
    _check_redirect_hosts(bad, s)
    for field, message in _statement_keys.settings_problems(s):
        bad(field, message)
    for field, message in discovery.settings_problems(s):
        bad(field, message)
    _check_oidc(bad, s)
    _check_cimd(bad, s)
    if s.client_secret_ttl < 0:
        bad("client_secret_ttl", "must not be negative (0 means secrets never expire)")
    if s.client_idle_ttl < 0:
        bad("client_idle_ttl", "must not be negative (0 means clients never expire)")
    if s.issuer is not None:
        parts = urlsplit(s.issuer)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
            bad("issuer", f"expected an absolute http(s) URL without query, got {s.issuer!r}")
        elif parts.fragment or "#" in s.issuer:
            bad("issuer", "must not have a fragment")
    return problems


def sentinel_address(entry: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:26379`` for IPv6) of one ``DCR_REDIS_SENTINELS`` entry."""
    host, colon, port = entry.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r}: expected host:port, e.g. sentinel-1:26379")
    return host, int(port)


def _check_redis(bad: Problem, s: Settings) -> None:
    url = urlsplit(s.redis_url) if s.redis_url is not None else None
    if url is not None and url.scheme not in ("redis", "rediss", "unix"):
        bad("redis_url", "expected a redis://, rediss:// or unix:// URL")
    if s.redis_cluster:
        if url is None:
            bad("redis_cluster", "needs DCR_REDIS_URL, the address of one cluster node")
        elif url.scheme == "unix" or url.path.strip("/") not in ("", "0"):
            bad("redis_url", "Redis Cluster needs a redis:// or rediss:// URL with database 0")
        if s.redis_sentinels:
            bad("redis_cluster", "set DCR_REDIS_CLUSTER or DCR_REDIS_SENTINELS, not both")
    for entry in s.redis_sentinels:
        try:
            sentinel_address(entry)
        except ValueError as exc:
            bad("redis_sentinels", str(exc))
    master = s.redis_sentinel_master
    if s.redis_sentinels and not (master and master.strip() == master):
        bad("redis_sentinel_master", "required with DCR_REDIS_SENTINELS: the monitored name")
    if master is not None and not s.redis_sentinels:
        bad("redis_sentinel_master", "needs DCR_REDIS_SENTINELS")
    if s.redis_wait_replicas < 0:
        bad("redis_wait_replicas", "must not be negative (0: do not wait for replicas)")
    if s.redis_sentinels and url is not None and url.scheme == "unix":
        bad("redis_url", "with DCR_REDIS_SENTINELS use redis:// or rediss:// (credentials, db)")


def _check_abuse_controls(bad: Problem, s: Settings) -> None:
    try:
        ratelimit.parse_rate_limits(s.rate_limit)
    except ValueError as exc:
        bad("rate_limit", str(exc))
    try:
        client_ip.parse_networks(s.trusted_proxies)
    except ValueError as exc:
        bad("trusted_proxies", f"expected CIDRs like 10.0.0.0/8 or ::1: {exc}")
    if s.forwarded_header.lower() not in ("x-forwarded-for", "forwarded"):
        bad("forwarded_header", "expected x-forwarded-for or forwarded")
    if s.max_clients < 0:
        bad("max_clients", "must not be negative (0 means no cap)")
    for field in ("max_redirect_uris", "max_contacts", "max_string_length"):
        if getattr(s, field) < 1:
            bad(field, "must be at least 1")
    if not 2048 <= s.max_record_bytes <= 16 * 1024 * 1024:
        bad("max_record_bytes", "expected a size between 2048 and 16777216 bytes")
    if s.max_language_tagged_fields < 0:
        bad("max_language_tagged_fields", "must not be negative (0 refuses every tagged field)")
    if s.rate_limit_ipv6_prefix != 0 and not 16 <= s.rate_limit_ipv6_prefix <= 63:
        bad("rate_limit_ipv6_prefix", "expected a prefix length from 16 to 63, or 0 for none")
    if s.rate_limit_ipv6_factor < 1:
        bad("rate_limit_ipv6_factor", "must be at least 1")
    for field in ("failure_rate_limit", "management_rate_limit"):
        try:
            ratelimit.parse_rate_limits(getattr(s, field))
        except ValueError as exc:
            bad(field, str(exc))
    try:
        ratelimit.parse_rate_limits(s.token_rate_limit)
    except ValueError as exc:
        bad("token_rate_limit", str(exc))
    for token in s.initial_access_tokens:
        if token.startswith("sha256:"):
            if not _SHA256.match(token):
                bad("initial_access_tokens", "a sha256: entry needs 64 hex digits")
        elif len(token) < 16 or not _TOKEN68.match(token):
            # The value is a secret: the message must not repeat it.
            bad("initial_access_tokens", "tokens need at least 16 URL-safe characters")
    origins = s.cors_origins
    if origins != ("off",) and not all(o == "*" or _ORIGIN.match(o) for o in origins):
        bad("cors_origins", "expected *, off, or origins like https://app.example.com")


def _check_flows(bad: Problem, s: Settings) -> None:
    for field in ("allowed_grant_types", "allowed_response_types", "default_grant_types"):
        if not all(_TOKEN.match(v) for v in getattr(s, field)):
            bad(field, "expected a comma-separated list of names")
    if not s.allowed_grant_types:
        bad("allowed_grant_types", "at least one grant type must be allowed")
    unknown = sorted(set(s.allowed_auth_methods) - AUTH_METHODS)
    if unknown or not s.allowed_auth_methods:
        bad(
            "allowed_auth_methods",
            f"expected a non-empty list of {', '.join(sorted(AUTH_METHODS))}; got {unknown}",
        )
    not_allowed = sorted(set(s.default_grant_types) - set(s.allowed_grant_types))
    if not_allowed:
        bad("default_grant_types", f"{not_allowed} not in DCR_ALLOWED_GRANT_TYPES")
    # A client that omits response_types gets the ones its default grants need (RFC 7591 §2.1):
    # they must be allowed, or every such request would be refused.
    needed = default_response_types(s.default_grant_types)
    missing = [r for r in needed if r not in s.allowed_response_types]
    if missing:
        bad(
            "allowed_response_types",
            f"must include {missing} for DCR_DEFAULT_GRANT_TYPES {list(s.default_grant_types)}",
        )


def _check_scopes(bad: Problem, s: Settings) -> None:
    for field in ("allowed_scopes", "default_scopes"):
        if not all(_SCOPE_TOKEN.match(v) for v in getattr(s, field) or ()):
            bad(field, "expected a comma-separated list of RFC 6749 scope tokens")
    if s.allowed_scopes is not None:
        extra = sorted(set(s.default_scopes) - set(s.allowed_scopes))
        if extra:
            bad("default_scopes", f"{extra} not in DCR_ALLOWED_SCOPES")


def _check_redirect_hosts(bad: Problem, s: Settings) -> None:
    for entry in s.allowed_redirect_hosts or ():
        if entry in ("http:", "https:") or not (_HOST.match(entry) or _SCHEME_ENTRY.match(entry)):
            bad(
                "allowed_redirect_hosts",
                f"{entry!r}: expected lower-case hosts (app.example.com, *.example.com) or "
                "private-use schemes written as 'scheme:'",
            )


def _check_oidc(bad: Problem, s: Settings) -> None:
    lists = ("allowed_signing_algs", "allowed_encryption_algs", "allowed_encryption_encs")
    for field in lists:
        if not all(_JOSE_NAME.match(v) for v in getattr(s, field)):
            bad(field, "expected a comma-separated list of JOSE algorithm names")
    # OpenID Connect Discovery 1.0 §3, id_token_signing_alg_values_supported: "The algorithm
    # RS256 MUST be included"; it is also the default id_token_signed_response_alg.
    if DEFAULT_ID_TOKEN_ALG not in s.allowed_signing_algs:
        bad("allowed_signing_algs", f"must include {DEFAULT_ID_TOKEN_ALG} (the OIDC default)")
    for field in lists[1:]:
        if "none" in getattr(s, field):
            bad(field, "'none' is not a JWE algorithm; an empty list turns encryption off")
    # OIDC Registration §2: a client that sends an *_encrypted_*_alg without its enc gets
    # A128CBC-HS256, so it must be supported whenever encryption is.
    if s.allowed_encryption_algs and DEFAULT_ENC not in s.allowed_encryption_encs:
        bad("allowed_encryption_encs", f"must include {DEFAULT_ENC} (the OIDC default enc)")
    unknown = sorted(set(s.allowed_subject_types) - SUBJECT_TYPES)
    if unknown or not s.allowed_subject_types:
        bad("allowed_subject_types", f"expected a non-empty list of public, pairwise: {unknown}")


def _check_cimd(bad: Problem, s: Settings) -> None:
    try:
        for entry in s.cimd_private_networks:
            ipaddress.ip_network(entry)  # strict: 127.0.0.1/8 is a typo, not a network
    except ValueError as exc:
        bad("cimd_private_networks", f"expected CIDRs like 127.0.0.0/8 or ::1/128: {exc}")
    for field in ("cimd_allowed_hosts", "cimd_denied_hosts"):
        if not all(_HOST.match(h.lower().rstrip(".")) for h in getattr(s, field)):
            bad(field, "expected host names, or *.example.com for any name under one")
    if not 256 <= s.cimd_max_bytes <= 1024 * 1024:
        bad("cimd_max_bytes", "expected a size between 256 and 1048576 bytes")
    for field in ("cimd_connect_timeout", "cimd_timeout"):
        if not 0 < getattr(s, field) <= 60:
            bad(field, "expected seconds between 0 and 60")
    if not 0 <= s.cimd_cache_min <= s.cimd_cache_max:
        bad("cimd_cache_min", "expected 0 <= DCR_CIMD_CACHE_MIN <= DCR_CIMD_CACHE_MAX")
    for field in ("cimd_negative_ttl", "cimd_stale"):
        if getattr(s, field) < 0:
            bad(field, "must not be negative (0 turns it off)")
    for field in ("cimd_fetch_rate_limit", "cimd_fetch_total_rate_limit"):
        try:
            ratelimit.parse_rate_limits(getattr(s, field))
        except ValueError as exc:
            bad(field, str(exc))
