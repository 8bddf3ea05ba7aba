"""A minimal Django project served with dynamic client registration (see ``wsgi.py``, ``asgi.py``).

No database and no installed apps: a view for ``/`` and the RFC 8414 metadata in ``views.py``.
"""
