"""The Django project's ASGI application, wrapped in the ASGI middleware.

Run it from the repository root (``pip install django '.[server]'``)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    uvicorn --no-proxy-headers --app-dir examples django_site.asgi:application

``POST /register`` is answered by ``DCRMiddleware`` before Django sees the request; every other
request goes to Django. Django does not speak the ASGI lifespan protocol: uvicorn logs
``ASGI 'lifespan' protocol appears unsupported.`` at startup, which is expected. Under gunicorn,
add ``-k uvicorn_worker.UvicornWorker``.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from dcr_middleware import DCRMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_site.settings")

application = DCRMiddleware(get_asgi_application())  # DCR_* read here, once
