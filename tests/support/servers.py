"""uvicorn and gunicorn processes serving the test apps (``tests/integration/apps``), on loopback.

Every server is started by :func:`.processes.spawn` (its own process group, reaped if the test
cannot stop it) and waited for until it answers; its output goes to a log file the test can read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import gunicorn
import httpx

from . import processes
from .processes import HOST, free_port, free_port_on

APPS_DIR = Path(__file__).parent.parent / "integration" / "apps"
APP_BODY = b"hello from the wrapped app\n"  # dcr_it_apps.BODY
GUNICORN_VERSION: tuple[int, ...] = tuple(gunicorn.version_info)
READY_TIMEOUT = 30.0

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
    """An HTTP server process (uvicorn, gunicorn, an example app) on ``host:port``."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]
    host: str = HOST

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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
        processes.stop(self.process)
        self._log.close()


HostServer = Server  # a server bound to another address than 127.0.0.1 (e.g. ``::1``)


def launch(
    kind: str,
    argv: Sequence[str],
    *,
    port: int,
    directory: Path,
    env: Mapping[str, str],
    cwd: Path | None = None,
    host: str = HOST,
) -> Server:
    """Start ``argv`` (an HTTP server listening on ``host:port``), its output in
    ``directory/<kind>-<port>.log``, and wait until ``GET /`` answers; the caller stops it."""
    log_path = directory / f"{kind}-{port}.log"
    log = log_path.open("wb")
    try:
        process = processes.spawn(
            argv,
            marker="server",
            # A gunicorn master stops its workers on SIGTERM; SIGKILL would orphan them.
            death_signal=signal.SIGTERM,
            env=dict(env),
            cwd=cwd or directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    except BaseException:  # refused (a missing marker) or not started: no log file left open
        log.close()
        raise
    server = Server(kind, port, process, log_path, log, host)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def start_server(
    kind: str,
    directory: Path,
    redis_url: str | None,
    env: Mapping[str, str] | None = None,
    log_level: str = "info",
    args: Sequence[str] = (),
) -> Server:
    """Start a server of ``kind`` on a free port; the caller stops it (see :mod:`.fixtures`)."""
    port = free_port()
    argv = server_command(kind, port, log_level, args)
    return launch(kind, argv, port=port, directory=directory, env=server_env(kind, redis_url, env))


def start_server_on(
    kind: str,
    directory: Path,
    redis_url: str | None,
    host: str,
    env: Mapping[str, str] | None = None,
    log_level: str = "info",
    args: Sequence[str] = (),
) -> Server:
    """:func:`start_server`, bound to ``host``; the caller stops it."""
    port = free_port_on(host)
    argv = server_command(kind, port, log_level, args)
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    argv = [bind if a == f"{HOST}:{port}" else host if a == HOST else a for a in argv]
    environ = server_env(kind, redis_url, env)
    return launch(kind, argv, port=port, directory=directory, env=environ, host=host)


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
