"""Adapter tests: both middlewares driven in-process through httpx's ASGI and WSGI transports."""
