"""SPEC §6: the RFC 7591 gaps of plain Authlib, each shown on the installed Authlib and closed here.

Every gap has a pair of tests. ``test_authlib_plain_<gap>`` documents what plain Authlib does
(``ClientMetadataClaims`` or its ``ClientRegistrationEndpoint``); it fails the day Authlib fixes
the gap, which is the signal to revisit our subclass. The ``test_validate_client_metadata_*`` (or
``test_prepare_registration_*``) partner shows that this library does the right thing.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from authlib.oauth2.rfc6749.errors import InvalidRequestError as AuthlibInvalidRequestError
from authlib.oauth2.rfc7591 import ClientMetadataClaims, ClientRegistrationEndpoint
from authlib.oauth2.rfc7591 import InvalidClientMetadataError as AuthlibInvalidClientMetadata
from joserfc.errors import InvalidClaimError

from dcr_middleware.core._http import error_response
from dcr_middleware.core.client_metadata import validate_client_metadata
from dcr_middleware.core.errors import InvalidClientMetadataError, InvalidRedirectURIError
from dcr_middleware.core.registration import prepare_registration
from dcr_middleware.core.settings import Settings

WEB = "https://app.example.com/cb"
NOW = 1_700_000_000


def plain(raw: dict[str, Any], server_metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``raw`` with plain Authlib; return what it would register."""
    options = ClientMetadataClaims.get_claims_options(server_metadata) if server_metadata else {}
    claims = ClientMetadataClaims(raw, {}, options)
    claims.validate()
    registered: dict[str, Any] = claims.get_registered_claims()
    return registered


class PlainEndpoint(ClientRegistrationEndpoint):  # type: ignore[misc]
    """Plain Authlib's registration endpoint with the minimum a developer must implement."""

    def authenticate_token(self, request: Any) -> str:
        return "initial-access-token"

    def get_server_metadata(self) -> dict[str, Any]:
        return {}

    def save_client(self, client_info: Any, client_metadata: Any, request: Any) -> Any:
        return client_info


def plain_endpoint(body: dict[str, Any]) -> tuple[int, dict[str, Any], Any]:
    request = SimpleNamespace(payload=SimpleNamespace(data=body))
    result: tuple[int, dict[str, Any], Any] = PlainEndpoint().create_registration_response(request)
    return result


def tokens(size: int) -> str:
    return f"token-{size}"


# --- invalid_redirect_uri is never raised ------------------------------------------------------


def test_authlib_plain_invalid_redirect_uri_never_raised() -> None:
    """A bad redirect URI comes out of Authlib's endpoint as ``invalid_client_metadata``."""
    with pytest.raises(AuthlibInvalidClientMetadata) as info:
        plain_endpoint({"redirect_uris": ["not a uri"]})
    assert info.value.error == "invalid_client_metadata"


def test_validate_client_metadata_bad_redirect_uri_is_invalid_redirect_uri() -> None:
    with pytest.raises(InvalidRedirectURIError) as info:
        validate_client_metadata({"redirect_uris": ["not a uri"]}, Settings())
    assert info.value.error == "invalid_redirect_uri"


# --- {} is rejected though every field is optional ---------------------------------------------


def test_authlib_plain_empty_object_rejected() -> None:
    """Authlib's endpoint refuses ``{}`` with ``invalid_request`` before any metadata rule runs.

    (``ClientMetadataClaims({}).validate()`` itself passes; the rejection is the endpoint's
    ``if not request.payload.data: raise InvalidRequestError()``.)
    """
    assert plain({}) == {"token_endpoint_auth_method": "client_secret_basic"}
    with pytest.raises(AuthlibInvalidRequestError) as info:
        plain_endpoint({})
    assert info.value.error == "invalid_request"


def test_prepare_registration_empty_object_registers_service_client() -> None:
    settings = Settings(
        allowed_grant_types=("client_credentials",), default_grant_types=("client_credentials",)
    )
    new = prepare_registration(b"{}", settings, now=NOW, token=tokens)
    assert new.response["grant_types"] == ["client_credentials"]
    assert new.response["client_secret"] == "token-32"


# --- no https / loopback rules for redirect URIs ----------------------------------------------

UNSAFE_REDIRECT_URIS = [
    pytest.param("http://evil.example/cb", id="http-remote"),
    pytest.param("javascript://example.com/%0Aalert(1)", id="javascript"),
    pytest.param("data://example.com/text/html,x", id="data"),
    pytest.param("vbscript://example.com/msgbox", id="vbscript"),
    pytest.param("file://host/etc/passwd", id="file"),
]


@pytest.mark.parametrize("uri", UNSAFE_REDIRECT_URIS)
def test_authlib_plain_accepts_unsafe_redirect_uri(uri: str) -> None:
    """Authlib only asks for a scheme and a host: script schemes and plain http pass."""
    assert plain({"redirect_uris": [uri]})["redirect_uris"] == [uri]


@pytest.mark.parametrize("uri", UNSAFE_REDIRECT_URIS)
def test_validate_client_metadata_rejects_unsafe_redirect_uri(uri: str) -> None:
    with pytest.raises(InvalidRedirectURIError, match="redirect_uris"):
        validate_client_metadata({"redirect_uris": [uri]}, Settings())


# --- private-use-scheme redirect URIs of native apps -------------------------------------------


def test_authlib_plain_rejects_private_use_scheme_redirect_uri() -> None:
    """RFC 8252 §7.1 ``com.example.app:/cb`` has no host, so Authlib refuses it.

    (``cursor://callback`` happens to pass Authlib because ``callback`` parses as a host.)
    """
    with pytest.raises(InvalidClaimError):
        plain({"redirect_uris": ["com.example.app:/cb"]})
    assert plain({"redirect_uris": ["cursor://callback"]})["redirect_uris"] == ["cursor://callback"]


@pytest.mark.parametrize("uri", ["com.example.app:/cb", "cursor://callback"])
def test_validate_client_metadata_accepts_private_use_scheme_redirect_uri(uri: str) -> None:
    assert validate_client_metadata({"redirect_uris": [uri]}, Settings())["redirect_uris"] == [uri]


# --- no grant_types / response_types consistency (RFC 7591 §2.1) -------------------------------

INCONSISTENT = [
    pytest.param({"grant_types": ["client_credentials"], "response_types": ["code"]}, id="cc-code"),
    pytest.param(
        {"grant_types": ["authorization_code"], "response_types": [], "redirect_uris": [WEB]},
        id="code-grant-no-response",
    ),
]


@pytest.mark.parametrize("raw", INCONSISTENT)
def test_authlib_plain_accepts_inconsistent_grant_and_response_types(raw: dict[str, Any]) -> None:
    """Authlib's ``validate_grant_types`` / ``validate_response_types`` are empty."""
    registered = plain(raw)
    assert registered["grant_types"] == raw["grant_types"]
    assert registered["response_types"] == raw["response_types"]


@pytest.mark.parametrize("raw", INCONSISTENT)
def test_validate_client_metadata_rejects_inconsistent_grant_and_response_types(
    raw: dict[str, Any],
) -> None:
    with pytest.raises(InvalidClientMetadataError, match="grant_types/response_types"):
        validate_client_metadata(raw, Settings())


# --- language-tagged fields dropped (RFC 7591 §2.2) --------------------------------------------

TAGGED = {
    "redirect_uris": [WEB],
    "client_name": "My Client",
    "client_name#ja-Jpan-JP": "\u30af\u30e9\u30a4\u30a2\u30f3\u30c8\u540d",
    "logo_uri#fr": "https://app.example.com/logo-fr.png",
}


def test_authlib_plain_drops_language_tagged_fields() -> None:
    """``get_registered_claims`` keeps ``REGISTERED_CLAIMS`` only: the tagged keys vanish."""
    registered = plain(dict(TAGGED))
    assert registered["client_name"] == "My Client"
    assert "client_name#ja-Jpan-JP" not in registered
    assert "logo_uri#fr" not in registered


def test_validate_client_metadata_keeps_language_tagged_fields_unmodified() -> None:
    metadata = validate_client_metadata(dict(TAGGED), Settings())
    assert metadata["client_name#ja-Jpan-JP"] == TAGGED["client_name#ja-Jpan-JP"]
    assert metadata["logo_uri#fr"] == TAGGED["logo_uri#fr"]


# --- defaults not checked against the server's supported lists ---------------------------------


def test_authlib_plain_defaults_not_checked_against_supported_lists() -> None:
    """With the server supporting only ``none`` / client_credentials / ``token``, Authlib still
    registers ``{}`` with the default ``client_secret_basic`` (and the defaults
    ``authorization_code``/``code`` are never checked: its hooks only run for present keys)."""
    server_metadata = {
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
    }
    registered = plain({}, server_metadata)
    assert registered["token_endpoint_auth_method"] == "client_secret_basic"
    with pytest.raises(InvalidClaimError):
        plain({"token_endpoint_auth_method": "client_secret_basic"}, server_metadata)


def test_validate_client_metadata_checks_defaults_against_allowed_lists() -> None:
    settings = Settings(
        allowed_auth_methods=("none",),
        allowed_grant_types=("client_credentials", "authorization_code"),
        allowed_response_types=("code",),
    )
    with pytest.raises(InvalidClientMetadataError) as info:
        validate_client_metadata({"redirect_uris": [WEB]}, settings)
    assert "token_endpoint_auth_method" in info.value.description
    assert "client_secret_basic" in info.value.description
    # The response type derived for an implicit client ("token") is checked too.
    code_only = Settings(
        allowed_grant_types=("authorization_code", "implicit"),
        allowed_response_types=("code",),
    )
    with pytest.raises(InvalidClientMetadataError, match="response_types"):
        validate_client_metadata({"redirect_uris": [WEB], "grant_types": ["implicit"]}, code_only)


# --- non-string values in URI fields or scope crash --------------------------------------------

URI_FIELDS = ["client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri"]


@pytest.mark.parametrize("field", URI_FIELDS)
def test_authlib_plain_crashes_on_non_string_uri(field: str) -> None:
    """``is_valid_url`` calls ``urlparse`` on the value: an int raises ``AttributeError``, which
    is no ``JoseError``, so the endpoint answers 500."""
    with pytest.raises(AttributeError):
        plain({field: 123})


def test_authlib_plain_crashes_on_non_string_redirect_uri() -> None:
    """Same for an item of ``redirect_uris``."""
    with pytest.raises(AttributeError):
        plain({"redirect_uris": [123]})


def test_authlib_plain_crashes_on_non_string_scope() -> None:
    """With ``scopes_supported`` in the server metadata, ``scope_to_list(123)`` raises."""
    with pytest.raises(AttributeError):
        plain({"scope": 123}, {"scopes_supported": ["openid"]})


@pytest.mark.parametrize("field", URI_FIELDS)
def test_validate_client_metadata_rejects_non_string_uri(field: str) -> None:
    with pytest.raises(InvalidClientMetadataError, match=field):
        validate_client_metadata({"redirect_uris": [WEB], field: 123}, Settings())


def test_validate_client_metadata_rejects_non_string_redirect_uri() -> None:
    with pytest.raises(InvalidRedirectURIError, match="redirect_uris"):
        validate_client_metadata({"redirect_uris": [123]}, Settings())


def test_validate_client_metadata_rejects_non_string_scope() -> None:
    settings = Settings(allowed_scopes=("openid",))
    with pytest.raises(InvalidClientMetadataError, match="scope"):
        validate_client_metadata({"redirect_uris": [WEB], "scope": 123}, settings)


# --- a secret issued to "none" clients ---------------------------------------------------------


def test_authlib_plain_issues_secret_to_public_client() -> None:
    """``generate_client_info`` always adds a ``client_secret``, whatever the auth method."""
    status, body, _ = plain_endpoint({"redirect_uris": [WEB], "token_endpoint_auth_method": "none"})
    assert status == 201
    assert body["token_endpoint_auth_method"] == "none"
    assert body["client_secret"]


def test_prepare_registration_issues_no_secret_to_public_client() -> None:
    body = (
        b'{"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "none"}'
    )
    new = prepare_registration(body, Settings(), now=NOW, token=tokens)
    assert "client_secret" not in new.response
    assert "client_secret_expires_at" not in new.response
    assert new.client.client_secret_hash is None


# --- error descriptions with '"' or non-ASCII raise ValueError ---------------------------------


@pytest.mark.parametrize("description", ["redirect_uris: 'a\"b' is bad", "client_name: caf\u00e9"])
def test_authlib_plain_error_description_with_quote_or_non_ascii_raises(description: str) -> None:
    """Authlib's ``OAuth2Error.__init__`` raises ``ValueError`` (a 500) for such descriptions,
    which echo client input naturally."""
    with pytest.raises(ValueError, match="forbidden characters"):
        AuthlibInvalidClientMetadata(description=description)


@pytest.mark.parametrize("description", ["redirect_uris: 'a\"b' is bad", "client_name: caf\u00e9"])
def test_error_response_renders_description_with_quote_or_non_ascii(description: str) -> None:
    response = error_response(InvalidClientMetadataError(description))
    assert response.status == 400
    assert json.loads(response.body)["error"] == "invalid_client_metadata"


def test_validate_client_metadata_quote_in_value_gives_our_error() -> None:
    with pytest.raises(InvalidRedirectURIError) as info:
        validate_client_metadata({"redirect_uris": ["https://a.example/\"'"]}, Settings())
    assert json.loads(error_response(info.value).body)["error"] == "invalid_redirect_uri"
