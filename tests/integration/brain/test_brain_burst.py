"""A burst of >= 200k records/s written into a real ring by another process, read by the brain's consumer while
its event loop stalls now and then: overruns are detected, counted and reported, the consumer resyncs and catches
up, book-ticker and mark-price updates are conflated (latest wins), and every trade read goes into the candles."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from aegis.brain.candles import CandleBook
from aegis.brain.consumer import RingConsumer
from aegis.brain.events import EventBus, TickUpdate
from aegis.brain.market import MarketQueries
from aegis.brain.persistence import CandleWriter
from aegis.core import records as rec

SYMBOLS = 10
CAPACITY = 1 << 12
WRITER = r"""
import json, sys, time
import numpy as np
from aegis.core import records as rec, ring

path, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
writer = ring.create(path, rec.MARKET_RECORD, int(sys.argv[4]), layout_name=rec.MARKET_RECORD_LAYOUT)
symbols = int(sys.argv[5])
for i in range(symbols):
    writer.add_symbol(f"B{i}USDT")
chunk = 2048
templates = [
    np.frombuffer(rec.pack_trade(0, 0, 0, 100.0, 1.0, 1, 1, 1, 0, False), rec.MARKET_RECORD),
    np.frombuffer(rec.pack_book_ticker(0, 0, 0, 1, 99.9, 2.0, 100.1, 3.0, 0), rec.MARKET_RECORD),
    np.frombuffer(rec.pack_mark_price(0, 0, 0, 100.05, 100.0, 100.0, 0.0001, 0), rec.MARKET_RECORD),
]
base = np.concatenate([templates[(j // symbols) % 3] for j in range(chunk)])
base["symbol_id"] = np.arange(chunk) % symbols
kinds = base["kind"].copy()
trade = kinds == rec.TRADE
t0_ms = 1_750_000_000_000
sent = trades = 0
print(json.dumps({"ready": True}), flush=True)
start = time.perf_counter()
while (elapsed := time.perf_counter() - start) < seconds:
    batch = base.copy()
    times = t0_ms + (sent + np.arange(chunk)) * 2  # 2 ms of market time per record: minutes close often
    batch["event_time_ms"] = times
    batch["i3"] = np.where(trade, times, batch["i3"])  # trade time
    ids = sent + np.arange(chunk)
    batch["i0"] = np.where(trade, ids, batch["i0"])
    batch["i1"] = np.where(trade, ids, batch["i1"])
    batch["i2"] = np.where(trade, ids, batch["i2"])
    batch["f0"] = np.where(trade, 100.0 + (ids % 50) * 0.1, batch["f0"])
    writer.write_each(batch, stamp_field="recv_time_ns")
    sent += chunk
    trades += int(trade.sum())
    ahead = sent / rate - (time.perf_counter() - start)
    if ahead > 0:
        time.sleep(ahead)
elapsed = time.perf_counter() - start
print(json.dumps({"sent": sent, "trades": trades, "rate": sent / elapsed}), flush=True)
writer.close()
"""


class CountingFilter:
    """The firewall hook, used here to count the trades the consumer takes in (it rejects nothing)."""

    def __init__(self) -> None:
        self.symbol_count: int | None = None
        self.counts: dict[str, int] = {}
        self.trades = 0

    def check(self, batch: np.ndarray, now_ms: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        self.trades += int((batch["kind"] == rec.TRADE).sum())
        return np.ones(batch.shape[0], dtype=bool), np.zeros(batch.shape[0], dtype=np.uint8)


def field_names() -> set[str]:
    return set(rec.MARKET_RECORD.names)


async def test_a_burst_overruns_the_ring_and_the_brain_counts_reports_resyncs_and_never_drops_trades(
    tmp_path: Path,
) -> None:
    assert {"i0", "i1", "i2", "i3", "f0"} <= field_names()
    path = tmp_path / "burst.ring"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "2.0", "400000", str(CAPACITY), str(SYMBOLS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and json.loads(proc.stdout.readline())["ready"]
        book = CandleBook(history=256, symbol_capacity=SYMBOLS)
        bus = EventBus()
        ticks: list[TickUpdate] = []
        bus.subscribe(TickUpdate, ticks.append)
        counting = CountingFilter()
        consumer = RingConsumer(
            path,
            book,
            bus,
            CandleWriter(None, None),
            batch_records=512,
            idle_sleep_s=0.0005,
            quiet_close_s=0,
            record_filter=counting,
        )
        queries = MarketQueries(book, None, consumer=consumer, bus=bus)
        seen: dict[str, Any] = {"lag_records": 0, "lag_ns": None}

        async def stall_and_watch() -> None:
            while proc.poll() is None:
                await asyncio.sleep(0.1)
                time.sleep(0.05)  # the loop is blocked (a GC pause, a slow handler): 20k records go by
                status = consumer.status()
                seen["lag_records"] = max(seen["lag_records"], status.get("lag_records", 0))
                seen["lag_ns"] = seen["lag_ns"] or status["lag_ns"]

        tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(bus.run())]
        try:
            await stall_and_watch()
            deadline = time.monotonic() + 10
            while consumer.reader is None or consumer.reader.lag > 0 or bus.pending:
                assert time.monotonic() < deadline, "the brain did not catch up after the burst"
                await asyncio.sleep(0.01)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert proc.wait(10) == 0
        result = json.loads(proc.stdout.readline())
    finally:
        if proc.poll() is None:
            proc.kill()
    assert result["rate"] >= 200_000, result  # the burst really was >= 200k records/s

    status = consumer.status()
    # overruns were detected, counted and reported; the reader resynced and caught up with the writer
    assert status["overruns"] > 0 and status["records_lost"] > 0 and status["resyncs"] > 0
    assert status["records_processed"] + status["records_lost"] == result["sent"]
    assert status["lag_records"] == 0 and seen["lag_records"] > 0 and seen["lag_ns"] is not None
    brain = queries.brain_status()
    (shard,) = brain.shards
    assert shard.lost_records == status["records_lost"] and shard.resync_count == status["resyncs"] > 0
    assert brain.resync_count == shard.resync_count
    # book tickers and mark prices were conflated (latest wins) ...
    assert book.conflated > 0 and brain.conflated_updates >= book.conflated
    counters = book.stats()
    assert counters["book_tickers"] + counters["mark_prices"] + counters["trades"] == status["records_processed"]
    # ... but every trade read went into the candles: the 1m volumes (1 per trade) add up to the trades read
    assert counters["trades"] == counting.trades > 0 and counters["late_trades"] == 0
    volume = sum(c.volume for s in book.symbols for c in book.candles(s, "1m"))
    assert volume == counting.trades
    assert sum(t.trade_count for t in ticks) == counting.trades  # the ticks on the bus merged, never lost any
