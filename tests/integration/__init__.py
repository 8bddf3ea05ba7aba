"""Integration tests: real redis-server, real uvicorn and gunicorn processes, loopback only."""
