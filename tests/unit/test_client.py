"""RegisteredClient: what an authorization server asks of a registered client."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest

from dcr_middleware.core.client import RegisteredClient

SECRET = "s3cr3t-value-of-the-client"
ISSUED = 1_700_000_000


def make(
    metadata: dict[str, Any] | None = None,
    *,
    expires_at: int = 0,
    secret: str | None = SECRET,
    plaintext: str | None = None,
) -> RegisteredClient:
    return RegisteredClient(
        client_id="cid",
        client_id_issued_at=ISSUED,
        metadata=metadata if metadata is not None else {},
        client_secret_expires_at=expires_at,
        client_secret_hash=hashlib.sha256(secret.encode()).hexdigest() if secret else None,
        client_secret=plaintext,
    )


LOOPBACK_V4 = "http://127.0.0.1/cb"
LOOPBACK_V6 = "http://[::1]/cb"
LOCALHOST = "http://localhost/cb?tenant=1"
WEB = "https://app.example.com/cb"
NATIVE = "com.example.app:/cb"
REGISTERED = {"redirect_uris": [LOOPBACK_V4, LOOPBACK_V6, LOCALHOST, WEB, NATIVE]}


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        pytest.param(WEB, True, id="exact-https"),
        pytest.param(NATIVE, True, id="exact-native"),
        pytest.param(LOOPBACK_V4, True, id="exact-loopback"),
        pytest.param("http://127.0.0.1:51000/cb", True, id="loopback-v4-any-port"),
        pytest.param("http://127.0.0.1:80/cb", True, id="loopback-v4-port-80"),
        pytest.param("http://[::1]:3000/cb", True, id="loopback-v6-any-port"),
        pytest.param("http://localhost:8080/cb?tenant=1", True, id="localhost-any-port"),
        pytest.param("http://LOCALHOST:8080/cb?tenant=1", True, id="localhost-case"),
        pytest.param("http://127.0.0.1:51000/other", False, id="loopback-other-path"),
        pytest.param("http://127.0.0.1:51000/cb?x=1", False, id="loopback-extra-query"),
        pytest.param("http://localhost:8080/cb", False, id="localhost-missing-query"),
        pytest.param("http://localhost:8080/cb?tenant=2", False, id="localhost-other-query"),
        pytest.param("http://127.0.0.2:51000/cb", False, id="other-loopback-address"),
        pytest.param("http://localhost:51000/cb", False, id="localhost-for-127"),
        pytest.param("https://127.0.0.1:51000/cb", False, id="https-loopback-no-port-rule"),
        pytest.param("https://app.example.com:8443/cb", False, id="https-other-port"),
        pytest.param("https://app.example.com/cb/", False, id="https-trailing-slash"),
        pytest.param("https://APP.example.com/cb", False, id="https-case-differs"),
        pytest.param("https://app.example.com/cb?x=1", False, id="https-extra-query"),
        pytest.param("http://app.example.com/cb", False, id="http-for-https"),
        pytest.param("http://127.0.0.1:51000/cb#x", False, id="loopback-fragment"),
        pytest.param("http://u@127.0.0.1:51000/cb", False, id="loopback-userinfo"),
        pytest.param("com.example.app:/cb2", False, id="native-other-path"),
        pytest.param("", False, id="empty"),
    ],
)
def test_registered_client_check_redirect_uri(uri: str, allowed: bool) -> None:
    assert make(REGISTERED).check_redirect_uri(uri) is allowed


def test_registered_client_check_redirect_uri_https_loopback_needs_exact_port() -> None:
    client = make({"redirect_uris": ["https://127.0.0.1:8443/cb"]})
    assert client.check_redirect_uri("https://127.0.0.1:8443/cb")
    assert not client.check_redirect_uri("https://127.0.0.1:9443/cb")


def test_registered_client_check_redirect_uri_without_registered_uris() -> None:
    assert not make({}).check_redirect_uri("http://127.0.0.1/cb")


def test_registered_client_properties() -> None:
    client = make(
        {
            "redirect_uris": [WEB],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
            "scope": "openid profile",
        }
    )
    assert client.redirect_uris == [WEB]
    assert client.grant_types == ["authorization_code", "refresh_token"]
    assert client.response_types == ["code"]
    assert client.token_endpoint_auth_method == "client_secret_post"
    assert client.scope == "openid profile"
    assert client.is_public is False


def test_registered_client_properties_when_metadata_empty() -> None:
    client = make({}, secret=None)
    assert client.redirect_uris == []
    assert client.grant_types == []
    assert client.response_types == []
    assert client.token_endpoint_auth_method == "client_secret_basic"
    assert client.scope is None
    # RFC 7591 §2: an omitted method means client_secret_basic, a confidential client.
    assert client.is_public is False


def test_registered_client_lists_are_copies() -> None:
    client = make({"redirect_uris": [WEB]})
    client.redirect_uris.append("https://evil.example/cb")
    assert client.redirect_uris == [WEB]


@pytest.mark.parametrize(
    ("grant", "allowed"),
    [
        ("authorization_code", True),
        ("refresh_token", True),
        ("client_credentials", False),
        ("", False),
    ],
)
def test_registered_client_allows_grant_type(grant: str, allowed: bool) -> None:
    client = make({"grant_types": ["authorization_code", "refresh_token"]})
    assert client.allows_grant_type(grant) is allowed


@pytest.mark.parametrize(
    ("response_type", "allowed"),
    [
        pytest.param("code", True, id="code"),
        pytest.param("code id_token", True, id="hybrid"),
        pytest.param("id_token code", True, id="hybrid-reordered"),
        pytest.param("token", False, id="token"),
        pytest.param("id_token", False, id="id-token-alone"),
        pytest.param("code id_token token", False, id="superset"),
        pytest.param("", False, id="empty"),
    ],
)
def test_registered_client_allows_response_type(response_type: str, allowed: bool) -> None:
    client = make({"response_types": ["code", "code id_token"]})
    assert client.allows_response_type(response_type) is allowed


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        pytest.param("openid", True, id="one"),
        pytest.param("profile openid", True, id="subset-reordered"),
        pytest.param("openid profile email", True, id="all"),
        pytest.param("openid admin", False, id="extra"),
        pytest.param("admin", False, id="other"),
        pytest.param("", True, id="empty"),
    ],
)
def test_registered_client_allows_scope(scope: str, allowed: bool) -> None:
    assert make({"scope": "openid profile email"}).allows_scope(scope) is allowed


def test_registered_client_allows_any_scope_when_none_registered() -> None:
    assert make({}).allows_scope("anything at all")


def test_registered_client_check_secret() -> None:
    client = make()
    assert client.check_secret(SECRET, now=ISSUED)
    assert not client.check_secret(SECRET + "x", now=ISSUED)
    assert not client.check_secret("", now=ISSUED)


def test_registered_client_check_secret_public_client() -> None:
    assert not make(secret=None).check_secret(SECRET, now=ISSUED)
    assert not make(secret=None).check_secret("", now=ISSUED)


@pytest.mark.parametrize(
    ("now", "valid"),
    [
        pytest.param(ISSUED + 3599, True, id="before-expiry"),
        pytest.param(ISSUED + 3599.9, True, id="just-before-expiry"),
        pytest.param(ISSUED + 3600, False, id="at-expiry"),
        pytest.param(ISSUED + 86400, False, id="after-expiry"),
    ],
)
def test_registered_client_check_secret_honours_expiry(now: float, valid: bool) -> None:
    client = make(expires_at=ISSUED + 3600)
    assert client.secret_expired(now) is not valid
    assert client.check_secret(SECRET, now=now) is valid


def test_registered_client_secret_never_expires_when_zero() -> None:
    client = make(expires_at=0)
    assert not client.secret_expired(now=10**12)
    assert client.check_secret(SECRET, now=10**12)


def test_registered_client_repr_hides_secrets() -> None:
    client = make(plaintext="plain-hmac-key")
    text = repr(client)
    assert "plain-hmac-key" not in text
    assert hashlib.sha256(SECRET.encode()).hexdigest() not in text
    assert "cid" in text


@pytest.mark.parametrize(
    "client",
    [
        pytest.param(make({"redirect_uris": [WEB], "client_name#ja-Jpan-JP": "\u540d"}), id="full"),
        pytest.param(make({}, secret=None), id="public"),
        pytest.param(
            make({"token_endpoint_auth_method": "client_secret_jwt"}, plaintext="k"), id="jwt"
        ),
        pytest.param(make({"n": "\ud800"}, expires_at=ISSUED + 5), id="lone-surrogate"),
    ],
)
def test_registered_client_record_round_trip(client: RegisteredClient) -> None:
    record = client.to_record()
    assert record.isascii()
    assert RegisteredClient.from_record(record) == client
    assert RegisteredClient.from_record(record.encode("ascii")) == client


def test_registered_client_record_holds_hash_not_secret() -> None:
    record = json.loads(make().to_record())
    assert record["v"] == 1
    assert record["client_secret_hash"] == hashlib.sha256(SECRET.encode()).hexdigest()
    assert record["client_secret"] is None
    assert SECRET not in make().to_record()


def test_registered_client_from_record_without_plaintext_key() -> None:
    record = json.loads(make().to_record())
    del record["client_secret"]
    loaded = RegisteredClient.from_record(json.dumps(record))
    assert loaded.client_secret is None
    assert loaded.check_secret(SECRET, now=ISSUED)


def test_registered_client_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make().client_id = "other"  # type: ignore[misc]
