"""The Authlib integration's ``query_client`` serving Client ID Metadata Documents.

A real HTTPS server in this process (``support/https_server.py``) on ``127.0.0.2`` serves the
documents, trusted through ``SSL_CERT_FILE``; the store is the embedded one with
``DCR_CIMD=true``. (The whole authorization code flow with such a client, through the Flask +
Authlib example under gunicorn, is in ``test_authlib_flows.py``.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from support.https_server import DocumentServer, Route, loopback_socket_works

from dcr_middleware import ClientStore, Settings
from dcr_middleware.integrations.authlib import (
    AuthlibClient,
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    query_client,
)

HOST = "127.0.0.2"
REDIRECT_URI = "http://127.0.0.1/callback"

pytestmark = pytest.mark.skipif(
    not loopback_socket_works(HOST), reason=f"{HOST} cannot be bound on this machine"
)


@pytest.fixture(scope="module")
def _documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentServer]:
    server = DocumentServer(tmp_path_factory.mktemp("ca"), HOST, (HOST,))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def documents(_documents: DocumentServer, monkeypatch: pytest.MonkeyPatch) -> DocumentServer:
    """The document server, trusted, with this module's documents and no requests seen yet."""
    _documents.trust(monkeypatch, resolve_test_names=False)
    body = {
        "client_id": _documents.url(HOST, "/client.json"),
        "client_name": "An Authlib document client",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "read",
    }
    _documents.routes.clear()
    _documents.routes["/client.json"] = Route(body=json.dumps(body).encode())
    # The same document at another URL: its client_id is not that URL.
    _documents.routes["/mismatch.json"] = Route(body=json.dumps(body).encode())
    _documents.seen.clear()
    return _documents


@pytest.fixture
def store() -> Iterator[ClientStore]:
    """An embedded store of its own (a fresh key prefix: an empty document cache)."""
    settings = Settings(
        cimd=True, cimd_private_networks=("127.0.0.0/8",), key_prefix=f"t{uuid.uuid4().hex[:8]}"
    )
    opened = ClientStore(settings)
    try:
        yield opened
    finally:
        opened.close()


def test_query_client_returns_a_document_client_authlib_can_use(
    documents: DocumentServer, store: ClientStore
) -> None:
    url = documents.url(HOST, "/client.json")
    query = query_client(store)

    client = query(url)
    assert isinstance(client, AuthlibClient)
    assert client.client_id == client.get_client_id() == url
    assert client.client.from_document
    # Redirect URIs as registered ones: exact, plus any port on loopback (RFC 8252 §7.3).
    assert client.get_default_redirect_uri() == REDIRECT_URI
    assert client.check_redirect_uri(REDIRECT_URI)
    assert client.check_redirect_uri("http://127.0.0.1:8123/callback")
    assert not client.check_redirect_uri("https://evil.example/callback")
    # A public client: no secret method at the token endpoint, no secret to check.
    assert client.check_endpoint_auth_method("none", "token")
    assert not client.check_endpoint_auth_method("client_secret_basic", "token")
    assert not client.check_client_secret("anything")
    # What the document lists, and nothing else.
    assert client.check_response_type("code")
    assert client.check_grant_type("authorization_code")
    assert client.check_grant_type("refresh_token")
    assert not client.check_grant_type("client_credentials")
    assert client.get_allowed_scope("read write") == "read"
    # The grants accept it as a public client (Authlib's test: "none" allowed at the token
    # endpoint), and the client credentials grant refuses it.
    assert "none" in AuthorizationCodeGrant.TOKEN_ENDPOINT_AUTH_METHODS
    assert "none" not in ClientCredentialsGrant.TOKEN_ENDPOINT_AUTH_METHODS

    # Every query reads the store; the document was fetched once and then read from the cache.
    again = query(url)
    assert again is not None and again.client == client.client
    assert documents.paths() == ["/client.json"]


def test_query_client_refuses_a_document_naming_another_client_id(
    documents: DocumentServer, store: ClientStore
) -> None:
    query = query_client(store)
    assert query(documents.url(HOST, "/mismatch.json")) is None
    assert query(documents.url(HOST, "/mismatch.json")) is None  # remembered: no refetch
    assert query(documents.url(HOST, "/missing.json")) is None  # 404
    assert query("https://127.0.0.2/../client.json") is None  # not a document URL: no fetch
    assert documents.paths() == ["/mismatch.json", "/missing.json"]
