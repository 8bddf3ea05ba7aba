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
import sys
from collections.abc import Callable
from typing import Any, Literal

from .errors import ConfigurationError
from .settings import Settings

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
    standard error and exit with :data:`STARTUP_FAILURE` (no traceback)."""
    try:
        return build()
    except ConfigurationError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.stderr.flush()
        raise SystemExit(STARTUP_FAILURE) from None
