"""Real processes for the integration tests: redis-server, uvicorn and gunicorn, on loopback.

Every wait here is bounded in time; every process started is stopped by the fixture that asked
for it (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gunicorn
import httpx
import redis

from dcr_middleware import RegisteredClient

HOST = "127.0.0.1"
APPS_DIR = Path(__file__).parent / "apps"
APP_BODY = b"hello from the wrapped app\n"  # dcr_it_apps.BODY
GUNICORN_VERSION: tuple[int, ...] = tuple(gunicorn.version_info)
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

CONFIDENTIAL = {"redirect_uris": ["https://app.example.com/cb"]}
PUBLIC = {
    "redirect_uris": ["http://127.0.0.1/cb"],
    "token_endpoint_auth_method": "none",
}
JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_path() -> str | None:
    """Where ``redis-server`` is installed, if it is."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def _stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


@dataclass
class RedisServer:
    """One ``redis-server`` on a fixed loopback port; can be stopped and started again."""

    executable: str
    directory: Path
    port: int = field(default_factory=free_port)
    persistent: bool = False
    process: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        """Start the server (same port as before) and wait until it answers ``PING``."""
        assert self.process is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                # A persistent server keeps its data across stop/start (AOF, fsync always).
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                "",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"redis-server exited early:\n{log[-2000:]}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not answer PING in time")
            time.sleep(0.05)

    def ping(self) -> bool:
        client = redis.Redis(host=HOST, port=self.port, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL) and wait for it."""
        if self.process is not None:
            _stop_process(self.process)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL, as a crash: works on a frozen (SIGSTOPped) process too."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT)
        self.process = None
        self._log.close()
        self._log = None

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections stay open, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        """A plain admin client (the caller closes it)."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=10, decode_responses=True)


KINDS = {
    "uvicorn": ["-m", "uvicorn", "dcr_middleware.asgi:app"],
    "gunicorn": ["-m", "gunicorn", "-w", "2", "-k", "sync", "dcr_middleware.wsgi:app"],
    "gunicorn-uvicorn": [
        "-m",
        "gunicorn",
        "-w",
        "2",
        "-k",
        "uvicorn_worker.UvicornWorker",
        "dcr_middleware.asgi:app",
    ],
}
WRAPPED_APP = {
    "uvicorn": "dcr_it_apps:asgi_app",
    "gunicorn": "dcr_it_apps:wsgi_app",
    "gunicorn-uvicorn": "dcr_it_apps:asgi_app",
}


def server_command(
    kind: str, port: int, log_level: str = "info", args: Sequence[str] = ()
) -> list[str]:
    """The argv of a server of ``kind`` bound to ``127.0.0.1:port``, plus ``args``."""
    argv = [sys.executable, *KINDS[kind], *args]
    if kind == "uvicorn":
        return [*argv, "--host", HOST, "--port", str(port), "--log-level", log_level]
    return [
        *argv,
        "--bind",
        f"{HOST}:{port}",
        "--log-level",
        log_level,
        "--graceful-timeout",
        "5",
        "--timeout",
        "60",
        # gunicorn >= 27 opens a control socket in ~/.gunicorn, shared by every instance.
        *(["--no-control-socket"] if GUNICORN_VERSION >= (27,) else []),
    ]


def server_env(
    kind: str, redis_url: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The subprocess environment: no inherited ``DCR_*``, the test apps on ``PYTHONPATH``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS_DIR), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["DCR_APP"] = WRAPPED_APP[kind]
    # These servers take bursts from one address; rate limiting has its own tests.
    env["DCR_RATE_LIMIT"] = "off"
    if redis_url is not None:
        env["DCR_REDIS_URL"] = redis_url
    env.update(extra or {})
    return env


@dataclass
class Server:
    """A uvicorn or gunicorn process serving the wrapped test app."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: Any

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self) -> None:
        """Poll ``GET /`` until the wrapped app answers; fail with the server's output if not."""
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.kind} exited with {self.process.returncode}:\n{self.output()}"
                    )
                try:
                    if client.get("/").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.kind} not ready in time:\n{self.output()}")
                time.sleep(0.1)

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        _stop_process(self.process)
        self._log.close()


def start_server(
    kind: str,
    directory: Path,
    redis_url: str | None,
    env: Mapping[str, str] | None = None,
    log_level: str = "info",
    args: Sequence[str] = (),
) -> Server:
    """Start a server of ``kind`` on a free port; the caller stops it (see ``conftest.py``)."""
    port = free_port()
    log_path = directory / f"{kind}-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        server_command(kind, port, log_level, args),
        env=server_env(kind, redis_url, env),
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(kind, port, process, log_path, log)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def register(client: httpx.Client, body: Mapping[str, Any] = CONFIDENTIAL) -> httpx.Response:
    """``POST /register`` with a JSON body."""
    return client.post("/register", content=json.dumps(body), headers=JSON)


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


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> RawResponse:
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection before answering")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    # Both servers answer these requests with a Content-Length (no chunked bodies).
    body = await reader.readexactly(int(headers["content-length"]))
    return RawResponse(status, headers, body)


async def post_many(
    port: int, path: str, body: bytes, count: int, in_flight: int, deadline: float
) -> list[RawResponse]:
    """POST ``body`` ``count`` times with ``in_flight`` keep-alive connections at once.

    A deliberately small HTTP/1.1 client on asyncio streams: httpx's async pool costs several
    milliseconds of client CPU per request at 50 connections, so on two cores it, not the
    server, would set the measured rate. A request is never re-sent (that could register a
    client twice); a connection the server closes (gunicorn sync workers answer
    ``Connection: close``) is reopened for the next one. Bounded by ``deadline`` seconds.
    """
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    remaining = iter(range(count))
    responses: list[RawResponse] = []

    async def worker() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            for _ in remaining:
                if connection is None:
                    connection = await asyncio.open_connection(HOST, port)
                response = await _exchange(*connection, request)
                responses.append(response)
                if response.headers.get("connection", "").lower() == "close":
                    connection[1].close()
                    await connection[1].wait_closed()
                    connection = None
        finally:
            if connection is not None:
                connection[1].close()
                with contextlib.suppress(OSError):
                    await connection[1].wait_closed()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(in_flight))), deadline)
    return responses


# --- Per-request headers, concurrent sends and servers on another loopback address (abuse
# controls tests) ---


def raw_post(
    path: str, body: bytes, headers: Mapping[str, str] | None = None, host: str = HOST
) -> bytes:
    """One HTTP/1.1 ``POST`` with a JSON body and extra ``headers``, as bytes on the wire
    (``host`` is the ``Host`` header's value)."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def send_concurrently(
    port: int,
    requests: Sequence[bytes],
    deadline: float,
    host: str = HOST,
    sources: Sequence[str] | None = None,
) -> list[RawResponse]:
    """Open one connection per request (from ``sources[i]`` when given, e.g. ``127.0.0.2``:
    every 127/8 address is loopback), and once all are open send every request at once; the
    answers come back in request order. Nothing is re-sent; bounded by ``deadline`` seconds."""
    connected = 0

    async def one(index: int, request: bytes) -> RawResponse:
        nonlocal connected
        local = (sources[index], 0) if sources is not None else None
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        try:
            connected += 1
            if connected == len(requests):
                opened.set()
            await opened.wait()
            return await _exchange(reader, writer, request)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def run() -> list[RawResponse]:
        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))

    opened = asyncio.Event()
    return await asyncio.wait_for(run(), deadline)


def free_port_on(host: str) -> int:
    """A TCP port that nothing listens on right now, on ``host`` (IPv4 or IPv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ipv6_loopback_available() -> bool:
    """True when a socket can listen on ``::1``."""
    try:
        free_port_on("::1")
    except OSError:
        return False
    return True


@dataclass
class HostServer(Server):
    """A :class:`Server` bound to another address than ``127.0.0.1`` (e.g. ``::1``)."""

    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://[{self.host}]:{self.port}" if ":" in self.host else super().url


def start_server_on(
    kind: str,
    directory: Path,
    redis_url: str | None,
    host: str,
    env: Mapping[str, str] | None = None,
    log_level: str = "info",
    args: Sequence[str] = (),
) -> HostServer:
    """:func:`start_server`, bound to ``host``; the caller stops it."""
    port = free_port_on(host)
    argv = server_command(kind, port, log_level, args)
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    argv = [bind if a == f"{HOST}:{port}" else host if a == HOST else a for a in argv]
    log_path = directory / f"{kind}-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        argv,
        env=server_env(kind, redis_url, env),
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = HostServer(kind, port, process, log_path, log, host)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


# gunicorn's "ready" answer comes from the first worker that loaded the app; the others may still
# be importing, and on a small machine that CPU contention starves the first worker's event loop
# (a burst then meets Redis connect timeouts). This hook makes each worker say when it is ready.
WORKER_READY = "dcr-it: worker ready"
_READY_HOOK = f"""
import sys


def post_worker_init(worker):
    sys.stderr.write("{WORKER_READY} %d\\n" % worker.pid)
    sys.stderr.flush()
"""


def gunicorn_ready_hook(directory: Path) -> list[str]:
    """gunicorn arguments adding the :data:`WORKER_READY` hook (a config file in ``directory``)."""
    path = directory / "dcr_it_ready_hook.py"
    path.write_text(_READY_HOOK)
    return ["-c", str(path)]


def wait_workers_ready(server: Server, workers: int, timeout: float = READY_TIMEOUT) -> None:
    """Wait until ``workers`` gunicorn workers started with :func:`gunicorn_ready_hook` have
    loaded the app."""
    deadline = time.monotonic() + timeout
    while server.output().count(WORKER_READY) < workers:
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{workers} {server.kind} workers not ready:\n{server.output()}")
        time.sleep(0.05)
