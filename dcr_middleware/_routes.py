"""Does the wrapped app serve ``DCR_PATH`` itself? Asked where the framework can say: Starlette
and FastAPI routes, Flask's ``url_map``, Django's URL resolver.

``/register`` is the MCP convention for the registration endpoint, and also the most common
path of a web app's own sign-up page. The middleware answers ``POST DCR_PATH`` (and CORS
preflights there): an app's sign-up form posting to the same path would never be reached, and
its users would get a ``415``. Best effort: an app the helpers cannot read is not reported.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from .core.settings import Settings

logger = logging.getLogger("dcr_middleware")

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ANY = ("any method",)
_MAX_DEPTH = 32  # middleware layers walked through ``.app`` to the router


def served_methods(app: Any, path: str) -> tuple[str, ...] | None:
    """The methods ``app`` serves at ``path`` (:data:`ANY` when its route takes every method),
    or ``None`` when it serves nothing there or cannot say."""
    for _ in range(_MAX_DEPTH):
        if app is None:
            return None
        target = getattr(app, "__self__", app)  # Flask's bound app.wsgi_app
        finder = _finder(target)
        if finder is not None:
            try:
                methods: tuple[str, ...] | None = finder(target, path)
                return methods
            except Exception:  # best effort: a framework that fails to answer says nothing
                return None
        app = getattr(app, "app", None)
    return None


def _finder(app: Any) -> Any:
    # Only frameworks already imported can have built ``app``: none is imported here.
    kinds = (
        ("flask.app", "Flask", _flask),
        ("django.core.handlers.base", "BaseHandler", _django),
        ("starlette.applications", "Starlette", _starlette),
        ("starlette.routing", "Router", _starlette),
    )
    for module, name, finder in kinds:
        kind = getattr(sys.modules.get(module), name, None)
        if kind is not None and isinstance(app, kind):
            return finder
    return None


def _starlette(app: Any, path: str) -> tuple[str, ...] | None:
    found: set[str] = set()
    for route in getattr(app, "routes", []):
        regex, prefix = getattr(route, "path_regex", None), getattr(route, "path", None)
        if hasattr(route, "routes") and prefix is not None and path.startswith(prefix + "/"):
            inner = _starlette(route, path[len(prefix) :])  # a Mount
            if inner == ANY:
                return ANY
            found.update(inner or ())
        elif regex is not None and regex.match(path) and hasattr(route, "methods"):
            found.update(route.methods or _endpoint_methods(route))
    return _ordered(found)


def _endpoint_methods(route: Any) -> set[str]:
    # Route(path, SomeHTTPEndpoint) has no methods list: the class's handlers say.
    endpoint = getattr(route, "endpoint", None)
    return {m for m in METHODS if hasattr(endpoint, m.lower())}


def _flask(app: Any, path: str) -> tuple[str, ...] | None:
    return _ordered(set(app.url_map.bind("localhost").allowed_methods(path)))


def _django(app: Any, path: str) -> tuple[str, ...] | None:
    urls: Any = importlib.import_module("django.urls")  # imported: Django built ``app``
    try:
        match = urls.resolve(path)
    except urls.Resolver404:
        return None
    view = getattr(match.func, "view_class", None)
    if view is None:  # a function view takes every method unless it checks
        return ANY
    methods = {m.upper() for m in view.http_method_names if hasattr(view, m)}
    return _ordered(methods | {"HEAD"} if "GET" in methods else methods)  # View.setup adds head


def _ordered(methods: set[str]) -> tuple[str, ...] | None:
    return tuple(m for m in METHODS if m in methods) or None


def collision(app: Any, settings: Settings) -> str | None:
    """A warning when ``app`` serves ``POST DCR_PATH``, which the middleware answers."""
    methods = served_methods(app, settings.path)
    if methods is None or (methods != ANY and "POST" not in methods):
        return None
    path = settings.path
    preflights = "" if settings.cors_origins == ("off",) else " and its CORS preflights"
    others = [m for m in methods if m not in ("POST", "OPTIONS")] if methods != ANY else []
    kept = ", ".join(others) if others else "its other methods" if methods == ANY else "nothing"
    return (
        f"the wrapped app serves {path} itself ({', '.join(methods)}); the middleware answers "
        f"POST {path} (client registration){preflights}, so the app's POST {path} is never "
        f"reached (the app still gets {kept}). If {path} is the app's own page (a sign-up "
        "form, say), set DCR_PATH to another path, e.g. DCR_PATH=/oauth/register"
    )


def warn_on_collision(app: Any, settings: Settings) -> bool:
    """Log :func:`collision`'s warning, if any; whether it did. Called when the middleware is
    built and, if it found nothing then, once more at the first request to ``DCR_PATH``: a Flask
    app is usually wrapped (``app.wsgi_app = ...``) before its routes are added."""
    message = collision(app, settings)
    if message is not None:
        logger.warning(message)
    return message is not None
