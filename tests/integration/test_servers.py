"""Real servers, started as the README says: ``DCR_APP=... uvicorn|gunicorn dcr_middleware...``.

Each server is a subprocess on a free loopback port, wrapping a tiny app from ``apps/``, storing
clients in the session's real ``redis-server``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable

import httpx
import pytest
import redis
from support import (
    APP_BODY,
    CONFIDENTIAL,
    KINDS,
    Server,
    assert_complete,
    free_port,
    post_many,
    processes,
    register,
    server_command,
    server_env,
    stored_records,
)

from dcr_middleware import ClientStore, Settings

pytestmark = [pytest.mark.server, pytest.mark.redis]

ALL_KINDS = list(KINDS)
CONCURRENT_REQUESTS = 500
IN_FLIGHT = 50
LOAD_DEADLINE = 120.0


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_server_registers_client_readable_by_client_store(
    kind: str, shared_server: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    server = shared_server(kind, redis_url)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = register(client)
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        # The wrapped app still answers everything else, GET of the registration path too.
        home = client.get("/")
        assert home.status_code == 200
        assert home.content == APP_BODY
        assert client.get("/register").content == APP_BODY
        other = client.post("/other", content=b"not json", headers={"Content-Type": "text/plain"})
        assert (other.status_code, other.content) == (200, APP_BODY)
    store = ClientStore(Settings(redis_url=redis_url))
    try:
        stored = store.get(body["client_id"])
        assert stored is not None
        assert stored.redirect_uris == CONFIDENTIAL["redirect_uris"]
        assert store.authenticate(body["client_id"], body["client_secret"]) == stored
    finally:
        store.close()
    (key,) = stored_records(redis_db)
    assert key == f"dcr:client:{{{body['client_id']}}}"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_server_concurrent_registrations_give_distinct_readable_clients(
    kind: str,
    serve: Callable[..., Server],
    redis_url: str,
    redis_db: redis.Redis,
    record_figure: Callable[[str, object], None],
) -> None:
    server = serve(kind, redis_url, log_level="warning")
    payload = json.dumps(CONFIDENTIAL).encode()
    started = time.perf_counter()
    responses = asyncio.run(
        post_many(server.port, "/register", payload, CONCURRENT_REQUESTS, IN_FLIGHT, LOAD_DEADLINE)
    )
    elapsed = time.perf_counter() - started
    rate = CONCURRENT_REQUESTS / elapsed
    print(
        f"\n[figures] {kind}: {CONCURRENT_REQUESTS} registrations, {IN_FLIGHT} in flight, "
        f"{elapsed:.2f} s, {rate:.0f} req/s"
    )
    record_figure(f"{kind}_registrations", CONCURRENT_REQUESTS)
    record_figure(f"{kind}_elapsed_s", round(elapsed, 3))
    record_figure(f"{kind}_req_per_s", round(rate, 1))

    statuses = [r.status for r in responses]
    assert statuses == [201] * CONCURRENT_REQUESTS, {s: statuses.count(s) for s in set(statuses)}
    assert all(r.headers["content-type"] == "application/json" for r in responses)
    bodies = [json.loads(r.body) for r in responses]
    ids = {b["client_id"] for b in bodies}
    assert len(ids) == CONCURRENT_REQUESTS
    assert len({b["client_secret"] for b in bodies}) == CONCURRENT_REQUESTS

    store = ClientStore(Settings(redis_url=redis_url))
    try:
        for body in bodies:
            client = store.get(body["client_id"])
            assert client is not None, body["client_id"]
            assert client.check_secret(body["client_secret"])
    finally:
        store.close()
    records = stored_records(redis_db)
    assert len(records) == CONCURRENT_REQUESTS
    assert {assert_complete(k, v).client_id for k, v in records.items()} == ids
    assert "Traceback" not in server.output()


BAD_CONFIGS = [
    pytest.param({"DCR_MAX_BODY_BYTES": "abc"}, ["DCR_MAX_BODY_BYTES"], id="bad-int"),
    pytest.param(
        {"DCR_MAX_BODY_BYTES": "abc", "DCR_REDIS_TIMEOUT": "-1", "DCR_PATH": "register"},
        ["DCR_MAX_BODY_BYTES", "DCR_REDIS_TIMEOUT", "DCR_PATH"],
        id="several-bad",
    ),
    pytest.param({"DCR_APP": None}, ["DCR_APP"], id="app-unset"),
    pytest.param({"DCR_APP": "no_such_module_xyz:app"}, ["DCR_APP"], id="app-missing"),
    pytest.param({"DCR_REDIS_URL": "http://127.0.0.1:1"}, ["DCR_REDIS_URL"], id="bad-redis-url"),
]


@pytest.mark.parametrize(("env", "names"), BAD_CONFIGS)
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_server_bad_configuration_exits_nonzero_naming_variable(
    kind: str,
    env: dict[str, str | None],
    names: list[str],
    redis_url: str,
) -> None:
    environ = server_env(kind, redis_url)
    for name, value in env.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    try:
        finished = processes.run(
            server_command(kind, free_port()), marker="server", env=environ, timeout=60
        )
    except subprocess.TimeoutExpired as exc:  # the server started despite the bad setting
        pytest.fail(f"{kind} kept running with {env}: {exc.stderr!r}")
    stderr = finished.stderr.decode(errors="replace")
    assert finished.returncode != 0
    assert "invalid dcr-middleware configuration" in stderr, stderr[-3000:]
    for name in names:
        assert name in stderr, stderr[-3000:]


@pytest.mark.parametrize("kind", ["gunicorn", "gunicorn-uvicorn"])
def test_server_gunicorn_preload_workers_share_no_connection(
    kind: str, serve: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    """``--preload`` builds the app before the fork: each worker must open its own Redis
    connections (a socket shared across processes would mix up replies under load)."""
    server = serve(kind, redis_url, args=["--preload"], log_level="warning")
    count = 200
    responses = asyncio.run(
        post_many(server.port, "/register", json.dumps(CONFIDENTIAL).encode(), count, 20, 60)
    )
    assert [r.status for r in responses] == [201] * count
    bodies = [json.loads(r.body) for r in responses]
    assert len({b["client_id"] for b in bodies}) == count
    records = stored_records(redis_db)
    store = ClientStore(Settings(redis_url=redis_url))
    try:
        for body in bodies:
            key = f"dcr:client:{{{body['client_id']}}}"
            stored = assert_complete(key, records[key])
            assert stored.check_secret(body["client_secret"])
            assert store.get(body["client_id"]) == stored
    finally:
        store.close()
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_server_embedded_store_registers_and_warns(kind: str, serve: Callable[..., Server]) -> None:
    """Without ``DCR_REDIS_URL`` a single-process server keeps clients in memory and says so
    at startup."""
    server = serve(kind, None, args=["-w", "1"] if kind.startswith("gunicorn") else [])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = register(client)
        assert response.status_code == 201, response.text
        assert client.get("/").content == APP_BODY
    assert "DCR_REDIS_URL is not set" in server.output()
