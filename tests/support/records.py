"""What a store left in Redis, read back and checked: client records and every other key."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import redis

from dcr_middleware import RegisteredClient, Settings
from dcr_middleware.core.registration import NewClient, prepare_registration

NOW = int(time.time())


def new_client(
    body: dict[str, Any] | None = None, *, now: int = NOW, **settings: Any
) -> tuple[RegisteredClient, str | None]:
    """A client built the way the middleware builds it, and its plaintext secret (if any)."""
    payload = {"redirect_uris": ["https://app.example.com/cb"]} if body is None else body
    new: NewClient = prepare_registration(
        json.dumps(payload).encode(),
        Settings(**settings),
        now=now,
        token=secrets.token_urlsafe,
    )
    return new.client, new.response.get("client_secret")


def stored_records(admin: redis.Redis) -> dict[str, str]:
    """Every client record key of the database and its value (``SCAN`` + ``GET``)."""
    records = {}
    for key in admin.scan_iter(match="*:client:{*}", count=500):
        value = admin.get(key)
        assert value is not None, key
        records[str(key)] = str(value)
    return records


def every_value(admin: redis.Redis) -> dict[str, str]:
    """Every key of the database with its whole value as text, whatever its type."""
    values = {}
    for key in admin.scan_iter(count=500):
        kind = admin.type(key)
        if kind == "string":
            values[str(key)] = str(admin.get(key))
        elif kind == "hash":
            values[str(key)] = json.dumps(admin.hgetall(key), sort_keys=True)
        else:
            raise AssertionError(f"unexpected Redis type {kind} at {key}")
    return values


def assert_complete(key: str, value: str, prefix: str = "dcr") -> RegisteredClient:
    """A stored value is a whole client record, under the key its client id names."""
    data = json.loads(value)
    for name in (
        "v",
        "client_id",
        "client_id_issued_at",
        "client_secret_expires_at",
        "client_secret_hash",
        "metadata",
    ):
        assert name in data, (key, name)
    client = RegisteredClient.from_record(value)
    assert key == f"{prefix}:client:{{{client.client_id}}}"
    assert isinstance(client.metadata, dict)
    assert client.metadata["redirect_uris"]
    assert client.metadata["token_endpoint_auth_method"]
    assert client.metadata["grant_types"]
    return client
