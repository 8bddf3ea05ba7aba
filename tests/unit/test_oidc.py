"""OpenID Connect Registration 1.0 §2 metadata: types, defaults, policy, application_type rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dcr_middleware.core import oidc
from dcr_middleware.core.client_metadata import validate_client_metadata
from dcr_middleware.core.errors import (
    ConfigurationError,
    DCRError,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
)
from dcr_middleware.core.settings import Settings

WEB = "https://app.example.com/cb"
ICM = InvalidClientMetadataError
IRU = InvalidRedirectURIError
DEFAULT = Settings()
# A server that supports every OIDC flow and the algorithms the cases use.
OIDC = Settings(
    allowed_grant_types=("authorization_code", "implicit", "refresh_token", "client_credentials"),
    allowed_response_types=("code", "id_token", "id_token token", "code id_token", "none"),
    allowed_auth_methods=(
        "none",
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    ),
    allowed_signing_algs=("RS256", "ES256", "PS256", "EdDSA", "HS256", "none"),
    allowed_subject_types=("public", "pairwise"),
)
NO_ENCRYPTION = Settings(allowed_encryption_algs=(), allowed_encryption_encs=())
EC_PUBLIC = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}
IMPLICIT = {"grant_types": ["implicit"], "response_types": ["id_token"]}
PRIVATE_KEY_JWT = {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [EC_PUBLIC]}}


def web(**fields: Any) -> dict[str, Any]:
    """A valid authorization-code client, plus ``fields``."""
    return {"redirect_uris": [WEB], **fields}


def native(*uris: str, **fields: Any) -> dict[str, Any]:
    return {"application_type": "native", "redirect_uris": list(uris), **fields}


ACCEPTED = [
    pytest.param(web(), DEFAULT, {}, id="oauth-client-gets-no-oidc-defaults"),
    pytest.param(web(application_type="web"), DEFAULT, {"application_type": "web"}, id="web"),
    pytest.param(
        native("com.example.app:/cb", "http://127.0.0.1:5000/cb", "http://[::1]/cb"),
        DEFAULT,
        {"application_type": "native"},
        id="native-custom-scheme-and-loopback",
    ),
    pytest.param(native("http://localhost:8080/cb"), DEFAULT, {}, id="native-localhost-http"),
    # Web without the implicit grant keeps the RFC 8252 rules: MCP clients never send
    # application_type, and they register loopback and private-use redirect URIs.
    pytest.param(
        web(redirect_uris=["http://127.0.0.1:3000/cb", "cursor://cb"]),
        DEFAULT,
        {},
        id="web-default-code-loopback-and-custom-scheme",
    ),
    pytest.param(web(**IMPLICIT, application_type="web"), OIDC, {}, id="web-implicit-https"),
    pytest.param(
        web(
            grant_types=["authorization_code", "implicit"],
            response_types=["code id_token"],
            id_token_signed_response_alg="ES256",
        ),
        OIDC,
        {"id_token_signed_response_alg": "ES256"},
        id="hybrid-signed-id-token",
    ),
    pytest.param(
        web(subject_type="public"), DEFAULT, {"subject_type": "public"}, id="subject-public"
    ),
    pytest.param(
        web(subject_type="pairwise", redirect_uris=[WEB, "https://app.example.com/b"]),
        OIDC,
        {"subject_type": "pairwise"},
        id="subject-pairwise-one-host",
    ),
    pytest.param(
        web(id_token_encrypted_response_alg="RSA-OAEP-256"),
        DEFAULT,
        {
            "id_token_encrypted_response_alg": "RSA-OAEP-256",
            "id_token_encrypted_response_enc": "A128CBC-HS256",
        },
        id="id-token-enc-defaulted",
    ),
    pytest.param(
        web(userinfo_encrypted_response_alg="ECDH-ES", userinfo_encrypted_response_enc="A256GCM"),
        DEFAULT,
        {"userinfo_encrypted_response_enc": "A256GCM"},
        id="userinfo-enc-given",
    ),
    pytest.param(
        web(request_object_encryption_alg="RSA-OAEP"),
        DEFAULT,
        {"request_object_encryption_enc": "A128CBC-HS256"},
        id="request-object-enc-defaulted",
    ),
    pytest.param(
        web(userinfo_signed_response_alg="PS256", request_object_signing_alg="EdDSA"),
        DEFAULT,
        {"userinfo_signed_response_alg": "PS256", "request_object_signing_alg": "EdDSA"},
        id="signing-algs",
    ),
    pytest.param(
        web(request_object_signing_alg="none"),
        OIDC,
        {"request_object_signing_alg": "none"},
        id="request-object-none-when-allowed",
    ),
    pytest.param(
        web(**PRIVATE_KEY_JWT, token_endpoint_auth_signing_alg="ES256"),
        OIDC,
        {"token_endpoint_auth_signing_alg": "ES256"},
        id="auth-signing-alg-private-key-jwt",
    ),
    pytest.param(
        web(
            token_endpoint_auth_method="client_secret_jwt", token_endpoint_auth_signing_alg="HS256"
        ),
        OIDC,
        {"token_endpoint_auth_signing_alg": "HS256"},
        id="auth-signing-alg-client-secret-jwt",
    ),
    pytest.param(
        web(default_max_age=0, require_auth_time=False, default_acr_values=["urn:mace:loa:1"]),
        DEFAULT,
        {
            "default_max_age": 0,
            "require_auth_time": False,
            "default_acr_values": ["urn:mace:loa:1"],
        },
        id="max-age-auth-time-acr",
    ),
    pytest.param(
        web(default_acr_values=[]), DEFAULT, {"default_acr_values": []}, id="acr-values-empty"
    ),
    pytest.param(
        web(
            initiate_login_uri="https://app.example.com/login",
            request_uris=[
                "https://app.example.com/req.jwt#GkurKxf5T0Y-mnPFCHqWOMiZi4VS138cQO_V7PZHAdM"
            ],
            post_logout_redirect_uris=["https://app.example.com/bye", "http://127.0.0.1/bye"],
        ),
        DEFAULT,
        {"post_logout_redirect_uris": ["https://app.example.com/bye", "http://127.0.0.1/bye"]},
        id="login-request-and-logout-uris",
    ),
    pytest.param(
        web(application_type=None, subject_type=None), DEFAULT, {}, id="json-nulls-dropped"
    ),
]

REFUSED = [
    pytest.param(
        web(sector_identifier_uri="https://app.example.com/sector.json"),
        DEFAULT,
        ICM,
        "sector_identifier_uri is not supported",
        id="sector-identifier-uri",
    ),
    pytest.param(web(application_type="desktop"), DEFAULT, ICM, "application_type:", id="type-app"),
    pytest.param(
        web(application_type=["web"]), DEFAULT, ICM, "application_type:", id="type-app-list"
    ),
    pytest.param(native(WEB), DEFAULT, IRU, "redirect_uris:", id="native-https"),
    pytest.param(
        native("http://127.0.0.2/cb"), DEFAULT, IRU, "redirect_uris:", id="native-other-loopback"
    ),
    pytest.param(
        native("http://app.example.com/cb"),
        Settings(allow_insecure_redirect_uris=True),
        IRU,
        "redirect_uris:",
        id="native-remote-http-even-if-insecure-allowed",
    ),
    pytest.param(
        web(**IMPLICIT, redirect_uris=["http://127.0.0.1/cb"]),
        OIDC,
        IRU,
        "redirect_uris:",
        id="web-implicit-http",
    ),
    pytest.param(
        web(**IMPLICIT, redirect_uris=["https://localhost/cb"]),
        OIDC,
        IRU,
        "redirect_uris:",
        id="web-implicit-localhost",
    ),
    pytest.param(
        web(**IMPLICIT, redirect_uris=["com.example.app:/cb"]),
        OIDC,
        IRU,
        "redirect_uris:",
        id="web-implicit-custom-scheme",
    ),
    pytest.param(
        {"grant_types": ["authorization_code", "implicit"], "response_types": ["code id_token"]},
        OIDC,
        IRU,
        "redirect_uris:",
        id="hybrid-without-redirect-uris",
    ),
    pytest.param(
        {"grant_types": ["client_credentials"], "response_types": ["none"]},
        OIDC,
        IRU,
        "redirect_uris:",
        id="response-type-none-without-redirect-uris",
    ),
    pytest.param(web(subject_type="pairwise"), DEFAULT, ICM, "subject_type:", id="pairwise-off"),
    pytest.param(web(subject_type="secret"), OIDC, ICM, "subject_type:", id="subject-unknown"),
    pytest.param(web(subject_type=1), OIDC, ICM, "subject_type:", id="subject-number"),
    pytest.param(
        web(subject_type="pairwise", redirect_uris=[WEB, "https://other.example.com/cb"]),
        OIDC,
        ICM,
        "subject_type:",
        id="pairwise-two-hosts",
    ),
    pytest.param(
        web(**IMPLICIT, id_token_signed_response_alg="none"),
        OIDC,
        ICM,
        "id_token_signed_response_alg:",
        id="id-token-none-implicit",
    ),
    pytest.param(
        web(id_token_signed_response_alg="HS512"),
        OIDC,
        ICM,
        "id_token_signed_response_alg:",
        id="id-token-alg-not-supported",
    ),
    pytest.param(
        web(id_token_signed_response_alg="none"),
        DEFAULT,
        ICM,
        "id_token_signed_response_alg:",
        id="id-token-none-not-in-server-list",
    ),
    pytest.param(
        web(id_token_signed_response_alg=["RS256"]),
        DEFAULT,
        ICM,
        "id_token_signed_response_alg:",
        id="id-token-alg-list",
    ),
    pytest.param(
        web(userinfo_signed_response_alg="RS1"),
        DEFAULT,
        ICM,
        "userinfo_signed_response_alg:",
        id="userinfo-alg-unknown",
    ),
    pytest.param(
        web(request_object_signing_alg=""),
        DEFAULT,
        ICM,
        "request_object_signing_alg:",
        id="request-object-alg-empty",
    ),
    pytest.param(
        web(**PRIVATE_KEY_JWT, token_endpoint_auth_signing_alg="none"),
        OIDC,
        ICM,
        "token_endpoint_auth_signing_alg:",
        id="auth-signing-alg-none",
    ),
    pytest.param(
        web(token_endpoint_auth_signing_alg="RS256"),
        DEFAULT,
        ICM,
        "token_endpoint_auth_signing_alg:",
        id="auth-signing-alg-without-jwt-method",
    ),
    pytest.param(
        web(**PRIVATE_KEY_JWT, token_endpoint_auth_signing_alg="HS256"),
        OIDC,
        ICM,
        "token_endpoint_auth_signing_alg:",
        id="auth-signing-alg-hmac-for-private-key-jwt",
    ),
    pytest.param(
        web(
            token_endpoint_auth_method="client_secret_jwt", token_endpoint_auth_signing_alg="RS256"
        ),
        OIDC,
        ICM,
        "token_endpoint_auth_signing_alg:",
        id="auth-signing-alg-rsa-for-client-secret-jwt",
    ),
    pytest.param(
        web(id_token_encrypted_response_enc="A128GCM"),
        DEFAULT,
        ICM,
        "id_token_encrypted_response_enc:",
        id="enc-without-alg",
    ),
    pytest.param(
        web(userinfo_encrypted_response_enc="A128GCM"),
        DEFAULT,
        ICM,
        "userinfo_encrypted_response_enc:",
        id="userinfo-enc-without-alg",
    ),
    pytest.param(
        web(request_object_encryption_enc="A128GCM"),
        DEFAULT,
        ICM,
        "request_object_encryption_enc:",
        id="request-object-enc-without-alg",
    ),
    pytest.param(
        web(id_token_encrypted_response_alg="RSA1_5"),
        DEFAULT,
        ICM,
        "id_token_encrypted_response_alg:",
        id="enc-alg-not-supported",
    ),
    pytest.param(
        web(userinfo_encrypted_response_alg="RSA-OAEP", userinfo_encrypted_response_enc="A192GCM"),
        DEFAULT,
        ICM,
        "userinfo_encrypted_response_enc:",
        id="enc-not-supported",
    ),
    pytest.param(
        web(id_token_encrypted_response_alg="RSA-OAEP"),
        NO_ENCRYPTION,
        ICM,
        "id_token_encrypted_response_alg:",
        id="encryption-off",
    ),
    pytest.param(web(default_max_age=-1), DEFAULT, ICM, "default_max_age:", id="max-age-negative"),
    pytest.param(web(default_max_age=1.5), DEFAULT, ICM, "default_max_age:", id="max-age-float"),
    pytest.param(web(default_max_age=True), DEFAULT, ICM, "default_max_age:", id="max-age-bool"),
    pytest.param(web(default_max_age="60"), DEFAULT, ICM, "default_max_age:", id="max-age-string"),
    pytest.param(
        web(require_auth_time="true"), DEFAULT, ICM, "require_auth_time:", id="auth-time-string"
    ),
    pytest.param(web(require_auth_time=1), DEFAULT, ICM, "require_auth_time:", id="auth-time-int"),
    pytest.param(
        web(default_acr_values="1"), DEFAULT, ICM, "default_acr_values:", id="acr-values-string"
    ),
    pytest.param(
        web(default_acr_values=[1]), DEFAULT, ICM, "default_acr_values:", id="acr-values-number"
    ),
    pytest.param(
        web(default_acr_values=["a", "a"]), DEFAULT, ICM, "default_acr_values:", id="acr-repeated"
    ),
    pytest.param(
        web(initiate_login_uri="http://app.example.com/login"),
        DEFAULT,
        ICM,
        "initiate_login_uri:",
        id="login-uri-http",
    ),
    pytest.param(
        web(initiate_login_uri=["https://app.example.com/login"]),
        DEFAULT,
        ICM,
        "initiate_login_uri:",
        id="login-uri-list",
    ),
    pytest.param(
        web(request_uris="https://app.example.com/r"), DEFAULT, ICM, "request_uris:", id="req-str"
    ),
    pytest.param(
        web(request_uris=["http://app.example.com/r"]), DEFAULT, ICM, "request_uris:", id="req-http"
    ),
    pytest.param(
        web(request_uris=["https://app.example.com/r#a b"]),
        DEFAULT,
        ICM,
        "request_uris:",
        id="req-bad-fragment",
    ),
    pytest.param(
        web(request_uris=["https://app.example.com/r#a#b"]),
        DEFAULT,
        ICM,
        "request_uris:",
        id="req-two-fragments",
    ),
    pytest.param(
        web(post_logout_redirect_uris="https://app.example.com/bye"),
        DEFAULT,
        IRU,
        "post_logout_redirect_uris:",
        id="logout-string",
    ),
    pytest.param(
        web(post_logout_redirect_uris=["http://app.example.com/bye"]),
        DEFAULT,
        IRU,
        "post_logout_redirect_uris:",
        id="logout-remote-http",
    ),
    pytest.param(
        web(post_logout_redirect_uris=["javascript:alert(1)"]),
        DEFAULT,
        IRU,
        "post_logout_redirect_uris:",
        id="logout-javascript",
    ),
    pytest.param(
        web(post_logout_redirect_uris=[WEB, WEB]),
        DEFAULT,
        IRU,
        "post_logout_redirect_uris:",
        id="logout-repeated",
    ),
    pytest.param(
        native("http://127.0.0.1/cb", post_logout_redirect_uris=[WEB]),
        DEFAULT,
        IRU,
        "post_logout_redirect_uris:",
        id="logout-native-https",
    ),
    pytest.param(
        web(post_logout_redirect_uris=["https://evil.example/bye"]),
        Settings(allowed_redirect_hosts=("app.example.com",)),
        IRU,
        "post_logout_redirect_uris:",
        id="logout-host-not-allowed",
    ),
    pytest.param(
        web(request_uris=[f"https://app.example.com/{n}" for n in range(3)]),
        Settings(max_redirect_uris=2),
        ICM,
        "request_uris:",
        id="request-uris-over-cap",
    ),
    pytest.param(
        web(post_logout_redirect_uris=[f"https://app.example.com/{n}" for n in range(3)]),
        Settings(max_redirect_uris=2),
        IRU,
        "post_logout_redirect_uris:",
        id="logout-uris-over-cap",
    ),
    pytest.param(
        web(initiate_login_uri="https://app.example.com/" + "x" * 3000),
        DEFAULT,
        ICM,
        "initiate_login_uri:",
        id="string-too-long",
    ),
]


@pytest.mark.parametrize(("raw", "settings_", "expected"), ACCEPTED)
def test_validate_client_metadata_accepts_oidc_metadata(
    raw: dict[str, Any], settings_: Settings, expected: dict[str, Any]
) -> None:
    registered = validate_client_metadata(raw, settings_)

    for name, value in expected.items():
        assert registered[name] == value, name
    for name, value in raw.items():
        if name in oidc.CLAIMS:
            # Everything sent is echoed unchanged (JSON nulls are treated as omitted).
            assert registered.get(name) == value, name


def test_validate_client_metadata_writes_no_oidc_defaults_for_oauth_clients() -> None:
    registered = validate_client_metadata(web(), DEFAULT)

    assert not set(oidc.CLAIMS) & set(registered)


@pytest.mark.parametrize(("raw", "settings_", "error", "mentions"), REFUSED)
def test_validate_client_metadata_refuses_bad_oidc_metadata(
    raw: dict[str, Any], settings_: Settings, error: type[DCRError], mentions: str
) -> None:
    with pytest.raises(InvalidClientMetadataError) as info:
        validate_client_metadata(raw, settings_)

    assert type(info.value) is error
    assert info.value.description.startswith(mentions), info.value.description


@pytest.mark.parametrize(
    ("uri", "kind", "implicit", "ok"),
    [
        pytest.param("https://a.example/cb", "web", False, True, id="web-https"),
        pytest.param("http://localhost/cb", "web", False, True, id="web-loopback-code"),
        pytest.param("https://a.example/cb", "web", True, True, id="web-implicit-https"),
        pytest.param("https://LOCALHOST/cb", "web", True, False, id="web-implicit-localhost-case"),
        pytest.param("https://[::1]/cb", "web", True, False, id="web-implicit-ipv6-loopback"),
        pytest.param("http://localhost/cb", "native", False, True, id="native-localhost"),
        pytest.param("http://[::1]:80/cb", "native", True, True, id="native-ipv6"),
        pytest.param("com.example:/cb", "native", False, True, id="native-custom"),
        pytest.param("HTTPS://a.example/cb", "native", False, False, id="native-https-upper"),
    ],
)
def test_application_type_problem(uri: str, kind: str, implicit: bool, ok: bool) -> None:
    assert (oidc.application_type_problem(uri, kind, implicit=implicit) is None) is ok


# --- settings ----------------------------------------------------------------------------------


def test_settings_oidc_defaults() -> None:
    assert DEFAULT.allowed_signing_algs == ("RS256", "ES256", "PS256", "EdDSA")
    assert "RSA-OAEP-256" in DEFAULT.allowed_encryption_algs
    assert oidc.DEFAULT_ENC in DEFAULT.allowed_encryption_encs
    assert DEFAULT.allowed_subject_types == ("public",)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        pytest.param(
            {"allowed_signing_algs": ("ES256",)}, "DCR_ALLOWED_SIGNING_ALGS", id="no-rs256"
        ),
        pytest.param(
            {"allowed_signing_algs": ("RS256", "RS 256")}, "DCR_ALLOWED_SIGNING_ALGS", id="blank"
        ),
        pytest.param(
            {"allowed_encryption_algs": ("none",)}, "DCR_ALLOWED_ENCRYPTION_ALGS", id="enc-alg-none"
        ),
        pytest.param(
            {"allowed_encryption_encs": ("A256GCM",)},
            "DCR_ALLOWED_ENCRYPTION_ENCS",
            id="no-default-enc",
        ),
        pytest.param(
            {"allowed_subject_types": ("public", "secret")},
            "DCR_ALLOWED_SUBJECT_TYPES",
            id="unknown-subject-type",
        ),
        pytest.param({"allowed_subject_types": ()}, "DCR_ALLOWED_SUBJECT_TYPES", id="no-subject"),
    ],
)
def test_settings_oidc_lists_checked(overrides: dict[str, Any], variable: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings(**overrides)

    assert any(problem.startswith(variable + ":") for problem in info.value.problems)


def test_settings_oidc_encryption_off_is_allowed() -> None:
    assert NO_ENCRYPTION.allowed_encryption_algs == ()


# --- property: whatever is sent, a dict or one of our errors -----------------------------------

PROPERTY = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
URIS = [WEB, "http://127.0.0.1/cb", "http://[::1]/cb", "com.example.app:/cb", "http://a.example/"]
ALGS = ["RS256", "ES256", "HS256", "none", "RSA-OAEP", "A128CBC-HS256", "A256GCM", ""]
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
plausible: dict[str, st.SearchStrategy[Any]] = {
    "application_type": st.sampled_from(["web", "native", "other"]),
    "subject_type": st.sampled_from(["public", "pairwise", "x"]),
    "default_max_age": st.integers(min_value=-2, max_value=10**6),
    "require_auth_time": st.booleans(),
    "default_acr_values": st.lists(st.text(max_size=5), max_size=3),
    "initiate_login_uri": st.sampled_from(URIS),
    "request_uris": st.lists(st.sampled_from([*URIS, WEB + "#h"]), max_size=2),
    "post_logout_redirect_uris": st.lists(st.sampled_from(URIS), max_size=2),
    "grant_types": st.sampled_from([["authorization_code"], ["implicit"], ["client_credentials"]]),
    "response_types": st.sampled_from([["code"], ["id_token"], ["none"], []]),
    "token_endpoint_auth_method": st.sampled_from(["client_secret_jwt", "private_key_jwt", "none"]),
}
for _alg_field in [*oidc.SIGNING_FIELDS, *(f for pair in oidc.ENCRYPTION_FIELDS for f in pair)]:
    plausible[_alg_field] = st.sampled_from(ALGS)
KEYS = sorted(plausible)


@st.composite
def oidc_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        obj["redirect_uris"] = draw(st.lists(st.sampled_from(URIS), min_size=1, max_size=2))
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=6, unique=True)):
        obj[key] = draw(plausible[key] if draw(st.booleans()) else json_like)
    return obj


def check_accepted(metadata: dict[str, Any], settings_: Settings) -> None:
    kind = metadata.get("application_type", "web")
    implicit = "implicit" in metadata["grant_types"]
    for uri in [*metadata.get("redirect_uris", []), *metadata.get("post_logout_redirect_uris", [])]:
        assert oidc.application_type_problem(uri, kind, implicit=implicit) is None
    if metadata["response_types"]:
        assert metadata["redirect_uris"]
    for field in oidc.SIGNING_FIELDS:
        if field in metadata:
            assert metadata[field] in settings_.allowed_signing_algs
    id_tokens = any("id_token" in r.split() for r in metadata["response_types"])
    assert not (id_tokens and metadata.get("id_token_signed_response_alg") == "none")
    assert metadata.get("token_endpoint_auth_signing_alg") != "none"
    for alg_field, enc_field in oidc.ENCRYPTION_FIELDS:
        assert (alg_field in metadata) == (enc_field in metadata)
        if alg_field in metadata:
            assert metadata[alg_field] in settings_.allowed_encryption_algs
            assert metadata[enc_field] in settings_.allowed_encryption_encs
    assert "sector_identifier_uri" not in metadata


@PROPERTY
@given(raw=oidc_objects(), settings_=st.sampled_from([DEFAULT, OIDC, NO_ENCRYPTION]))
def test_property_oidc_metadata_gives_dict_or_our_error(
    raw: dict[str, Any], settings_: Settings
) -> None:
    try:
        metadata = validate_client_metadata(raw, settings_)
    except DCRError as exc:
        assert exc.description
        event(f"rejected: {type(exc).__name__}")
        return
    event("accepted")
    check_accepted(metadata, settings_)
