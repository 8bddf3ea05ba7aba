"""Import the wrapped application named by ``DCR_APP`` (``module.path:attribute``)."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigurationError
from .settings import Settings


def load_wrapped_app(settings: Settings) -> Any:
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
