"""A WSGI app that knows nothing of the middleware: it is wrapped by naming it in ``DCR_APP``.

Run it from the repository root (``pip install '.[server]'``)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    DCR_APP=plain_wsgi:app gunicorn --chdir examples dcr_middleware.wsgi:app

``dcr_middleware.wsgi:app`` imports ``plain_wsgi:app`` at server start and wraps it: ``POST
/register`` is answered by the middleware, everything else by this app. A Django project works
the same way with ``DCR_APP=myproject.wsgi:application`` (see ``django_site/wsgi_plain.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b"hello from the plain WSGI app\n"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]
