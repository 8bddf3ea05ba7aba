"""Observability against real parts: ``DCR_EVENT_HOOK`` in real uvicorn and gunicorn servers, and
the stored client count read from a real Redis cap counter."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry
from support import CONFIDENTIAL, JSON, RedisServer, Server, register

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    DCRMiddleware,
    DCRWSGIMiddleware,
    Settings,
)
from dcr_middleware.core.events import Event, StorageFailed

KINDS = ["uvicorn", "gunicorn", "gunicorn-uvicorn"]


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", KINDS)
def test_observability_event_hook_runs_in_real_servers(
    kind: str, serve: Callable[..., Server], redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    sink = tmp_path / "events.jsonl"
    env = {
        "DCR_EVENT_HOOK": "dcr_it_hooks:record",
        "DCR_IT_EVENTS": str(sink),
        "DCR_KEY_PREFIX": key_prefix,
        "DCR_IT_LOG_DEBUG": "1",
    }
    server = serve(kind, redis_url, env=env, log_level="debug")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        created = register(client)
        refused = client.post(
            "/register", content=json.dumps({"redirect_uris": ["javascript:x"]}), headers=JSON
        )
    assert (created.status_code, refused.status_code) == (201, 400), created.text
    server.stop()
    events = [json.loads(line) for line in sink.read_text("utf-8").splitlines()]
    assert [e["event"] for e in events] == ["client_registered", "request_refused"]
    assert events[0]["client_id"] == created.json()["client_id"]
    assert events[0]["client_ip"] == "127.0.0.1"
    assert (events[1]["error"], events[1]["status"]) == ("invalid_redirect_uri", 400)
    output = server.output()
    assert f"client registered: client_id={created.json()['client_id']}" in output
    for secret in (created.json()["client_secret"], created.json()["registration_access_token"]):
        assert secret not in output
        assert secret not in sink.read_text("utf-8")


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_observability_failing_hook_in_a_real_server_answers_normally(
    kind: str, serve: Callable[..., Server], redis_url: str, key_prefix: str
) -> None:
    env = {"DCR_EVENT_HOOK": "dcr_it_hooks:explode", "DCR_KEY_PREFIX": key_prefix}
    server = serve(kind, redis_url, env=env)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        created = register(client)
    assert created.status_code == 201, created.text
    assert "must not reach" not in created.text
    server.stop()
    assert "event hook failed: RuntimeError" in server.output()


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_observability_bad_event_hook_fails_at_startup(
    kind: str, serve: Callable[..., Server], redis_url: str
) -> None:
    with pytest.raises(RuntimeError) as info:
        serve(kind, redis_url, env={"DCR_EVENT_HOOK": "dcr_it_hooks:no_such_hook"})
    assert "DCR_EVENT_HOOK: 'dcr_it_hooks' has no 'no_such_hook'" in str(info.value)


def _count(registry: CollectorRegistry, prefix: str) -> float | None:
    return registry.get_sample_value("dcr_clients_stored", {"prefix": prefix})


@pytest.mark.redis
def test_observability_wsgi_client_count_reads_the_redis_cap_counter(
    redis_url: str, key_prefix: str, redis_db: redis.Redis
) -> None:
    settings = Settings(
        redis_url=redis_url, key_prefix=key_prefix, max_clients=10, rate_limit="off"
    )
    registry = CollectorRegistry()
    store = ClientStore(settings)
    app = DCRWSGIMiddleware(_never_wsgi, settings, store=store, metrics_registry=registry)
    assert _count(registry, key_prefix) == 0
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        assert [register(client).status_code for _ in range(3)] == [201] * 3
    # The value is cached for a while after a scrape: a new registry reads the counter afresh.
    fresh = CollectorRegistry()
    DCRWSGIMiddleware(_never_wsgi, settings, store=store, metrics_registry=fresh)
    assert _count(fresh, key_prefix) == 3
    assert redis_db.get(f"{key_prefix}:{{client-count}}") == "3"
    store.close()


@pytest.mark.redis
@pytest.mark.anyio
async def test_observability_asgi_client_count_reads_the_redis_cap_counter(
    redis_url: str, key_prefix: str
) -> None:
    settings = Settings(
        redis_url=redis_url, key_prefix=key_prefix, max_clients=10, rate_limit="off"
    )
    registry = CollectorRegistry()
    store = AsyncClientStore(settings)
    app = DCRMiddleware(_never_asgi, settings, store=store, metrics_registry=registry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(2):
            answer = await client.post("/register", content=json.dumps(CONFIDENTIAL), headers=JSON)
            assert answer.status_code == 201
    assert _count(registry, key_prefix) == 2
    assert registry.get_sample_value("dcr_registrations_total", {"outcome": "created"}) == 2
    await store.close()


@pytest.mark.redis
@pytest.mark.anyio
async def test_observability_redis_down_emits_storage_failed_with_its_cause(
    own_redis: RedisServer, key_prefix: str
) -> None:
    settings = Settings(
        redis_url=own_redis.url, key_prefix=key_prefix, rate_limit="off", redis_timeout=0.5
    )
    registry = CollectorRegistry()
    events: list[Event] = []
    sync_store, async_store = ClientStore(settings), AsyncClientStore(settings)
    wsgi = DCRWSGIMiddleware(
        _never_wsgi, settings, store=sync_store, on_event=events.append, metrics_registry=registry
    )
    asgi = DCRMiddleware(
        _never_asgi, settings, store=async_store, on_event=events.append, metrics_registry=registry
    )
    own_redis.stop()
    body = json.dumps(CONFIDENTIAL)
    with httpx.Client(transport=httpx.WSGITransport(app=wsgi), base_url="http://t") as client:
        assert client.post("/register", content=body, headers=JSON).status_code == 503
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/register", content=body, headers=JSON)).status_code == 503
    assert [type(e) for e in events] == [StorageFailed, StorageFailed]
    causes = {e.cause for e in events if isinstance(e, StorageFailed)}
    assert causes == {"ConnectionError"}, causes
    assert registry.get_sample_value("dcr_storage_errors_total") == 2
    sync_store.close()
    await async_store.close()


def _never_wsgi(environ: Any, start_response: Any) -> list[bytes]:
    raise AssertionError("passed through")


async def _never_asgi(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("passed through")
