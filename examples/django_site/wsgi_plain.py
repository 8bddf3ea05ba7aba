"""The Django project's WSGI application as Django writes it, wrapped by naming it in ``DCR_APP``.

Run it from the repository root (``pip install django '.[server]'``)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    DCR_APP=django_site.wsgi_plain:application gunicorn --chdir examples dcr_middleware.wsgi:app

This file is what ``django-admin startproject`` writes into ``wsgi.py``: no code change, the
middleware is added by the server command. ``dcr_middleware.wsgi:app`` imports this module at
server start and wraps ``application``. The ASGI equivalent names an unwrapped
``get_asgi_application()`` in ``DCR_APP`` and serves ``dcr_middleware.asgi:app``.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_site.settings")

application = get_wsgi_application()
