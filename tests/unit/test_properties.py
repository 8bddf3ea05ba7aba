"""Hypothesis: whatever a client sends, validation ends in a dict or one of our errors.

Only :class:`~dcr_middleware.core.errors.DCRError` subclasses may leave the validators (anything
else would be a 500), and what they accept is consistent: §2.1 grant/response types agree, every
redirect URI passes the URI rules, and the result is strict JSON.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dcr_middleware.core import _uris
from dcr_middleware.core import grant_types as _flows
from dcr_middleware.core.client_metadata import (
    LOCALIZABLE,
    ClientMetadata,
    validate_client_metadata,
)
from dcr_middleware.core.errors import DCRError
from dcr_middleware.core.registration import parse_json_object, prepare_registration
from dcr_middleware.core.settings import Settings

PROPERTY = settings(
    max_examples=300,
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
]
policies = st.sampled_from(POLICIES)

FIELDS = [*ClientMetadata.REGISTERED_CLAIMS, "software_statement", "client_id"]
TAGGED = [f"{field}#{tag}" for field in LOCALIZABLE for tag in ("ja-Jpan-JP", "en", "", "x y")]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)

URIS = [
    "https://app.example.com/cb",
    "http://127.0.0.1:8080/cb",
    "http://[::1]/cb",
    "http://app.example.com/cb",
    "com.example.app:/cb",
    "cursor://callback",
    "javascript:alert(1)",
    "https://app.example.com/cb#x",
    "https://u@app.example.com/cb",
    "",
]
GRANTS = ["authorization_code", "implicit", "refresh_token", "client_credentials", "password"]
RESPONSES = ["code", "token", "id_token", "code id_token", "none"]
METHODS = [
    "none",
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
]
EC_PUBLIC = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}

# Values that have a chance of being valid, so the "accepted" branch is exercised too.
plausible: dict[str, st.SearchStrategy[Any]] = {
    "redirect_uris": st.lists(st.sampled_from(URIS) | st.text(max_size=20), max_size=3),
    "grant_types": st.lists(st.sampled_from(GRANTS), max_size=3, unique=True),
    "response_types": st.lists(st.sampled_from(RESPONSES), max_size=2, unique=True),
    "token_endpoint_auth_method": st.sampled_from(METHODS),
    "scope": st.sampled_from(["openid", "openid profile", "admin", "a  b", ""]),
    "jwks": st.sampled_from(
        [{"keys": [EC_PUBLIC]}, {"keys": [{**EC_PUBLIC, "d": "x"}]}, {"keys": []}]
    ),
    "jwks_uri": st.sampled_from(["https://app.example.com/jwks", "http://a.example/j"]),
    "client_uri": st.sampled_from(URIS),
    "contacts": st.lists(st.text(max_size=10), max_size=3),
}

keys = st.one_of(st.sampled_from(FIELDS), st.sampled_from(TAGGED), st.text(max_size=12))


@st.composite
def metadata_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        # Most requests carry redirect URIs: start from plausible ones half of the time.
        obj["redirect_uris"] = draw(st.lists(st.sampled_from(URIS[:6]), min_size=1, max_size=2))
    for key in draw(st.lists(keys, max_size=8)):
        strategy = plausible.get(key)
        if strategy is not None and draw(st.booleans()):
            obj[key] = draw(strategy)
        else:
            obj[key] = draw(json_like)
    return obj


def check_accepted(metadata: dict[str, Any], settings_: Settings) -> None:
    assert isinstance(metadata, dict)
    grants = metadata["grant_types"]
    responses = metadata["response_types"]
    assert _flows.inconsistency(grants, responses) is None
    assert set(grants) <= set(settings_.allowed_grant_types)
    assert set(responses) <= set(settings_.allowed_response_types)
    assert metadata["token_endpoint_auth_method"] in settings_.allowed_auth_methods
    if _flows.needs_redirect_uris(grants):
        assert metadata["redirect_uris"]
    for uri in metadata.get("redirect_uris", []):
        problem = _uris.redirect_uri_problem(
            uri, allow_insecure=settings_.allow_insecure_redirect_uris
        )
        assert problem is None, (uri, problem)
    if settings_.allowed_scopes is not None and "scope" in metadata:
        assert set(metadata["scope"].split(" ")) <= set(settings_.allowed_scopes)


def validate(raw: dict[str, Any], settings_: Settings) -> dict[str, Any] | None:
    try:
        metadata = validate_client_metadata(raw, settings_)
    except DCRError as exc:
        assert exc.description
        event(f"rejected: {type(exc).__name__}")
        return None
    event("accepted")
    check_accepted(metadata, settings_)
    return metadata


@PROPERTY
@given(body=st.binary(max_size=300), settings_=policies)
def test_property_arbitrary_bytes_give_dict_or_our_error(body: bytes, settings_: Settings) -> None:
    try:
        raw = parse_json_object(body)
    except DCRError:
        return
    validate(raw, settings_)


@PROPERTY
@given(obj=json_like, settings_=policies)
def test_property_arbitrary_json_bytes_give_dict_or_our_error(
    obj: Any, settings_: Settings
) -> None:
    try:
        raw = parse_json_object(json.dumps(obj).encode("utf-8", "surrogatepass"))
    except DCRError:
        return
    validate(raw, settings_)


@PROPERTY
@given(raw=metadata_objects(), settings_=policies)
def test_property_metadata_objects_give_dict_or_our_error(
    raw: dict[str, Any], settings_: Settings
) -> None:
    validate(raw, settings_)


@PROPERTY
@given(raw=metadata_objects(), settings_=policies)
def test_property_registration_response_is_strict_json(
    raw: dict[str, Any], settings_: Settings
) -> None:
    body = json.dumps(raw).encode("utf-8", "surrogatepass")
    try:
        new = prepare_registration(body, settings_, now=1_700_000_000, token=lambda n: "t" * n)
    except DCRError:
        return
    check_accepted(new.client.metadata, settings_)
    json.dumps(new.response, allow_nan=False)
    assert ("client_secret" in new.response) is (new.client.client_secret_hash is not None)
