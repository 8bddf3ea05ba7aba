"""Anchor: the MCP Python SDK's own registration endpoint (``mcp.server.auth``).

``create_auth_routes`` mounts the SDK's ``RegistrationHandler`` at ``/register`` exactly as an MCP
server does (with its CORS and body-limit wrappers). Two providers: ``app_memory`` keeps clients in
a dict (the SDK examples' choice); ``app_redis`` stores each client with one ``SET NX`` through
``redis.asyncio`` (``BENCH_REDIS_URL``), as a production MCP server would.
"""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio
from mcp.server.auth.routes import create_auth_routes
from mcp.server.auth.settings import ClientRegistrationOptions
from mcp.shared.auth import OAuthClientInformationFull
from pydantic import AnyHttpUrl
from starlette.applications import Starlette

ISSUER = AnyHttpUrl("http://127.0.0.1")
OPTIONS = ClientRegistrationOptions(enabled=True)


class MemoryProvider:
    """The registration half of ``OAuthAuthorizationServerProvider``, in a dict."""

    def __init__(self) -> None:
        self.clients: dict[str, OAuthClientInformationFull] = {}

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None
        self.clients[client_info.client_id] = client_info


class RedisProvider:
    """The registration half of ``OAuthAuthorizationServerProvider``, in Redis (one SET NX)."""

    def __init__(self, url: str) -> None:
        self.redis: redis.asyncio.Redis = redis.asyncio.Redis.from_url(url)

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        raw = await self.redis.get(f"mcp:client:{{{client_id}}}")
        return None if raw is None else OAuthClientInformationFull.model_validate_json(raw)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        key = f"mcp:client:{{{client_info.client_id}}}"
        if not await self.redis.set(key, client_info.model_dump_json(), nx=True):
            raise RuntimeError("client id collision")


def _app(provider: Any) -> Starlette:
    return Starlette(
        routes=create_auth_routes(provider, ISSUER, client_registration_options=OPTIONS)
    )


app_memory = _app(MemoryProvider())
REDIS_PROVIDER = RedisProvider(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app_redis = _app(REDIS_PROVIDER)
