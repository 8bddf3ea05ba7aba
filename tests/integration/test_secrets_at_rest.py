"""No plaintext client secret at rest: not in any Redis key or value, not in any log line.

Clients are registered through real servers (their whole stdout/stderr captured at DEBUG) and
through both middlewares in process (``caplog`` at DEBUG); then every key of the Redis database
is read (``SCAN`` + ``GET``) and compared with every secret the clients were given.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest
import redis
from support import APP_BODY, HOST, JSON, Server, every_value, free_port, register

from dcr_middleware import DCRMiddleware, DCRWSGIMiddleware, Settings

pytestmark = pytest.mark.redis

ATTACKER_SECRET = "attacker-chosen-secret-Zq8v"  # sent by a client; must never be stored
REQUESTS: list[dict[str, Any]] = [
    *(
        {"redirect_uris": [f"https://app{n}.example.com/cb"], "client_name": f"basic {n}"}
        for n in range(3)
    ),
    *(
        {
            "redirect_uris": [f"https://post{n}.example.com/cb"],
            "token_endpoint_auth_method": "client_secret_post",
        }
        for n in range(2)
    ),
    {"grant_types": ["client_credentials"], "response_types": []},
    {"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
    {
        "redirect_uris": ["https://chosen.example.com/cb"],
        "client_id": "attacker-chosen-id",
        "client_secret": ATTACKER_SECRET,
    },
]


def _secrets(bodies: Iterable[dict[str, Any]]) -> list[str]:
    return [body["client_secret"] for body in bodies if "client_secret" in body]


def assert_no_secret_at_rest(admin: redis.Redis, bodies: list[dict[str, Any]]) -> None:
    """Every issued secret is stored only as its SHA-256; no key or value holds the secret."""
    records = every_value(admin)
    clients = [key for key in records if ":client:{" in key]
    assert len(clients) == len(bodies)
    secrets = _secrets(bodies)
    assert len(secrets) >= 6
    dump = "\n".join(f"{key}\n{value}" for key, value in records.items())
    for secret in [*secrets, ATTACKER_SECRET]:
        assert secret not in dump
    for body in bodies:
        (value,) = (v for k, v in records.items() if k.endswith(f":client:{{{body['client_id']}}}"))
        stored = json.loads(value)
        if "client_secret" in body:
            digest = hashlib.sha256(body["client_secret"].encode()).hexdigest()
            assert stored["client_secret_hash"] == digest
            assert stored.get("client_secret") is None
        else:
            assert stored["client_secret_hash"] is None


def assert_no_secret_in(text: str, bodies: list[dict[str, Any]]) -> None:
    for secret in [*_secrets(bodies), ATTACKER_SECRET]:
        assert secret not in text


@pytest.mark.server
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn", "gunicorn-uvicorn"])
def test_server_stores_and_logs_no_plaintext_secret(
    kind: str, serve: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    server = serve(kind, redis_url, env={"DCR_IT_LOG_DEBUG": "1"}, log_level="debug")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        responses = [register(client, body) for body in REQUESTS]
        refused = client.post(
            "/register", content=json.dumps({"redirect_uris": ["javascript:x"]}), headers=JSON
        )
        assert refused.status_code == 400
    assert [r.status_code for r in responses] == [201] * len(REQUESTS), [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert "attacker-chosen-id" not in {body["client_id"] for body in bodies}
    assert_no_secret_at_rest(redis_db, bodies)

    server.stop()  # every log line is written out before we read them
    output = server.output()
    # The capture really holds the library's log lines at DEBUG...
    assert all(body["client_id"] in output for body in bodies), output[-3000:]
    # ...and not one secret.
    assert_no_secret_in(output, bodies)


def _plain_wsgi(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [APP_BODY]


async def _plain_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": APP_BODY})


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record, formatted, with its raw arguments and exception text."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)


def _capture_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="dcr_middleware")


def test_wsgi_middleware_stores_and_logs_no_plaintext_secret(
    redis_url: str, redis_db: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    _capture_everything(caplog)
    app = DCRWSGIMiddleware(_plain_wsgi, Settings(redis_url=redis_url))
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
            responses = [register(client, body) for body in REQUESTS]
    finally:
        app.store.close()
    assert [r.status_code for r in responses] == [201] * len(REQUESTS)
    bodies = [r.json() for r in responses]
    assert_no_secret_at_rest(redis_db, bodies)
    text = _log_text(caplog)
    assert all(body["client_id"] in text for body in bodies)
    assert_no_secret_in(text, bodies)


@pytest.mark.anyio
async def test_asgi_middleware_stores_and_logs_no_plaintext_secret(
    redis_url: str, redis_db: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    _capture_everything(caplog)
    app = DCRMiddleware(_plain_asgi, Settings(redis_url=redis_url))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = [
                await client.post("/register", content=json.dumps(body), headers=JSON)
                for body in REQUESTS
            ]
    finally:
        await app.store.close()
    assert [r.status_code for r in responses] == [201] * len(REQUESTS)
    bodies = [r.json() for r in responses]
    assert_no_secret_at_rest(redis_db, bodies)
    text = _log_text(caplog)
    assert all(body["client_id"] in text for body in bodies)
    assert_no_secret_in(text, bodies)


def test_wsgi_middleware_redis_down_logs_no_redis_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _capture_everything(caplog)
    password = "redis-pw-Vf3kq9"
    settings = Settings(redis_url=f"redis://:{password}@{HOST}:{free_port()}/0")
    assert password not in repr(settings)
    app = DCRWSGIMiddleware(_plain_wsgi, settings)
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
            response = register(client)
    finally:
        app.store.close()
    assert response.status_code == 503
    assert password not in response.text
    text = _log_text(caplog)
    assert "redis" in text.lower()  # the failure was logged...
    assert password not in text  # ...without the password


@pytest.mark.anyio
async def test_asgi_middleware_redis_down_logs_no_redis_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _capture_everything(caplog)
    password = "redis-pw-Vf3kq9"
    settings = Settings(redis_url=f"redis://:{password}@{HOST}:{free_port()}/0")
    app = DCRMiddleware(_plain_asgi, settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/register", content=json.dumps(REQUESTS[0]), headers=JSON)
    finally:
        await app.store.close()
    assert response.status_code == 503
    assert password not in response.text
    text = _log_text(caplog)
    assert "redis" in text.lower()
    assert password not in text
