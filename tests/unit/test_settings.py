"""Settings: defaults, the mechanical DCR_* names, parsing, precedence, masking, checks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from dcr_middleware.core.errors import ConfigurationError
from dcr_middleware.core.settings import Settings, mask_url

# A public P-256 key (the one of tests/adapters/cases.py), for the software-statement samples.
SAMPLE_JWKS = (
    '{"keys": [{"kty": "EC", "crv": "P-256", '
    '"x": "-aBYeYCbvxb9qMnOR2rrzLA7e-ZQy9jHdZ04S-ZizIw", '
    '"y": "NtK6K4-QgwpOqre9Mr0vFZB-EeDNT39bAvJBvNzv2pQ"}]}'
)
# One raw value per field, and what it must parse to. A new Settings field without an entry here
# (or without a parser that produces the expected value) fails the tests below.
SAMPLES: dict[str, tuple[str, Any]] = {
    "app": ("myproject.wsgi:application", "myproject.wsgi:application"),
    "path": ("/oauth/register", "/oauth/register"),
    "redis_url": ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    "redis_cluster": ("true", True),
    "redis_sentinels": ("sentinel-1:26379, [::1]:26380", ("sentinel-1:26379", "[::1]:26380")),
    "redis_sentinel_master": ("mymaster", "mymaster"),
    "redis_wait_replicas": ("2", 2),
    "key_prefix": ("myapp", "myapp"),
    "redis_connect_timeout": ("0.25", 0.25),
    "redis_timeout": ("2.5", 2.5),
    "redis_max_connections": ("20", 20),
    "redis_pool_timeout": ("0.5", 0.5),
    "redis_check_on_start": ("true", True),
    "max_body_bytes": ("1024", 1024),
    "allowed_grant_types": (
        "authorization_code, client_credentials",
        ("authorization_code", "client_credentials"),
    ),
    "allowed_response_types": ("code,code id_token", ("code", "code id_token")),
    "allowed_auth_methods": ("none,private_key_jwt", ("none", "private_key_jwt")),
    "allowed_scopes": ("openid,profile,email", ("openid", "profile", "email")),
    "default_scopes": ("openid", ("openid",)),
    "default_grant_types": ("client_credentials", ("client_credentials",)),
    "allowed_redirect_hosts": (
        "app.example.com, *.example.org, cursor:",
        ("app.example.com", "*.example.org", "cursor:"),
    ),
    "allow_insecure_redirect_uris": ("true", True),
    "client_secret_ttl": ("30d", 30 * 86400),
    "client_idle_ttl": ("90d", 90 * 86400),
    "issuer": ("https://auth.example.com", "https://auth.example.com"),
    "serve_metadata": ("true", True),
    "authorization_endpoint": (
        "https://auth.example.com/authorize",
        "https://auth.example.com/authorize",
    ),
    "token_endpoint": ("https://auth.example.com/token", "https://auth.example.com/token"),
    "code_challenge_methods": ("S256, plain", ("S256", "plain")),
    "rate_limit": ("10/minute;100/day", "10/minute;100/day"),
    "rate_limit_ipv6_prefix": ("40", 40),
    "rate_limit_ipv6_factor": ("3", 3),
    "failure_rate_limit": ("5/minute", "5/minute"),
    "management_rate_limit": ("off", "off"),
    "trusted_proxies": ("10.0.0.0/8, ::1", ("10.0.0.0/8", "::1")),
    "forwarded_header": ("forwarded", "forwarded"),
    "max_clients": ("5", 5),
    "max_redirect_uris": ("3", 3),
    "max_contacts": ("2", 2),
    "max_string_length": ("100", 100),
    "max_record_bytes": ("32768", 32768),
    "max_language_tagged_fields": ("5", 5),
    "initial_access_tokens": (
        "s3cr3t-token-0123456789, sha256:" + "ab" * 32,
        ("s3cr3t-token-0123456789", "sha256:" + "ab" * 32),
    ),
    "require_initial_access_token": ("true", True),
    "token_rate_limit": ("5/minute", "5/minute"),
    "cors_origins": (
        "https://a.example.com, http://localhost:3000",
        (
            "https://a.example.com",
            "http://localhost:3000",
        ),
    ),
    "rotate_registration_access_token": ("false", False),
    "software_statement_jwks": (SAMPLE_JWKS, SAMPLE_JWKS),
    "software_statement_algs": ("ES256, EdDSA", ("ES256", "EdDSA")),
    "software_statement_issuers": (
        "https://statements.example.com",
        ("https://statements.example.com",),
    ),
    "software_statement_required": ("true", True),
    "allowed_signing_algs": ("RS256, ES384", ("RS256", "ES384")),
    "allowed_encryption_algs": ("RSA-OAEP-256", ("RSA-OAEP-256",)),
    "allowed_encryption_encs": ("A128CBC-HS256,A256GCM", ("A128CBC-HS256", "A256GCM")),
    "allowed_subject_types": ("public, pairwise", ("public", "pairwise")),
    "event_hook": ("myproject.audit:on_event", "myproject.audit:on_event"),
    "cimd": ("true", True),
    "cimd_private_networks": ("127.0.0.0/8, ::1/128", ("127.0.0.0/8", "::1/128")),
    "cimd_allowed_hosts": ("client.example, *.apps.example", ("client.example", "*.apps.example")),
    "cimd_denied_hosts": ("bad.example", ("bad.example",)),
    "cimd_max_bytes": ("8192", 8192),
    "cimd_connect_timeout": ("1.5", 1.5),
    "cimd_timeout": ("3", 3.0),
    "cimd_cache_min": ("1m", 60),
    "cimd_cache_max": ("2h", 7200),
    "cimd_negative_ttl": ("30", 30),
    "cimd_stale": ("0", 0),
    "cimd_fetch_rate_limit": ("5/minute", "5/minute"),
    "cimd_fetch_total_rate_limit": ("off", "off"),
    "sector_identifier_uris": ("true", True),
    "metrics": ("true", True),
    "otel": ("true", True),
}

FIELDS = [f.name for f in dataclasses.fields(Settings)]
# Variables a sample cannot be valid without (a setting that only means something with another).
NEEDS: dict[str, dict[str, str]] = {
    "redis_cluster": {"DCR_REDIS_URL": "redis://localhost:6379/0"},
    "redis_sentinels": {"DCR_REDIS_SENTINEL_MASTER": "mymaster"},
    "redis_sentinel_master": {"DCR_REDIS_SENTINELS": "sentinel-1:26379"},
    "software_statement_issuers": {"DCR_SOFTWARE_STATEMENT_JWKS": SAMPLE_JWKS},
    "software_statement_required": {"DCR_SOFTWARE_STATEMENT_JWKS": SAMPLE_JWKS},
    "serve_metadata": {
        "DCR_ISSUER": "https://auth.example.com",
        "DCR_AUTHORIZATION_ENDPOINT": "https://auth.example.com/authorize",
        "DCR_TOKEN_ENDPOINT": "https://auth.example.com/token",
    },
}


def env_var(field_name: str) -> str:
    return "DCR_" + field_name.upper()


def test_settings_defaults() -> None:
    settings = Settings()
    assert settings.app is None
    assert settings.path == "/register"
    assert settings.redis_url is None
    assert settings.uses_redis is False
    assert settings.key_prefix == "dcr"
    assert settings.max_body_bytes == 65536
    assert settings.allowed_grant_types == (
        "authorization_code",
        "refresh_token",
        "client_credentials",
    )
    assert settings.allowed_response_types == ("code",)
    assert settings.allowed_auth_methods == ("client_secret_basic", "client_secret_post", "none")
    assert settings.allowed_scopes is None
    assert settings.default_scopes == ()
    assert settings.default_grant_types == ("authorization_code",)
    assert settings.allow_insecure_redirect_uris is False
    assert settings.client_secret_ttl == 0
    assert settings.issuer is None


def test_settings_from_env_empty_environ_gives_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_settings_from_env_ignores_unrelated_variables() -> None:
    environ = {"PATH": "/usr/bin", "DCR": "x", "DCR_NOT_A_SETTING": "x", "dcr_path": "/other"}
    assert Settings.from_env(environ) == Settings()


def test_settings_every_field_has_a_sample() -> None:
    assert sorted(SAMPLES) == sorted(FIELDS)


@pytest.mark.parametrize("field_name", FIELDS)
def test_settings_from_env_parses_field_by_mechanical_name(field_name: str) -> None:
    raw, expected = SAMPLES[field_name]
    settings = Settings.from_env({env_var(field_name): raw, **NEEDS.get(field_name, {})})
    assert getattr(settings, field_name) == expected
    assert getattr(settings, field_name) != getattr(Settings(), field_name)


# Cluster and Sentinel exclude each other: the Sentinel samples have their own tests.
ALONE = ("redis_sentinels", "redis_sentinel_master")


def test_settings_from_env_parses_all_fields_at_once() -> None:
    environ = {env_var(name): raw for name, (raw, _) in SAMPLES.items() if name not in ALONE}
    # default_grant_types must stay within allowed_grant_types when both are set
    settings = Settings.from_env(environ)
    for name, (_, expected) in SAMPLES.items():
        if name not in ALONE:
            assert getattr(settings, name) == expected, name
    assert settings.uses_redis is True


def test_settings_sentinels_alone_select_redis() -> None:
    environ = {"DCR_REDIS_SENTINELS": "s1:26379,s2:26379", "DCR_REDIS_SENTINEL_MASTER": "m"}
    settings = Settings.from_env(environ)
    assert settings.redis_url is None
    assert settings.uses_redis is True


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        pytest.param("30d", 30 * 86400, id="days"),
        pytest.param("12h", 12 * 3600, id="hours"),
        pytest.param("15m", 15 * 60, id="minutes"),
        pytest.param("90s", 90, id="seconds-suffix"),
        pytest.param("3600", 3600, id="bare-seconds"),
        pytest.param("2w", 2 * 604800, id="weeks"),
        pytest.param(" 12H ", 12 * 3600, id="upper-case-and-blanks"),
        pytest.param("0", 0, id="zero"),
    ],
)
def test_settings_from_env_parses_duration(raw: str, seconds: int) -> None:
    assert Settings.from_env({"DCR_CLIENT_SECRET_TTL": raw}).client_secret_ttl == seconds


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param("forever", id="word"),
        pytest.param("1.5h", id="fraction"),
        pytest.param("-5", id="negative"),
        pytest.param("5y", id="unknown-unit"),
        pytest.param("5 d 3", id="trailing"),
    ],
)
def test_settings_from_env_rejects_bad_duration(raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"DCR_CLIENT_SECRET_TTL": raw})
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("DCR_CLIENT_SECRET_TTL")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("a,b", ("a", "b"), id="plain"),
        pytest.param(" a , b ", ("a", "b"), id="blanks-around"),
        pytest.param("a,,b,", ("a", "b"), id="empty-items-dropped"),
        pytest.param(" , a ,  , ", ("a",), id="blank-items-dropped"),
    ],
)
def test_settings_from_env_parses_list(raw: str, expected: tuple[str, ...]) -> None:
    assert Settings.from_env({"DCR_ALLOWED_SCOPES": raw}).allowed_scopes == expected


def test_settings_from_env_empty_required_list_is_reported() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"DCR_ALLOWED_GRANT_TYPES": " , "})
    assert any(p.startswith("DCR_ALLOWED_GRANT_TYPES") for p in info.value.problems)


@pytest.mark.parametrize(
    ("field_name", "raw"),
    [
        pytest.param("redis_url", "", id="redis-url"),
        pytest.param("redis_url", "   ", id="redis-url-blank"),
        pytest.param("allowed_scopes", "", id="allowed-scopes"),
        pytest.param("issuer", "", id="issuer"),
        pytest.param("app", "", id="app"),
    ],
)
def test_settings_from_env_empty_optional_is_none(field_name: str, raw: str) -> None:
    assert getattr(Settings.from_env({env_var(field_name): raw}), field_name) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("true", True, id="true"),
        pytest.param("TRUE", True, id="TRUE"),
        pytest.param("1", True, id="one"),
        pytest.param("yes", True, id="yes"),
        pytest.param(" On ", True, id="on"),
        pytest.param("false", False, id="false"),
        pytest.param("0", False, id="zero"),
        pytest.param("no", False, id="no"),
        pytest.param("OFF", False, id="off"),
    ],
)
def test_settings_from_env_parses_bool(raw: str, expected: bool) -> None:
    settings = Settings.from_env({"DCR_ALLOW_INSECURE_REDIRECT_URIS": raw})
    assert settings.allow_insecure_redirect_uris is expected


@pytest.mark.parametrize("raw", ["maybe", "", "2", "truee"])
def test_settings_from_env_rejects_bad_bool(raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"DCR_ALLOW_INSECURE_REDIRECT_URIS": raw})
    assert info.value.problems[0].startswith("DCR_ALLOW_INSECURE_REDIRECT_URIS")


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        pytest.param("DCR_MAX_BODY_BYTES", "abc", id="int-word"),
        pytest.param("DCR_MAX_BODY_BYTES", "1.5", id="int-fraction"),
        pytest.param("DCR_REDIS_TIMEOUT", "fast", id="float-word"),
        pytest.param("DCR_REDIS_TIMEOUT", "nan", id="float-nan"),
        pytest.param("DCR_REDIS_TIMEOUT", "inf", id="float-inf"),
    ],
)
def test_settings_from_env_rejects_bad_number(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({name: raw})
    assert [p.split(":", 1)[0] for p in info.value.problems] == [name]


def test_settings_from_env_keyword_override_wins_over_environment() -> None:
    settings = Settings.from_env({"DCR_PATH": "/from-env", "DCR_KEY_PREFIX": "env"}, path="/kw")
    assert settings.path == "/kw"
    assert settings.key_prefix == "env"


def test_settings_from_env_keyword_override_skips_unparsable_environment() -> None:
    settings = Settings.from_env({"DCR_MAX_BODY_BYTES": "abc"}, max_body_bytes=10)
    assert settings.max_body_bytes == 10


def test_settings_from_env_keyword_override_is_still_checked() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({}, max_body_bytes=0)
    assert info.value.problems[0].startswith("DCR_MAX_BODY_BYTES")


def test_settings_from_env_reports_every_bad_variable_at_once() -> None:
    environ = {
        "DCR_MAX_BODY_BYTES": "abc",
        "DCR_REDIS_TIMEOUT": "soon",
        "DCR_ALLOW_INSECURE_REDIRECT_URIS": "maybe",
        "DCR_CLIENT_SECRET_TTL": "forever",
        "DCR_PATH": "register",
        "DCR_REDIS_URL": "http://localhost:6379",
        "DCR_ALLOWED_AUTH_METHODS": "magic",
        "DCR_KEY_PREFIX": "{dcr}",
    }
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(environ)
    named = sorted(p.split(":", 1)[0] for p in info.value.problems)
    assert named == sorted(environ)
    message = str(info.value)
    for name in environ:
        assert name in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("redis://:hunter2@h:6379/0", "redis://:***@h:6379/0", id="password-only"),
        pytest.param("redis://user:hunter2@h/0", "redis://user:***@h/0", id="user-and-password"),
        pytest.param(
            "rediss://user:hunter2@redis.example.com:6380/1",
            "rediss://user:***@redis.example.com:6380/1",
            id="tls",
        ),
        pytest.param("redis://hunter2@h/0", "redis://:***@h/0", id="bare-username-as-password"),
        pytest.param("redis://:hunter2@[::1]:6379/0", "redis://:***@[::1]:6379/0", id="ipv6-host"),
        pytest.param(
            "unix://:hunter2@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0", id="unix"
        ),
    ],
)
def test_settings_repr_masks_redis_password(url: str, shown: str) -> None:
    text = repr(Settings(redis_url=url))
    assert "hunter2" not in text
    assert f"redis_url={shown!r}" in text


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://:hun#ter2@h:6379/0", id="hash"),
        pytest.param("redis://:hun/ter2@h:6379/0", id="slash"),
        pytest.param("redis://:hun?ter2@h:6379/0", id="question-mark"),
        pytest.param("redis://user:hu@n#ter2@h/0", id="at-and-hash"),
    ],
)
def test_settings_repr_masks_redis_password_with_unencoded_delimiters(url: str) -> None:
    # A password with a raw "#", "/" or "?" splits the URL before the "@": no piece of it may show.
    text = repr(Settings(redis_url=url))
    assert "hun" not in text
    assert "ter2" not in text
    assert "***" in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            "redis://h:6379/0?password=hunter2", "redis://h:6379/0?password=***", id="password"
        ),
        pytest.param(
            "redis://h/0?db=1&password=hun#ter2&socket_timeout=1",
            "redis://h/0?db=1&password=***&socket_timeout=1",
            id="raw-hash-in-value",
        ),
        pytest.param(
            "rediss://u:hunter2@h/0?ssl_password=hunter2&ssl_cert_reqs=none",
            "rediss://u:***@h/0?ssl_password=***&ssl_cert_reqs=none",
            id="userinfo-and-query",
        ),
        pytest.param(
            "redis://h/0?pass%77ord=hunter2", "redis://h/0?pass%77ord=***", id="encoded-name"
        ),
        pytest.param(
            "unix:///run/redis.sock?PASSWORD=hunter2&db=0",
            "unix:///run/redis.sock?PASSWORD=***&db=0",
            id="unix-upper-case",
        ),
        pytest.param("redis://h/0?db=1", "redis://h/0?db=1", id="nothing-to-hide"),
    ],
)
def test_mask_url_masks_passwords_in_the_query(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    text = repr(Settings(redis_url=url))
    assert "hunter2" not in text
    assert "ter2" not in text
    assert f"redis_url={shown!r}" in text


def test_settings_repr_masks_url_without_authority_marker() -> None:
    text = repr(Settings(redis_url="redis:hunter2@h:6379"))
    assert "hunter2" not in text


def test_settings_repr_shows_url_without_password_unchanged() -> None:
    assert "redis_url='redis://h:6379/0'" in repr(Settings(redis_url="redis://h:6379/0"))


def test_settings_repr_lists_every_field() -> None:
    text = repr(Settings())
    assert text.startswith("Settings(")
    for name in FIELDS:
        assert f"{name}=" in text


@pytest.mark.parametrize(
    ("kwargs", "variable", "mentions"),
    [
        pytest.param(
            {"default_grant_types": ("implicit",)},
            "DCR_DEFAULT_GRANT_TYPES",
            "implicit",
            id="default-grant-not-allowed",
        ),
        pytest.param(
            {"allowed_grant_types": ("client_credentials",)},
            "DCR_DEFAULT_GRANT_TYPES",
            "authorization_code",
            id="allowed-grants-exclude-default",
        ),
        pytest.param(
            {"allowed_scopes": ("openid",), "default_scopes": ("openid", "admin")},
            "DCR_DEFAULT_SCOPES",
            "admin",
            id="default-scope-not-allowed",
        ),
        pytest.param(
            {"allowed_auth_methods": ("none", "magic")},
            "DCR_ALLOWED_AUTH_METHODS",
            "magic",
            id="unknown-auth-method",
        ),
        pytest.param(
            {"allowed_auth_methods": ()}, "DCR_ALLOWED_AUTH_METHODS", "", id="no-auth-method"
        ),
        pytest.param(
            {"allowed_grant_types": (), "default_grant_types": ()},
            "DCR_ALLOWED_GRANT_TYPES",
            "",
            id="no-grant-type",
        ),
        pytest.param({"app": "not-an-app"}, "DCR_APP", "not-an-app", id="app-format"),
        pytest.param({"path": "register"}, "DCR_PATH", "register", id="path-relative"),
        pytest.param({"path": "/"}, "DCR_PATH", "", id="path-root"),
        pytest.param({"path": "/register/"}, "DCR_PATH", "", id="path-trailing-slash"),
        pytest.param({"path": "/register?x=1"}, "DCR_PATH", "", id="path-query"),
        pytest.param({"redis_url": "http://h:6379"}, "DCR_REDIS_URL", "", id="redis-scheme"),
        pytest.param({"redis_cluster": True}, "DCR_REDIS_CLUSTER", "", id="cluster-no-url"),
        pytest.param(
            {"redis_cluster": True, "redis_url": "redis://h:6379/2"},
            "DCR_REDIS_URL",
            "database 0",
            id="cluster-db",
        ),
        pytest.param(
            {"redis_cluster": True, "redis_url": "unix:///tmp/r.sock"},
            "DCR_REDIS_URL",
            "",
            id="cluster-unix",
        ),
        pytest.param(
            {
                "redis_cluster": True,
                "redis_url": "redis://h:6379",
                "redis_sentinels": ("s:26379",),
                "redis_sentinel_master": "m",
            },
            "DCR_REDIS_CLUSTER",
            "not both",
            id="cluster-and-sentinel",
        ),
        pytest.param(
            {"redis_sentinels": ("s:26379",)},
            "DCR_REDIS_SENTINEL_MASTER",
            "required",
            id="sentinel-no-master",
        ),
        pytest.param(
            {"redis_sentinel_master": "m"},
            "DCR_REDIS_SENTINEL_MASTER",
            "DCR_REDIS_SENTINELS",
            id="master-no-sentinels",
        ),
        pytest.param(
            {"redis_sentinels": ("s",), "redis_sentinel_master": "m"},
            "DCR_REDIS_SENTINELS",
            "host:port",
            id="sentinel-no-port",
        ),
        pytest.param(
            {"redis_sentinels": ("s:0",), "redis_sentinel_master": "m"},
            "DCR_REDIS_SENTINELS",
            "host:port",
            id="sentinel-port-zero",
        ),
        pytest.param({"key_prefix": "{dcr}"}, "DCR_KEY_PREFIX", "", id="prefix-hash-tag"),
        pytest.param({"key_prefix": ""}, "DCR_KEY_PREFIX", "", id="prefix-empty"),
        pytest.param({"redis_timeout": 0.0}, "DCR_REDIS_TIMEOUT", "", id="timeout-zero"),
        pytest.param(
            {"redis_connect_timeout": 61.0},
            "DCR_REDIS_CONNECT_TIMEOUT",
            "",
            id="connect-timeout-huge",
        ),
        pytest.param(
            {"redis_max_connections": 0}, "DCR_REDIS_MAX_CONNECTIONS", "", id="pool-empty"
        ),
        pytest.param(
            {"redis_max_connections": 10001}, "DCR_REDIS_MAX_CONNECTIONS", "", id="pool-huge"
        ),
        pytest.param(
            {"redis_pool_timeout": 0.0}, "DCR_REDIS_POOL_TIMEOUT", "", id="pool-wait-zero"
        ),
        pytest.param(
            {"redis_pool_timeout": 61.0}, "DCR_REDIS_POOL_TIMEOUT", "", id="pool-wait-huge"
        ),
        pytest.param({"max_body_bytes": 0}, "DCR_MAX_BODY_BYTES", "", id="body-zero"),
        pytest.param(
            {"max_body_bytes": 16 * 1024 * 1024 + 1}, "DCR_MAX_BODY_BYTES", "", id="body-huge"
        ),
        pytest.param({"client_secret_ttl": -1}, "DCR_CLIENT_SECRET_TTL", "", id="ttl-negative"),
        pytest.param({"issuer": "auth.example.com"}, "DCR_ISSUER", "", id="issuer-relative"),
        pytest.param({"issuer": "https://a.example/?x=1"}, "DCR_ISSUER", "", id="issuer-query"),
        pytest.param({"issuer": "ftp://a.example"}, "DCR_ISSUER", "", id="issuer-scheme"),
        pytest.param(
            {"allowed_scopes": ('bad"scope',)}, "DCR_ALLOWED_SCOPES", "", id="scope-token"
        ),
        pytest.param(
            {"allowed_grant_types": ("authorization_code", "bad\ttype")},
            "DCR_ALLOWED_GRANT_TYPES",
            "",
            id="grant-token",
        ),
    ],
)
def test_settings_check_rejects_invalid_combination(
    kwargs: dict[str, Any], variable: str, mentions: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings(**kwargs)
    problems = [p for p in info.value.problems if p.startswith(variable + ":")]
    assert problems, info.value.problems
    assert mentions in problems[0]


def test_settings_check_accepts_consistent_policy() -> None:
    settings = Settings(
        allowed_grant_types=("client_credentials",),
        default_grant_types=("client_credentials",),
        allowed_auth_methods=("private_key_jwt",),
        allowed_scopes=("read", "write"),
        default_scopes=("read",),
        issuer="http://localhost:8000",
        redis_url="unix:///run/redis.sock",
    )
    assert settings.default_scopes == ("read",)


def test_settings_is_frozen_and_keyword_only() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.path = "/other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Settings("/register")  # type: ignore[call-arg]


def test_settings_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="DCR_PATH"):
        Settings(path="x")


def test_settings_default_grants_need_their_response_types_allowed() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings(allowed_response_types=("token",))
    assert any(p.startswith("DCR_ALLOWED_RESPONSE_TYPES:") for p in info.value.problems)


@pytest.mark.parametrize(
    ("fields", "variable"),
    [
        pytest.param({"allowed_response_types": "code"}, "DCR_ALLOWED_RESPONSE_TYPES", id="str"),
        pytest.param({"max_body_bytes": "1024"}, "DCR_MAX_BODY_BYTES", id="int-as-str"),
        pytest.param({"max_body_bytes": True}, "DCR_MAX_BODY_BYTES", id="bool-as-int"),
        pytest.param({"redis_timeout": "1"}, "DCR_REDIS_TIMEOUT", id="float-as-str"),
        pytest.param(
            {"allow_insecure_redirect_uris": 1}, "DCR_ALLOW_INSECURE_REDIRECT_URIS", id="b"
        ),
        pytest.param({"path": b"/register"}, "DCR_PATH", id="bytes-path"),
        pytest.param({"allowed_scopes": ("a", 1)}, "DCR_ALLOWED_SCOPES", id="non-str-item"),
    ],
)
def test_settings_rejects_wrong_types(fields: dict[str, Any], variable: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings(**fields)
    assert [p.split(":")[0] for p in info.value.problems] == [variable]


def test_settings_lists_become_tuples() -> None:
    settings = Settings(allowed_grant_types=["client_credentials"], default_grant_types=[])  # type: ignore[arg-type]
    assert settings.allowed_grant_types == ("client_credentials",)
    assert settings.default_grant_types == ()


@pytest.mark.parametrize(
    "entry",
    ["App.Example.com", "*.*.example.com", "https://app.example.com", "example.com/path", "*"],
)
def test_settings_rejects_bad_redirect_host_entries(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="DCR_ALLOWED_REDIRECT_HOSTS"):
        Settings(allowed_redirect_hosts=(entry,))


def test_settings_from_env_warns_about_unknown_variables(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="dcr_middleware"):
        Settings.from_env({"DCR_PAHT": "/x", "DCR_PATH": "/oauth/register", "OTHER": "1"})
    assert "DCR_PAHT" in caplog.text
    assert "DCR_PATH," not in caplog.text and "OTHER" not in caplog.text
