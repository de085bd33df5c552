"""Shared fixtures: a fresh PostgreSQL database and a private Redis database per test run.

The admin URL comes from AEGIS_TEST_ADMIN_DATABASE_URL (default: the local server on 127.0.0.1:5432 as postgres);
the test command starts an embedded server there when none answers. Redis: AEGIS_TEST_REDIS_URL (default
redis://127.0.0.1:6379) with a database number picked per run and flushed at both ends.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis import testing

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AEGIS_SHARED_DATA", REPO.parent / "shared" / "data"))


# Binance is unreachable here and tests must not even try: every process a test starts inherits these loopback
# endpoints (port 9, discard, has no listener), unless the test points them at the simulator.
LOOPBACK_BINANCE = {
    "AEGIS_BINANCE_REST_URL": "http://127.0.0.1:9",
    "AEGIS_BINANCE_WS_MARKET_URL": "ws://127.0.0.1:9/market",
    "AEGIS_BINANCE_WS_PUBLIC_URL": "ws://127.0.0.1:9/public",
}
os.environ.update(LOOPBACK_BINANCE)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real recordings not found at {SHARED_DATA} (set AEGIS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def admin_dsn() -> str:
    return os.environ.get("AEGIS_TEST_ADMIN_DATABASE_URL", testing.DEFAULT_ADMIN_DSN)


@pytest.fixture(scope="session")
def database_url(admin_dsn: str) -> Iterator[str]:
    """A fresh, empty database for this test run, dropped at the end."""
    dsn = testing.create_database_sync(admin_dsn, "aegis_test_run")
    yield dsn
    testing.drop_database_sync(admin_dsn, dsn)


@pytest.fixture
def fresh_database_url(admin_dsn: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    dsn = testing.create_database_sync(admin_dsn)
    yield dsn
    testing.drop_database_sync(admin_dsn, dsn)


@pytest.fixture(scope="session")
def migrated_database_url(database_url: str) -> str:
    from aegis.storage.migrate import migrate
    from aegis.storage.postgres import connect_once

    async def run() -> None:
        conn = await connect_once(database_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    return database_url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    import redis

    base = os.environ.get("AEGIS_TEST_REDIS_URL", testing.DEFAULT_REDIS_URL).rstrip("/")
    url = f"{base}/{random.randint(1, 15)}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def service_env(migrated_database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a service process on the run's database and Redis."""
    return {
        "DATABASE_URL": migrated_database_url,
        "REDIS_URL": redis_url,
        "AEGIS_HOME": str(tmp_path / "home"),
    }
