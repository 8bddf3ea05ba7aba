"""The MCP Python SDK's own client driven without a browser, and ``examples/mcp_server.py``
under real uvicorn, for the interop tests (``test_mcp_interop.py``, ``test_mcp_cimd.py``).

:func:`sdk_flow` runs the SDK's ``OAuthClientProvider`` on ``streamable_http_client``: it
discovers the server, registers (or, given a ``client_metadata_url`` the server supports, uses
that URL as its client id), authorizes with PKCE and calls the ``whoami`` tool. A
:class:`Browser` stands in for the user's: it follows the authorization URL with httpx (the
example approves at once) and hands the redirect's parameters back to the SDK. Every flow is
bounded by :data:`FLOW_TIMEOUT`, every request by :data:`HTTP_TIMEOUT`.

Importing this module imports the SDK: only the modules that need it do.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from dcr_middleware import ClientStore, Settings

from .processes import HOST, free_port
from .servers import Server, launch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mcp_server.py"
COMMAND = "uvicorn --no-proxy-headers --app-dir examples mcp_server:app --port 8000"
FLOW_TIMEOUT = 60.0  # seconds for one whole client flow
HTTP_TIMEOUT = 10.0  # seconds for one request
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the handler reads the redirect

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

    def stop(self) -> None:
        self.server.stop()
        self.store.close()


def example_env(
    redis_url: str, key_prefix: str, port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The subprocess environment: no inherited ``DCR_*``, the example's settings, ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    env.pop("PYTHONPATH", None)
    env.update(
        PYTHONUNBUFFERED="1",
        DCR_REDIS_URL=redis_url,
        DCR_KEY_PREFIX=key_prefix,
        DCR_ISSUER=f"http://{HOST}:{port}",
        # Every test of a module registers from 127.0.0.1; rate limiting has its own tests.
        DCR_RATE_LIMIT="off",
    )
    env.update(extra or {})
    return env


def start_example(
    directory: Path,
    redis_url: str,
    key_prefix: str,
    extra: Mapping[str, str] | None = None,
    store_settings: Mapping[str, Any] | None = None,
) -> Example:
    """``examples/mcp_server.py`` started as its docstring says, from the repository root,
    with ``extra`` in its environment; the test's store has ``store_settings`` besides the
    Redis URL and key prefix. Waits until ``GET /`` answers; the caller stops it."""
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix, **(store_settings or {}))
    store = ClientStore(settings)
    port = free_port()
    argv = [sys.executable, "-m", *COMMAND.split()[:-2], "--host", HOST, "--port", str(port)]
    environ = example_env(redis_url, key_prefix, port, extra)
    try:
        server = launch("mcp-example", argv, port=port, directory=directory, env=environ, cwd=ROOT)
    except BaseException:
        store.close()
        raise
    return Example(server, store)


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


class AuthorizationRefused(Exception):
    """The authorization endpoint answered the browser with something else than a redirect."""

    def __init__(self, answer: httpx.Response) -> None:
        super().__init__(f"{answer.status_code} {answer.text}")
        self.answer = answer


@dataclass
class Browser:
    """Stands in for the user's browser: follows the authorization URL with httpx (the example
    approves at once) and hands the redirect's parameters to the SDK. An answer that is not a
    redirect ends the SDK's flow with :class:`AuthorizationRefused`."""

    redirects: list[str] = field(default_factory=list)
    answers: list[httpx.Response] = field(default_factory=list)

    async def redirect_handler(self, authorization_url: str) -> None:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            answer = await http.get(authorization_url)
        self.answers.append(answer)
        if answer.status_code != 302:
            raise AuthorizationRefused(answer)
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
    tools: list[str] = field(default_factory=list)
    answer: str = ""


def sdk_flow(
    mcp_url: str,
    client_metadata: OAuthClientMetadata,
    *,
    client_metadata_url: str | None = None,
    seen: SDKRun | None = None,
) -> SDKRun:
    """Connect the SDK's client with OAuth to ``mcp_url``, list the tools and call ``whoami``.

    ``client_metadata_url`` is the SDK's URL client id (used when the server advertises
    ``client_id_metadata_document_supported``). Pass ``seen`` to keep what the run saw when it
    fails (its browser's answers, the requests sent so far).
    """
    seen = SDKRun(MemoryTokenStorage(), Browser(), []) if seen is None else seen

    async def record(response: httpx2.Response) -> None:
        seen.requests.append(
            (response.request.method, response.request.url.path, response.status_code)
        )

    async def flow() -> SDKRun:
        auth = OAuthClientProvider(
            server_url=mcp_url,
            client_metadata=client_metadata,
            storage=seen.storage,
            redirect_handler=seen.browser.redirect_handler,
            callback_handler=seen.browser.callback_handler,
            client_metadata_url=client_metadata_url,
        )
        async with (
            httpx2.AsyncClient(
                auth=auth, timeout=HTTP_TIMEOUT, event_hooks={"response": [record]}
            ) as http,
            Client(streamable_http_client(mcp_url, http_client=http)) as client,
        ):
            tools = await client.list_tools()
            result = await client.call_tool("whoami", {})
        assert not result.is_error, result
        text = result.content[0]
        assert text.type == "text"
        seen.tools = [t.name for t in tools.tools]
        seen.answer = text.text
        return seen

    return run(flow)


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


def find(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first ``kind`` in ``error``, its exception groups, causes and contexts."""
    pending, visited = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, kind):
            return current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None
