"""Signals to real PostgreSQL in batches (through an outage), ListSignals paging, StreamSignals fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import msgspec
import numpy as np
import pandas as pd
import pytest

from aegis import testing
from aegis.brain import features as feat
from aegis.brain.candles import CandleBook
from aegis.brain.events import EventBus, SignalGenerated
from aegis.brain.signals import SignalHub, SignalWriter, SubscriberTooSlow, signal_to_pb
from aegis.brain.strategy import Signal, Strategy, signal_id_for
from aegis.config import StrategySettings
from aegis.core import records as rec
from aegis.errors import DependencyUnavailable, ValidationError
from aegis.storage.postgres import Database
from aegis.v1 import common_pb2 as common_pb

MIN = 60_000


@pytest.fixture(scope="module")
def real_signals(shared_data: Path) -> list[Signal]:
    """Signals of the strategy on the real ETHUSDT klines (1m trigger, no zone needed: many of them)."""
    df = pd.read_csv(shared_data / "binance/signalbot/data/ETHUSDT_1m.csv", parse_dates=["open_time"])
    opens = (pd.DatetimeIndex(df["open_time"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    raw = b"".join(
        rec.pack_kline(
            0, int(t) + MIN, 0, int(t), int(t) + MIN - 1, MIN, r.open, r.high, r.low, r.close, r.volume, 0.0, 1,
            r.taker_buy_base_asset_volume, True,
        )
        for t, r in zip(opens, df.itertuples(index=False), strict=True)
    )  # fmt: skip
    book = CandleBook(history=64, symbol_capacity=1)
    book.symbol_index("ETHUSDT")
    batch = np.frombuffer(raw, dtype=rec.MARKET_RECORD).copy()
    strategy = Strategy(StrategySettings(trigger_timeframe="1m", require_zone=False, cooldown_s=0.0))
    out: list[Signal] = []
    for event in book.process(batch, np.zeros(len(batch), dtype=np.int64)):
        out += strategy.on_candle_closed(event)
    assert len(out) >= 30
    return out


def renamed(signals: list[Signal], symbol: str) -> list[Signal]:
    """The same signals for another symbol (each test writes its own rows into the run's database)."""
    return [
        msgspec.structs.replace(
            s, symbol=symbol, signal_id=signal_id_for(symbol, s.timeframe, s.candle_open_time_ms or 0, s.side)
        )
        for s in signals
    ]


def as_stored(s: Signal) -> Signal:
    return msgspec.structs.replace(s, candle_open_time_ms=None)


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[Database]:
    database = Database(migrated_database_url)
    yield database
    await database.close()


async def until(predicate, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(hub: SignalHub) -> AsyncIterator[SignalHub]:
    task = asyncio.create_task(hub.run())
    try:
        yield hub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def all_pages(hub: SignalHub, size: int, **filters) -> list[Signal]:  # type: ignore[no-untyped-def]
    out: list[Signal] = []
    token = ""
    while True:
        page = await hub.list_signals(page_size=size, page_token=token, **filters)
        out += page.signals
        assert len(page.signals) <= size
        token = page.next_page_token
        if not token:
            return out


# ------------------------------------------------------------------------------------------- persistence


async def test_signals_are_written_in_batches_and_read_back_newest_first_page_by_page(
    db: Database, real_signals: list[Signal]
) -> None:
    signals = renamed(real_signals, "RTRIPUSDT")
    writer = SignalWriter(db, batch_rows=7, interval_s=0.01)
    async with running(SignalHub(db, writer=writer)) as hub:
        hub.publish_all(signals)
        await until(lambda: writer.backlog == 0)
    assert writer.rows_written == len(signals) and writer.failures == 0
    newest_first = sorted(signals, key=lambda s: (s.created_time_ns, s.signal_id), reverse=True)

    cold = SignalHub(db)  # a restarted brain: nothing in memory, everything from PostgreSQL
    stored = await all_pages(cold, 9, symbol="RTRIPUSDT")
    assert stored == [as_stored(s) for s in newest_first]  # every field exact (the table has no candle time)
    assert all(isinstance(s.entry_price, Decimal) for s in stored)

    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT side, entry_price::text, sl_pct::text, features, reasons, feature_schema_version, model_version "
            "FROM signals WHERE signal_id = $1",
            uuid.UUID(signals[0].signal_id),
        )
    assert row["side"] == {"LONG": "BUY", "SHORT": "SELL"}[signals[0].side]
    assert row["entry_price"] == str(signals[0].entry_price) and row["sl_pct"] == repr(signals[0].sl_pct)
    assert tuple(row["features"]) == signals[0].features and row["feature_schema_version"] == 1
    assert msgspec.json.decode(row["reasons"]) == list(signals[0].reasons) and row["model_version"] == "rules-v1"

    # filters: time range, timeframe, model version; a warm hub (memory + PostgreSQL) pages the same
    middle = newest_first[len(newest_first) // 2].created_time_ns // 1_000_000
    older = await all_pages(cold, 5, symbol="RTRIPUSDT", end_ms=middle, timeframe=common_pb.TIMEFRAME_1M)
    assert older == [as_stored(s) for s in newest_first if s.created_time_ns < middle * 1_000_000]
    assert await all_pages(cold, 5, symbol="RTRIPUSDT", model_version="model-x") == []
    assert await all_pages(cold, 5, symbol="RTRIPUSDT", timeframe=common_pb.TIMEFRAME_5M) == []
    warm = SignalHub(db, memory=10)
    warm.publish_all(signals[-10:])  # the most recent ones also in memory (with their candle time)
    merged = await all_pages(warm, 4, symbol="RTRIPUSDT", start_ms=middle)
    assert [s.signal_id for s in merged] == [
        s.signal_id for s in newest_first if s.created_time_ns >= middle * 1_000_000
    ]


async def test_signals_made_while_postgresql_is_down_are_kept_retried_and_written_when_it_returns(
    migrated_database_url: str, db: Database, real_signals: list[Signal]
) -> None:
    signals = renamed(real_signals[:12], "OUTSIGUSDT")
    parts = urlsplit(migrated_database_url)
    proxy = testing.TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.up()
    proxied = Database(parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}")).geturl())
    writer = SignalWriter(proxied, interval_s=0.01, retry_initial_s=0.02, retry_max_s=0.1)
    hub = SignalHub(proxied, writer=writer, memory=8)
    try:
        async with running(hub):
            hub.publish_all(signals[:2])
            await until(lambda: writer.rows_written == 2)
            await proxy.down()
            t0 = time.perf_counter()
            hub.publish_all(signals[2:])
            assert time.perf_counter() - t0 < 0.05  # publishing never waits for PostgreSQL
            await until(lambda: writer.retries >= 2)
            assert writer.backlog == 10 and writer.stats()["postgres_down"]
            # recent pages are still served from memory; older ones need PostgreSQL
            page = await hub.list_signals(symbol="OUTSIGUSDT", page_size=5)
            assert [s.signal_id for s in page.signals] == [s.signal_id for s in signals[::-1][:5]]
            with pytest.raises(DependencyUnavailable):
                await hub.list_signals(symbol="OUTSIGUSDT", page_size=5, page_token=page.next_page_token)
            await proxy.up()
            await until(lambda: writer.backlog == 0, timeout_s=10)
        assert writer.rows_written == 12 and not writer.stats()["postgres_down"] and writer.failures >= 1
        stored = await all_pages(SignalHub(db), 100, symbol="OUTSIGUSDT")
        assert stored == [as_stored(s) for s in signals[::-1]]
    finally:
        await proxied.close()
        with contextlib.suppress(Exception):
            await proxy.down()


async def test_an_order_waiting_on_its_signal_row_cuts_the_batching_interval_short(
    db: Database, real_signals: list[Signal]
) -> None:
    """The executor awaits ``stored`` before it sends an order: the row goes out at once, not after the interval;
    signals nobody waits for still wait for the interval (they are batched)."""
    signals = renamed(real_signals[:3], "URGENTUSDT")
    writer = SignalWriter(db, interval_s=30.0)
    async with running(SignalHub(db, writer=writer)) as hub:
        hub.publish_all(signals[:2])
        await asyncio.sleep(0.3)
        assert writer.rows_written == 0  # batched: nothing waits on them, the 30 s interval holds
        hub.publish_all(signals[2:])
        started = time.monotonic()
        assert await asyncio.wait_for(writer.stored(signals[2].signal_id), 5.0)
        waited = time.monotonic() - started
        assert writer.rows_written == 3 and writer.backlog == 0  # the earlier two went in the same batch
    assert waited < 5.0, waited
    assert len(await all_pages(SignalHub(db), 10, symbol="URGENTUSDT")) == 3


async def test_a_row_postgresql_refuses_is_dropped_and_the_rest_of_its_batch_written(
    db: Database, real_signals: list[Signal]
) -> None:
    good = renamed(real_signals[:3], "BADROWUSDT")
    bad = msgspec.structs.replace(good[1], signal_id=str(uuid.uuid4()), confidence=1.5)  # breaks a CHECK
    writer = SignalWriter(db)
    hub = SignalHub(db, writer=writer)
    hub.publish_all([good[0], bad, good[1], good[2]])
    assert await writer.flush(5.0)
    assert writer.rows_written == 3 and writer.rows_rejected == 1
    assert len(await all_pages(SignalHub(db), 10, symbol="BADROWUSDT")) == 3


async def test_list_signals_checks_its_arguments(db: Database) -> None:
    hub = SignalHub(db)
    with pytest.raises(ValidationError, match="page_size"):
        await hub.list_signals(page_size=-1)
    with pytest.raises(ValidationError, match="timeframe"):
        await hub.list_signals(timeframe=common_pb.TIMEFRAME_3M)
    with pytest.raises(ValidationError, match="end_time"):
        await hub.list_signals(start_ms=10, end_ms=5)
    with pytest.raises(ValidationError, match="page_token"):
        await hub.list_signals(page_token="not-a-token")
    page_token = (await SignalHub(None, memory=5).list_signals(page_size=1)).next_page_token
    assert page_token == ""


# ----------------------------------------------------------------------------------------------- fan-out


async def test_stream_subscribers_get_new_signals_and_a_slow_one_is_dropped_without_slowing_the_brain(
    real_signals: list[Signal],
) -> None:
    signals = renamed(real_signals, "FANUSDT")
    bus = EventBus()
    hub = SignalHub(None, bus=bus, queue_size=4)
    fast = hub.subscribe()
    picky = hub.subscribe(symbols=["fanusdt"], min_confidence=0.7)
    other = hub.subscribe(symbols=["BTCUSDT"])
    slow = hub.subscribe(queue_size=3)
    received: list[Signal] = []

    async def read_fast() -> None:
        async for signal in fast:
            received.append(signal)

    reader = asyncio.create_task(read_fast())
    got_picky: list[Signal] = []

    async def read_picky() -> None:
        async for signal in picky:
            got_picky.append(signal)

    picky_reader = asyncio.create_task(read_picky())
    t0 = time.perf_counter()
    for signal in signals:
        hub.publish(signal)
        await asyncio.sleep(0)  # the brain yields between events; the slow subscriber never reads
    elapsed = time.perf_counter() - t0
    await until(lambda: len(received) == len(signals))
    assert received == signals and elapsed < 1.0
    assert got_picky == [s for s in signals if s.confidence >= 0.7] and got_picky
    assert slow.dropped is not None and hub.fanout.dropped == 1 and hub.fanout.subscribers == 3
    with pytest.raises(SubscriberTooSlow, match="did not keep up") as caught:
        await anext(slow)
    assert caught.value.status_code == grpc.StatusCode.RESOURCE_EXHAUSTED
    other.close()
    with pytest.raises(StopAsyncIteration):
        await anext(other)
    fast.close()
    picky.close()
    await asyncio.wait_for(asyncio.gather(reader, picky_reader), 1.0)
    assert hub.fanout.subscribers == 0
    # every signal was also announced on the bus for sizing, in order
    announced: list[SignalGenerated] = []
    bus.subscribe(SignalGenerated, announced.append)
    await bus.drain()
    assert [e.signal_id for e in announced] == [s.signal_id for s in signals]
    with pytest.raises(ValidationError, match="min_confidence"):
        hub.subscribe(min_confidence=1.5)


def test_a_signal_becomes_the_api_message(real_signals: list[Signal]) -> None:
    s = real_signals[0]
    message = signal_to_pb(s)
    assert message.signal_id == s.signal_id and message.entry_price == str(s.entry_price)
    assert message.timeframe == common_pb.TIMEFRAME_1M and message.side in (
        common_pb.POSITION_SIDE_LONG,
        common_pb.POSITION_SIDE_SHORT,
    )
    assert message.candle_open_time.ToMilliseconds() == s.candle_open_time_ms
    assert message.created_time.ToNanoseconds() == s.created_time_ns
    assert not message.HasField("features") and list(message.reasons) == list(s.reasons)
    full = signal_to_pb(s, include_features=True)
    assert full.features.schema_version == "1" and list(full.features.names) == list(feat.FEATURE_NAMES)
    assert tuple(full.features.values) == s.features
    stored = signal_to_pb(as_stored(s))
    assert not stored.HasField("candle_open_time")
