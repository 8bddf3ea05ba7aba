"""RFC 8414 / OIDC discovery fields derived from the settings (dcr_middleware.core.server_metadata),
and the metadata endpoint's answers (dcr_middleware.core.metadata_endpoint) without an adapter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dcr_middleware import Settings, authorization_server_metadata
from dcr_middleware.core.admission import RequestHead
from dcr_middleware.core.errors import ConfigurationError
from dcr_middleware.core.metadata_endpoint import MetadataEndpoint
from dcr_middleware.core.server_metadata import well_known_path

ISSUER = "https://auth.example.com"
ENDPOINTS = {
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
}
SERVING = Settings(serve_metadata=True, issuer=ISSUER, **ENDPOINTS)


def test_discovery_default_settings_give_the_policy_fields() -> None:
    document = authorization_server_metadata(Settings(), issuer=ISSUER)
    assert document == {
        "issuer": ISSUER,
        "registration_endpoint": f"{ISSUER}/register",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
    }


def test_discovery_issuer_defaults_to_dcr_issuer_and_endpoints_to_their_settings() -> None:
    settings = Settings(issuer=ISSUER + "/", path="/oauth/register", **ENDPOINTS)
    document = authorization_server_metadata(settings)
    # RFC 8414 §3.3: the issuer exactly as configured; the endpoint without the double slash.
    assert document["issuer"] == ISSUER + "/"
    assert document["registration_endpoint"] == f"{ISSUER}/oauth/register"
    assert document["authorization_endpoint"] == ENDPOINTS["authorization_endpoint"]
    assert document["token_endpoint"] == ENDPOINTS["token_endpoint"]


def test_discovery_issuer_argument_wins_over_dcr_issuer() -> None:
    document = authorization_server_metadata(
        Settings(issuer=ISSUER), issuer="http://localhost:8000"
    )
    assert document["issuer"] == "http://localhost:8000"
    assert document["registration_endpoint"] == "http://localhost:8000/register"


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param(None, id="none"),
        pytest.param("auth.example.com", id="relative"),
        pytest.param("ftp://auth.example.com", id="scheme"),
        pytest.param("https://auth.example.com?tenant=1", id="query"),
        pytest.param("https://auth.example.com#x", id="fragment"),
    ],
)
def test_discovery_refuses_a_missing_or_bad_issuer(issuer: str | None) -> None:
    with pytest.raises(ValueError, match="issuer"):
        authorization_server_metadata(Settings(), issuer=issuer)


def test_discovery_caller_fields_win_and_none_removes_a_field() -> None:
    document = authorization_server_metadata(
        Settings(issuer=ISSUER, **ENDPOINTS),
        token_endpoint="https://other.example.com/token",
        jwks_uri=f"{ISSUER}/jwks",
        grant_types_supported=["authorization_code"],
        code_challenge_methods_supported=None,
        not_there=None,
    )
    assert document["token_endpoint"] == "https://other.example.com/token"
    assert document["jwks_uri"] == f"{ISSUER}/jwks"
    assert document["grant_types_supported"] == ["authorization_code"]
    assert "code_challenge_methods_supported" not in document
    assert "not_there" not in document
    assert document["authorization_endpoint"] == ENDPOINTS["authorization_endpoint"]


@pytest.mark.parametrize(
    ("allowed_scopes", "expected"),
    [
        pytest.param(None, None, id="unset"),
        pytest.param((), [], id="empty-tuple-allows-none"),
        pytest.param(("read", "write"), ["read", "write"], id="listed"),
    ],
)
def test_discovery_scopes_supported_only_when_scopes_are_restricted(
    allowed_scopes: tuple[str, ...] | None, expected: list[str] | None
) -> None:
    document = authorization_server_metadata(Settings(allowed_scopes=allowed_scopes), issuer=ISSUER)
    assert document.get("scopes_supported") == expected


@pytest.mark.parametrize(
    ("methods", "expected"),
    [
        pytest.param(("client_secret_basic",), None, id="no-jwt-method"),
        pytest.param(("private_key_jwt",), ["RS256", "ES256"], id="private-key-jwt"),
        pytest.param(("client_secret_jwt",), ["HS256"], id="client-secret-jwt"),
        pytest.param(
            ("private_key_jwt", "client_secret_jwt"), ["RS256", "HS256", "ES256"], id="both"
        ),
    ],
)
def test_discovery_auth_signing_algs_follow_the_jwt_methods(
    methods: tuple[str, ...], expected: list[str] | None
) -> None:
    settings = Settings(
        allowed_auth_methods=methods,
        default_grant_types=(),
        allowed_signing_algs=("RS256", "HS256", "ES256", "none"),
    )
    document = authorization_server_metadata(settings, issuer=ISSUER)
    # RFC 8414 §2: present when a JWT method is listed, and "none" MUST NOT be used.
    assert document.get("token_endpoint_auth_signing_alg_values_supported") == expected


def test_discovery_code_challenge_methods_only_with_the_authorization_code_grant() -> None:
    machine = Settings(
        allowed_grant_types=("client_credentials",),
        default_grant_types=("client_credentials",),
        allowed_response_types=(),
    )
    assert "code_challenge_methods_supported" not in authorization_server_metadata(
        machine, issuer=ISSUER
    )
    off = Settings(code_challenge_methods=())
    assert "code_challenge_methods_supported" not in authorization_server_metadata(
        off, issuer=ISSUER
    )


def test_discovery_openid_fields_when_openid_is_an_allowed_scope() -> None:
    settings = Settings(
        allowed_scopes=("openid", "profile"),
        allowed_subject_types=("public", "pairwise"),
        allowed_encryption_algs=("RSA-OAEP-256",),
        allowed_encryption_encs=("A128CBC-HS256",),
    )
    document = authorization_server_metadata(settings, issuer=ISSUER)
    assert document["subject_types_supported"] == ["public", "pairwise"]
    for prefix in ("id_token", "userinfo", "request_object"):
        assert document[f"{prefix}_signing_alg_values_supported"] == list(
            settings.allowed_signing_algs
        )
        assert document[f"{prefix}_encryption_alg_values_supported"] == ["RSA-OAEP-256"]
        assert document[f"{prefix}_encryption_enc_values_supported"] == ["A128CBC-HS256"]


def test_discovery_openid_fields_follow_the_argument_and_encryption_off() -> None:
    settings = Settings(allowed_encryption_algs=())
    assert "subject_types_supported" not in authorization_server_metadata(settings, issuer=ISSUER)
    document = authorization_server_metadata(settings, issuer=ISSUER, openid=True)
    assert document["id_token_signing_alg_values_supported"][0] == "RS256"
    assert not any("encryption" in name for name in document)
    scoped = Settings(allowed_scopes=("openid",))
    assert "subject_types_supported" not in authorization_server_metadata(
        scoped, issuer=ISSUER, openid=False
    )


def test_discovery_document_lists_are_copies() -> None:
    settings = Settings()
    document = authorization_server_metadata(settings, issuer=ISSUER)
    document["grant_types_supported"].append("implicit")
    assert authorization_server_metadata(settings, issuer=ISSUER)["grant_types_supported"] == list(
        settings.allowed_grant_types
    )


@pytest.mark.parametrize(
    ("issuer", "path"),
    [
        pytest.param(ISSUER, "/.well-known/oauth-authorization-server", id="root"),
        pytest.param(ISSUER + "/", "/.well-known/oauth-authorization-server", id="slash"),
        pytest.param(
            ISSUER + "/tenant1/", "/.well-known/oauth-authorization-server/tenant1", id="path"
        ),
    ],
)
def test_discovery_well_known_path_inserts_the_suffix_before_the_issuer_path(
    issuer: str, path: str
) -> None:
    assert well_known_path(issuer) == path


# --- the settings ---


@pytest.mark.parametrize(
    ("fields", "variables"),
    [
        pytest.param(
            {}, ["DCR_ISSUER", "DCR_AUTHORIZATION_ENDPOINT", "DCR_TOKEN_ENDPOINT"], id="all"
        ),
        pytest.param({"issuer": ISSUER, **ENDPOINTS}, [], id="complete"),
        pytest.param(
            {
                "issuer": ISSUER,
                "token_endpoint": ENDPOINTS["token_endpoint"],
                "allowed_grant_types": ("client_credentials",),
                "default_grant_types": ("client_credentials",),
            },
            [],
            id="machine-only-needs-no-authorization-endpoint",
        ),
        pytest.param(
            {
                "issuer": ISSUER,
                "authorization_endpoint": ENDPOINTS["authorization_endpoint"],
                "allowed_grant_types": ("implicit",),
                "default_grant_types": ("implicit",),
                "allowed_response_types": ("token",),
            },
            [],
            id="implicit-only-needs-no-token-endpoint",
        ),
        pytest.param(
            {"issuer": ISSUER, **ENDPOINTS, "path": "/.well-known/oauth-authorization-server"},
            ["DCR_PATH"],
            id="path-collides",
        ),
    ],
)
def test_discovery_serve_metadata_needs_issuer_and_endpoints(
    fields: dict[str, Any], variables: list[str]
) -> None:
    if not variables:
        assert Settings(serve_metadata=True, **fields).serve_metadata is True
        return
    with pytest.raises(ConfigurationError) as caught:
        Settings(serve_metadata=True, **fields)
    assert [p.split(":")[0] for p in caught.value.problems] == variables


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        pytest.param({"DCR_AUTHORIZATION_ENDPOINT": "/authorize"}, "DCR_AUTHORIZATION_ENDPOINT"),
        pytest.param({"DCR_TOKEN_ENDPOINT": "ftp://a.example.com/t"}, "DCR_TOKEN_ENDPOINT"),
        pytest.param({"DCR_TOKEN_ENDPOINT": "https://a.example.com/t#x"}, "DCR_TOKEN_ENDPOINT"),
        pytest.param({"DCR_CODE_CHALLENGE_METHODS": "S256,s256"}, "DCR_CODE_CHALLENGE_METHODS"),
        pytest.param({"DCR_SERVE_METADATA": "maybe"}, "DCR_SERVE_METADATA"),
    ],
)
def test_discovery_settings_refuse_bad_values(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(environ)
    assert [p.split(":")[0] for p in caught.value.problems] == [variable]


# --- the endpoint, without an adapter ---


def head(method: str, **headers: str) -> RequestHead:
    return RequestHead(method=method, headers=headers, peer="127.0.0.1")


def test_metadata_endpoint_serves_the_helper_document_with_cache_headers() -> None:
    endpoint = MetadataEndpoint(SERVING)
    response = endpoint.handle(head("GET"))
    assert endpoint.path == "/.well-known/oauth-authorization-server"
    assert response.status == 200
    assert json.loads(response.body) == authorization_server_metadata(SERVING)
    headers = dict(response.headers)
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(response.body))
    assert headers["Cache-Control"] == "public, max-age=3600"
    assert "Vary" not in headers  # DCR_CORS_ORIGINS=*: the same answer for every origin
    assert headers["Access-Control-Allow-Origin"] == "*"  # even to a request without Origin


def test_metadata_endpoint_head_has_the_get_headers() -> None:
    endpoint = MetadataEndpoint(SERVING)
    assert endpoint.handle(head("HEAD")) == endpoint.handle(head("GET"))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_metadata_endpoint_refuses_other_methods_with_405(method: str) -> None:
    response = MetadataEndpoint(SERVING).handle(head(method))
    assert response.status == 405
    assert ("Allow", "GET, HEAD") in response.headers
    assert json.loads(response.body)["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("origins", "origin", "allowed", "vary"),
    [
        pytest.param(("*",), "https://x.example", "*", False, id="any"),
        pytest.param(("https://x.example",), "https://x.example", "https://x.example", True),
        pytest.param(("https://x.example",), "https://y.example", None, True, id="not-listed"),
        pytest.param(("off",), "https://x.example", None, False, id="off"),
    ],
)
def test_metadata_endpoint_cors_follows_cors_origins(
    origins: tuple[str, ...], origin: str, allowed: str | None, vary: bool
) -> None:
    settings = Settings(serve_metadata=True, issuer=ISSUER, cors_origins=origins, **ENDPOINTS)
    headers = dict(MetadataEndpoint(settings).handle(head("GET", origin=origin)).headers)
    assert headers.get("Access-Control-Allow-Origin") == allowed
    assert ("Vary" in headers) is vary


def test_metadata_endpoint_answers_a_get_preflight() -> None:
    preflight = head(
        "OPTIONS", origin="https://x.example", **{"access-control-request-method": "GET"}
    )
    response = MetadataEndpoint(SERVING).handle(preflight)
    assert response.status == 204
    assert ("Access-Control-Allow-Methods", "GET, HEAD") in response.headers
    refused = head(
        "OPTIONS", origin="https://x.example", **{"access-control-request-method": "POST"}
    )
    assert MetadataEndpoint(SERVING).handle(refused).status == 403
