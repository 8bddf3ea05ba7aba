"""``redis-server`` processes on loopback: one server, a Redis Cluster, a Sentinel group.

Every process is started by :func:`.processes.spawn` (never daemonized), in a temporary
directory, and every wait is bounded in time. The fixtures that start them stop them
(:mod:`.fixtures`); the reaper kills what a killed test run could not stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import redis

from . import processes
from .processes import HOST, free_port

READY_TIMEOUT = 30.0
SENTINEL_MASTER = "dcr-master"


def redis_server_path() -> str | None:
    """Where ``redis-server`` is installed, if it is."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def redis_executable(*, cli: bool = False) -> str:
    """``redis-server`` (and ``redis-cli`` when ``cli``), or skip the test; under ``CI=true`` a
    missing binary fails it instead."""
    path = redis_server_path()
    missing = [] if path else ["redis-server"]
    if cli and shutil.which("redis-cli") is None:
        missing.append("redis-tools")
    if path is None or missing:
        message = f"not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_for(condition: Callable[[], bool], what: str, node: Node | None = None) -> None:
    """Poll ``condition()`` until true; fail after :data:`READY_TIMEOUT` seconds."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not condition():
        if node is not None and node.process is not None and node.process.poll() is not None:
            raise RuntimeError(f"redis-server exited waiting for {what}:\n{node.log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Node:
    """One ``redis-server`` process (a server, a cluster node, a replica or a Sentinel) on a
    fixed loopback port; it can be stopped, started again on that port, frozen and thawed."""

    executable: str
    directory: Path
    args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.address}/0"

    def start(self, config: str | None = None) -> None:
        """Start the process (``config``: a file for ``--sentinel``) and wait for ``PING``."""
        assert self.process is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = (self.directory / "redis.log").open("ab")
        argv = [self.executable, *([config] if config else [])]
        argv += ["--port", str(self.port), "--bind", HOST, "--dir", str(self.directory)]
        argv += ["--daemonize", "no", "--logfile", "", *self.args]
        self.process = processes.spawn(
            argv, marker="redis", stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_for(self.ping, f"{self.address} to answer PING", self)
        except BaseException:
            self.stop()
            raise

    def ping(self) -> bool:
        client = self.client(timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self, timeout: float = 10) -> redis.Redis:
        """A plain admin client of this one process (the caller closes it)."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=timeout, decode_responses=True)

    def log(self) -> str:
        return (self.directory / "redis.log").read_text(errors="replace")[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (``SIGKILL`` for a crash) and wait for it."""
        if self.process is not None:
            processes.stop(self.process, sig)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """``SIGKILL``, as a crash: works on a frozen (``SIGSTOP``) process too."""
        assert self.process is not None
        self.stop(signal.SIGKILL)

    def pause(self) -> None:
        """Freeze the process (``SIGSTOP``): connections stay open, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """``SIGCONT`` (harmless when the process is not frozen or not running)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


class RedisServer(Node):
    """One ``redis-server`` without persistence, or (``persistent``) with an append-only file
    fsynced on every write, so that its data survives a stop, a restart and a ``SIGKILL``."""

    def __init__(self, executable: str, directory: Path, *, persistent: bool = False) -> None:
        args = ["--save", "", "--appendonly", "yes" if persistent else "no"]
        super().__init__(executable, directory, [*args, "--appendfsync", "always"])
        self.persistent = persistent


@dataclass
class Cluster:
    """A Redis Cluster of ``size`` primaries and no replicas, made by ``redis-cli --cluster``."""

    executable: str
    directory: Path
    size: int = 3
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The seed URL (``DCR_REDIS_URL``): the first node; the client discovers the others."""
        return f"redis://{self.nodes[0].address}/0"

    def start(self) -> None:
        for n in range(self.size):
            # The cluster bus port is chosen too (the default, port + 10000, may be taken).
            args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-node-timeout", "2000", "--cluster-port", str(free_port())]
            args += ["--save", "", "--appendonly", "no"]
            node = Node(self.executable, self.directory / f"node-{n}", args)
            self.nodes.append(node)
            node.start()
        create = subprocess.run(
            [
                _cli(self.executable),
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=READY_TIMEOUT,
            check=False,
        )
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout!r}")
        wait_for(self.ready, "cluster_state:ok on every node")

    def ready(self) -> bool:
        """Every node says ``cluster_state:ok`` and knows every node and every slot."""
        for node in self.nodes:
            client = node.client(timeout=0.5)
            try:
                info = client.cluster("info")
            except redis.RedisError:
                return False
            finally:
                client.close()
            state = (info.get("cluster_state"), int(info.get("cluster_known_nodes", 0)))
            if state != ("ok", self.size) or int(info["cluster_slots_ok"]) != 16384:
                return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@dataclass
class SentinelGroup:
    """One master, one replica and ``sentinels`` Sentinels watching :data:`SENTINEL_MASTER`."""

    executable: str
    directory: Path
    sentinels: int = 3
    master: Node | None = None
    replica: Node | None = None
    watchers: list[Node] = field(default_factory=list)

    @property
    def addresses(self) -> str:
        """``DCR_REDIS_SENTINELS``: every Sentinel, comma-separated."""
        return ",".join(s.address for s in self.watchers)

    def start(self) -> None:
        # No 5 s wait before the replica's first (diskless) sync.
        plain = ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]
        self.master = Node(self.executable, self.directory / "master", plain)
        self.master.start()
        replica_of = ["--replicaof", HOST, str(self.master.port)]
        self.replica = Node(self.executable, self.directory / "replica", [*plain, *replica_of])
        self.replica.start()
        wait_for(self._replica_linked, "the replica to sync", self.replica)
        quorum = self.sentinels // 2 + 1
        for n in range(self.sentinels):
            directory = self.directory / f"sentinel-{n}"
            directory.mkdir(parents=True)
            config = directory / "sentinel.conf"  # Sentinel rewrites its config file
            config.write_text(
                f"sentinel monitor {SENTINEL_MASTER} {HOST} {self.master.port} {quorum}\n"
                f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
                f"sentinel failover-timeout {SENTINEL_MASTER} 5000\n"
            )
            watcher = Node(self.executable, directory, ["--sentinel"])
            self.watchers.append(watcher)
            watcher.start(str(config))
        wait_for(self.ready, "every Sentinel to watch the master")

    def wait_settled(self) -> None:
        """Wait until every Sentinel also knows the replica and its peers (what a failover
        needs; Sentinels learn them from hello messages and INFO within about ten seconds),
        and the replica acknowledges writes (``WAIT 1``: a Sentinel that discovers the replica
        may make it resync first; registrations wait for a replica by default)."""
        wait_for(lambda: self.ready(settled=True), "the Sentinels to know the whole group")
        wait_for(self._replica_acknowledges, "the replica to acknowledge a write")

    def _replica_acknowledges(self) -> bool:
        assert self.master is not None
        client = self.master.client(timeout=1.0)
        try:
            client.set("dcr-test:replication-probe", "x")
            return int(client.execute_command("WAIT", 1, 200)) >= 1
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _replica_linked(self) -> bool:
        assert self.replica is not None
        client = self.replica.client(timeout=0.5)
        try:
            return client.info("replication").get("master_link_status") == "up"
        except redis.RedisError:
            return False
        finally:
            client.close()

    def ready(self, settled: bool = False) -> bool:
        """Every Sentinel names the master (``settled``: and knows the replica and its peers)."""
        assert self.master is not None
        for watcher in self.watchers:
            client = watcher.client(timeout=0.5)
            try:
                master: dict[str, Any] = client.sentinel_master(SENTINEL_MASTER)  # type: ignore[assignment]
            except redis.RedisError:
                return False
            finally:
                client.close()
            if (master["ip"], int(master["port"])) != (HOST, self.master.port):
                return False
            peers = master["num-other-sentinels"]
            if settled and (master["num-slaves"] < 1 or peers < self.sentinels - 1):
                return False
        return True

    def stop(self) -> None:
        for node in [*self.watchers, self.replica, self.master]:
            if node is not None:
                node.stop()


def _cli(server: str) -> str:
    """``redis-cli``, installed next to ``redis-server`` (Debian's redis-tools)."""
    found = shutil.which("redis-cli") or str(Path(server).with_name("redis-cli"))
    if not Path(found).exists():
        raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
    return found
