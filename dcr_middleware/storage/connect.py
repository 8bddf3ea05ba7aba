"""Building redis-py clients from :class:`~dcr_middleware.settings.Settings`.

One place decides which client a deployment gets (the sync one for WSGI and the CLI, the asyncio
one for ASGI) and with which timeouts and retry policy: a command is retried once, only after a
*connection* error, never after a timeout (where a write may have happened).
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from ..errors import ConfigurationError
from ..settings import Settings


def connection_options(settings: Settings) -> dict[str, Any]:
    """redis-py keyword arguments shared by the sync and async clients."""
    return {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "health_check_interval": 30,
        "decode_responses": True,
    }


def redis_url(settings: Settings) -> str:
    """``DCR_REDIS_URL``, required by every Redis client."""
    if settings.redis_url is None:
        raise ConfigurationError(["DCR_REDIS_URL: required by the Redis store"])
    return settings.redis_url


def sync_client(settings: Settings) -> redis.Redis:
    """The blocking client for ``settings`` (no socket is opened until the first command)."""
    return redis.Redis.from_url(
        redis_url(settings),
        retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),
        **connection_options(settings),
    )


def async_client(settings: Settings) -> redis.asyncio.Redis:
    """The asyncio client for ``settings`` (no socket is opened until the first command)."""
    return redis.asyncio.Redis.from_url(
        redis_url(settings),
        retry=AsyncRetry(NoBackoff(), 1, (RedisConnectionError,)),
        **connection_options(settings),
    )
