"""What only Redis Cluster and Sentinel have: keys spread over every primary, listing across
nodes, a dead node answered with ``StorageError``, a failover.

The store contract itself runs on the session's cluster and Sentinel group too, as parameters of
``tests/integration/test_store_contract.py`` (``cluster-sync``, ``sentinel-async``, ...).
"""

from __future__ import annotations

import inspect
import json
import os
import signal
from typing import Any

import pytest
import redis
from redis.crc import key_slot
from support import SENTINEL_MASTER, Cluster, SentinelGroup, wait_for
from support.records import new_client
from support.stores import SyncFacade, store_settings

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    RegisteredClient,
    Settings,
    StorageError,
    cli,
)
from dcr_middleware.core.errors import ClientCapError
from dcr_middleware.core.ratelimit import Limit
from dcr_middleware.storage.base import client_key, token_key
from dcr_middleware.storage.redis import AsyncRedisBackend, RedisBackend

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

TOPOLOGIES = ["cluster", "sentinel"]


def primaries_holding(cluster: Cluster, pattern: str) -> dict[str, list[str]]:
    """The keys matching ``pattern`` on each node, read from each node directly."""
    found = {}
    for node in cluster.nodes:
        client = node.client()
        try:
            found[node.address] = list(client.scan_iter(match=pattern, count=500))
        finally:
            client.close()
    return found


def test_cluster_keys_spread_over_every_primary_in_their_hash_tag_slot(
    redis_cluster: Cluster, key_prefix: str
) -> None:
    settings = Settings(redis_url=redis_cluster.url, redis_cluster=True, key_prefix=key_prefix)
    store = ClientStore(settings)
    try:
        clients = [new_client()[0] for _ in range(30)]
        for client in clients:
            store.create(client)
    finally:
        store.close()
    found = primaries_holding(redis_cluster, f"{key_prefix}:client:*")
    # 30 random ids over 3 primaries: every primary holds some (all on one: 3 * 3**-30).
    assert all(found.values()), {a: len(k) for a, k in found.items()}
    assert sorted(k for keys in found.values() for k in keys) == sorted(
        client_key(key_prefix, c.client_id) for c in clients
    )
    for address, keys in found.items():
        node = next(n for n in redis_cluster.nodes if n.address == address)
        admin = node.client()
        try:
            for key in keys:
                # The slot is the hash tag's, and the node holding the key owns that slot.
                slot = key_slot(key.encode())
                assert slot == key_slot(key[key.index("{") + 1 : key.rindex("}")].encode())
                assert admin.cluster("countkeysinslot", slot) >= 1
        finally:
            admin.close()


async def test_cluster_token_list_reads_every_primary(
    redis_cluster: Cluster, key_prefix: str
) -> None:
    """``token_list`` (SCAN) finds tokens on all three primaries, sync and async."""
    settings = Settings(redis_url=redis_cluster.url, redis_cluster=True, key_prefix=key_prefix)
    digests = [f"{n:064x}" for n in range(24)]
    backend = RedisBackend(settings)
    async_backend = AsyncRedisBackend(settings)
    try:
        for digest in digests:
            backend.token_put(digest, {"uses": "1", "label": digest[-2:]}, 0)
        found = primaries_holding(redis_cluster, token_key(key_prefix, "*"))
        assert all(found.values())
        assert sorted(d for d, _ in backend.token_list()) == digests
        assert sorted(d for d, _ in await async_backend.token_list()) == digests
        assert backend.token_delete(digests[0])
        assert sorted(d for d, _ in backend.token_list()) == digests[1:]
    finally:
        backend.close()
        await async_backend.close()


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_cli_clients_list_shows_clients_of_every_node(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key_prefix: str,
    topology: str,
) -> None:
    """``clients list`` and ``check`` (run in process: the CLI reads ``os.environ``)."""
    settings = store_settings(topology, request, key_prefix=key_prefix)
    store = ClientStore(settings)
    try:
        clients = [new_client()[0] for _ in range(12)]
        for client in clients:
            store.create(client)
    finally:
        store.close()
    for name in [k for k in os.environ if k.startswith("DCR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DCR_KEY_PREFIX", key_prefix)
    if topology == "cluster":
        monkeypatch.setenv("DCR_REDIS_URL", str(settings.redis_url))
        monkeypatch.setenv("DCR_REDIS_CLUSTER", "true")
    else:
        monkeypatch.setenv("DCR_REDIS_SENTINELS", ",".join(settings.redis_sentinels))
        monkeypatch.setenv("DCR_REDIS_SENTINEL_MASTER", SENTINEL_MASTER)
    capsys.readouterr()
    assert cli.main(["clients", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(row["client_id"] for row in listed) == sorted(c.client_id for c in clients)
    assert cli.main(["check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["topology"], report["store"]) == (True, topology, "redis")
    assert report["redis_version"]


@pytest.mark.slow
@pytest.mark.parametrize("full_coverage", ["no", "yes"])
@pytest.mark.parametrize("api", ["sync", "async"])
async def test_cluster_dead_node_raises_storage_error_and_others_still_answer(
    own_cluster: Cluster, key_prefix: str, api: str, full_coverage: str
) -> None:
    """A killed primary (no replica): its slots give ``StorageError`` (the 503 of the
    middlewares). The other primaries' clients stay readable until the cluster marks the node
    failed (``cluster-node-timeout``, 2 s here); after that, with
    ``cluster-require-full-coverage no`` they still are, and with the default (``yes``) the whole
    cluster answers ``CLUSTERDOWN``, which is ``StorageError`` too. Nothing else escapes."""
    for node in own_cluster.nodes:
        admin = node.client()
        try:
            admin.config_set("cluster-require-full-coverage", full_coverage)
        finally:
            admin.close()
    settings = Settings(redis_url=own_cluster.url, redis_cluster=True, key_prefix=key_prefix)
    seed = ClientStore(settings)
    try:
        clients = [new_client()[0] for _ in range(30)]
        for client in clients:
            seed.create(client)
    finally:
        seed.close()
    victim, witness = own_cluster.nodes[-1], own_cluster.nodes[0]
    admin = victim.client()
    try:
        on_victim = {k for k in admin.scan_iter(match=f"{key_prefix}:*")}
    finally:
        admin.close()
    lost = [c for c in clients if client_key(key_prefix, c.client_id) in on_victim]
    survivors = [c for c in clients if client_key(key_prefix, c.client_id) not in on_victim]
    assert lost
    assert survivors

    def victim_failed() -> bool:
        """The witness flags the victim ``fail`` (agreed by a majority), not just ``fail?``."""
        watcher = witness.client()
        try:
            nodes = watcher.cluster("nodes")
        finally:
            watcher.close()
        return "fail" in nodes[victim.address]["flags"].split(",")

    async def read_back() -> None:
        for client in lost:
            with pytest.raises(StorageError):
                await opened.get(client.client_id)
        with pytest.raises(StorageError):
            await opened.authenticate(lost[0].client_id, "secret")
        for client in survivors:
            assert await opened.get(client.client_id) == client

    # Open the store (and read the slot map) first, then crash the node under it.
    opened = SyncFacade(ClientStore(settings)) if api == "sync" else AsyncClientStore(settings)
    try:
        assert await opened.get(survivors[0].client_id) == survivors[0]
        victim.stop(signal.SIGKILL)
        try:
            await read_back()
        except StorageError:
            # A survivor refused: only allowed once the cluster is down (the node timeout
            # passed on a slow machine), and only with full coverage required.
            assert full_coverage == "yes"
            assert victim_failed()
        wait_for(victim_failed, "the survivors to flag the killed node as failed")
        if full_coverage == "no":
            await read_back()
        else:
            for client in clients:
                with pytest.raises(StorageError):
                    await opened.get(client.client_id)
    finally:
        await opened.close()


@pytest.mark.slow
async def test_cluster_store_built_while_cluster_is_down_works_once_it_is_up(
    own_cluster: Cluster, key_prefix: str
) -> None:
    """Both clients are built without a reachable node (no socket at construction), answer
    ``StorageError`` while the cluster is down, and serve once it is back, without being rebuilt:
    a worker started during an outage recovers by itself."""
    settings = Settings(redis_url=own_cluster.url, redis_cluster=True, key_prefix=key_prefix)
    own_cluster.stop()
    sync_store, async_store = ClientStore(settings), AsyncClientStore(settings)
    try:
        client, secret = new_client()
        with pytest.raises(StorageError):
            sync_store.get(client.client_id)
        with pytest.raises(StorageError):
            await async_store.get(client.client_id)
        for node in own_cluster.nodes:  # same ports, same nodes.conf: the same cluster
            node.start()
        wait_for(own_cluster.ready, "the restarted cluster")
        sync_store.create(client)
        assert await async_store.get(client.client_id) == client
        assert secret is not None
        assert sync_store.authenticate(client.client_id, secret) == client
    finally:
        sync_store.close()
        await async_store.close()


def test_sentinel_store_writes_to_the_master_and_the_replica_follows(
    sentinel_group: SentinelGroup, key_prefix: str
) -> None:
    settings = Settings(
        redis_sentinels=tuple(sentinel_group.addresses.split(",")),
        redis_sentinel_master=SENTINEL_MASTER,
        key_prefix=key_prefix,
    )
    client, _ = new_client()
    store = ClientStore(settings)
    try:
        store.create(client)
    finally:
        store.close()
    assert sentinel_group.master is not None and sentinel_group.replica is not None
    key = client_key(key_prefix, client.client_id)
    master = sentinel_group.master.client()
    replica = sentinel_group.replica.client()
    try:
        assert RegisteredClient.from_record(str(master.get(key))) == client
        master.wait(1, 5000)
        assert replica.get(key) == master.get(key)
    except redis.RedisError as exc:  # pragma: no cover - reported with the logs
        pytest.fail(f"{exc}\n{sentinel_group.master.log()}")
    finally:
        master.close()
        replica.close()


@pytest.mark.slow
async def test_sentinel_failover_keeps_clients_and_the_same_stores_write_to_the_new_master(
    own_sentinel_group: SentinelGroup, key_prefix: str
) -> None:
    """After ``SENTINEL FAILOVER`` the stores built before it (not rebuilt) read every client
    and write to the promoted replica: a write that meets the demoted master (``READONLY``) is
    retried once on the new one."""
    group = own_sentinel_group
    group.wait_settled()
    assert group.master is not None and group.replica is not None
    settings = Settings(
        redis_sentinels=tuple(group.addresses.split(",")),
        redis_sentinel_master=SENTINEL_MASTER,
        key_prefix=key_prefix,
    )
    sync_store, async_store = ClientStore(settings), AsyncClientStore(settings)
    try:
        before = [new_client()[0] for _ in range(2)]
        sync_store.create(before[0])
        await async_store.create(before[1])
        old_master, new_master = group.master.client(), group.replica.client()
        try:
            assert old_master.wait(1, 5000) == 1  # the replica has both clients
            sentinels = [watcher.client() for watcher in group.watchers]
            try:
                assert sentinels[0].sentinel_failover(SENTINEL_MASTER)

                def promoted() -> bool:
                    # The Sentinel that ran the failover (the first one the stores ask) lists
                    # the promoted replica as the master (+switch-master). (Until the others
                    # learn it, a client that asks them first may be sent to the old master
                    # and answer 503.)
                    state: Any = sentinels[0].sentinel_master(SENTINEL_MASTER)
                    role = new_master.info("replication")["role"]
                    return role == "master" and int(state["port"]) == new_port

                new_port = group.replica.port
                wait_for(promoted, "the failover")
                # The Sentinels turn the old master into a replica on their next INFO to it
                # (within 10 s); do it now, as they will: the stores' pooled connections to it
                # then meet READONLY.
                assert old_master.replicaof("127.0.0.1", new_port)
            finally:
                for sentinel in sentinels:
                    sentinel.close()
        finally:
            old_master.close()
            new_master.close()
        after = [new_client()[0] for _ in range(2)]
        sync_store.create(after[0])
        await async_store.create(after[1])
        for client in before + after:
            assert sync_store.get(client.client_id) == client
            assert await async_store.get(client.client_id) == client
    finally:
        sync_store.close()
        await async_store.close()


# --- exposure defaults on a cluster (issue 11): separate calls, same outcomes -----------------


async def _done(value: Any) -> Any:
    """``value``, awaited when the store is the asyncio one."""
    return await value if inspect.isawaitable(value) else value


def _cluster_store(api: str, settings: Settings) -> ClientStore | AsyncClientStore:
    return ClientStore(settings) if api == "sync" else AsyncClientStore(settings)


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_cluster_registration_refused_at_the_cap_gives_the_token_use_back(
    api: str, redis_cluster: Cluster, key_prefix: str
) -> None:
    # On a cluster the use is taken in its own call before the cap's: it is given back.
    settings = Settings(
        redis_url=redis_cluster.url, redis_cluster=True, key_prefix=key_prefix, max_clients=1
    )
    opened = _cluster_store(api, settings)
    digest = "ab" * 32
    try:
        await _done(opened.backend.token_put(digest, {"uses": "3", "policy": "{}"}, 0))
        await _done(opened.register(new_client()[0], token=digest))
        for _ in range(2):
            with pytest.raises(ClientCapError):
                await _done(opened.register(new_client()[0], token=digest))
        assert (await _done(opened.backend.token_get(digest)))["uses"] == "2"
    finally:
        await _done(opened.close())


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_cluster_charges_the_slash_48_with_each_slash_64(
    api: str, redis_cluster: Cluster, key_prefix: str
) -> None:
    wide = "ip:2001:db8:5::/48"
    limits = (Limit(2, 60), Limit(10, 60, wide))
    settings = Settings(redis_url=redis_cluster.url, redis_cluster=True, key_prefix=key_prefix)
    opened = _cluster_store(api, settings)
    try:
        buckets = [f"ip:2001:db8:5:{n:x}::/64" for n in range(12)]
        decisions = [await _done(opened.hit(bucket, limits)) for bucket in buckets]
    finally:
        await _done(opened.close())
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 2
    assert all(d.limit.bucket == wide for d in decisions[10:])
