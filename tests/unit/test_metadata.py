"""RFC 7591 §2 client metadata validation: every field, URI rules, defaults and policy."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from dcr_middleware.core.client_metadata import validate_client_metadata
from dcr_middleware.core.errors import (
    DCRError,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
)
from dcr_middleware.core.settings import Settings

WEB = "https://app.example.com/cb"
DEFAULT = Settings()
CC_ONLY = Settings(
    allowed_grant_types=("client_credentials",), default_grant_types=("client_credentials",)
)
INSECURE = Settings(allow_insecure_redirect_uris=True)
WIDE = Settings(
    allowed_grant_types=("authorization_code", "implicit", "refresh_token", "client_credentials"),
    allowed_response_types=("code", "token", "id_token", "code id_token"),
    allowed_auth_methods=(
        "none",
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    ),
)

RSA = RSAKey.generate_key(2048)
EC = ECKey.generate_key("P-256")
OKP = OKPKey.generate_key("Ed25519")


def web(**fields: Any) -> dict[str, Any]:
    """A valid authorization-code client, plus ``fields``."""
    return {"redirect_uris": [WEB], **fields}


def service(**fields: Any) -> dict[str, Any]:
    """A valid client_credentials-only client, plus ``fields``."""
    return {"grant_types": ["client_credentials"], **fields}


def jwt_client(jwks: Any) -> dict[str, Any]:
    return service(token_endpoint_auth_method="private_key_jwt", jwks=jwks)


def reject(raw: dict[str, Any], settings: Settings, error: type[DCRError], field: str) -> DCRError:
    with pytest.raises(InvalidClientMetadataError) as info:
        validate_client_metadata(raw, settings)
    assert type(info.value) is error
    assert info.value.description.startswith(field + ":"), info.value.description
    return info.value


# --- field types -------------------------------------------------------------------------------

STRING_FIELDS = [
    "client_name",
    "software_id",
    "software_version",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "jwks_uri",
    "scope",
    "token_endpoint_auth_method",
]
LIST_FIELDS = ["grant_types", "response_types", "contacts"]
NOT_STRINGS = [
    pytest.param(123, id="int"),
    pytest.param(1.5, id="float"),
    pytest.param(True, id="bool"),
    pytest.param([], id="empty-list"),
    pytest.param(["x"], id="list"),
    pytest.param({}, id="object"),
    pytest.param("", id="empty-string"),
]
NOT_STRING_LISTS = [
    pytest.param("authorization_code", id="string"),
    pytest.param(123, id="int"),
    pytest.param({"a": "b"}, id="object"),
    pytest.param([1], id="list-of-int"),
    pytest.param([""], id="list-of-empty-string"),
    pytest.param([None], id="list-of-null"),
    pytest.param([["a"]], id="nested-list"),
    pytest.param(["\ud800"], id="lone-surrogate"),
]


@pytest.mark.parametrize("value", NOT_STRINGS)
@pytest.mark.parametrize("field", STRING_FIELDS)
def test_validate_client_metadata_rejects_non_string(field: str, value: Any) -> None:
    reject(web(**{field: value}), DEFAULT, InvalidClientMetadataError, field)


@pytest.mark.parametrize("field", ["client_name", "software_id", "software_version"])
def test_validate_client_metadata_rejects_lone_surrogate_in_text(field: str) -> None:
    reject(web(**{field: "bad \udc80"}), DEFAULT, InvalidClientMetadataError, field)


@pytest.mark.parametrize("value", NOT_STRING_LISTS)
@pytest.mark.parametrize("field", LIST_FIELDS)
def test_validate_client_metadata_rejects_non_string_list(field: str, value: Any) -> None:
    reject(web(**{field: value}), DEFAULT, InvalidClientMetadataError, field)


@pytest.mark.parametrize("field", LIST_FIELDS)
def test_validate_client_metadata_rejects_repeated_values(field: str) -> None:
    values = {"grant_types": "authorization_code", "response_types": "code"}
    item = values.get(field, "ops@example.com")
    reject(web(**{field: [item, item]}), DEFAULT, InvalidClientMetadataError, field)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(WEB, id="string"),
        pytest.param([1], id="list-of-int"),
        pytest.param({"uri": WEB}, id="object"),
        pytest.param([WEB, None], id="list-with-null"),
        pytest.param(123, id="int"),
    ],
)
def test_validate_client_metadata_rejects_non_string_redirect_uris(value: Any) -> None:
    reject({"redirect_uris": value}, DEFAULT, InvalidRedirectURIError, "redirect_uris")


def test_validate_client_metadata_rejects_empty_grant_types() -> None:
    reject(web(grant_types=[]), DEFAULT, InvalidClientMetadataError, "grant_types")


def test_validate_client_metadata_accepts_every_field() -> None:
    raw = web(
        client_name="Example",
        client_uri="https://app.example.com",
        logo_uri="https://app.example.com/logo.png",
        tos_uri="https://app.example.com/tos",
        policy_uri="https://app.example.com/privacy",
        contacts=["ops@example.com", "dev@example.com"],
        software_id="4NRB1-0XZABZI9E6-5SM3R",
        software_version="2.1",
        scope="openid profile",
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="client_secret_post",
        jwks_uri="https://app.example.com/jwks.json",
    )
    assert validate_client_metadata(raw, DEFAULT) == raw


def test_validate_client_metadata_does_not_modify_its_argument() -> None:
    raw = web(client_name=None, extra="dropped")
    before = copy.deepcopy(raw)
    validate_client_metadata(raw, DEFAULT)
    assert raw == before


# --- redirect URIs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param(WEB, id="https"),
        pytest.param("https://app.example.com/cb?tenant=1", id="https-query"),
        pytest.param("https://app.example.com:8443/cb", id="https-port"),
        pytest.param("HTTPS://APP.EXAMPLE.COM/cb", id="https-upper-case"),
        pytest.param("https://[2001:db8::1]/cb", id="https-ipv6"),
        pytest.param("http://127.0.0.1/cb", id="http-loopback-v4"),
        pytest.param("http://127.0.0.1:8080/cb", id="http-loopback-v4-port"),
        pytest.param("http://127.42.0.1/cb", id="http-loopback-v4-range"),
        pytest.param("http://[::1]:3000/cb", id="http-loopback-v6"),
        pytest.param("http://localhost/cb", id="http-localhost"),
        pytest.param("http://LOCALHOST:9000/cb", id="http-localhost-upper-case"),
        pytest.param("com.example.app:/cb", id="private-use-reverse-domain"),
        pytest.param("com.example.app:/oauth2redirect/example", id="private-use-long-path"),
        pytest.param("cursor://callback", id="private-use-authority"),
        pytest.param("myapp://auth/callback?x=1", id="private-use-query"),
    ],
)
def test_validate_client_metadata_accepts_redirect_uri(uri: str) -> None:
    metadata = validate_client_metadata({"redirect_uris": [uri]}, DEFAULT)
    assert metadata["redirect_uris"] == [uri]


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("", id="empty"),
        pytest.param("/cb", id="relative-path"),
        pytest.param("app.example.com/cb", id="no-scheme"),
        pytest.param("//app.example.com/cb", id="scheme-relative"),
        pytest.param("https://app.example.com/cb#frag", id="fragment"),
        pytest.param("https://app.example.com/cb#", id="empty-fragment"),
        pytest.param("https://user:pw@app.example.com/cb", id="userinfo"),
        pytest.param("https://app.example.com@evil.example/cb", id="userinfo-disguise"),
        pytest.param("https://app.example.com/c b", id="space"),
        pytest.param("https://app.example.com/cb\n", id="newline"),
        pytest.param("https://app.example.com\\@evil.example/", id="backslash"),
        pytest.param("https://app.example.com:99999/cb", id="bad-port"),
        pytest.param("https://app.example.com/<script>", id="angle-brackets"),
        pytest.param('https://app.example.com/"x"', id="double-quote"),
        pytest.param("https://app.example.com/{x}", id="braces"),
        pytest.param("https://app.example.com/caf\u00e9", id="non-ascii"),
        pytest.param("https://app.example.com/\ud800", id="lone-surrogate"),
        pytest.param("https:///cb", id="https-no-host"),
        pytest.param("http:/cb", id="http-no-host"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("JavaScript://example.com/%0Aalert(1)", id="javascript-authority"),
        pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
        pytest.param("vbscript:msgbox(1)", id="vbscript"),
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("http://app.example.com/cb", id="http-remote"),
        pytest.param("http://localhost.evil.example/cb", id="http-localhost-lookalike"),
        pytest.param("http://10.0.0.1/cb", id="http-private-ip"),
        pytest.param("http://0.0.0.0/cb", id="http-unspecified"),
        pytest.param("com.example.app:", id="private-use-no-path"),
        pytest.param("1app:/cb", id="bad-scheme"),
    ],
)
def test_validate_client_metadata_rejects_redirect_uri(uri: str) -> None:
    error = reject({"redirect_uris": [WEB, uri]}, DEFAULT, InvalidRedirectURIError, "redirect_uris")
    assert error.error == "invalid_redirect_uri"


@pytest.mark.parametrize(
    ("uri", "accepted"),
    [
        pytest.param("http://app.example.com/cb", True, id="http-remote"),
        pytest.param("javascript:alert(1)", False, id="javascript"),
        pytest.param("https://app.example.com/cb#x", False, id="fragment"),
        pytest.param("http://u:p@app.example.com/cb", False, id="userinfo"),
    ],
)
def test_validate_client_metadata_insecure_policy_allows_only_plain_http(
    uri: str, accepted: bool
) -> None:
    if accepted:
        assert validate_client_metadata({"redirect_uris": [uri]}, INSECURE)["redirect_uris"]
    else:
        reject({"redirect_uris": [uri]}, INSECURE, InvalidRedirectURIError, "redirect_uris")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({}, id="omitted"),
        pytest.param({"redirect_uris": None}, id="null"),
        pytest.param({"redirect_uris": []}, id="empty"),
        pytest.param({"grant_types": ["implicit"], "response_types": ["token"]}, id="implicit"),
    ],
)
def test_validate_client_metadata_requires_redirect_uris_for_redirect_flows(
    raw: dict[str, Any],
) -> None:
    reject(raw, WIDE, InvalidRedirectURIError, "redirect_uris")


def test_validate_client_metadata_redirect_uris_optional_without_redirect_flow() -> None:
    metadata = validate_client_metadata(service(redirect_uris=[]), DEFAULT)
    assert metadata["redirect_uris"] == []


def test_validate_client_metadata_rejects_repeated_redirect_uris() -> None:
    reject(web(redirect_uris=[WEB, WEB]), Settings(), InvalidRedirectURIError, "redirect_uris")


@pytest.mark.parametrize(
    ("uri", "accepted"),
    [
        pytest.param("https://app.example.com/cb", True, id="exact-host"),
        pytest.param("https://a.b.example.org/cb", True, id="wildcard-subdomain"),
        pytest.param("https://example.org/cb", False, id="wildcard-not-apex"),
        pytest.param("https://evil.example.net/cb", False, id="other-host"),
        pytest.param("https://app.example.com.evil.net/cb", False, id="suffix-trick"),
        pytest.param("http://127.0.0.1:9/cb", True, id="loopback-always"),
        pytest.param("cursor://callback", True, id="listed-scheme"),
        pytest.param("com.example.app:/cb", False, id="unlisted-scheme"),
    ],
)
def test_validate_client_metadata_allowed_redirect_hosts(uri: str, accepted: bool) -> None:
    settings = Settings(allowed_redirect_hosts=("app.example.com", "*.example.org", "cursor:"))
    raw = {"redirect_uris": [uri]}
    if accepted:
        assert validate_client_metadata(raw, settings)["redirect_uris"] == [uri]
    else:
        reject(raw, settings, InvalidRedirectURIError, "redirect_uris")


# --- grant types and response types (RFC 7591 §2.1) --------------------------------------------


@pytest.mark.parametrize(
    ("grants", "responses", "mentions"),
    [
        pytest.param(["client_credentials"], ["code"], "authorization_code", id="code-no-grant"),
        pytest.param(["authorization_code"], ["token"], "implicit", id="token-no-implicit"),
        pytest.param(["authorization_code"], [], "code", id="grant-no-code"),
        pytest.param(["implicit"], ["code"], "authorization_code", id="implicit-with-code"),
        pytest.param(["implicit"], [], "token", id="implicit-no-response"),
        pytest.param(
            ["authorization_code"], ["code id_token"], "implicit", id="hybrid-needs-implicit"
        ),
        pytest.param(["refresh_token"], ["id_token"], "implicit", id="id-token-no-implicit"),
    ],
)
def test_validate_client_metadata_rejects_inconsistent_grant_and_response_types(
    grants: list[str], responses: list[str], mentions: str
) -> None:
    raw = web(grant_types=grants, response_types=responses)
    error = reject(raw, WIDE, InvalidClientMetadataError, "grant_types/response_types")
    assert mentions in error.description
    assert "section 2.1" in error.description


@pytest.mark.parametrize(
    ("grants", "responses"),
    [
        pytest.param(["authorization_code"], ["code"], id="code"),
        pytest.param(["authorization_code", "refresh_token"], ["code"], id="code-refresh"),
        pytest.param(["implicit"], ["token"], id="implicit"),
        pytest.param(["authorization_code", "implicit"], ["code id_token"], id="hybrid"),
        pytest.param(["authorization_code", "implicit"], ["code", "token"], id="both"),
        pytest.param(["client_credentials"], [], id="client-credentials"),
        pytest.param(["client_credentials", "refresh_token"], [], id="cc-refresh"),
    ],
)
def test_validate_client_metadata_accepts_consistent_grant_and_response_types(
    grants: list[str], responses: list[str]
) -> None:
    metadata = validate_client_metadata(web(grant_types=grants, response_types=responses), WIDE)
    assert metadata["grant_types"] == grants
    assert metadata["response_types"] == responses


@pytest.mark.parametrize(
    ("grants", "responses"),
    [
        pytest.param(["authorization_code"], ["code"], id="code"),
        pytest.param(["implicit"], ["token"], id="implicit"),
        pytest.param(["authorization_code", "implicit"], ["code", "token"], id="both"),
        pytest.param(["client_credentials"], [], id="none"),
    ],
)
def test_validate_client_metadata_derives_response_types_from_grant_types(
    grants: list[str], responses: list[str]
) -> None:
    assert validate_client_metadata(web(grant_types=grants), WIDE)["response_types"] == responses


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("grant_types", ["authorization_code", "password"], id="grant"),
        pytest.param("grant_types", ["implicit"], id="grant-implicit"),
        pytest.param("response_types", ["token"], id="response"),
        pytest.param("token_endpoint_auth_method", "private_key_jwt", id="auth-method"),
        pytest.param("token_endpoint_auth_method", "tls_client_auth", id="unknown-auth-method"),
    ],
)
def test_validate_client_metadata_rejects_value_not_allowed(field: str, value: Any) -> None:
    error = reject(web(**{field: value}), DEFAULT, InvalidClientMetadataError, field)
    assert "not allowed" in error.description


# --- defaults, then policy ---------------------------------------------------------------------


def test_validate_client_metadata_applies_defaults() -> None:
    metadata = validate_client_metadata({"redirect_uris": [WEB]}, DEFAULT)
    assert metadata == {
        "redirect_uris": [WEB],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }


def test_validate_client_metadata_empty_object_valid_without_redirect_flow() -> None:
    assert validate_client_metadata({}, CC_ONLY) == {
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
    }


def test_validate_client_metadata_empty_object_needs_redirect_uris_by_default() -> None:
    reject({}, DEFAULT, InvalidRedirectURIError, "redirect_uris")


def test_validate_client_metadata_default_auth_method_checked_against_allowed() -> None:
    settings = Settings(allowed_auth_methods=("none",))
    error = reject(web(), settings, InvalidClientMetadataError, "token_endpoint_auth_method")
    assert "client_secret_basic" in error.description
    assert "default" in error.description
    assert validate_client_metadata(web(token_endpoint_auth_method="none"), settings)


def test_validate_client_metadata_derived_response_type_checked_against_allowed() -> None:
    settings = Settings(
        allowed_grant_types=("authorization_code", "implicit"),
        allowed_response_types=("code",),
    )
    error = reject(
        web(grant_types=["implicit"]), settings, InvalidClientMetadataError, "response_types"
    )
    assert "'token'" in error.description
    assert "derived" in error.description


def test_validate_client_metadata_default_grant_types_come_from_settings() -> None:
    settings = Settings(default_grant_types=("authorization_code", "refresh_token"))
    metadata = validate_client_metadata(web(), settings)
    assert metadata["grant_types"] == ["authorization_code", "refresh_token"]


def test_validate_client_metadata_default_scopes_applied_when_omitted() -> None:
    settings = Settings(allowed_scopes=("openid", "profile", "admin"), default_scopes=("openid",))
    assert validate_client_metadata(web(), settings)["scope"] == "openid"
    assert validate_client_metadata(web(scope="profile"), settings)["scope"] == "profile"


def test_validate_client_metadata_no_scope_without_default_scopes() -> None:
    assert "scope" not in validate_client_metadata(web(), DEFAULT)


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("a  b", id="double-space"),
        pytest.param(" a", id="leading-space"),
        pytest.param("a ", id="trailing-space"),
        pytest.param("a\tb", id="tab"),
        pytest.param('a"b', id="quote"),
        pytest.param("a\\b", id="backslash"),
        pytest.param("caf\u00e9", id="non-ascii"),
        pytest.param(" ", id="blank"),
    ],
)
def test_validate_client_metadata_rejects_scope_syntax(scope: str) -> None:
    reject(web(scope=scope), DEFAULT, InvalidClientMetadataError, "scope")


def test_validate_client_metadata_rejects_scope_not_allowed() -> None:
    settings = Settings(allowed_scopes=("openid", "email"))
    error = reject(web(scope="openid admin"), settings, InvalidClientMetadataError, "scope")
    assert "'admin'" in error.description
    assert validate_client_metadata(web(scope="email openid"), settings)["scope"] == "email openid"


def test_validate_client_metadata_accepts_any_scope_without_allowlist() -> None:
    scope = "read:all https://api.example.com/write x!#$"
    assert validate_client_metadata(web(scope=scope), DEFAULT)["scope"] == scope


# --- auth methods and keys ---------------------------------------------------------------------


def test_validate_client_metadata_rejects_none_with_client_credentials() -> None:
    raw = service(token_endpoint_auth_method="none")
    error = reject(raw, DEFAULT, InvalidClientMetadataError, "token_endpoint_auth_method")
    assert "client_credentials" in error.description


def test_validate_client_metadata_accepts_public_client_for_code_flow() -> None:
    metadata = validate_client_metadata(web(token_endpoint_auth_method="none"), DEFAULT)
    assert metadata["token_endpoint_auth_method"] == "none"


def test_validate_client_metadata_private_key_jwt_needs_keys() -> None:
    raw = service(token_endpoint_auth_method="private_key_jwt")
    reject(raw, WIDE, InvalidClientMetadataError, "token_endpoint_auth_method")
    with_uri = {**raw, "jwks_uri": "https://app.example.com/jwks.json"}
    assert validate_client_metadata(with_uri, WIDE)["jwks_uri"].endswith("jwks.json")


def test_validate_client_metadata_rejects_jwks_with_jwks_uri() -> None:
    raw = jwt_client({"keys": [EC.as_dict(private=False)]})
    raw["jwks_uri"] = "https://app.example.com/jwks.json"
    reject(raw, WIDE, InvalidClientMetadataError, "jwks")


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("http://app.example.com/jwks.json", id="http"),
        pytest.param("http://127.0.0.1/jwks.json", id="http-loopback"),
        pytest.param("jwks.json", id="relative"),
        pytest.param("https://app.example.com/jwks.json#k", id="fragment"),
    ],
)
def test_validate_client_metadata_rejects_jwks_uri(uri: str) -> None:
    reject(service(jwks_uri=uri), WIDE, InvalidClientMetadataError, "jwks_uri")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(RSA, id="rsa"),
        pytest.param(EC, id="ec"),
        pytest.param(OKP, id="okp"),
    ],
)
def test_validate_client_metadata_accepts_public_asymmetric_jwk(key: Any) -> None:
    jwks = {"keys": [key.as_dict(private=False)]}
    assert validate_client_metadata(jwt_client(jwks), WIDE)["jwks"] == jwks


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(RSA, id="rsa"),
        pytest.param(EC, id="ec"),
        pytest.param(OKP, id="okp"),
    ],
)
def test_validate_client_metadata_rejects_private_jwk(key: Any) -> None:
    jwks = {"keys": [key.as_dict(private=True)]}
    reject(jwt_client(jwks), WIDE, InvalidClientMetadataError, "jwks")


def test_validate_client_metadata_rejects_private_jwk_among_public_ones() -> None:
    jwks = {"keys": [EC.as_dict(private=False), RSA.as_dict(private=True)]}
    reject(jwt_client(jwks), WIDE, InvalidClientMetadataError, "jwks")


@pytest.mark.parametrize(
    "jwks",
    [
        pytest.param({"keys": [OctKey.generate_key(256).as_dict()]}, id="oct"),
        pytest.param({"keys": [{"kty": "oct", "alg": "HS256"}]}, id="oct-without-k"),
        pytest.param({"keys": []}, id="empty-keys"),
        pytest.param({}, id="no-keys"),
        pytest.param({"keys": "x"}, id="keys-string"),
        pytest.param({"keys": [1]}, id="keys-of-int"),
        pytest.param([EC.as_dict(private=False)], id="bare-list"),
        pytest.param("x", id="string"),
        pytest.param({"keys": [{"kty": "EC"}]}, id="ec-incomplete"),
        pytest.param({"keys": [{"kty": "RSA", "n": 123, "e": "AQAB"}]}, id="rsa-bad-n"),
        pytest.param({"keys": [{"kty": ["RSA"]}]}, id="kty-list"),
        pytest.param({"keys": [{"kty": {"RSA": 1}}]}, id="kty-object"),
        pytest.param({"keys": [{**EC.as_dict(private=False), "x": "!!"}]}, id="ec-bad-x"),
        pytest.param({"keys": [{**EC.as_dict(private=False), "use": 1}]}, id="bad-use"),
    ],
)
def test_validate_client_metadata_rejects_bad_jwks(jwks: Any) -> None:
    reject(jwt_client(jwks), WIDE, InvalidClientMetadataError, "jwks")


# --- human-readable fields and language tags (RFC 7591 §2.2) -----------------------------------


@pytest.mark.parametrize(
    "field",
    ["client_uri", "logo_uri", "tos_uri", "policy_uri"],
)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("app.example.com", id="relative"),
        pytest.param("ftp://app.example.com/x", id="ftp"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("https://app.example.com/#x", id="fragment"),
        pytest.param("https://u@app.example.com/", id="userinfo"),
    ],
)
def test_validate_client_metadata_rejects_web_url(field: str, value: str) -> None:
    reject(web(**{field: value}), DEFAULT, InvalidClientMetadataError, field)


def test_validate_client_metadata_keeps_language_tagged_fields() -> None:
    raw = web(
        client_name="My Client",
        **{
            "client_name#ja-Jpan-JP": "\u30af\u30e9\u30a4\u30a2\u30f3\u30c8\u540d",
            "client_name#en-US": "My Client",
            "logo_uri#fr": "https://app.example.com/logo-fr.png",
            "tos_uri#de-CH": "https://app.example.com/agb",
            "client_uri#zh-Hant-TW": "https://app.example.com/tw",
            "policy_uri#x-private": "https://app.example.com/p",
        },
    )
    metadata = validate_client_metadata(raw, DEFAULT)
    for key, value in raw.items():
        assert metadata[key] == value


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("client_name#", "x", id="empty-tag"),
        pytest.param("client_name#ja_JP", "x", id="underscore"),
        pytest.param("client_name#not a tag", "x", id="space"),
        pytest.param("client_name#toolongtag", "x", id="subtag-too-long"),
        pytest.param("client_name#en-", "x", id="trailing-dash"),
        pytest.param("client_name#en#fr", "x", id="two-hashes"),
        pytest.param("logo_uri#\u65e5\u672c", "https://a.example/l.png", id="non-ascii-tag"),
    ],
)
def test_validate_client_metadata_rejects_bad_language_tag(key: str, value: str) -> None:
    reject(web(**{key: value}), DEFAULT, InvalidClientMetadataError, key)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("client_name#fr", 5, id="name-int"),
        pytest.param("client_name#fr", "", id="name-empty"),
        pytest.param("client_uri#fr", "not a url", id="uri-not-url"),
        pytest.param("logo_uri#fr", ["https://a.example/l.png"], id="uri-list"),
        pytest.param("tos_uri#fr", "javascript:alert(1)", id="uri-javascript"),
    ],
)
def test_validate_client_metadata_rejects_bad_language_tagged_value(key: str, value: Any) -> None:
    reject(web(**{key: value}), DEFAULT, InvalidClientMetadataError, key)


def test_validate_client_metadata_drops_unknown_fields() -> None:
    raw = web(
        foo="bar",
        client_id="chosen-by-attacker",
        client_secret="chosen-by-attacker",
        client_id_issued_at=1,
        client_secret_expires_at=0,
        registration_access_token="x",
        **{"scope#en": "openid", "contacts#fr": ["x"], "unknown#en": 1},
    )
    assert validate_client_metadata(raw, DEFAULT) == validate_client_metadata(web(), DEFAULT)


def test_validate_client_metadata_treats_null_as_omitted() -> None:
    raw = web(
        client_name=None,
        token_endpoint_auth_method=None,
        grant_types=None,
        response_types=None,
        scope=None,
        jwks=None,
        jwks_uri=None,
        contacts=None,
        **{"client_name#fr": None},
    )
    assert validate_client_metadata(raw, DEFAULT) == validate_client_metadata(web(), DEFAULT)


def test_validate_client_metadata_error_description_is_bounded() -> None:
    uri = "javascript:" + "a" * 10_000
    error = reject({"redirect_uris": [uri]}, DEFAULT, InvalidRedirectURIError, "redirect_uris")
    assert len(error.description) < 400


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"grant_types": ["client_credentials"], "scope": "read\n"}, id="scope"),
        pytest.param({"redirect_uris": [WEB], "client_name#en\n": "x"}, id="language-tag"),
    ],
)
def test_validate_client_metadata_trailing_newline_is_not_a_match(raw: dict[str, Any]) -> None:
    # Patterns end in \Z, not $: "$" would also match just before a final newline.
    field = next(k for k in raw if k != "redirect_uris" and k != "grant_types")
    reject(raw, Settings(), InvalidClientMetadataError, field)


def _rsa_jwk(bits: int) -> dict[str, Any]:
    # Built with cryptography directly: joserfc warns (SecurityWarning) on small RSA keys.
    import base64

    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(65537, bits).public_key().public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e)}


@pytest.mark.parametrize("bits", [1024, 2040])
def test_validate_client_metadata_rejects_small_rsa_keys(bits: int) -> None:
    # Refused before joserfc sees them: its SecurityWarning would be a 500 under -W error
    # (found by the property tests; pytest runs with warnings as errors, so this also checks
    # that no warning is raised).
    refused = reject(
        jwt_client({"keys": [_rsa_jwk(bits)]}), WIDE, InvalidClientMetadataError, "jwks"
    )
    assert "at least 2048 bits" in refused.description


def test_validate_client_metadata_accepts_a_2048_bit_rsa_key() -> None:
    assert validate_client_metadata(jwt_client({"keys": [_rsa_jwk(2048)]}), WIDE)["jwks"]
