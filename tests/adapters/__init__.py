"""Adapter tests: both middlewares over httpx transports and raw ASGI/WSGI harnesses."""
