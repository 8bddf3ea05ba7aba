"""The compiled plan for common registration requests (:mod:`dcr_middleware.core._metadata_plan`)
against the full validator: whatever the plan accepts, the full validator accepts with the same
metadata, keys in the same order; and the common requests do take the plan.

The full validator is called directly (``ClientMetadata``), so these tests compare the two paths
that ``validate_client_metadata`` chooses between.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dcr_middleware.core._metadata_plan import FAST_FIELDS, MetadataPlan, plan_for
from dcr_middleware.core.client_metadata import ClientMetadata, validate_client_metadata
from dcr_middleware.core.errors import DCRError
from dcr_middleware.core.grant_types import default_response_types
from dcr_middleware.core.settings import Settings

DIFFERENTIAL = settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

POLICIES = [
    Settings(),
    Settings(
        allowed_grant_types=("client_credentials",), default_grant_types=("client_credentials",)
    ),
    Settings(allow_insecure_redirect_uris=True, allowed_scopes=("openid", "profile")),
    Settings(
        allowed_grant_types=("authorization_code", "implicit", "refresh_token"),
        allowed_response_types=("code", "token", "id_token", "code id_token"),
        allowed_auth_methods=("none", "client_secret_jwt", "private_key_jwt"),
        default_scopes=("openid",),
    ),
    Settings(
        allowed_redirect_hosts=("app.example.com", "*.example.org", "com.example.app:"),
        max_string_length=24,
        max_redirect_uris=2,
        max_contacts=1,
    ),
    Settings(
        allowed_grant_types=("authorization_code", "client_credentials"),
        default_grant_types=("authorization_code", "client_credentials"),
        allowed_auth_methods=("none",),
        default_scopes=("read", "write"),
        allowed_scopes=("read", "write"),
    ),
    Settings(max_language_tagged_fields=0, allowed_response_types=("code", "none")),
]

URIS = [
    "https://app.example.com/cb",
    "https://x.example.org/cb",
    "https://example.org/cb",
    "http://127.0.0.1:8080/cb",
    "http://localhost/cb",
    "http://[::1]/cb",
    "http://app.example.com/cb",
    "com.example.app:/cb",
    "cursor://callback",
    "javascript:alert(1)",
    "https://app.example.com/cb#x",
    "https://u@app.example.com/cb",
    "https://app.example.com:99999/cb",
    "HTTPS://APP.EXAMPLE.COM/cb",
    "https:///cb",
    "app:",
    "",
    "https://app.example.com/a b",
    "https://app.example.com/é",
]
GRANTS = ["authorization_code", "implicit", "refresh_token", "client_credentials", "password", ""]
RESPONSES = ["code", "token", "id_token", "code id_token", "none", "", "code  token"]
METHODS = [
    "none",
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "tls_client_auth",
    "",
]
TEXTS = ["bench client", "x" * 30, "", "名前", "\ud800", "a\x00b", " "]
SCOPES = ["openid", "openid profile", "read write", "admin", "a  b", "", " read", "read\tx", "ü"]


def _some(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(allow_nan=False),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(max_size=8),
)
values: dict[str, st.SearchStrategy[Any]] = {
    "redirect_uris": st.lists(_some(URIS), max_size=3),
    "grant_types": st.lists(_some(GRANTS), max_size=3),
    "response_types": st.lists(_some(RESPONSES), max_size=3),
    "token_endpoint_auth_method": _some(METHODS),
    "client_name": _some(TEXTS),
    "software_id": _some(TEXTS),
    "software_version": _some(TEXTS),
    "client_uri": _some(URIS),
    "logo_uri": _some(URIS),
    "tos_uri": _some(URIS),
    "policy_uri": _some(URIS),
    "scope": _some(SCOPES),
    "contacts": st.lists(_some(TEXTS), max_size=3),
}
# Values each field usually accepts under the policies above.
plausible: dict[str, st.SearchStrategy[Any]] = {
    **values,
    "client_name": _some(TEXTS[:4]),
    "software_id": _some(TEXTS[:4]),
    "software_version": _some(TEXTS[:4]),
    "client_uri": _some(URIS[:3]),
    "logo_uri": _some(URIS[:3]),
    "tos_uri": _some(URIS[:3]),
    "policy_uri": _some(URIS[:3]),
    "scope": _some(SCOPES[:3]),
    "contacts": st.lists(_some(TEXTS[:4]), max_size=2, unique=True),
}
OTHER_KEYS = ["jwks_uri", "application_type", "client_name#en", "client_name#", "unknown"]


@st.composite
def likely(draw: st.DrawFn, settings_: Settings) -> dict[str, Any]:
    """A request the policy probably accepts: its own grant, response types and methods."""
    allowed = settings_.allowed_grant_types
    grants = draw(st.lists(st.sampled_from(allowed), min_size=1, max_size=3, unique=True))
    request: dict[str, Any] = {
        "redirect_uris": draw(st.lists(st.sampled_from(URIS[:8]), min_size=1, max_size=2)),
    }
    if draw(st.booleans()):
        request["grant_types"] = grants
    choice = draw(st.integers(0, 2))
    if choice == 1:  # what the grants imply
        request["response_types"] = default_response_types(request.get("grant_types", grants))
    elif choice == 2:
        request["response_types"] = draw(
            st.lists(st.sampled_from(settings_.allowed_response_types), max_size=2, unique=True)
        )
    if draw(st.booleans()):
        request["token_endpoint_auth_method"] = draw(
            st.sampled_from(settings_.allowed_auth_methods)
        )
    for key in draw(st.lists(st.sampled_from(sorted(FAST_FIELDS)), max_size=3, unique=True)):
        if key not in request:
            request[key] = draw(values[key] if draw(st.booleans()) else plausible[key])
    return request


@st.composite
def requests(draw: st.DrawFn, settings_: Settings) -> dict[str, Any]:
    if draw(st.integers(0, 9)) < 7:
        request: dict[str, Any] = draw(likely(settings_))
        mutate = draw(st.integers(0, 2)) == 0
        changed = draw(st.lists(st.sampled_from(sorted(FAST_FIELDS)), max_size=1)) if mutate else []
    else:
        request = {}
        changed = draw(st.lists(st.sampled_from(sorted(FAST_FIELDS)), max_size=5, unique=True))
    for key in changed:
        # Mostly plausible values, sometimes a value of the wrong type.
        request[key] = draw(odd) if draw(st.integers(0, 9)) == 0 else draw(values[key])
    if draw(st.integers(0, 19)) == 0:
        request[draw(st.sampled_from(OTHER_KEYS))] = draw(st.sampled_from(["web", URIS[0]]))
    return request


def full(raw: dict[str, Any], settings_: Settings) -> dict[str, Any] | DCRError:
    """The full validator's answer: the metadata, or the error it raises."""
    claims = ClientMetadata(raw, settings_)
    try:
        claims.validate()
    except DCRError as exc:
        return exc
    registered: dict[str, Any] = claims.registered()
    return registered


@DIFFERENTIAL
@given(data=st.data(), settings_=st.sampled_from(POLICIES))
def test_plan_accepts_only_what_the_full_validator_accepts_with_the_same_metadata(
    data: st.DataObject, settings_: Settings
) -> None:
    raw = data.draw(requests(settings_))
    before = dict(raw)
    fast = MetadataPlan(settings_).accept(raw)
    assert raw == before  # the request is left as it was
    expected = full(raw, settings_)
    if fast is None:
        event("left to the full validator")
        return
    event("accepted by the plan")
    assert not isinstance(expected, DCRError), (raw, expected)
    assert list(fast.items()) == list(expected.items())


COMMON = [
    pytest.param(
        {
            "redirect_uris": ["http://127.0.0.1:8765/callback"],
            "client_name": "bench client",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        id="the-benchmark-request",
    ),
    pytest.param(
        {
            "redirect_uris": ["http://localhost:33418/oauth/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "MCP Inspector",
            "client_uri": "https://github.com/modelcontextprotocol/inspector",
        },
        id="an-mcp-client",
    ),
    pytest.param({"redirect_uris": ["https://app.example.com/cb"]}, id="defaults-only"),
    pytest.param(
        {
            "redirect_uris": ["com.example.app:/cb"],
            "scope": "read write",
            "contacts": ["ops@example.com"],
            "software_id": "4NRB1-0XZABZI9E6-5SM3R",
            "software_version": "2.1",
        },
        id="native-with-scope-and-contacts",
    ),
]


@pytest.mark.parametrize("raw", COMMON)
def test_plan_takes_the_common_requests(raw: dict[str, Any]) -> None:
    settings_ = Settings()
    fast = MetadataPlan(settings_).accept(raw)
    assert fast is not None
    assert list(fast.items()) == list(full(raw, settings_).items())  # type: ignore[union-attr]
    assert list(validate_client_metadata(raw, settings_).items()) == list(fast.items())


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"redirect_uris": None}, id="null"),
        pytest.param(
            {"redirect_uris": ["https://a.example/cb"], "jwks_uri": "x"}, id="other-field"
        ),
        pytest.param(
            {"redirect_uris": ["https://a.example/cb"], "client_name#fr": "x"}, id="tagged"
        ),
        pytest.param({"redirect_uris": "https://a.example/cb"}, id="string-not-array"),
        pytest.param({"redirect_uris": ["http://a.example/cb"]}, id="refused"),
    ],
)
def test_plan_leaves_other_requests_to_the_full_validator(raw: dict[str, Any]) -> None:
    assert MetadataPlan(Settings()).accept(raw) is None


def test_plan_for_compiles_once_per_settings() -> None:
    one, other = Settings(), Settings(max_contacts=3)
    assert plan_for(one) is plan_for(one)
    assert plan_for(other) is not plan_for(one)
    assert plan_for(other).max_contacts == 3
