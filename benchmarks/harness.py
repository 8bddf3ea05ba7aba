"""Processes and measurements for the benchmark: redis-server, app servers, load, CPU time.

Everything runs on loopback, every wait is bounded in time, and every process started here is
stopped by whoever started it (``Stack.close``). Nothing here knows the cases; ``run.py`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
PYTHON = sys.executable
READY_TIMEOUT = 40.0
STOP_TIMEOUT = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; everything after its ")" is space-separated.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (from ``/proc/*/stat`` parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, in seconds (a process gone counts 0)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / CLK_TCK


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout:.0f}s")


@dataclass
class RedisServer:
    """A throw-away redis-server: loopback, free port, no persistence, its own temp dir."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            executable,
            "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        log = (self.directory / "redis.log").open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.process, 10.0)
        self.client().ping()

    def url(self, db: int = 0) -> str:
        """The ``redis://`` URL of database ``db``."""
        return f"redis://{HOST}:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        """A new blocking admin client."""
        return redis.Redis(host=HOST, port=self.port, db=db, socket_timeout=30)

    def cpu(self) -> float:
        """redis-server's own CPU seconds so far."""
        assert self.process is not None
        return cpu_seconds([self.process.pid])

    def version(self) -> str:
        """The server version from INFO."""
        return str(self.client().info("server")["redis_version"])

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.process is not None:
            _stop(self.process)


@dataclass(frozen=True)
class ServerSpec:
    """One app server: ``kind`` is uvicorn, gunicorn-asgi, gunicorn-gthread or gunicorn-sync."""

    name: str
    kind: str
    target: str
    env: tuple[tuple[str, str], ...] = ()

    @property
    def workers(self) -> int:
        """Worker processes (uvicorn: the one process)."""
        return 1 if self.kind == "uvicorn" else 2

    @property
    def label(self) -> str:
        """A short description for the table."""
        return {
            "uvicorn": "uvicorn 1w",
            "gunicorn-asgi": "gunicorn 2w uvicorn-worker",
            "gunicorn-gthread": "gunicorn 2w gthread(4)",
            "gunicorn-sync": "gunicorn 2w sync",
        }[self.kind]

    def command(self, port: int) -> list[str]:
        """The command line that serves ``target`` on ``port``."""
        if self.kind == "uvicorn":
            return [
                PYTHON, "-m", "uvicorn", self.target, "--app-dir", str(APPS),
                "--host", HOST, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
        worker = {
            "gunicorn-asgi": ["-k", "uvicorn_worker.UvicornWorker"],
            "gunicorn-gthread": ["-k", "gthread", "--threads", "4"],
            "gunicorn-sync": ["-k", "sync"],
        }[self.kind]
        return [
            PYTHON, "-m", "gunicorn", self.target, "--chdir", str(APPS),
            "-b", f"{HOST}:{port}", "-w", "2", *worker, "--log-level", "warning",
        ]  # fmt: skip


@dataclass
class Server:
    """A running app server."""

    spec: ServerSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://{HOST}:{self.port}"

    def pids(self) -> list[int]:
        """The server's process tree (master and workers)."""
        return process_tree(self.process.pid)

    def cpu(self) -> float:
        """CPU seconds of the whole process tree."""
        return cpu_seconds(self.pids())

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until it listens and, for gunicorn, until every worker answers."""
        deadline = time.monotonic() + timeout
        _wait_port(self.port, self.process, timeout)
        while len(self.pids()) < 1 + (self.spec.workers if self.spec.kind != "uvicorn" else 0):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.spec.name}: workers did not start")
            time.sleep(0.1)
        # A few requests so that each worker has imported and answered once.
        for _ in range(4 * self.spec.workers):
            request(self.url, "GET", "/", None, timeout=max(1.0, deadline - time.monotonic()))

    def signal_stop(self) -> None:
        """Ask it to stop (SIGTERM to the master) without waiting."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Stop it (SIGTERM to the master, then SIGKILL) and wait."""
        _stop(self.process)


def start_server(spec: ServerSpec, base_env: dict[str, str], directory: Path) -> Server:
    """Start ``spec`` on a free loopback port (not waiting for it)."""
    port = free_port()
    env = {**base_env, **dict(spec.env)}
    log_path = directory / f"{spec.name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        spec.command(port), env=env, cwd=str(APPS), stdout=log, stderr=subprocess.STDOUT
    )
    return Server(spec, port, process, log_path)


def request(
    base_url: str, method: str, path: str, body: bytes | None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """One HTTP request on a new connection: (status, body)."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class LoadResult:
    """One timed load run."""

    tool: str
    requests: int
    seconds: float
    non_2xx: int
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        """Requests per second (every answered request, whatever its status)."""
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "tool": self.tool,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "non_2xx": self.non_2xx,
            "errors": self.errors,
            "server_cpu_s": round(self.server_cpu_s, 3),
            "redis_cpu_s": round(self.redis_cpu_s, 3),
        }


_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d," ..
    "\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50\\":%d,\\"p99\\":%d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_script(directory: Path, name: str, method: str, body: bytes | None) -> Path:
    """A wrk Lua script: method, body and headers, and a ``done`` that prints JSON."""
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        text = body.decode()
        assert "]==]" not in text
        lines += [f"wrk.body = [==[{text}]==]", 'wrk.headers["Content-Type"] = "application/json"']
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n" + _WRK_DONE)
    return path


def have_wrk() -> bool:
    """Whether ``wrk`` is on PATH."""
    return shutil.which("wrk") is not None


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> LoadResult:
    """``wrk -t1 -c<connections> -d<seconds>s`` with ``script``, bounded in time."""
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
    match = re.search(r"^BENCHJSON (\{.*\})$", out.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    data = json.loads(match.group(1))
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return LoadResult(
        tool="wrk",
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        non_2xx=data["status"],
        errors=errors,
        p50_ms=data["p50"] / 1000,
        p99_ms=data["p99"] / 1000,
    )


def run_pyload(
    url: str, method: str, body: bytes | None, seconds: int, connections: int, directory: Path
) -> LoadResult:
    """The bounded Python load generator (``pyload.py``) in its own process."""
    command = [
        PYTHON, str(HERE / "pyload.py"), "--url", url, "--method", method,
        "--seconds", str(seconds), "--connections", str(connections),
    ]  # fmt: skip
    if body is not None:
        body_path = directory / "pyload-body.json"
        body_path.write_bytes(body)
        command += ["--body-file", str(body_path)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return LoadResult(
        tool="pyload",
        requests=data["requests"],
        seconds=data["seconds"],
        non_2xx=data["non_2xx"],
        errors=data["errors"],
        p50_ms=data["p50_ms"],
        p99_ms=data["p99_ms"],
    )


@dataclass
class BurstResult:
    """``count`` requests sent at once, one connection each: latencies and statuses."""

    count: int
    seconds: float
    statuses: dict[int, int]
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def non_2xx(self) -> int:
        """Answers whose status is not 2xx."""
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "non_2xx": self.non_2xx,
            "errors": self.errors,
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
        }


async def _burst(port: int, path: str, body: bytes, count: int) -> tuple[list[Any], float]:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    opened = asyncio.Event()
    connected = 0

    async def one() -> tuple[int, float]:
        nonlocal connected
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            connected += 1  # counted, so that the others do not wait for it
            if connected == count:
                opened.set()
            raise
        try:
            connected += 1
            if connected == count:
                opened.set()
            await opened.wait()
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            await reader.read()  # Connection: close: the body ends with the connection
            return int(status_line.split()[1]), time.perf_counter() - started
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    return list(results), time.perf_counter() - started


def run_burst(url: str, path: str, body: bytes, count: int, deadline: float = 120.0) -> BurstResult:
    """Open ``count`` connections, then send one ``POST`` on each at once; bounded by
    ``deadline`` seconds. Latency runs from a request's send to its answer's end; a failed
    connection or an unreadable answer counts as an error."""
    port = int(url.rsplit(":", 1)[1])
    results, seconds = asyncio.run(asyncio.wait_for(_burst(port, path, body, count), deadline))
    answers = [r for r in results if isinstance(r, tuple)]
    statuses: dict[int, int] = {}
    for status, _ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = sorted(s for _, s in answers) or [0.0]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return BurstResult(
        count=count,
        seconds=seconds,
        statuses=statuses,
        errors=count - len(answers),
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=p99 * 1000,
    )
