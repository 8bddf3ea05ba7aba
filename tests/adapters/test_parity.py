"""One table of registration requests (cases.py), run through the ASGI and the WSGI middleware.

Each case is checked on each side against what the case says (status, error code, headers,
registered fields, what the store then holds), and the two sides' answers are compared with each
other: same status, same headers, same body except the generated credentials.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from dcr_middleware import RegisteredClient

from .cases import CASES, JSON, SECRET_FIELDS, Case, meta
from .harness import (
    Answer,
    ASGISide,
    DownBackend,
    RawASGI,
    WSGISide,
    asgi_request,
    asgi_side,
    body_messages,
    http_scope,
    input_terminated,
    record_count,
    wsgi_request,
    wsgi_side,
)

pytestmark = pytest.mark.anyio

# RFC 7591 §2 metadata this server registers; anything else in a 201 must be a credential or a
# language-tagged (§2.2) field.
KNOWN_METADATA = frozenset(
    {
        "redirect_uris",
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
        "client_name",
        "client_uri",
        "logo_uri",
        "scope",
        "contacts",
        "tos_uri",
        "policy_uri",
        "jwks_uri",
        "jwks",
        "software_id",
        "software_version",
    }
)
MANAGEMENT = ("registration_client_uri", "registration_access_token")
CREDENTIALS = frozenset({"client_id", "client_id_issued_at", *SECRET_FIELDS, *MANAGEMENT})
LOCALIZABLE = ("client_name#", "client_uri#", "logo_uri#", "tos_uri#", "policy_uri#")
SIDES = ("asgi", "wsgi")


def _sides(case: Case) -> tuple[ASGISide, WSGISide]:
    if case.store_down:
        return asgi_side(case.settings, DownBackend()), wsgi_side(case.settings, DownBackend())
    return asgi_side(case.settings), wsgi_side(case.settings)


async def _asgi_answer(case: Case, side: ASGISide) -> Answer:
    if case.chunks is None:
        return await asgi_request(
            side.app, "POST", case.path, content=case.body, headers=case.request_headers()
        )
    # A chunked body: several http.request messages with more_body, and no Content-Length.
    path, _, query = case.path.partition("?")
    headers = [*case.request_headers().items(), ("Transfer-Encoding", "chunked")]
    server = RawASGI(body_messages(case.chunks))
    await side.app(http_scope("POST", path, headers, query.encode()), server.receive, server.send)
    return server.answer()


def _wsgi_answer(case: Case, side: WSGISide) -> Answer:
    if case.chunks is None:
        return wsgi_request(
            side.app,
            "POST",
            case.path,
            content=case.body,
            headers=case.request_headers(),
            validate=case.validate,
        )
    # httpx sends an iterator as a chunked body; the server marks the stream as terminated.
    return wsgi_request(
        input_terminated(side.app),
        "POST",
        case.path,
        content=iter(case.chunks),
        headers=case.request_headers(),
        validate=case.validate,
    )


async def _answer(kind: str, case: Case) -> tuple[Answer, ASGISide | WSGISide]:
    asgi, wsgi = _sides(case)
    if kind == "asgi":
        return await _asgi_answer(case, asgi), asgi
    return _wsgi_answer(case, wsgi), wsgi


async def _get(side: ASGISide | WSGISide, client_id: str) -> RegisteredClient | None:
    if isinstance(side, ASGISide):
        return await side.store.get(client_id)
    return side.store.get(client_id)


async def _authenticate(
    side: ASGISide | WSGISide, client_id: str, secret: str
) -> RegisteredClient | None:
    if isinstance(side, ASGISide):
        return await side.store.authenticate(client_id, secret)
    return side.store.authenticate(client_id, secret)


def _check_headers(case: Case, answer: Answer) -> None:
    assert answer.headers["content-type"] == JSON
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["pragma"] == "no-cache"
    assert answer.headers["content-length"] == str(len(answer.body))
    if case.status == 503:
        assert int(answer.headers["retry-after"]) >= 1
    else:
        assert "retry-after" not in answer.headers


def _check_error(case: Case, body: Any) -> None:
    assert set(body) == {"error", "error_description"}
    assert body["error"] == case.error
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    if case.mentions is not None:
        assert case.mentions in body["error_description"]


def _check_created(case: Case, body: dict[str, Any]) -> None:
    client_id = body["client_id"]
    # 128 random bits, base64url: at least 22 characters.
    assert isinstance(client_id, str)
    assert len(client_id) >= 22
    issued_at = body["client_id_issued_at"]
    assert isinstance(issued_at, int)
    assert abs(issued_at - time.time()) < 60
    if case.secret:
        assert isinstance(body["client_secret"], str)
        assert len(body["client_secret"]) >= 43  # 256 random bits
        ttl = case.settings.client_secret_ttl
        # RFC 7591 §3.2.1: 0 when the secret does not expire.
        assert body["client_secret_expires_at"] == (issued_at + ttl if ttl else 0)
    else:
        assert not set(SECRET_FIELDS) & set(body)
    # RFC 7592 §3: the configuration endpoint of this client and a 256-bit token for it.
    assert body["registration_client_uri"] == f"http://testserver/register/{client_id}"
    assert len(body["registration_access_token"]) >= 43
    for name in ("grant_types", "response_types", "token_endpoint_auth_method"):
        assert name in body, f"default for {name} not applied"
    for name, value in case.expect.items():
        assert body[name] == value, name
    for name in case.absent:
        assert name not in body, name
    unexpected = {
        key
        for key in body
        if key not in KNOWN_METADATA | CREDENTIALS and not key.startswith(LOCALIZABLE)
    }
    assert not unexpected


async def _check_store(case: Case, answer: Answer, side: ASGISide | WSGISide) -> None:
    if answer.status != 201:
        assert record_count(side.backend) == 0
        return
    body = answer.json()
    client_id = body["client_id"]
    assert record_count(side.backend) == 1
    client = await _get(side, client_id)
    assert client is not None
    assert client.client_id == client_id
    assert client.client_id_issued_at == body["client_id_issued_at"]
    assert client.metadata == {k: v for k, v in body.items() if k not in CREDENTIALS}
    if not case.secret:
        # RFC 6749 §2.1: only clients without any credentials are public (not private_key_jwt).
        assert client.is_public == (body["token_endpoint_auth_method"] == "none")
        assert client.client_secret_hash is None
        assert await _authenticate(side, client_id, "") is None
        return
    secret = body["client_secret"]
    authenticated = await _authenticate(side, client_id, secret)
    assert authenticated is not None
    assert authenticated.client_id == client_id
    assert await _authenticate(side, client_id, secret[:-1]) is None
    # SPEC §5: the plaintext secret is kept only where the auth method signs with it.
    keeps_plaintext = body["token_endpoint_auth_method"] == "client_secret_jwt"
    assert client.client_secret == (secret if keeps_plaintext else None)
    assert client.client_secret_hash not in (None, secret)


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("case", CASES)
async def test_register_answers_as_the_case_says(kind: str, case: Case) -> None:
    answer, side = await _answer(kind, case)

    assert answer.status == case.status, answer.body
    _check_headers(case, answer)
    body = answer.json()
    if case.status == 201:
        assert case.error is None
        _check_created(case, body)
    else:
        _check_error(case, body)
    await _check_store(case, answer, side)


def _shape(answer: Answer) -> dict[str, Any]:
    """The body with generated values replaced by what they must be equal in."""
    body: dict[str, Any] = answer.json()
    if answer.status != 201:
        return body
    issued_at = body.pop("client_id_issued_at")
    shaped = {
        **body,
        "client_id": "<generated>",
        "client_id_issued_at": "<now>",
        "registration_client_uri": body["registration_client_uri"].replace(
            body["client_id"], "<id>"
        ),
        "registration_access_token": "<generated>",
    }
    if "client_secret" in body:
        shaped["client_secret"] = "<generated>"
        expires = body["client_secret_expires_at"]
        shaped["client_secret_expires_at"] = expires - issued_at if expires else 0
    return shaped


def _headers(answer: Answer) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k != "content-length"}


@pytest.mark.parametrize("case", CASES)
async def test_register_asgi_and_wsgi_answer_identically(case: Case) -> None:
    asgi, wsgi = _sides(case)

    from_asgi = await _asgi_answer(case, asgi)
    from_wsgi = _wsgi_answer(case, wsgi)

    assert from_asgi.status == from_wsgi.status
    assert _headers(from_asgi) == _headers(from_wsgi)
    assert _shape(from_asgi) == _shape(from_wsgi)
    assert list(from_asgi.json()) == list(from_wsgi.json())
    assert record_count(asgi.backend) == record_count(wsgi.backend)


def test_cases_table_is_large_and_uniquely_named() -> None:
    ids = [param.id for param in CASES]
    assert len(ids) >= 70
    assert len(set(ids)) == len(ids)
    statuses = {param.values[0].status for param in CASES}
    assert statuses >= {201, 400, 413, 415, 503}


@pytest.mark.parametrize("kind", SIDES)
async def test_register_ignores_client_chosen_credentials(kind: str) -> None:
    chosen: dict[str, Any] = {
        "client_id": "chosen-by-client-000000",
        "client_secret": "chosen-secret",
        "client_id_issued_at": 1,
        "client_secret_expires_at": 1,
    }
    case = Case(meta(**chosen), 201)

    answer, side = await _answer(kind, case)

    assert answer.status == 201
    body = answer.json()
    for name, value in chosen.items():
        assert body[name] != value, name
    assert await _get(side, chosen["client_id"]) is None
    assert await _authenticate(side, body["client_id"], "chosen-secret") is None


@pytest.mark.parametrize("kind", SIDES)
async def test_register_issues_distinct_credentials_per_request(kind: str) -> None:
    case = Case(meta(), 201)
    asgi, wsgi = _sides(case)
    answers = []
    for _ in range(5):
        if kind == "asgi":
            answers.append(await _asgi_answer(case, asgi))
        else:
            answers.append(_wsgi_answer(case, wsgi))

    assert {a.status for a in answers} == {201}
    assert len({a.json()["client_id"] for a in answers}) == 5
    assert len({a.json()["client_secret"] for a in answers}) == 5
    side = asgi if kind == "asgi" else wsgi
    assert record_count(side.backend) == 5
