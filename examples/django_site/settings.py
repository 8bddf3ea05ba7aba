"""Django settings for the example project: no database, no installed apps, ``DEBUG`` off.

The dcr-middleware settings are not here: the middleware wraps Django's application object in
``wsgi.py`` / ``asgi.py`` and reads its ``DCR_*`` environment variables itself.
"""

from __future__ import annotations

import os

# DEMO DEFAULT, NOT A SECRET: set DJANGO_SECRET_KEY in any real deployment. This project signs
# nothing but the CSRF cookie, but a real one will sign sessions and password reset links too.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-demo-key-do-not-deploy")

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}

# Django's own middleware runs for Django's requests only: POST /register is answered by the
# wrapping middleware before Django sees it, so it needs no CSRF token (RFC 7591 registration is
# an unauthenticated JSON API).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "django_site.urls"
WSGI_APPLICATION = "django_site.wsgi.application"  # what manage.py runserver serves

USE_TZ = True
