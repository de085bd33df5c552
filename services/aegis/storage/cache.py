"""Redis access: a redis-py asyncio client (hiredis parser) created inside the running process."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class Cache:
    """A Redis client with a health check; redis-py reconnects by itself after Redis returns."""

    def __init__(self, url: str, *, timeout_s: float = 1.0) -> None:
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            decode_responses=False,
        )

    async def check(self, timeout_s: float) -> bool:
        """Return True when Redis answers PING within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                return bool(await self.client.ping())
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("redis check failed: %s", exc)
            return False

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except (RedisError, OSError):
            pass
