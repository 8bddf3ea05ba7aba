"""A gunicorn configuration for an app wrapped in the middleware (WSGI, or ASGI with ``-k``).

Run it from the repository root (``pip install flask '.[server]'``)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    gunicorn -c examples/gunicorn.conf.py --chdir examples flask_app:app

The same file serves the no-code-change entry points, e.g.
``DCR_APP=plain_wsgi:app gunicorn -c examples/gunicorn.conf.py --chdir examples
dcr_middleware.wsgi:app``, or an ASGI app with ``-k uvicorn_worker.UvicornWorker``.
Command-line options win over this file. Set ``DCR_REDIS_URL``: with several workers, the
embedded store would give each worker its own clients.
"""

import gc
import os

# Behind a reverse proxy on this host; use 0.0.0.0:8000 to listen on every interface.
bind = "127.0.0.1:8000"

# A registration holds its worker for one Redis round trip: threads keep serving meanwhile,
# and gthread keeps connections alive (the sync worker closes them after every response).
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "gthread"
threads = 4

# Import the app (and its frameworks) once in the master, then fork: workers share the
# memory and start faster. The middleware opens its Redis connections lazily, in each worker,
# so nothing opened before the fork is shared.
preload_app = True

# Trust no peer's X-Forwarded-* headers in gunicorn itself. Under uvicorn workers, gunicorn
# passes this on to uvicorn, which would otherwise rewrite the client address from
# X-Forwarded-For (from 127.0.0.1 by default) before the middleware runs. Let the middleware be
# the only reader: set DCR_TRUSTED_PROXIES to your proxies' addresses (docs/deployment.md,
# "Behind a reverse proxy"). Behind a TLS-terminating proxy, set DCR_ISSUER to your https URL
# so registration_client_uri is https.
forwarded_allow_ips = ""


def when_ready(server: object) -> None:
    """After the preloaded app is imported, before the workers fork.

    ``gc.freeze()`` moves everything imported so far out of the collector's view: full
    collections then skip the large import-time heap of the frameworks (in one measured server,
    the MCP SDK's, that cut the request latency p99 from ~90 ms to ~20 ms), and forked workers
    do not touch, and so do not copy, those pages when collecting.
    """
    gc.freeze()
