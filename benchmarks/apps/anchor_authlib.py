"""Anchor: Authlib's ``ClientRegistrationEndpoint`` (RFC 7591) under Flask, storing to Redis.

Open registration (every request authenticated), the metadata validated by Authlib's
``ClientMetadataClaims`` against the server metadata below, each client stored with one
``SET NX`` through the blocking redis-py client (``BENCH_REDIS_URL``). Served by gunicorn sync
workers, the way a Flask app usually is.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from flask import Flask

REDIS = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
METADATA = {
    "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
    "response_types_supported": ["code"],
    "token_endpoint_auth_methods_supported": [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ],
}


class RedisRegistrationEndpoint(ClientRegistrationEndpoint):  # type: ignore[misc]
    """Open registration into Redis."""

    def authenticate_token(self, request: Any) -> bool:
        return True

    def resolve_public_key(self, request: Any) -> None:
        return None

    def get_server_metadata(self) -> dict[str, Any]:
        return METADATA

    def save_client(
        self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any
    ) -> dict[str, Any]:
        record = {**client_info, **client_metadata}
        if not REDIS.set(
            f"authlib:client:{{{client_info['client_id']}}}", json.dumps(record), nx=True
        ):
            raise RuntimeError("client id collision")
        return record


app = Flask(__name__)
server = AuthorizationServer(app, query_client=lambda client_id: None, save_token=lambda *a: None)
server.register_endpoint(RedisRegistrationEndpoint)


@app.post("/register")
def register() -> Any:
    """The registration endpoint."""
    return server.create_endpoint_response("client_registration")
