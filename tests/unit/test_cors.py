"""CORS for the registration endpoint: preflight decisions, ``*`` versus listed origins, ``off``,
and the fields added to actual responses."""

from __future__ import annotations

import json

import pytest

from dcr_middleware.core._http import Response, json_response
from dcr_middleware.core.admission import RequestHead
from dcr_middleware.core.cors import CORS
from dcr_middleware.core.settings import Settings

APP = "https://app.example.com"
INSPECTOR = "http://localhost:6274"
LISTED = Settings(cors_origins=(APP, INSPECTOR))
ANY = Settings()
OFF = Settings(cors_origins=("off",))
EXPOSED = {"ratelimit", "ratelimit-policy", "retry-after", "www-authenticate"}


def _head(method: str = "OPTIONS", **headers: str) -> RequestHead:
    return RequestHead(method, {k.replace("_", "-"): v for k, v in headers.items()}, "127.0.0.1")


def _preflight(
    origin: str | None = APP, method: str | None = "POST", request_headers: str | None = None
) -> RequestHead:
    headers = {}
    if origin is not None:
        headers["origin"] = origin
    if method is not None:
        headers["access-control-request-method"] = method
    if request_headers is not None:
        headers["access-control-request-headers"] = request_headers
    return RequestHead("OPTIONS", headers, "127.0.0.1")


def _fields(response: Response) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in response.headers:
        fields.setdefault(name.lower(), []).append(value)
    return fields


def _created() -> Response:
    return json_response(201, {"client_id": "abc"})


# --- is_preflight ------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [ANY, LISTED], ids=["any", "listed"])
def test_cors_is_preflight(settings: Settings) -> None:
    cors = CORS(settings)
    assert cors.is_preflight("OPTIONS", _preflight())
    # An origin that is not allowed is still a preflight: it is answered (refused), not passed on.
    assert cors.is_preflight("OPTIONS", _preflight(origin="https://evil.example"))


@pytest.mark.parametrize(
    ("method", "head"),
    [
        pytest.param("OPTIONS", _preflight(origin=None), id="no-origin"),
        pytest.param("OPTIONS", _preflight(method=None), id="no-request-method"),
        pytest.param("OPTIONS", _head(), id="no-cors-headers"),
        pytest.param("POST", _preflight(), id="post"),
        pytest.param("GET", _preflight(), id="get"),
    ],
)
def test_cors_is_not_preflight(method: str, head: RequestHead) -> None:
    assert not CORS(ANY).is_preflight(method, head)


@pytest.mark.parametrize("origins", [("off",), ()], ids=["off", "empty"])
def test_cors_off_disables_everything(origins: tuple[str, ...]) -> None:
    cors = CORS(Settings(cors_origins=origins))
    assert not cors.enabled
    assert not cors.is_preflight("OPTIONS", _preflight())
    assert cors.allowed_origin(APP) is None
    assert cors.allowed_origin("off") is None
    response = cors.apply(_head("POST", origin=APP), _created())
    assert not any(name.lower().startswith("access-control-") for name, _ in response.headers)


# --- preflight ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "origin", "allow_origin", "vary"),
    [
        pytest.param(ANY, APP, "*", False, id="any"),
        pytest.param(ANY, "null", "*", False, id="any-null-origin"),
        pytest.param(LISTED, APP, APP, True, id="listed"),
        pytest.param(LISTED, INSPECTOR, INSPECTOR, True, id="listed-second"),
        pytest.param(Settings(cors_origins=(APP, "*")), APP, "*", False, id="listed-and-any"),
    ],
)
@pytest.mark.parametrize(
    "request_headers",
    [
        pytest.param(None, id="no-headers"),
        pytest.param("content-type", id="content-type"),
        pytest.param("Content-Type, Authorization", id="both"),
        pytest.param("authorization,content-type", id="both-no-space"),
        pytest.param("accept, accept-language, content-language", id="safelisted"),
        pytest.param(" , content-type ,", id="blank-items"),
        pytest.param("", id="empty"),
    ],
)
def test_cors_preflight_allowed(
    settings: Settings, origin: str, allow_origin: str, vary: bool, request_headers: str | None
) -> None:
    response = CORS(settings).preflight(_preflight(origin, "POST", request_headers))
    assert response.status == 204
    assert response.body == b""
    fields = _fields(response)
    assert fields["access-control-allow-origin"] == [allow_origin]
    assert fields["access-control-allow-methods"] == ["POST"]
    allowed = {h.strip().lower() for h in fields["access-control-allow-headers"][0].split(",")}
    assert allowed == {"content-type", "authorization"}
    assert fields["access-control-max-age"] == ["600"]
    assert "access-control-allow-credentials" not in fields
    assert ("vary" in fields) is vary
    if vary:
        assert fields["vary"] == ["Origin"]


@pytest.mark.parametrize(
    ("settings", "head"),
    [
        pytest.param(LISTED, _preflight(origin="https://evil.example"), id="origin-not-listed"),
        pytest.param(LISTED, _preflight(origin=APP + ":443"), id="origin-other-port"),
        pytest.param(LISTED, _preflight(origin="http://app.example.com"), id="origin-other-scheme"),
        pytest.param(LISTED, _preflight(origin="null"), id="origin-null"),
        pytest.param(LISTED, _preflight(origin=APP.upper()), id="origin-other-case"),
        pytest.param(ANY, _preflight(method="PUT"), id="method-put"),
        pytest.param(ANY, _preflight(method="GET"), id="method-get"),
        pytest.param(ANY, _preflight(method="DELETE"), id="method-delete"),
        pytest.param(ANY, _preflight(method="post"), id="method-lower-case"),
        pytest.param(ANY, _preflight(method=""), id="method-empty"),
        pytest.param(ANY, _preflight(request_headers="x-custom"), id="header-custom"),
        pytest.param(
            ANY, _preflight(request_headers="content-type, cookie"), id="header-with-allowed"
        ),
        pytest.param(ANY, _preflight(request_headers="x-api-key"), id="header-api-key"),
        pytest.param(ANY, _preflight(request_headers="authorization x"), id="header-garbled"),
    ],
)
def test_cors_preflight_refused(settings: Settings, head: RequestHead) -> None:
    response = CORS(settings).preflight(head)
    assert response.status == 403
    assert json.loads(response.body)["error"] == "access_denied"
    fields = _fields(response)
    assert not any(name.startswith("access-control-") for name in fields)


# --- actual responses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "origin", "allow_origin", "vary"),
    [
        pytest.param(ANY, APP, "*", False, id="any"),
        pytest.param(LISTED, APP, APP, True, id="listed"),
        pytest.param(LISTED, INSPECTOR, INSPECTOR, True, id="listed-second"),
    ],
)
@pytest.mark.parametrize("status", [201, 400, 401, 429, 503])
def test_cors_apply_adds_origin_and_exposed_headers(
    settings: Settings, origin: str, allow_origin: str, vary: bool, status: int
) -> None:
    original = json_response(status, {"error": "x"}, [("Retry-After", "3")])
    before = list(original.headers)
    response = CORS(settings).apply(_head("POST", origin=origin), original)
    assert response.status == status
    assert response.headers[: len(before)] == before
    fields = _fields(response)
    assert fields["access-control-allow-origin"] == [allow_origin]
    (exposed,) = fields["access-control-expose-headers"]
    assert {h.strip().lower() for h in exposed.split(",")} == EXPOSED
    assert "access-control-allow-credentials" not in fields
    assert fields.get("vary") == (["Origin"] if vary else None)


@pytest.mark.parametrize(
    ("settings", "head"),
    [
        pytest.param(ANY, _head("POST"), id="no-origin"),
        pytest.param(LISTED, _head("POST"), id="listed-no-origin"),
        pytest.param(LISTED, _head("POST", origin="https://evil.example"), id="not-listed"),
        pytest.param(OFF, _head("POST", origin=APP), id="off"),
    ],
)
def test_cors_apply_adds_nothing(settings: Settings, head: RequestHead) -> None:
    original = _created()
    before = list(original.headers)
    assert CORS(settings).apply(head, original).headers == before


@pytest.mark.parametrize(
    ("settings", "origin", "expected"),
    [
        pytest.param(ANY, APP, "*", id="any"),
        pytest.param(ANY, None, None, id="any-no-origin"),
        pytest.param(LISTED, APP, APP, id="listed"),
        pytest.param(LISTED, APP + "/", None, id="listed-trailing-slash"),
        pytest.param(LISTED, "https://evil.example", None, id="not-listed"),
        pytest.param(LISTED, "*", None, id="literal-star"),
        pytest.param(OFF, APP, None, id="off"),
    ],
)
def test_cors_allowed_origin(settings: Settings, origin: str | None, expected: str | None) -> None:
    assert CORS(settings).allowed_origin(origin) == expected
