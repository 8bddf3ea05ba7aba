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
import asyncio
import base64
import json
import os
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl
from support import HOST, Server, free_port, launch

from dcr_middleware import ClientStore, RegisteredClient, Settings

pytestmark = [pytest.mark.redis, pytest.mark.server]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mcp_server.py"
COMMAND = "uvicorn --no-proxy-headers --app-dir examples mcp_server:app --port 8000"
FLOW_TIMEOUT = 60.0  # seconds for one whole client flow
HTTP_TIMEOUT = 10.0  # seconds for one request
METHODS = ["client_secret_post", "client_secret_basic", "none"]
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the handler reads the redirect
PRM_PATH = "/.well-known/oauth-protected-resource/mcp"
ASM_PATH = "/.well-known/oauth-authorization-server"

T = TypeVar("T")


def run(flow: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one async client flow, bounded by :data:`FLOW_TIMEOUT`."""

    async def bounded() -> T:
        return await asyncio.wait_for(flow(), FLOW_TIMEOUT)

    return asyncio.run(bounded())


# --- the example under uvicorn ---


@dataclass
class Example:
    """The running example and a store on the same Redis and key prefix."""

    server: Server
    store: ClientStore

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def mcp_url(self) -> str:
        return self.server.url + "/mcp"


def example_env(redis_url: str, key_prefix: str, port: int) -> dict[str, str]:
    """The subprocess environment: no inherited ``DCR_*``, the example's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    env.pop("PYTHONPATH", None)
    env.update(
        PYTHONUNBUFFERED="1",
        DCR_REDIS_URL=redis_url,
        DCR_KEY_PREFIX=key_prefix,
        DCR_ISSUER=f"http://{HOST}:{port}",
        # Every test of the module registers from 127.0.0.1; rate limiting has its own tests.
        DCR_RATE_LIMIT="off",
    )
    return env


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Example]:
    """``examples/mcp_server.py`` started as its docstring says, from the repository root.

    One server for the module (importing the SDK costs seconds of CPU); every test registers
    its own clients, under a key prefix no other module uses.
    """
    key_prefix = f"t{uuid.uuid4().hex[:16]}"
    tmp_path = tmp_path_factory.mktemp("mcp-example")
    port = free_port()
    argv = [sys.executable, "-m", *COMMAND.split()[:-2], "--host", HOST, "--port", str(port)]
    environ = example_env(redis_url, key_prefix, port)
    # Waits until GET / answers 200.
    server = launch("mcp-example", argv, port=port, directory=tmp_path, env=environ, cwd=ROOT)
    store = ClientStore(Settings(redis_url=redis_url, key_prefix=key_prefix))
    try:
        yield Example(server, store)
    finally:
        server.stop()
        store.close()


def test_mcp_example_docstring_gives_the_uvicorn_command() -> None:
    doc = ast.get_docstring(ast.parse(EXAMPLE.read_text()))
    assert doc is not None
    lines = [line.strip() for line in doc.splitlines()]
    assert COMMAND in lines
    assert "export DCR_REDIS_URL=redis://localhost:6379/0" in lines
    assert "export DCR_ISSUER=http://127.0.0.1:8000" in lines


# --- the MCP SDK's client ---


@dataclass
class MemoryTokenStorage:
    """The SDK's ``TokenStorage`` protocol, in memory."""

    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class Browser:
    """Stands in for the user's browser: follows the authorization URL with httpx (the example
    approves at once) and hands the redirect's parameters to the SDK."""

    redirects: list[str] = field(default_factory=list)

    async def redirect_handler(self, authorization_url: str) -> None:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            answer = await http.get(authorization_url)
        assert answer.status_code == 302, answer.text
        self.redirects.append(answer.headers["location"])

    async def callback_handler(self) -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(self.redirects[-1]).query)
        return AuthorizationCodeResult(
            code=query["code"][0], state=query["state"][0], iss=query.get("iss", [None])[0]
        )


@dataclass
class SDKRun:
    """What one run of the SDK's client saw."""

    storage: MemoryTokenStorage
    browser: Browser
    requests: list[tuple[str, str, int]]  # method, path, status of each request the SDK sent
    tools: list[str]
    answer: str


def sdk_flow(example: Example, method: str) -> SDKRun:
    """Connect the SDK's client with OAuth to the example's MCP endpoint and call ``whoami``."""
    storage, browser = MemoryTokenStorage(), Browser()
    seen: list[tuple[str, str, int]] = []

    async def record(response: httpx2.Response) -> None:
        seen.append((response.request.method, response.request.url.path, response.status_code))

    async def flow() -> SDKRun:
        auth = OAuthClientProvider(
            server_url=example.mcp_url,
            client_metadata=OAuthClientMetadata(
                client_name="MCP SDK interop test",
                redirect_uris=[AnyUrl(REDIRECT_URI)],
                token_endpoint_auth_method=method,  # type: ignore[arg-type]
            ),
            storage=storage,
            redirect_handler=browser.redirect_handler,
            callback_handler=browser.callback_handler,
        )
        async with (
            httpx2.AsyncClient(
                auth=auth, timeout=HTTP_TIMEOUT, event_hooks={"response": [record]}
            ) as http,
            Client(streamable_http_client(example.mcp_url, http_client=http)) as client,
        ):
            tools = await client.list_tools()
            result = await client.call_tool("whoami", {})
        assert not result.is_error, result
        text = result.content[0]
        assert text.type == "text"
        return SDKRun(storage, browser, seen, [t.name for t in tools.tools], text.text)

    return run(flow)


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


def call_whoami(mcp_url: str, access_token: str) -> str:
    """Call the ``whoami`` tool with a bearer token obtained elsewhere."""

    async def flow() -> str:
        headers = {"Authorization": f"Bearer {access_token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT) as http,
            Client(streamable_http_client(mcp_url, http_client=http)) as client,
        ):
            result = await client.call_tool("whoami", {})
        text = result.content[0]
        assert text.type == "text"
        return text.text

    return run(flow)


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
