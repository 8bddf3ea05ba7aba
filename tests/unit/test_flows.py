"""RFC 7591 §2.1 grant type / response type relations."""

from __future__ import annotations

import pytest

from dcr_middleware.core import grant_types as _flows


@pytest.mark.parametrize(
    ("response_type", "grants"),
    [
        pytest.param("code", {"authorization_code"}, id="code"),
        pytest.param("token", {"implicit"}, id="token"),
        pytest.param("id_token", {"implicit"}, id="id-token"),
        pytest.param("id_token token", {"implicit"}, id="id-token-token"),
        pytest.param("code id_token", {"authorization_code", "implicit"}, id="hybrid"),
        pytest.param("token code", {"authorization_code", "implicit"}, id="hybrid-reordered"),
        pytest.param("none", set(), id="none"),
        pytest.param("", set(), id="empty"),
        pytest.param("codes", set(), id="not-a-word-match"),
    ],
)
def test_grants_for_response_type(response_type: str, grants: set[str]) -> None:
    assert _flows.grants_for_response_type(response_type) == grants


@pytest.mark.parametrize(
    ("grants", "responses"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param(["authorization_code"], ["code"], id="code"),
        pytest.param(["implicit"], ["token"], id="implicit"),
        pytest.param(["implicit", "authorization_code"], ["code", "token"], id="both"),
        pytest.param(["client_credentials", "refresh_token"], [], id="no-redirect-flow"),
    ],
)
def test_default_response_types(grants: list[str], responses: list[str]) -> None:
    assert _flows.default_response_types(grants) == responses


@pytest.mark.parametrize(
    ("grants", "responses", "says"),
    [
        pytest.param(["authorization_code"], ["code"], None, id="code"),
        pytest.param(["client_credentials"], [], None, id="cc"),
        pytest.param(["authorization_code", "implicit"], ["code id_token"], None, id="hybrid"),
        pytest.param(["implicit"], ["id_token"], None, id="id-token"),
        pytest.param(["refresh_token"], ["none"], None, id="response-none"),
        pytest.param(["client_credentials"], ["code"], "'authorization_code'", id="code-alone"),
        pytest.param(["authorization_code"], ["token"], "'implicit'", id="token-needs-implicit"),
        pytest.param(["authorization_code"], [], "'code'", id="grant-needs-code"),
        pytest.param(["implicit"], [], "'token'", id="implicit-needs-token"),
        pytest.param(["implicit"], ["code"], "'authorization_code'", id="implicit-with-code"),
    ],
)
def test_inconsistency(grants: list[str], responses: list[str], says: str | None) -> None:
    problem = _flows.inconsistency(grants, responses)
    if says is None:
        assert problem is None
    else:
        assert problem is not None
        assert says in problem


@pytest.mark.parametrize(
    ("grants", "needed"),
    [
        pytest.param(["authorization_code"], True, id="code"),
        pytest.param(["implicit"], True, id="implicit"),
        pytest.param(["client_credentials", "authorization_code"], True, id="mixed"),
        pytest.param(["client_credentials", "refresh_token"], False, id="cc"),
        pytest.param([], False, id="empty"),
    ],
)
def test_needs_redirect_uris(grants: list[str], needed: bool) -> None:
    assert _flows.needs_redirect_uris(grants) is needed
