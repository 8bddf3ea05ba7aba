"""Initial access tokens: Bearer parsing, static token digests, token policies, grants, and the
settings that configure them (validated without ever repeating a plaintext token)."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcr_middleware.core.admission import Admission, RequestHead
from dcr_middleware.core.errors import ConfigurationError, InvalidTokenError
from dcr_middleware.core.settings import Settings
from dcr_middleware.core.tokens import (
    Grant,
    TokenPolicy,
    bearer_token,
    digest,
    matches_static,
    missing_token,
    parse_static_tokens,
    unknown_token,
)

PLAIN = "s3cr3t-Initial-Access-Token_0123"
PLAIN_DIGEST = hashlib.sha256(PLAIN.encode()).hexdigest()
OTHER = "another-initial-access-token-4567"
TOKEN68 = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- Bearer parsing (RFC 6750 §2.1) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("Bearer x", "x", id="one-char"),
        pytest.param(f"Bearer {PLAIN}", PLAIN, id="plain"),
        pytest.param("bearer abc", "abc", id="lower-case-scheme"),
        pytest.param("BEARER abc", "abc", id="upper-case-scheme"),
        pytest.param("BeArEr abc", "abc", id="mixed-case-scheme"),
        pytest.param("Bearer    abc", "abc", id="several-spaces"),
        pytest.param("Bearer abc   ", "abc", id="trailing-spaces"),
        pytest.param("Bearer abc=", "abc=", id="one-trailing-equals"),
        pytest.param("Bearer abc==", "abc==", id="two-trailing-equals"),
        pytest.param("Bearer aZ09-._~+/", "aZ09-._~+/", id="every-token68-char"),
        pytest.param("Bearer A-b.c_d~e+f/g==", "A-b.c_d~e+f/g==", id="token68-mix"),
    ],
)
def test_bearer_token_parsed(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("Bearer", id="scheme-only"),
        pytest.param("Bearer ", id="scheme-and-space"),
        pytest.param("Basic dXNlcjpwYXNz", id="basic"),
        pytest.param("Token abc", id="other-scheme"),
        pytest.param("Bearerabc", id="no-space"),
        pytest.param("Bearer\tabc", id="tab"),
        pytest.param("Bearer abc def", id="two-tokens"),
        pytest.param("Bearer abc, Bearer def", id="two-credentials"),
        pytest.param("Bearer a=b", id="equals-inside"),
        pytest.param("Bearer =abc", id="equals-first"),
        pytest.param("Bearer ==", id="only-equals"),
        pytest.param("Bearer abc!", id="bang"),
        pytest.param('Bearer "abc"', id="quoted"),
        pytest.param("Bearer ab%63", id="percent"),
        pytest.param("Bearer abc\n", id="newline"),
        pytest.param("Bearer t\u00f6ken", id="non-ascii"),
        pytest.param("Bearer abc=\n", id="equals-newline"),
    ],
)
def test_bearer_token_malformed_is_invalid_token(header: str) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        bearer_token(header)
    assert caught.value.status == 401
    assert caught.value.error == "invalid_token"


@given(st.text(max_size=80))
def test_bearer_token_never_crashes(header: str) -> None:
    """Any header yields a token68 value or our 401, nothing else."""
    try:
        token = bearer_token(header)
    except InvalidTokenError:
        return
    assert token is not None
    assert TOKEN68.match(token)
    assert token in header


@given(st.from_regex(TOKEN68, fullmatch=True))
def test_bearer_token_accepts_every_token68(token: str) -> None:
    assert bearer_token(f"Bearer {token}") == token


def test_invalid_token_error_carries_bearer_challenge() -> None:
    for error in (unknown_token(), missing_token(), InvalidTokenError("x")):
        assert error.status == 401
        assert error.error == "invalid_token"
        assert error.headers() == [("WWW-Authenticate", 'Bearer error="invalid_token"')]


# --- static tokens -----------------------------------------------------------------------------


def test_digest_is_sha256_hex() -> None:
    assert digest(PLAIN) == PLAIN_DIGEST
    assert re.fullmatch(r"[0-9a-f]{64}", digest("x"))


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param((), (), id="none"),
        pytest.param((PLAIN,), (PLAIN_DIGEST,), id="plaintext"),
        pytest.param((f"sha256:{PLAIN_DIGEST}",), (PLAIN_DIGEST,), id="sha256-lower"),
        pytest.param((f"sha256:{PLAIN_DIGEST.upper()}",), (PLAIN_DIGEST,), id="sha256-upper"),
        pytest.param(
            (PLAIN, f"sha256:{_sha(OTHER)}"), (PLAIN_DIGEST, _sha(OTHER)), id="plaintext-and-sha"
        ),
        # Not a well-formed sha256: entry: it is taken as a plaintext token (settings refuse it).
        pytest.param(("sha256:abc",), (_sha("sha256:abc"),), id="short-sha-is-plaintext"),
    ],
)
def test_parse_static_tokens_gives_digests(
    entries: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert parse_static_tokens(entries) == expected


def test_matches_static() -> None:
    static = parse_static_tokens((PLAIN, f"sha256:{_sha(OTHER).upper()}"))
    assert matches_static(digest(PLAIN), static)
    assert matches_static(digest(OTHER), static)
    assert not matches_static(digest("not-configured-token-000"), static)
    assert not matches_static(digest(PLAIN), ())
    # The digest is compared, never the plaintext.
    assert not matches_static(PLAIN, static)
    assert not matches_static(PLAIN_DIGEST.upper(), static)


def test_admission_static_grant_for_sha256_entry() -> None:
    admission = Admission(Settings(initial_access_tokens=(f"sha256:{PLAIN_DIGEST.upper()}",)))
    assert admission.token_required
    grant = admission.static_grant(digest(PLAIN))
    assert grant == Grant(PLAIN_DIGEST, minted=False, policy=TokenPolicy())
    assert admission.static_grant(digest(OTHER)) is None


@pytest.mark.parametrize(
    ("settings", "header", "expected"),
    [
        pytest.param(Settings(), None, None, id="none-needed-none-sent"),
        pytest.param(Settings(), f"Bearer {PLAIN}", PLAIN_DIGEST, id="none-needed-one-sent"),
        pytest.param(
            Settings(initial_access_tokens=(PLAIN,)),
            f"bearer  {PLAIN}",
            PLAIN_DIGEST,
            id="static-sent",
        ),
        pytest.param(
            Settings(require_initial_access_token=True),
            f"Bearer {PLAIN}",
            PLAIN_DIGEST,
            id="required-sent",
        ),
    ],
)
def test_admission_token_digest(settings: Settings, header: str | None, expected: str) -> None:
    headers = {} if header is None else {"authorization": header}
    assert Admission(settings).token_digest(RequestHead("POST", headers, "10.0.0.1")) == expected


@pytest.mark.parametrize(
    ("settings", "headers"),
    [
        pytest.param(Settings(initial_access_tokens=(PLAIN,)), {}, id="static-missing"),
        pytest.param(Settings(require_initial_access_token=True), {}, id="required-missing"),
        pytest.param(Settings(), {"authorization": "Basic dXNlcjpwYXNz"}, id="basic"),
        pytest.param(Settings(), {"authorization": ""}, id="empty-header"),
    ],
)
def test_admission_token_digest_refused(settings: Settings, headers: dict[str, str]) -> None:
    with pytest.raises(InvalidTokenError):
        Admission(settings).token_digest(RequestHead("POST", headers, "10.0.0.1"))


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(None, id="unknown"),
        pytest.param({"uses": "0", "policy": "{}"}, id="used-up"),
    ],
)
def test_admission_minted_grant_refused(fields: dict[str, str] | None) -> None:
    with pytest.raises(InvalidTokenError):
        Admission(Settings()).minted_grant(PLAIN_DIGEST, fields)


@pytest.mark.parametrize("uses", ["1", "3", "-1"])
def test_admission_minted_grant_carries_policy(uses: str) -> None:
    policy = TokenPolicy(allowed_scopes=("read",), rate_limit="5/hour")
    grant = Admission(Settings()).minted_grant(
        PLAIN_DIGEST, {"uses": uses, "policy": policy.to_json()}
    )
    assert grant == Grant(PLAIN_DIGEST, minted=True, policy=policy)


def test_admission_rate_plan_charges_the_token_not_the_address() -> None:
    admission = Admission(Settings(rate_limit="1/hour", token_rate_limit="2/hour"))
    head = RequestHead("POST", {}, "10.0.0.1")
    by_address = admission.rate_plan(head, None)
    assert (by_address.scope, by_address.bucket) == ("ip", "ip:10.0.0.1")
    assert [lim.field for lim in by_address.limits] == ["1/3600"]
    static = admission.rate_plan(head, Grant(PLAIN_DIGEST, minted=False, policy=TokenPolicy()))
    assert static.scope == "token"
    assert static.bucket == f"token:{PLAIN_DIGEST[:32]}"
    assert [lim.field for lim in static.limits] == ["2/3600"]
    own = Grant(PLAIN_DIGEST, minted=True, policy=TokenPolicy(rate_limit="7/minute"))
    assert [lim.field for lim in admission.rate_plan(head, own).limits] == ["7/60"]
    unlimited = Grant(PLAIN_DIGEST, minted=True, policy=TokenPolicy(rate_limit="off"))
    assert admission.rate_plan(head, unlimited).limits == ()


# --- grants and policies -----------------------------------------------------------------------


@pytest.mark.parametrize("token", [PLAIN, "x" * 16, "a" * 64, "Z" * 200])
def test_grant_bucket_never_contains_the_token(token: str) -> None:
    grant = Grant(digest(token), minted=True, policy=TokenPolicy())
    assert grant.bucket == f"token:{digest(token)[:32]}"
    assert token not in grant.bucket
    assert len(grant.bucket) == len("token:") + 32


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(TokenPolicy(), id="empty"),
        pytest.param(TokenPolicy(allowed_scopes=("read", "write")), id="scopes"),
        pytest.param(TokenPolicy(allowed_scopes=()), id="no-scopes"),
        pytest.param(TokenPolicy(allowed_redirect_hosts=("*.example.com", "cursor:")), id="hosts"),
        pytest.param(TokenPolicy(rate_limit="10/minute"), id="rate"),
        pytest.param(
            TokenPolicy(
                allowed_scopes=("openid",),
                allowed_redirect_hosts=("app.example.com",),
                rate_limit="5/hour;20/day",
            ),
            id="everything",
        ),
    ],
)
def test_token_policy_json_round_trip(policy: TokenPolicy) -> None:
    assert TokenPolicy.from_json(policy.to_json()) == policy


def test_token_policy_json_omits_unset_fields() -> None:
    assert TokenPolicy().to_json() == "{}"
    assert TokenPolicy.from_json(None) == TokenPolicy()
    assert TokenPolicy.from_json("") == TokenPolicy()
    assert TokenPolicy.from_json("{}") == TokenPolicy()


def test_token_policy_empty_keeps_settings() -> None:
    settings = Settings(allowed_scopes=("a", "b"), default_scopes=("a",))
    assert TokenPolicy().apply(settings) is settings
    assert TokenPolicy(rate_limit="1/hour").apply(settings) is settings


def test_token_policy_narrows_scopes_and_filters_defaults() -> None:
    settings = Settings(default_scopes=("openid", "profile", "admin"))
    narrowed = TokenPolicy(allowed_scopes=("openid", "profile")).apply(settings)
    assert narrowed.allowed_scopes == ("openid", "profile")
    assert narrowed.default_scopes == ("openid", "profile")
    assert settings.allowed_scopes is None  # the original is untouched
    assert settings.default_scopes == ("openid", "profile", "admin")
    # Every default filtered away: none left rather than a configuration error.
    none_left = TokenPolicy(allowed_scopes=("email",)).apply(settings)
    assert none_left.allowed_scopes == ("email",)
    assert none_left.default_scopes == ()


def test_token_policy_narrows_a_configured_allowlist() -> None:
    settings = Settings(allowed_scopes=("openid", "profile", "email"), default_scopes=("openid",))
    narrowed = TokenPolicy(allowed_scopes=("email",)).apply(settings)
    assert narrowed.allowed_scopes == ("email",)
    assert narrowed.default_scopes == ()


def test_token_policy_narrows_redirect_hosts() -> None:
    settings = Settings(allowed_redirect_hosts=("app.example.com", "*.example.org"))
    narrowed = TokenPolicy(allowed_redirect_hosts=("app.example.com",)).apply(settings)
    assert narrowed.allowed_redirect_hosts == ("app.example.com",)
    assert narrowed.allowed_scopes is None
    from_open = TokenPolicy(allowed_redirect_hosts=("*.example.net",)).apply(Settings())
    assert from_open.allowed_redirect_hosts == ("*.example.net",)


def test_token_policy_other_settings_unchanged() -> None:
    settings = Settings(max_clients=7, rate_limit="3/minute", path="/oauth/register")
    narrowed = TokenPolicy(allowed_scopes=("a",), allowed_redirect_hosts=("h.example",)).apply(
        settings
    )
    for name in ("max_clients", "rate_limit", "path", "default_grant_types", "cors_origins"):
        assert getattr(narrowed, name) == getattr(settings, name)


def test_token_policy_invalid_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        TokenPolicy(allowed_redirect_hosts=("Not A Host",)).apply(Settings())


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param((PLAIN,), id="plaintext"),
        pytest.param(("a" * 16,), id="sixteen-chars"),
        pytest.param(("abc+/def-._~ghi==",), id="token68"),
        pytest.param((f"sha256:{PLAIN_DIGEST}",), id="sha256-lower"),
        pytest.param((f"sha256:{PLAIN_DIGEST.upper()}",), id="sha256-upper"),
        pytest.param((PLAIN, f"sha256:{_sha(OTHER)}"), id="both"),
    ],
)
def test_settings_initial_access_tokens_valid(entries: tuple[str, ...]) -> None:
    assert Settings(initial_access_tokens=entries).initial_access_tokens == entries


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("tooShortSecret1", id="fifteen-chars"),
        pytest.param("x", id="one-char"),
        pytest.param("secret with spaces inside it", id="spaces"),
        pytest.param("secret!token;that-is-long", id="bad-chars"),
        pytest.param("s\u00e9cret-token-non-ascii-1234", id="non-ascii"),
    ],
)
def test_settings_bad_token_message_hides_the_token(secret: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(initial_access_tokens=(PLAIN, secret))
    message = str(caught.value)
    assert "DCR_INITIAL_ACCESS_TOKENS" in message
    assert caught.value.problems == (
        "DCR_INITIAL_ACCESS_TOKENS: tokens need at least 16 URL-safe characters",
    )
    for shown in (secret, PLAIN, repr(secret)):
        assert shown not in message
    assert secret not in repr(caught.value)


def test_settings_bad_token_from_env_hides_the_token() -> None:
    secret = "tiny-secret"
    env = {"DCR_INITIAL_ACCESS_TOKENS": f"{PLAIN}, {secret}", "DCR_CORS_ORIGINS": "nope"}
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert "DCR_INITIAL_ACCESS_TOKENS" in message
    assert "DCR_CORS_ORIGINS" in message  # every problem at once
    assert secret not in message
    assert PLAIN not in message


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param("sha256:abc", id="short"),
        pytest.param("sha256:" + "g" * 64, id="not-hex"),
        pytest.param("sha256:" + "a" * 65, id="too-long"),
        pytest.param("sha256:", id="empty"),
        pytest.param("sha256: " + "a" * 64, id="space"),
    ],
)
def test_settings_bad_sha256_entry(entry: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(initial_access_tokens=(entry,))
    assert caught.value.problems == (
        "DCR_INITIAL_ACCESS_TOKENS: a sha256: entry needs 64 hex digits",
    )


@pytest.mark.parametrize(
    "origins",
    [
        pytest.param(("*",), id="any"),
        pytest.param(("off",), id="off"),
        pytest.param((), id="empty"),
        pytest.param(("https://app.example.com",), id="https"),
        pytest.param(("http://localhost:6274", "https://a.example.com"), id="listed"),
        pytest.param(("http://127.0.0.1:8080",), id="ip-port"),
        pytest.param(("http://[::1]:3000",), id="ipv6"),
    ],
)
def test_settings_cors_origins_valid(origins: tuple[str, ...]) -> None:
    assert Settings(cors_origins=origins).cors_origins == origins


@pytest.mark.parametrize(
    "origins",
    [
        pytest.param(("app.example.com",), id="no-scheme"),
        pytest.param(("https://app.example.com/",), id="trailing-slash"),
        pytest.param(("https://app.example.com/path",), id="path"),
        pytest.param(("ftp://app.example.com",), id="ftp"),
        pytest.param(("https://",), id="no-host"),
        pytest.param(("off", "https://app.example.com"), id="off-with-origin"),
        pytest.param(("https://*.example.com",), id="wildcard-host"),
        pytest.param(("null",), id="null"),
    ],
)
def test_settings_bad_cors_origin(origins: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(cors_origins=origins)
    assert [p.split(":")[0] for p in caught.value.problems] == ["DCR_CORS_ORIGINS"]


@pytest.mark.parametrize("bad", ["1/fortnightx", "lots", "0/hour"])
def test_settings_bad_token_rate_limit(bad: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(token_rate_limit=bad)
    assert [p.split(":")[0] for p in caught.value.problems] == ["DCR_TOKEN_RATE_LIMIT"]


def test_settings_repr_masks_plaintext_tokens() -> None:
    hashed = f"sha256:{_sha(OTHER)}"
    settings = Settings(initial_access_tokens=(PLAIN, hashed, "second-plain-token-0000"))
    text = repr(settings)
    assert PLAIN not in text
    assert "second-plain-token-0000" not in text
    assert OTHER not in text
    assert f"initial_access_tokens=('***', {hashed!r}, '***')" in text
    # str() of a dataclass falls back to repr: masked as well.
    assert PLAIN not in str(settings)
    assert PLAIN not in f"{settings}"


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param('{"rate_limit": "often"}', id="bad-rate-limit"),
        pytest.param('{"allowed_redirect_hosts": ["Not A Host"]}', id="bad-hosts"),
        pytest.param("not json", id="not-json"),
        pytest.param('{"allowed_scopes": 5}', id="wrong-type"),
    ],
)
def test_admission_minted_grant_refuses_unusable_policy(policy: str) -> None:
    # A record edited by hand must give 401, never a 500.
    with pytest.raises(InvalidTokenError):
        Admission(Settings()).minted_grant(PLAIN_DIGEST, {"uses": "1", "policy": policy})
