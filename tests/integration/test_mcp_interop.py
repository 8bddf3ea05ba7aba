"""Interop with clients no one here wrote, against ``examples/mcp_server.py`` under real uvicorn.

The example is an MCP server whose OAuth authorization server reads clients from our Redis store
and whose ``POST /register`` is answered by ``DCRMiddleware``. Two independent clients use it:

* the MCP Python SDK's own client (``OAuthClientProvider`` on ``streamable_http_client``): it
  discovers the server (401, RFC 9728 protected-resource metadata, RFC 8414 metadata), registers
  through our middleware (RFC 7591), runs the authorization code flow with PKCE and calls a tool;
  the ``redirect_handler`` follows the authorization URL with httpx instead of a browser;
* Authlib's ``OAuth2Client`` (it cannot register, so the registration is a plain httpx ``POST``
  to the discovered ``registration_endpoint``): authorization code + PKCE and a refresh, then the
  token it got is accepted by the MCP endpoint.

Each client is checked for every token endpoint auth method the example supports; clients are
read back with ``ClientStore``, and a client deleted from the store is refused fresh tokens.
"""

from __future__ import annotations

import ast
import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata
from pydantic import AnyUrl
from support import free_port
from support.mcp_clients import (
    COMMAND,
    EXAMPLE,
    HTTP_TIMEOUT,
    REDIRECT_URI,
    Example,
    SDKRun,
    call_whoami,
    start_example,
)
from support.mcp_clients import sdk_flow as run_sdk

from dcr_middleware import RegisteredClient

pytestmark = [pytest.mark.redis, pytest.mark.server]

METHODS = ["client_secret_post", "client_secret_basic", "none"]
PRM_PATH = "/.well-known/oauth-protected-resource/mcp"
ASM_PATH = "/.well-known/oauth-authorization-server"


# --- the example under uvicorn ---


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Example]:
    """``examples/mcp_server.py`` started as its docstring says, from the repository root.

    One server for the module (importing the SDK costs seconds of CPU); every test registers
    its own clients, under a key prefix no other module uses.
    """
    key_prefix = f"t{uuid.uuid4().hex[:16]}"
    started = start_example(tmp_path_factory.mktemp("mcp-example"), redis_url, key_prefix)
    try:
        yield started
    finally:
        started.stop()


def test_mcp_example_docstring_gives_the_uvicorn_command() -> None:
    doc = ast.get_docstring(ast.parse(EXAMPLE.read_text()))
    assert doc is not None
    lines = [line.strip() for line in doc.splitlines()]
    assert COMMAND in lines
    assert "export DCR_REDIS_URL=redis://localhost:6379/0" in lines
    assert "export DCR_ISSUER=http://127.0.0.1:8000" in lines


# --- the MCP SDK's client ---


def sdk_flow(example: Example, method: str) -> SDKRun:
    """Connect the SDK's client with OAuth to the example's MCP endpoint and call ``whoami``."""
    metadata = OAuthClientMetadata(
        client_name="MCP SDK interop test",
        redirect_uris=[AnyUrl(REDIRECT_URI)],
        token_endpoint_auth_method=method,  # type: ignore[arg-type]
    )
    return run_sdk(example.mcp_url, metadata)


@pytest.mark.parametrize("method", METHODS)
def test_mcp_sdk_client_discovers_registers_through_middleware_and_calls_tool(
    example: Example, method: str
) -> None:
    sdk = sdk_flow(example, method)

    # Discovery and registration, in the order the MCP authorization spec gives.
    calls = [(verb, path) for verb, path, _ in sdk.requests]
    first = {call: calls.index(call) for call in reversed(calls)}
    assert sdk.requests[0] == ("POST", "/mcp", 401)
    assert first[("GET", PRM_PATH)] < first[("GET", ASM_PATH)] < first[("POST", "/register")]
    assert first[("POST", "/register")] < first[("POST", "/token")]
    assert [status for verb, path, status in sdk.requests if path == "/register"] == [201]
    assert [status for verb, path, status in sdk.requests if path == "/token"] == [200]

    # What it registered is in our Redis store, with only a digest of the secret.
    info = sdk.storage.client_info
    assert info is not None
    stored = example.store.get(info.client_id)
    assert stored is not None
    assert stored.redirect_uris == [REDIRECT_URI]
    assert stored.token_endpoint_auth_method == method
    assert stored.metadata["client_name"] == "MCP SDK interop test"
    assert stored.client_secret is None
    if method == "none":
        assert info.client_secret is None
    else:
        assert info.client_secret is not None
        assert example.store.authenticate(info.client_id, info.client_secret) == stored
    assert info.issuer == example.url  # SEP-2352: bound to the issuer it discovered

    # It completed the flow (RFC 9207 iss in the redirect) and the tool saw its client.
    assert len(sdk.browser.redirects) == 1
    redirect = parse_qs(urlsplit(sdk.browser.redirects[0]).query)
    assert redirect["iss"] == [example.url]
    assert sdk.storage.tokens is not None and sdk.storage.tokens.scope == "tools"
    assert sdk.tools == ["whoami"]
    assert sdk.answer == f"client {info.client_id} acting for demo-user"


def test_mcp_sdk_client_with_client_metadata_url_registers_when_documents_are_off(
    example: Example,
) -> None:
    # DCR_CIMD is off: the metadata does not say client_id_metadata_document_supported, so the
    # SDK's client registers instead of using its URL (never fetched: nothing serves it).
    url = "https://client.example/mcp-client.json"
    metadata = OAuthClientMetadata(
        client_name="MCP SDK interop test",
        redirect_uris=[AnyUrl(REDIRECT_URI)],
        token_endpoint_auth_method="none",
    )
    sdk = run_sdk(example.mcp_url, metadata, client_metadata_url=url)

    with httpx.Client(base_url=example.url, timeout=HTTP_TIMEOUT) as http:
        served = http.get(ASM_PATH).json()
    assert "client_id_metadata_document_supported" not in served
    assert [status for verb, path, status in sdk.requests if path == "/register"] == [201]
    info = sdk.storage.client_info
    assert info is not None and info.client_id != url
    assert sdk.answer == f"client {info.client_id} acting for demo-user"
    assert example.store.get(url) is None


def _token_auth(
    info: OAuthClientInformationFull, form: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers of a token request authenticated as the SDK does for ``info``."""
    form = {**form, "client_id": info.client_id}
    headers: dict[str, str] = {}
    if info.token_endpoint_auth_method == "client_secret_basic":
        assert info.client_secret is not None
        basic = base64.b64encode(f"{info.client_id}:{info.client_secret}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    elif info.token_endpoint_auth_method == "client_secret_post":
        assert info.client_secret is not None
        form["client_secret"] = info.client_secret
    return form, headers


def _refresh(http: httpx.Client, info: OAuthClientInformationFull, token: str) -> httpx.Response:
    form, headers = _token_auth(info, {"grant_type": "refresh_token", "refresh_token": token})
    return http.post("/token", data=form, headers=headers)


@pytest.mark.parametrize("method", METHODS)
def test_mcp_sdk_client_deleted_from_store_is_refused_fresh_tokens(
    example: Example, method: str
) -> None:
    sdk = sdk_flow(example, method)
    info, tokens = sdk.storage.client_info, sdk.storage.tokens
    assert info is not None and tokens is not None and tokens.refresh_token is not None

    with httpx.Client(base_url=example.url, timeout=HTTP_TIMEOUT) as http:
        # While the client exists, its credentials get fresh tokens.
        refreshed = _refresh(http, info, tokens.refresh_token)
        assert refreshed.status_code == 200, refreshed.text
        refresh_token = refreshed.json()["refresh_token"]

        loaded = example.store.load(info.client_id)
        assert loaded is not None
        example.store.replace(info.client_id, loaded[1], None)
        assert example.store.get(info.client_id) is None

        refused = _refresh(http, info, refresh_token)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"] == "invalid_client"

        # And it cannot start another authorization either.
        authorize = http.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": info.client_id,
                "redirect_uri": REDIRECT_URI,
                "code_challenge": "x" * 43,
                "state": "s",
            },
        )
        assert authorize.status_code == 400, authorize.text
        assert authorize.json()["error"] == "invalid_request"


# --- Authlib's client ---


@dataclass(frozen=True)
class Discovered:
    """What a client learns from the MCP endpoint's 401 (RFC 9728, then RFC 8414)."""

    resource: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str


def discover(http: httpx.Client, mcp_url: str) -> Discovered:
    """Follow the ``resource_metadata`` of the MCP endpoint's 401 to the AS metadata."""
    challenge = http.post(mcp_url, json={})
    assert challenge.status_code == 401
    params = dict(
        part.strip().split("=", 1)
        for part in challenge.headers["www-authenticate"].removeprefix("Bearer ").split(",")
    )
    resource = http.get(json.loads(params["resource_metadata"])).json()
    issuer = resource["authorization_servers"][0]
    metadata = http.get(issuer + ASM_PATH).json()
    assert metadata["issuer"] == issuer
    return Discovered(
        resource["resource"],
        issuer,
        metadata["authorization_endpoint"],
        metadata["token_endpoint"],
        metadata["registration_endpoint"],
    )


def register(http: httpx.Client, endpoint: str, method: str) -> dict[str, Any]:
    """RFC 7591 registration with plain httpx (Authlib's client has no registration call)."""
    answer = http.post(
        endpoint,
        json={
            "client_name": "Authlib interop test",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": method,
            "scope": "tools",
        },
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.mark.parametrize("method", METHODS)
def test_authlib_client_registers_and_gets_tokens_with_code_and_pkce(
    example: Example, method: str
) -> None:
    with httpx.Client(timeout=HTTP_TIMEOUT) as http:
        found = discover(http, example.mcp_url)
        assert found.registration_endpoint == example.url + "/register"
        created = register(http, found.registration_endpoint, method)
    assert isinstance(example.store.get(created["client_id"]), RegisteredClient)

    # Any loopback port is accepted for the registered http://127.0.0.1/callback (RFC 8252 §7.3).
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    verifier = generate_token(64)
    with OAuth2Client(
        created["client_id"],
        created.get("client_secret"),
        token_endpoint_auth_method=method,
        redirect_uri=redirect_uri,
        scope="tools",
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT,
    ) as oauth:
        url, state = oauth.create_authorization_url(
            found.authorization_endpoint, code_verifier=verifier, resource=found.resource
        )
        approved = httpx.get(url, timeout=HTTP_TIMEOUT)
        assert approved.status_code == 302, approved.text
        location = approved.headers["location"]
        assert location.startswith(redirect_uri + "?")
        assert parse_qs(urlsplit(location).query)["state"] == [state]

        token = oauth.fetch_token(
            found.token_endpoint,
            authorization_response=location,
            code_verifier=verifier,
            resource=found.resource,
        )
        assert token["token_type"] == "Bearer" and token["scope"] == "tools"
        refreshed = oauth.refresh_token(found.token_endpoint)
        assert refreshed["access_token"] != token["access_token"]

    assert call_whoami(example.mcp_url, refreshed["access_token"]) == (
        f"client {created['client_id']} acting for demo-user"
    )


def test_authlib_client_with_wrong_secret_or_method_is_refused(example: Example) -> None:
    with httpx.Client(timeout=HTTP_TIMEOUT) as http:
        found = discover(http, example.mcp_url)
        created = register(http, found.registration_endpoint, "client_secret_basic")

    def exchange(secret: str, method: str) -> None:
        verifier = generate_token(64)
        with OAuth2Client(
            created["client_id"],
            secret,
            token_endpoint_auth_method=method,
            redirect_uri="http://127.0.0.1/callback",
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT,
        ) as oauth:
            url, _ = oauth.create_authorization_url(
                found.authorization_endpoint, code_verifier=verifier
            )
            location = httpx.get(url, timeout=HTTP_TIMEOUT).headers["location"]
            oauth.fetch_token(
                found.token_endpoint, authorization_response=location, code_verifier=verifier
            )

    for secret, method in [
        (created["client_secret"] + "x", "client_secret_basic"),  # wrong secret
        (created["client_secret"], "client_secret_post"),  # not the registered method
    ]:
        with pytest.raises(OAuthError) as refused:
            exchange(secret, method)
        assert refused.value.error == "invalid_client"
    exchange(created["client_secret"], "client_secret_basic")  # the right pair is accepted
