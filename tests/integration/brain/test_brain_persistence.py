"""The brain's candle persistence and cold start against real PostgreSQL and Redis (aegis.brain.persistence)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import numpy as np
import pandas as pd
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from aegis import testing
from aegis.brain.candles import CandleBook
from aegis.brain.events import Candle
from aegis.brain.market import MarketQueries
from aegis.brain.persistence import CandleStore, CandleWriter, Hydrator
from aegis.brain.timeframes import TIMEFRAME_NAMES
from aegis.core import records as rec
from aegis.exchange.rest import BinanceRest
from aegis.storage import keys
from aegis.storage.cache import Cache
from aegis.storage.postgres import Database
from aegis.v1 import common_pb2 as common_pb

MIN = 60_000
T0 = 1_749_168_000_000  # 2025-06-06 00:00 UTC


def candle(symbol: str, i: int, *, price: float = 10.0, source: str = "stream", partial: bool = False,
           timeframe: str = "1m", width: int = MIN) -> Candle:  # fmt: skip
    return Candle(symbol=symbol, timeframe=timeframe, open_time_ms=T0 + i * width,
                  close_time_ms=T0 + (i + 1) * width - 1, open=price, high=price + 1, low=price - 1, close=price,
                  volume=1.5, quote_volume=price * 1.5, trade_count=2, taker_buy_volume=0.5, source=source,
                  partial=partial)  # fmt: skip


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[Database]:
    database = Database(migrated_database_url)
    yield database
    await database.close()


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[Cache]:
    client = Cache(redis_url)
    yield client
    await client.close()


async def stored_rows(db: Database, symbol: str) -> list[asyncpg.Record]:
    async with db.connection() as conn:
        return await conn.fetch(
            "SELECT timeframe, open_time, open::text, high::text, low::text, close::text, volume::text, "
            "quote_volume::text, taker_buy_volume::text, trade_count, source FROM candles WHERE symbol = $1 "
            "ORDER BY timeframe, open_time",
            symbol,
        )


def trade(t_ms: int, price: float, qty: float, trade_id: int) -> bytes:
    return rec.pack_trade(0, t_ms, 0, price, qty, trade_id, trade_id, trade_id, t_ms, False)


async def test_closed_candles_are_stored_with_the_exact_decimals_of_the_records_and_the_latest_in_redis(
    db: Database, cache: Cache
) -> None:
    symbol = "NUMUSDT"
    book = CandleBook(history=16)
    book.symbol_index(symbol)
    records = [trade(T0 + 1_000, 61800.3, 0.006, 1), trade(T0 + 2_000, 61800.4, 0.012, 2),
               trade(T0 + MIN + 1, 61799.9, 0.001, 3)]  # fmt: skip
    batch = np.frombuffer(b"".join(records), dtype=rec.MARKET_RECORD).copy()
    closed = book.process(batch, np.zeros(len(batch), dtype=np.int64))
    one_minute = closed[0].candle
    assert one_minute.volume == 0.006 + 0.012 != 0.018  # float noise in the record sums
    writer = CandleWriter(db, cache)
    writer.submit_all(e.candle for e in closed)
    assert await writer.flush()
    rows = await stored_rows(db, symbol)
    row = next(r for r in rows if r["timeframe"] == "1m")
    assert (row["open"], row["high"], row["low"], row["close"]) == ("61800.3", "61800.4", "61800.3", "61800.4")
    assert (row["volume"], row["quote_volume"], row["taker_buy_volume"]) == ("0.018", "1112.4066", "0.018")
    assert (row["trade_count"], row["source"]) == (2, "trades")

    latest = await cache.client.hgetall(keys.latest_ohlcv(symbol, "1m"))
    assert latest[b"close"] == b"61800.4" and latest[b"volume"] == b"0.018" and latest[b"open_time"] == b"%d" % T0
    ttl = await cache.client.ttl(keys.latest_ohlcv(symbol, "1m"))
    assert 0 < ttl <= keys.LATEST_OHLCV_TTL_S

    # The exchange's kline corrects it; a trade-built or partial version never overwrites the exchange's.
    assert one_minute.partial  # the first minute after attaching: stored because nothing else was
    corrected = Candle(
        **{**_fields(one_minute), "high": 61801.0, "volume": 0.019, "source": "stream", "partial": False}
    )
    writer.submit(corrected)
    assert await writer.flush()
    writer.submit(Candle(**{**_fields(one_minute), "partial": False}))
    assert await writer.flush()
    writer.submit(Candle(**{**_fields(one_minute), "source": "stream", "partial": True, "high": 1e6}))
    assert await writer.flush()
    row = next(r for r in await stored_rows(db, symbol) if r["timeframe"] == "1m")
    assert (row["high"], row["volume"], row["source"]) == ("61801.0", "0.019", "stream")
    # A partial candle is stored when nothing else is.
    writer.submit(candle(symbol, 5, partial=True, source="trades"))
    assert await writer.flush()
    assert len([r for r in await stored_rows(db, symbol) if r["timeframe"] == "1m"]) == 2
    assert writer.stats()["rows_written"] == 5 and writer.stats()["pg_failures"] == 0


def _fields(c: Candle) -> dict:
    return {name: getattr(c, name) for name in c.__struct_fields__}


async def test_candles_closed_while_postgresql_is_down_are_kept_retried_and_written_when_it_returns(
    migrated_database_url: str, db: Database
) -> None:
    symbol = "OUTUSDT"
    parts = urlsplit(migrated_database_url)
    proxy = testing.TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.up()
    proxied = Database(parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}")).geturl())
    writer = CandleWriter(proxied, None, interval_s=0.01, retry_initial_s=0.02, retry_max_s=0.1)
    task = asyncio.create_task(writer.run())
    try:
        writer.submit(candle(symbol, 0))
        await _until(lambda: writer.backlog == 0 and writer.rows_written == 1)
        await proxy.down()
        for i in range(1, 6):
            writer.submit(candle(symbol, i))
        await _until(lambda: writer.pg_retries >= 2)  # failing, kept, retried
        assert writer.backlog == 5 and writer.stats()["postgres_down"]
        writer.submit(candle(symbol, 3, price=99.0))  # a newer version of a pending candle replaces it
        await proxy.up()
        await _until(lambda: writer.backlog == 0, timeout_s=10)
        rows = await stored_rows(db, symbol)
        assert len(rows) == 6 and rows[3]["open"] == "99.0"
        assert not writer.stats()["postgres_down"] and writer.pg_failures >= 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await proxied.close()
        with contextlib.suppress(Exception):
            await proxy.down()


async def _until(predicate, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_a_cold_start_hydrates_the_last_n_candles_from_postgresql_and_completes_wider_ones(
    db: Database,
) -> None:
    symbol = "HYDUSDT"
    writer = CandleWriter(db, None)
    writer.submit_all(candle(symbol, i, price=10.0 + i) for i in range(30))  # 00:00 … 00:29, no 5m rows stored
    assert await writer.flush()

    book = CandleBook(history=64)
    hydrator = Hydrator(CandleStore(db), None, writer, book.load, book.rebuild, timeframes=TIMEFRAME_NAMES, count=20)
    await hydrator.hydrate([symbol])
    assert hydrator.postgres_loaded.is_set() and hydrator.from_postgres == 20
    assert [c.open_time_ms for c in book.candles(symbol, "1m")] == [T0 + i * MIN for i in range(10, 30)]
    # 00:10 … 00:25 are complete 5m buckets (rolled up and stored); all the memory holds is served.
    assert await writer.flush()
    rows = [r for r in await stored_rows(db, symbol) if r["timeframe"] == "5m"]
    assert [r["open"] for r in rows] == ["20.0", "25.0", "30.0", "35.0"]
    queries = MarketQueries(book, CandleStore(db))
    state = await queries.market_state(symbol, common_pb.TIMEFRAME_5M, 10)
    assert [c.open for c in state.candles] == [20.0, 25.0, 30.0, 35.0]
    # ListCandles reaches PostgreSQL for what memory no longer holds.
    page = await queries.list_candles(symbol, common_pb.TIMEFRAME_1M, T0, T0 + 30 * MIN, 100)
    assert [c.open_time_ms for c in page.candles] == [T0 + i * MIN for i in range(30)]


def rest_rows(shared_data: Path) -> list[list]:
    df = pd.read_csv(shared_data / "binance/signalbot/data/BTCUSDT_1m.csv", parse_dates=["open_time"]).tail(60)
    out = []
    for t, r in zip(df["open_time"], df.itertuples(index=False), strict=True):
        open_ms = int((t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1))
        out.append([open_ms, repr(r.open), repr(r.high), repr(r.low), repr(r.close), repr(r.volume),
                    open_ms + MIN - 1, "0", 10, repr(r.taker_buy_base_asset_volume), "0", "0"])  # fmt: skip
    return out


async def test_rest_fills_what_postgresql_lacks_and_an_unreachable_rest_is_logged_once(
    db: Database, shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = rest_rows(shared_data)
    calls: list[dict] = []

    async def klines(request: web.Request) -> web.Response:
        calls.append(dict(request.query))
        data = rows if request.query["interval"] == "1m" else []
        return web.json_response(data[-int(request.query["limit"]) :])

    app = web.Application()
    app.router.add_get("/fapi/v1/klines", klines)
    runner = web.AppRunner(app)
    await runner.setup()
    port = testing.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        book = CandleBook(history=128)
        writer = CandleWriter(db, None)
        async with BinanceRest(f"http://127.0.0.1:{port}") as rest:
            hydrator = Hydrator(CandleStore(db), rest, writer, book.load, book.rebuild, timeframes=TIMEFRAME_NAMES,
                                count=40)  # fmt: skip
            await hydrator.hydrate(["RESTUSDT"])
        assert {c["interval"] for c in calls} == set(TIMEFRAME_NAMES) and hydrator.from_rest == 40
    finally:
        await runner.cleanup()
    # The REST rows are "RESTUSDT"'s 1m history now; the hydrator stored them (source 'rest').
    got = book.candles("RESTUSDT", "1m")
    assert [c.open_time_ms for c in got] == [r[0] for r in rows[-40:]]
    assert [c.close for c in got] == [float(r[4]) for r in rows[-40:]] and {c.source for c in got} == {"rest"}
    assert await writer.flush()
    stored = [r for r in await stored_rows(db, "RESTUSDT") if r["timeframe"] == "1m"]
    assert [r["close"] for r in stored] == [r[4] for r in rows[-40:]]

    caplog.set_level(logging.WARNING, logger="aegis.brain.persistence")
    book = CandleBook(history=128)
    async with BinanceRest(f"http://127.0.0.1:{testing.free_port()}", timeout_s=2) as rest:
        hydrator = Hydrator(CandleStore(db), rest, writer, book.load, book.rebuild, timeframes=TIMEFRAME_NAMES,
                            count=40, rest_url="http://unreachable")  # fmt: skip
        await hydrator.hydrate(["RESTUSDT", "OTHERUSDT"])
    warnings = [r for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(warnings) == 1 and hydrator.rest_failures >= 1
    assert len(book.candles("RESTUSDT", "1m")) == 40  # what PostgreSQL had


async def test_the_redis_latest_value_never_goes_back_in_time(cache: Cache, redis_url: str) -> None:
    writer = CandleWriter(None, cache)
    writer.submit(candle("LATUSDT", 5, price=5.0))
    writer.submit(candle("LATUSDT", 4, price=4.0))  # a late correction of an older candle
    assert await writer.flush()
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.hget(keys.latest_ohlcv("LATUSDT", "1m"), "open") == b"5.0"
    finally:
        await client.aclose()
