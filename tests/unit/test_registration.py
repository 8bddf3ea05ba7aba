"""The registration decision: body in, credentials issued, stored client and response out."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from dcr_middleware.core.client import RegisteredClient
from dcr_middleware.core.errors import InvalidClientMetadataError, InvalidRedirectURIError
from dcr_middleware.core.registration import parse_json_object, prepare_registration
from dcr_middleware.core.settings import Settings

NOW = 1_700_000_000
WEB = "https://app.example.com/cb"
ALL_METHODS = Settings(
    allowed_auth_methods=(
        "none",
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    )
)


class Tokens:
    """A deterministic token factory that records the sizes it was asked for."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, size: int) -> str:
        self.sizes.append(size)
        return f"tok{len(self.sizes)}-{size}"


def body(**fields: Any) -> bytes:
    return json.dumps({"redirect_uris": [WEB], **fields}).encode()


def register(raw: bytes, settings: Settings = ALL_METHODS) -> tuple[Any, Tokens]:
    tokens = Tokens()
    return prepare_registration(raw, settings, now=NOW, token=tokens), tokens


@pytest.mark.parametrize(
    "method", ["client_secret_basic", "client_secret_post", "client_secret_jwt"]
)
def test_prepare_registration_issues_secret_for_secret_methods(method: str) -> None:
    new, tokens = register(body(token_endpoint_auth_method=method))
    # client id, client secret, then the RFC 7592 registration access token
    assert tokens.sizes == [16, 32, 32]
    assert new.client_id == "tok1-16"
    assert new.response["client_id"] == "tok1-16"
    assert new.response["client_secret"] == "tok2-32"
    assert new.response["client_secret_expires_at"] == 0
    assert new.response["client_id_issued_at"] == NOW
    assert new.client.client_secret_hash == hashlib.sha256(b"tok2-32").hexdigest()
    assert new.client.check_secret("tok2-32", now=NOW)
    assert new.response["registration_access_token"] == "tok3-32"
    assert new.client.registration_token_hash == hashlib.sha256(b"tok3-32").hexdigest()


def test_prepare_registration_default_method_gets_secret() -> None:
    new, tokens = register(body())
    assert tokens.sizes == [16, 32, 32]
    assert new.response["token_endpoint_auth_method"] == "client_secret_basic"
    assert new.response["client_secret"] == "tok2-32"


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        pytest.param("none", {}, id="none"),
        pytest.param(
            "private_key_jwt", {"jwks_uri": "https://app.example.com/jwks"}, id="private-key-jwt"
        ),
    ],
)
def test_prepare_registration_issues_no_secret_for_other_methods(
    method: str, extra: dict[str, Any]
) -> None:
    new, tokens = register(body(token_endpoint_auth_method=method, **extra))
    assert tokens.sizes == [16, 32]  # client id and registration access token only
    assert new.response["registration_access_token"] == "tok2-32"
    assert "client_secret" not in new.response
    assert "client_secret_expires_at" not in new.response
    assert new.client.client_secret_hash is None
    assert new.client.client_secret is None
    assert new.client.client_secret_expires_at == 0
    assert not new.client.check_secret("", now=NOW)


def test_prepare_registration_public_client_is_public() -> None:
    new, _ = register(body(token_endpoint_auth_method="none"))
    assert new.client.is_public


def test_prepare_registration_private_key_jwt_client_is_not_public() -> None:
    new, _ = register(
        body(token_endpoint_auth_method="private_key_jwt", jwks_uri="https://app.example.com/j")
    )
    assert not new.client.is_public


def test_prepare_registration_secret_expiry_from_ttl() -> None:
    settings = Settings(client_secret_ttl=3600)
    new, _ = register(body(), settings)
    assert new.response["client_secret_expires_at"] == NOW + 3600
    assert new.client.client_secret_expires_at == NOW + 3600
    assert new.client.check_secret("tok2-32", now=NOW + 3599)
    assert not new.client.check_secret("tok2-32", now=NOW + 3600)


@pytest.mark.parametrize(
    "method", ["client_secret_basic", "client_secret_post", "client_secret_jwt"]
)
def test_prepare_registration_stores_only_hash_except_for_client_secret_jwt(method: str) -> None:
    new, _ = register(body(token_endpoint_auth_method=method))
    record = new.client.to_record()
    if method == "client_secret_jwt":
        assert new.client.client_secret == "tok2-32"
    else:
        assert new.client.client_secret is None
        assert "tok2-32" not in record
    assert hashlib.sha256(b"tok2-32").hexdigest() in record


def test_prepare_registration_response_echoes_metadata() -> None:
    raw = {
        "redirect_uris": [WEB],
        "client_name": "Example",
        "client_name#ja-Jpan-JP": "\u540d\u524d",
        "scope": "openid",
        "unknown": "dropped",
    }
    new, _ = register(json.dumps(raw).encode())
    for key in ("redirect_uris", "client_name", "client_name#ja-Jpan-JP", "scope"):
        assert new.response[key] == raw[key]
    assert "unknown" not in new.response
    assert new.response["grant_types"] == ["authorization_code"]
    assert new.client.metadata == {
        k: v
        for k, v in new.response.items()
        if k
        not in (
            "client_id",
            "client_id_issued_at",
            "client_secret",
            "client_secret_expires_at",
            "registration_client_uri",
            "registration_access_token",
        )
    }


def test_prepare_registration_client_cannot_choose_its_credentials() -> None:
    raw = body(client_id="mine", client_secret="mine", client_id_issued_at=1)
    new, _ = register(raw)
    assert new.response["client_id"] == "tok1-16"
    assert new.response["client_secret"] == "tok2-32"
    assert new.response["client_id_issued_at"] == NOW


def test_prepare_registration_record_round_trips() -> None:
    new, _ = register(body(client_name="x"))
    assert RegisteredClient.from_record(new.client.to_record()) == new.client


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param(b"[]", InvalidClientMetadataError, id="not-object"),
        pytest.param(b'{"redirect_uris": ["javascript:x"]}', InvalidRedirectURIError, id="uri"),
        pytest.param(b'{"redirect_uris": [1]}', InvalidRedirectURIError, id="uri-type"),
        pytest.param(body(grant_types="x"), InvalidClientMetadataError, id="metadata"),
    ],
)
def test_prepare_registration_invalid_body_issues_nothing(
    raw: bytes, error: type[Exception]
) -> None:
    tokens = Tokens()
    with pytest.raises(InvalidClientMetadataError) as info:
        prepare_registration(raw, ALL_METHODS, now=NOW, token=tokens)
    assert type(info.value) is error
    assert tokens.sizes == []


# --- parse_json_object -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        pytest.param(b"{}", {}, id="empty"),
        pytest.param(b' \n{"a": [1, 2.5, true, null]}\t', {"a": [1, 2.5, True, None]}, id="ws"),
        pytest.param('{"n": "\u540d"}'.encode(), {"n": "\u540d"}, id="utf-8"),
        pytest.param(b'{"n": "\\u540d"}', {"n": "\u540d"}, id="escaped"),
        pytest.param(b'{"big": 1e300}', {"big": 1e300}, id="big-float"),
        pytest.param(b'{"i": ' + b"9" * 4000 + b"}", {"i": int("9" * 4000)}, id="long-int"),
    ],
)
def test_parse_json_object_accepts(raw: bytes, value: dict[str, Any]) -> None:
    assert parse_json_object(raw) == value


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   ", id="blank"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"x"', id="string"),
        pytest.param(b"1", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"true", id="true"),
        pytest.param(b"{}{}", id="two-objects"),
        pytest.param(b"\xff{}", id="bad-utf-8"),
        pytest.param(b'{"a": "\xc3"}', id="truncated-utf-8"),
        pytest.param("{}".encode("utf-16"), id="utf-16"),
        pytest.param(b"\xef\xbb\xbf{}", id="utf-8-bom"),
        pytest.param(b'{"a": NaN}', id="nan"),
        pytest.param(b'{"a": Infinity}', id="infinity"),
        pytest.param(b'{"a": -Infinity}', id="minus-infinity"),
        pytest.param(b'{"a": 1e999}', id="float-overflow"),
        pytest.param(b'{"a": -1e999}', id="float-overflow-negative"),
        pytest.param(b'{"a": ' + b"1" * 5000 + b"}", id="huge-int"),
        pytest.param(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="deep-arrays"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="deep-objects"),
        pytest.param(b"{'a': 1}", id="single-quotes"),
        pytest.param(b'{"a": 1,}', id="trailing-comma"),
    ],
)
def test_parse_json_object_rejects(raw: bytes) -> None:
    with pytest.raises(InvalidClientMetadataError) as info:
        parse_json_object(raw)
    assert type(info.value) is InvalidClientMetadataError
    assert info.value.status == 400


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"client_name": "a", "client_name": "b"}', id="top-level"),
        pytest.param(b'{"jwks": {"keys": [], "keys": []}, "client_name": "x"}', id="nested"),
    ],
)
def test_parse_json_object_rejects_repeated_members(raw: bytes) -> None:
    with pytest.raises(InvalidClientMetadataError, match="repeated in the request body"):
        parse_json_object(raw)


def test_parse_json_object_non_object_says_so() -> None:
    with pytest.raises(InvalidClientMetadataError, match="JSON object"):
        parse_json_object(b"[{}]")
