"""OpenID Connect Registration 1.0 metadata through both middlewares, with identical answers.

One case table is registered through the ASGI and the WSGI middleware (each with its own store);
each answer is checked against the case and the two answers are compared. A sequence of
RFC 7592 updates then shows that ``PUT`` re-validates the OpenID Connect rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from dcr_middleware import Settings

from .harness import (
    Answer,
    ASGISide,
    WSGISide,
    asgi_request,
    asgi_side,
    record_count,
    wsgi_request,
    wsgi_side,
)

pytestmark = pytest.mark.anyio

SIDES = ("asgi", "wsgi")
P = "/register"
JSON = {"Content-Type": "application/json"}
WEB = "https://app.example.com/cb"
ICM = "invalid_client_metadata"
IRU = "invalid_redirect_uri"
OIDC = Settings(
    allowed_grant_types=("authorization_code", "implicit", "refresh_token"),
    allowed_response_types=("code", "id_token", "code id_token"),
    allowed_signing_algs=("RS256", "ES256", "none"),
    allowed_subject_types=("public", "pairwise"),
)
HYBRID = {"grant_types": ["authorization_code", "implicit"], "response_types": ["code id_token"]}
GENERATED = (
    "client_id",
    "client_id_issued_at",
    "client_secret",
    "registration_client_uri",
    "registration_access_token",
)


@dataclass(frozen=True)
class Case:
    """One registration request and what both middlewares must answer."""

    body: dict[str, Any]
    status: int = 201
    error: str | None = None
    mentions: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    settings: Settings = OIDC


def ok(case_id: str, body: dict[str, Any], **kwargs: Any) -> Any:
    return pytest.param(Case(body, **kwargs), id=case_id)


def bad(case_id: str, body: dict[str, Any], error: str, mentions: str, **kwargs: Any) -> Any:
    return pytest.param(Case(body, 400, error, mentions, **kwargs), id=case_id)


FULL = {
    "redirect_uris": [WEB],
    **HYBRID,
    "application_type": "web",
    "subject_type": "pairwise",
    "id_token_signed_response_alg": "ES256",
    "id_token_encrypted_response_alg": "RSA-OAEP-256",
    "userinfo_signed_response_alg": "RS256",
    "request_object_signing_alg": "none",
    "default_max_age": 3600,
    "require_auth_time": True,
    "default_acr_values": ["urn:mace:incommon:iap:silver"],
    "initiate_login_uri": "https://app.example.com/login",
    "request_uris": ["https://app.example.com/request.jwt#hash"],
    "post_logout_redirect_uris": ["https://app.example.com/logged-out"],
}

CASES = [
    ok(
        "oidc-full-echoed-enc-defaulted",
        FULL,
        expect={**FULL, "id_token_encrypted_response_enc": "A128CBC-HS256"},
    ),
    ok(
        "oauth-client-gets-no-oidc-defaults",
        {"redirect_uris": [WEB]},
        absent=("application_type", "id_token_signed_response_alg", "require_auth_time"),
    ),
    ok(
        "native-loopback-and-custom-scheme",
        {
            "application_type": "native",
            "redirect_uris": ["http://127.0.0.1:7777/cb", "com.example.app:/cb"],
            "token_endpoint_auth_method": "none",
        },
        expect={"application_type": "native"},
    ),
    ok(
        "web-default-keeps-rfc8252-loopback",
        {"redirect_uris": ["http://localhost:3000/cb"]},
        settings=Settings(),
    ),
    bad("native-https", {"application_type": "native", "redirect_uris": [WEB]}, IRU, "native"),
    bad(
        "web-implicit-localhost",
        {"redirect_uris": ["https://localhost/cb"], **HYBRID},
        IRU,
        "implicit",
    ),
    bad("hybrid-without-redirect-uris", HYBRID, IRU, "redirect_uris"),
    bad(
        "id-token-alg-none-with-hybrid",
        {"redirect_uris": [WEB], **HYBRID, "id_token_signed_response_alg": "none"},
        ICM,
        "id_token_signed_response_alg",
    ),
    bad(
        "sector-identifier-uri-refused",
        {"redirect_uris": [WEB], "sector_identifier_uri": "https://app.example.com/s.json"},
        ICM,
        "sector_identifier_uri is not supported: this server does not fetch it",
    ),
    bad(
        "subject-type-not-supported",
        {"redirect_uris": [WEB], "subject_type": "pairwise"},
        ICM,
        "subject_type",
        settings=Settings(),
    ),
    bad(
        "enc-without-alg",
        {"redirect_uris": [WEB], "userinfo_encrypted_response_enc": "A128GCM"},
        ICM,
        "userinfo_encrypted_response_alg",
    ),
    bad(
        "auth-signing-alg-none",
        {"redirect_uris": [WEB], "token_endpoint_auth_signing_alg": "none"},
        ICM,
        "token_endpoint_auth_signing_alg",
    ),
    bad(
        "default-max-age-negative",
        {"redirect_uris": [WEB], "default_max_age": -5},
        ICM,
        "default_max_age",
    ),
    bad(
        "initiate-login-uri-http",
        {"redirect_uris": [WEB], "initiate_login_uri": "http://app.example.com/login"},
        ICM,
        "initiate_login_uri",
    ),
    bad(
        "post-logout-uri-javascript",
        {"redirect_uris": [WEB], "post_logout_redirect_uris": ["javascript:alert(1)"]},
        IRU,
        "post_logout_redirect_uris",
    ),
]


async def send(
    side: ASGISide | WSGISide,
    method: str,
    path: str,
    body: dict[str, Any],
    token: str | None = None,
) -> Answer:
    headers = dict(JSON)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = json.dumps(body).encode()
    if isinstance(side, ASGISide):
        return await asgi_request(side.app, method, path, content=content, headers=headers)
    return wsgi_request(side.app, method, path, content=content, headers=headers)


def side_of(kind: str, settings: Settings) -> ASGISide | WSGISide:
    return asgi_side(settings) if kind == "asgi" else wsgi_side(settings)


def shape(answer: Answer) -> dict[str, Any]:
    """The body with the generated credentials blanked, for comparing the two sides."""
    body: dict[str, Any] = answer.json()
    return {k: ("<generated>" if k in GENERATED else v) for k, v in body.items()}


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("case", CASES)
async def test_oidc_register_answers_as_the_case_says(kind: str, case: Case) -> None:
    side = side_of(kind, case.settings)

    answer = await send(side, "POST", P, case.body)

    assert answer.status == case.status, answer.body
    body = answer.json()
    if case.status == 201:
        for name, value in case.expect.items():
            assert body[name] == value, name
        for name in case.absent:
            assert name not in body, name
        assert record_count(side.backend) == 1
    else:
        assert body["error"] == case.error
        assert case.mentions is not None
        assert case.mentions in body["error_description"]
        assert record_count(side.backend) == 0


@pytest.mark.parametrize("case", CASES)
async def test_oidc_register_asgi_and_wsgi_answer_identically(case: Case) -> None:
    from_asgi = await send(side_of("asgi", case.settings), "POST", P, case.body)
    from_wsgi = await send(side_of("wsgi", case.settings), "POST", P, case.body)

    assert from_asgi.status == from_wsgi.status
    assert shape(from_asgi) == shape(from_wsgi)
    assert list(from_asgi.json()) == list(from_wsgi.json())


NATIVE = {
    "application_type": "native",
    "redirect_uris": ["http://127.0.0.1:7777/cb"],
    "token_endpoint_auth_method": "none",
    "id_token_signed_response_alg": "ES256",
    "post_logout_redirect_uris": ["http://127.0.0.1:7777/bye"],
}


async def put_sequence(kind: str) -> list[Answer]:
    """Register a native client, then try updates: two break OIDC rules, one is valid."""
    side = side_of(kind, OIDC)
    created = (await send(side, "POST", P, NATIVE)).json()
    client_id, token = created["client_id"], created["registration_access_token"]
    path = f"{P}/{client_id}"
    answers = []
    for update in (
        # application_type native with an https redirect URI
        {**NATIVE, "redirect_uris": [WEB]},
        # an ID token from the authorization endpoint signed with "none"
        {
            **NATIVE,
            **HYBRID,
            "application_type": "web",
            "redirect_uris": [WEB],
            "post_logout_redirect_uris": [WEB],
            "id_token_signed_response_alg": "none",
        },
        # valid: becomes a web client; OIDC fields left out are gone (RFC 7592 §2.2)
        {"redirect_uris": [WEB], "application_type": "web", "token_endpoint_auth_method": "none"},
    ):
        answer = await send(side, "PUT", path, {**update, "client_id": client_id}, token)
        if answer.status == 200:
            token = answer.json()["registration_access_token"]
        answers.append(answer)
    # What the authorization server's store sees after the updates.
    stored = (
        await side.store.get(client_id) if isinstance(side, ASGISide) else side.store.get(client_id)
    )
    assert stored is not None
    assert stored.metadata["application_type"] == "web"
    assert "id_token_signed_response_alg" not in stored.metadata
    return answers


@pytest.mark.parametrize("kind", SIDES)
async def test_oidc_put_revalidates_oidc_rules(kind: str) -> None:
    native_https, alg_none, valid = await put_sequence(kind)

    assert native_https.status == 400
    assert native_https.json()["error"] == IRU
    assert alg_none.status == 400
    assert alg_none.json()["error"] == ICM
    assert "id_token_signed_response_alg" in alg_none.json()["error_description"]
    assert valid.status == 200, valid.body
    body = valid.json()
    assert body["application_type"] == "web"
    assert "post_logout_redirect_uris" not in body
    assert "id_token_signed_response_alg" not in body


async def test_oidc_put_asgi_and_wsgi_answer_identically() -> None:
    from_asgi = await put_sequence("asgi")
    from_wsgi = await put_sequence("wsgi")

    assert [a.status for a in from_asgi] == [a.status for a in from_wsgi]
    assert [shape(a) for a in from_asgi] == [shape(a) for a in from_wsgi]
