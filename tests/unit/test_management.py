"""RFC 7592 client configuration endpoint: the pure decisions (path, token check, read body,
update) and the absolute ``registration_client_uri`` they are answered with.

Time and randomness are fixed: the client is registered at ``REGISTERED`` with tokens
``reg1-16`` (client id), ``reg2-32`` (secret, for secret methods) and then the registration
access token; an update runs at ``NOW`` with tokens ``upd1-32``, ``upd2-32``... in call order.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcr_middleware.core import client_ip
from dcr_middleware.core.admission import Admission, RequestHead
from dcr_middleware.core.client import RegisteredClient
from dcr_middleware.core.credentials import SECRET_METHODS
from dcr_middleware.core.errors import (
    DCRError,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
    InvalidRequestError,
    InvalidTokenError,
)
from dcr_middleware.core.management import (
    Update,
    authorize,
    client_id_from_path,
    client_information,
    prepare_update,
)
from dcr_middleware.core.registration import prepare_registration
from dcr_middleware.core.settings import Settings

REGISTERED = 1_700_000_000
NOW = REGISTERED + 100
WEB = "https://app.example.com/cb"
OTHER = "https://app.example.com/other"
URI = "https://as.example.com/register/reg1-16"
ALL_METHODS = Settings(
    allowed_auth_methods=(
        "none",
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    )
)
TTL = Settings(allowed_auth_methods=ALL_METHODS.allowed_auth_methods, client_secret_ttl=3600)
NO_ROTATION = Settings(
    allowed_auth_methods=ALL_METHODS.allowed_auth_methods, rotate_registration_access_token=False
)
SERVER_FIELDS = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)


class Tokens:
    """A deterministic token factory that records the sizes it was asked for."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.sizes: list[int] = []

    def __call__(self, size: int) -> str:
        self.sizes.append(size)
        return f"{self.prefix}{len(self.sizes)}-{size}"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def register(settings: Settings = ALL_METHODS, **fields: Any) -> tuple[RegisteredClient, str]:
    """A stored client and its registration access token."""
    raw = json.dumps({"redirect_uris": [WEB], **fields}).encode()
    new = prepare_registration(raw, settings, now=REGISTERED, token=Tokens("reg"))
    return new.client, new.response["registration_access_token"]


def update(
    current: RegisteredClient,
    presented: str,
    settings: Settings = ALL_METHODS,
    **fields: Any,
) -> tuple[Update, Tokens]:
    """``PUT`` the client's own ``client_id`` plus ``fields`` (``None`` values are sent as null)."""
    tokens = Tokens("upd")
    raw = json.dumps({"client_id": current.client_id, **fields}).encode()
    result = prepare_update(
        raw, current, settings, presented_token=presented, now=NOW, token=tokens
    )
    return result, tokens


# --- client_id_from_path -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "base", "expected"),
    [
        pytest.param("/register/abc", "/register", "abc", id="one-segment"),
        pytest.param("/register/a-B_9", "/register", "a-B_9", id="base64url"),
        pytest.param("/oauth/register/x", "/oauth/register", "x", id="nested-base"),
        pytest.param("/register/..", "/register", "..", id="dots-are-a-segment"),
        pytest.param("/register", "/register", None, id="the-endpoint-itself"),
        pytest.param("/register/", "/register", None, id="empty-segment"),
        pytest.param("/register/a/b", "/register", None, id="two-segments"),
        pytest.param("/register/abc/", "/register", None, id="trailing-slash"),
        pytest.param("/register//abc", "/register", None, id="double-slash"),
        pytest.param("/registerabc", "/register", None, id="prefix-without-slash"),
        pytest.param("/registers/abc", "/register", None, id="longer-first-segment"),
        pytest.param("/other/abc", "/register", None, id="other-path"),
        pytest.param("/x/register/abc", "/register", None, id="base-not-at-start"),
        pytest.param("/Register/abc", "/register", None, id="case-sensitive"),
        pytest.param("", "/register", None, id="empty-path"),
    ],
)
def test_client_id_from_path_table(path: str, base: str, expected: str | None) -> None:
    assert client_id_from_path(path, base) == expected


# --- authorize -----------------------------------------------------------------------------------


def test_authorize_right_token_returns_the_client() -> None:
    client, token = register()
    assert authorize(client, sha(token)) is client


def _refusals() -> list[Any]:
    client, token = register()
    no_hash = RegisteredClient(client_id="legacy", client_id_issued_at=REGISTERED, metadata={})
    return [
        pytest.param(client, sha("wrong"), id="wrong-token"),
        pytest.param(client, sha("other-token"), id="other-clients-token"),
        pytest.param(client, sha(token).upper(), id="digest-case-differs"),
        pytest.param(None, sha(token), id="unknown-client"),
        pytest.param(client, None, id="missing-token"),
        pytest.param(None, None, id="unknown-client-missing-token"),
        pytest.param(no_hash, sha(token), id="client-without-token-hash"),
        # The placeholder digest compared against when nothing is stored must never match.
        pytest.param(no_hash, "0" * 64, id="client-without-token-hash-zero-digest"),
        pytest.param(no_hash, None, id="client-without-token-hash-missing-token"),
        pytest.param(client, "", id="empty-digest"),
    ]


@pytest.mark.parametrize(("client", "digest"), _refusals())
def test_authorize_refuses_with_one_indistinguishable_error(
    client: RegisteredClient | None, digest: str | None
) -> None:
    with pytest.raises(InvalidTokenError) as info:
        authorize(client, digest)
    error = info.value
    assert type(error) is InvalidTokenError
    assert (error.status, error.error) == (401, "invalid_token")
    assert error.description == "the registration access token is invalid"
    assert error.headers() == [("WWW-Authenticate", 'Bearer error="invalid_token"')]


# --- client_information --------------------------------------------------------------------------


def test_client_information_secret_client_shows_expiry_not_secret() -> None:
    client, _ = register(TTL, client_name="App")
    body = client_information(client, URI, "presented")
    assert body == {
        "client_id": "reg1-16",
        "client_id_issued_at": REGISTERED,
        "client_secret_expires_at": REGISTERED + 3600,
        **client.metadata,
        "registration_client_uri": URI,
        "registration_access_token": "presented",
    }
    assert "client_secret" not in body
    assert body["client_name"] == "App"


def test_client_information_with_secret_shows_it() -> None:
    client, _ = register()
    body = client_information(client, URI, "tok", secret="the-secret")
    assert body["client_secret"] == "the-secret"
    assert body["client_secret_expires_at"] == 0


def test_client_information_public_client_has_no_secret_fields() -> None:
    client, _ = register(token_endpoint_auth_method="none")
    body = client_information(client, URI, "tok")
    assert "client_secret" not in body
    assert "client_secret_expires_at" not in body
    assert body["token_endpoint_auth_method"] == "none"
    assert set(body) == {
        "client_id",
        "client_id_issued_at",
        *client.metadata,
        "registration_client_uri",
        "registration_access_token",
    }


def test_client_information_plaintext_jwt_secret_not_shown() -> None:
    client, _ = register(token_endpoint_auth_method="client_secret_jwt")
    assert client.client_secret == "reg2-32"
    assert "reg2-32" not in json.dumps(client_information(client, URI, "tok"))


# --- prepare_update: the request's shape ---------------------------------------------------------


@pytest.mark.parametrize(
    "client_id",
    [
        pytest.param(None, id="missing"),
        pytest.param("someone-else", id="different"),
        pytest.param("REG1-16", id="different-case"),
        pytest.param(["reg1-16"], id="not-a-string"),
    ],
)
def test_prepare_update_client_id_must_match(client_id: Any) -> None:
    client, token = register()
    raw: dict[str, Any] = {"redirect_uris": [WEB]}
    if client_id is not None:
        raw["client_id"] = client_id
    tokens = Tokens("upd")
    with pytest.raises(InvalidRequestError) as info:
        prepare_update(
            json.dumps(raw).encode(),
            client,
            ALL_METHODS,
            presented_token=token,
            now=NOW,
            token=tokens,
        )
    assert type(info.value) is InvalidRequestError
    assert (info.value.status, info.value.error) == (400, "invalid_request")
    assert "client_id" in info.value.description
    assert tokens.sizes == []


@pytest.mark.parametrize("field", SERVER_FIELDS)
def test_prepare_update_refuses_server_set_fields(field: str) -> None:
    client, token = register()
    sent: dict[str, Any] = {field: 1}
    with pytest.raises(InvalidRequestError) as info:
        update(client, token, redirect_uris=[WEB], **sent)
    assert type(info.value) is InvalidRequestError
    assert (info.value.status, info.value.error) == (400, "invalid_request")
    assert field in info.value.description


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b'{"client_id": "reg1-16", "client_id": "reg1-16"}', id="repeated"),
    ],
)
def test_prepare_update_body_not_one_json_object(raw: bytes) -> None:
    client, token = register()
    with pytest.raises(InvalidClientMetadataError) as info:
        prepare_update(raw, client, ALL_METHODS, presented_token=token, now=NOW, token=Tokens("u"))
    assert type(info.value) is InvalidClientMetadataError


# --- prepare_update: client_secret in the body ---------------------------------------------------


def _wrong_secrets() -> list[Any]:
    expired, _ = register(TTL)
    expired = RegisteredClient(
        client_id=expired.client_id,
        client_id_issued_at=expired.client_id_issued_at,
        metadata=expired.metadata,
        client_secret_expires_at=NOW,  # expires exactly now
        client_secret_hash=expired.client_secret_hash,
        registration_token_hash=expired.registration_token_hash,
    )
    public, _ = register(token_endpoint_auth_method="none")
    basic, _ = register()
    return [
        pytest.param(basic, "wrong", id="wrong"),
        pytest.param(basic, "", id="empty"),
        pytest.param(basic, 123, id="not-a-string"),
        pytest.param(basic, ["reg2-32"], id="list"),
        pytest.param(expired, "reg2-32", id="expired"),
        pytest.param(public, "reg2-32", id="client-has-no-secret"),
    ]


@pytest.mark.parametrize(("client", "secret"), _wrong_secrets())
def test_prepare_update_client_secret_must_match(client: RegisteredClient, secret: Any) -> None:
    tokens = Tokens("upd")
    raw = {"client_id": client.client_id, "redirect_uris": [WEB], "client_secret": secret}
    with pytest.raises(InvalidClientMetadataError) as info:
        prepare_update(
            json.dumps(raw).encode(),
            client,
            TTL,
            presented_token="t",
            now=NOW,
            token=tokens,
        )
    assert type(info.value) is InvalidClientMetadataError
    assert (info.value.status, info.value.error) == (400, "invalid_client_metadata")
    assert "client_secret" in info.value.description
    assert tokens.sizes == []


def test_prepare_update_matching_secret_is_kept_and_echoed() -> None:
    client, token = register(TTL)
    result, _ = update(client, token, TTL, redirect_uris=[WEB], client_secret="reg2-32")
    assert result.secret == "reg2-32"
    assert result.client.client_secret_hash == client.client_secret_hash == sha("reg2-32")
    assert result.client.client_secret_expires_at == REGISTERED + 3600
    assert "client_secret" not in result.client.metadata


def test_prepare_update_null_secret_is_not_sent() -> None:
    client, token = register()
    result, _ = update(client, token, redirect_uris=[WEB], client_secret=None)
    assert result.secret is None
    assert result.client.client_secret_hash == sha("reg2-32")


# --- prepare_update: replacement semantics (RFC 7592 §2.2) ---------------------------------------


TAGGED: dict[str, Any] = {"client_name#ja-Jpan-JP": "\u540d\u524d"}


def test_prepare_update_omitted_fields_disappear_or_take_defaults() -> None:
    client, token = register(
        client_name="App",
        scope="openid",
        contacts=["ops@example.com"],
        logo_uri="https://app.example.com/logo.png",
        grant_types=["authorization_code", "refresh_token"],
        token_endpoint_auth_method="client_secret_post",
        **TAGGED,
    )
    result, _ = update(client, token, redirect_uris=[OTHER])
    assert result.client.metadata == {
        "redirect_uris": [OTHER],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }


def test_prepare_update_values_replace_not_merge() -> None:
    client, token = register(contacts=["a@example.com", "b@example.com"], client_name="Old")
    assert client.redirect_uris == [WEB]
    result, _ = update(
        client, token, redirect_uris=[OTHER], contacts=["c@example.com"], client_name="New"
    )
    assert result.client.metadata["redirect_uris"] == [OTHER]
    assert result.client.metadata["contacts"] == ["c@example.com"]
    assert result.client.metadata["client_name"] == "New"
    assert not result.client.check_redirect_uri(WEB)


def test_prepare_update_null_field_is_treated_as_omitted() -> None:
    client, token = register(client_name="App", scope="openid")
    result, _ = update(client, token, redirect_uris=[WEB], client_name=None, scope="profile")
    assert "client_name" not in result.client.metadata
    assert result.client.metadata["scope"] == "profile"


def test_prepare_update_keeps_identity_and_issue_time() -> None:
    client, token = register()
    result, _ = update(client, token, redirect_uris=[WEB], client_name="x")
    assert result.client.client_id == client.client_id == "reg1-16"
    assert result.client.client_id_issued_at == REGISTERED
    assert RegisteredClient.from_record(result.client.to_record()) == result.client


def test_prepare_update_ignores_unknown_fields_and_own_credentials() -> None:
    client, token = register()
    result, _ = update(client, token, redirect_uris=[WEB], unknown="x")
    assert "unknown" not in result.client.metadata
    assert "client_id" not in result.client.metadata


# --- prepare_update: the same validation and policy as registration ------------------------------


@pytest.mark.parametrize(
    ("fields", "settings", "error", "mentions"),
    [
        pytest.param(
            {"redirect_uris": ["javascript:alert(1)"]},
            ALL_METHODS,
            InvalidRedirectURIError,
            "redirect_uris",
            id="bad-redirect-uri",
        ),
        pytest.param(
            {"redirect_uris": ["http://app.example.com/cb"]},
            ALL_METHODS,
            InvalidRedirectURIError,
            "redirect_uris",
            id="plain-http-redirect-uri",
        ),
        pytest.param(
            {"redirect_uris": ["https://evil.example/cb"]},
            Settings(allowed_redirect_hosts=("app.example.com",)),
            InvalidRedirectURIError,
            "redirect_uris",
            id="redirect-host-not-allowed",
        ),
        pytest.param(
            {},
            ALL_METHODS,
            InvalidRedirectURIError,
            "redirect_uris",
            id="redirect-uris-omitted-for-code-flow",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "grant_types": ["password"]},
            ALL_METHODS,
            InvalidClientMetadataError,
            "grant_types",
            id="grant-type-not-allowed",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "scope": "admin"},
            Settings(allowed_scopes=("openid",)),
            InvalidClientMetadataError,
            "scope",
            id="scope-not-allowed",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "token_endpoint_auth_method": "client_secret_jwt"},
            Settings(),
            InvalidClientMetadataError,
            "token_endpoint_auth_method",
            id="auth-method-not-allowed",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "client_name": 5},
            ALL_METHODS,
            InvalidClientMetadataError,
            "client_name",
            id="wrong-type",
        ),
        pytest.param(
            {"redirect_uris": [WEB, WEB]},
            ALL_METHODS,
            InvalidRedirectURIError,
            "redirect_uris",
            id="repeated-redirect-uri",
        ),
    ],
)
def test_prepare_update_validates_like_registration(
    fields: dict[str, Any], settings: Settings, error: type[DCRError], mentions: str
) -> None:
    client, token = register()
    tokens = Tokens("upd")
    raw = json.dumps({"client_id": client.client_id, **fields}).encode()
    with pytest.raises(DCRError) as info:
        prepare_update(raw, client, settings, presented_token=token, now=NOW, token=tokens)
    assert type(info.value) is error
    assert info.value.status == 400
    assert mentions in info.value.description
    assert tokens.sizes == []  # nothing issued for a refused update


# --- prepare_update: the registration access token -----------------------------------------------


def test_prepare_update_rotates_token_by_default() -> None:
    client, token = register(token_endpoint_auth_method="none")
    result, tokens = update(client, token, redirect_uris=[WEB], token_endpoint_auth_method="none")
    assert tokens.sizes == [32]  # 256 bits
    assert result.access_token == "upd1-32"
    assert result.client.registration_token_hash == sha("upd1-32")
    assert result.client.registration_token_hash != client.registration_token_hash
    assert authorize(result.client, sha("upd1-32")) is result.client
    with pytest.raises(InvalidTokenError):
        authorize(result.client, sha(token))


def test_prepare_update_keeps_token_without_rotation() -> None:
    client, token = register(token_endpoint_auth_method="none")
    result, tokens = update(
        client, token, NO_ROTATION, redirect_uris=[WEB], token_endpoint_auth_method="none"
    )
    assert tokens.sizes == []
    assert result.access_token == token
    assert result.client.registration_token_hash == client.registration_token_hash == sha(token)


# --- prepare_update: the client secret when the auth method changes or stays ---------------------


def test_prepare_update_none_to_basic_issues_a_secret() -> None:
    client, token = register(TTL, token_endpoint_auth_method="none")
    assert client.client_secret_hash is None
    result, tokens = update(client, token, TTL, redirect_uris=[WEB])
    assert tokens.sizes == [32, 32]  # the new secret, then the rotated access token
    assert result.secret == "upd1-32"
    assert result.access_token == "upd2-32"
    assert result.client.token_endpoint_auth_method == "client_secret_basic"
    assert result.client.client_secret_hash == sha("upd1-32")
    assert result.client.client_secret_expires_at == NOW + 3600
    assert result.client.client_secret is None  # only the hash is kept
    assert result.client.check_secret("upd1-32", now=NOW)
    body = client_information(result.client, URI, result.access_token, result.secret)
    assert body["client_secret"] == "upd1-32"
    assert body["client_secret_expires_at"] == NOW + 3600


def test_prepare_update_basic_to_none_drops_the_secret() -> None:
    client, token = register(TTL)
    result, tokens = update(
        client, token, TTL, redirect_uris=[WEB], token_endpoint_auth_method="none"
    )
    assert tokens.sizes == [32]
    assert result.secret is None
    assert result.client.client_secret_hash is None
    assert result.client.client_secret is None
    assert result.client.client_secret_expires_at == 0
    assert not result.client.check_secret("reg2-32", now=NOW)
    body = client_information(result.client, URI, result.access_token, result.secret)
    assert "client_secret" not in body
    assert "client_secret_expires_at" not in body


def test_prepare_update_basic_to_private_key_jwt_drops_the_secret() -> None:
    client, token = register()
    result, _ = update(
        client,
        token,
        redirect_uris=[WEB],
        token_endpoint_auth_method="private_key_jwt",
        jwks_uri="https://app.example.com/jwks",
    )
    assert result.client.client_secret_hash is None
    assert result.secret is None


def test_prepare_update_kept_secret_keeps_hash_and_expiry() -> None:
    client, token = register(TTL)
    result, tokens = update(
        client, token, TTL, redirect_uris=[WEB], token_endpoint_auth_method="client_secret_post"
    )
    assert tokens.sizes == [32]  # only the access token: no new secret
    assert result.secret is None  # the server cannot show a secret it keeps hashed
    assert result.client.client_secret_hash == client.client_secret_hash == sha("reg2-32")
    assert result.client.client_secret_expires_at == REGISTERED + 3600  # not NOW + 3600
    assert result.client.check_secret("reg2-32", now=NOW)


def test_prepare_update_expired_secret_is_replaced() -> None:
    client, token = register(TTL)
    later = REGISTERED + 3600
    tokens = Tokens("upd")
    raw = json.dumps({"client_id": client.client_id, "redirect_uris": [WEB]}).encode()
    result = prepare_update(raw, client, TTL, presented_token=token, now=later, token=tokens)
    assert result.secret == "upd1-32"
    assert result.client.client_secret_hash == sha("upd1-32")
    assert result.client.client_secret_expires_at == later + 3600


def test_prepare_update_client_secret_jwt_keeps_plaintext() -> None:
    client, token = register(token_endpoint_auth_method="client_secret_jwt")
    result, tokens = update(
        client, token, redirect_uris=[WEB], token_endpoint_auth_method="client_secret_jwt"
    )
    assert tokens.sizes == [32]
    assert result.client.client_secret == "reg2-32"
    assert result.client.client_secret_hash == sha("reg2-32")
    assert result.secret is None


def test_prepare_update_client_secret_jwt_to_basic_drops_plaintext() -> None:
    client, token = register(token_endpoint_auth_method="client_secret_jwt")
    result, _ = update(client, token, redirect_uris=[WEB])
    assert result.client.token_endpoint_auth_method == "client_secret_basic"
    assert result.client.client_secret is None
    assert result.client.client_secret_hash == sha("reg2-32")
    assert "reg2-32" not in result.client.to_record()


def test_prepare_update_basic_to_client_secret_jwt_without_secret_issues_new() -> None:
    # The server holds only the digest of the old secret and client_secret_jwt needs the key.
    client, token = register()
    result, tokens = update(
        client, token, redirect_uris=[WEB], token_endpoint_auth_method="client_secret_jwt"
    )
    assert tokens.sizes == [32, 32]
    assert result.secret == "upd1-32"
    assert result.client.client_secret == "upd1-32"
    assert result.client.client_secret_hash == sha("upd1-32")


def test_prepare_update_basic_to_client_secret_jwt_with_secret_keeps_it() -> None:
    client, token = register()
    result, tokens = update(
        client,
        token,
        redirect_uris=[WEB],
        token_endpoint_auth_method="client_secret_jwt",
        client_secret="reg2-32",
    )
    assert tokens.sizes == [32]
    assert result.secret == "reg2-32"
    assert result.client.client_secret == "reg2-32"
    assert result.client.client_secret_hash == sha("reg2-32")


# --- prepare_update: never a crash (Hypothesis) --------------------------------------------------

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_fields = st.sampled_from(
    [
        "redirect_uris",
        "grant_types",
        "response_types",
        "token_endpoint_auth_method",
        "scope",
        "client_name",
        "client_secret",
        "jwks_uri",
        "contacts",
        *SERVER_FIELDS,
    ]
)


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    extra=st.dictionaries(_fields, _values, max_size=5),
    method=st.sampled_from(["none", "client_secret_basic", "client_secret_jwt"]),
)
def test_prepare_update_only_our_errors_come_out(extra: dict[str, Any], method: str) -> None:
    client, token = register(token_endpoint_auth_method=method)
    raw = json.dumps({"client_id": client.client_id, "redirect_uris": [WEB], **extra}).encode()
    try:
        result = prepare_update(
            raw, client, ALL_METHODS, presented_token=token, now=NOW, token=Tokens("u")
        )
    except DCRError as exc:
        assert exc.status == 400
        return
    assert result.client.client_id == client.client_id
    uses_secret = result.client.token_endpoint_auth_method in SECRET_METHODS
    assert (result.client.client_secret_hash is not None) == uses_secret
    assert (result.secret is not None) <= uses_secret
    json.loads(result.client.to_record())


# --- the absolute registration_client_uri --------------------------------------------------------


def _head(
    peer: str | None = "198.51.100.7", host: str = "as.example.com", **headers: str
) -> RequestHead:
    names = {k.replace("_", "-"): v for k, v in headers.items()}
    return RequestHead(method="GET", headers=names, peer=peer, scheme="http", host=host)


@pytest.mark.parametrize(
    ("settings", "request_head", "expected"),
    [
        pytest.param(Settings(), _head(), "http://as.example.com/register", id="host"),
        pytest.param(
            Settings(path="/oauth/register"),
            _head(host="as.example.com:8443"),
            "http://as.example.com:8443/oauth/register",
            id="host-port-and-path",
        ),
        pytest.param(
            Settings(issuer="https://auth.example.com/"),
            _head(x_forwarded_host="evil.example"),
            "https://auth.example.com/register",
            id="issuer-wins-trailing-slash",
        ),
        pytest.param(
            Settings(issuer="https://auth.example.com/tenant", trusted_proxies=("0.0.0.0/0",)),
            _head(x_forwarded_proto="http", x_forwarded_host="proxy.example"),
            "https://auth.example.com/tenant/register",
            id="issuer-wins-over-trusted-proxy",
        ),
        pytest.param(
            Settings(),
            _head(x_forwarded_proto="https", x_forwarded_host="evil.example"),
            "http://as.example.com/register",
            id="forwarded-ignored-from-untrusted-peer",
        ),
        pytest.param(
            Settings(trusted_proxies=("10.0.0.0/8",)),
            _head(x_forwarded_proto="https", x_forwarded_host="evil.example"),
            "http://as.example.com/register",
            id="forwarded-ignored-peer-outside-trusted",
        ),
        pytest.param(
            Settings(trusted_proxies=("10.0.0.0/8",)),
            _head(peer="10.1.2.3", x_forwarded_proto="https", x_forwarded_host="public.example"),
            "https://public.example/register",
            id="x-forwarded-from-trusted-peer",
        ),
        pytest.param(
            Settings(trusted_proxies=("10.0.0.0/8",)),
            _head(peer="10.1.2.3", x_forwarded_proto="https, http", x_forwarded_host="a, b.ex"),
            "http://b.ex/register",
            id="rightmost-forwarded-values",
        ),
        pytest.param(
            Settings(trusted_proxies=("10.0.0.0/8",), forwarded_header="forwarded"),
            _head(
                peer="10.1.2.3",
                forwarded='for=1.2.3.4;proto=http, for=5.6.7.8;proto=https;host="pub.example:444"',
                x_forwarded_proto="http",
                x_forwarded_host="xf.example",
            ),
            "https://pub.example:444/register",
            id="rfc-7239-forwarded-rightmost-element",
        ),
        pytest.param(
            Settings(trusted_proxies=("10.0.0.0/8",)),
            _head(peer="10.1.2.3", forwarded="for=1.2.3.4;proto=https;host=pub.example"),
            "http://as.example.com/register",
            id="rfc-7239-forwarded-ignored-under-x-forwarded-for",
        ),
        pytest.param(
            Settings(trusted_proxies=("10.0.0.0/8",)),
            _head(peer="10.1.2.3", x_forwarded_proto="gopher", x_forwarded_host="a/b?c"),
            "http://as.example.com/register",
            id="malformed-forwarded-values-ignored",
        ),
        pytest.param(
            Settings(trusted_proxies=("10.0.0.0/8",)),
            _head(peer=None, x_forwarded_proto="https", x_forwarded_host="evil.example"),
            "http://as.example.com/register",
            id="no-peer-is-not-trusted",
        ),
        pytest.param(
            Settings(),
            _head(host="evil.example/path?x"),
            "http://localhost/register",
            id="malicious-host",
        ),
    ],
)
def test_endpoint_url_origin(settings: Settings, request_head: RequestHead, expected: str) -> None:
    assert Admission(settings).endpoint_url(request_head) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("as.example.com", "as.example.com", id="name"),
        pytest.param("as.example.com:8080", "as.example.com:8080", id="name-port"),
        pytest.param("127.0.0.1:8000", "127.0.0.1:8000", id="ipv4-port"),
        pytest.param("[::1]:8000", "[::1]:8000", id="ipv6-port"),
        pytest.param("[::1]", "[::1]", id="ipv6"),
        pytest.param("evil.example/path?x", "localhost", id="path-and-query"),
        pytest.param("evil.example#frag", "localhost", id="fragment"),
        pytest.param("user@evil.example", "localhost", id="userinfo"),
        pytest.param("a.example\r\nX: y", "localhost", id="crlf"),
        pytest.param("a.example\n", "localhost", id="trailing-newline"),
        pytest.param("a example", "localhost", id="space"),
        pytest.param("", "localhost", id="empty"),
        pytest.param("ex\u00e4mple.com", "localhost", id="non-ascii"),
        pytest.param("a.example:", "localhost", id="empty-port"),
        pytest.param("a.example:123456", "localhost", id="long-port"),
    ],
)
def test_safe_host_table(host: str, expected: str) -> None:
    assert client_ip.safe_host(host) == expected


def test_prepare_registration_client_uri_is_endpoint_slash_id() -> None:
    new = prepare_registration(
        json.dumps({"redirect_uris": [WEB]}).encode(),
        ALL_METHODS,
        now=REGISTERED,
        token=Tokens("reg"),
        endpoint_url="https://as.example.com/register",
    )
    assert new.response["registration_client_uri"] == URI
    assert new.response["registration_access_token"] == "reg3-32"
    assert new.client.registration_token_hash == sha("reg3-32")
    assert "reg3-32" not in new.client.to_record()
