"""Nothing a test run starts outlives it, however pytest ends.

Each case runs pytest in a subprocess on a probe test that starts a ``redis-server``, a Redis
Cluster, a Sentinel group, a uvicorn and a gunicorn (two workers) through the shared fixtures,
then stops that pytest with ``SIGTERM``, ``SIGINT`` or ``SIGKILL`` in the middle of the test.
Within 5 s of its exit no process it started may remain. Its processes are found in ``/proc``
by what they cannot shed: a token in their environment (uvicorn, gunicorn and its workers) or
a working directory under the run's temporary directory (``redis-server`` rewrites its
environment block for its process title, but works in its ``--dir``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from support import processes

pytestmark = [
    pytest.mark.redis,
    pytest.mark.server,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc"),
]

TESTS_DIR = Path(__file__).parent.parent
STARTUP_TIMEOUT = 120.0  # the probe starts 13 processes, on a shared 2-core machine
EXIT_TIMEOUT = 60.0
GONE_WITHIN = 5.0  # issue 10: "gone within 5 s of pytest exiting"
# 1 redis-server, 3 cluster nodes, master + replica + 3 Sentinels, uvicorn, gunicorn + 2 workers.
STARTED = 13

PROBE = """
import os
import time
from pathlib import Path

import pytest
from support import SentinelGroup, redis_executable

pytestmark = [pytest.mark.redis, pytest.mark.server]


def test_probe(redis_server, redis_cluster, serve, tmp_path):
    group = SentinelGroup(redis_executable(), tmp_path / "sentinel")
    try:
        group.start()
        serve("uvicorn", redis_server.url)
        serve("gunicorn", redis_server.url)
        Path(os.environ["LEAK_PROBE_READY"]).write_text("started")
        time.sleep(600)
    finally:
        group.stop()
"""


def _probe_processes(token: bytes, base: Path) -> list[int]:
    """Live (not zombie) processes with ``token`` in their environment or working under
    ``base``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rpartition(")")[2].split()[0] == "Z":
                continue
            environ = (entry / "environ").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone meanwhile, or not ours
            continue
        if token in environ.split(b"\0") or Path(cwd).is_relative_to(base):
            found.append(int(entry.name))
    return found


def _describe(pids: list[int]) -> str:
    lines = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            lines.append(f"{pid}: {b' '.join(argv).decode(errors='replace')}")
        except OSError:
            lines.append(f"{pid}: (gone)")
    return "\n".join(lines)


SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGKILL]


@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_reaper_leaves_no_process_when_pytest_is_stopped(tmp_path: Path, sig: int) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    redis\n    server\n")
    base = tmp_path / "basetemp"
    ready = tmp_path / "ready"
    secret = uuid.uuid4().hex
    token = f"LEAK_PROBE_TOKEN={secret}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DCR_", "PYTEST_"))}
    env |= {"LEAK_PROBE_TOKEN": secret, "LEAK_PROBE_READY": str(ready)}
    env["PYTHONPATH"] = str(TESTS_DIR)
    argv = [sys.executable, "-m", "pytest", "-c", str(tmp_path / "pytest.ini")]
    argv += ["--rootdir", str(tmp_path), "--basetemp", str(base), "-p", "no:cacheprovider"]
    argv += ["-p", "support.reaper", "-p", "support.fixtures", "-q", "test_probe.py"]
    log = (tmp_path / "pytest.log").open("wb")
    pytest_run = processes.spawn(
        argv, marker="redis", env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready.exists():
            output = (tmp_path / "pytest.log").read_text(errors="replace")
            assert pytest_run.poll() is None, f"the probe run ended early:\n{output}"
            assert time.monotonic() < deadline, f"the probe did not start in time:\n{output}"
            time.sleep(0.2)
        started = _probe_processes(token.encode(), base)
        assert len(started) >= STARTED, _describe(started)

        pytest_run.send_signal(sig)
        returncode = pytest_run.wait(timeout=EXIT_TIMEOUT)
        exited = time.monotonic()
        # pytest reports an interrupted run (2); SIGKILL leaves it no say.
        assert returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 2)

        left = _probe_processes(token.encode(), base)
        while left and time.monotonic() - exited < GONE_WITHIN:
            time.sleep(0.1)
            left = _probe_processes(token.encode(), base)
        assert not left, f"still running {GONE_WITHIN} s after pytest exited:\n{_describe(left)}"
    finally:
        processes.stop(pytest_run, signal.SIGKILL)
        log.close()
        for pid in _probe_processes(token.encode(), base):  # never leave them to the next test
            os.kill(pid, signal.SIGKILL)
