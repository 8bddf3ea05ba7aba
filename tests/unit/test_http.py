"""The neutral HTTP layer: content type, declared length, JSON and error responses."""

from __future__ import annotations

import json

import pytest

from dcr_middleware.core._http import (
    check_content_type,
    check_declared_length,
    error_response,
    json_response,
    too_large,
)
from dcr_middleware.core.errors import (
    DCRError,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
    InvalidRequestError,
    PayloadTooLargeError,
    StorageError,
    UnsupportedMediaTypeError,
)

NO_STORE = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
]


@pytest.mark.parametrize(
    "value",
    [
        "application/json",
        "Application/JSON",
        " application/json ",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/json; charset=utf8",
        "application/json; foo=bar",
    ],
)
def test_check_content_type_accepts(value: str) -> None:
    check_content_type(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("text/plain", id="text"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param("application/jsonp", id="jsonp"),
        pytest.param("application/json-patch+json", id="json-patch"),
        pytest.param("application/*", id="wildcard"),
        pytest.param("application/json; charset=latin-1", id="latin-1"),
        pytest.param("application/json; charset=utf-16", id="utf-16"),
    ],
)
def test_check_content_type_rejects(value: str | None) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as info:
        check_content_type(value)
    assert info.value.status == 415


@pytest.mark.parametrize(
    ("value", "length"),
    [
        pytest.param(None, None, id="missing"),
        pytest.param("", None, id="empty"),
        pytest.param("0", 0, id="zero"),
        pytest.param("100", 100, id="at-limit"),
        pytest.param("0099", 99, id="leading-zeros"),
    ],
)
def test_check_declared_length_accepts(value: str | None, length: int | None) -> None:
    assert check_declared_length(value, 100) == length


def test_check_declared_length_rejects_over_limit() -> None:
    with pytest.raises(PayloadTooLargeError) as info:
        check_declared_length("101", 100)
    assert info.value.status == 413
    assert "100" in info.value.description


def test_check_declared_length_rejects_huge_value() -> None:
    with pytest.raises(PayloadTooLargeError):
        check_declared_length("9" * 100, 100)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("abc", id="word"),
        pytest.param("-1", id="negative"),
        pytest.param("1.5", id="fraction"),
        pytest.param(" 5", id="space"),
        pytest.param("5,5", id="list"),
        pytest.param("\u0661\u0662", id="non-ascii-digits"),
        pytest.param("\u00b2", id="superscript"),
    ],
)
def test_check_declared_length_rejects_non_number(value: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_declared_length(value, 100)
    assert type(info.value) is InvalidRequestError
    assert info.value.status == 400


def test_too_large_names_limit() -> None:
    error = too_large(65536)
    assert isinstance(error, PayloadTooLargeError)
    assert "65536" in error.description


def test_json_response_shape() -> None:
    response = json_response(201, {"client_id": "x", "n": "\u540d"}, [("X-Extra", "1")])
    assert response.status == 201
    assert response.headers == [*NO_STORE, ("X-Extra", "1")]
    assert json.loads(response.body) == {"client_id": "x", "n": "\u540d"}
    assert "\u540d".encode() in response.body


def test_json_response_escapes_lone_surrogate() -> None:
    response = json_response(400, {"error_description": "bad \ud800"})
    assert json.loads(response.body.decode("utf-8")) == {"error_description": "bad \ud800"}


@pytest.mark.parametrize(
    ("error", "status", "code", "extra"),
    [
        pytest.param(
            InvalidClientMetadataError("scope: bad"), 400, "invalid_client_metadata", [], id="md"
        ),
        pytest.param(
            InvalidRedirectURIError("redirect_uris: bad"), 400, "invalid_redirect_uri", [], id="uri"
        ),
        pytest.param(InvalidRequestError("bad"), 400, "invalid_request", [], id="request"),
        pytest.param(UnsupportedMediaTypeError("bad"), 415, "invalid_request", [], id="media-type"),
        pytest.param(PayloadTooLargeError("bad"), 413, "invalid_request", [], id="too-large"),
        pytest.param(
            StorageError("down"),
            503,
            "temporarily_unavailable",
            [("Retry-After", "1")],
            id="storage",
        ),
    ],
)
def test_error_response_shape(
    error: DCRError, status: int, code: str, extra: list[tuple[str, str]]
) -> None:
    response = error_response(error)
    assert response.status == status
    assert response.headers == [*NO_STORE, *extra]
    assert json.loads(response.body) == {
        "error": code,
        "error_description": error.description,
    }


def test_error_response_non_ascii_and_quotes_are_valid_json() -> None:
    description = 'client_name: "caf\u00e9" \\ \ud800'
    body = error_response(InvalidClientMetadataError(description)).body
    body.decode("utf-8")
    assert json.loads(body)["error"] == "invalid_client_metadata"


def test_error_response_description_uses_only_rfc_6749_characters() -> None:
    # RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E only.
    description = 'client_name: "caf\u00e9" \\ \ud800 \n\t end'
    text = json.loads(error_response(InvalidClientMetadataError(description)).body)
    assert text["error_description"] == "client_name: ?caf?? ? ? ?? end"
