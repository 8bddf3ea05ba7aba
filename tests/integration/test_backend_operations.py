"""Every storage operation of ``core.ops.OPERATIONS`` on every backend: the embedded store and
Redis, Redis Cluster and Sentinel, each through the blocking and the asyncio backend.

One case per operation, written once and run through ``backend.run(op)`` on all eight; a table
test checks that no operation is left without its case. Below it: what only the Redis backends
have (the NOSCRIPT reload of the replicated registration, errors logged once).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis
from support import SentinelGroup
from support.stores import store_settings

from dcr_middleware import Settings, StorageError
from dcr_middleware.core.ops import (
    OPERATIONS,
    Attempt,
    ClientCount,
    ClientRecords,
    Create,
    DocumentDelete,
    DocumentGet,
    DocumentList,
    DocumentPut,
    Get,
    Hit,
    Lifetime,
    Lookup,
    Op,
    Outcome,
    Purge,
    Read,
    Register,
    Release,
    Replace,
    Reserve,
    TokenDelete,
    TokenGet,
    TokenList,
    TokenPut,
    TokenUse,
)
from dcr_middleware.core.ratelimit import parse_rate_limits
from dcr_middleware.storage.memory import AsyncMemoryBackend, MemoryBackend
from dcr_middleware.storage.redis import AsyncRedisBackend, RedisBackend

pytestmark = pytest.mark.anyio

KINDS = [
    pytest.param("memory-sync", id="memory-sync"),
    pytest.param("memory-async", id="memory-async"),
    *(
        pytest.param(f"{topology}-{api}", id=f"{topology}-{api}", marks=pytest.mark.redis)
        for topology in ("redis", "cluster", "sentinel")
        for api in ("sync", "async")
    ),
]

Run = Callable[[Op[Any]], Awaitable[Any]]


def _backend(kind: str, settings: Settings) -> Any:
    topology, api = kind.split("-")
    if topology == "memory":
        memory = MemoryBackend(settings.key_prefix)
        return memory if api == "sync" else AsyncMemoryBackend(memory)
    return RedisBackend(settings) if api == "sync" else AsyncRedisBackend(settings)


@pytest.fixture(params=KINDS)
async def run(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Run]:
    """``await run(op)``: ``op`` executed by the backend the parameter names."""
    backend = _backend(request.param, store_settings(request.param, request, key_prefix=key_prefix))

    async def execute(op: Op[Any]) -> Any:
        result = backend.run(op)
        return await result if inspect.isawaitable(result) else result

    try:
        yield execute
    finally:
        closed = backend.close()
        if inspect.isawaitable(closed):
            await closed


RECORD, OTHER = '{"client":"first"}', '{"client":"second"}'
NEVER = Lifetime()
FIELDS = {"uses": "1", "policy": "{}", "label": "contract", "created": "1", "expires": "0"}


async def case_create(run: Run) -> None:
    assert await run(Create("c1", RECORD)) is True
    assert await run(Create("c1", RECORD)) is True  # a retried create is harmless
    assert await run(Create("c1", OTHER)) is False  # never overwrites another client
    assert await run(Get("c1")) == RECORD


async def case_get(run: Run) -> None:
    assert await run(Get("c1")) is None
    await run(Create("c1", RECORD))
    assert await run(Get("c1")) == RECORD
    assert await run(Read("c1")) == (RECORD, None)  # a get notes no use


async def case_lookup(run: Run) -> None:
    assert await run(Lookup("c1", NEVER)) is None
    await run(Create("c1", RECORD))
    before = int(time.time() * 1000)
    assert await run(Lookup("c1", NEVER)) == RECORD
    record, used = await run(Read("c1"))
    assert record == RECORD and used is not None and used >= before - 1000


async def case_read(run: Run) -> None:
    assert await run(Read("c1")) == (None, None)
    await run(Create("c1", RECORD))
    assert await run(Read("c1")) == (RECORD, None)


async def case_replace(run: Run) -> None:
    await run(Create("c1", RECORD))
    assert await run(Replace("c1", OTHER, RECORD)) is False  # not what is stored
    assert await run(Replace("c1", RECORD, OTHER)) is True
    assert await run(Get("c1")) == OTHER
    assert await run(Replace("c1", OTHER, None)) is True  # None deletes
    assert await run(Read("c1")) == (None, None)


async def case_purge(run: Run) -> None:
    await run(Create("c1", RECORD))
    await run(Create("c2", RECORD))
    await run(Lookup("c1", NEVER))
    record, used = await run(Read("c1"))
    assert await run(Purge("c1", RECORD, None)) is False  # it was used since: kept
    assert await run(Purge("c1", OTHER, used)) is False  # another record: kept
    assert await run(Purge("c1", record, used)) is True
    assert await run(Purge("c2", RECORD, None)) is True  # never used
    assert await run(Read("c1")) == (None, None)
    assert await run(Get("c2")) is None


async def case_register(run: Run) -> None:
    limits = parse_rate_limits("1/hour")
    first = await run(Register(Attempt("c1", RECORD, "ip:192.0.2.1", limits, cap=2)))
    assert first.outcome is Outcome.CREATED
    assert first.decision is not None and first.decision.allowed
    assert (await run(Register(Attempt("c2", RECORD, "ip:192.0.2.1", limits)))).outcome is (
        Outcome.LIMITED
    )
    assert (await run(Register(Attempt("c1", OTHER)))).outcome is Outcome.TAKEN
    assert (await run(Register(Attempt("c3", RECORD, cap=1)))).outcome is Outcome.CAPPED
    assert (await run(Register(Attempt("c4", RECORD, token="spent")))).outcome is (
        Outcome.TOKEN_SPENT
    )
    assert await run(Get("c1")) == RECORD
    assert await run(ClientCount()) == 1


async def case_hit(run: Run) -> None:
    limits = parse_rate_limits("2/hour")
    assert [(await run(Hit("ip:192.0.2.1", limits))).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    assert (await run(Hit("ip:192.0.2.2", limits))).allowed  # another bucket


async def case_reserve(run: Run) -> None:
    assert await run(Reserve(2)) is True
    assert await run(Reserve(2)) is True
    assert await run(Reserve(2)) is False
    assert await run(ClientCount()) == 2


async def case_release(run: Run) -> None:
    await run(Reserve(5))
    assert await run(Release()) is None
    assert await run(ClientCount()) == 0
    await run(Release())  # never below zero
    assert await run(ClientCount()) == 0


async def case_token_get(run: Run) -> None:
    assert await run(TokenGet("d1")) is None
    await run(TokenPut("d1", FIELDS, 0))
    assert await run(TokenGet("d1")) == FIELDS


async def case_token_use(run: Run) -> None:
    assert await run(TokenUse("d1")) is False  # unknown
    await run(TokenPut("d1", FIELDS, 0))
    assert await run(TokenUse("d1")) is True
    assert await run(TokenUse("d1")) is False  # used up
    assert (await run(TokenGet("d1")))["uses"] == "0"


async def case_token_put(run: Run) -> None:
    assert await run(TokenPut("d1", FIELDS, int(time.time()) + 3600)) is None
    assert await run(TokenGet("d1")) == FIELDS
    await run(TokenPut("d2", FIELDS, int(time.time()) - 10))  # already expired
    assert await run(TokenGet("d2")) is None


async def case_token_list(run: Run) -> None:
    assert await run(TokenList()) == []
    await run(TokenPut("d1", FIELDS, 0))
    await run(TokenPut("d2", {**FIELDS, "label": "two"}, 0))
    assert sorted(await run(TokenList())) == [("d1", FIELDS), ("d2", {**FIELDS, "label": "two"})]


async def case_token_delete(run: Run) -> None:
    await run(TokenPut("d1", FIELDS, 0))
    assert await run(TokenDelete("d1")) is True
    assert await run(TokenDelete("d1")) is False
    assert await run(TokenGet("d1")) is None


async def case_client_records(run: Run) -> None:
    assert await run(ClientRecords()) == []
    for n in range(3):
        await run(Create(f"c{n}", f'{{"n":{n}}}'))
    await run(Lookup("c1", NEVER))
    seen: list[int] = []
    records = sorted(await run(ClientRecords(seen.append)))
    assert [record for record, _ in records] == ['{"n":0}', '{"n":1}', '{"n":2}']
    assert [used is None for _, used in records] == [True, False, True]
    assert seen[-1] == 3
    assert await run(Read("c1")) == (records[1][0], records[1][1])  # listing notes no use


async def case_client_count(run: Run) -> None:
    assert await run(ClientCount()) == 0
    await run(Reserve(10))
    await run(Register(Attempt("c1", RECORD, cap=10)))
    assert await run(ClientCount()) == 2


async def case_document_get(run: Run) -> None:
    assert await run(DocumentGet("k1")) is None
    await run(DocumentPut("k1", '{"v":1}', 60_000))
    assert await run(DocumentGet("k1")) == '{"v":1}'


async def case_document_put(run: Run) -> None:
    assert await run(DocumentPut("k1", '{"v":1}', 60_000)) is None
    await run(DocumentPut("k1", '{"v":2}', 60_000))  # replaces
    assert await run(DocumentGet("k1")) == '{"v":2}'
    await run(DocumentPut("k2", '{"v":3}', 50))  # expires with its time to live
    time.sleep(0.2)
    assert await run(DocumentGet("k2")) is None


async def case_document_delete(run: Run) -> None:
    await run(DocumentPut("k1", "{}", 60_000))
    assert await run(DocumentDelete("k1")) is True
    assert await run(DocumentDelete("k1")) is False
    assert await run(DocumentGet("k1")) is None


async def case_document_list(run: Run) -> None:
    assert await run(DocumentList()) == []
    await run(DocumentPut("k1", "one", 60_000))
    await run(DocumentPut("k2", "two", 60_000))
    await run(Create("c1", RECORD))  # not a document
    assert sorted(await run(DocumentList())) == [("k1", "one"), ("k2", "two")]


CASES: dict[type[Op[Any]], Callable[[Run], Awaitable[None]]] = {
    Create: case_create,
    Get: case_get,
    Lookup: case_lookup,
    Read: case_read,
    Replace: case_replace,
    Purge: case_purge,
    Register: case_register,
    Hit: case_hit,
    Reserve: case_reserve,
    Release: case_release,
    TokenGet: case_token_get,
    TokenUse: case_token_use,
    TokenPut: case_token_put,
    TokenList: case_token_list,
    TokenDelete: case_token_delete,
    ClientRecords: case_client_records,
    ClientCount: case_client_count,
    DocumentGet: case_document_get,
    DocumentPut: case_document_put,
    DocumentDelete: case_document_delete,
    DocumentList: case_document_list,
}


def test_backend_operations_every_operation_has_a_case() -> None:
    assert list(CASES) == list(OPERATIONS)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.method)
async def test_backend_operations_contract(run: Run, op: type[Op[Any]]) -> None:
    await CASES[op](run)


# --- the per-operation methods ---------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [MemoryBackend, AsyncMemoryBackend, RedisBackend, AsyncRedisBackend]
)
def test_backend_operations_shorthands_are_exactly_the_operations(cls: type) -> None:
    public = {name for name in vars(cls) if not name.startswith("_")}
    extra = {"run", "close", "shared"}  # shared: the process-wide embedded store
    assert public - extra == {op.method for op in OPERATIONS}


async def test_backend_operations_shorthand_runs_its_operation() -> None:
    memory = MemoryBackend("shorthand")
    backend = AsyncMemoryBackend(memory)
    assert await backend.create("c1", RECORD) is True
    assert await backend.read("c1") == (RECORD, None)
    assert RedisBackend.hit.__doc__ is not None
    assert RedisBackend.hit.__qualname__ == "RedisBackend.hit"


# --- Redis only ------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("api", ["sync", "async"])
async def test_backend_operations_async_and_sync_purge(
    redis_url: str, key_prefix: str, api: str
) -> None:
    """``purge`` on both Redis backends (the asyncio one once had none)."""
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix)
    if api == "sync":
        sync = RedisBackend(settings)
        sync.run(Create("c1", RECORD))
        assert sync.purge("c1", RECORD, None) is True
        assert sync.run(Get("c1")) is None
        sync.close()
        return
    backend = AsyncRedisBackend(settings)
    try:
        await backend.run(Create("c1", RECORD))
        await backend.run(Lookup("c1", NEVER))
        _, used = await backend.run(Read("c1"))
        assert await backend.purge("c1", RECORD, None) is False
        assert await backend.purge("c1", RECORD, used) is True
        assert await backend.run(Read("c1")) == (None, None)
    finally:
        await backend.close()


@pytest.mark.redis
@pytest.mark.parametrize("api", ["sync", "async"])
async def test_backend_operations_replicated_register_loads_a_flushed_script(
    request: pytest.FixtureRequest,
    sentinel_group: SentinelGroup,
    key_prefix: str,
    api: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Under Sentinel the registration script is sent with WAIT in one pipeline (EVALSHA):
    after ``SCRIPT FLUSH`` it meets NOSCRIPT, loads the script and sends both again, without
    a storage error."""
    settings = store_settings(f"sentinel-{api}", request, key_prefix=key_prefix)
    assert sentinel_group.master is not None
    admin = sentinel_group.master.client()
    backend = _backend(f"sentinel-{api}", settings)
    try:
        admin.script_flush()
        with caplog.at_level(logging.WARNING, logger="dcr_middleware"):
            attempted = backend.run(Register(Attempt("c1", RECORD)))
            if inspect.isawaitable(attempted):
                attempted = await attempted
        assert attempted.outcome is Outcome.CREATED
        assert not [r for r in caplog.records if "redis error" in r.getMessage()]
        assert admin.get(f"{key_prefix}:client:{{c1}}") == RECORD
    finally:
        admin.close()
        closed = backend.close()
        if inspect.isawaitable(closed):
            await closed


@pytest.mark.redis
@pytest.mark.parametrize("api", ["sync", "async"])
async def test_backend_operations_redis_error_is_one_storage_error_logged_once(
    api: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Port 1 on loopback: refused at once (the command is retried once after a connection error).
    settings = Settings(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout=0.5)
    backend = _backend(f"redis-{api}", settings)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="dcr_middleware"),
            pytest.raises(StorageError) as raised,
        ):
            result = backend.run(Hit("ip:192.0.2.1", parse_rate_limits("1/hour")))
            if inspect.isawaitable(result):
                await result
        assert isinstance(raised.value.__cause__, redis.ConnectionError)
        assert [r.getMessage().split(":")[0] for r in caplog.records] == ["redis error"]
    finally:
        closed = backend.close()
        if inspect.isawaitable(closed):
            await closed
