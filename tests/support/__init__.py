"""Test support shared by every test folder: real processes (:mod:`.processes`,
:mod:`.redis_servers`, :mod:`.servers`), raw HTTP (:mod:`.rawhttp`), stored records
(:mod:`.records`), and the fixtures and reaper plugins (:mod:`.fixtures`, :mod:`.reaper`) that
``tests/conftest.py`` loads.

No test folder imports another folder's conftest or tests; what they share lives here.
"""

from __future__ import annotations

from .processes import (
    HOST,
    free_port,
    free_port_on,
    ipv6_loopback_available,
)
from .rawhttp import (
    CONFIDENTIAL,
    JSON,
    PUBLIC,
    RawResponse,
    exchange,
    post_many,
    raw_post,
    register,
    send_concurrently,
)
from .records import assert_complete, every_value, new_client, stored_records
from .redis_servers import (
    READY_TIMEOUT,
    SENTINEL_MASTER,
    Cluster,
    Node,
    RedisServer,
    SentinelGroup,
    redis_executable,
    redis_server_path,
    wait_for,
)
from .servers import (
    APP_BODY,
    APPS_DIR,
    GUNICORN_VERSION,
    KINDS,
    HostServer,
    Server,
    gunicorn_ready_hook,
    launch,
    server_command,
    server_env,
    start_server,
    start_server_on,
    wait_workers_ready,
)

__all__ = [
    "APPS_DIR",
    "APP_BODY",
    "CONFIDENTIAL",
    "GUNICORN_VERSION",
    "HOST",
    "JSON",
    "KINDS",
    "PUBLIC",
    "READY_TIMEOUT",
    "SENTINEL_MASTER",
    "Cluster",
    "HostServer",
    "Node",
    "RawResponse",
    "RedisServer",
    "SentinelGroup",
    "Server",
    "assert_complete",
    "every_value",
    "exchange",
    "free_port",
    "free_port_on",
    "gunicorn_ready_hook",
    "ipv6_loopback_available",
    "launch",
    "new_client",
    "post_many",
    "raw_post",
    "redis_executable",
    "redis_server_path",
    "register",
    "send_concurrently",
    "server_command",
    "server_env",
    "start_server",
    "start_server_on",
    "stored_records",
    "wait_for",
    "wait_workers_ready",
]
