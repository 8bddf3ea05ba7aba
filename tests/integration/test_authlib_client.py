"""An Authlib ``ClientMixin`` built from a stored client follows RFC 7592 updates and deletes at
once (issue 4's done-when), on a real Redis, through the WSGI middleware in-process."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis

from dcr_middleware import ClientStore, DCRWSGIMiddleware, Settings
from dcr_middleware.integrations.authlib import AuthlibClient, query_client

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

pytestmark = pytest.mark.redis

JSON = {"Content-Type": "application/json"}
FIRST = {
    "redirect_uris": ["https://app.example.com/cb", "http://127.0.0.1/cb"],
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "read write",
}


def _app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not here"]


@pytest.fixture
def setup(
    redis_url: str, redis_db: redis.Redis, key_prefix: str
) -> Iterator[tuple[httpx.Client, ClientStore]]:
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix, rate_limit="off")
    store = ClientStore(settings)
    middleware = DCRWSGIMiddleware(_app, settings, store=store)
    with httpx.Client(
        transport=httpx.WSGITransport(app=middleware), base_url="http://testserver"
    ) as http:
        yield http, store
    store.close()


def _register(http: httpx.Client) -> dict[str, Any]:
    answer = http.post("/register", content=json.dumps(FIRST), headers=JSON)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_authlib_client_answers_from_the_stored_client(
    setup: tuple[httpx.Client, ClientStore],
) -> None:
    http, store = setup
    created = _register(http)
    client = query_client(store)(created["client_id"])
    assert isinstance(client, AuthlibClient)
    assert client.get_client_id() == created["client_id"]
    assert client.get_default_redirect_uri() == "https://app.example.com/cb"
    assert client.check_redirect_uri("https://app.example.com/cb")
    assert client.check_redirect_uri("http://127.0.0.1:53123/cb")  # RFC 8252 §7.3
    assert not client.check_redirect_uri("https://evil.example/cb")
    assert client.check_client_secret(created["client_secret"])
    assert not client.check_client_secret(created["client_secret"] + "x")
    assert client.check_endpoint_auth_method("client_secret_basic", "token")
    assert not client.check_endpoint_auth_method("client_secret_post", "token")
    assert client.check_grant_type("refresh_token")
    assert not client.check_grant_type("client_credentials")
    assert client.check_response_type("code")
    assert not client.check_response_type("token")
    assert client.get_allowed_scope("read admin") == "read"


def test_authlib_client_reflects_put_at_once_and_deleted_client_is_gone(
    setup: tuple[httpx.Client, ClientStore],
) -> None:
    http, store = setup
    created = _register(http)
    client_id, secret = created["client_id"], created["client_secret"]
    auth = {"Authorization": f"Bearer {created['registration_access_token']}"}
    query = query_client(store)

    update = {**FIRST, "client_id": client_id, "redirect_uris": ["https://new.example.com/cb"]}
    answer = http.put(f"/register/{client_id}", content=json.dumps(update), headers=JSON | auth)
    assert answer.status_code == 200, answer.text
    after = query(client_id)
    assert after is not None
    assert after.check_redirect_uri("https://new.example.com/cb")
    assert not after.check_redirect_uri("https://app.example.com/cb")
    assert after.check_client_secret(secret)  # the secret is kept across the update

    auth = {"Authorization": f"Bearer {answer.json()['registration_access_token']}"}
    assert http.delete(f"/register/{client_id}", headers=auth).status_code == 204
    assert query(client_id) is None
    assert store.authenticate(client_id, secret) is None
