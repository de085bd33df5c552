"""PostgreSQL access: an asyncpg pool created inside the running process, never at import.

:class:`Database` connects lazily and keeps trying: a service starts while PostgreSQL is down, reports
NOT_SERVING, and recovers by itself when PostgreSQL comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from aegis.errors import DependencyUnavailable

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.InternalClientError,  # a connection lost while PostgreSQL shuts down
    # a query in flight when PostgreSQL stops or crashes ends with the server's FATAL 57P01/57P02 (or 57P05 when
    # it closes an idle session): the server went away, so the call may be retried like any lost connection
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.IdleSessionTimeoutError,
)


class Database:
    """A lazily created asyncpg pool with a health check."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10, connect_timeout_s: float = 2.0) -> None:
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        """Return the pool, creating it on first use; raise DependencyUnavailable when PostgreSQL does not answer."""
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=self._min_size,
                        max_size=self._max_size,
                        timeout=self._connect_timeout_s,
                        command_timeout=60,
                    )
                except _CONNECTION_ERRORS as exc:
                    raise DependencyUnavailable(f"PostgreSQL does not answer: {exc}") from exc
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self.pool()
        try:
            async with pool.acquire(timeout=self._connect_timeout_s) as conn:
                yield conn
        except _CONNECTION_ERRORS as exc:
            raise DependencyUnavailable(f"PostgreSQL connection failed: {exc}") from exc

    async def check(self, timeout_s: float) -> bool:
        """Return True when PostgreSQL answers ``SELECT 1`` within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                async with self.connection() as conn:
                    await conn.fetchval("SELECT 1")
            return True
        except (DependencyUnavailable, asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            log.debug("postgres check failed: %s", exc)
            await self.expire_connections()
            return False

    async def expire_connections(self) -> None:
        """Drop connections that may have died with the server; the pool reconnects on the next acquire."""
        if self._pool is not None:
            await self._pool.expire_connections()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 2.0)
            except (TimeoutError, *_CONNECTION_ERRORS):
                pool.terminate()


async def connect_once(dsn: str, timeout_s: float = 5.0) -> asyncpg.Connection:
    """Open one connection (for CLI commands); raise DependencyUnavailable with the reason when it fails."""
    try:
        return await asyncpg.connect(dsn, timeout=timeout_s)
    except _CONNECTION_ERRORS as exc:
        raise DependencyUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
