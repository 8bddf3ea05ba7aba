"""The server entry points' support: import the application named by ``DCR_APP``
(``module.path:attribute``), tell whether it is WSGI or ASGI, and stop a server cleanly when the
configuration is bad.

``dcr_middleware.asgi:app`` and ``dcr_middleware.wsgi:app`` are looked up by the server when it
starts (by each gunicorn worker, or by the arbiter with ``--preload``). A bad configuration then
ends the process with one message on standard error and exit status :data:`STARTUP_FAILURE`,
never a traceback: 3 is uvicorn's own startup-failure status, and gunicorn's
``WORKER_BOOT_ERROR``, on which its arbiter stops instead of forking workers forever.
"""

from __future__ import annotations

import importlib
import inspect
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, Literal

from .core.errors import ConfigurationError
from .core.settings import Settings

STARTUP_FAILURE = 3

Interface = Literal["asgi", "wsgi"]
ENTRY_POINTS: dict[Interface, str] = {
    "asgi": "dcr_middleware.asgi:app",
    "wsgi": "dcr_middleware.wsgi:app",
}
_SERVERS: dict[Interface, str] = {
    "asgi": "uvicorn dcr_middleware.asgi:app",
    "wsgi": "gunicorn dcr_middleware.wsgi:app",
}


def import_app(settings: Settings) -> Any:
    """Import and return the object ``DCR_APP`` names; a clear error when it cannot."""
    if settings.app is None:
        raise ConfigurationError(
            [
                "DCR_APP: required to serve dcr_middleware.asgi:app or dcr_middleware.wsgi:app "
                "(e.g. DCR_APP=myproject.asgi:application)"
            ]
        )
    module_name, _, attribute = settings.app.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError([f"DCR_APP: cannot import {module_name!r}: {exc}"]) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                [f"DCR_APP: {module_name!r} has no attribute {attribute!r}"]
            ) from None
    if not callable(target):
        raise ConfigurationError([f"DCR_APP: {settings.app!r} is not a callable application"])
    return target


def app_interface(app: Any) -> Interface | None:
    """``"asgi"`` for a coroutine callable (ASGI 3: ``async def app(scope, receive, send)``),
    ``"wsgi"`` for a plain callable of two positional arguments (``environ,
    start_response``), ``None`` when the callable does not say."""
    call = app if inspect.isroutine(app) or inspect.isclass(app) else type(app).__call__
    if inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call):
        return "asgi"
    if inspect.isclass(app):
        return None
    try:
        parameters = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):
        return None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return None
    required = [p for p in positional if p.default is p.empty]
    return "wsgi" if len(required) <= 2 <= len(positional) else None


def mismatch(settings: Settings, app: Any, entry: Interface) -> str | None:
    """Why ``app`` cannot be served by the ``entry`` entry point, or ``None``."""
    found = app_interface(app)
    if found is None or found == entry:
        return None
    return (
        f"DCR_APP: {settings.app!r} is {'an' if found == 'asgi' else 'a'} {found.upper()} "
        "application but "
        f"{ENTRY_POINTS[entry]} serves {entry.upper()}: serve it with {ENTRY_POINTS[found]} "
        f"({_SERVERS[found]})"
    )


def load_wrapped_app(settings: Settings, entry: Interface | None = None) -> Any:
    """:func:`import_app`, refusing an app of the other interface than ``entry``."""
    app = import_app(settings)
    problem = None if entry is None else mismatch(settings, app, entry)
    if problem is not None:
        raise ConfigurationError([problem])
    return app


def entry_app(build: Callable[[], Any]) -> Any:
    """Run ``build`` for a server entry point; on a bad configuration, write its message to
    standard error and exit with :data:`STARTUP_FAILURE` (no traceback).

    gunicorn workers boot together and fail together; when two exit 3 at about the same time,
    gunicorn's arbiter, already halting for the first, raises again and exits 1 with a
    traceback of its own. So the workers of one arbiter elect the first to fail: it reports and
    exits 3; each other one waits, silent, until the arbiter has reaped the first (and so is
    halting), then exits 0. Should that not happen within :data:`_HALT_WAIT` seconds, it
    reports and exits 3 itself.
    """
    try:
        return build()
    except ConfigurationError as exc:
        message = f"{exc}\n"
    if _in_gunicorn_worker():
        first = _first_failure(os.getppid())
        if first is not None:
            _await_reaped(first, _HALT_WAIT)
    sys.stderr.write(message)
    sys.stderr.flush()
    raise SystemExit(STARTUP_FAILURE) from None


def leave_report_to_first_failure() -> None:
    """In a gunicorn worker whose startup failed some other way than :func:`entry_app` (the
    lifespan startup of a lazily built Starlette stack, which uvicorn's worker ends with status
    3 itself): return in the first worker of its arbiter to fail, which reports; end every other
    one with status 0, once the arbiter has reaped the first (the same election as
    :func:`entry_app`, so that gunicorn sees one status 3). Outside gunicorn, return.

    ``os._exit``: a ``SystemExit`` raised here, inside the lifespan, would be taken by uvicorn
    for an app without lifespan support, and the worker would start."""
    if not _in_gunicorn_worker():
        return
    first = _first_failure(os.getppid())
    if first is None:
        return
    try:
        _await_reaped(first, _HALT_WAIT)
    except SystemExit:
        sys.stderr.flush()
        os._exit(0)


_HALT_WAIT = 30.0
_FRESH = 60.0  # seconds a failure mark counts when the arbiter's start time cannot be read


def _in_gunicorn_worker() -> bool:
    # gunicorn loads the app from Worker.init_process (not in the arbiter, unless --preload).
    frame = sys._getframe()
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if frame.f_code.co_name == "init_process" and module.startswith("gunicorn.workers"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _first_failure(arbiter: int) -> int | None:
    """``None`` when this worker is the first of ``arbiter``'s to fail, else the first one's
    pid. The mark is a file in the temporary directory, read and written under an exclusive
    lock, naming the arbiter and its start time (so that a reused pid sees no old mark)."""
    try:
        import fcntl
    except ImportError:  # no gunicorn there either
        return None
    path = os.path.join(tempfile.gettempdir(), f"dcr-middleware-{arbiter}.startup-failed")
    identity = f"{arbiter} {_start_time(arbiter)}"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError:
        return None
    with os.fdopen(fd, "r+", encoding="ascii", errors="replace") as mark:
        if os.fstat(fd).st_uid != os.getuid():  # someone else's file: do not trust it
            return None
        fcntl.flock(fd, fcntl.LOCK_EX)
        seen, _, first = mark.read().rpartition(" ")
        fresh = _start_time(arbiter) != "" or time.time() - os.fstat(fd).st_mtime < _FRESH
        if seen == identity and fresh and first.isdigit():
            return int(first)
        mark.seek(0)
        mark.truncate()
        mark.write(f"{identity} {os.getpid()}")
        return None


def _start_time(pid: int) -> str:
    """The start time of process ``pid`` (Linux ``/proc``), or ``""``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def _await_reaped(pid: int, seconds: float) -> None:
    """Wait until process ``pid`` is gone (a zombie still answers ``kill(pid, 0)`` until its
    parent reaps it) and exit 0; a ``SIGTERM`` (the arbiter halting) exits 0 too."""

    def halted(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    # The handler is the worker's only while it waits: the arbiter's SIGTERM often comes while
    # the interpreter shuts down after this returns or exits, and a SystemExit raised there is
    # printed as a traceback ("Exception ignored in threading._shutdown").
    previous = signal.signal(signal.SIGTERM, halted)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                raise SystemExit(0) from None
            except PermissionError:  # pid reused by another user's process: the first is gone
                raise SystemExit(0) from None
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
