"""SPEC §6: the OpenID Connect registration gaps of plain Authlib, shown and closed.

Each gap has a pair of tests. ``test_authlib_plain_oidc_<gap>`` shows that Authlib's
``authlib.oidc.registration.ClientMetadataClaims`` (installed version) has the gap; it fails the
day Authlib fixes it, which is the signal to revisit :class:`dcr_middleware.core.oidc.OIDCMetadata`.
The ``test_validate_client_metadata_*`` partner shows that this library does the right thing.
"""

from __future__ import annotations

from typing import Any

import pytest
from authlib.oidc.registration import ClientMetadataClaims
from joserfc.errors import InvalidClaimError

from dcr_middleware.core.client_metadata import validate_client_metadata
from dcr_middleware.core.errors import InvalidClientMetadataError, InvalidRedirectURIError
from dcr_middleware.core.settings import Settings

WEB = "https://app.example.com/cb"
# The server supports what the requests below ask for, so only the rule under test can refuse.
OIDC = Settings(
    allowed_grant_types=("authorization_code", "implicit", "client_credentials"),
    allowed_response_types=("code", "id_token", "code id_token", "none"),
    allowed_signing_algs=("RS256", "none"),
)


def plain(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate ``raw`` with plain Authlib's OIDC claims; return what it would register."""
    claims = ClientMetadataClaims(raw, {})
    claims.validate()
    registered: dict[str, Any] = claims.get_registered_claims()
    return registered


# --- gap 1: redirect_uris is not required ------------------------------------------------------


def test_authlib_plain_oidc_does_not_require_redirect_uris() -> None:
    # OIDC Registration §2: redirect_uris is REQUIRED. Authlib does not even list it.
    registered = plain({"response_types": ["code id_token"], "grant_types": ["implicit"]})

    assert "redirect_uris" not in registered
    assert "redirect_uris" not in ClientMetadataClaims.REGISTERED_CLAIMS


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            {
                "grant_types": ["authorization_code", "implicit"],
                "response_types": ["code id_token"],
            },
            id="hybrid",
        ),
        pytest.param({"grant_types": ["implicit"], "response_types": ["id_token"]}, id="id-token"),
        # "none" implies no grant type (RFC 7591 §2.1), but it still answers by redirecting.
        pytest.param(
            {"grant_types": ["client_credentials"], "response_types": ["none"]},
            id="response-type-none",
        ),
    ],
)
def test_validate_client_metadata_requires_redirect_uris_for_oidc_response_types(
    raw: dict[str, Any],
) -> None:
    with pytest.raises(InvalidRedirectURIError) as info:
        validate_client_metadata(raw, OIDC)

    assert info.value.description.startswith("redirect_uris:")


# --- gap 2: application_type redirect rules are not enforced -----------------------------------

NATIVE_HTTPS = {"application_type": "native", "redirect_uris": [WEB]}
NATIVE_REMOTE_HTTP = {"application_type": "native", "redirect_uris": ["http://app.example.com/cb"]}
WEB_IMPLICIT_LOCALHOST = {
    "application_type": "web",
    "grant_types": ["implicit"],
    "response_types": ["id_token"],
    "redirect_uris": ["http://localhost:8080/cb"],
}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(NATIVE_HTTPS, id="native-https"),
        pytest.param(NATIVE_REMOTE_HTTP, id="native-remote-http"),
        pytest.param(WEB_IMPLICIT_LOCALHOST, id="web-implicit-localhost"),
    ],
)
def test_authlib_plain_oidc_ignores_application_type_redirect_rules(raw: dict[str, Any]) -> None:
    registered = plain(raw)

    assert registered["application_type"] == raw["application_type"]


@pytest.mark.parametrize(
    ("raw", "settings"),
    [
        pytest.param(NATIVE_HTTPS, OIDC, id="native-https"),
        # Even when the operator allows plain http for development.
        pytest.param(
            NATIVE_REMOTE_HTTP,
            Settings(allow_insecure_redirect_uris=True),
            id="native-remote-http",
        ),
        pytest.param(WEB_IMPLICIT_LOCALHOST, OIDC, id="web-implicit-localhost"),
    ],
)
def test_validate_client_metadata_enforces_application_type_redirect_rules(
    raw: dict[str, Any], settings: Settings
) -> None:
    with pytest.raises(InvalidRedirectURIError) as info:
        validate_client_metadata(raw, settings)

    assert "OpenID Connect Registration section 2" in info.value.description


# --- gap 3: the id_token_signed_response_alg "none" check reads the wrong key ------------------

ALG_NONE_WITH_ID_TOKEN = {
    "redirect_uris": [WEB],
    "grant_types": ["implicit"],
    "response_types": ["id_token"],
    "id_token_signed_response_alg": "none",
}


def test_authlib_plain_oidc_alg_none_check_reads_response_type_not_response_types() -> None:
    # Registration requests carry "response_types"; the check never fires for them...
    registered = plain(ALG_NONE_WITH_ID_TOKEN)
    assert registered["id_token_signed_response_alg"] == "none"

    # ...it only fires for the singular "response_type", a key registration does not define.
    with pytest.raises(InvalidClaimError):
        plain({**ALG_NONE_WITH_ID_TOKEN, "response_type": "id_token"})


@pytest.mark.parametrize(
    ("grant_types", "response_types"),
    [
        pytest.param(["implicit"], ["id_token"], id="id-token"),
        pytest.param(
            ["authorization_code", "implicit"], ["code", "code id_token"], id="hybrid-among-others"
        ),
    ],
)
def test_validate_client_metadata_refuses_alg_none_when_id_token_comes_from_authorization(
    grant_types: list[str], response_types: list[str]
) -> None:
    raw = {**ALG_NONE_WITH_ID_TOKEN, "grant_types": grant_types, "response_types": response_types}

    with pytest.raises(InvalidClientMetadataError) as info:
        validate_client_metadata(raw, OIDC)

    assert info.value.description.startswith("id_token_signed_response_alg:")


def test_validate_client_metadata_accepts_alg_none_for_code_only_clients() -> None:
    # "...unless the Client uses only Response Types that return no ID Token from the
    # Authorization Endpoint (such as when only using the Authorization Code Flow)."
    raw = {"redirect_uris": [WEB], "id_token_signed_response_alg": "none"}

    assert validate_client_metadata(raw, OIDC)["id_token_signed_response_alg"] == "none"
