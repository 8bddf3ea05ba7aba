"""The Django project's WSGI application, wrapped in the WSGI middleware.

Run it from the repository root (``pip install django '.[server]'``)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    gunicorn --chdir examples django_site.wsgi:application

``POST /register`` is answered by ``DCRWSGIMiddleware`` before Django sees the request (no
Django middleware, CSRF check or URL routing applies to it); every other request goes to Django.
``manage.py runserver`` serves this object too, through the ``WSGI_APPLICATION`` setting.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from dcr_middleware import DCRWSGIMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_site.settings")

application = DCRWSGIMiddleware(get_wsgi_application())  # DCR_* read here, once
