"""The shared table of registration requests, run through both middlewares by test_parity.py.

Each case says what is sent and what must come back: the status, the RFC ``error`` code and a
piece of text the description must contain (the offending field), and for ``201`` the fields the
registered client must carry or must not carry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from dcr_middleware import Settings

REDIRECT = "https://app.example.com/cb"
JSON = "application/json"

DEFAULT = Settings()
# RFC 7591 §2: a machine-to-machine client needs no redirect URI, so `{}` is a valid request.
CLIENT_CREDENTIALS_ONLY = Settings(
    allowed_grant_types=("client_credentials",), default_grant_types=("client_credentials",)
)
IMPLICIT_ALLOWED = Settings(
    allowed_grant_types=("authorization_code", "implicit"),
    allowed_response_types=("code", "token"),
)
NONE_ONLY = Settings(allowed_auth_methods=("none",))
EVERY_AUTH_METHOD = Settings(
    allowed_auth_methods=(
        "none",
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    )
)
# The response type derived from authorization_code ("code") is not allowed here (the default
# grant is implicit, so the configuration itself is consistent).
CODE_NOT_ALLOWED = Settings(
    allowed_grant_types=("authorization_code", "implicit"),
    default_grant_types=("implicit",),
    allowed_response_types=("token",),
)
SCOPED = Settings(allowed_scopes=("openid", "profile", "email"), default_scopes=("openid",))
DEFAULT_SCOPES_ONLY = Settings(default_scopes=("read", "write"))
INSECURE_HTTP = Settings(allow_insecure_redirect_uris=True)
LISTED_HOSTS = Settings(allowed_redirect_hosts=("app.example.com", "*.example.org"))
SECRET_TTL = Settings(client_secret_ttl=3600)
SMALL_BODIES = Settings(max_body_bytes=100)
BIG_BODIES = Settings(max_body_bytes=1_000_000)

# A P-256 test key pair made for these tests (never used anywhere else).
EC_PUBLIC = {
    "kty": "EC",
    "crv": "P-256",
    "x": "-aBYeYCbvxb9qMnOR2rrzLA7e-ZQy9jHdZ04S-ZizIw",
    "y": "NtK6K4-QgwpOqre9Mr0vFZB-EeDNT39bAvJBvNzv2pQ",
}
EC_PRIVATE = {**EC_PUBLIC, "d": "q7gBGS_sLsZxu7k47jogCqNa2pFN0S-OzLCMuS1WO8U"}
SYMMETRIC = {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}

MAXIMAL = {
    "redirect_uris": [REDIRECT, "https://app.example.com/other?x=1"],
    "token_endpoint_auth_method": "client_secret_post",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "client_name": "Example App",
    "client_name#ja-Jpan-JP": "クライアント名",
    "client_uri": "https://app.example.com/",
    "logo_uri": "https://app.example.com/logo.png",
    "scope": "openid profile email",
    "contacts": ["ops@example.com", "dev@example.com"],
    "tos_uri": "https://app.example.com/tos",
    "policy_uri": "https://app.example.com/privacy",
    "jwks_uri": "https://app.example.com/jwks.json",
    "software_id": "4NRB1-0XZABZI9E6-5SM3R",
    "software_version": "2.1",
}

SECRET_FIELDS = ("client_secret", "client_secret_expires_at")


@dataclass(frozen=True)
class Case:
    """One registration request and what both middlewares must answer."""

    body: bytes | None
    status: int
    error: str | None = None
    # Text the error_description must contain (usually the offending field's name).
    mentions: str | None = None
    content_type: str | None = JSON
    headers: dict[str, str] = field(default_factory=dict)
    settings: Settings = DEFAULT
    path: str = "/register"
    # A body sent without Content-Length, in these chunks (ASGI: one message each).
    chunks: Sequence[bytes] | None = None
    # For 201: fields the client must have with these exact values...
    expect: dict[str, Any] = field(default_factory=dict)
    # ...fields it must not have...
    absent: Sequence[str] = ()
    # ...and whether a client secret is issued.
    secret: bool = True
    # The store's service is down (503).
    store_down: bool = False
    # wsgiref.validate itself refuses some malformed requests (a non-numeric CONTENT_LENGTH).
    validate: bool = True

    def request_headers(self) -> dict[str, str]:
        """The request headers to send."""
        headers = dict(self.headers)
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        return headers


def meta(**fields: Any) -> bytes:
    """A JSON request body: one valid redirect URI plus ``fields`` (``None`` drops a key)."""
    document: dict[str, Any] = {"redirect_uris": [REDIRECT], **fields}
    return dumps({k: v for k, v in document.items() if v is not None})


def dumps(document: Any) -> bytes:
    """Serialize a request body exactly as given."""
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def ok(case_id: str, body: bytes | None, **kwargs: Any) -> Any:
    """A case answered with 201."""
    return pytest.param(Case(body, 201, **kwargs), id=case_id)


def bad(case_id: str, body: bytes | None, error: str, mentions: str | None, **kwargs: Any) -> Any:
    """A case answered with 400 and ``error``."""
    return pytest.param(Case(body, 400, error, mentions, **kwargs), id=case_id)


def refused(case_id: str, body: bytes | None, status: int, error: str, **kwargs: Any) -> Any:
    """A case refused before validation (415, 413, 503...)."""
    return pytest.param(Case(body, status, error, **kwargs), id=case_id)


ICM = "invalid_client_metadata"
IRU = "invalid_redirect_uri"
IR = "invalid_request"
DEFAULTS = {
    "redirect_uris": [REDIRECT],
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic",
    "client_secret_expires_at": 0,
}
PADDED = meta()
EXACTLY_AT_LIMIT = PADDED + b" " * (DEFAULT.max_body_bytes - len(PADDED))
DEEP_ARRAYS = b"[" * 100_000 + b"]" * 100_000

VALID = [
    ok("valid-minimal-defaults-applied", meta(), expect=DEFAULTS),
    ok("valid-maximal-echoed", dumps(MAXIMAL), expect=MAXIMAL),
    ok(
        "valid-unknown-fields-dropped",
        meta(foo="bar", admin=True, nested={"a": [1]}, **{"foo#en": "x"}),
        absent=("foo", "admin", "nested", "foo#en"),
        expect={"redirect_uris": [REDIRECT]},
    ),
    ok(
        "valid-json-null-value-dropped",
        b'{"redirect_uris":["https://app.example.com/cb"],"client_name":null}',
        absent=("client_name",),
    ),
    ok("valid-query-string-on-path", meta(), path="/register?x=1", expect=DEFAULTS),
    ok(
        "valid-empty-object-client-credentials-policy",
        b"{}",
        settings=CLIENT_CREDENTIALS_ONLY,
        expect={
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        absent=("redirect_uris",),
    ),
    ok(
        "valid-client-credentials-without-redirect-uris",
        dumps({"grant_types": ["client_credentials"]}),
        expect={"grant_types": ["client_credentials"], "response_types": []},
    ),
    ok(
        "valid-refresh-token-only-without-redirect-uris",
        dumps({"grant_types": ["refresh_token"]}),
        expect={"grant_types": ["refresh_token"], "response_types": []},
    ),
    ok(
        "valid-secret-ttl",
        meta(),
        settings=SECRET_TTL,
        expect={"token_endpoint_auth_method": "client_secret_basic"},
    ),
    ok(
        "valid-software-statement-ignored",
        meta(software_statement="eyJhbGciOiJub25lIn0.e30."),
    ),
    ok(
        "valid-body-exactly-at-limit",
        EXACTLY_AT_LIMIT,
        expect=DEFAULTS,
    ),
]

AUTH_METHODS = [
    ok(
        "auth-none-gets-no-secret",
        meta(token_endpoint_auth_method="none"),
        secret=False,
        expect={"token_endpoint_auth_method": "none"},
        absent=SECRET_FIELDS,
    ),
    ok(
        "auth-client-secret-post-gets-secret",
        meta(token_endpoint_auth_method="client_secret_post"),
        expect={"token_endpoint_auth_method": "client_secret_post"},
    ),
    ok(
        "auth-client-secret-jwt-gets-secret",
        meta(token_endpoint_auth_method="client_secret_jwt"),
        settings=EVERY_AUTH_METHOD,
        expect={"token_endpoint_auth_method": "client_secret_jwt"},
    ),
    ok(
        "auth-private-key-jwt-with-jwks-gets-no-secret",
        meta(token_endpoint_auth_method="private_key_jwt", jwks={"keys": [EC_PUBLIC]}),
        settings=EVERY_AUTH_METHOD,
        secret=False,
        expect={"jwks": {"keys": [EC_PUBLIC]}},
        absent=SECRET_FIELDS,
    ),
    ok(
        "auth-private-key-jwt-with-jwks-uri",
        meta(token_endpoint_auth_method="private_key_jwt", jwks_uri="https://a.example/jwks"),
        settings=EVERY_AUTH_METHOD,
        secret=False,
        absent=SECRET_FIELDS,
    ),
    ok(
        "auth-none-only-policy",
        meta(token_endpoint_auth_method="none"),
        settings=NONE_ONLY,
        secret=False,
    ),
    bad(
        "auth-default-not-allowed",
        meta(),
        ICM,
        "token_endpoint_auth_method",
        settings=NONE_ONLY,
    ),
    bad(
        "auth-private-key-jwt-not-allowed-by-default",
        meta(token_endpoint_auth_method="private_key_jwt", jwks={"keys": [EC_PUBLIC]}),
        ICM,
        "token_endpoint_auth_method",
    ),
    bad(
        "auth-client-secret-jwt-not-allowed-by-default",
        meta(token_endpoint_auth_method="client_secret_jwt"),
        ICM,
        "client_secret_jwt",
    ),
    bad(
        "auth-unknown-method",
        meta(token_endpoint_auth_method="magic"),
        ICM,
        "token_endpoint_auth_method",
    ),
    bad(
        "auth-none-with-client-credentials",
        dumps({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
        ICM,
        "client_credentials",
    ),
    bad(
        "auth-private-key-jwt-without-keys",
        meta(token_endpoint_auth_method="private_key_jwt"),
        ICM,
        "private_key_jwt",
        settings=EVERY_AUTH_METHOD,
    ),
]

WRONG_TYPES = [
    bad("type-redirect-uris-string", meta(redirect_uris=REDIRECT), IRU, "redirect_uris"),
    bad("type-redirect-uris-object", meta(redirect_uris={"a": REDIRECT}), IRU, "redirect_uris"),
    bad("type-redirect-uris-number-item", meta(redirect_uris=[1]), IRU, "redirect_uris"),
    bad("type-redirect-uris-null-item", meta(redirect_uris=[None]), IRU, "redirect_uris"),
    bad("type-redirect-uris-nested-array", meta(redirect_uris=[[REDIRECT]]), IRU, "redirect_uris"),
    bad("type-redirect-uris-true", meta(redirect_uris=True), IRU, "redirect_uris"),
    bad("type-redirect-uris-empty", meta(redirect_uris=[]), IRU, "redirect_uris"),
    bad("type-grant-types-string", meta(grant_types="authorization_code"), ICM, "grant_types"),
    bad("type-grant-types-number", meta(grant_types=1), ICM, "grant_types"),
    bad("type-grant-types-object", meta(grant_types={}), ICM, "grant_types"),
    bad("type-grant-types-number-item", meta(grant_types=[1]), ICM, "grant_types"),
    bad("type-grant-types-empty", meta(grant_types=[]), ICM, "grant_types"),
    bad(
        "type-grant-types-repeated",
        meta(grant_types=["authorization_code", "authorization_code"]),
        ICM,
        "grant_types",
    ),
    bad("type-response-types-string", meta(response_types="code"), ICM, "response_types"),
    bad("type-response-types-null-item", meta(response_types=[None]), ICM, "response_types"),
    bad("type-response-types-object", meta(response_types={"code": 1}), ICM, "response_types"),
    bad(
        "type-auth-method-number",
        meta(token_endpoint_auth_method=1),
        ICM,
        "token_endpoint_auth_method",
    ),
    bad(
        "type-auth-method-array",
        meta(token_endpoint_auth_method=["none"]),
        ICM,
        "token_endpoint_auth_method",
    ),
    bad(
        "type-auth-method-empty",
        meta(token_endpoint_auth_method=""),
        ICM,
        "token_endpoint_auth_method",
    ),
    bad("type-client-name-number", meta(client_name=42), ICM, "client_name"),
    bad("type-client-name-array", meta(client_name=["x"]), ICM, "client_name"),
    bad("type-client-name-object", meta(client_name={"en": "x"}), ICM, "client_name"),
    bad("type-client-name-bool", meta(client_name=False), ICM, "client_name"),
    bad("type-client-name-empty", meta(client_name=""), ICM, "client_name"),
    bad(
        "type-client-name-lone-surrogate",
        b'{"redirect_uris":["https://app.example.com/cb"],"client_name":"\\ud800"}',
        ICM,
        "client_name",
    ),
    bad("type-client-uri-number", meta(client_uri=1), ICM, "client_uri"),
    bad("type-client-uri-not-a-url", meta(client_uri="not a url"), ICM, "client_uri"),
    bad("type-client-uri-ftp", meta(client_uri="ftp://app.example.com/"), ICM, "client_uri"),
    bad("type-logo-uri-object", meta(logo_uri={}), ICM, "logo_uri"),
    bad("type-logo-uri-javascript", meta(logo_uri="javascript:alert(1)"), ICM, "logo_uri"),
    bad("type-tos-uri-bool", meta(tos_uri=True), ICM, "tos_uri"),
    bad("type-policy-uri-array", meta(policy_uri=["https://a.example/p"]), ICM, "policy_uri"),
    bad("type-jwks-uri-number", meta(jwks_uri=5), ICM, "jwks_uri"),
    bad("type-jwks-uri-plain-http", meta(jwks_uri="http://a.example/jwks"), ICM, "jwks_uri"),
    bad("type-scope-array", meta(scope=["openid"]), ICM, "scope"),
    bad("type-scope-number", meta(scope=5), ICM, "scope"),
    bad("type-contacts-string", meta(contacts="ops@example.com"), ICM, "contacts"),
    bad("type-contacts-number-item", meta(contacts=[1]), ICM, "contacts"),
    bad("type-contacts-object", meta(contacts={"a": "b"}), ICM, "contacts"),
    bad("type-software-id-number", meta(software_id=1), ICM, "software_id"),
    bad("type-software-version-float", meta(software_version=1.5), ICM, "software_version"),
    bad("type-software-version-array", meta(software_version=["1"]), ICM, "software_version"),
    bad("type-jwks-string", meta(jwks="keys"), ICM, "jwks"),
    bad("type-jwks-array", meta(jwks=[EC_PUBLIC]), ICM, "jwks"),
    bad("type-jwks-no-keys", meta(jwks={}), ICM, "jwks"),
    bad("type-jwks-keys-object", meta(jwks={"keys": EC_PUBLIC}), ICM, "jwks"),
    bad("type-jwks-keys-empty", meta(jwks={"keys": []}), ICM, "jwks"),
]

REDIRECT_URIS = [
    ok("redirect-https", meta(redirect_uris=["https://app.example.com:8443/cb?a=b"])),
    ok("redirect-http-127", meta(redirect_uris=["http://127.0.0.1/cb"])),
    ok("redirect-http-127-port", meta(redirect_uris=["http://127.0.0.1:8080/cb"])),
    ok("redirect-http-ipv6-loopback", meta(redirect_uris=["http://[::1]:3000/cb"])),
    ok("redirect-http-localhost", meta(redirect_uris=["http://localhost:5000/callback"])),
    ok(
        "redirect-private-use-scheme",
        meta(redirect_uris=["com.example.app:/cb"], token_endpoint_auth_method="none"),
        secret=False,
        expect={"redirect_uris": ["com.example.app:/cb"]},
    ),
    ok(
        "redirect-private-use-scheme-authority",
        meta(redirect_uris=["cursor://cb"], token_endpoint_auth_method="none"),
        secret=False,
        expect={"redirect_uris": ["cursor://cb"]},
    ),
    ok(
        "redirect-http-non-loopback-when-insecure-allowed",
        meta(redirect_uris=["http://app.example.com/cb"]),
        settings=INSECURE_HTTP,
    ),
    bad(
        "redirect-http-non-loopback",
        meta(redirect_uris=["http://app.example.com/cb"]),
        IRU,
        "loopback",
    ),
    bad(
        "redirect-http-localhost-lookalike",
        meta(redirect_uris=["http://localhost.evil.example/cb"]),
        IRU,
        "redirect_uris",
    ),
    ok(
        "redirect-listed-host",
        meta(redirect_uris=[REDIRECT]),
        settings=LISTED_HOSTS,
        expect={"redirect_uris": [REDIRECT]},
    ),
    ok(
        "redirect-listed-wildcard-subdomain",
        meta(redirect_uris=["https://app.example.org/cb"]),
        settings=LISTED_HOSTS,
        expect={"redirect_uris": ["https://app.example.org/cb"]},
    ),
    bad(
        "redirect-listed-wildcard-not-apex",
        meta(redirect_uris=["https://example.org/cb"]),
        IRU,
        "allowed redirect hosts",
        settings=LISTED_HOSTS,
    ),
    # `*.example.org` is a dot-boundary suffix: a lookalike domain that merely ends in
    # "example.org" belongs to someone else.
    bad(
        "redirect-listed-wildcard-lookalike",
        meta(redirect_uris=["https://evilexample.org/cb"]),
        IRU,
        "'evilexample.org' is not in this server's allowed redirect hosts",
        settings=LISTED_HOSTS,
    ),
    bad(
        "redirect-unlisted-host",
        meta(redirect_uris=["https://evil.example.net/cb"]),
        IRU,
        "allowed redirect hosts",
        settings=LISTED_HOSTS,
    ),
    bad("redirect-relative-path", meta(redirect_uris=["/cb"]), IRU, "redirect_uris"),
    bad("redirect-relative-name", meta(redirect_uris=["cb"]), IRU, "redirect_uris"),
    bad("redirect-scheme-relative", meta(redirect_uris=["//app.example.com/cb"]), IRU, "/cb"),
    bad("redirect-empty-string", meta(redirect_uris=[""]), IRU, "redirect_uris"),
    bad("redirect-fragment", meta(redirect_uris=[REDIRECT + "#frag"]), IRU, "fragment"),
    bad("redirect-empty-fragment", meta(redirect_uris=[REDIRECT + "#"]), IRU, "fragment"),
    bad(
        "redirect-userinfo",
        meta(redirect_uris=["https://user:pw@app.example.com/cb"]),
        IRU,
        "userinfo",
    ),
    bad("redirect-javascript", meta(redirect_uris=["javascript:alert(1)"]), IRU, "javascript:"),
    bad(
        "redirect-javascript-upper-case",
        meta(redirect_uris=["JavaScript:alert(1)"]),
        IRU,
        "javascript",
    ),
    bad("redirect-data", meta(redirect_uris=["data:text/html,<b>x</b>"]), IRU, "data:"),
    bad("redirect-vbscript", meta(redirect_uris=["vbscript:msgbox(1)"]), IRU, "vbscript:"),
    bad("redirect-file", meta(redirect_uris=["file:///etc/passwd"]), IRU, "file:"),
    bad("redirect-leading-space", meta(redirect_uris=[" " + REDIRECT]), IRU, "white space"),
    bad("redirect-inner-space", meta(redirect_uris=["https://app.example.com/c b"]), IRU, "space"),
    bad("redirect-trailing-newline", meta(redirect_uris=[REDIRECT + "\n"]), IRU, "space"),
    bad("redirect-tab", meta(redirect_uris=["https://app.example.com/\tcb"]), IRU, "space"),
    bad(
        "redirect-backslash",
        meta(redirect_uris=["https://a.example\\@evil.example/"]),
        IRU,
        "redirect_uris",
    ),
    bad("redirect-https-without-host", meta(redirect_uris=["https:///cb"]), IRU, "host"),
    bad(
        "redirect-bad-port",
        meta(redirect_uris=["https://app.example.com:99999/cb"]),
        IRU,
        "redirect_uris",
    ),
    bad("redirect-private-use-without-path", meta(redirect_uris=["com.example.app:"]), IRU, "path"),
    bad(
        "redirect-one-good-one-bad",
        meta(redirect_uris=[REDIRECT, "javascript:alert(1)"]),
        IRU,
        "javascript",
    ),
    bad(
        "redirect-non-ascii",
        meta(redirect_uris=["https://app.example.com/café"]),
        IRU,
        "redirect_uris",
    ),
    bad(
        "redirect-lone-surrogate",
        b'{"redirect_uris":["https://app.example.com/\\udc80"]}',
        IRU,
        "redirect_uris",
    ),
    bad("redirect-missing-for-code-flow", b"{}", IRU, "redirect_uris"),
]

FLOWS = [
    ok(
        "flow-code-and-refresh",
        meta(grant_types=["authorization_code", "refresh_token"], response_types=["code"]),
        expect={"grant_types": ["authorization_code", "refresh_token"]},
    ),
    ok(
        "flow-implicit-token",
        meta(grant_types=["implicit"], response_types=["token"]),
        settings=IMPLICIT_ALLOWED,
        expect={"grant_types": ["implicit"], "response_types": ["token"]},
    ),
    ok(
        "flow-implicit-response-type-derived",
        meta(grant_types=["implicit"]),
        settings=IMPLICIT_ALLOWED,
        expect={"response_types": ["token"]},
    ),
    bad(
        "flow-code-grant-without-code-response",
        meta(grant_types=["authorization_code"], response_types=[]),
        ICM,
        "response_types",
    ),
    bad(
        "flow-code-response-without-code-grant",
        meta(grant_types=["client_credentials"], response_types=["code"]),
        ICM,
        "authorization_code",
    ),
    bad(
        "flow-implicit-grant-without-token-response",
        meta(grant_types=["authorization_code", "implicit"], response_types=["code"]),
        ICM,
        "implicit",
        settings=IMPLICIT_ALLOWED,
    ),
    bad(
        "flow-token-response-without-implicit-grant",
        meta(grant_types=["authorization_code"], response_types=["code", "token"]),
        ICM,
        "implicit",
        settings=IMPLICIT_ALLOWED,
    ),
    bad(
        "flow-implicit-without-redirect-uris",
        dumps({"grant_types": ["implicit"]}),
        IRU,
        "redirect_uris",
        settings=IMPLICIT_ALLOWED,
    ),
    bad("flow-grant-not-allowed", meta(grant_types=["password"]), ICM, "password"),
    bad(
        "flow-implicit-not-allowed-by-default",
        meta(grant_types=["implicit"], response_types=["token"]),
        ICM,
        "implicit",
    ),
    bad(
        "flow-response-type-not-allowed",
        meta(response_types=["code", "token"]),
        ICM,
        "'token'",
    ),
    bad(
        "flow-derived-response-type-not-allowed",
        meta(grant_types=["authorization_code"]),
        ICM,
        "response_types",
        settings=CODE_NOT_ALLOWED,
    ),
    bad(
        "flow-default-grant-with-client-credentials-policy",
        meta(grant_types=["authorization_code"]),
        ICM,
        "grant_types",
        settings=CLIENT_CREDENTIALS_ONLY,
    ),
]

KEYS = [
    ok(
        "jwks-public-ec-key",
        meta(jwks={"keys": [EC_PUBLIC]}),
        expect={"jwks": {"keys": [EC_PUBLIC]}},
    ),
    bad(
        "jwks-and-jwks-uri",
        meta(jwks={"keys": [EC_PUBLIC]}, jwks_uri="https://a.example/jwks"),
        ICM,
        "jwks",
    ),
    bad("jwks-private-key", meta(jwks={"keys": [EC_PRIVATE]}), ICM, "private"),
    bad("jwks-symmetric-key", meta(jwks={"keys": [SYMMETRIC]}), ICM, "jwks"),
    bad("jwks-key-without-kty", meta(jwks={"keys": [{"x": "y"}]}), ICM, "jwks"),
    bad(
        "jwks-broken-ec-key",
        meta(jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "AA"}]}),
        ICM,
        "jwks",
    ),
]

LANGUAGE_TAGS = [
    ok(
        "language-tags-echoed-unmodified",
        meta(
            **{
                "client_name": "My App",
                "client_name#ja-Jpan-JP": "クライアント名",
                "client_name#en-US": "My App",
                "tos_uri#de": "https://app.example.com/de/agb",
                "logo_uri#fr-CA": "https://app.example.com/fr/logo.png",
            }
        ),
        expect={
            "client_name": "My App",
            "client_name#ja-Jpan-JP": "クライアント名",
            "client_name#en-US": "My App",
            "tos_uri#de": "https://app.example.com/de/agb",
            "logo_uri#fr-CA": "https://app.example.com/fr/logo.png",
        },
    ),
    bad("language-tag-value-number", meta(**{"client_name#en": 5}), ICM, "client_name#en"),
    bad(
        "language-tag-uri-javascript",
        meta(**{"logo_uri#fr": "javascript:alert(1)"}),
        ICM,
        "logo_uri#fr",
    ),
    bad("language-tag-empty", meta(**{"client_name#": "x"}), ICM, "client_name#"),
    bad("language-tag-with-space", meta(**{"client_name#en US": "x"}), ICM, "language tag"),
    bad("language-tag-subtag-too-long", meta(**{"client_name#abcdefghi": "x"}), ICM, "tag"),
    bad(
        "language-tag-lone-surrogate",
        b'{"redirect_uris":["https://app.example.com/cb"],"client_name#\\ud800":"x"}',
        ICM,
        "client_name#",
    ),
]

SCOPES = [
    ok("scope-echoed", meta(scope="openid profile"), expect={"scope": "openid profile"}),
    ok(
        "scope-allowed",
        meta(scope="profile email"),
        settings=SCOPED,
        expect={"scope": "profile email"},
    ),
    ok("scope-default-applied", meta(), settings=SCOPED, expect={"scope": "openid"}),
    ok(
        "scope-defaults-joined",
        meta(),
        settings=DEFAULT_SCOPES_ONLY,
        expect={"scope": "read write"},
    ),
    ok("scope-no-default", meta(), absent=("scope",)),
    bad("scope-not-allowed", meta(scope="openid admin"), ICM, "'admin'", settings=SCOPED),
    bad("scope-double-space", meta(scope="openid  profile"), ICM, "scope"),
    bad("scope-leading-space", meta(scope=" openid"), ICM, "scope"),
    bad("scope-tab", meta(scope="openid\tprofile"), ICM, "scope"),
    bad("scope-quote", meta(scope='open"id'), ICM, "scope"),
    bad("scope-backslash", meta(scope="open\\id"), ICM, "scope"),
    bad("scope-non-ascii", meta(scope="öffentlich"), ICM, "scope"),
    bad("scope-empty", meta(scope=""), ICM, "scope"),
]

BODIES = [
    bad("body-empty", b"", ICM, "JSON"),
    bad("body-whitespace", b"  \r\n ", ICM, "JSON"),
    bad("body-truncated-json", b'{"redirect_uris": [', ICM, "JSON"),
    bad("body-trailing-garbage", meta() + b"x", ICM, "JSON"),
    bad("body-single-quotes", b"{'redirect_uris': []}", ICM, "JSON"),
    bad("body-invalid-utf8", b'{"client_name": "\xff\xfe"}', ICM, "UTF-8"),
    bad("body-utf16", meta().decode().encode("utf-16"), ICM, "UTF-8"),
    bad("body-array", b"[]", ICM, "object"),
    bad("body-array-of-object", b"[" + meta() + b"]", ICM, "object"),
    bad("body-string", b'"redirect_uris"', ICM, "object"),
    bad("body-number", b"42", ICM, "object"),
    bad("body-null", b"null", ICM, "object"),
    bad("body-true", b"true", ICM, "object"),
    bad("body-nan", meta()[:-1] + b',"x":NaN}', ICM, "JSON"),
    bad("body-infinity", meta()[:-1] + b',"x":-Infinity}', ICM, "JSON"),
    bad("body-huge-integer", meta()[:-1] + b',"x":' + b"9" * 5000 + b"}", ICM, "JSON"),
    bad("body-big-integer-as-name", meta(client_name=10**100), ICM, "client_name"),
    bad(
        "body-deeply-nested-arrays",
        DEEP_ARRAYS,
        ICM,
        "JSON",
        settings=BIG_BODIES,
    ),
    bad(
        "body-deeply-nested-arrays-in-field",
        b'{"redirect_uris":' + DEEP_ARRAYS + b"}",
        ICM,
        "JSON",
        settings=BIG_BODIES,
    ),
    bad(
        "body-deeply-nested-objects",
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        ICM,
        "JSON",
        settings=BIG_BODIES,
    ),
]

CONTENT_TYPES = [
    ok("content-type-charset-utf8", meta(), content_type="application/json; charset=utf-8"),
    ok("content-type-charset-quoted", meta(), content_type='application/json;charset="UTF-8"'),
    ok("content-type-upper-case", meta(), content_type="Application/JSON"),
    refused("content-type-text-plain", meta(), 415, IR, content_type="text/plain"),
    refused("content-type-missing", meta(), 415, IR, content_type=None),
    refused("content-type-empty", meta(), 415, IR, content_type=""),
    refused(
        "content-type-latin1",
        meta(),
        415,
        IR,
        content_type="application/json; charset=latin-1",
    ),
    refused(
        "content-type-form",
        b"redirect_uris=https%3A%2F%2Fapp.example.com%2Fcb",
        415,
        IR,
        content_type="application/x-www-form-urlencoded",
    ),
    refused("content-type-json-suffix", meta(), 415, IR, content_type="application/jwt+json"),
    refused("content-type-jsonp", meta(), 415, IR, content_type="application/jsonp"),
]

SIZES = [
    refused("size-one-byte-over-limit", EXACTLY_AT_LIMIT + b" ", 413, IR),
    refused("size-far-over-limit", meta(client_name="x" * 200_000), 413, IR),
    refused("size-over-custom-limit", meta(client_name="x" * 100), 413, IR, settings=SMALL_BODIES),
    refused("size-over-limit-even-if-not-json", b"x" * 70_000, 413, IR),
    refused(
        "size-over-limit-before-content-type",
        b"x" * 70_000,
        415,
        IR,
        content_type="text/plain",
    ),
    ok("size-chunked-within-limit", None, chunks=[meta()[:10], meta()[10:30], meta()[30:]]),
    ok("size-chunked-with-empty-chunks", None, chunks=[b"", meta(), b""]),
    refused(
        "size-chunked-over-limit", None, 413, IR, chunks=[b"x" * 40] * 5, settings=SMALL_BODIES
    ),
    refused(
        "size-chunked-over-limit-in-one-chunk",
        None,
        413,
        IR,
        chunks=[b"[" * 101],
        settings=SMALL_BODIES,
    ),
    bad("size-chunked-bad-json", None, ICM, "JSON", chunks=[b'{"redirect_uris"', b": 1"]),
    refused(
        "content-length-not-a-number",
        meta(),
        400,
        IR,
        headers={"Content-Length": "abc"},
        validate=False,
    ),
    refused(
        "content-length-negative",
        meta(),
        400,
        IR,
        headers={"Content-Length": "-1"},
        validate=False,
    ),
    refused(
        "content-length-float",
        meta(),
        400,
        IR,
        headers={"Content-Length": "1e3"},
        validate=False,
    ),
]

STORE = [
    refused("store-down", meta(), 503, "temporarily_unavailable", store_down=True),
    refused(
        "store-down-public-client",
        meta(token_endpoint_auth_method="none"),
        503,
        "temporarily_unavailable",
        store_down=True,
    ),
]

CASES = [
    *VALID,
    *AUTH_METHODS,
    *WRONG_TYPES,
    *REDIRECT_URIS,
    *FLOWS,
    *KEYS,
    *LANGUAGE_TAGS,
    *SCOPES,
    *BODIES,
    *CONTENT_TYPES,
    *SIZES,
    *STORE,
]
