"""RFC 7592 client management on real servers and a real Redis.

* The store contract of ``load``/``replace`` (compare-and-set in one Lua script) over the embedded
  store and Redis, through the sync and the async client store.
* Real uvicorn/gunicorn servers: an update made through ``PUT`` is what the authorization
  server's ``ClientStore`` sees at once; a deleted client no longer authenticates; a delete gives
  back a ``DCR_MAX_CLIENTS`` place.
* Concurrent ``PUT``s under ``gunicorn -w 4``: every answer is ``200`` or ``409`` and no ``200``
  is silently overwritten. Redis' own log of what it executed (``MONITOR``) is replayed with
  compare-and-set semantics, so "one ``200`` = one write, each based on the record before it" is
  checked from Redis' side, not the server's. Figures are printed and kept with
  ``record_figure``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from support import (
    HOST,
    JSON,
    PUBLIC,
    RawResponse,
    Server,
    every_value,
    gunicorn_ready_hook,
    register,
    send_concurrently,
    stored_records,
    wait_workers_ready,
)

from dcr_middleware import AsyncClientStore, ClientStore, RegisteredClient, Settings
from dcr_middleware.core.errors import ClientCapError, ConflictError
from dcr_middleware.core.registration import prepare_registration
from dcr_middleware.storage.base import client_key, counter_key
from dcr_middleware.storage.redis_ops import REPLACE_SCRIPT

WEB = "https://app.example.com/cb"
OTHER = "https://app.example.com/other"
CONCURRENT_PUTS = 20
BURST_DEADLINE = 60.0
SERVER_KINDS = ["uvicorn", "gunicorn"]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- the store contract of load/replace ---------------------------------------------------------


class SyncFacade:
    """A blocking store behind the async method names (called on the test's thread)."""

    def __init__(self, store: ClientStore) -> None:
        self.store = store
        self.backend = store.backend

    async def create(self, client: RegisteredClient) -> None:
        self.store.create(client)

    async def get(self, client_id: str) -> RegisteredClient | None:
        return self.store.get(client_id)

    async def load(self, client_id: str) -> tuple[RegisteredClient, str] | None:
        return self.store.load(client_id)

    async def replace(self, client_id: str, record: str, new: RegisteredClient | None) -> None:
        self.store.replace(client_id, record, new)

    async def authenticate(self, client_id: str, secret: str) -> RegisteredClient | None:
        return self.store.authenticate(client_id, secret)

    async def close(self) -> None:
        self.store.close()


Store = SyncFacade | AsyncClientStore

STORES = [
    pytest.param("memory-sync", id="memory-sync"),
    pytest.param("memory-async", id="memory-async"),
    pytest.param("redis-sync", id="redis-sync", marks=pytest.mark.redis),
    pytest.param("redis-async", id="redis-async", marks=pytest.mark.redis),
]


def _open(kind: str, request: pytest.FixtureRequest, prefix: str, **extra: Any) -> Store:
    if kind.startswith("redis"):
        extra["redis_url"] = request.getfixturevalue("redis_url")
    settings = Settings(key_prefix=prefix, **extra)
    return (
        SyncFacade(ClientStore(settings)) if kind.endswith("-sync") else AsyncClientStore(settings)
    )


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Store]:
    opened = _open(request.param, request, key_prefix)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=STORES)
async def capped_store(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Store]:
    opened = _open(request.param, request, key_prefix, max_clients=2)
    try:
        yield opened
    finally:
        await opened.close()


def new_client(**fields: Any) -> tuple[RegisteredClient, str]:
    """A client as the middleware builds it, and its client secret."""
    new = prepare_registration(
        json.dumps({"redirect_uris": [WEB], **fields}).encode(),
        Settings(),
        now=int(time.time()),
        token=secrets.token_urlsafe,
    )
    return new.client, new.response["client_secret"]


def renamed(client: RegisteredClient, name: str) -> RegisteredClient:
    return dataclasses.replace(client, metadata={**client.metadata, "client_name": name})


@pytest.mark.anyio
async def test_store_load_returns_client_and_its_record(store: Store) -> None:
    client, _ = await _created(store)
    loaded = await store.load(client.client_id)
    assert loaded is not None
    assert loaded[0] == client
    assert loaded[1] == client.to_record()
    assert await store.load(secrets.token_urlsafe(16)) is None
    assert await store.load("not a client id") is None
    assert await store.load("x" * 129) is None


@pytest.mark.anyio
async def test_store_replace_with_current_record_is_seen_at_once(store: Store) -> None:
    client, secret = await _created(store)
    loaded = await store.load(client.client_id)
    assert loaded is not None
    new = renamed(client, "replaced")
    await store.replace(client.client_id, loaded[1], new)
    assert await store.get(client.client_id) == new
    assert await store.authenticate(client.client_id, secret) == new


@pytest.mark.anyio
async def test_store_replace_with_stale_record_conflicts(store: Store) -> None:
    client, _ = await _created(store)
    loaded = await store.load(client.client_id)
    assert loaded is not None
    first = renamed(client, "first")
    await store.replace(client.client_id, loaded[1], first)
    with pytest.raises(ConflictError) as info:
        await store.replace(client.client_id, loaded[1], renamed(client, "second"))
    assert info.value.status == 409
    with pytest.raises(ConflictError):
        await store.replace(client.client_id, loaded[1], None)  # a stale delete neither
    assert await store.get(client.client_id) == first


@pytest.mark.anyio
async def test_store_replace_none_deletes(store: Store) -> None:
    client, secret = await _created(store)
    other, other_secret = await _created(store)
    loaded = await store.load(client.client_id)
    assert loaded is not None
    await store.replace(client.client_id, loaded[1], None)
    assert await store.get(client.client_id) is None
    assert await store.authenticate(client.client_id, secret) is None
    assert await store.authenticate(other.client_id, other_secret) == other
    # Gone means gone: neither a replace nor a second delete brings it back or succeeds.
    with pytest.raises(ConflictError):
        await store.replace(client.client_id, loaded[1], client)
    with pytest.raises(ConflictError):
        await store.replace(client.client_id, loaded[1], None)
    assert await store.get(client.client_id) is None


@pytest.mark.anyio
async def test_store_delete_gives_back_a_place_under_the_cap(capped_store: Store) -> None:
    store = capped_store
    first, _ = await _created(store)
    await _created(store)
    with pytest.raises(ClientCapError):
        await store.create(new_client()[0])
    loaded = await store.load(first.client_id)
    assert loaded is not None
    stale = loaded[1]
    await store.replace(first.client_id, stale, None)
    third, _ = await _created(store)
    with pytest.raises(ClientCapError):
        await store.create(new_client()[0])
    # A delete that conflicts gives nothing back.
    with pytest.raises(ConflictError):
        await store.replace(first.client_id, stale, None)
    with pytest.raises(ClientCapError):
        await store.create(new_client()[0])
    # Stored under the cap, it is marked as holding a place.
    assert await store.get(third.client_id) == dataclasses.replace(third, counted=True)


@pytest.mark.anyio
async def test_store_delete_of_uncounted_client_keeps_the_cap(
    request: pytest.FixtureRequest, key_prefix: str, store_kind: str
) -> None:
    # Clients registered before DCR_MAX_CLIENTS was set were never counted: deleting them must
    # not push the count below zero (which would admit more clients than the cap).
    uncapped = _open(store_kind, request, key_prefix)
    capped = _open(store_kind, request, key_prefix, max_clients=1)
    try:
        old, _ = await _created(uncapped)
        loaded = await capped.load(old.client_id)
        assert loaded is not None
        await capped.replace(old.client_id, loaded[1], None)
        await _created(capped)
        with pytest.raises(ClientCapError):
            await capped.create(new_client()[0])
    finally:
        await uncapped.close()
        await capped.close()


@pytest.mark.anyio
async def test_store_delete_of_uncounted_client_gives_no_place_back(
    request: pytest.FixtureRequest, key_prefix: str, store_kind: str
) -> None:
    # Only clients that took a place (stored while the cap was set) give one back: deleting an
    # older client while counted ones exist must not lower the count.
    uncapped = _open(store_kind, request, key_prefix)
    capped = _open(store_kind, request, key_prefix, max_clients=2)
    try:
        old, _ = await _created(uncapped)
        await _created(capped)
        loaded = await capped.load(old.client_id)
        assert loaded is not None
        await capped.replace(old.client_id, loaded[1], None)
        await _created(capped)
        with pytest.raises(ClientCapError):
            await capped.create(new_client()[0])
    finally:
        await uncapped.close()
        await capped.close()


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


async def _created(store: Store) -> tuple[RegisteredClient, str]:
    client, secret = new_client()
    await store.create(client)
    return client, secret


# --- real servers: the authorization server sees updates and deletes at once ----------------


def _json(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body


def _register(client: httpx.Client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = register(client, {"redirect_uris": [WEB]} if body is None else body)
    assert response.status_code == 201, response.text
    return _json(response)


def _put(client: httpx.Client, client_id: str, token: str, body: dict[str, Any]) -> httpx.Response:
    return client.put(
        f"/register/{client_id}",
        content=json.dumps({"client_id": client_id, **body}),
        headers={**JSON, "Authorization": f"Bearer {token}"},
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_server_put_is_seen_by_client_store_at_once(
    kind: str, serve: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    server = serve(kind, redis_url)
    store = ClientStore(Settings(redis_url=redis_url))
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            created = _register(client, {"redirect_uris": [WEB], "client_name": "Before"})
            client_id, token = created["client_id"], created["registration_access_token"]
            assert created["registration_client_uri"] == f"{server.url}/register/{client_id}"
            before = store.get(client_id)
            assert before is not None
            assert before.check_redirect_uri(WEB)
            response = _put(
                client,
                client_id,
                token,
                {"redirect_uris": [OTHER], "client_name": "After", "scope": "read"},
            )
            assert response.status_code == 200, response.text
            updated = _json(response)
            after = store.get(client_id)
            assert after is not None
            assert after.metadata["client_name"] == "After"
            assert after.check_redirect_uri(OTHER)
            assert not after.check_redirect_uri(WEB)
            assert after.scope == "read"
            assert after.registration_token_hash == sha(updated["registration_access_token"])
            assert store.authenticate(client_id, created["client_secret"]) == after
            # The server reads the same record back, through the URI it gave.
            read = client.get(
                updated["registration_client_uri"],
                headers=_auth(updated["registration_access_token"]),
            )
            assert read.status_code == 200, read.text
            assert read.json() == {k: v for k, v in updated.items() if k != "client_secret"}
            stale = client.get(f"/register/{client_id}", headers=_auth(token))
            assert stale.status_code == 401
            assert stale.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        # No registration access token is at rest, nor in the server's output.
        dump = json.dumps(every_value(redis_db))
        for value in (token, updated["registration_access_token"], created["client_secret"]):
            assert value not in dump
        server.stop()
        output = server.output()
        assert token not in output
        assert updated["registration_access_token"] not in output
        assert "Traceback" not in output
    finally:
        store.close()


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", SERVER_KINDS)
@pytest.mark.anyio
async def test_server_delete_client_no_longer_authenticates(
    kind: str, shared_server: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    server = shared_server(kind, redis_url)
    settings = Settings(redis_url=redis_url)
    store, async_store = ClientStore(settings), AsyncClientStore(settings)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            created = (
                await client.post(
                    "/register", content=json.dumps({"redirect_uris": [WEB]}), headers=JSON
                )
            ).json()
            client_id, token = created["client_id"], created["registration_access_token"]
            secret = created["client_secret"]
            assert store.authenticate(client_id, secret) is not None
            assert await async_store.authenticate(client_id, secret) is not None
            deleted = await client.delete(f"/register/{client_id}", headers=_auth(token))
            assert deleted.status_code == 204, deleted.text
            assert deleted.content == b""
            assert store.authenticate(client_id, secret) is None
            assert await async_store.authenticate(client_id, secret) is None
            assert store.get(client_id) is None
            assert stored_records(redis_db) == {}
            for method in ("GET", "PUT", "DELETE"):
                again = await client.request(
                    method,
                    f"/register/{client_id}",
                    content=json.dumps({"client_id": client_id, "redirect_uris": [WEB]}),
                    headers={**JSON, **_auth(token)},
                )
                assert again.status_code == 401, (method, again.text)
                assert again.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    finally:
        store.close()
        await async_store.close()


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_server_delete_frees_a_max_clients_place(
    kind: str, serve: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    server = serve(kind, redis_url, env={"DCR_MAX_CLIENTS": "2"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        first = _register(client)
        _register(client)
        refused = register(client, {"redirect_uris": [WEB]})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "access_denied"
        deleted = client.delete(
            f"/register/{first['client_id']}", headers=_auth(first["registration_access_token"])
        )
        assert deleted.status_code == 204, deleted.text
        assert redis_db.get(counter_key("dcr")) == "1"
        third = register(client, {"redirect_uris": [WEB]})
        assert third.status_code == 201, third.text
        again = register(client, {"redirect_uris": [WEB]})
        assert again.status_code == 403, again.text
    assert redis_db.get(counter_key("dcr")) == "2"
    assert len(stored_records(redis_db)) == 2


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_server_registration_client_uri_uses_issuer(
    kind: str, serve: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    server = serve(kind, redis_url, env={"DCR_ISSUER": "https://auth.example.com"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        created = _register(client)
        client_id = created["client_id"]
        expected = f"https://auth.example.com/register/{client_id}"
        assert created["registration_client_uri"] == expected
        read = client.get(
            f"/register/{client_id}", headers=_auth(created["registration_access_token"])
        )
        assert read.json()["registration_client_uri"] == expected


# --- concurrent updates under gunicorn -w 4 ----------------------------------------------------


def raw_request(method: str, path: str, body: bytes, token: str) -> bytes:
    """One HTTP/1.1 request with a JSON body and a Bearer token, as bytes on the wire."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


@pytest.fixture
def gunicorn4(serve: Callable[..., Server], tmp_path: Path) -> Callable[..., Server]:
    """A gunicorn server with 4 workers, returned once every worker has loaded the app."""

    def _start(kind: str, redis_url: str, env: dict[str, str]) -> Server:
        args = ["-w", "4", *gunicorn_ready_hook(tmp_path)]
        server = serve(kind, redis_url, env=env, args=args, log_level="warning")
        wait_workers_ready(server, 4)
        return server

    return _start


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)")
_CONTROL = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}


def _unescape(text: str) -> str:
    """Undo the quoting of MONITOR output (Redis ``sdscatrepr``)."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code.startswith("x") and len(code) == 3:
            return chr(int(code[1:], 16))
        return _CONTROL.get(code, code)

    return _ESCAPE.sub(one, text)


@dataclasses.dataclass
class ScriptCall:
    """One command Redis executed, from MONITOR: who ran it (``lua`` inside a script) and its
    arguments."""

    source: str
    args: list[str]


class RedisLog:
    """Every command Redis executes while it runs, in execution order (MONITOR, on a thread)."""

    STOP = "dcr-it-monitor-stop"

    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=30)
        self.monitor = self.client.monitor()  # type: ignore[no-untyped-call]
        self.monitor.__enter__()  # sends MONITOR and reads its OK
        self.calls: list[ScriptCall] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            line = str(self.monitor.connection.read_response())
            source = line.split("[", 1)[1].split("]", 1)[0].split(" ", 1)[1]
            args = [_unescape(arg) for arg in _QUOTED.findall(line.split("] ", 1)[1])]
            if args[:2] == ["ECHO", self.STOP] or args[:2] == ["echo", self.STOP]:
                return
            self.calls.append(ScriptCall(source, args))

    def stop(self, admin: redis.Redis) -> list[ScriptCall]:
        admin.echo(self.STOP)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "MONITOR did not see the stop marker"
        self.monitor.__exit__()
        self.client.close()
        return self.calls


def replay(calls: list[ScriptCall], key: str, initial: str) -> tuple[list[str], str]:
    """Replay the compare-and-set scripts run on ``key`` in Redis' order: the records that a
    correct compare-and-set writes, and the record it leaves."""
    sha1 = hashlib.sha1(REPLACE_SCRIPT.encode(), usedforsecurity=False).hexdigest()
    current, written = initial, []
    for call in calls:
        name = call.args[0].upper() if call.args else ""
        if name == "EVALSHA" and call.args[1] == sha1 and call.args[3] == key:
            argv = call.args[3 + int(call.args[2]) :]  # after the numkeys keys
            expected, new = argv[0], argv[1]
            if expected == current:
                current = new
                written.append(new)
    return written, current


def lua_sets(calls: list[ScriptCall], key: str) -> list[str]:
    """The records scripts really wrote to ``key``."""
    return [
        c.args[2] for c in calls if c.source == "lua" and c.args[:2] in (["SET", key], ["set", key])
    ]


def _statuses(responses: Sequence[RawResponse]) -> dict[int, int]:
    return dict(Counter(r.status for r in responses))


def _burst(server: Server, requests: Sequence[bytes]) -> tuple[list[RawResponse], float]:
    started = time.perf_counter()
    responses = asyncio.run(send_concurrently(server.port, requests, BURST_DEADLINE))
    return responses, time.perf_counter() - started


def _figures(
    record_figure: Callable[[str, object], None], name: str, elapsed: float, **counts: object
) -> None:
    described = ", ".join(f"{key}={value}" for key, value in counts.items())
    print(f"\n[figures] {name}: {elapsed * 1000:.0f} ms, {described}")
    record_figure(f"management_{name}_elapsed_s", round(elapsed, 3))
    for key, value in counts.items():
        record_figure(f"management_{name}_{key}", value)


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", ["gunicorn", "gunicorn-uvicorn"])
def test_server_concurrent_puts_without_rotation_lose_no_update(
    kind: str,
    gunicorn4: Callable[..., Server],
    redis_url: str,
    redis_db: redis.Redis,
    record_figure: Callable[[str, object], None],
) -> None:
    server = gunicorn4(kind, redis_url, {"DCR_ROTATE_REGISTRATION_ACCESS_TOKEN": "false"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        # A public client: each PUT below moves it to client_secret_basic (the default), so a
        # PUT that wins from the original record issues a secret. Were two such PUTs both
        # written, the first one's secret would be silently gone although it was answered 200.
        created = _register(client, PUBLIC)
    client_id, token = created["client_id"], created["registration_access_token"]
    names = [f"client {n}" for n in range(CONCURRENT_PUTS)]
    requests = [
        raw_request(
            "PUT",
            f"/register/{client_id}",
            json.dumps(
                {"client_id": client_id, "redirect_uris": [WEB], "client_name": name}
            ).encode(),
            token,
        )
        for name in names
    ]
    key = client_key("dcr", client_id)
    initial = redis_db.get(key)
    assert isinstance(initial, str), initial
    redis_db.script_load(REPLACE_SCRIPT)  # no NOSCRIPT round trip in the log
    log = RedisLog(redis_url)
    try:
        responses, elapsed = _burst(server, requests)
    finally:
        calls = log.stop(redis_db)

    counts = _statuses(responses)
    assert set(counts) <= {200, 409}, [(r.status, r.body) for r in responses]
    won = {}
    for name, response in zip(names, responses, strict=True):
        body = json.loads(response.body)
        if response.status == 409:
            assert body["error"] == "invalid_request"
            continue
        assert body["client_name"] == name  # the answer is the full record that was written
        assert body["registration_access_token"] == token
        won[name] = body
    assert won, "no PUT succeeded"
    # From Redis' side: the scripts ran in some order; a correct compare-and-set over that order
    # writes exactly the records the 200s announced, and nothing else reached the key.
    written, last = replay(calls, key, initial)
    assert len(written) == len(won)
    assert sorted(json.loads(r)["metadata"]["client_name"] for r in written) == sorted(won)
    assert lua_sets(calls, key) == written
    assert redis_db.get(key) == last
    store = ClientStore(Settings(redis_url=redis_url))
    try:
        final = store.get(client_id)
        assert final is not None
        assert final.metadata["client_name"] in won
        answered = won[final.metadata["client_name"]]
        assert final.metadata == {
            k: v
            for k, v in answered.items()
            if k
            not in (
                "client_id",
                "client_id_issued_at",
                "client_secret",
                "client_secret_expires_at",
                "registration_client_uri",
                "registration_access_token",
            )
        }
        # Exactly one PUT started from the public client and was issued a secret; every secret
        # any 200 showed still authenticates.
        issued = {body["client_secret"] for body in won.values() if "client_secret" in body}
        assert len(issued) == 1
        for secret in issued:
            assert store.authenticate(client_id, secret) == final
        assert final.registration_token_hash == sha(token)
    finally:
        store.close()
    assert "Traceback" not in server.output()
    _figures(
        record_figure,
        f"concurrent_puts_no_rotation_{kind}",
        elapsed,
        ok=counts.get(200, 0),
        conflict=counts.get(409, 0),
        scripts=len([c for c in calls if c.args[:1] in (["EVALSHA"], ["evalsha"])]),
    )


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("kind", ["gunicorn", "gunicorn-uvicorn"])
def test_server_concurrent_puts_with_rotation_exactly_one_wins(
    kind: str,
    gunicorn4: Callable[..., Server],
    redis_url: str,
    redis_db: redis.Redis,
    record_figure: Callable[[str, object], None],
) -> None:
    server = gunicorn4(kind, redis_url, {})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        created = _register(client)
    client_id, token = created["client_id"], created["registration_access_token"]
    names = [f"client {n}" for n in range(CONCURRENT_PUTS)]
    requests = [
        raw_request(
            "PUT",
            f"/register/{client_id}",
            json.dumps(
                {"client_id": client_id, "redirect_uris": [WEB], "client_name": name}
            ).encode(),
            token,
        )
        for name in names
    ]
    key = client_key("dcr", client_id)
    initial = redis_db.get(key)
    assert isinstance(initial, str), initial
    redis_db.script_load(REPLACE_SCRIPT)
    log = RedisLog(redis_url)
    try:
        responses, elapsed = _burst(server, requests)
    finally:
        calls = log.stop(redis_db)

    counts = _statuses(responses)
    assert counts.get(200) == 1, [(r.status, r.body) for r in responses]
    assert set(counts) <= {200, 401, 409}
    written, last = replay(calls, key, initial)
    assert len(written) == 1
    assert lua_sets(calls, key) == written
    assert redis_db.get(key) == last
    (name, winner), *_ = [
        (n, json.loads(r.body)) for n, r in zip(names, responses, strict=True) if r.status == 200
    ]
    for response in responses:
        if response.status == 401:
            assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    new_token = winner["registration_access_token"]
    assert new_token != token
    with httpx.Client(base_url=server.url, timeout=10) as client:
        read = client.get(f"/register/{client_id}", headers=_auth(new_token))
        assert read.status_code == 200, read.text
        assert read.json()["client_name"] == name
        assert client.get(f"/register/{client_id}", headers=_auth(token)).status_code == 401
    assert "Traceback" not in server.output()
    _figures(
        record_figure,
        f"concurrent_puts_rotation_{kind}",
        elapsed,
        ok=counts.get(200, 0),
        conflict=counts.get(409, 0),
        unauthorized=counts.get(401, 0),
    )
