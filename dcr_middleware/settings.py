"""Configuration: one frozen :class:`Settings` object, one field per ``DCR_*`` variable.

The environment variable of a field is ``DCR_`` + the field name upper-cased, mechanically.
Precedence: an explicit argument, then the environment, then the default.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from . import _env
from .errors import ConfigurationError

AUTH_METHODS = frozenset(
    {"none", "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"}
)
_TOKEN = re.compile(r"^[\x21-\x7e]+$")
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]+$")
_APP = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_DURATION = {"duration": True}


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class Settings:
    """Every setting of the middleware; see ``docs/configuration.md`` for each one's meaning."""

    app: str | None = None
    path: str = "/register"
    redis_url: str | None = None
    key_prefix: str = "dcr"
    redis_connect_timeout: float = 0.5
    redis_timeout: float = 1.0
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
    allow_insecure_redirect_uris: bool = False
    client_secret_ttl: int = field(default=0, metadata=_DURATION)
    issuer: str | None = None

    def __post_init__(self) -> None:
        problems = _check(self)
        if problems:
            raise ConfigurationError(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``DCR_*`` variables of ``environ`` (default ``os.environ``).

        Keyword ``overrides`` win over the environment. Every unparsable or invalid value is
        reported in one :class:`~dcr_middleware.errors.ConfigurationError`.
        """
        env = os.environ if environ is None else environ
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
        """True when clients are stored in Redis rather than the embedded store."""
        return self.redis_url is not None

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "redis_url" and value is not None:
                value = mask_url(value)
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"


def env_name(field_name: str) -> str:
    """The variable of a field: ``max_body_bytes`` -> ``DCR_MAX_BODY_BYTES``."""
    return "DCR_" + field_name.upper()


def mask_url(url: str) -> str:
    """Hide the password (and a bare username used as one) of a URL for logs and ``repr``."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<url with credentials hidden>"
    # The userinfo ends at the last "@": a password with a raw "#", "/" or "?" makes urlsplit
    # end the authority early and would leave the rest of the password in the path or fragment.
    # (An "@" in the query is masked too: hiding too much is the safe side.)
    userinfo, _, location = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user if colon else ''}:***@{location}"


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


def _check(s: Settings) -> list[str]:
    problems: list[str] = []

    def bad(name: str, message: str) -> None:
        problems.append(f"{env_name(name)}: {message}")

    if s.app is not None and not _APP.match(s.app):
        bad("app", f"expected 'module.path:attribute', got {s.app!r}")
    if not s.path.startswith("/") or s.path == "/" or s.path.endswith("/") or "?" in s.path:
        bad("path", f"expected an absolute path like /register, got {s.path!r}")
    if s.redis_url is not None and urlsplit(s.redis_url).scheme not in (
        "redis",
        "rediss",
        "unix",
    ):
        bad("redis_url", "expected a redis://, rediss:// or unix:// URL")
    if not _PREFIX.match(s.key_prefix):
        bad("key_prefix", "use letters, digits and _.:- only (no braces: they form hash tags)")
    for name in ("redis_connect_timeout", "redis_timeout"):
        if not 0 < getattr(s, name) <= 60:
            bad(name, "expected seconds between 0 and 60")
    if not 0 < s.max_body_bytes <= 16 * 1024 * 1024:
        bad("max_body_bytes", "expected a size between 1 and 16777216 bytes")
    _check_tokens(bad, s)
    if s.client_secret_ttl < 0:
        bad("client_secret_ttl", "must not be negative (0 means secrets never expire)")
    if s.issuer is not None:
        parts = urlsplit(s.issuer)
        if (
            parts.scheme not in ("https", "http")
            or not parts.netloc
            or parts.query
            or (parts.fragment)
        ):
            bad("issuer", f"expected an absolute http(s) URL without query, got {s.issuer!r}")
    return problems


def _check_tokens(bad: Callable[[str, str], None], s: Settings) -> None:
    for name in ("allowed_grant_types", "allowed_response_types", "default_grant_types"):
        values = getattr(s, name)
        if not all(isinstance(v, str) and _TOKEN.match(v.replace(" ", "!")) for v in values):
            bad(name, "expected a comma-separated list of names")
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
    for name in ("allowed_scopes", "default_scopes"):
        values = getattr(s, name) or ()
        if not all(isinstance(v, str) and _SCOPE_TOKEN.match(v) for v in values):
            bad(name, "expected a comma-separated list of RFC 6749 scope tokens")
    if s.allowed_scopes is not None:
        extra = sorted(set(s.default_scopes) - set(s.allowed_scopes))
        if extra:
            bad("default_scopes", f"{extra} not in DCR_ALLOWED_SCOPES")
