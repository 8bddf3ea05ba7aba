"""Every process a test starts, and the reaper that makes sure none outlives pytest.

Theory of operation. :func:`spawn` starts each process in a session (and so a process group) of
its own, which is what lets the reaper kill a gunicorn master together with its workers, and keeps
a terminal's Ctrl-C away from the servers (pytest alone gets it, and stops them itself). The
group is registered in :data:`_LIVE` until :func:`stop` has ended it. Three ways out, three
guards:

* pytest ends normally or on an error: the fixture that started a process stops it; whatever is
  left is killed by :func:`reap` from ``pytest_unconfigure`` and ``atexit``;
* pytest gets ``SIGTERM`` or ``SIGINT``: the handler :func:`install_signal_handlers` sets kills
  every group at once (``SIGKILL``), then raises ``KeyboardInterrupt`` so that pytest still
  tears down and reports;
* pytest is killed (``SIGKILL``, the OOM killer): nothing of pytest runs, so on Linux each child
  asked the kernel to signal it when its parent dies (``prctl(PR_SET_PDEATHSIG)``).

No process is ever daemonized (``--daemonize yes`` would detach it from all three).

A process also says what it costs: :func:`spawn` takes the pytest marker (``redis`` or
``server``) that a test starting it must carry, and refuses to start it for a test without that
marker, so ``-m "not redis and not server"`` (``scripts/test.sh --quick``) starts none.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

HOST = "127.0.0.1"
STOP_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
MARKERS = ("redis", "server")


class MarkerError(Exception):
    """A test started a process without the marker that says what it costs."""


# Every process group started and not yet stopped, by its leader's pid (= the group id).
_LIVE: dict[int, subprocess.Popen[bytes]] = {}
# The marker names of the test now running (``None``: not under pytest, nothing to check).
_current_markers: Callable[[], set[str]] | None = None
_OWNER = os.getpid()
_libc: Any = None
if sys.platform == "linux":
    with contextlib.suppress(OSError):
        _libc = ctypes.CDLL(None, use_errno=True)


def set_current_test(markers: Callable[[], set[str]] | None) -> None:
    """Name the markers of the test now running (the reaper plugin calls this)."""
    global _current_markers
    _current_markers = markers


def _die_with_parent(parent: int, sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn``: the child gets ``sig`` when the thread that forked it ends.

    The kernel ties the death signal to the forking *thread*, so only children started from the
    main thread (where pytest runs tests and fixtures) ask for it; a worker thread's children
    are left to the reaper.
    """
    if _libc is None or threading.current_thread() is not threading.main_thread():
        return None
    libc = _libc

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os.kill(os.getpid(), sig)

    return preexec


def spawn(
    argv: Sequence[str],
    *,
    marker: str,
    death_signal: int = signal.SIGKILL,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new process group that the reaper kills if the test does not stop it.

    ``marker`` is the cost marker the test must carry (``redis``: a ``redis-server``; ``server``:
    uvicorn, gunicorn or another HTTP server). ``death_signal`` is what the process gets if
    pytest dies without a chance to reap it: ``SIGTERM`` for a gunicorn master (it then stops
    its workers), ``SIGKILL`` otherwise. Other keyword arguments go to :class:`subprocess.Popen`.
    """
    require_marker(marker, argv)
    process = subprocess.Popen(
        list(argv),
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid(), death_signal),
        **popen,
    )
    _LIVE[process.pid] = process
    return process


def require_marker(marker: str, argv: Sequence[str] = ()) -> None:
    """Raise :class:`MarkerError` when the running test lacks ``marker``."""
    if marker not in MARKERS:
        raise ValueError(f"unknown cost marker {marker!r}; one of {MARKERS}")
    if _current_markers is not None and marker not in _current_markers():
        what = os.path.basename(argv[0]) if argv else "a process"
        raise MarkerError(
            f"this test starts {what} ({' '.join(argv)[:120]}) but is not marked "
            f"@pytest.mark.{marker}: mark it, so that the quick tier leaves it out"
        )


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the process and wait for it (``SIGKILL`` after :data:`STOP_TIMEOUT`);
    then kill what is left of its group (e.g. workers whose master is gone)."""
    try:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill_group(process.pid)
                process.wait(timeout=STOP_TIMEOUT)
        _kill_group(process.pid)
    finally:
        _LIVE.pop(process.pid, None)


def run(
    argv: Sequence[str], *, marker: str, timeout: float, **popen: Any
) -> subprocess.CompletedProcess[bytes]:
    """:func:`subprocess.run` with ``capture_output=True`` through :func:`spawn`: on
    :data:`timeout` the whole group is killed and :class:`subprocess.TimeoutExpired` raised."""
    process = spawn(argv, marker=marker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(process.pid)
        exc.stdout, exc.stderr = process.communicate()
        raise
    finally:
        stop(process, signal.SIGKILL)
    return subprocess.CompletedProcess(list(argv), process.returncode, stdout, stderr)


def live_pids() -> list[int]:
    """The leaders of the groups started and not stopped yet."""
    return list(_LIVE)


def reap(wait: float = 5.0) -> None:
    """``SIGKILL`` every group still registered, and wait up to ``wait`` seconds for them."""
    if os.getpid() != _OWNER:  # a forked copy of pytest: the groups are not its to kill
        return
    processes = list(_LIVE.values())
    for process in processes:
        _kill_group(process.pid)
    deadline = time.monotonic() + wait
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        _LIVE.pop(process.pid, None)


def _on_termination(signum: int, frame: FrameType | None) -> None:
    # Kill first (nothing may outlive pytest), then let pytest unwind: its teardown finds the
    # processes gone, and it still reports what ran.
    reap(wait=1.0)  # SIGKILL takes milliseconds; waiting reaps the zombies too
    signal.signal(signum, signal.SIG_DFL)  # a second signal ends pytest at once
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def install_signal_handlers() -> None:
    """Reap on ``SIGTERM`` and ``SIGINT`` (from the main thread), and at interpreter exit."""
    atexit.register(reap)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _on_termination)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    return free_port_on(HOST)


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
