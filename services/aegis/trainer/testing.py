"""Test kit of the trainer: a migrated throw-away database with real klines, and an in-process TrainerService.

Training data comes from :mod:`aegis.trainer.synthetic` (synthetic-from-real trades, labelled as such).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aegis import config, testing
from aegis.server import create_server
from aegis.storage.cache import Cache
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once
from aegis.trainer.runner import Trainer
from aegis.trainer.servicer import registration
from aegis.trainer.synthetic import Klines, insert_candles, load_klines

KLINES_DIR = "binance/signalbot/data"
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def real_klines(shared_data: Path, symbols: Sequence[str] = SYMBOLS) -> list[Klines]:
    """The real 10-day 1m klines of the shared recordings."""
    return [load_klines(shared_data / KLINES_DIR / f"{s}_1m.csv", s) for s in symbols]


def klines_database(admin_dsn: str, klines: Sequence[Klines], prefix: str = "aegis_trainer") -> str:
    """Create and migrate a throw-away database holding ``klines`` as 1m candles; return its URL."""
    dsn = testing.create_database_sync(admin_dsn, prefix)

    async def run() -> None:
        conn = await connect_once(dsn)
        try:
            await migrate(conn)
            await insert_candles(conn, klines)
        finally:
            await conn.close()

    asyncio.run(run())
    return dsn


def fixed_clock(when: dt.datetime):  # type: ignore[no-untyped-def]
    return lambda: when


@dataclass
class TrainerHarness:
    address: str
    trainer: Trainer
    db: Database
    cache: Cache


@asynccontextmanager
async def trainer_server(
    dsn: str, redis_url: str, settings: config.TrainerSettings | None = None, **overrides: object
) -> AsyncIterator[TrainerHarness]:
    """Serve TrainerService in this process on a loopback port (real gRPC, real PostgreSQL and Redis)."""
    trainer_settings = dataclasses.replace(settings or config.TrainerSettings(interval_s=0), **overrides)
    db = Database(dsn)
    cache = Cache(redis_url)
    trainer = Trainer(db, cache, trainer_settings)
    server, port, _ = create_server([registration(trainer)], "127.0.0.1", 0)
    await server.start()
    try:
        yield TrainerHarness(f"127.0.0.1:{port}", trainer, db, cache)
    finally:
        await server.stop(0)
        await trainer.close()
        await cache.close()
        await db.close()
