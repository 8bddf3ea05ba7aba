"""The Redis under test and the faults injected into it.

:class:`FaultRedis` is one persistent ``redis-server`` that can be killed, restarted, frozen and
slowed; a Sentinel group comes from ``tests/support/redis_servers.py``. Each fault function injects
its fault and returns once it is over (every wait bounded); :mod:`.load` sends the load and
:mod:`.invariants` checks what must hold afterwards.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from support import SENTINEL_MASTER, Node, SentinelGroup, wait_for

from dcr_middleware import Settings

SERVER_KINDS = ["uvicorn", "gunicorn"]  # 1 worker; 2 sync workers
# What the servers are told (DCR_REDIS_TIMEOUT, DCR_REDIS_CONNECT_TIMEOUT); a client gives up
# after ten times that (load.REQUEST_DEADLINE).
REDIS_TIMEOUT = "0.5"
REDIS_CONNECT_TIMEOUT = "0.5"
RATE_LIMIT = "5/second"
MAX_CLIENTS = 100_000  # high enough never to refuse; it makes every create keep the counter


def server_env() -> dict[str, str]:
    """The ``DCR_*`` settings of every server under test (on top of the Redis location)."""
    return {
        "DCR_REDIS_TIMEOUT": REDIS_TIMEOUT,
        "DCR_REDIS_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT,
        "DCR_RATE_LIMIT": RATE_LIMIT,
        "DCR_MAX_CLIENTS": str(MAX_CLIENTS),
    }


# --- Redis under test ----------------------------------------------------------------------------


class FaultRedis(Node):
    """One persistent ``redis-server`` (AOF, ``appendfsync always``: an acknowledged write
    survives ``SIGKILL``) that answers ``DEBUG`` from loopback; it can be killed, restarted on the
    same port, frozen and thawed."""

    def __init__(self, executable: str, directory: Path) -> None:
        persistent = ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        # Redis 7 refuses DEBUG unless enable-debug-command allows it (a start-time setting).
        super().__init__(executable, directory, [*persistent, "--enable-debug-command", "local"])

    @property
    def url(self) -> str:
        return f"redis://{self.address}/0"

    def kill(self) -> None:
        """``SIGKILL``, as a crash."""
        assert self.process is not None
        self.process.kill()
        self.stop()  # reaps it and closes the log

    def freeze(self) -> None:
        """``SIGSTOP``: the kernel still accepts connections and buffers commands."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """``SIGCONT``."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


def current_master(group: SentinelGroup) -> tuple[str, int]:
    """The master address the first Sentinel that answers names."""
    for watcher in group.watchers:
        client = watcher.client(timeout=0.5)
        try:
            address: Any = client.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
            return str(address[0]), int(address[1])
        except redis.RedisError:
            continue
        finally:
            client.close()
    raise RuntimeError("no Sentinel answered")


def sentinel_settings(group: SentinelGroup) -> Settings:
    """Settings naming the group, as ``DCR_REDIS_SENTINELS`` / ``DCR_REDIS_SENTINEL_MASTER``."""
    return Settings(
        redis_sentinels=tuple(group.addresses.split(",")), redis_sentinel_master=SENTINEL_MASTER
    )


# --- Faults ------------------------------------------------------------------------------------

FAULT_SECONDS = 1.5  # how long a fault lasts (three command timeouts)


def kill_restart(redis_server: FaultRedis) -> None:
    """``SIGKILL`` Redis, leave it down, start it again on the same port (AOF replayed)."""
    redis_server.kill()
    time.sleep(FAULT_SECONDS)
    redis_server.start()


def sigstop(redis_server: FaultRedis) -> None:
    """Freeze the Redis process (``SIGSTOP``) then let it go on (``SIGCONT``)."""
    redis_server.freeze()
    try:
        time.sleep(FAULT_SECONDS)
    finally:
        redis_server.thaw()


def client_pause(mode: str) -> Callable[[FaultRedis], None]:
    """``CLIENT PAUSE <ms> WRITE|ALL``: Redis holds the commands it pauses until the end."""

    def pause(redis_server: FaultRedis) -> None:
        admin = redis_server.client()
        try:
            admin.execute_command(  # type: ignore[no-untyped-call]
                "CLIENT", "PAUSE", int(FAULT_SECONDS * 1000), mode
            )
        finally:
            admin.close()
        time.sleep(FAULT_SECONDS + 0.2)

    return pause


def debug_sleep(redis_server: FaultRedis) -> None:
    """``DEBUG SLEEP 1`` twice: Redis answers nothing for a second, twice in a row."""
    admin = redis_server.client()
    try:
        for _ in range(2):
            admin.execute_command("DEBUG", "SLEEP", 1)  # type: ignore[no-untyped-call]
            time.sleep(0.2)
    finally:
        admin.close()


def sentinel_failover(group: SentinelGroup) -> float:
    """``SENTINEL FAILOVER``: the replica is promoted; wait until the Sentinels name it and the
    old master is demoted. Returns when the promotion was seen (``time.perf_counter()``, polled
    every 50 ms: at or after the moment the replica stopped taking the old master's stream)."""
    assert group.master is not None and group.replica is not None
    before = current_master(group)
    client = group.watchers[0].client()
    try:
        client.sentinel_failover(SENTINEL_MASTER)
    finally:
        client.close()
    replica = group.replica
    wait_for(lambda: _role(replica) == "master", "the replica to be promoted")
    promoted_at = time.perf_counter()
    wait_for(lambda: current_master(group) != before, "the Sentinels to name a new master")
    # The old master stays a master until a Sentinel turns it into a replica (about ten seconds
    # later); only then does every client write to the new one.
    master = group.master
    wait_for(lambda: _role(master) == "slave", "the old master to become a replica")
    return promoted_at


def _role(node: Node) -> str:
    client = node.client(timeout=0.5)
    try:
        return str(client.info("replication")["role"])
    except redis.RedisError:
        return "unknown"
    finally:
        client.close()
