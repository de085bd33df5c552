"""Retention on real PostgreSQL: only rows older than their rule's age go, a bounded batch per transaction."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from aegis import config, testing
from aegis.orchestrator import maintenance, retention
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once

NOW = dt.datetime(2026, 11, 15, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def dsn(admin_dsn: str) -> Iterator[str]:
    name = testing.create_database_sync(admin_dsn, "aegis_orch_retention")

    async def run() -> None:
        conn = await connect_once(name)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    yield name
    testing.drop_database_sync(admin_dsn, name)


@pytest_asyncio.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    database = Database(dsn)
    yield database
    await database.close()


async def seed(db: Database) -> None:
    candles = []

    def candle(timeframe: str, age: dt.timedelta, n: int) -> None:
        for i in range(n):
            open_time = NOW - age - dt.timedelta(minutes=i)
            candles.append(("BTCUSDT", timeframe, open_time, open_time + dt.timedelta(seconds=59), 1, 2, 0.5, 1.5, 10))

    candle("1m", dt.timedelta(days=31), 7)  # older than 30 days: go
    candle("1m", dt.timedelta(days=29), 2)  # kept
    candle("5m", dt.timedelta(days=400), 2)  # older than 365 days: go
    candle("5m", dt.timedelta(days=100), 1)  # older than 30 days, but larger timeframes are kept 365: kept
    candle("1h", dt.timedelta(days=31), 1)  # kept
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO candles (symbol, timeframe, open_time, close_time, open, high, low, close, volume) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            candles,
        )
        events = [("orchestrator", "test", NOW - dt.timedelta(days=40 + i)) for i in range(5)]
        events.append(("orchestrator", "test", NOW - dt.timedelta(days=1)))
        await conn.executemany("INSERT INTO service_events (service, kind, created_at) VALUES ($1, $2, $3)", events)


async def counts(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT timeframe, count(*) AS n FROM candles GROUP BY timeframe")
        events = await conn.fetchval("SELECT count(*) FROM service_events")
    return {**{r["timeframe"]: r["n"] for r in rows}, "events": events}


def settings(**env: str) -> config.OrchestratorSettings:
    return config.load(env={"AEGIS_ORCHESTRATOR_RETENTION_BATCH_ROWS": "3", **env}).orchestrator


async def test_retention_deletes_only_old_rows_in_batches(db: Database) -> None:
    await seed(db)
    assert await counts(db) == {"1m": 9, "5m": 3, "1h": 1, "events": 6}

    dry = await retention.run(db, settings(), NOW, dry_run=True)
    assert [(r.rule, r.deleted, r.batch_sizes) for r in dry] == [
        ("candles 1m", 7, ()),
        ("candles 5m and larger", 2, ()),
        ("service_events", 5, ()),
    ]
    assert await counts(db) == {"1m": 9, "5m": 3, "1h": 1, "events": 6}  # a dry run deletes nothing

    done = await retention.run(db, settings(), NOW)
    assert [(r.rule, r.deleted, r.batch_sizes) for r in done] == [
        ("candles 1m", 7, (3, 3, 1)),  # never more than AEGIS_ORCHESTRATOR_RETENTION_BATCH_ROWS per transaction
        ("candles 5m and larger", 2, (2,)),
        ("service_events", 5, (3, 2)),
    ]
    assert done[0].cutoff == NOW - dt.timedelta(days=30)
    assert await counts(db) == {"1m": 2, "5m": 1, "1h": 1, "events": 1}
    async with db.connection() as conn:
        oldest_1m = await conn.fetchval("SELECT min(open_time) FROM candles WHERE timeframe = '1m'")
    assert oldest_1m > NOW - dt.timedelta(days=30)

    again = await retention.run(db, settings(), NOW)
    assert sum(r.deleted for r in again) == 0


async def test_an_age_of_zero_keeps_rows_forever(db: Database) -> None:
    await seed(db)
    kept = settings(AEGIS_ORCHESTRATOR_RETENTION_1M_DAYS="0", AEGIS_ORCHESTRATOR_RETENTION_EVENTS_DAYS="0")
    done = await retention.run(db, kept, NOW)
    assert [(r.rule, r.cutoff is None, r.deleted) for r in done] == [
        ("candles 1m", True, 0),
        ("candles 5m and larger", False, 2),
        ("service_events", True, 0),
    ]
    assert await counts(db) == {"1m": 9, "5m": 1, "1h": 1, "events": 6}


async def test_retention_as_a_maintenance_task_reports_what_went(db: Database, dsn: str) -> None:
    await seed(db)
    full = config.load(env={"DATABASE_URL": dsn, "AEGIS_ORCHESTRATOR_RETENTION_BATCH_ROWS": "4"})
    work = maintenance.Maintenance(full, db, None, None, clock=lambda: NOW)
    result = await work.run_task(maintenance.RETENTION)
    assert result.status == maintenance.SUCCEEDED and result.items_affected == 14
    assert result.summary == (
        "candles 1m: deleted 7 rows before 2026-10-16 12:00Z in 2 batches; "
        "candles 5m and larger: deleted 2 rows before 2025-11-15 12:00Z in 1 batches; "
        "service_events: deleted 5 rows before 2026-10-16 12:00Z in 2 batches"
    )
