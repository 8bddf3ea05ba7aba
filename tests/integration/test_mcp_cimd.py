"""The MCP SDK's client with a Client ID Metadata Document, against ``examples/mcp_server.py``.

The example runs under real uvicorn with ``DCR_CIMD=true`` and a real ``redis-server``. The
documents are served by a real HTTPS server in this process (``support/https_server.py``) on
``127.0.0.2``, its certificate from a throwaway CA that the example trusts through
``SSL_CERT_FILE``; ``DCR_CIMD_PRIVATE_NETWORKS=127.0.0.0/8`` lets the example fetch from
loopback. The client ids are IP-literal URLs (``https://127.0.0.2:<port>/...``), which the SDK
accepts and the example can reach without a name to resolve.

* The SDK's client, given a ``client_metadata_url``, sees
  ``client_id_metadata_document_supported`` in the server's metadata, registers nothing, uses
  the URL as its client id through authorization (PKCE) and token, and calls ``whoami``. The
  example fetched the document once: the token request and later lookups read Redis.
* A DCR client does the same beside it, against the same server.
* A document whose ``client_id`` is not its URL is refused at ``/authorize`` and ``/token``,
  with no ``500``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl
from support.https_server import DocumentServer, Route, loopback_socket_works
from support.mcp_clients import (
    HTTP_TIMEOUT,
    REDIRECT_URI,
    AuthorizationRefused,
    Browser,
    Example,
    MemoryTokenStorage,
    SDKRun,
    find,
    sdk_flow,
    start_example,
)

from dcr_middleware import ClientStore
from dcr_middleware.core.events import DocumentRefused, Event, Observer

pytestmark = [
    pytest.mark.redis,
    pytest.mark.server,
    pytest.mark.skipif(
        not loopback_socket_works("127.0.0.2"), reason="127.0.0.2 cannot be bound here"
    ),
]

DOCUMENT_HOST = "127.0.0.2"
ASM_PATH = "/.well-known/oauth-authorization-server"
CIMD_ENV = {"DCR_CIMD": "true", "DCR_CIMD_PRIVATE_NETWORKS": "127.0.0.0/8"}


def document(url: str, /, **members: Any) -> Route:
    """A document route: what the SDK's client needs, public, cacheable for 10 minutes."""
    body = {
        "client_id": url,
        "client_name": "MCP SDK CIMD test",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **members,
    }
    headers = (("Content-Type", "application/json"), ("Cache-Control", "max-age=600"))
    return Route(headers=headers, body=json.dumps(body).encode())


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentServer]:
    """The HTTPS document server, its certificate for the address ``127.0.0.2``."""
    server = DocumentServer(tmp_path_factory.mktemp("cimd-ca"), DOCUMENT_HOST, (DOCUMENT_HOST,))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def example(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, documents: DocumentServer
) -> Iterator[Example]:
    """The example with Client ID Metadata Documents on, trusting the documents' CA; the
    test's store reads the same Redis (and so the same document cache)."""
    env = {**CIMD_ENV, "SSL_CERT_FILE": str(documents.ca_file)}
    started = start_example(
        tmp_path_factory.mktemp("mcp-cimd"),
        redis_url,
        f"t{uuid.uuid4().hex[:16]}",
        env,
        store_settings={"cimd": True, "cimd_private_networks": ("127.0.0.0/8",)},
    )
    try:
        yield started
    finally:
        started.stop()


def client_url(documents: DocumentServer, name: str) -> str:
    """A document URL of its own for each test (the cache is shared by the module)."""
    return documents.url(DOCUMENT_HOST, f"/{name}-{uuid.uuid4().hex[:8]}.json")


def serve(documents: DocumentServer, url: str, route: Route) -> str:
    """Serve ``route`` at ``url``'s path; the path, to count its fetches."""
    path = urlsplit(url).path
    documents.routes[path] = route
    return path


def fetches(documents: DocumentServer, path: str) -> int:
    return documents.paths().count(path)


def sdk_metadata() -> OAuthClientMetadata:
    """The SDK's client metadata: what it would register, and its redirect URI."""
    return OAuthClientMetadata(
        client_name="MCP SDK CIMD test",
        redirect_uris=[AnyUrl(REDIRECT_URI)],
        token_endpoint_auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
    )


def no_server_error(example: Example) -> None:
    output = example.server.output()
    assert '" 500' not in output, output
    assert "Traceback" not in output, output


def test_mcp_cimd_metadata_says_documents_are_supported(example: Example) -> None:
    with httpx.Client(base_url=example.url, timeout=HTTP_TIMEOUT) as http:
        metadata = http.get(ASM_PATH).json()
    assert metadata["client_id_metadata_document_supported"] is True
    assert metadata["registration_endpoint"] == example.url + "/register"  # DCR stays on
    assert "none" in metadata["token_endpoint_auth_methods_supported"]


def test_mcp_sdk_client_uses_its_client_metadata_url_as_client_id_and_calls_tool(
    example: Example, documents: DocumentServer
) -> None:
    url = client_url(documents, "sdk")
    path = serve(documents, url, document(url))

    sdk = sdk_flow(example.mcp_url, sdk_metadata(), client_metadata_url=url)

    # No registration: the URL is the client id, through authorization and token.
    assert "/register" not in [p for _, p, _ in sdk.requests]
    assert [status for _, p, status in sdk.requests if p == "/token"] == [200]
    info = sdk.storage.client_info
    assert info is not None
    assert info.client_id == url
    assert info.client_secret is None
    assert len(sdk.browser.redirects) == 1
    authorization = urlsplit(str(sdk.browser.answers[0].request.url))
    assert authorization.path == "/authorize"
    sent = parse_qs(authorization.query)
    assert sent["client_id"] == [url]
    assert sent["code_challenge_method"] == ["S256"]
    redirect = parse_qs(urlsplit(sdk.browser.redirects[0]).query)
    assert redirect["iss"] == [example.url]

    # The tool saw the URL client.
    assert sdk.storage.tokens is not None and sdk.storage.tokens.scope == "tools"
    assert sdk.tools == ["whoami"]
    assert sdk.answer == f"client {url} acting for demo-user"

    # One fetch across /authorize and /token: the second lookup read the cache in Redis...
    assert fetches(documents, path) == 1
    # ...which another store on the same Redis reads too, without fetching.
    stored = example.store.get(url)
    assert stored is not None and stored.from_document
    assert stored.redirect_uris == [REDIRECT_URI]
    assert stored.is_public
    assert stored.metadata["client_name"] == "MCP SDK CIMD test"

    # A refresh, as the public client it is (no secret), still from the cache.
    refresh_token = sdk.storage.tokens.refresh_token
    assert refresh_token is not None
    with httpx.Client(base_url=example.url, timeout=HTTP_TIMEOUT) as http:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": url}
        refreshed = http.post("/token", data=form)
    assert refreshed.status_code == 200, refreshed.text
    assert fetches(documents, path) == 1
    no_server_error(example)


def test_mcp_sdk_client_without_client_metadata_url_registers_beside_document_clients(
    example: Example, documents: DocumentServer
) -> None:
    url = client_url(documents, "beside")
    path = serve(documents, url, document(url))
    cimd = sdk_flow(example.mcp_url, sdk_metadata(), client_metadata_url=url)
    dcr = sdk_flow(example.mcp_url, sdk_metadata())

    assert [status for _, p, status in dcr.requests if p == "/register"] == [201]
    assert [status for _, p, status in dcr.requests if p == "/token"] == [200]
    info = dcr.storage.client_info
    assert info is not None and info.client_id != url
    assert not info.client_id.startswith("https://")
    registered = example.store.get(info.client_id)
    assert registered is not None and not registered.from_document
    assert dcr.answer == f"client {info.client_id} acting for demo-user"
    assert cimd.answer == f"client {url} acting for demo-user"
    assert fetches(documents, path) == 1
    no_server_error(example)


REFUSED = [
    pytest.param(
        {"client_id": "https://127.0.0.2/another.json"}, 200, "client_id", id="client-id-mismatch"
    ),
    pytest.param(
        {"token_endpoint_auth_method": "client_secret_basic"}, 200, "secret", id="secret-method"
    ),
    pytest.param({}, 404, "status", id="no-document"),
]


@pytest.mark.parametrize(("members", "status", "reason"), REFUSED)
def test_mcp_sdk_client_with_a_refused_document_is_refused_at_authorize_and_token(
    example: Example,
    documents: DocumentServer,
    members: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    url = client_url(documents, "refused")
    route = document(url, **members)
    path = serve(documents, url, Route(status, route.headers, route.body))

    seen = SDKRun(MemoryTokenStorage(), Browser(), [])
    with pytest.raises(Exception) as failed:  # raised in the SDK's task group: a group
        sdk_flow(example.mcp_url, sdk_metadata(), client_metadata_url=url, seen=seen)

    # The SDK took the URL as its client id (no registration) and was refused at /authorize:
    # the SDK's AuthorizationHandler answers an unknown client 400 invalid_request, never
    # redirecting (RFC 6749 §4.1.2.1).
    refused = find(failed.value, AuthorizationRefused)
    assert isinstance(refused, AuthorizationRefused), failed.value
    assert refused.answer.status_code == 400, refused.answer.text
    assert "location" not in refused.answer.headers
    assert refused.answer.json()["error"] == "invalid_request"
    assert refused.answer.json()["error_description"] == f"Client ID '{url}' not found"
    assert "/register" not in [p for _, p, _ in seen.requests]
    assert seen.storage.tokens is None

    # At the token endpoint the same client id is invalid_client.
    with httpx.Client(base_url=example.url, timeout=HTTP_TIMEOUT) as http:
        form = {
            "grant_type": "authorization_code",
            "code": "never-issued",
            "redirect_uri": REDIRECT_URI,
            "code_verifier": "v" * 43,
            "client_id": url,
        }
        answer = http.post("/token", data=form)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"

    # One fetch: the refusal is remembered (DCR_CIMD_NEGATIVE_TTL), and nothing crashed.
    assert fetches(documents, path) == 1
    events: list[Event] = []
    store = ClientStore(example.store.settings, observer=Observer([events.append]))
    try:
        assert store.get(url) is None
    finally:
        store.close()
    assert [(e.reason, e.cached) for e in events if isinstance(e, DocumentRefused)] == [
        (reason, True)
    ]
    assert fetches(documents, path) == 1
    no_server_error(example)
