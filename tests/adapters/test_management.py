"""RFC 7592 client configuration endpoint (``P/{client_id}``) through both middlewares.

Every test runs on the ASGI side (``httpx.ASGITransport``) and the WSGI side
(``httpx.WSGITransport`` under ``wsgiref.validate``) with the same expectations, each side with
its own embedded store; a parity test then runs one whole read/update/delete sequence through
both and compares the answers. The SPEC §6 Authlib bugs are pinned here: ``405`` (not ``500``)
for other methods, a ``Bearer`` (not ``Basic``) challenge, and ``PUT`` replacing (not merging).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest

from dcr_middleware import RegisteredClient, Settings
from dcr_middleware.storage.memory import MemoryBackend

from .harness import (
    Answer,
    ASGISide,
    RawASGI,
    Receive,
    Scope,
    Send,
    WSGISide,
    asgi_request,
    asgi_side,
    body_messages,
    http_scope,
    record_count,
    wsgi_request,
    wsgi_side,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

pytestmark = pytest.mark.anyio

SIDES = ("asgi", "wsgi")
P = "/register"
WEB = "https://app.example.com/cb"
OTHER = "https://app.example.com/other"
JSON = {"Content-Type": "application/json"}
CHALLENGE = 'Bearer error="invalid_token"'
ALLOW = "GET, PUT, DELETE"
ORIGIN = "https://inspector.example.com"
NO_ROTATION = Settings(rotate_registration_access_token=False)
FIRST = {
    "redirect_uris": [WEB],
    "client_name": "First",
    "contacts": ["ops@example.com"],
    "scope": "openid profile",
    "logo_uri": "https://app.example.com/logo.png",
}
SECRET_FIELDS = ("client_secret", "client_secret_expires_at")
SERVER_SET = (
    "client_id",
    "client_id_issued_at",
    "registration_client_uri",
    "registration_access_token",
    *SECRET_FIELDS,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {**extra, "Authorization": f"Bearer {token}"}


def metadata_of(body: dict[str, Any]) -> dict[str, Any]:
    """The registered metadata of a client information response."""
    return {k: v for k, v in body.items() if k not in SERVER_SET}


# --- the wrapped apps (for the transports' client address) ---------------------------------------

PEERS: list[str] = []


async def peer_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    PEERS.append(scope["client"][0])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def peer_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    PEERS.append(environ["REMOTE_ADDR"])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
    return [b""]


# --- one endpoint, either side -------------------------------------------------------------------


class Endpoint:
    """One middleware (ASGI or WSGI) with its own embedded store."""

    def __init__(
        self,
        kind: str,
        settings: Settings | None = None,
        backend: MemoryBackend | None = None,
    ) -> None:
        self.kind = kind
        settings = Settings() if settings is None else settings
        self.side: ASGISide | WSGISide = (
            asgi_side(settings, backend) if kind == "asgi" else wsgi_side(settings, backend)
        )
        self.backend = self.side.backend

    async def send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if isinstance(self.side, ASGISide):
            return await asgi_request(self.side.app, method, path, content=content, headers=headers)
        return wsgi_request(self.side.app, method, path, content=content, headers=headers)

    async def register(self, metadata: dict[str, Any] = FIRST, **headers: str) -> dict[str, Any]:
        answer = await self.send(
            "POST", P, content=json.dumps(metadata).encode(), headers={**JSON, **headers}
        )
        assert answer.status == 201, answer.body
        created: dict[str, Any] = answer.json()
        return created

    async def get(self, client_id: str, token: str | None) -> Answer:
        return await self.send("GET", f"{P}/{client_id}", headers=self._auth(token))

    async def put(
        self, client_id: str, token: str | None, body: dict[str, Any], **headers: str
    ) -> Answer:
        return await self.send(
            "PUT",
            f"{P}/{client_id}",
            content=json.dumps(body).encode(),
            headers={**JSON, **self._auth(token), **headers},
        )

    async def delete(self, client_id: str, token: str | None) -> Answer:
        return await self.send("DELETE", f"{P}/{client_id}", headers=self._auth(token))

    async def stored(self, client_id: str) -> RegisteredClient | None:
        """What the authorization server's store sees now."""
        if isinstance(self.side, ASGISide):
            return await self.side.store.get(client_id)
        return self.side.store.get(client_id)

    async def authenticate(self, client_id: str, secret: str) -> RegisteredClient | None:
        if isinstance(self.side, ASGISide):
            return await self.side.store.authenticate(client_id, secret)
        return self.side.store.authenticate(client_id, secret)

    @staticmethod
    def _auth(token: str | None) -> dict[str, str]:
        return {} if token is None else bearer(token)


def assert_no_store(answer: Answer) -> None:
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["pragma"] == "no-cache"


def assert_information(answer: Answer, client_id: str) -> dict[str, Any]:
    """A ``200`` client information response (RFC 7592 §3)."""
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert_no_store(answer)
    body: dict[str, Any] = answer.json()
    assert body["client_id"] == client_id
    assert body["registration_client_uri"] == f"http://testserver{P}/{client_id}"
    return body


def assert_invalid_token(answer: Answer, *sent: str) -> None:
    """RFC 6750 §3 refusal that repeats none of the tokens sent."""
    assert answer.status == 401, answer.body
    assert answer.headers["www-authenticate"] == CHALLENGE
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "error": "invalid_token",
        "error_description": "the registration access token is invalid",
    }
    shown = answer.body.decode() + json.dumps(answer.headers)
    for token in sent:
        assert token not in shown
        assert sha(token) not in shown


# --- read ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
async def test_management_get_returns_the_configuration(kind: str) -> None:
    endpoint = Endpoint(kind)
    created = await endpoint.register()
    client_id, token = created["client_id"], created["registration_access_token"]
    answer = await endpoint.get(client_id, token)
    body = assert_information(answer, client_id)
    # RFC 7592 §3: the same fields as the registration response, except the hashed secret.
    assert "client_secret" not in body
    assert created["client_secret"] not in answer.body.decode()
    assert body == {k: v for k, v in created.items() if k != "client_secret"}
    assert body["registration_access_token"] == token
    assert metadata_of(body) == metadata_of(created)


@pytest.mark.parametrize("kind", SIDES)
async def test_management_get_public_client_has_no_secret_fields(kind: str) -> None:
    endpoint = Endpoint(kind)
    created = await endpoint.register(
        {"redirect_uris": [WEB], "token_endpoint_auth_method": "none"}
    )
    answer = await endpoint.get(created["client_id"], created["registration_access_token"])
    body = assert_information(answer, created["client_id"])
    assert not set(SECRET_FIELDS) & set(body)
    assert body == created


@pytest.mark.parametrize("kind", SIDES)
async def test_management_get_client_secret_jwt_never_shows_plaintext(kind: str) -> None:
    endpoint = Endpoint(
        kind, Settings(allowed_auth_methods=("client_secret_basic", "client_secret_jwt"))
    )
    created = await endpoint.register(
        {"redirect_uris": [WEB], "token_endpoint_auth_method": "client_secret_jwt"}
    )
    answer = await endpoint.get(created["client_id"], created["registration_access_token"])
    assert_information(answer, created["client_id"])
    assert created["client_secret"] not in answer.body.decode()


# --- update --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
async def test_management_put_replaces_and_rotates_the_token(kind: str) -> None:
    endpoint = Endpoint(kind)
    created = await endpoint.register()
    client_id, old = created["client_id"], created["registration_access_token"]
    replacement = {"client_id": client_id, "redirect_uris": [OTHER], "client_name": "Second"}
    answer = await endpoint.put(client_id, old, replacement)
    body = assert_information(answer, client_id)
    # RFC 7592 §2.2: omitted fields are not kept (no merge): contacts, scope, logo_uri are gone.
    assert metadata_of(body) == {
        "redirect_uris": [OTHER],
        "client_name": "Second",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    new = body["registration_access_token"]
    assert new != old
    assert len(new) >= 43  # 256 random bits
    assert body["client_id_issued_at"] == created["client_id_issued_at"]
    assert body["client_secret_expires_at"] == created["client_secret_expires_at"]
    assert "client_secret" not in body  # not sent, kept hashed: nothing to show
    assert_invalid_token(await endpoint.get(client_id, old), old)
    again = assert_information(await endpoint.get(client_id, new), client_id)
    assert metadata_of(again) == metadata_of(body)
    stored = await endpoint.stored(client_id)
    assert stored is not None
    assert stored.metadata == metadata_of(body)
    assert stored.registration_token_hash == sha(new)
    # The secret was kept.
    assert await endpoint.authenticate(client_id, created["client_secret"]) == stored


@pytest.mark.parametrize("kind", SIDES)
async def test_management_put_keeps_the_token_without_rotation(kind: str) -> None:
    endpoint = Endpoint(kind, NO_ROTATION)
    created = await endpoint.register()
    client_id, token = created["client_id"], created["registration_access_token"]
    for name in ("Second", "Third"):
        answer = await endpoint.put(
            client_id, token, {"client_id": client_id, "redirect_uris": [WEB], "client_name": name}
        )
        body = assert_information(answer, client_id)
        assert body["registration_access_token"] == token
        assert body["client_name"] == name
    assert assert_information(await endpoint.get(client_id, token), client_id)["client_name"] == (
        "Third"
    )


@pytest.mark.parametrize("kind", SIDES)
async def test_management_put_to_secret_method_issues_a_secret(kind: str) -> None:
    endpoint = Endpoint(kind)
    created = await endpoint.register(
        {"redirect_uris": [WEB], "token_endpoint_auth_method": "none"}
    )
    client_id = created["client_id"]
    answer = await endpoint.put(
        client_id,
        created["registration_access_token"],
        {"client_id": client_id, "redirect_uris": [WEB]},
    )
    body = assert_information(answer, client_id)
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert len(body["client_secret"]) >= 43
    assert body["client_secret_expires_at"] == 0
    assert await endpoint.authenticate(client_id, body["client_secret"]) is not None


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        pytest.param({"client_id": None}, 400, "invalid_request", id="client-id-missing"),
        pytest.param({"client_id": "someone-else"}, 400, "invalid_request", id="client-id-other"),
        pytest.param(
            {"registration_access_token": "mine"}, 400, "invalid_request", id="server-field"
        ),
        pytest.param({"client_secret": "guess"}, 400, "invalid_client_metadata", id="wrong-secret"),
        pytest.param(
            {"redirect_uris": ["javascript:alert(1)"]}, 400, "invalid_redirect_uri", id="bad-uri"
        ),
        pytest.param(
            {"grant_types": ["password"]}, 400, "invalid_client_metadata", id="grant-not-allowed"
        ),
    ],
)
async def test_management_put_refused_changes_nothing(
    kind: str, change: dict[str, Any], status: int, error: str
) -> None:
    endpoint = Endpoint(kind)
    created = await endpoint.register()
    client_id, token = created["client_id"], created["registration_access_token"]
    before = endpoint.backend.get(client_id)
    body = {"client_id": client_id, "redirect_uris": [WEB], **change}
    answer = await endpoint.put(client_id, token, {k: v for k, v in body.items() if v is not None})
    assert answer.status == status, answer.body
    assert answer.json()["error"] == error
    assert endpoint.backend.get(client_id) == before
    assert_information(await endpoint.get(client_id, token), client_id)  # token still valid


@pytest.mark.parametrize("kind", SIDES)
async def test_management_put_body_too_large(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(max_body_bytes=300))
    created = await endpoint.register()
    client_id, token = created["client_id"], created["registration_access_token"]
    before = endpoint.backend.get(client_id)
    body = {"client_id": client_id, "redirect_uris": [WEB], "client_name": "x" * 400}
    answer = await endpoint.put(client_id, token, body)
    assert answer.status == 413, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == "invalid_request"
    assert endpoint.backend.get(client_id) == before


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/plain", id="text"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param("application/json; charset=latin-1", id="json-latin-1"),
    ],
)
async def test_management_put_wrong_content_type(kind: str, content_type: str) -> None:
    endpoint = Endpoint(kind)
    created = await endpoint.register()
    client_id, token = created["client_id"], created["registration_access_token"]
    before = endpoint.backend.get(client_id)
    answer = await endpoint.put(
        client_id,
        token,
        {"client_id": client_id, "redirect_uris": [WEB]},
        **{"Content-Type": content_type},
    )
    assert answer.status == 415, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == "invalid_request"
    assert endpoint.backend.get(client_id) == before


async def _asgi_registered(settings: Settings) -> tuple[ASGISide, str, str]:
    side = asgi_side(settings)
    created = await asgi_request(
        side.app, "POST", P, content=json.dumps({"redirect_uris": [WEB]}).encode(), headers=JSON
    )
    body = created.json()
    return side, body["client_id"], body["registration_access_token"]


async def test_management_asgi_chunked_put_over_limit_stops_reading() -> None:
    side, client_id, token = await _asgi_registered(Settings(max_body_bytes=300))
    before = side.backend.get(client_id)
    server = RawASGI(body_messages([b" " * 100] * 10))  # 1000 bytes, no Content-Length
    scope = http_scope(
        "PUT", f"{P}/{client_id}", [("Content-Type", "application/json"), *bearer(token).items()]
    )
    await side.app(scope, server.receive, server.send)
    assert server.answer().status == 413
    assert server.received == 4  # the message that passed the limit was the last one read
    assert side.backend.get(client_id) == before


async def test_management_asgi_put_disconnect_answers_nothing() -> None:
    side, client_id, token = await _asgi_registered(Settings())
    before = side.backend.get(client_id)
    server = RawASGI([{"type": "http.request", "body": b'{"client_id": ', "more_body": True}])
    scope = http_scope(
        "PUT", f"{P}/{client_id}", [("Content-Type", "application/json"), *bearer(token).items()]
    )
    await side.app(scope, server.receive, server.send)
    assert server.sent == []
    assert side.backend.get(client_id) == before


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_management_asgi_get_and_delete_read_no_body(method: str) -> None:
    side, client_id, token = await _asgi_registered(Settings())
    server = RawASGI(body_messages([b"ignored"]))
    await side.app(
        http_scope(method, f"{P}/{client_id}", bearer(token).items()), server.receive, server.send
    )
    assert server.answer().status in (200, 204)
    assert server.received == 0


# --- delete --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
async def test_management_delete_removes_client_and_token(kind: str) -> None:
    endpoint = Endpoint(kind)
    created = await endpoint.register()
    keep = await endpoint.register()
    client_id, token = created["client_id"], created["registration_access_token"]
    answer = await endpoint.delete(client_id, token)
    assert answer.status == 204, answer.body
    assert answer.body == b""
    assert "content-type" not in answer.headers
    assert_no_store(answer)
    assert await endpoint.stored(client_id) is None
    assert await endpoint.authenticate(client_id, created["client_secret"]) is None
    assert_invalid_token(await endpoint.get(client_id, token), token)
    put = await endpoint.put(client_id, token, {"client_id": client_id, "redirect_uris": [WEB]})
    assert_invalid_token(put, token)
    assert_invalid_token(await endpoint.delete(client_id, token), token)
    # Only that client is gone.
    assert record_count(endpoint.backend) == 1
    assert await endpoint.stored(keep["client_id"]) is not None


@pytest.mark.parametrize("kind", SIDES)
async def test_management_delete_frees_a_place_under_max_clients(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(max_clients=1))
    created = await endpoint.register()
    refused = await endpoint.send("POST", P, content=json.dumps(FIRST).encode(), headers=JSON)
    assert refused.status == 403
    answer = await endpoint.delete(created["client_id"], created["registration_access_token"])
    assert answer.status == 204
    await endpoint.register()
    assert record_count(endpoint.backend) == 1


# --- refusals: one answer for every kind of bad token ------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_management_bad_tokens_indistinguishable(kind: str, method: str) -> None:
    endpoint = Endpoint(kind)
    mine = await endpoint.register()
    other = await endpoint.register()
    client_id, token = mine["client_id"], mine["registration_access_token"]
    other_token = other["registration_access_token"]
    body = json.dumps({"client_id": client_id, "redirect_uris": [OTHER]}).encode()
    attempts = {
        "missing": (client_id, {}),
        "wrong": (client_id, bearer("x" * 43)),
        "other-clients-token": (client_id, bearer(other_token)),
        "unknown-client": ("A" * 22, bearer(token)),
        "unknown-client-bad-shape": ("no.such~client", bearer(token)),
        "unknown-client-long-id": ("A" * 200, bearer(token)),
        "malformed-header": (client_id, {"Authorization": f"Bearer {token}!"}),
        "empty-header": (client_id, {"Authorization": ""}),
        "scheme-only": (client_id, {"Authorization": "Bearer"}),
        "token-without-scheme": (client_id, {"Authorization": token}),
        "registration-secret-as-token": (client_id, bearer(mine["client_secret"])),
    }
    answers = {}
    for name, (target, auth) in attempts.items():
        answer = await endpoint.send(
            method, f"{P}/{target}", content=body, headers={**JSON, **auth}
        )
        assert_invalid_token(answer, token, other_token)
        answers[name] = (answer.status, answer.body, answer.headers)
    assert len({(status, content) for status, content, _ in answers.values()}) == 1
    header_sets = {json.dumps(headers, sort_keys=True) for _, _, headers in answers.values()}
    assert len(header_sets) == 1
    # Nothing changed.
    stored = await endpoint.stored(client_id)
    assert stored is not None
    assert stored.redirect_uris == [WEB]
    assert record_count(endpoint.backend) == 2


@pytest.mark.parametrize("kind", SIDES)
async def test_management_basic_auth_gets_bearer_challenge(kind: str) -> None:
    # SPEC §6: Authlib answers with a Basic challenge; the endpoint is Bearer only (RFC 7592 §3).
    endpoint = Endpoint(kind)
    created = await endpoint.register()
    client_id = created["client_id"]
    basic = base64.b64encode(f"{client_id}:{created['client_secret']}".encode()).decode()
    answer = await endpoint.send(
        "GET", f"{P}/{client_id}", headers={"Authorization": f"Basic {basic}"}
    )
    assert_invalid_token(answer, created["client_secret"])
    assert "basic" not in answer.headers["www-authenticate"].lower()


@pytest.mark.parametrize("kind", SIDES)
async def test_management_put_bad_token_body_not_looked_at(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(max_body_bytes=200))
    created = await endpoint.register({"redirect_uris": [WEB]})
    client_id = created["client_id"]
    for content, headers in [
        (b"not json", JSON),
        (b"{}", {"Content-Type": "text/plain"}),
        (b"{" + b" " * 500 + b"}", JSON),
    ]:
        answer = await endpoint.send(
            "PUT", f"{P}/{client_id}", content=content, headers={**headers, **bearer("wrong")}
        )
        assert_invalid_token(answer)


# --- other methods (SPEC §6: Authlib answers 500) ----------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("method", ["POST", "PATCH", "TRACE"])
@pytest.mark.parametrize("authorized", [True, False], ids=["with-token", "without-token"])
async def test_management_other_methods_not_allowed(
    kind: str, method: str, authorized: bool
) -> None:
    endpoint = Endpoint(kind)
    created = await endpoint.register()
    client_id, token = created["client_id"], created["registration_access_token"]
    before = endpoint.backend.get(client_id)
    headers = {**JSON, **(bearer(token) if authorized else {})}
    body = json.dumps({"client_id": client_id, "redirect_uris": [OTHER]}).encode()
    answer = await endpoint.send(method, f"{P}/{client_id}", content=body, headers=headers)
    assert answer.status == 405, answer.body
    assert answer.headers["allow"] == ALLOW
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == "invalid_request"
    assert endpoint.backend.get(client_id) == before


@pytest.mark.parametrize("kind", SIDES)
async def test_management_other_methods_not_allowed_unknown_client(kind: str) -> None:
    answer = await Endpoint(kind).send("POST", f"{P}/nobody", content=b"{}", headers=JSON)
    assert answer.status == 405
    assert answer.headers["allow"] == ALLOW


# --- CORS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("requested", ["GET", "PUT", "DELETE"])
async def test_management_preflight_allows_the_three_methods(kind: str, requested: str) -> None:
    answer = await Endpoint(kind).send(
        "OPTIONS",
        f"{P}/any-client",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": requested,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert answer.status == 204, answer.body
    assert answer.headers["access-control-allow-methods"] == ALLOW
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.body == b""


@pytest.mark.parametrize("kind", SIDES)
async def test_management_preflight_refuses_post(kind: str) -> None:
    answer = await Endpoint(kind).send(
        "OPTIONS",
        f"{P}/any-client",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert answer.status == 403
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize("kind", SIDES)
async def test_management_registration_preflight_still_post(kind: str) -> None:
    answer = await Endpoint(kind).send(
        "OPTIONS", P, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert answer.status == 204
    assert answer.headers["access-control-allow-methods"] == "POST"


@pytest.mark.parametrize("kind", SIDES)
async def test_management_cors_on_refusal_exposes_challenge(kind: str) -> None:
    answer = await Endpoint(kind).send("GET", f"{P}/nobody", headers={"Origin": ORIGIN})
    assert_invalid_token(answer)
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "WWW-Authenticate" in answer.headers["access-control-expose-headers"]


# --- registration_client_uri ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
async def test_transport_client_address_is_loopback(kind: str) -> None:
    # The trusted-proxy tests below rely on the address the httpx transports report.
    PEERS.clear()
    if kind == "asgi":
        await asgi_request(asgi_side(Settings(), app=peer_asgi).app, "GET", "/")
    else:
        wsgi_request(wsgi_side(Settings(), app=peer_wsgi).app, "GET", "/")
    assert PEERS == ["127.0.0.1"]


async def _client_uri(endpoint: Endpoint, **headers: str) -> tuple[str, str]:
    """The ``registration_client_uri`` of a registration and of a read, and the client id."""
    created = await endpoint.register(FIRST, **headers)
    client_id = created["client_id"]
    answer = await endpoint.send(
        "GET",
        f"{P}/{client_id}",
        headers={**headers, **bearer(created["registration_access_token"])},
    )
    assert answer.status == 200, answer.body
    assert answer.json()["registration_client_uri"] == created["registration_client_uri"]
    return created["registration_client_uri"], client_id


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example"}


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    ("settings", "headers", "expected"),
    [
        pytest.param(Settings(), {}, "http://testserver/register", id="request-host"),
        pytest.param(
            Settings(issuer="https://auth.example.com"),
            FORWARDED,
            "https://auth.example.com/register",
            id="issuer",
        ),
        pytest.param(
            Settings(issuer="https://auth.example.com/base/"),
            {"Host": "evil.example"},
            "https://auth.example.com/base/register",
            id="issuer-with-path",
        ),
        pytest.param(
            Settings(trusted_proxies=("127.0.0.1/32",)),
            FORWARDED,
            "https://public.example/register",
            id="trusted-proxy-forwarded",
        ),
        pytest.param(
            Settings(trusted_proxies=("127.0.0.1/32",), forwarded_header="forwarded"),
            {"Forwarded": "for=203.0.113.9;proto=https;host=pub.example:8443", **FORWARDED},
            "https://pub.example:8443/register",
            id="trusted-proxy-rfc-7239",
        ),
        pytest.param(
            Settings(trusted_proxies=("10.0.0.0/8",)),
            FORWARDED,
            "http://testserver/register",
            id="untrusted-peer-forwarded-ignored",
        ),
        pytest.param(Settings(), FORWARDED, "http://testserver/register", id="no-trusted-proxies"),
        pytest.param(
            Settings(trusted_proxies=("127.0.0.1/32",)),
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example/path?x"},
            "https://testserver/register",
            id="trusted-proxy-malformed-host",
        ),
        pytest.param(
            Settings(),
            {"Host": "evil.example/path?x"},
            "http://localhost/register",
            id="malicious-host",
        ),
        pytest.param(
            Settings(),
            {"Host": "app.example:8080"},
            "http://app.example:8080/register",
            id="host-with-port",
        ),
    ],
)
async def test_management_registration_client_uri_origin(
    kind: str, settings: Settings, headers: dict[str, str], expected: str
) -> None:
    uri, client_id = await _client_uri(Endpoint(kind, settings), **headers)
    assert uri == f"{expected}/{client_id}"


# --- compare-and-set -----------------------------------------------------------------------------


class RacingBackend(MemoryBackend):
    """An embedded store where, once armed, another request rewrites the client right after
    this request read it (between ``load`` and ``replace``)."""

    armed = False

    def read(self, client_id: str) -> tuple[str | None, int | None]:
        record, used = super().read(client_id)
        if self.armed and record is not None:
            self.armed = False
            data = json.loads(record)
            data["metadata"]["client_name"] = "changed concurrently"
            assert self.replace(client_id, record, json.dumps(data, separators=(",", ":")))
        return record, used


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_management_concurrent_change_conflicts(kind: str, method: str) -> None:
    backend = RacingBackend()
    endpoint = Endpoint(kind, NO_ROTATION, backend)
    created = await endpoint.register()
    client_id, token = created["client_id"], created["registration_access_token"]
    backend.armed = True
    body = json.dumps({"client_id": client_id, "redirect_uris": [OTHER]}).encode()
    answer = await endpoint.send(
        method, f"{P}/{client_id}", content=body, headers={**JSON, **bearer(token)}
    )
    assert not backend.armed  # the race happened
    assert answer.status == 409, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == "invalid_request"
    # The concurrent change is neither overwritten nor deleted.
    stored = await endpoint.stored(client_id)
    assert stored is not None
    assert stored.metadata["client_name"] == "changed concurrently"
    assert stored.redirect_uris == [WEB]
    # Read again and retry: it works.
    retry = await endpoint.send(
        method, f"{P}/{client_id}", content=body, headers={**JSON, **bearer(token)}
    )
    assert retry.status == (200 if method == "PUT" else 204)


# --- parity --------------------------------------------------------------------------------------


def _shape(answer: Answer, secrets: dict[str, str]) -> dict[str, Any]:
    """Status, the headers that matter and the body with generated values named."""
    text = answer.body.decode()
    for value, name in secrets.items():
        text = text.replace(value, name)
    headers = {
        k: v for k, v in answer.headers.items() if k not in ("content-length", "date", "server")
    }
    return {"status": answer.status, "headers": headers, "body": text}


async def _sequence(kind: str) -> list[dict[str, Any]]:
    endpoint = Endpoint(kind)
    created = await endpoint.register(
        {"redirect_uris": [WEB], "token_endpoint_auth_method": "none"}
    )
    client_id, token = created["client_id"], created["registration_access_token"]
    names = {client_id: "<id>", token: "<token-1>", str(created["client_id_issued_at"]): "<now>"}
    shapes = []

    async def step(method: str, body: Any = None, auth: str | None = None, **hdrs: str) -> Answer:
        content = None if body is None else json.dumps(body).encode()
        headers = {**JSON, **hdrs, **({} if auth is None else bearer(auth))}
        answer = await endpoint.send(method, f"{P}/{client_id}", content=content, headers=headers)
        if answer.status == 200:
            for field in ("registration_access_token", "client_secret"):
                value = answer.json().get(field)
                if value is not None:
                    names.setdefault(value, f"<{field}-{len(names)}>")
        shapes.append(_shape(answer, names))
        return answer

    await step("GET", auth=token)
    await step("GET", auth="wrong")
    await step("GET")
    await step("POST", {"client_id": client_id}, auth=token)
    await step("PATCH", auth=token)
    await step("OPTIONS", Origin=ORIGIN, **{"Access-Control-Request-Method": "PUT"})
    await step("PUT", {"client_id": "x", "redirect_uris": [WEB]}, auth=token)
    await step("PUT", {"client_id": client_id, "redirect_uris": ["http://x.example/"]}, auth=token)
    # none -> client_secret_basic (the default): a secret is issued, the token rotated.
    second = await step(
        "PUT", {"client_id": client_id, "redirect_uris": [WEB]}, auth=token, Origin=ORIGIN
    )
    token2 = second.json()["registration_access_token"]
    await step("GET", auth=token)
    third = await step(
        "PUT",
        {
            "client_id": client_id,
            "redirect_uris": [OTHER],
            "client_name": "N",
            "token_endpoint_auth_method": "none",
        },
        auth=token2,
    )
    token3 = third.json()["registration_access_token"]
    await step("GET", auth=token3)
    await step("DELETE", auth=token3)
    await step("GET", auth=token3)
    await step("DELETE", auth=token3)
    return shapes


async def test_management_parity_asgi_wsgi() -> None:
    asgi, wsgi = await _sequence("asgi"), await _sequence("wsgi")
    assert [s["status"] for s in asgi] == [
        200, 401, 401, 405, 405, 204, 400, 400, 200, 401, 200, 200, 204, 401, 401
    ]  # fmt: skip
    for index, (a, w) in enumerate(zip(asgi, wsgi, strict=True)):
        assert a == w, (index, a, w)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", SIDES)
async def test_management_put_stays_within_the_registration_token_policy(kind: str) -> None:
    """A client registered under a minted token's policy cannot widen it later by PUT."""
    endpoint = Endpoint(kind, Settings(require_initial_access_token=True))
    token = "partner-token-0123456789abcdef"
    policy = '{"allowed_redirect_hosts": ["app.partner.example"]}'
    endpoint.backend.token_put(sha(token), {"uses": "-1", "policy": policy}, 0)
    first = {"redirect_uris": ["https://app.partner.example/cb"]}
    created = await endpoint.register(first, Authorization=f"Bearer {token}")
    client_id, rat = created["client_id"], created["registration_access_token"]

    widened = {**first, "client_id": client_id, "redirect_uris": ["https://evil.example/cb"]}
    refused = await endpoint.put(client_id, rat, widened)
    assert refused.status == 400
    assert refused.json()["error"] == "invalid_redirect_uri"

    within = {**first, "client_id": client_id, "client_name": "renamed"}
    accepted = await endpoint.put(client_id, rat, within)
    assert accepted.status == 200, accepted.body
    stored = await endpoint.stored(client_id)
    assert stored is not None and stored.metadata["client_name"] == "renamed"
