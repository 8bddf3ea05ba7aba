"""Registration through both middlewares on Redis Cluster and on Sentinel: in process (httpx
transports), through real uvicorn / gunicorn servers, and with a cluster node killed (``503``)."""

from __future__ import annotations

import gc
import json
import signal
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import httpx
import pytest
from support import (
    CONFIDENTIAL,
    JSON,
    SENTINEL_MASTER,
    Cluster,
    SentinelGroup,
    Server,
)
from support.stores import store_settings

from dcr_middleware import ClientStore, DCRMiddleware, DCRWSGIMiddleware, Settings

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

BODY = json.dumps(CONFIDENTIAL)


async def inner_asgi(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def inner_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [b"app"]


async def exchange(side: str, settings: Settings, requests: list[tuple[str, str, Any]]) -> Any:
    """Send ``requests`` (method, path, headers) with the registration body through one
    middleware built from ``settings``; return the responses."""
    responses = []
    if side == "asgi":
        app = DCRMiddleware(inner_asgi, settings=settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for method, path, headers in requests:
                content = BODY if method == "POST" else None
                responses.append(await http.request(method, path, content=content, headers=headers))
        await app.store.close()
    else:
        wsgi = DCRWSGIMiddleware(inner_wsgi, settings=settings)
        with httpx.Client(
            transport=httpx.WSGITransport(app=wsgi), base_url="http://testserver"
        ) as http:
            for method, path, headers in requests:
                content = BODY if method == "POST" else None
                responses.append(http.request(method, path, content=content, headers=headers))
        wsgi.store.close()
    return responses


@pytest.mark.parametrize("side", ["asgi", "wsgi"])
@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
async def test_middleware_registers_readable_clients_with_abuse_controls_on(
    request: pytest.FixtureRequest, key_prefix: str, topology: str, side: str
) -> None:
    """Rate limit, client cap and RFC 7592 reads, all on the cluster / Sentinel master."""
    settings = store_settings(
        topology, request, key_prefix=key_prefix, rate_limit="5/hour", max_clients=100
    )
    responses = await exchange(side, settings, [("POST", "/register", JSON)] * 6)
    assert [r.status_code for r in responses] == [201] * 5 + [429]
    assert "retry-after" in responses[-1].headers
    bodies = [r.json() for r in responses[:5]]
    reads = await exchange(
        side,
        settings,
        [
            ("GET", f"/register/{b['client_id']}", {"Authorization": f"Bearer {b[key]}"})
            for b in bodies
            for key in ("registration_access_token",)
        ],
    )
    assert [r.status_code for r in reads] == [200] * 5
    assert [r.json()["client_id"] for r in reads] == [b["client_id"] for b in bodies]
    store = ClientStore(settings)
    try:
        for body in bodies:
            client = store.authenticate(body["client_id"], body["client_secret"])
            assert client is not None and client.redirect_uris == CONFIDENTIAL["redirect_uris"]
    finally:
        store.close()


@pytest.mark.slow
# redis.asyncio's cluster client leaves the connections of the nodes it drops from its slot map
# (after the crash) to the garbage collector, which warns; they are collected in the test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("side", ["asgi", "wsgi"])
async def test_middleware_killed_cluster_node_gives_503_never_500(
    own_cluster: Cluster, key_prefix: str, side: str
) -> None:
    settings = Settings(
        redis_url=own_cluster.url, redis_cluster=True, key_prefix=key_prefix, max_clients=100
    )
    # Not the seed node: a client's first command reads the slot map from it.
    own_cluster.nodes[-1].stop(signal.SIGKILL)
    responses = await exchange(side, settings, [("POST", "/register", JSON)] * 8)
    gc.collect()
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 503}, statuses
    assert 503 in statuses
    for response in responses:
        if response.status_code == 503:
            assert response.json()["error"]
            assert "retry-after" in response.headers


@pytest.mark.server
@pytest.mark.parametrize(
    ("topology", "kind"),
    # The blocking Sentinel client has its in-process WSGI test above.
    [("cluster", "uvicorn"), ("cluster", "gunicorn"), ("sentinel", "uvicorn")],
)
def test_server_registers_on_topology(
    request: pytest.FixtureRequest,
    serve: Callable[..., Server],
    key_prefix: str,
    topology: str,
    kind: str,
) -> None:
    """``DCR_REDIS_CLUSTER`` / ``DCR_REDIS_SENTINELS`` in the environment of a real server."""
    env = {"DCR_KEY_PREFIX": key_prefix, "DCR_RATE_LIMIT": "100/hour", "DCR_MAX_CLIENTS": "50"}
    if topology == "cluster":
        cluster: Cluster = request.getfixturevalue("redis_cluster")
        env.update(DCR_REDIS_URL=cluster.url, DCR_REDIS_CLUSTER="true")
    else:
        group: SentinelGroup = request.getfixturevalue("sentinel_group")
        env.update(DCR_REDIS_SENTINELS=group.addresses, DCR_REDIS_SENTINEL_MASTER=SENTINEL_MASTER)
    server = serve(kind, None, env=env, log_level="warning")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        bodies = []
        for _ in range(10):
            response = http.post("/register", content=BODY, headers=JSON)
            assert response.status_code == 201, response.text
            bodies.append(response.json())
    store = ClientStore(store_settings(topology, request, key_prefix=key_prefix))
    try:
        for body in bodies:
            assert store.authenticate(body["client_id"], body["client_secret"]) is not None
    finally:
        store.close()
    assert "Traceback" not in server.output()


@pytest.mark.slow
@pytest.mark.parametrize("side", ["asgi", "wsgi"])
async def test_sentinel_registration_waits_for_a_replica(
    own_sentinel_group: SentinelGroup, key_prefix: str, side: str
) -> None:
    """``DCR_REDIS_WAIT_REPLICAS=1`` (the default): ``201`` only once the replica acknowledged
    the write; with the replica gone, ``503`` (the client on the master is complete); with
    ``0``, ``201`` from the master alone."""
    group = own_sentinel_group
    assert group.master is not None  # settled by the fixture: the replica acknowledges writes
    base = {
        "redis_sentinels": tuple(group.addresses.split(",")),
        "redis_sentinel_master": SENTINEL_MASTER,
        "key_prefix": key_prefix,
        "redis_timeout": 0.5,
        "rate_limit": "off",
    }
    waiting, not_waiting = Settings(**base), Settings(**base, redis_wait_replicas=0)
    assert waiting.redis_wait_replicas == 1
    (first,) = await exchange(side, waiting, [("POST", "/register", JSON)])
    assert first.status_code == 201, first.text
    assert group.replica is not None and group.master is not None
    replica = group.replica.client()
    try:
        assert replica.exists(f"{key_prefix}:client:{{{first.json()['client_id']}}}") == 1
    finally:
        replica.close()

    group.replica.stop(signal.SIGKILL)
    (refused,) = await exchange(side, waiting, [("POST", "/register", JSON)])
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "temporarily_unavailable"
    (alone,) = await exchange(side, not_waiting, [("POST", "/register", JSON)])
    assert alone.status_code == 201, alone.text
    master = group.master.client()
    try:
        # The refused registration ran on the master: absent from the replica, complete here.
        stored = [json.loads(v) for v in master.mget(master.keys(f"{key_prefix}:client:*"))]
        assert len(stored) == 3
        assert all(record["client_id"] and record["metadata"] for record in stored)
    finally:
        master.close()
